"""git-executor against real repositories and a local bare `origin`, through the real loader, dispatch and
worker processes. The contract under test (docs/decisions/0011): a plan (ctx.whatif) changes nothing, and
the plan of an apply is what the apply did."""

import hashlib
import importlib.util
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

REGISTRY = Registry.discover([bundled("plugins")])
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
COMMIT_OF_DIRTY = [{"path": "a.txt", "action": "modify"}, {"path": "gone.txt", "action": "delete"},
                   {"path": "new.txt", "action": "create"}, {"path": "sub/deep.txt", "action": "create"}]


def ctx(workdir, whatif=False):
    return Context("run-1", "t1", NOW, 7, whatif, workdir, structlog.get_logger())


def git(cwd, *args):
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *map(str, args)], cwd=cwd, check=True,
                          capture_output=True, text=True).stdout.strip()


def call(op, repo, whatif=False, **args):
    plugin, operation = REGISTRY.resolve_topic(f"git-executor.{op}")
    return dispatch(plugin, operation, ctx(repo, whatif), {"task": {"id": "t1", "tool": "git", "args": args}})


def refused(op, repo, **args):
    with pytest.raises(PluginError) as caught:
        call(op, repo, **args)
    return caught.value


def fingerprint(*roots):
    """Every file, folder and symlink under ``roots`` (``.git`` included), by content."""
    found = {}
    for root in roots:
        for path in sorted(root.rglob("*")):
            if path.is_symlink():
                found[str(path)] = "link:" + os.readlink(path)
            elif path.is_dir():
                found[str(path)] = "dir"
            else:
                found[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def commit(repo, message, **files):
    for name, text in files.items():
        (repo / name).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def origin(tmp_path):
    """A bare repository: main (a.txt, gone.txt, .gitignore), done (merged into main), feature (main + f.txt)."""
    seed = tmp_path / "seed"
    seed.mkdir()
    git(seed, "init", "-q", "-b", "main")
    commit(seed, "first", **{"a.txt": "one\ntwo\n", "gone.txt": "bye\n", ".gitignore": "*.log\n"})
    git(seed, "branch", "done")
    git(seed, "checkout", "-q", "-b", "feature")
    commit(seed, "feature", **{"f.txt": "feature\n"})
    git(seed, "checkout", "-q", "main")
    git(tmp_path, "clone", "-q", "--bare", seed, "origin.git")
    return tmp_path / "origin.git"


@pytest.fixture
def repo(tmp_path, origin):
    """A clone of origin with local branches main, feature and done; no user identity in its config."""
    path = tmp_path / "repo"
    git(tmp_path, "clone", "-q", origin, path)
    git(path, "branch", "-q", "feature", "origin/feature")
    git(path, "branch", "-q", "done", "origin/done")
    return path


def dirty(repo):
    (repo / "a.txt").write_text("one\n2\nthree\n")
    (repo / "gone.txt").unlink()
    (repo / "new.txt").write_text("new\n")
    (repo / "sub").mkdir()
    (repo / "sub" / "deep.txt").write_text("deep\n")
    (repo / "debug.log").write_text("ignored\n")


def trace_remote(repo, tmp_path):
    """Make every contact with origin leave a line in the returned file (its upload-pack/receive-pack)."""
    log = tmp_path / "contacted"
    for kind in ("upload-pack", "receive-pack"):
        script = tmp_path / f"traced-{kind}"
        script.write_text(f'#!/bin/sh\necho {kind} >> "{log}"\nexec git {kind} "$@"\n')
        script.chmod(0o755)
        git(repo, "config", f"remote.origin.{kind.replace('-', '')}", script)
    return log


def test_commit_plan_is_exactly_what_the_commit_contains(repo):
    dirty(repo)
    planned = call("commit", repo, whatif=True, message="task t1")
    assert "applied" not in planned and planned["plan"]["changes"] == COMMIT_OF_DIRTY
    assert planned["plan"]["commands"] == [["git", "add", "-A"],
                                           ["git", "-c", "core.hooksPath=/dev/null", "commit", "-q", "-m", "task t1"]]
    out = call("commit", repo, message="task t1")
    assert out["plan"] == planned["plan"]
    sha = out["applied"]["commit"]
    assert sha == git(repo, "rev-parse", "HEAD") and out["applied"]["branch"] == "main"
    rows = git(repo, "show", "--name-status", "--no-renames", "--format=", sha).splitlines()
    actions = {"A": "create", "M": "modify", "D": "delete"}
    committed = [{"path": r.split("\t")[1], "action": actions[r.split("\t")[0]]} for r in rows]
    assert out["plan"]["changes"] == committed == out["applied"]["files"]
    # the worker has no identity (no HOME, none in the repository): the fallback one, dated ctx.now
    assert git(repo, "log", "-1", "--format=%an <%ae>|%cn <%ce>|%at|%s") == \
        f"engine <engine@localhost>|engine <engine@localhost>|{int(NOW.timestamp())}|task t1"
    assert git(repo, "status", "--porcelain", "--ignored") == "!! debug.log"
    assert call("commit", repo, message="again") == {
        "plan": {"summary": "nothing to commit on main", "changes": [], "commands": []},
        "applied": {"commit": None, "branch": "main", "author": "engine <engine@localhost>", "files": []}}


def test_commit_of_some_paths_leaves_the_rest_and_uses_the_repository_identity(repo):
    dirty(repo)
    git(repo, "add", "a.txt")  # staged, but not among the paths: stays out of the commit
    git(repo, "config", "user.name", "Alice")
    git(repo, "config", "user.email", "alice@example.org")
    planned = call("commit", repo, whatif=True, message="only these", paths=["sub", "./gone.txt"])
    assert planned["plan"]["changes"] == [{"path": "gone.txt", "action": "delete"},
                                          {"path": "sub/deep.txt", "action": "create"}]
    out = call("commit", repo, message="only these", paths=["sub", "./gone.txt"])
    assert out["plan"] == planned["plan"] and out["applied"]["files"] == planned["plan"]["changes"]
    assert out["applied"]["author"] == "Alice <alice@example.org>"
    assert git(repo, "log", "-1", "--format=%an <%ae>") == "Alice <alice@example.org>"
    assert git(repo, "status", "--porcelain").splitlines() == ["M  a.txt", "?? new.txt"]


@pytest.mark.parametrize(("path", "says"), [
    ("../outside.txt", "leaves the repository"), ("sub/../../x", "leaves the repository"),
    ("/etc/passwd", "is absolute"), ("link/passwd", "leaves the repository"), (".git/config", "is inside .git"),
])
def test_commit_refuses_paths_outside_the_repository(repo, tmp_path, path, says):
    dirty(repo)
    (repo / "link").symlink_to(tmp_path)
    head = git(repo, "rev-parse", "HEAD")
    error = refused("commit", repo, message="m", paths=["new.txt", path])
    assert f"task.args.paths[1] {path!r} {says}" in str(error) and not error.retryable
    assert git(repo, "rev-parse", "HEAD") == head and "A " not in git(repo, "status", "--porcelain")


@pytest.mark.parametrize(("op", "args", "prepare"), [
    ("commit", {"message": "m"}, "dirty"),
    ("commit", {"message": "m", "paths": ["sub"]}, "dirty"),
    ("merge", {"branch": "feature"}, None),
    ("merge", {"branch": "feature", "no_ff": True}, None),
    ("merge", {"branch": "feature"}, "diverge"),  # a true merge: its tree is new
    ("fetch", {}, None),
    ("push", {"branch": "topic"}, None),
    ("push", {"branch": "topic", "force": True}, None),
    ("branch", {"name": "new", "start": "feature"}, None),
    ("branch", {"name": "done", "delete": True}, None),
])
def test_whatif_changes_nothing_and_contacts_no_remote(repo, origin, tmp_path, op, args, prepare):
    contacted = trace_remote(repo, tmp_path)
    git(repo, "branch", "topic", "feature")  # not on origin yet: pushing it changes origin
    if prepare == "dirty":
        dirty(repo)
    elif prepare == "diverge":
        commit(repo, "main moves on", **{"m.txt": "m\n"})
    # unchanged but stat-dirty: a git command that took the index lock to refresh it would rewrite the index
    os.utime(repo / ".gitignore", (2_000_000_000, 2_000_000_000))
    before = fingerprint(repo, origin)
    plan = call(op, repo, whatif=True, **args)["plan"]
    assert fingerprint(repo, origin) == before and not contacted.exists()
    assert plan["summary"] and plan["commands"]
    out = call(op, repo, **args)  # the apply runs what the plan said
    assert out["plan"] == plan and "applied" in out
    assert (op in ("fetch", "push")) == contacted.exists()  # the trace does see a real contact
    assert fingerprint(repo, origin) != before


def test_merge_fast_forward_and_with_a_merge_commit(repo):
    feature = git(repo, "rev-parse", "feature")
    out = call("merge", repo, branch="feature")
    assert out["plan"]["changes"] == [{"path": "f.txt", "action": "create"}] == out["applied"]["files"]
    assert out["plan"]["commands"] == [["git", "-c", "core.hooksPath=/dev/null", "merge", "-q", "--ff-only",
                                        "feature"]]
    assert out["applied"] == {"head": feature, "merged": feature, "fast_forward": True, "files": out["plan"]["changes"]}
    assert git(repo, "rev-parse", "HEAD") == feature and (repo / "f.txt").read_text() == "feature\n"

    git(repo, "checkout", "-q", "-b", "side", "HEAD~1")
    side = commit(repo, "side", **{"s.txt": "side\n", "gone.txt": "changed\n"})
    git(repo, "checkout", "-q", "main")
    planned = call("merge", repo, whatif=True, branch="side", message="bring side in")
    assert planned["plan"]["changes"] == [{"path": "gone.txt", "action": "modify"},
                                          {"path": "s.txt", "action": "create"}]
    out = call("merge", repo, branch="side", message="bring side in")
    assert out["plan"] == planned["plan"] and out["applied"]["files"] == planned["plan"]["changes"]
    assert not out["applied"]["fast_forward"]
    assert git(repo, "log", "-1", "--format=%P|%s|%an") == f"{feature} {side}|bring side in|engine"
    assert call("merge", repo, branch="side")["plan"]["commands"] == []  # already merged


def test_merge_conflict_changes_nothing_and_is_a_business_error(repo):
    git(repo, "checkout", "-q", "-b", "theirs")
    commit(repo, "theirs", **{"a.txt": "one\nTHEIRS\n"})
    git(repo, "checkout", "-q", "main")
    commit(repo, "ours", **{"a.txt": "one\nOURS\n"})
    (repo / "untracked.txt").write_text("stays\n")
    before = fingerprint(repo)
    for whatif in (True, False):
        with pytest.raises(PluginError) as caught:
            call("merge", repo, whatif=whatif, branch="theirs")
        assert caught.value.code == "MERGE_CONFLICT" and caught.value.kind == "business"
        assert "conflicts in a.txt" in str(caught.value)
        assert fingerprint(repo) == before


def test_merge_refuses_a_dirty_working_tree(repo):
    (repo / "a.txt").write_text("local edit\n")
    assert refused("merge", repo, branch="feature").code == "DIRTY_WORKTREE"
    (repo / "a.txt").write_text("one\ntwo\n")
    (repo / "f.txt").write_text("untracked, in the way\n")
    error = refused("merge", repo, branch="feature")
    assert error.code == "DIRTY_WORKTREE" and "f.txt" in str(error)
    assert (repo / "f.txt").read_text() == "untracked, in the way\n"


def test_fetch_and_push_against_the_bare_remote(repo, origin, tmp_path):
    other = tmp_path / "other"
    git(tmp_path, "clone", "-q", origin, other)
    theirs = commit(other, "theirs", **{"t.txt": "t\n"})
    git(other, "push", "-q", "origin", "main")
    old = git(repo, "rev-parse", "origin/main")
    fetched = call("fetch", repo)
    assert fetched["plan"]["commands"] == [["git", "-c", "core.hooksPath=/dev/null", "fetch", "origin"]]
    assert {"ref": "refs/remotes/origin/main", "old": old, "new": theirs} in fetched["applied"]["updated"]

    git(repo, "checkout", "-q", "-b", "topic")
    mine = commit(repo, "mine", **{"m.txt": "m\n"})
    pushed = call("push", repo)  # the current branch, to origin
    assert pushed["applied"] == {"remote": "origin", "url": str(origin), "ref": "refs/heads/topic", "sha": mine,
                                 "result": "new"}
    assert git(origin, "rev-parse", "topic") == mine

    git(repo, "checkout", "-q", "main")
    commit(repo, "diverges", **{"d.txt": "d\n"})
    error = refused("push", repo, branch="main")
    assert error.code == "PUSH_REJECTED" and git(origin, "rev-parse", "main") == theirs

    git(repo, "checkout", "-q", "topic")
    git(repo, "commit", "-q", "--amend", "-m", "mine, reworded")
    rewritten = git(repo, "rev-parse", "HEAD")
    assert refused("push", repo, branch="topic").code == "PUSH_REJECTED"
    forced = call("push", repo, branch="topic", force=True)
    assert forced["applied"]["result"] == "forced" and git(origin, "rev-parse", "topic") == rewritten
    assert forced["plan"]["commands"][0][3:] == ["push", "--porcelain", f"--force-with-lease=refs/heads/topic:{mine}",
                                                 "origin", "refs/heads/topic:refs/heads/topic"]


def test_force_push_to_a_protected_branch_is_refused(repo, origin):
    before = fingerprint(origin)
    for branch, protected in (("main", []), ("master", []), ("release", ["release"])):
        if branch != "main":
            git(repo, "branch", branch)
        for whatif in (True, False):
            with pytest.raises(PluginError) as caught:
                call("push", repo, whatif=whatif, branch=branch, force=True, protected=protected)
            assert caught.value.code == "PROTECTED_BRANCH" and not caught.value.retryable
    assert fingerprint(origin) == before
    assert refused("branch", repo, name="master", delete=True).code == "PROTECTED_BRANCH"


def test_checkpoint_refs_and_the_current_branch_are_never_touched(repo):
    git(repo, "update-ref", "refs/engine/checkpoints/x", "HEAD")
    for op, args in (("branch", {"name": "refs/engine/checkpoints/x", "delete": True}),
                     ("branch", {"name": "refs/engine/checkpoints/y"}),
                     ("push", {"branch": "refs/engine/checkpoints/x", "force": True}),
                     ("merge", {"branch": "refs/engine/checkpoints/x"})):
        error = refused(op, repo, **args)
        assert error.code == "CHECKPOINT_REF" and "refs/engine/" in str(error), (op, args)
    git(repo, "config", "--add", "remote.origin.fetch", "+refs/*:refs/*")
    assert refused("fetch", repo).code == "CHECKPOINT_REF"
    assert git(repo, "rev-parse", "refs/engine/checkpoints/x") == git(repo, "rev-parse", "HEAD")
    assert refused("branch", repo, name="main", delete=True, protected=[]).code == "CURRENT_BRANCH"
    assert "not merged into HEAD" in str(refused("branch", repo, name="feature", delete=True))


def test_branch_create_and_delete(repo):
    feature = git(repo, "rev-parse", "feature")
    made = call("branch", repo, name="refs/heads/work", start="feature")
    assert made["applied"] == {"name": "work", "ref": "refs/heads/work", "sha": feature, "action": "create"}
    assert made["plan"]["commands"] == [["git", "-c", "core.hooksPath=/dev/null", "branch", "--no-track", "work",
                                         feature]]
    assert git(repo, "rev-parse", "work") == feature
    assert "exists already" in str(refused("branch", repo, name="work"))
    git(repo, "worktree", "add", "-q", repo.parent / "elsewhere", "work")
    assert "checked out in the worktree" in str(refused("branch", repo, name="work", delete=True))
    gone = call("branch", repo, name="done", delete=True)
    assert gone["applied"]["action"] == "delete" and git(repo, "branch", "--list", "done") == ""


@pytest.mark.parametrize(("op", "field"), [("fetch", "remote"), ("push", "branch"), ("merge", "branch"),
                                           ("branch", "name"), ("branch", "start")])
def test_option_like_values_are_refused_before_git_runs(repo, tmp_path, op, field):
    pwned = tmp_path / "pwned"
    args = {"name": "x", field: f"--upload-pack=touch {pwned}"}
    with pytest.raises(ContractViolation) as caught:  # the spec's input_schema: "pattern": "^[^-]"
        call(op, repo, **args)
    assert f"$.task.args.{field}" in str([str(p) for p in caught.value.problems])
    # and the plugin's own check, for a caller that skips the schema
    spec = importlib.util.spec_from_file_location("git_executor_direct",
                                                  bundled("plugins") / "git-executor" / "src" / "git_executor.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with pytest.raises(PluginError) as direct:
        getattr(module, op)(ctx(repo), {"task": {"id": "t1", "tool": "git", "args": args}})
    assert f"task.args.{field} '--upload-pack=touch {pwned}'" in str(direct.value)
    assert "may not start with '-'" in str(direct.value) and not direct.value.retryable
    assert not pwned.exists()


def test_missing_git_is_a_clear_error(repo, tmp_path):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    dispatcher = Dispatcher(WorkerPool(tmp_path, environ={"PATH": str(empty)}))
    try:
        plugin, _ = REGISTRY.resolve_topic("git-executor")
        with pytest.raises(PluginError) as caught:
            dispatcher.call(plugin, "commit", ctx(repo, whatif=True), {"task": {"id": "t1", "args": {"message": "m"}}})
    finally:
        dispatcher.pool.close()
    assert "git is not installed or not on PATH" in str(caught.value)
    assert caught.value.code is None and not caught.value.retryable and "Traceback" not in str(caught.value)
