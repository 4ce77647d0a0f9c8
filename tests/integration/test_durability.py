"""What must survive a crash is on disk before the queue moves on: the ledger's group commit of a task
(its steps and outcome) is fsync'd before the queue notes the task done, and the file's last transition
before the file moves. The order is read off the system calls themselves (os.fsync, os.rename)."""

import json
import os

from engine.testing import KernelHarness


def test_the_ledger_is_fsynced_before_each_queue_transition(tmp_path, monkeypatch):
    harness = KernelHarness(tmp_path / "ws")
    for path in (harness.ws.tasks / "inbox").iterdir():
        path.unlink()
    harness.put("two.jsonl", {"id": "a", "tool": "nothing-routes-here", "repo": "example-repo"})
    ledger_path = harness.ws.engine_dir / "ledger" / "ledger.jsonl"
    events = []
    real_fsync, real_rename = os.fsync, os.rename

    def fsync(fd):
        name = os.readlink(f"/proc/self/fd/{fd}")
        if name == str(ledger_path):
            last = json.loads(ledger_path.read_text().splitlines()[-1])["record"]
            events.append(("ledger", last.get("kind"), last.get("status"), last.get("transition")))
        elif name.endswith(".progress.jsonl"):
            events.append(("progress",))
        return real_fsync(fd)

    def rename(src, dst, *args, **kwargs):
        events.append(("move", os.path.basename(os.path.dirname(src)), os.path.basename(os.path.dirname(dst))))
        return real_rename(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", rename)
    harness.run()
    assert harness.files("failed") == ["two.jsonl"]
    moves = [e for e in events if e[0] != "progress"]
    claim = moves.index(("move", "inbox", "processing"))
    outcome = moves.index(("ledger", "run", "failed", None))  # the task's group: claim, steps, its outcome
    noted = events.index(("progress",))
    last = moves.index(("ledger", "queue", "failed", "processing->failed"))
    moved = moves.index(("move", "processing", "failed"))
    assert claim < outcome < last < moved
    assert events.index(("ledger", "run", "failed", None)) < noted < events.index(moves[last])
    groups = [e for e in events if e[0] == "ledger"]
    assert len(groups) == 3  # one commit for the claim, one for the task, one for the file's move
    harness.kernel().ledger.verify()


def test_an_instance_looping_past_a_thousand_steps_reaches_its_end(tmp_path, data_dir):
    """SpiffWorkflow's task walks stop at depth 1,000 by default: the engine's do not, so a long loop ends
    where the model says, and its steps are all in the ledger."""
    import shutil

    harness = KernelHarness(tmp_path / "ws")
    shutil.copy(data_dir / "process" / "long_loop.bpmn", harness.root / "process" / "orchestration.bpmn")
    for path in (harness.ws.tasks / "inbox").iterdir():
        path.unlink()
    harness.put("t.jsonl", {"id": "loop", "tool": "x", "repo": "example-repo", "args": {"rounds": 700}})
    harness.run()
    assert harness.files("done") == ["t.jsonl"]
    [task] = harness.report("done", "t.jsonl")["tasks"]
    assert task["end_event"] == "End_done" and task["steps"] == 2 + 3 * 700
    steps = [r["step"] for r in harness.records(task_id="loop", kind="step")]
    assert steps.count("Script_count") == 700 and steps[-1] == "End_done"
