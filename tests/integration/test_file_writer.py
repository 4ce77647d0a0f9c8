"""file-writer against a real repository, through the real loader, a worker process and dispatch: the plan
is exactly what the apply does, and no path leads it out of the worktree."""

from datetime import UTC, datetime

import pytest
import structlog

from engine.bundled import bundled
from engine.errors import ContractViolation, PluginError
from engine.plugins.dispatch import dispatch
from engine.plugins.loader import Registry
from engine.sdk import Context
from tests.conftest import git
from tests.conftest import tree_snapshot as snapshot

PLUGIN = Registry.discover([bundled("plugins")]).get("file-writer")






@pytest.fixture
def repo(tmp_path):
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    for name, text in (("a.txt", "a\n"), ("same.txt", "same\n"), ("gone.txt", "x\n")):
        (path / name).write_text(text)
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "first")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("keep\n")
    (path / "out").symlink_to(outside)
    (path / "link.txt").symlink_to(outside / "secret.txt")
    return path


def write(workdir, files, *, whatif=False):
    ctx = Context("run-1", "t1", datetime(2026, 1, 1, tzinfo=UTC), 7, whatif, workdir, structlog.get_logger())
    return dispatch(PLUGIN, "write", ctx, {"task": {"id": "t1", "tool": "write", "args": {"files": files}}})


FILES = [{"path": "a.txt", "content": "A\n"}, {"path": "same.txt", "content": "same\n"},
         {"path": "sub/new.txt", "content": "n\u00e9w\n"}, {"path": "gone.txt", "delete": True},
         {"path": "never-there.txt", "delete": True}]
CHANGES = [{"path": "a.txt", "action": "modify"}, {"path": "sub/new.txt", "action": "create"},
           {"path": "gone.txt", "action": "delete"}]


def test_the_plan_is_what_the_apply_does_and_whatif_changes_nothing(repo):
    before = snapshot(repo.parent)
    planned = write(repo, FILES, whatif=True)
    assert snapshot(repo.parent) == before and set(planned) == {"plan"}
    assert planned["plan"]["changes"] == CHANGES and planned["plan"]["commands"] == []
    assert planned["plan"]["summary"] == f"would create 1, modify 1 and delete 1 file(s) in {repo.resolve()}"
    done = write(repo, FILES)
    assert done["plan"] == planned["plan"] and done["applied"]["changes"] == CHANGES
    assert (repo / "a.txt").read_text() == "A\n"
    assert (repo / "sub" / "new.txt").read_text(encoding="utf-8") == "n\u00e9w\n"
    assert git(repo, "status", "--porcelain", "--untracked-files=all").splitlines() == [
        " M a.txt", " D gone.txt", "?? link.txt", "?? out", "?? sub/new.txt"]
    assert write(repo, FILES)["applied"]["changes"] == []  # a second apply has nothing left to do


@pytest.mark.parametrize(("path", "why"), [
    ("{outside}/evil.txt", "an absolute path"),
    ("../evil.txt", "not a file inside the repository"),
    ("sub/../../evil.txt", "not a file inside the repository"),
    ("out/evil.txt", "leads through a symlink to"),
    ("out/secret.txt", "leads through a symlink to"),
    ("link.txt", "it is a symlink"),
    (".git/config", "files under .git are git's"),
    ("sub/.git/hooks/pre-commit", "files under .git are git's"),
    ("gitlink/config", "leads through a symlink into .git"),
    ("a.txt/inner.txt", "a.txt on its way is a file"),
    ("sub", "it is a folder"),
])
def test_paths_leaving_the_worktree_are_refused_and_nothing_is_written(repo, path, why):
    (repo / "sub").mkdir()
    (repo / "gitlink").symlink_to(repo / ".git")
    path = path.format(outside=repo.parent / "outside")
    before = snapshot(repo.parent)
    for whatif in (True, False):
        with pytest.raises(PluginError) as caught:
            write(repo, [{"path": "fine.txt", "content": "ok\n"}, {"path": path, "content": "pwned\n"}], whatif=whatif)
        assert f"file-writer refuses {path!r}: " in str(caught.value) and why in str(caught.value)
        assert not caught.value.retryable
    assert snapshot(repo.parent) == before  # not even the good file of the call


def test_deleting_a_symlink_removes_the_link_not_its_target(repo):
    assert write(repo, [{"path": "link.txt", "delete": True}])["applied"]["changes"] == [
        {"path": "link.txt", "action": "delete"}]
    assert not (repo / "link.txt").is_symlink() and (repo.parent / "outside" / "secret.txt").read_text() == "keep\n"
    with pytest.raises(PluginError, match="leads through a symlink"):
        write(repo, [{"path": "out/secret.txt", "delete": True}])
    assert (repo.parent / "outside" / "secret.txt").exists()


def test_a_path_named_twice_and_a_malformed_entry_are_refused(repo):
    with pytest.raises(PluginError, match="sub/x.txt is named twice"):
        write(repo, [{"path": "sub/x.txt", "content": "1"}, {"path": "./sub/x.txt", "content": "2"}])
    with pytest.raises(ContractViolation):
        write(repo, [{"path": "x.txt", "content": "1", "delete": True}])
    assert not (repo / "sub").exists()
