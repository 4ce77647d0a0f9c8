"""`engine init`: idempotent, every file written whole, a half-made example repository repaired (never a
folder of the user's), example tasks given once."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from engine.bundled import bundled
from tests.conftest import engine

EXAMPLE_TASKS = ["001-inspect.jsonl", "002-normalize.jsonl"]
README = "# Example\n\nA small repository for the engine's example tasks.\n"
DEAD_PID = 4194305  # above the largest pid_max Linux allows: no process has it


def created(proc):
    return [line.split("created ", 1)[1] for line in proc.stdout.splitlines() if line.startswith("  created ")]


def repaired(proc):
    return [line.split("repaired ", 1)[1] for line in proc.stdout.splitlines() if line.startswith("  repaired ")]


def leftovers(ws):
    """Temporary files and folders an init may write on the way (none may stay)."""
    return sorted(str(p.relative_to(ws)) for p in ws.rglob("*")
                  if p.name.endswith(".tmp") or p.name.startswith(".example-repo."))


def snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None for p in sorted(folder.rglob("*"))}


def drains(ws):
    proc = engine("run", "--drain", cwd=ws, check=0)
    assert "2 file(s) done, 0 failed" in proc.stdout, proc.stdout
    return proc


def git(repo, *args):
    env = {**os.environ, "GIT_AUTHOR_NAME": "u", "GIT_AUTHOR_EMAIL": "u@x.invalid", "GIT_COMMITTER_NAME": "u",
           "GIT_COMMITTER_EMAIL": "u@x.invalid"}
    subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)


@pytest.mark.parametrize("example", [False, True])
def test_init_twice_creates_nothing_the_second_time(tmp_path, example):
    ws = tmp_path / "ws"
    flags = ["--example"] if example else []
    first = engine("init", *flags, ws, check=0)
    assert "engine.toml" in created(first) and "process/orchestration.bpmn" in created(first)
    assert ("example-repo/" in created(first)) is example
    before = snapshot(ws)
    second = engine("init", *flags, ws, check=0)
    assert created(second) == [] and repaired(second) == []
    assert "workspace ready" in second.stdout
    log = ".engine/logs/engine.jsonl"  # the one file that grows: each init logs what it did
    assert {k: v for k, v in snapshot(ws).items() if k != log} == {k: v for k, v in before.items() if k != log}
    assert leftovers(ws) == []


def test_init_after_a_drain_does_not_give_the_example_tasks_again(tmp_path):
    ws = tmp_path / "ws"
    engine("init", "--example", ws, check=0)
    drains(ws)
    proc = engine("init", "--example", ws, check=0)
    assert created(proc) == []
    assert sorted(p.name for p in (ws / ".tasks" / "inbox").iterdir()) == []
    proc = engine("run", "--drain", cwd=ws, check=0)
    assert "0 file(s) done" in proc.stdout


@pytest.mark.parametrize("folder", ["inbox", "processing", "failed", "quarantine"])
def test_an_example_task_file_in_any_queue_folder_is_not_written_again(tmp_path, folder):
    ws = tmp_path / "ws"
    engine("init", ws, check=0)
    (ws / ".tasks" / folder / EXAMPLE_TASKS[0]).write_text("given before\n")
    proc = engine("init", "--example", ws, check=0)
    assert ".tasks/inbox/" + EXAMPLE_TASKS[0] not in created(proc)
    assert ".tasks/inbox/" + EXAMPLE_TASKS[1] in created(proc)
    assert (ws / ".tasks" / folder / EXAMPLE_TASKS[0]).read_text() == "given before\n"


def half_made_empty(repo):
    repo.mkdir()


def half_made_without_git(repo):  # killed before `git init`, while the README was written
    repo.mkdir()
    (repo / "README.md").write_text(README[:12])


def half_made_without_commit(repo):  # killed between `git add` and `git commit`
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "README.md").write_text(README)
    (repo / "app.py").write_text("def greet(name: str) -> str:\n")
    git(repo, "add", "README.md", "app.py")


def half_made_git_not_a_repository(repo):  # killed inside `git init`
    (repo / ".git" / "objects").mkdir(parents=True)


@pytest.mark.parametrize("make", [half_made_empty, half_made_without_git, half_made_without_commit,
                                  half_made_git_not_a_repository])
def test_a_half_made_example_repo_is_repaired(tmp_path, make):
    ws = tmp_path / "ws"
    engine("init", ws, check=0)
    make(ws / "example-repo")
    proc = engine("init", "--example", ws, check=0)
    assert repaired(proc) == ["example-repo/"]
    assert "example-repo/" not in created(proc)
    assert leftovers(ws) == []
    assert (ws / "example-repo" / "README.md").read_text() == README
    drains(ws)
    again = engine("init", "--example", ws, check=0)
    assert created(again) == [] and repaired(again) == []


def foreign_plain_folder(repo):
    repo.mkdir()
    (repo / "notes.txt").write_text("mine\n")


def foreign_repo_without_commit(repo):
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "README.md").write_text("# My own project\n")


def foreign_example_files_changed(repo):  # the example's file names, but content nobody but the user wrote
    repo.mkdir()
    (repo / "app.py").write_text("print('my own app')\n")


def foreign_file(repo):
    repo.write_text("not a folder\n")


@pytest.mark.parametrize("make", [foreign_plain_folder, foreign_repo_without_commit,
                                  foreign_example_files_changed, foreign_file])
def test_a_foreign_folder_at_the_example_repo_is_refused_and_left_as_it_was(tmp_path, make):
    ws = tmp_path / "ws"
    ws.mkdir()
    repo = ws / "example-repo"
    make(repo)
    before = snapshot(ws)
    proc = engine("init", "--example", ws, check=5)
    assert str(repo) in proc.stderr and "move it away" in proc.stderr
    assert snapshot(ws) == before  # refused before anything was made
    proc = engine("init", "--example", "--json", ws, check=5)
    body = json.loads(proc.stdout)
    assert body["exit_code"] == 5 and str(repo) in body["error"]
    engine("init", ws, check=0)  # without --example the folder is none of init's business
    assert repo.exists()


def test_a_complete_repository_of_the_user_at_the_example_path_is_kept(tmp_path):
    ws = tmp_path / "ws"
    repo = ws / "example-repo"
    repo.mkdir(parents=True)
    git(repo, "init", "-q")
    (repo / "notes.txt").write_text("mine\n")
    git(repo, "add", "notes.txt")
    git(repo, "commit", "-q", "-m", "mine")
    before = snapshot(repo)
    proc = engine("init", "--example", ws, check=0)
    assert "example-repo/" not in created(proc) and repaired(proc) == []
    assert snapshot(repo) == before


def test_stale_temporary_example_repos_are_removed(tmp_path):
    ws = tmp_path / "ws"
    engine("init", "--example", ws, check=0)
    stale = [ws / f".example-repo.partial-{DEAD_PID}", ws / f".example-repo.removing-{DEAD_PID}"]
    for folder in stale:
        (folder / ".git").mkdir(parents=True)
        (folder / "README.md").write_text(README[:5])
    live = ws / f".example-repo.partial-{os.getpid()}"  # this test's process runs: perhaps another init's
    other = ws / ".example-repo.partial-notes"  # not a name init makes
    for folder in (live, other):
        folder.mkdir()
    proc = engine("init", "--example", ws, check=0)
    assert created(proc) == [] and repaired(proc) == []
    assert not any(folder.exists() for folder in stale)
    assert live.is_dir() and other.is_dir()


def test_a_model_the_user_changed_is_kept_and_a_missing_one_restored(tmp_path):
    ws = tmp_path / "ws"
    engine("init", "--example", ws, check=0)
    bpmn, dmn = ws / "process" / "orchestration.bpmn", ws / "process" / "decisions.dmn"
    cut = bpmn.read_bytes()[: len(bpmn.read_bytes()) // 2]  # like a copy killed half-way (or an edit)
    bpmn.write_bytes(cut)
    dmn.unlink()
    proc = engine("init", "--example", ws, check=0)
    assert created(proc) == ["process/decisions.dmn"]
    assert bpmn.read_bytes() == cut  # kept: init never overwrites what may be the user's edit
    assert dmn.read_bytes() == (bundled("process") / "decisions.dmn").read_bytes()
    proc = engine("validate", cwd=ws, check=3)  # and validate says what is wrong with it
    assert "orchestration.bpmn" in proc.stdout + proc.stderr


def test_init_json(tmp_path):
    ws = tmp_path / "ws"
    proc = engine("init", "--example", "--json", ws, check=0)
    body = json.loads(proc.stdout)
    assert set(body) == {"workspace", "created", "repaired", "example"}
    assert body["workspace"] == str(ws.resolve()) and body["example"] is True and body["repaired"] == []
    assert {"engine.toml", "example-repo/", ".tasks/inbox/001-inspect.jsonl", ".tasks/inbox/"} <= set(body["created"])
    (ws / "example-repo").rename(tmp_path / "away")
    (ws / "example-repo").mkdir()
    body = json.loads(engine("init", "--example", "--json", ws, check=0).stdout)
    assert body == {"workspace": str(ws.resolve()), "created": [], "repaired": ["example-repo/"], "example": True}
    body = json.loads(engine("init", "--json", ws, check=0).stdout)
    assert body == {"workspace": str(ws.resolve()), "created": [], "repaired": [], "example": False}


def start_init(ws):
    env = {k: v for k, v in os.environ.items() if k not in ("ENGINE_WORKSPACE", "ENGINE_PLUGIN_PATH")}
    return subprocess.Popen([sys.executable, "-m", "engine", "init", "--example", str(ws)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def wait_for(condition, proc, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.001)


# when to kill: as soon as the workspace folder appears, some time after, or while the repo is being built
KILL_POINTS = [("workspace", 0.0), ("workspace", 0.005), ("workspace", 0.02), ("workspace", 0.05),
               ("repo", 0.0), ("repo", 0.01), ("repo", 0.03)]


def test_an_init_killed_anywhere_is_completed_by_the_next(tmp_path):
    killed_while_building = 0
    for attempt, (point, delay) in enumerate(KILL_POINTS):
        ws = tmp_path / f"ws{attempt}"
        proc = start_init(ws)
        if point == "workspace":
            wait_for(ws.exists, proc)
        else:
            wait_for(lambda ws=ws: ws.is_dir() and any(p.name.startswith(".example-repo.partial-")
                                                        for p in ws.iterdir()), proc)
        time.sleep(delay)
        with contextlib.suppress(ProcessLookupError):  # it had finished
            os.killpg(proc.pid, signal.SIGKILL)  # the init and the git it runs, all at once
        proc.wait(timeout=30)
        if ws.is_dir() and any(p.name.startswith(".example-repo.partial-") for p in ws.iterdir()):
            killed_while_building += 1
            assert not (ws / "example-repo").exists()  # never a half-made repository in place
        engine("init", "--example", ws, check=0)
        assert leftovers(ws) == [], f"kill point {point} +{delay}s"
        for name in EXAMPLE_TASKS:
            assert (ws / ".tasks" / "inbox" / name).read_text().endswith("}\n")
        drains(ws)
    assert killed_while_building >= 1  # the kill did land inside the work at least once
