"""BPMN as modelers draw it, run for real: parallel branches that overlap in their workers, timers on
plugin calls (interrupting ones stop the call), multi-instance and call activities. Each model is a
Modeler-clean file of tests/data/process/ (the validator's DI and XSD checks run on it first)."""

import json
import shutil
import time

import pytest

from tests.conftest import copy_plugin, engine

pytestmark = pytest.mark.usefixtures("check_state")  # every durable point must restore exactly


@pytest.fixture
def ws(example_ws):
    for path in (example_ws / ".tasks" / "inbox").iterdir():
        path.unlink()
    copy_plugin("napper", example_ws)
    return example_ws


def run_model(ws, data_dir, model, task, expect_exit=0, *extra_models):
    """Install ``model`` as the workspace's process (and ``extra_models`` beside it), run one task; returns
    (the folder its file ended in, its report, its ledger step records, seconds the run took)."""
    shutil.copy(data_dir / "process" / model, ws / "process" / "orchestration.bpmn")
    for other in extra_models:
        shutil.copy(data_dir / "process" / other, ws / "process" / other)
    engine("validate", cwd=ws, check=0)
    (ws / ".tasks" / "inbox" / "t.jsonl").write_text(json.dumps({"repo": "example-repo", **task}) + "\n")
    started = time.monotonic()
    engine("run", "--drain", cwd=ws, check=expect_exit)
    took = time.monotonic() - started
    for folder in ("done", "failed", "quarantine"):
        if (ws / ".tasks" / folder / "t.jsonl").exists():
            suffix = "error" if folder == "failed" else "result"
            report = json.loads((ws / ".tasks" / folder / f"t.jsonl.{suffix}.json").read_text())
            records = [json.loads(x)["record"] for x in
                       (ws / ".engine" / "ledger" / "ledger.jsonl").read_text().splitlines()]
            steps = [r for r in records if r.get("kind") == "step" and r.get("task_id") == task["id"]]
            return folder, report, steps, took
    raise AssertionError("the task file is in no end folder")


def outputs(ws, plugin="napper"):
    return [json.loads(x) for p in (ws / ".engine" / "runs").glob("*/outputs.jsonl")
            for x in p.read_text().splitlines() if json.loads(x)["plugin"] == plugin and "output" in json.loads(x)]


def test_parallel_branches_run_at_the_same_time_and_the_join_waits_for_both(ws, data_dir):
    folder, report, steps, took = run_model(ws, data_dir, "parallel_naps.bpmn", {"id": "p1", "tool": "x"})
    assert folder == "done" and report["tasks"][0]["end_event"] == "End_done"
    naps = {o["output"]["label"]: o["output"] for o in outputs(ws)}
    assert set(naps) == {"a", "b", "x", "y"}  # the inclusive gateway took x and y (both true), not its default z
    a, b = naps["a"], naps["b"]
    assert a["started"] < b["ended"] and b["started"] < a["ended"]  # the two 1 s calls overlapped
    assert a["pid"] != b["pid"]  # each in a worker of its own (napper declares concurrency 2)
    x, y = naps["x"], naps["y"]
    assert x["started"] < y["ended"] and y["started"] < x["ended"]  # so did the inclusive gateway's branches
    assert min(x["started"], y["started"]) >= max(a["ended"], b["ended"])  # the join waited for both
    ids = [s["step"] for s in steps]
    assert ids[0] == "StartEvent_1" and ids[-1] == "End_done" and "Task_z" not in ids
    assert sorted(ids[2:4]) == ["Task_a", "Task_b"]  # one ordered chain: each step recorded once, as it ended
    engine("ledger", "verify", cwd=ws, check=0)


def test_an_interrupting_timer_stops_the_running_plugin_call_and_takes_its_path(ws, data_dir):
    """The reminder (non-interrupting, R2/PT0.4S) fires twice while the watched call goes on; the time limit
    (interrupting, a FEEL duration) stops the 60 s call after 1 s: its worker is stopped, the timer's end
    is reached, and the step is recorded cancelled by the boundary event."""
    task = {"id": "t1", "tool": "x", "args": {"watched": 1.5, "slow": 60, "limit": 1}}
    folder, report, steps, took = run_model(ws, data_dir, "timer_naps.bpmn", task, 1)  # 1: quarantined
    assert took < 20  # not the 60 s of the call
    assert folder == "quarantine" and report["tasks"][0]["end_event"] == "End_timeout"
    labels = [o["output"]["label"] for o in outputs(ws)]
    assert labels.count("reminder") == 2 and "watched" in labels and "slow" not in labels
    [slow] = [s for s in steps if s["step"] == "Task_slow"]
    assert slow["status"] == "cancelled" and slow["reason"] == "cancelled by boundaryEvent Boundary_limit 'Too slow'"
    ids = [s["step"] for s in steps]
    assert ids.count("End_reminded") == 2 and "End_timeout" in ids and "End_done" not in ids
    assert ids.index("Event_not_before") < ids.index("Task_watched")  # a date in the past: no wait
    engine("ledger", "verify", cwd=ws, check=0)


def test_a_call_that_ends_before_its_time_limit_takes_the_normal_path(ws, data_dir):
    task = {"id": "t2", "tool": "x", "args": {"watched": 0.1, "slow": 0.2, "limit": 30}}
    folder, report, steps, took = run_model(ws, data_dir, "timer_naps.bpmn", task, 0)
    assert folder == "done" and report["tasks"][0]["end_event"] == "End_done"
    ids = [s["step"] for s in steps]
    assert "End_reminded" not in ids and "Boundary_limit" not in ids  # neither timer fired
    assert [s["status"] for s in steps if s["step"] == "Task_slow"] == ["completed"]


def test_multi_instance_over_a_collection_in_parallel_then_by_cardinality_in_sequence(ws, data_dir):
    """`camunda:collection="${task.files}"` with an element variable: one call per file, at the same time,
    their outputs collected in file order though the first file's call ends last; then a sequential
    multi-instance by loopCardinality whose completion condition stops it after two instances."""
    files = ["a.txt", "b.txt", "c.txt"]
    folder, report, steps, took = run_model(ws, data_dir, "multi_instance.bpmn",
                                            {"id": "m1", "tool": "x", "files": files})
    assert folder == "done" and report["tasks"][0]["end_event"] == "End_ok"  # the gateway saw the order
    naps = [o["output"] for o in outputs(ws)]
    per_file = {n["label"]: n for n in naps if n["label"] in files}
    assert set(per_file) == set(files)
    assert per_file["a.txt"]["ended"] > per_file["c.txt"]["ended"]  # finished last, collected first
    assert per_file["a.txt"]["started"] < per_file["b.txt"]["ended"]  # the instances overlapped
    first, second, third = sorted(per_file.values(), key=lambda n: n["started"])
    assert third["started"] >= min(first["ended"], second["ended"])  # never three at once: concurrency 2
    assert [n["label"] for n in naps if n["label"].startswith("turn")] == ["turn 0", "turn 1"]
    each = [s for s in steps if s["step"] == "Task_each" and "instance" in s]
    assert sorted(s["instance"] for s in each) == [0, 1, 2]
    assert [s["instance"] for s in steps if s["step"] == "Task_seq" and "instance" in s] == [0, 1]
    engine("ledger", "verify", cwd=ws, check=0)


def test_call_activities_to_another_file_and_to_a_second_process_of_the_same_file(ws, data_dir):
    """camunda:in passes what it names (a source, an expression, all), camunda:out brings back what it
    names; the called process's other variables stay there. Its plugin step is in the task's ledger."""
    folder, report, steps, took = run_model(ws, data_dir, "call_main.bpmn", {"id": "c1", "tool": "x"}, 0,
                                            "called_nap.bpmn")
    assert folder == "done" and report["tasks"][0]["end_event"] == "End_ok"  # the gateway checked the mappings
    assert [o["output"]["label"] for o in outputs(ws)] == ["c1-nap"]
    ids = [s["step"] for s in steps]
    assert ids.index("Task_nap") < ids.index("Script_label") < ids.index("End_ok")


def test_validate_names_a_call_activity_whose_process_is_nowhere(ws, data_dir):
    shutil.copy(data_dir / "process" / "call_main.bpmn", ws / "process" / "orchestration.bpmn")
    proc = engine("validate", cwd=ws, check=3)
    bpmn = ws / "process" / "orchestration.bpmn"
    line = next(i for i, t in enumerate(bpmn.read_text().splitlines(), 1) if 'id="Call_nap"' in t)
    assert (f"{bpmn}:{line} callActivity Call_nap 'Nap, in called_nap.bpmn': calls process 'called_nap', which "
            f"no .bpmn file of {bpmn.parent} defines. Did you mean 'call_main'?") in proc.stdout


def test_timers_read_the_kernels_clock_not_the_wall_clock(tmp_path, data_dir):
    """A timeDate months ahead of the wall clock but behind the injected clock fires at once."""
    from datetime import UTC, datetime

    from engine.clock import FixedClock
    from engine.testing import KernelHarness

    harness = KernelHarness(tmp_path / "ws", clock=FixedClock(datetime(2027, 6, 1, tzinfo=UTC)))
    harness.add_plugin(data_dir / "plugins" / "napper")
    model = (data_dir / "process" / "timer_naps.bpmn").read_text()
    assert "2020-01-01T00:00:00Z" in model
    (harness.root / "process" / "orchestration.bpmn").write_text(model.replace("2020-01-01T00:00:00Z",
                                                                               "2027-01-01T00:00:00Z"))
    for path in (harness.ws.tasks / "inbox").iterdir():
        path.unlink()
    harness.put("t.jsonl", {"id": "k1", "tool": "x", "repo": "example-repo",
                            "args": {"watched": 0.1, "slow": 0.1, "limit": 30}})
    deadline = time.monotonic() + 30
    harness.run(stop=lambda: time.monotonic() > deadline)  # on the wall clock it would wait until 2027
    assert harness.files("done") == ["t.jsonl"]
    assert [r["step"] for r in harness.records(task_id="k1", kind="step")][:2] == ["StartEvent_1", "Event_not_before"]


def test_a_multi_instance_collection_that_is_no_list_fails_the_task_naming_the_activity(ws, data_dir):
    model = (data_dir / "process" / "multi_instance.bpmn").read_text()
    assert 'camunda:collection="${task.files}"' in model
    (ws / "process" / "orchestration.bpmn").write_text(
        model.replace('camunda:collection="${task.files}"', 'camunda:collection="${task.args.items}"'))
    engine("validate", cwd=ws, check=0)
    (ws / ".tasks" / "inbox" / "t.jsonl").write_text(json.dumps({"id": "n1", "tool": "x", "repo": "example-repo"}))
    engine("run", "--drain", cwd=ws, check=1)
    report = json.loads((ws / ".tasks" / "failed" / "t.jsonl.error.json").read_text())
    reason = ("camunda:collection '${task.args.items}' of multi-instance Task_each 'Nap per file' is null: it "
              "must give a list")
    assert report["reason"] == f"line 1 (task n1, tool 'x'): step failed: {reason}"
    records = [json.loads(x)["record"] for x in (ws / ".engine" / "ledger" / "ledger.jsonl").read_text().splitlines()]
    [failed] = [r for r in records if r.get("task_id") == "n1" and r.get("kind") == "step" and r["status"] == "error"]
    assert failed["step"] == "Task_each" and failed["reason"] == reason


@pytest.mark.parametrize(("a", "b"), [(0.1, 1.2), (1.2, 0.1)], ids=["b-arrives-last", "a-arrives-last"])
def test_a_parallel_join_merges_its_branches_in_flow_order_whatever_the_timing(ws, data_dir, tmp_path, a, b):
    """Both branches set `label` (the napper's output); after the join it is the last incoming flow's
    branch's ("b"), whichever branch finished last: the joined data does not depend on timing, so a
    replay derives what the run recorded."""
    text = (data_dir / "process" / "parallel_naps.bpmn").read_text()
    text = text.replace(">${1}<", ">${task.args.a}<", 1).replace(">${1}<", ">${task.args.b}<", 1)
    text = text.replace('>task.id != "none"<', '>label = "b"<')  # Flow_x: taken when the joined label is b's
    model_dir = tmp_path / "models" / "process"
    model_dir.mkdir(parents=True)
    (model_dir / "joined.bpmn").write_text(text)
    folder, report, steps, took = run_model(ws, model_dir.parent, "joined.bpmn",
                                            {"id": "j1", "tool": "x", "args": {"a": a, "b": b}})
    assert folder == "done"
    labels = [o["output"]["label"] for o in outputs(ws)]
    assert sorted(labels[:2]) == ["a", "b"] and "x" in labels  # the join gave b's label both times
