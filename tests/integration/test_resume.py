"""A task goes on from where it was: its worker killed in the middle of a step, or its run stopped while a
plugin call ran, the next run resumes it at that step. No completed plugin call runs again, the ledger shows
each step once, and it verifies."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import copy_plugin, engine

pytestmark = pytest.mark.usefixtures("check_state")  # every durable point must restore exactly


@pytest.fixture
def ws(example_ws, data_dir):
    for path in (example_ws / ".tasks" / "inbox").iterdir():
        path.unlink()
    copy_plugin("napper", example_ws)
    shutil.copy(data_dir / "process" / "three_naps.bpmn", example_ws / "process" / "orchestration.bpmn")
    engine("validate", cwd=example_ws, check=0)
    return example_ws


def put(ws, name, *tasks):
    (ws / ".tasks" / "inbox" / name).write_text("".join(json.dumps({"repo": "example-repo", **t}) + "\n"
                                                        for t in tasks))


def labels(ws):
    """The napper calls that completed, by run in the order the runs ran: {run id: [labels in order]}."""
    ledger = ws / ".engine" / "ledger" / "ledger.jsonl"
    order = []
    for raw in ledger.read_text().splitlines() if ledger.exists() else []:
        try:
            order.append(json.loads(raw)["envelope"]["run_id"])
        except ValueError:
            break  # a line being written
    order = list(dict.fromkeys(order))
    found = {}
    for run in order:
        path = ws / ".engine" / "runs" / run / "outputs.jsonl"
        rows = [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []
        found[run] = [row["output"]["label"] for row in rows if "output" in row]
    return {run: got for run, got in found.items() if got}


def records(ws, task_id):
    lines = (ws / ".engine" / "ledger" / "ledger.jsonl").read_text().splitlines()
    return [json.loads(x)["record"] for x in lines if json.loads(x)["record"].get("task_id") == task_id]


def start(ws, output=subprocess.DEVNULL):
    env = {k: v for k, v in os.environ.items() if k != "ENGINE_WORKSPACE"}
    return subprocess.Popen([sys.executable, "-m", "engine", "run", "--drain"], cwd=ws, env=env,
                            stdout=output, stderr=output, text=True)


def wait_for(condition, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError("timed out")


def kill_during_the_third_call(ws, task_id):
    """Run ``task_id`` (three naps, the third 2 s) and SIGKILL the run once its second call's durable
    point is written: the third call is under way."""
    put(ws, "t.jsonl", {"id": task_id, "tool": "x", "args": {"first": 0, "second": 0, "third": 2}})
    worker = start(ws)
    journal = ws / ".tasks" / "processing" / "t.jsonl.line-1.state"
    wait_for(lambda: journal.exists() and len(journal.read_text().splitlines()) == 2)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()


def test_a_task_whose_worker_is_killed_mid_step_resumes_at_that_step(ws):
    put(ws, "t.jsonl", {"id": "r1", "tool": "x", "args": {"first": 0, "second": 0, "third": 2}},
        {"id": "r2", "tool": "x", "args": {"first": 0, "second": 0, "third": 0}})
    worker = start(ws)
    processing = ws / ".tasks" / "processing"
    journal = processing / "t.jsonl.line-1.state"
    # the third call is running once the second one's durable point is written
    wait_for(lambda: journal.exists() and len(journal.read_text().splitlines()) == 2)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    assert (processing / "t.jsonl").exists()
    assert sum(labels(ws).values(), []) == ["a", "b"]

    engine("run", "--drain", cwd=ws, check=0)
    assert (ws / ".tasks" / "done" / "t.jsonl").exists()
    first_run, second_run = labels(ws).values()
    assert first_run == ["a", "b"]  # the calls completed before the kill ...
    assert second_run == ["c", "a", "b"]  # ... did not run again: r1 went on with c, then r2 ran
    steps = [r["step"] for r in records(ws, "r1") if r["kind"] == "step"]
    assert steps == ["StartEvent_1", "Task_a", "Task_b", "Gateway_long", "Task_c", "End_done"]  # each once
    runs = [r["status"] for r in records(ws, "r1") if r["kind"] == "run"]
    assert runs == ["started", "done"]
    report = json.loads((ws / ".tasks" / "done" / "t.jsonl.result.json").read_text())
    assert [t["status"] for t in report["tasks"]] == ["done", "done"] and report["tasks"][0]["steps"] == 6
    assert list(processing.glob("*.state")) == []
    engine("ledger", "verify", cwd=ws, check=0)


def test_a_run_stopped_during_a_call_resumes_the_task_at_that_call(ws):
    toml = ws / "engine.toml"
    toml.write_text(toml.read_text().replace("stop_grace_sec = 3.0", "stop_grace_sec = 0.2"))
    put(ws, "t.jsonl", {"id": "s1", "tool": "x", "args": {"first": 0, "second": 1.5, "third": 0}})
    worker = start(ws, subprocess.PIPE)
    wait_for(lambda: sum(labels(ws).values(), []) == ["a"])
    time.sleep(0.3)  # the second call is under way
    worker.send_signal(signal.SIGTERM)
    _, stderr = worker.communicate(timeout=60)
    assert worker.returncode == 9, stderr  # stopped with work left
    assert (ws / ".tasks" / "processing" / "t.jsonl").exists()  # given back, to go on at the next start
    assert "stopped with work left: 0 file(s) in inbox/, 1 in processing/" in stderr

    engine("run", "--drain", cwd=ws, check=0, timeout=120)
    first_run, second_run = labels(ws).values()
    assert first_run == ["a"] and second_run == ["b"]  # a did not run again; b, which never completed, did
    steps = [r["step"] for r in records(ws, "s1") if r["kind"] == "step"]
    assert steps == ["StartEvent_1", "Task_a", "Task_b", "Gateway_long", "End_short"]
    engine("ledger", "verify", cwd=ws, check=0)


def test_a_resumed_task_runs_on_the_models_it_started_with(ws, data_dir):
    kill_during_the_third_call(ws, "m1")
    # the modeler changes the process meanwhile: the third nap's label
    model = ws / "process" / "orchestration.bpmn"
    model.write_text(model.read_text().replace('name="label">c<', 'name="label">c-edited<'))
    engine("validate", cwd=ws, check=0)
    engine("run", "--drain", cwd=ws, check=0)
    assert list(labels(ws).values())[-1] == ["c"]  # the pinned model's step, not the edited one
    pinned = {r["models"]["bpmn"] for r in records(ws, "m1") if "models" in r}
    assert len(pinned) == 1
    assert (ws / ".engine" / "models" / f"bpmn-{pinned.pop()}" / "orchestration.bpmn").read_text().count(
        'name="label">c<') == 1


@pytest.fixture
def waiting_ws(ws, data_dir):
    shutil.copy(data_dir / "process" / "nap_wait_nap.bpmn", ws / "process" / "orchestration.bpmn")
    toml = ws / "engine.toml"
    toml.write_text(toml.read_text().replace("park_after_sec = 2.0", "park_after_sec = 1.0"))
    engine("validate", cwd=ws, check=0)
    return ws


def test_a_task_parked_on_a_timer_lets_the_same_worker_run_the_other_files(waiting_ws):
    ws = waiting_ws
    put(ws, "a-waits.jsonl", {"id": "w1", "tool": "x", "args": {"first": 0, "wait": 60, "third": 0}})
    put(ws, "b-quick.jsonl", {"id": "q1", "tool": "x", "args": {"first": 0, "wait": 0, "third": 0}})
    put(ws, "c-quick.jsonl", {"id": "q2", "tool": "x", "args": {"first": 0, "wait": 0, "third": 0}})
    worker = start(ws, subprocess.PIPE)
    done = ws / ".tasks" / "done"
    wait_for(lambda: (done / "b-quick.jsonl").exists() and (done / "c-quick.jsonl").exists())
    status = json.loads(engine("status", "--json", cwd=ws, check=0).stdout)
    assert [w["pid"] for w in status["workers"]] == [worker.pid]  # one worker did it all
    [parked] = status["parked"]
    assert parked["file"] == "a-waits.jsonl" and parked["task_id"] == "w1" and parked["line"] == 1
    text = engine("status", cwd=ws, check=0).stdout
    assert "parked" in text and "w1" in text
    worker.send_signal(signal.SIGTERM)
    worker.communicate(timeout=30)
    assert (ws / ".tasks" / "processing" / "a-waits.jsonl").exists()
    statuses = [(r.get("task_file"), r["status"]) for r in records_all(ws) if r["kind"] == "queue"]
    assert ("a-waits.jsonl", "parked") in statuses
    engine("ledger", "verify", cwd=ws, check=0)


def test_a_parked_task_goes_on_when_its_timer_is_due_and_a_drain_waits_for_it(waiting_ws):
    ws = waiting_ws
    put(ws, "a-waits.jsonl", {"id": "w2", "tool": "x", "args": {"first": 0, "wait": 2.5, "third": 0}})
    put(ws, "b-quick.jsonl", {"id": "q3", "tool": "x", "args": {"first": 0, "wait": 0, "third": 0}})
    started = time.monotonic()
    engine("run", "--drain", cwd=ws, check=0)
    assert time.monotonic() - started >= 2.5  # the drain waited for the parked task ...
    done = ws / ".tasks" / "done"
    assert (done / "a-waits.jsonl").exists() and (done / "b-quick.jsonl").exists()
    order = [(r.get("task_file"), r["status"]) for r in records_all(ws)
             if r["kind"] == "queue" or (r["kind"] == "run" and r["status"] != "started")]
    assert order.index(("a-waits.jsonl", "parked")) < order.index(("b-quick.jsonl", "done")) \
        < order.index(("a-waits.jsonl", "resumed"))  # ... running the other file meanwhile
    steps = [r["step"] for r in records(ws, "w2") if r["kind"] == "step"]
    assert steps == ["StartEvent_1", "Task_a", "Event_wait", "Gateway_long", "End_short"]  # each once
    assert [o for o in sum(labels(ws).values(), [])].count("a") == 2  # w2 and q3 each called it once
    report = json.loads((done / "a-waits.jsonl.result.json").read_text())
    assert [c.get("ended") for c in report["claims"]] == ["parked", None]
    engine("ledger", "verify", cwd=ws, check=0)


def records_all(ws):
    return [json.loads(x)["record"] for x in (ws / ".engine" / "ledger" / "ledger.jsonl").read_text().splitlines()]


def test_a_task_on_a_60_s_retry_back_off_is_parked_while_the_same_worker_runs_the_other_files(example_ws):
    """The shipped process: a plugin fails retryably, the retry policy backs off 60 s (the Back off timer):
    the task is parked and the one worker goes on with the inbox."""
    from tests.conftest import install_test_plugin

    ws = example_ws
    install_test_plugin(ws, "flaky")
    put(ws, "000-flaky.jsonl", {"id": "wobbly", "tool": "flaky", "args": {"fail_times": 1},
                                "retry": {"max_retries": 1, "backoff_sec": 60}})
    worker = start(ws, subprocess.PIPE)
    done = ws / ".tasks" / "done"
    wait_for(lambda: (done / "001-inspect.jsonl").exists() and (done / "002-normalize.jsonl").exists())
    status = json.loads(engine("status", "--json", cwd=ws, check=0).stdout)
    assert [w["pid"] for w in status["workers"]] == [worker.pid]
    [parked] = status["parked"]
    assert (parked["file"], parked["task_id"]) == ("000-flaky.jsonl", "wobbly")
    worker.send_signal(signal.SIGTERM)
    worker.communicate(timeout=30)
    steps = [r["step"] for r in records(ws, "wobbly") if r["kind"] == "step"]
    assert steps.count("Task_execute") == 1 and "Event_backoff" not in steps  # failed once, waiting to retry
    assert (ws / ".tasks" / "processing" / "000-flaky.jsonl").exists()


@pytest.mark.no_replay  # the plugin its pinned model needs is removed: nothing could run it again
def test_a_task_whose_models_no_longer_load_is_quarantined_with_the_reason_not_run_on_new_ones(ws):
    kill_during_the_third_call(ws, "g1")
    # the operator goes back to the shipped process and removes the plugin the old one needed
    engine("init", "--example", ws / "fresh", check=0)
    shutil.copy(ws / "fresh" / "process" / "orchestration.bpmn", ws / "process" / "orchestration.bpmn")
    shutil.rmtree(ws / "plugins" / "napper")
    engine("run", "--drain", cwd=ws, check=1)
    report = json.loads((ws / ".tasks" / "quarantine" / "t.jsonl.result.json").read_text())
    assert "cannot resume on the models it started with" in report["reason"]
    assert "napper.nap" in report["reason"]  # what the old model needs and this engine no longer has
    story = records(ws, "g1")
    assert story[-1]["status"] == "quarantine"
    assert [r["step"] for r in story if r["kind"] == "step"] == ["StartEvent_1", "Task_a", "Task_b"]  # kept
