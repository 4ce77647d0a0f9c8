"""What an operator sees while `engine run` works: a live panel on a terminal, one line per finished task
and file elsewhere, a JSON event stream with --json, and each live worker's run in `engine status`."""

import json
import os
import pty
import re
import select
import shutil
import subprocess
import sys
import time

import pytest

from tests.conftest import copy_plugin, engine
from tests.integration.test_cli_json import assert_document, assert_events

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


@pytest.fixture
def ws(example_ws, data_dir):
    """The example workspace with the nap, wait (a timer), nap process and no example tasks."""
    for path in (example_ws / ".tasks" / "inbox").iterdir():
        path.unlink()
    copy_plugin("napper", example_ws)
    shutil.copy(data_dir / "process" / "nap_wait_nap.bpmn", example_ws / "process" / "orchestration.bpmn")
    engine("validate", cwd=example_ws, check=0)
    return example_ws


def put(ws, name, *tasks):
    (ws / ".tasks" / "inbox" / name).write_text("".join(json.dumps({"repo": "example-repo", "tool": "x", **t}) + "\n"
                                                        for t in tasks))


def naps(first, wait, third):
    return {"args": {"first": first, "wait": wait, "third": third}}


def environment(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("ENGINE_WORKSPACE", "NO_COLOR")}
    env.update(extra)
    return env


def test_on_a_terminal_a_live_panel_shows_progress_before_the_first_file_finishes(ws):
    put(ws, "a-slow.jsonl", {"id": "slow", **naps(2.5, 1, 0)})
    put(ws, "b-quick.jsonl", {"id": "quick-1", **naps(0, 0, 0)}, {"id": "quick-2", **naps(0, 0, 0)})
    leader, follower = pty.openpty()
    worker = subprocess.Popen([sys.executable, "-m", "engine", "run", "--drain"], cwd=ws, stdin=follower,
                              stdout=follower, stderr=follower, close_fds=True,
                              env=environment(TERM="xterm-256color", COLUMNS="160", LINES="40"))
    os.close(follower)
    seen, chunks = "", []  # what the terminal showed, and when (seconds since start) each piece arrived
    began = time.monotonic()
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        if not ready:
            break
        try:
            data = os.read(leader, 65536)
        except OSError:  # the run ended and closed its side
            break
        if not data:
            break
        chunks.append((time.monotonic() - began, ANSI.sub("", data.decode("utf-8", "replace"))))
        seen += chunks[-1][1]
    assert worker.wait(timeout=60) == 0, seen
    os.close(leader)
    finished = seen.index("done       a-slow.jsonl")
    before = seen[:finished]
    # the panel, redrawn while the first task ran: what runs now, its step, the timer it waits on
    assert "now" in before and "a-slow.jsonl line 1, task slow (x)" in before, before
    assert "step First nap" in before, before
    assert "waiting" in before and "until" in before
    assert "files" in before and "0/2" in before and "tasks" in before and "0/3" in before
    elapsed = set(re.findall(r"(\d+:\d\d) elapsed", before))
    assert len(elapsed) >= 2, elapsed  # the clock moved on the screen while nothing had finished yet
    assert "run run-" in seen and "2 file(s) done, 0 failed, 0 quarantined; tasks: 3 done" in seen


def test_without_a_terminal_each_finished_task_is_one_line_printed_at_once(ws):
    put(ws, "a-quick.jsonl", {"id": "quick-1", **naps(0, 0, 0)}, {"id": "quick-2", **naps(0, 0, 0)})
    put(ws, "b-slow.jsonl", {"id": "slow", **naps(3, 0, 0)})
    worker = subprocess.Popen([sys.executable, "-m", "engine", "run", "--drain"], cwd=ws, env=environment(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = worker.stdout.readline()
    running = worker.poll() is None  # the line came while the slow file still ran: flushed, not buffered
    rest, _ = worker.communicate(timeout=60)
    assert running and worker.returncode == 0
    lines = [first, *rest.splitlines(keepends=True)]
    assert re.fullmatch(r"task done +a-quick\.jsonl:1 quick-1 \(\d+ steps, \d+ ms\)\n", first), first
    kinds = [line.split()[0] if not line.startswith("task ") else f"task:{line.split()[2]}" for line in lines]
    assert kinds == ["task:a-quick.jsonl:1", "task:a-quick.jsonl:2", "done", "task:b-slow.jsonl:1", "done", "run"]


def test_a_timer_wait_is_said_with_its_wake_time_and_a_failed_task_with_its_reason(ws):
    put(ws, "a-waits.jsonl", {"id": "w", **naps(0, 1, 0)})
    put(ws, "b-bad.jsonl", {"id": "bad", **naps(0, "soon", 0)})
    proc = engine("run", "--drain", cwd=ws, check=1)
    lines = proc.stdout.splitlines()
    [waiting] = [line for line in lines if line.startswith("waiting")]
    assert re.fullmatch(r"waiting +a-waits\.jsonl:1 w on timer '.+' until \d\d:\d\d:\d\d", waiting), waiting
    [bad] = [line for line in lines if line.startswith("task failed")]
    assert "b-bad.jsonl:1 bad" in bad and "timer of Event_wait 'Wait'" in bad and "no valid ISO 8601 duration" in bad


def test_run_json_streams_one_event_per_line_ending_with_run_finished(ws):
    put(ws, "a-waits.jsonl", {"id": "w", **naps(0, 1, 0)})
    put(ws, "b-bad.jsonl", {"id": "bad", **naps(0, "soon", 0)})
    (ws / ".tasks" / "inbox" / "notes.txt").write_text("not a task file")
    proc = engine("run", "--drain", "--json", cwd=ws, check=1)
    events = assert_events(proc.stdout)  # every line is one JSON object, as contracts/cli.v1.json says
    kinds = [e["event"] for e in events]
    assert kinds[0] == "warning" and "notes.txt" in events[0]["message"]
    assert kinds[1] == "run_started" and events[1]["files_waiting"] == 2 and events[1]["tasks_waiting"] == 2
    assert kinds[-1] == "run_finished" and events[-1]["exit_code"] == proc.returncode == 1
    assert events[-1]["files"] == {"done": 1, "failed": 1, "quarantine": 0, "parked": 0}
    assert events[-1]["tasks"] == {"done": 1, "failed": 1, "quarantine": 0}
    by_task = {}
    for e in events:
        if "task_id" in e:
            by_task.setdefault(e["task_id"], []).append(e["event"])
    assert by_task["w"][0] == "task_started" and by_task["w"][-1] == "task_finished"
    assert "waiting" in by_task["w"] and by_task["w"].count("step") >= 5
    [failed] = [e for e in events if e["event"] == "task_finished" and e["task_id"] == "bad"]
    assert failed["status"] == "failed" and "no valid ISO 8601 duration" in failed["reason"]
    [file_failed] = [e for e in events if e["event"] == "file_finished" and e["file"] == "b-bad.jsonl"]
    assert file_failed["status"] == "failed" and "line 1 (task bad, tool 'x')" in file_failed["reason"]
    assert proc.stderr == ""  # nothing but the stream on stdout, and no warning text on stderr either


def test_status_shows_each_live_workers_run_with_its_counts_and_current_task(ws):
    put(ws, "a-quick.jsonl", {"id": "quick", **naps(0, 0, 0)})
    put(ws, "b-slow.jsonl", {"id": "slow", **naps(30, 0, 0)})
    worker = subprocess.Popen([sys.executable, "-m", "engine", "run", "--drain"], cwd=ws, env=environment(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, body = time.monotonic() + 60, {}
        while time.monotonic() < deadline:
            body = json.loads(engine("status", "--json", cwd=ws, check=0).stdout)
            current = body["workers"][0].get("current") if body["workers"] else None
            if current and current.get("task_id") == "slow" and current.get("step"):
                break
            time.sleep(0.1)
        assert_document(json.dumps(body), "status")
        [w] = body["workers"]
        assert w["pid"] == worker.pid and w["run_id"].startswith("run-") and w["started"]
        assert w["duration_sec"] >= 0 and w["files"]["done"] == 1 and w["tasks"]["done"] == 1
        assert w["current"]["file"] == "b-slow.jsonl" and w["current"]["line"] == 1 and w["current"]["tool"] == "x"
        text = engine("status", cwd=ws, check=0).stdout
        assert f"run {w['run_id']} since " in text and "files 1 done, 0 failed" in text
        assert "now b-slow.jsonl line 1, task slow (x), step " in text
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    assert not list((ws / ".engine" / "state").glob("worker-*.json"))  # a clean stop leaves no heartbeat
