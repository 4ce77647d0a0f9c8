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
        "gate_checks": "Gate Checks", "rollback_trigger": "Rollback Trigger", "needs_worktree": "Needs Worktree",
        "publish_change": "Publish Change"}
    assert {d.id: d.hit_policy for d in model.decisions.values()} == {
        "select_plugin": "UNIQUE", "retry_policy": "FIRST", "gate_tier": "FIRST", "gate_checks": "COLLECT",
        "rollback_trigger": "FIRST", "needs_worktree": "FIRST", "publish_change": "FIRST"}
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


@pytest.mark.parametrize(("tags", "changed", "python", "tier", "rule"), [
    (["critical"], 0, False, "L0-L5", "gate_tier_critical"),
    (["critical"], 2, True, "L0-L5", "gate_tier_critical"),
    ([], 11, False, "L0-L5", "gate_tier_large"),
    ([], 11, True, "L0-L5", "gate_tier_large"),
    ([], 10, True, "L0-L3", "gate_tier_python"),
    ([], 1, True, "L0-L3", "gate_tier_python"),
    ([], 10, False, "L0", "gate_tier_changed"),
    ([], 1, None, "L0", "gate_tier_changed"),  # not measured (null): no Python change is assumed
    (["docs"], 3, False, "L0", "gate_tier_changed"),
    ([], 0, False, "L0", "gate_tier_none"),
    ([], None, None, "L0", "gate_tier_none"),
])
def test_gate_tier(model, tags, changed, python, tier, rule):
    result = model.evaluate("gate_tier", {"task": task(tags=tags), "changed_files": changed, "python_changed": python})
    assert (result.value, result.matched_rules) == (tier, [rule])


@pytest.mark.parametrize(("tier", "changed", "checks"), [
    ("L0", 1, [("ruff-checker", True)]),
    ("L0-L3", 4, [("ruff-checker", True), ("pytest-runner", True)]),
    ("L0-L5", 30, [("ruff-checker", True), ("pytest-runner", True), ("pester-runner", False),
                   ("sbom-generator", True)]),
    ("L0", 0, []),
    ("L0-L3", 0, []),
    ("L0-L5", 0, []),
    ("L0-L5", None, []),  # not measured: no checks
])
def test_gate_checks_collects_one_row_per_check(model, tier, changed, checks):
    result = model.evaluate("gate_checks", {"tier": tier, "changed_files": changed})
    assert result.value == [{"check": check, "required": required} for check, required in checks]
    assert result.matched_rules == [f"gate_checks_{check.split('-')[0]}" for check, _ in checks]


@pytest.mark.parametrize(("exit_code", "diff", "gates_passed", "action", "rule"), [
    (0, 0, True, "keep", "rollback_trigger_keep_small"),
    (0, 500, True, "keep", "rollback_trigger_keep_small"),
    (0, 501, True, "manual", "rollback_trigger_manual_large"),
    (0, 3, False, "rollback", "rollback_trigger_gates_failed"),  # FIRST: the failed gate wins over keep
    (0, 501, False, "rollback", "rollback_trigger_gates_failed"),  # ... and over manual
    (1, 12, True, "rollback", "rollback_trigger_failed_changed"),
    (2, 0, True, "keep", "rollback_trigger_failed_clean"),
    (-9, 1, None, "rollback", "rollback_trigger_failed_changed"),  # recovery after a kill: no gates_passed
    (0, 2, None, "keep", "rollback_trigger_keep_small"),
])
def test_rollback_trigger(model, exit_code, diff, gates_passed, action, rule):
    result = model.evaluate("rollback_trigger", {"exit_code": exit_code, "diff_lines": diff,
                                                 "gates_passed": gates_passed})
    assert (result.value, result.matched_rules) == (action, [rule])


def test_every_rule_of_the_gate_decisions_says_why(model):
    from lxml import etree

    root = etree.parse(str(DECISIONS)).getroot()
    ns = {"d": root.nsmap[None]}
    for decision in ("gate_tier", "gate_checks", "rollback_trigger"):
        rules = root.findall(f"d:decision[@id='{decision}']//d:rule", ns)
        assert rules and all((r.findtext("d:description", namespaces=ns) or "").strip() for r in rules), decision
    first = root.find("d:decision[@id='rollback_trigger']//d:rule", ns)
    assert first.get("id") == "rollback_trigger_gates_failed"
    assert "FIRST" in first.findtext("d:description", namespaces=ns)


def test_rollback_trigger_gives_null_for_a_text_exit_code_and_says_why(model):
    # No rule reads "boom" (`0` and `not(0)` are both null against a string, and Gates passed is not given),
    # so FIRST gives null;
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
