"""The bundled plugins against real repositories, through the real loader and dispatch."""

import hashlib
import os
import subprocess
from datetime import UTC, datetime

import pytest
import structlog

from engine.bundled import bundled
from engine.errors import ContractViolation, PluginError
from engine.plugins.dispatch import Dispatcher, dispatch
from engine.plugins.loader import Registry
from engine.plugins.pool import WorkerPool
from engine.sdk import Context
from tests.conftest import git

REGISTRY = Registry.discover([bundled("plugins")])


def ctx(workdir, whatif=False):
    return Context("run-1", "t1", datetime(2026, 1, 1, tzinfo=UTC), 7, whatif, workdir, structlog.get_logger())




@pytest.fixture
def repo(tmp_path):
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "a.txt").write_text("one\ntwo\n")
    git(path, "add", "a.txt")
    git(path, "commit", "-q", "-m", "first")
    (path / "a.txt").write_text("one\n2\nthree\n")
    (path / "new.txt").write_text("x\n")
    return path


def call(topic, workdir, task=None, whatif=False, **data):
    plugin, op = REGISTRY.resolve_topic(topic)
    return dispatch(plugin, op, ctx(workdir, whatif), {"task": task or {"id": "t1", "tool": "git"}, **data})


def fingerprint(root):
    """Every file and folder under ``root``, ``.git`` included, by content."""
    return {str(p): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*")}


def test_status(repo):
    state = call("git-inspector.status", repo)["repo_state"]
    assert state["branch"] == "main" and len(state["head"]) == 40
    assert state["dirty"] and state["changed"] == ["a.txt"] and state["untracked"] == ["new.txt"]


def test_diff_counts_lines_untracked_files_included(repo):
    diff = call("git-inspector.diff", repo)["diff"]
    assert diff["files"] == [{"path": "a.txt", "added": 2, "removed": 1}, {"path": "new.txt", "added": 1, "removed": 0}]
    assert diff["changed_files"] == 2 and diff["diff_lines"] == 4


def test_diff_since_a_snapshot_counts_only_later_changes_and_touches_nothing(repo):
    index_before = (repo / ".git" / "index").read_bytes()
    snapshot = call("git-inspector.status", repo)["repo_state"]["snapshot"]
    (repo / "later.txt").write_text("a\nb\n")
    plugin, op = REGISTRY.resolve_topic("git-inspector.diff")
    diff = dispatch(plugin, op, ctx(repo), {"task": {"id": "t1", "tool": "git"}, "since": snapshot})["diff"]
    assert diff["files"] == [{"path": "later.txt", "added": 2, "removed": 0}]
    assert (repo / ".git" / "index").read_bytes() == index_before
    status = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True).stdout
    assert status.splitlines() == [" M a.txt", "?? later.txt", "?? new.txt"]


def test_whatif_status_and_diff_write_nothing_into_the_repository(repo):
    (repo / "same.txt").write_text("same\n")
    git(repo, "add", "same.txt")
    git(repo, "commit", "-q", "-m", "same")
    snapshot = call("git-inspector.status", repo)["repo_state"]["snapshot"]
    (repo / "later.txt").write_text("a\nb\n")
    os.utime(repo / "same.txt", (2_000_000_000, 2_000_000_000))  # unchanged, but stat-dirty: git status would
    before = fingerprint(repo)                                      # rewrite the index if it took its lock
    state = call("git-inspector.status", repo, whatif=True)["repo_state"]
    assert state["changed"] == ["a.txt"]
    assert state["snapshot"] == call("git-inspector.status", repo)["repo_state"]["snapshot"] != snapshot  # same id
    before = fingerprint(repo)  # (the real status call above wrote its snapshot's objects)
    assert state["untracked"] == ["later.txt", "new.txt"]
    assert call("git-inspector.diff", repo, whatif=True)["diff"] == {  # what it says without whatif
        "base": "HEAD", "changed_files": 3, "diff_lines": 6, "files": [
            {"path": "a.txt", "added": 2, "removed": 1}, {"path": "later.txt", "added": 2, "removed": 0},
            {"path": "new.txt", "added": 1, "removed": 0}]}
    since = call("git-inspector.diff", repo, whatif=True, since=snapshot)["diff"]
    assert since["files"] == [{"path": "later.txt", "added": 2, "removed": 0}]
    assert call("git-inspector.diff", repo, whatif=True, since=state["snapshot"])["diff"]["files"] == []
    assert fingerprint(repo) == before


@pytest.mark.parametrize("field", ["task.args.base", "since"])
def test_diff_refuses_option_like_refs(repo, tmp_path, field):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    value = f"--output={victim}"
    data = {"since": value} if field == "since" else {"task": {"id": "t1", "tool": "git", "args": {"base": value}}}
    with pytest.raises(ContractViolation) as caught:  # refused by the input schema, before the plugin runs
        call("git-inspector.diff", repo, **data)
    path = "$.since" if field == "since" else "$.task.args.base"
    assert [(p.path, p.message) for p in caught.value.problems] == [(path, f"'{value}' does not match '^[^-]'")]
    assert victim.read_text() == "precious\n"


@pytest.mark.parametrize("count", [0, -1, "5", True])
def test_log_refuses_a_max_count_that_is_not_a_positive_integer(repo, count):
    with pytest.raises(ContractViolation) as caught:
        call("git-inspector.log", repo, {"id": "t1", "tool": "git", "args": {"max_count": count}})
    assert [p.path for p in caught.value.problems] == ["$.task.args.max_count"]


def test_log(repo):
    log = call("git-inspector.log", repo, {"id": "t1", "tool": "git", "args": {"max_count": 1}})["log"]
    assert [c["summary"] for c in log] == ["first"]


def test_missing_repository_is_a_clear_error(tmp_path):
    with pytest.raises(PluginError) as caught:
        call("git-inspector.status", tmp_path / "nope")
    assert "does not exist" in str(caught.value) and not caught.value.retryable
    with pytest.raises(PluginError) as caught:
        call("git-inspector.status", tmp_path)
    assert "is not a git repository" in str(caught.value)


def test_missing_git_is_a_clear_error_not_a_traceback(repo, tmp_path):
    empty = tmp_path / "no-git-here"
    empty.mkdir()
    dispatcher = Dispatcher(WorkerPool(tmp_path, environ={"PATH": str(empty)}))
    try:
        plugin, op = REGISTRY.resolve_topic("git-inspector.status")
        with pytest.raises(PluginError) as caught:
            dispatcher.call(plugin, op, ctx(repo), {"task": {"id": "t1", "tool": "git"}})
    finally:
        dispatcher.pool.close()
    assert "git is not installed or not on PATH" in str(caught.value) and caught.value.code is None


def test_task_parser_normalises(tmp_path):
    task = {"id": "t1", "tool": " Git ", "tags": ["Docs", "docs", "b"], "files": ["./src/../a.py", "b\\c.py"],
            "flags": ["-y", "-y"]}
    out = call("task-parser", tmp_path, task)["task"]
    assert out["tool"] == "git" and out["tags"] == ["b", "docs"] and out["files"] == ["a.py", "b/c.py"]
    assert out["flags"] == ["-y"] and out["retry"] == {"max_retries": 0, "backoff_sec": 0} and out["repo"] == "."


def test_task_parser_refuses_invalid_tasks_with_every_problem(tmp_path):
    with pytest.raises(PluginError) as caught:
        call("task-parser.normalize", tmp_path, {"id": "t 1", "tool": 3})
    assert "$.id" in str(caught.value) and "$.tool" in str(caught.value)
    with pytest.raises(PluginError) as caught:
        call("task-parser.normalize", tmp_path, {"id": "t1", "tool": "x", "files": ["../../etc/passwd"]})
    assert "leaves the repository" in str(caught.value)


def test_a_snapshot_is_the_tree_git_itself_writes(repo):
    """The snapshot's tree is written in the worker (no `git write-tree`): it must be the tree git writes
    for the same files, nested folders, an executable and a symlink included, and git must find it."""
    (repo / "dir" / "deeper").mkdir(parents=True)
    (repo / "dir" / "deeper" / "b.txt").write_text("b\n")
    (repo / "dir" / "run.sh").write_text("#!/bin/sh\n")
    (repo / "dir" / "run.sh").chmod(0o755)
    (repo / "link").symlink_to("a.txt")
    (repo / ".gitignore").write_text("ignored.txt\n")
    (repo / "ignored.txt").write_text("no\n")
    snapshot = call("git-inspector.status", repo)["repo_state"]["snapshot"]
    env = {**os.environ, "GIT_INDEX_FILE": str(repo / ".git" / "scratch-index")}
    subprocess.run(["git", "add", "-A"], cwd=repo, env=env, check=True)
    expected = subprocess.run(["git", "write-tree"], cwd=repo, env=env, check=True, capture_output=True,
                              text=True).stdout.strip()
    assert snapshot == expected
    listing = git(repo, "ls-tree", "-r", snapshot)
    assert "100755 blob" in listing and "120000 blob" in listing and "ignored.txt" not in listing
    subprocess.run(["git", "fsck", "--no-dangling"], cwd=repo, check=True, capture_output=True)


def test_a_snapshot_of_an_index_git_inspector_cannot_read_is_written_by_git(repo):
    git(repo, "update-index", "--index-version", "4")
    snapshot = call("git-inspector.status", repo)["repo_state"]["snapshot"]
    env = {**os.environ, "GIT_INDEX_FILE": str(repo / ".git" / "scratch-index")}
    subprocess.run(["git", "add", "-A"], cwd=repo, env=env, check=True)
    assert snapshot == subprocess.run(["git", "write-tree"], cwd=repo, env=env, check=True, capture_output=True,
                                      text=True).stdout.strip()


def test_a_clean_repository_is_snapshotted_with_one_git_process_in_a_warm_worker(repo, tmp_path):
    """The second status of a clean repository at the same commit runs `git status` only; the snapshot is
    still HEAD's tree, and a change afterwards is seen."""
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "all")
    log = tmp_path / "git-calls.txt"
    shim = tmp_path / "bin"
    shim.mkdir()
    real = subprocess.run(["which", "git"], capture_output=True, text=True, check=True).stdout.strip()
    (shim / "git").write_text(f'#!/bin/sh\necho "$1" >> {log}\nexec {real} "$@"\n')
    (shim / "git").chmod(0o755)
    plugin, op = REGISTRY.resolve_topic("git-inspector.status")
    dispatcher = Dispatcher(WorkerPool(tmp_path, environ={"PATH": f"{shim}:{os.environ['PATH']}"}))
    try:
        first = dispatcher.call(plugin, op, ctx(repo), {"task": {"id": "t1", "tool": "git"}})["repo_state"]
        log.write_text("")
        second = dispatcher.call(plugin, op, ctx(repo), {"task": {"id": "t2", "tool": "git"}})["repo_state"]
        assert log.read_text().split() == ["status"]
        assert first["snapshot"] == second["snapshot"] == git(repo, "rev-parse", "HEAD^{tree}").strip()
        (repo / "a.txt").write_text("changed\n")
        third = dispatcher.call(plugin, op, ctx(repo), {"task": {"id": "t3", "tool": "git"}})["repo_state"]
        assert third["dirty"] and third["snapshot"] != first["snapshot"]
    finally:
        dispatcher.pool.close()
