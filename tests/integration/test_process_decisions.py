"""The four orchestration decisions, exercised through the real process on real repositories."""

import json

import pytest

from tests.conftest import engine, install_test_plugin


@pytest.fixture
def ws(example_ws):
    for name in ("flaky", "writer"):
        install_test_plugin(example_ws, name)
    for path in (example_ws / ".tasks" / "inbox").iterdir():  # only the tasks of each test
        path.unlink()
    return example_ws


def run_one(ws, task, expect_exit):
    task = {"repo": "example-repo", **task}
    (ws / ".tasks" / "inbox" / "t.jsonl").write_text(json.dumps(task) + "\n")
    engine("run", "--drain", cwd=ws, check=expect_exit)
    for folder in ("done", "failed", "quarantine"):
        path = ws / ".tasks" / folder / "t.jsonl"
        if path.exists():
            suffix = "error" if folder == "failed" else "result"
            report = json.loads((ws / ".tasks" / folder / f"t.jsonl.{suffix}.json").read_text())
            ledger = (ws / ".engine" / "ledger" / "ledger.jsonl").read_text().splitlines()
            steps = [json.loads(x)["record"] for x in ledger]
            steps = [r for r in steps if r.get("task_id") == task["id"] and r["kind"] == "step"]
            engine("ledger", "verify", cwd=ws, check=0)
            return folder, report, steps
    raise AssertionError("the task file went nowhere")


def decisions(steps, decision_id):
    return [s["decision"] for s in steps if s.get("decision", {}).get("id") == decision_id]


def test_retry_with_backoff_then_success(ws):
    folder, report, steps = run_one(ws, {"id": "r1", "tool": "flaky", "args": {"fail_times": 2},
                                         "retry": {"max_retries": 3, "backoff_sec": 0.05}}, 0)
    assert folder == "done"
    retries = decisions(steps, "retry_policy")
    assert [r["result"] for r in retries] == [{"action": "retry", "backoff": 0.05}, {"action": "retry", "backoff": 0.1}]
    assert all(r["matched_rules"] for r in retries)
    executes = [s["status"] for s in steps if s["step"] == "Task_execute"]
    assert executes == ["error", "error", "completed"]
    assert [s["step"] for s in steps].count("Event_backoff") == 2


def test_retries_exhausted_go_to_quarantine(ws):
    folder, report, steps = run_one(ws, {"id": "r2", "tool": "flaky", "args": {"fail_times": 5},
                                         "retry": {"max_retries": 1, "backoff_sec": 0}}, 1)
    assert folder == "quarantine"
    assert [r["result"]["action"] for r in decisions(steps, "retry_policy")] == ["retry", "quarantine"]
    assert report["tasks"][0]["end_event"] == "EndEvent_retries_exhausted"
    assert "flaky failure 2" in report["reason"]


def test_not_retryable_fails_and_keeps_an_unchanged_tree(ws):
    folder, report, steps = run_one(ws, {"id": "r3", "tool": "flaky", "args": {"fail_times": 1, "retryable": False},
                                         "retry": {"max_retries": 3}}, 1)
    assert folder == "failed"
    assert [r["result"]["action"] for r in decisions(steps, "retry_policy")] == ["fail"]
    assert [r["result"] for r in decisions(steps, "rollback_trigger")] == ["keep"]
    assert report["tasks"][0]["end_event"] == "EndEvent_failed"


def test_no_retry_tag_fails_at_once(ws):
    folder, report, steps = run_one(ws, {"id": "r4", "tool": "flaky", "args": {"fail_times": 1}, "tags": ["no-retry"],
                                         "retry": {"max_retries": 3}}, 1)
    assert folder == "failed" and [r["result"]["action"] for r in decisions(steps, "retry_policy")] == ["fail"]


def test_read_only_task_is_tier_l0_and_done(ws):
    folder, report, steps = run_one(ws, {"id": "g0", "tool": "git"}, 0)
    assert folder == "done"
    assert [r["result"] for r in decisions(steps, "gate_tier")] == ["L0"]
    assert [r["result"] for r in decisions(steps, "rollback_trigger")] == ["keep"]


def test_changes_need_quality_gates(ws):
    folder, report, steps = run_one(ws, {"id": "g1", "tool": "writer", "args": {"files": 2, "lines": 3}}, 1)
    assert folder == "quarantine" and report["tasks"][0]["end_event"] == "EndEvent_gates"
    assert [r["result"] for r in decisions(steps, "gate_tier")] == ["L0-L3"]
    measure = [s for s in steps if s["step"] == "Task_measure"][0]
    assert measure["status"] == "completed"


def test_critical_tag_raises_the_tier(ws):
    folder, report, steps = run_one(ws, {"id": "g2", "tool": "git", "tags": ["critical"]}, 1)
    assert [r["result"] for r in decisions(steps, "gate_tier")] == ["L0-L5"]
    assert folder == "quarantine" and report["tasks"][0]["end_event"] == "EndEvent_gates"


def test_large_successful_change_needs_manual_review(ws):
    folder, report, steps = run_one(ws, {"id": "b1", "tool": "writer", "args": {"files": 1, "lines": 600}}, 1)
    assert [r["result"] for r in decisions(steps, "rollback_trigger")] == ["manual"]
    assert folder == "quarantine" and report["tasks"][0]["end_event"] == "EndEvent_review"


def test_failed_change_triggers_rollback(ws):
    task = {"id": "b2", "tool": "writer", "args": {"files": 1, "lines": 5, "fail": True}}
    folder, report, steps = run_one(ws, task, 1)
    assert [r["result"] for r in decisions(steps, "rollback_trigger")] == ["rollback"]
    assert folder == "quarantine" and report["tasks"][0]["end_event"] == "EndEvent_rollback"
    assert "writer failed after writing" in report["reason"]


def test_a_value_outside_input_values_is_null_and_the_ledger_says_why(ws):
    from lxml import etree

    dmn = ws / "process" / "decisions.dmn"
    tree = etree.parse(str(dmn))
    ns = tree.getroot().nsmap[None]
    clause = tree.find(f".//{{{ns}}}decision[@id='select_plugin']//{{{ns}}}input")
    values = etree.SubElement(clause, f"{{{ns}}}inputValues", id="tools_allowed")
    etree.SubElement(values, f"{{{ns}}}text").text = '"git","parse","normalize","flaky","writer"'
    tree.write(str(dmn), xml_declaration=True, encoding="UTF-8")
    folder, report, steps = run_one(ws, {"id": "w1", "tool": "teleport"}, 1)
    assert folder == "failed" and report["tasks"][0]["end_event"] == "EndEvent_no_plugin"
    [selection] = decisions(steps, "select_plugin")
    assert selection["result"] is None and "not among its allowed values" in selection["warnings"][0]


def test_a_plugin_may_not_set_the_kernels_variables(ws):
    install_test_plugin(ws, "meddler")
    folder, report, steps = run_one(ws, {"id": "m1", "tool": "meddler"}, 1)
    assert folder == "failed" and report["tasks"][0]["end_event"] == "EndEvent_failed"
    assert "sets failures, which only the kernel sets" in report["reason"]
