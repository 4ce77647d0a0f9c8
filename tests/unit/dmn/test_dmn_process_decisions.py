"""process/decisions.dmn: the decisions the orchestration process binds to, on representative inputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine import dmn

DECISIONS = Path(__file__).resolve().parents[3] / "process" / "decisions.dmn"


@pytest.fixture(scope="module")
def model() -> dmn.DecisionModel:
    return dmn.load(DECISIONS)


def task(tool: str = "git", tags: list[str] | None = None, max_retries: int = 3,
         backoff_sec: float = 10) -> dict[str, Any]:
    return {"tool": tool, "tags": tags or [], "retry": {"max_retries": max_retries, "backoff_sec": backoff_sec}}


def test_the_file_is_dmn_13_with_the_process_decisions(model):
    assert model.namespace == "https://www.omg.org/spec/DMN/20191111/MODEL/"
    assert {d.id: d.name for d in model.decisions.values()} == {
        "select_plugin": "Select Plugin", "retry_policy": "Retry Policy", "gate_tier": "Quality Gate Tier",
        "rollback_trigger": "Rollback Trigger", "needs_worktree": "Needs Worktree", "publish_change": "Publish Change"}
    assert {d.id: d.hit_policy for d in model.decisions.values()} == {
        "select_plugin": "UNIQUE", "retry_policy": "FIRST", "gate_tier": "FIRST", "rollback_trigger": "UNIQUE",
        "needs_worktree": "FIRST", "publish_change": "FIRST"}
    assert dmn.check(DECISIONS) == []


@pytest.mark.parametrize(("tool", "plugin", "rule"), [
    ("git", "git-inspector", "select_plugin_git"),
    ("parse", "task-parser", "select_plugin_parse"),
    ("normalize", "task-parser", "select_plugin_parse"),
    ("unknown-tool", None, None),
    (None, None, None),
])
def test_select_plugin(model, tool, plugin, rule):
    result = model.evaluate("select_plugin", {"task": {"tool": tool}})
    assert result.value == plugin
    assert result.matched_rules == ([rule] if rule else [])


@pytest.mark.parametrize(("tags", "retryable", "failures", "expected", "rule"), [
    (["no-retry"], True, 0, {"action": "fail", "backoff": 0}, "retry_policy_no_retry_tag"),
    ([], False, 0, {"action": "fail", "backoff": 0}, "retry_policy_not_retryable"),
    ([], True, 1, {"action": "retry", "backoff": 10}, "retry_policy_retry"),
    ([], True, 3, {"action": "retry", "backoff": 30}, "retry_policy_retry"),
    ([], True, 4, {"action": "quarantine", "backoff": 0}, "retry_policy_exhausted"),
    ([], None, 2, {"action": "retry", "backoff": 20}, "retry_policy_retry"),  # unknown retryability: retry
    (["flaky", "no-retry"], False, 9, {"action": "fail", "backoff": 0}, "retry_policy_no_retry_tag"),
])
def test_retry_policy(model, tags, retryable, failures, expected, rule):
    ctx = {"task": task(tags=tags), "error": {"retryable": retryable}, "failures": failures}
    result = model.evaluate("retry_policy", ctx)
    assert result.value == expected
    assert result.matched_rules == [rule]


def test_retry_backoff_grows_with_the_configured_base(model):
    ctx = {"task": task(max_retries=5, backoff_sec=1.5), "error": {"retryable": True}, "failures": 4}
    assert model.evaluate("retry_policy", ctx).value == {"action": "retry", "backoff": 6}


@pytest.mark.parametrize(("tags", "changed", "tier"), [
    (["critical"], 0, "L0-L5"),
    ([], 11, "L0-L5"),
    ([], 10, "L0-L3"),
    ([], 1, "L0-L3"),
    ([], 0, "L0"),
    (["docs"], 3, "L0-L3"),
])
def test_gate_tier(model, tags, changed, tier):
    assert model.evaluate("gate_tier", {"task": task(tags=tags), "changed_files": changed}).value == tier


@pytest.mark.parametrize(("exit_code", "diff", "action"), [
    (0, 0, "keep"),
    (0, 500, "keep"),
    (0, 501, "manual"),
    (1, 12, "rollback"),
    (2, 0, "keep"),
    (-9, 1, "rollback"),
])
def test_rollback_trigger(model, exit_code, diff, action):
    assert model.evaluate("rollback_trigger", {"exit_code": exit_code, "diff_lines": diff}).value == action


def test_rollback_trigger_gives_null_for_a_text_exit_code_and_says_why(model):
    # No rule reads "boom" (`0` and `not(0)` are both null against a string), so UNIQUE gives null;
    # the result says the exit code did not fit its typeRef.
    result = model.evaluate("rollback_trigger", {"exit_code": "boom", "diff_lines": 1})
    assert (result.value, result.matched_rules) == (None, [])
    line = next(n for n, text in enumerate(DECISIONS.read_text().splitlines(), start=1)
                if 'decision id="rollback_trigger"' in text)
    assert result.warnings == [f"{DECISIONS}:{line}: decision 'rollback_trigger' (Rollback Trigger): input 'Exit code' "
                               "(exit_code): expected number, got string \"boom\"; the value is used as it is"]


def test_cli_inputs_for_retry_policy(model):
    decision = model.decision("retry_policy")
    ctx = decision.coerce_inputs({"Tags": '["flaky"]', "Retryable": "true", "Failures": "1",
                                  "task.retry.max_retries": "3", "task.retry.backoff_sec": "10"})
    assert ctx == {"task": {"tags": ["flaky"], "retry": {"max_retries": 3, "backoff_sec": 10}},
                   "error": {"retryable": True}, "failures": 1}
    assert model.evaluate("retry_policy", ctx).value == {"action": "retry", "backoff": 10}
