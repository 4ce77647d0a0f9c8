"""The bundled plugins against real repositories, through the real loader and dispatch."""

import hashlib
import os
import shutil
import subprocess
import time
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


@pytest.fixture
def traced(tmp_path):
    """git-inspector in a warm worker whose git is a shim logging each git command's name:
    (call(topic, repo, **data), commands()) where commands() returns the names logged since the last one."""
    log = tmp_path / "git-calls.txt"
    shim = tmp_path / "bin"
    shim.mkdir()
    real = subprocess.run(["which", "git"], capture_output=True, text=True, check=True).stdout.strip()
    (shim / "git").write_text(f'#!/bin/sh\necho "$1" >> {log}\nexec {real} "$@"\n')
    (shim / "git").chmod(0o755)
    dispatcher = Dispatcher(WorkerPool(tmp_path, environ={"PATH": f"{shim}:{os.environ['PATH']}"}))

    def call_warm(topic, workdir, **data):
        plugin, op = REGISTRY.resolve_topic(topic)
        return dispatcher.call(plugin, op, ctx(workdir), {"task": {"id": "t1", "tool": "git"}, **data})

    def commands():
        names = log.read_text().split() if log.exists() else []
        log.write_text("")
        return [n for n in names if n != "version"]  # GitPython asks for git's version as a worker starts

    yield call_warm, commands
    dispatcher.pool.close()


def porcelain(repo):
    """(changed, untracked) as `git status` says them."""
    out = subprocess.run(["git", "status", "--porcelain", "-z", "--untracked-files=all", "--no-renames"], cwd=repo,
                         capture_output=True, check=True).stdout.decode()
    rows = [r for r in out.split("\0") if len(r) > 3]
    return sorted({r[3:] for r in rows if r[:2] != "??"}), sorted(r[3:] for r in rows if r[:2] == "??")


def written_by_git(repo):
    """The tree `git add -A` + `git write-tree` make of the working tree, through a copy of the index."""
    env = {**os.environ, "GIT_INDEX_FILE": str(repo / ".git" / "scratch-index")}
    if (repo / ".git" / "index").exists():
        shutil.copy2(repo / ".git" / "index", repo / ".git" / "scratch-index")
    subprocess.run(["git", "add", "-A"], cwd=repo, env=env, check=True)
    tree = subprocess.run(["git", "write-tree"], cwd=repo, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()
    (repo / ".git" / "scratch-index").unlink()
    return tree


def _commit_all(repo):
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "all")


def _swap_for_symlink(repo):
    (repo / "a.txt").unlink()
    (repo / "a.txt").symlink_to("new.txt")


def _file_becomes_folder(repo):
    (repo / "a.txt").unlink()
    (repo / "a.txt").mkdir()
    (repo / "a.txt" / "inside.txt").write_text("i\n")


def _exec_bit(repo):
    _commit_all(repo)
    (repo / "a.txt").chmod(0o755)


def _reverted(repo):
    (repo / "a.txt").write_text("one\ntwo\n")  # HEAD's content again, with a new mtime


def _staged_then_deleted(repo):
    (repo / "c.txt").write_text("c\n")
    git(repo, "add", "c.txt")
    (repo / "c.txt").unlink()


def _staged_and_changed_again(repo):
    git(repo, "add", "a.txt")
    (repo / "a.txt").write_text("third\n")


def _folders_and_ignores(repo):
    (repo / ".gitignore").write_text("build/\n*.log\n")
    for name in ("dir/sub/x.txt", "dir/y.log", "build/o.txt", "dir with space/\u00fc \u00f1.txt", "only/deep/er/z"):
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(name)


def _no_commit_yet(repo):
    subprocess.run(["rm", "-rf", str(repo / ".git")], check=True)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "a.txt")


# How the repository fixture (a.txt committed then changed, new.txt untracked) is changed further.
STATES = {
    "changed and untracked": lambda repo: None,
    "clean": _commit_all,
    "staged new file": lambda repo: ((repo / "b.txt").write_text("b\n"), git(repo, "add", "b.txt")),
    "staged then deleted": _staged_then_deleted,
    "staged and changed again": _staged_and_changed_again,
    "deleted": lambda repo: (repo / "a.txt").unlink(),
    "deletion staged": lambda repo: git(repo, "rm", "-q", "--cached", "a.txt"),
    "reverted to HEAD": _reverted,
    "executable bit": _exec_bit,
    "file becomes symlink": _swap_for_symlink,
    "file becomes folder": _file_becomes_folder,
    "folders, odd names and ignores": _folders_and_ignores,
    "no commit yet": _no_commit_yet,
}
# Indexes git-inspector leaves to `git status` (a split index, whose copy it cannot read, to `git write-tree`
# as well).
LEFT_TO_GIT = {
    "assume-unchanged": lambda repo: git(repo, "update-index", "--assume-unchanged", "a.txt"),
    "skip-worktree": lambda repo: git(repo, "update-index", "--skip-worktree", "a.txt"),
    "intent-to-add": lambda repo: git(repo, "add", "-N", "new.txt"),
    "split index": lambda repo: git(repo, "update-index", "--split-index"),
}
GIT_COMMANDS = {"split index": ["add", "write-tree", "status"]}


@pytest.mark.parametrize("state", sorted(STATES) + sorted(LEFT_TO_GIT))
def test_status_says_what_git_status_says(repo, traced, state):
    """status compares the snapshot's index with the repository's index and HEAD's tree itself: it must
    say exactly what `git status` says, with one git process (`git add`) for the snapshot; an index it does
    not read that way is given to `git status`."""
    call_warm, commands = traced
    (STATES | LEFT_TO_GIT)[state](repo)
    want_changed, want_untracked = porcelain(repo)
    commands()
    found = call_warm("git-inspector.status", repo)["repo_state"]
    assert (found["changed"], found["untracked"]) == (want_changed, want_untracked)
    assert found["dirty"] == bool(want_changed or want_untracked)
    assert commands() == GIT_COMMANDS.get(state, ["add", "status"] if state in LEFT_TO_GIT else ["add"])
    assert found["snapshot"] == written_by_git(repo)


def _rewrite_same_size_same_mtime(repo):
    before = (repo / "a.txt").stat()
    assert before.st_size == len("ONE\nTWO\nthree\n")
    (repo / "a.txt").write_text("ONE\nTWO\nthree\n")
    os.utime(repo / "a.txt", ns=(before.st_atime_ns, before.st_mtime_ns))


def _ignore_a_file(repo):
    (repo / ".gitignore").write_text("new.txt\n")


# Changes made after a working tree's snapshot was kept: each must be seen by the next one.
LATER = {
    "same size, mtime put back": _rewrite_same_size_same_mtime,
    "file added to a folder": lambda repo: (repo / "dir" / "late.txt").write_text("late\n"),
    "file in a new nested folder": lambda repo: ((repo / "dir" / "n1" / "n2").mkdir(parents=True),
                                                  (repo / "dir" / "n1" / "n2" / "f").write_text("f\n")),
    "file deleted": lambda repo: (repo / "dir" / "kept.txt").unlink(),
    "executable bit": lambda repo: (repo / "a.txt").chmod(0o755),
    "ignored by .gitignore": _ignore_a_file,
    "staged (index only)": lambda repo: git(repo, "add", "new.txt"),
    "excluded by info/exclude": lambda repo: (repo / ".git" / "info" / "exclude").write_text("new.txt\n"),
}


def test_a_warm_worker_gives_an_unchanged_working_trees_snapshot_again_and_sees_every_change(tmp_path, traced):
    """A snapshot is kept with what the working tree looked like; while nothing in it changed (and it was
    already two seconds old) status runs no git process at all. Every kind of later change is seen; a
    working tree changed just before its snapshot is snapshotted again."""
    call_warm, commands = traced
    repos = {}
    for number, name in enumerate(LATER):
        path = tmp_path / f"repo{number}"
        (path / "dir").mkdir(parents=True)
        git(path, "init", "-q", "-b", "main")
        (path / "a.txt").write_text("one\ntwo\nthree\n")
        (path / "dir" / "kept.txt").write_text("k\n")
        _commit_all(path)
        (path / "new.txt").write_text("x\n")
        repos[name] = path
    fresh = repos[next(iter(LATER))]
    first = call_warm("git-inspector.status", fresh)["repo_state"]
    assert call_warm("git-inspector.status", fresh)["repo_state"] == first
    assert commands() == ["add", "add"]  # files changed less than two seconds before: not kept
    time.sleep(2.2)
    for name, path in repos.items():
        first = call_warm("git-inspector.status", path)["repo_state"]
        commands()
        assert call_warm("git-inspector.status", path)["repo_state"] == first
        assert call_warm("git-inspector.diff", path, since=first["snapshot"])["diff"]["files"] == []
        assert commands() == [], name
        LATER[name](path)
        later = call_warm("git-inspector.status", path)["repo_state"]
        assert (later["changed"], later["untracked"]) == porcelain(path), name
        assert later["snapshot"] == written_by_git(path), name
        if name != "staged (index only)":  # else only the index changed: the working tree's tree is the same
            assert later["snapshot"] != first["snapshot"], name
        assert commands() == ["add"], name
