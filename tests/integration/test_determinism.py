"""AC-2: the same task through the same plugin versions gives the same ledger record, byte for byte.

Time, ids and randomness reach a plugin only through its call context, so what differs between two
runs (the wall clock, run ids, pids, trace ids) stays in the envelope. Each test runs two fresh
workspaces in different folders.
"""

import json
from datetime import UTC, datetime

from engine.clock import FixedClock
from engine.ledger import canonical, digest
from engine.testing import KernelHarness
from tests.conftest import DATA, add_selection_rule, engine


def records(ws):
    path = ws / ".engine" / "ledger" / "ledger.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_two_fresh_example_workspaces_write_identical_records(tmp_path):
    """The real command, the real clock, real git repositories: only the envelopes differ."""
    runs = []
    for name in ("first", "second"):
        ws = tmp_path / name / "ws"
        engine("init", "--example", ws, check=0)
        engine("run", "--drain", cwd=ws, check=0)
        runs.append(records(ws))
    first, second = runs
    assert len(first) == len(second) > 40
    for a, b in zip(first, second, strict=True):
        assert canonical(a["record"]) == canonical(b["record"])
        assert a["record_hash"] == b["record_hash"] == digest(a["record"])
    assert first[0]["envelope"]["run_id"] != second[0]["envelope"]["run_id"]
    steps = {r["record"]["step"] for r in first if r["record"]["kind"] == "step"}
    assert {"Task_execute", "Task_select_plugin"} <= steps  # plugin calls and decisions are both covered


def _harness(root, start):
    harness = KernelHarness(root, clock=FixedClock(start=start, seed=7))
    harness.add_plugin(DATA / "plugins" / "clocked")
    add_selection_rule(harness.root / "process" / "decisions.dmn", "stamp", "clocked")
    harness.put("001-stamp.jsonl", {"id": "s1", "tool": "stamp", "repo": "example-repo"},
                {"id": "s2", "tool": "stamp", "repo": "example-repo"})
    return harness


def test_time_and_randomness_come_from_the_context_so_an_injected_clock_repeats_a_run(tmp_path):
    start = datetime(2026, 3, 1, tzinfo=UTC)
    one, two = _harness(tmp_path / "a", start), _harness(tmp_path / "b", start)
    assert one.run().ok and two.run().ok
    a, b = one.ledger(), two.ledger()
    assert [canonical(e["record"]) for e in a] == [canonical(e["record"]) for e in b]
    outputs = [json.loads(x) for x in next((one.root / ".engine" / "runs").glob("*/outputs.jsonl")).read_text()
               .splitlines()]
    stamps = {o["task_id"]: o["output"]["stamp"] for o in outputs if o["plugin"] == "clocked"}
    assert stamps["s1"]["now"].startswith("2026-03-01") and stamps["s1"]["task_id"] == "s1"
    assert stamps["s1"]["seed"] != stamps["s2"]["seed"]  # a seed per task, the same in every run

    later = _harness(tmp_path / "c", datetime(2027, 1, 1, tzinfo=UTC))
    assert later.run().ok
    executes = [canonical(r) for r in later.records(step="Task_execute")]
    assert executes != [canonical(r) for r in one.records(step="Task_execute")]  # the time did reach the plugin
