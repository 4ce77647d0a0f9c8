"""`engine replay RUN`: every task of a run made again from its task file, its pinned models and its calls'
recorded results must make exactly the ledger records it made; a changed recorded result is found and the
step named."""

import json
import shutil

import pytest

from tests.conftest import engine
from tests.integration.test_resume import kill_during_the_third_call, labels, put
from tests.integration.test_state_changes import install_scribbler


def runs(ws):
    return sorted(p.parent.name for p in (ws / ".engine" / "runs").glob("*/run.json"))


def replay(ws, run, *extra, check=0):
    return engine("replay", run, *extra, cwd=ws, check=check)


def test_every_task_of_a_run_replays_to_the_records_the_ledger_holds(example_ws):
    engine("run", "--drain", cwd=example_ws, check=0)
    [run] = runs(example_ws)
    proc = replay(example_ws, run, "--json")
    tasks = json.loads(proc.stdout)["tasks"]
    assert [(t["task_id"], t["ok"]) for t in tasks] == [("inspect-status", True), ("inspect-log", True),
                                                         ("inspect-diff", True), ("normalize-readme", True)]
    assert all(t["records"] > 20 for t in tasks)


@pytest.mark.no_replay  # it changes a run's recorded outputs
def test_a_changed_recorded_output_makes_the_replay_fail_naming_the_step(example_ws):
    engine("run", "--drain", cwd=example_ws, check=0)
    [run] = runs(example_ws)
    outputs = example_ws / ".engine" / "runs" / run / "outputs.jsonl"
    rows = [json.loads(x) for x in outputs.read_text().splitlines()]
    [row] = [r for r in rows if r["task_id"] == "inspect-diff" and r["step"] == "Task_acquire"]
    row["output"]["repo_state"]["dirty"] = not row["output"]["repo_state"]["dirty"]
    outputs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    proc = replay(example_ws, run, check=4)
    assert "DIVERGES 001-inspect.jsonl:3 task inspect-diff: step Task_acquire (serviceTask, completed): " \
           "output_digest recorded" in proc.stdout
    assert "ok       001-inspect.jsonl:1 task inspect-status" in proc.stdout  # the others still replay
    body = json.loads(replay(example_ws, run, "--task", "inspect-diff", "--json", check=4).stdout)
    assert body["tasks"][0]["step"] == "Task_acquire" and not body["tasks"][0]["ok"]


def test_a_state_change_replays_with_the_checkpoint_the_kernel_took(example_ws):
    install_scribbler(example_ws)
    for path in (example_ws / ".tasks" / "inbox").iterdir():
        path.unlink()
    put(example_ws, "100-write.jsonl", {"id": "w-1", "tool": "scribble",
                                        "args": {"files": {"notes.txt": ["hello\n"]}}})
    engine("run", "--drain", cwd=example_ws, check=0)
    [run] = runs(example_ws)
    rows = [json.loads(x) for x in (example_ws / ".engine" / "runs" / run / "outputs.jsonl").read_text().splitlines()]
    assert any("checkpoint" in r for r in rows)  # what the process data got from the kernel is recorded
    [task] = json.loads(replay(example_ws, run, "--json").stdout)["tasks"]
    assert task["ok"], task


def test_a_resumed_task_replays_across_the_runs_it_ran_in(example_ws, data_dir):
    for path in (example_ws / ".tasks" / "inbox").iterdir():
        path.unlink()
    shutil.copytree(data_dir / "plugins" / "napper", example_ws / "plugins" / "napper")
    shutil.copy(data_dir / "process" / "three_naps.bpmn", example_ws / "process" / "orchestration.bpmn")
    kill_during_the_third_call(example_ws, "r1")
    engine("run", "--drain", cwd=example_ws, check=0)
    assert list(labels(example_ws).values()) == [["a", "b"], ["c"]]
    for run in runs(example_ws):
        [task] = json.loads(replay(example_ws, run, "--json").stdout)["tasks"]
        assert task["ok"] and task["task_id"] == "r1", task


def test_an_unknown_run_is_refused_with_the_runs_there_are(example_ws):
    engine("run", "--drain", cwd=example_ws, check=0)
    proc = replay(example_ws, "run-nope", check=2)
    assert "no run 'run-nope'" in proc.stderr and runs(example_ws)[0] in proc.stderr
