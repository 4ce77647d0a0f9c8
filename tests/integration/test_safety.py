"""The safety engine on real git repositories: checkpoints, worktrees, circuit breakers, the journal."""

from datetime import UTC, datetime

import pytest

from engine.clock import FixedClock
from engine.safety import checkpoints, worktrees
from engine.safety.breaker import CLOSED, HALF_OPEN, OPEN, Breakers, Thresholds
from engine.safety.journal import Journal
from tests.conftest import git


@pytest.fixture
def repo(tmp_path):
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / ".gitignore").write_text("*.log\nbuild/\n")
    (path / "a.txt").write_text("a\n")
    (path / "b.txt").write_text("b\n")
    (path / "old.log").write_text("ignored, there before\n")
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "first")
    return path


def state(repo):
    """What a user sees: status, every file's content (untracked and ignored too), HEAD, the branch."""
    return (git(repo, "status", "--porcelain", "--ignored"), checkpoints.fingerprint(repo),
            git(repo, "rev-parse", "HEAD"), git(repo, "symbolic-ref", "HEAD"))


def test_taking_a_checkpoint_changes_nothing_the_user_sees(repo):
    (repo / "a.txt").write_text("edited\n")
    (repo / "new.txt").write_text("untracked\n")
    index = (repo / ".git" / "index").read_bytes()
    before = state(repo)
    taken = checkpoints.take(repo, "run/t1/step-1")
    assert state(repo) == before and (repo / ".git" / "index").read_bytes() == index
    assert git(repo, "rev-parse", taken.ref).strip() == taken.sha
    assert "engine/" not in git(repo, "branch", "--list")  # a private ref, never a branch


def test_rollback_restores_everything_a_tool_did(repo):
    (repo / "a.txt").write_text("user's edit\n")
    (repo / "staged.txt").write_text("staged\n")
    git(repo, "add", "staged.txt")
    (repo / "untracked.txt").write_text("mine\n")
    before = state(repo)
    taken = checkpoints.take(repo, "run/t1/step-1")
    # what a misbehaving tool might do: edit, delete, create, stage, commit, leave ignored litter
    (repo / "a.txt").write_text("tool\n")
    (repo / "b.txt").unlink()
    (repo / "untracked.txt").write_text("overwritten\n")
    (repo / "dir").mkdir()
    (repo / "dir" / "new.py").write_text("x = 1\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "tool commit")
    (repo / "build").mkdir()
    (repo / "build" / "out.o").write_text("binary\n")
    (repo / "new.log").write_text("log\n")
    (repo / "staged.txt").write_text("changed after staging\n")
    assert checkpoints.changed_lines(repo, taken.sha) > 0
    checkpoints.restore(repo, taken.ref)
    assert state(repo) == before
    assert checkpoints.changed_lines(repo, taken.sha) == 0


def test_restore_refuses_what_is_not_a_checkpoint(repo):
    with pytest.raises(checkpoints.CheckpointError, match="cannot restore"):
        checkpoints.restore(repo, "refs/engine/checkpoints/nope")
    with pytest.raises(checkpoints.CheckpointError, match="not a git repository"):
        checkpoints.take(repo.parent, "x")


def test_a_worktree_per_task_leaves_the_users_checkout_alone(repo, tmp_path):
    (repo / "a.txt").write_text("user's uncommitted edit\n")
    before = state(repo)
    root = tmp_path / "ws" / ".engine" / "worktrees"
    made = worktrees.create(repo, root, "task-1", run_id="run-1")
    assert made.path == root / "task-1" and made.branch == "engine/task-1"
    assert (made.path / "a.txt").read_text() == "a\n"  # from HEAD, not from the user's working tree
    (made.path / "c.txt").write_text("the task's change\n")
    git(made.path, "add", "c.txt")
    git(made.path, "commit", "-q", "-m", "task change")
    assert state(repo) == before  # the user's files, index, HEAD and branch did not move
    assert [w.task_id for w in worktrees.listed(repo)] == ["task-1"]
    worktrees.remove(made.path)
    assert not made.path.exists() and "engine/task-1" in git(repo, "branch", "--list")  # the branch stays
    again = worktrees.create(repo, root, "task-1", run_id="run-2")  # a re-run starts afresh from HEAD
    assert not (again.path / "c.txt").exists()
    assert worktrees.branch_for("a..b.lock") == "engine/a_b_lock"


def test_a_breaker_opens_cools_down_probes_and_survives_a_restart(tmp_path):
    clock = FixedClock(start=datetime(2026, 1, 1, tzinfo=UTC))
    path = tmp_path / "breakers.json"
    breakers = Breakers(path, clock, Thresholds(failures=3, window_sec=600, cooldown_sec=300))
    for _ in range(2):
        breakers.record("flaky", False, "boom")
    assert breakers.allows("flaky") == (True, None)
    breakers.record("flaky", False, "boom")
    allowed, why = breakers.allows("flaky")
    assert not allowed and "open" in why and "3 failures" in why
    restarted = Breakers(path, clock, Thresholds(failures=3, window_sec=600, cooldown_sec=300))
    assert restarted.state("flaky")["state"] == OPEN
    clock.advance(301)
    assert restarted.state("flaky")["state"] == HALF_OPEN and restarted.allows("flaky")[0]
    restarted.record("flaky", False, "still broken")  # a failed probe opens it for another cool-down
    assert restarted.state("flaky")["state"] == OPEN
    clock.advance(301)
    restarted.record("flaky", True)
    assert restarted.state("flaky") == {"state": CLOSED, "failures": []}


def test_old_failures_leave_the_window(tmp_path):
    clock = FixedClock(start=datetime(2026, 1, 1, tzinfo=UTC))
    breakers = Breakers(tmp_path / "b.json", clock, Thresholds(failures=2, window_sec=60, cooldown_sec=30))
    breakers.record("p", False, "x")
    clock.advance(120)
    breakers.record("p", False, "x")
    assert breakers.state("p")["state"] == CLOSED and len(breakers.state("p")["failures"]) == 1


def test_the_journal_keeps_what_was_in_flight_until_it_is_settled(tmp_path):
    journal = Journal(tmp_path / "applies")
    journal.begin("run/t1/s-1", {"task_id": "t1"})
    journal.begin("run/t2/s-1", {"task_id": "t2"})
    journal.end("run/t2/s-1")
    pending = journal.pending()
    assert [e.body["task_id"] for e in pending] == ["t1"]
    settled = journal.settle(pending[0], "rolled_back")
    assert journal.pending() == [] and '"settled": "rolled_back"' in settled.read_text()


def _task_commit(repo, root, task_id, name="c.txt"):
    made = worktrees.create(repo, root, task_id, run_id="run-1")
    (made.path / name).write_text(f"{task_id}\n")
    git(made.path, "add", name)
    git(made.path, "commit", "-q", "-m", f"task {task_id}")
    return made


def test_merge_fast_forwards_a_clean_checkout_and_refuses_a_dirty_one(repo, tmp_path):
    root = tmp_path / "ws" / ".engine" / "worktrees"
    made = _task_commit(repo, root, "m1")
    assert made.base_branch == "main"
    assert worktrees.merge_plan(made.path)["how"] == "fast-forward"
    (repo / "untracked.txt").write_text("the user's\n")
    with pytest.raises(worktrees.WorktreeError, match="main is checked out in .* with uncommitted changes"):
        worktrees.merge(made.path, when="2026-01-01T00:00:00+00:00")
    assert not (repo / "c.txt").exists()  # nothing of the user's moved
    (repo / "untracked.txt").unlink()
    done = worktrees.merge(made.path, when="2026-01-01T00:00:00+00:00")
    assert done["how"] == "fast-forward" and (repo / "c.txt").read_text() == "m1\n"
    assert git(repo, "rev-parse", "main").strip() == done["sha"] and git(repo, "status", "--porcelain") == ""


def test_merge_into_a_branch_not_checked_out_moves_only_its_ref(repo, tmp_path):
    root = tmp_path / "ws" / ".engine" / "worktrees"
    first = _task_commit(repo, root, "m2")
    second = _task_commit(repo, root, "m3", name="d.txt")  # both from main's HEAD: the second needs a merge
    git(repo, "checkout", "-q", "-b", "work")  # the user works on another branch now, with an edit
    (repo / "a.txt").write_text("user's uncommitted edit\n")
    before = state(repo)
    assert worktrees.merge(first.path, when="2026-01-01T00:00:00+00:00")["how"] == "fast-forward"
    done = worktrees.merge(second.path, when="2026-01-01T00:00:00+00:00")
    assert done["how"] == "merge" and git(repo, "rev-parse", "main").strip() == done["sha"]
    assert git(repo, "show", "main:c.txt") == "m2\n" and git(repo, "show", "main:d.txt") == "m3\n"
    assert state(repo) == before  # the user's checkout, branch and edit did not move
    assert [w.task_id for w in worktrees.listed(repo)] == ["m2", "m3"]  # no temporary worktree left


def test_a_conflicting_merge_changes_nothing(repo, tmp_path):
    root = tmp_path / "ws" / ".engine" / "worktrees"
    made = _task_commit(repo, root, "m4", name="a.txt")
    (repo / "a.txt").write_text("the user's committed version\n")
    git(repo, "commit", "-q", "-am", "user")
    before = state(repo)
    with pytest.raises(worktrees.WorktreeError, match="conflicts"):
        worktrees.merge(made.path, when="2026-01-01T00:00:00+00:00")
    assert state(repo) == before
