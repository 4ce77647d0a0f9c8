"""The shipped process models: they validate, the BPMN binds its steps as documented, and every decision of
decisions.dmn evaluates as specified through `engine decide` (what a modeler runs after an edit).

The XML of both files against their XSDs and the diagram interchange of every element are checked by
`engine validate` itself (tests/integration/test_validate.py shows each check)."""

import json

import pytest
from lxml import etree

from engine.bundled import bundled
from engine.process.expressions import compile_feel
from tests.conftest import engine

SHIPPED = bundled("process")
BPMN = SHIPPED / "orchestration.bpmn"
DMN = SHIPPED / "decisions.dmn"
NS = {"bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL", "camunda": "http://camunda.org/schema/1.0/bpmn"}
CAMUNDA = "{http://camunda.org/schema/1.0/bpmn}"


def decide(tmp_path, decision, *inputs, json_file=None):
    args = ["decide", decision, "--model", DMN, "--json"]
    for item in inputs:
        args += ["--input", item]
    if json_file is not None:
        path = tmp_path / "inputs.json"
        path.write_text(json.dumps(json_file))
        args += ["--input-json", path]
    return json.loads(engine(*args, cwd=tmp_path, check=0).stdout)["result"]


@pytest.fixture(scope="module")
def process():
    return etree.parse(str(BPMN)).getroot().find("bpmn:process", NS)


def node(process, ident):
    found = process.find(f"*[@id='{ident}']")
    assert found is not None, ident
    return found


def flows(process):
    """(source, target) -> (flow id, name, condition or None, is the source's default)"""
    result = {}
    for flow in process.iterfind("bpmn:sequenceFlow", NS):
        source = node(process, flow.get("sourceRef"))
        condition = flow.find("bpmn:conditionExpression", NS)
        result[(flow.get("sourceRef"), flow.get("targetRef"))] = (
            flow.get("id"), flow.get("name"), None if condition is None else condition.text.strip(),
            source.get("default") == flow.get("id"))
    return result


def parameters(element, kind="inputParameter"):
    return {p.get("name"): p.text for p in element.iter(CAMUNDA + kind)}


def outcome(element):
    return {p.get("name"): p.get("value") for p in element.iter(CAMUNDA + "property")}.get("outcome", "done")


def test_shipped_models_validate_in_an_example_workspace(example_ws):
    proc = engine("validate", cwd=example_ws, check=0)
    assert proc.stdout.startswith("models ok:")


def test_the_worktree_steps_sit_between_plugin_selection_and_the_attempt(process):
    graph = flows(process)
    assert graph[("Gateway_plugin_found", "Task_policy_check")][3]  # "yes", the default
    assert node(process, "Task_policy_check").tag == f"{{{NS['bpmn']}}}task"
    assert "before the first step" in node(process, "Task_policy_check").findtext("bpmn:documentation", namespaces=NS)
    assert ("Task_policy_check", "Task_needs_worktree") in graph
    needs = node(process, "Task_needs_worktree")
    assert (needs.get(CAMUNDA + "decisionRef"), needs.get(CAMUNDA + "resultVariable"),
            needs.get(CAMUNDA + "mapDecisionResult")) == ("needs_worktree", "needs_worktree", "singleEntry")
    assert ("Task_needs_worktree", "Gateway_needs_worktree") in graph
    assert graph[("Gateway_needs_worktree", "Gateway_attempt")][3]
    assert graph[("Gateway_needs_worktree", "Task_checkpoint")][2] == "needs_worktree = true"
    checkpoint = node(process, "Task_checkpoint")
    assert (checkpoint.get(CAMUNDA + "type"), checkpoint.get(CAMUNDA + "topic")) == ("external",
                                                                                     "worktree-manager.create")
    assert ("Task_checkpoint", "Gateway_worktree_made") in graph
    assert graph[("Gateway_worktree_made", "Gateway_attempt")][3]
    assert graph[("Gateway_worktree_made", "EndEvent_no_worktree")][2] == "error != null"
    assert outcome(node(process, "EndEvent_no_worktree")) == "failed"


def test_the_process_documentation_says_where_the_gates_run(process):
    documentation = " ".join(process.findtext("bpmn:documentation", namespaces=NS).split())
    assert "the quality gates run at Verify" in documentation
    assert "a failing gate rolls the change back" in documentation
    assert "the task fails, its reason naming the failing findings" in documentation
    assert "quality gates required" not in documentation and "issue 12" not in documentation


def test_the_tier_then_after_a_successful_execution_the_gate_checks_and_verify(process):
    graph = flows(process)
    tier = node(process, "Task_gate_tier")
    assert (tier.get(CAMUNDA + "decisionRef"), tier.get(CAMUNDA + "resultVariable"),
            tier.get(CAMUNDA + "mapDecisionResult")) == ("gate_tier", "tier", "singleEntry")
    assert parameters(tier) == {"changed_files": "${diff.changed_files}",
                                "python_changed": '${some f in diff.files satisfies ends with(f.path, ".py")}'}
    assert [target for source, target in graph if source == "Task_gate_tier"] == ["Gateway_run_gates"]
    executed = node(process, "Gateway_run_gates")
    assert (executed.tag, executed.get("name")) == (f"{{{NS['bpmn']}}}exclusiveGateway", "Executed?")
    assert graph[("Gateway_run_gates", "Task_gate_checks")] == ("Flow_run_gates", "yes", "exit_code = 0", False)
    assert graph[("Gateway_run_gates", "Gateway_verified")] == ("Flow_skip_gates", "no", None, True)
    assert [target for source, target in graph if source == "Gateway_run_gates"] == ["Task_gate_checks",
                                                                                      "Gateway_verified"]
    checks = node(process, "Task_gate_checks")
    assert (checks.tag, checks.get("name")) == (f"{{{NS['bpmn']}}}businessRuleTask", "Gate checks")
    assert (checks.get(CAMUNDA + "decisionRef"), checks.get(CAMUNDA + "resultVariable"),
            checks.get(CAMUNDA + "mapDecisionResult")) == ("gate_checks", "checks", "resultList")
    assert parameters(checks) == {"changed_files": "${diff.changed_files}"}  # tier is a process variable
    assert [target for source, target in graph if source == "Task_gate_checks"] == ["Task_verify"]
    verify = node(process, "Task_verify")
    assert (verify.tag, verify.get("name"), verify.get(CAMUNDA + "type"), verify.get(CAMUNDA + "topic")) == (
        f"{{{NS['bpmn']}}}serviceTask", "Verify", "external", "quality-gate.run")
    assert parameters(verify) == {"checks": "${checks}", "files": "${diff.files}"}
    documentation = verify.findtext("bpmn:documentation", namespaces=NS)
    assert "GATE_FAILED" in documentation and "failing findings" in documentation
    # the joining gateway: verified, or no gates after a failed execution; then the rollback decision
    assert [target for source, target in graph if source == "Task_verify"] == ["Gateway_verified"]
    assert sorted(source for source, target in graph if target == "Gateway_verified") == [
        "Gateway_run_gates", "Task_verify"]
    assert [target for source, target in graph if source == "Gateway_verified"] == ["Task_rollback_trigger"]
    assert [source for source, target in graph if target == "Task_rollback_trigger"] == ["Gateway_verified"]


@pytest.mark.parametrize(("files", "python_changed"), [
    ([{"path": "a.py"}], True),
    ([{"path": "docs/guide.md"}, {"path": "pkg/core.py"}], True),
    ([{"path": "a.txt"}, {"path": "b.txt"}], False),
    ([{"path": "pkg/py.typed"}, {"path": "notes.pyc"}], False),
    ([], False),
])
def test_python_changed_is_true_when_any_changed_file_is_a_py_file(process, files, python_changed):
    text = parameters(node(process, "Task_gate_tier"))["python_changed"]
    assert compile_feel(text)({"diff": {"files": files}}) is python_changed


@pytest.mark.parametrize(("variables", "gates_passed"), [
    ({"exit_code": 0, "error": None}, True),  # Verify passed
    ({"exit_code": 0, "error": {"code": "GATE_FAILED", "message": "quality gate failed: ..."}}, False),
    ({"exit_code": 1, "error": {"code": "engine.timeout"}}, True),  # no gates ran: the exit code decides alone
    ({"exit_code": 1, "error": None}, True),
])
def test_gates_passed_is_verifys_outcome_after_a_successful_execution(process, variables, gates_passed):
    text = parameters(node(process, "Task_rollback_trigger"))["gates_passed"]
    assert compile_feel(text)(variables) is gates_passed


def test_the_rollback_decision_and_the_rollback_step(process):
    graph = flows(process)
    decision = node(process, "Task_rollback_trigger")
    assert (decision.get(CAMUNDA + "decisionRef"), decision.get(CAMUNDA + "resultVariable")) == (
        "rollback_trigger", "rollback")
    assert parameters(decision) == {"exit_code": "${exit_code}", "diff_lines": "${diff.diff_lines}",
                                    "gates_passed": "${if exit_code = 0 then error = null else true}"}
    assert graph[("Gateway_rollback", "Task_rollback")][2] == 'rollback = "rollback"'
    rollback = node(process, "Task_rollback")
    assert rollback.get(CAMUNDA + "topic") == "worktree-manager.rollback"
    assert parameters(rollback) == {"checkpoint": "${checkpoint}"}
    assert ("Task_rollback", "EndEvent_rollback") in graph
    end = node(process, "EndEvent_rollback")
    assert (end.get("name"), outcome(end)) == ("Rolled back", "failed")


def test_a_change_in_a_worktree_is_committed_then_goes_on_to_publishing(process):
    graph = flows(process)
    assert graph[("Gateway_succeeded", "Gateway_in_worktree")][:2] == ("Flow_succeeded", "yes")
    assert graph[("Gateway_succeeded", "Gateway_in_worktree")][3]
    assert graph[("Gateway_in_worktree", "Task_commit")][2] == "worktree != null"
    assert graph[("Gateway_in_worktree", "Gateway_publish_check")][:2] == ("Flow_not_in_worktree", "no")
    assert graph[("Gateway_in_worktree", "Gateway_publish_check")][3]
    commit = node(process, "Task_commit")
    assert commit.get(CAMUNDA + "topic") == "git-executor.commit"
    assert parameters(commit) == {"message": '${"engine: task " + task.id}'}
    assert ("Task_commit", "Gateway_committed") in graph
    assert graph[("Gateway_committed", "EndEvent_commit_failed")][2] == "error != null"
    assert outcome(node(process, "EndEvent_commit_failed")) == "failed"
    assert graph[("Gateway_committed", "Gateway_publish_check")][:2] == ("Flow_committed", "yes")
    assert graph[("Gateway_committed", "Gateway_publish_check")][3]
    # the joining gateway: both ways in, one way on, straight to "Worktree to publish?" (the gates ran at Verify)
    assert sorted(source for source, target in graph if target == "Gateway_publish_check") == [
        "Gateway_committed", "Gateway_in_worktree"]
    assert graph[("Gateway_publish_check", "Gateway_publish_needed")] == ("Flow_publish_check", None, None, False)
    assert [target for source, target in graph if source == "Gateway_publish_check"] == ["Gateway_publish_needed"]
    assert [source for source, target in graph if target == "Gateway_publish_needed"] == ["Gateway_publish_check"]
    # nothing is committed or published but by these flows
    assert not {("Gateway_committed", "Task_publish"), ("Gateway_in_worktree", "Gateway_record"),
                ("Gateway_succeeded", "Gateway_publish_check")} & set(graph)


def test_no_task_waits_in_quarantine_because_gates_were_needed(process):
    ids = {element.get("id") for element in process}
    assert not {"Gateway_gates", "EndEvent_gates", "Gateway_gate_check", "Flow_gates", "Flow_no_gates",
                "Flow_gate_check", "Flow_tier_verify", "Flow_verify_rollback"} & ids
    assert not [e for e in process.iterfind("bpmn:endEvent", NS) if "gate" in (e.get("name") or "").lower()]
    # the tier only feeds the gate checks: no gateway routes on it, or on a gate
    conditions = [c.text for c in process.iterfind("bpmn:sequenceFlow/bpmn:conditionExpression", NS)]
    assert not [c for c in conditions if "tier" in c or "gate" in c]


def test_a_kept_change_in_a_worktree_is_published(process):
    graph = flows(process)
    assert graph[("Gateway_publish_needed", "Task_publish")][2] == "worktree != null"
    assert graph[("Gateway_publish_needed", "Gateway_record")][3]  # nothing to publish: recorded
    assert [source for source, target in graph if target == "Task_publish"] == ["Gateway_publish_needed"]
    publish = node(process, "Task_publish")
    assert (publish.get(CAMUNDA + "decisionRef"), publish.get(CAMUNDA + "resultVariable"),
            publish.get(CAMUNDA + "mapDecisionResult")) == ("publish_change", "publish", "singleEntry")
    assert ("Task_publish", "Gateway_publish") in graph
    assert graph[("Gateway_publish", "Gateway_published")][:2] == ("Flow_publish_keep", "keep")
    assert graph[("Gateway_publish", "Gateway_published")][3]  # keep, the default
    assert graph[("Gateway_publish", "Task_merge")][:3] == ("Flow_publish_merge", "merge", 'publish = "merge"')
    assert [target for source, target in graph if source == "Gateway_publish"] == ["Gateway_published", "Task_merge"]
    # the merge into the base branch, by the worktree manager
    merge = node(process, "Task_merge")
    assert (merge.get("name"), merge.get(CAMUNDA + "type"), merge.get(CAMUNDA + "topic")) == (
        "Merge into base", "external", "worktree-manager.merge")
    assert parameters(merge) == {}
    assert [target for source, target in graph if source == "Task_merge"] == ["Gateway_merged"]
    assert graph[("Gateway_merged", "EndEvent_merge_requested")][:3] == ("Flow_merge_failed", "no", "error != null")
    assert graph[("Gateway_merged", "Gateway_published")][:2] == ("Flow_merged", "yes")
    assert graph[("Gateway_merged", "Gateway_published")][3]  # merged, the default
    unmerged = node(process, "EndEvent_merge_requested")
    assert (unmerged.get("name"), outcome(unmerged)) == ("Merge needs a person", "quarantine")
    documentation = unmerged.findtext("bpmn:documentation", namespaces=NS)
    assert "engine/<task-id>" in documentation and "nothing of the user's was changed" in documentation
    # the joining gateway: kept or merged, the worktree is removed
    assert sorted(source for source, target in graph if target == "Gateway_published") == [
        "Gateway_merged", "Gateway_publish"]
    assert [target for source, target in graph if source == "Gateway_published"] == ["Task_remove_worktree"]
    assert [source for source, target in graph if target == "Task_remove_worktree"] == ["Gateway_published"]
    assert node(process, "Task_remove_worktree").get(CAMUNDA + "topic") == "worktree-manager.remove"
    assert ("Task_remove_worktree", "Gateway_record") in graph
    assert sorted(source for source, target in graph if target == "Gateway_record") == [
        "Gateway_publish_needed", "Task_remove_worktree"]
    assert ("Gateway_record", "Task_commit_ledger") in graph and ("Task_commit_ledger", "EndEvent_done") in graph


@pytest.mark.parametrize(("variables", "since"), [
    ({"baseline": "tree1"}, "tree1"),
    ({"baseline": "tree1", "checkpoint": None}, "tree1"),
    ({"baseline": "tree1", "checkpoint": {"ref": "refs/engine/checkpoints/r/t/s-1", "sha": "abc", "head": "h"}},
     "abc:worktree"),
    # a worktree with no checkpoint yet (nothing applied, or a what-if rehearsal): since the commit it started from
    ({"baseline": "tree1", "checkpoint": None, "worktree": {"base": "c0ffee"}}, "c0ffee"),
])
def test_changes_are_measured_since_the_first_checkpoint_else_the_baseline(process, variables, since):
    [text] = parameters(node(process, "Task_measure")).values()
    assert compile_feel(text)(variables) == since


@pytest.mark.parametrize(("inputs", "plugin"), [
    (["Tool=git"], "git-inspector"),  # no operation: only inspected
    (["Tool=git", "Operation=status"], "git-inspector"),
    (["Tool=git", "Operation=diff"], "git-inspector"),
    (["Tool=git", "Operation=log"], "git-inspector"),
    (["Tool=git", "Operation=commit"], "git-executor"),
    (["Tool=git", "Operation=merge"], "git-executor"),
    (["Tool=git", "Operation=fetch"], "git-executor"),
    (["Tool=git", "Operation=push"], "git-executor"),
    (["Tool=git", "Operation=branch"], "git-executor"),
    (["Tool=aider"], "aider-executor"),
    (["Tool=claude", "Operation=edit"], "claude-executor"),
    (["Tool=codex"], "codex-executor"),
    (["Tool=write"], "file-writer"),
    (["Tool=file"], "file-writer"),
    (["Tool=parse"], "task-parser"),
    (["Tool=normalize", "Operation=normalize"], "task-parser"),
    (["Tool=teleport"], None),
])
def test_select_plugin(tmp_path, inputs, plugin):
    assert decide(tmp_path, "select_plugin", *inputs) == plugin


def test_select_plugin_for_a_git_task_without_args(tmp_path):
    assert decide(tmp_path, "select_plugin", json_file={"task": {"tool": "git"}}) == "git-inspector"
    assert decide(tmp_path, "select_plugin", json_file={"task": {"tool": "git", "args": {}}}) == "git-inspector"


@pytest.mark.parametrize(("plugin", "needed"), [
    ("aider-executor", True), ("claude-executor", True), ("codex-executor", True), ("git-executor", True),
    ("file-writer", True), ("git-inspector", False), ("task-parser", False), ("some-other-plugin", False),
])
def test_needs_worktree(tmp_path, plugin, needed):
    assert decide(tmp_path, "needs_worktree", f"Plugin={plugin}") is needed


@pytest.mark.parametrize(("inputs", "expected"), [
    (["Error code=engine.breaker_open"], {"action": "quarantine", "backoff": 0}),
    # first in the table: the breaker wins over the no-retry tag and over "not retryable"
    (["Error code=engine.breaker_open", 'Tags=["no-retry"]', "Retryable=false"],
     {"action": "quarantine", "backoff": 0}),
    (["Error code=engine.timeout", "Retryable=false", "Failures=1"], {"action": "fail", "backoff": 0}),
    (["Error code=MERGE_CONFLICT", "Retryable=true", "Failures=1", "task.retry.max_retries=2",
      "task.retry.backoff_sec=5"], {"action": "retry", "backoff": 5}),
])
def test_retry_policy(tmp_path, inputs, expected):
    assert decide(tmp_path, "retry_policy", *inputs) == expected


@pytest.mark.parametrize(("task", "publish"), [
    ({"tags": []}, "keep"),
    ({}, "keep"),
    ({"tags": ["docs"]}, "keep"),
    ({"tags": ["docs", "merge"]}, "merge"),
])
def test_publish_change(tmp_path, task, publish):
    assert decide(tmp_path, "publish_change", json_file={"task": task}) == publish
    if "tags" in task:
        assert decide(tmp_path, "Publish Change", f"Tags={json.dumps(task['tags'])}") == publish


@pytest.mark.parametrize(("inputs", "tier"), [
    (['Tags=["critical"]', "Changed files=0", "Python changed=false"], "L0-L5"),
    (["Tags=[]", "Changed files=11", "Python changed=true"], "L0-L5"),
    (["Tags=[]", "Changed files=1", "Python changed=true"], "L0-L3"),
    (["Tags=[]", "Changed files=10", "Python changed=true"], "L0-L3"),
    (["Tags=[]", "Changed files=10", "Python changed=false"], "L0"),  # no Python: the basic gate
    (['Tags=["docs"]', "Changed files=3"], "L0"),
    (["Tags=[]", "Changed files=0", "Python changed=false"], "L0"),
])
def test_gate_tier(tmp_path, inputs, tier):
    assert decide(tmp_path, "gate_tier", *inputs) == tier


def test_gate_tier_from_the_task_and_the_measured_change(tmp_path):
    assert decide(tmp_path, "Quality Gate Tier", json_file={
        "task": {"tags": []}, "changed_files": 2, "python_changed": True}) == "L0-L3"


RUFF = {"check": "ruff-checker", "required": True}
PYTEST = {"check": "pytest-runner", "required": True}
PESTER = {"check": "pester-runner", "required": False}  # skipped where pwsh is missing
SBOM = {"check": "sbom-generator", "required": True}


@pytest.mark.parametrize(("tier", "changed", "checks"), [
    ("L0", 1, [RUFF]),
    ("L0-L3", 2, [RUFF, PYTEST]),
    ("L0-L5", 12, [RUFF, PYTEST, PESTER, SBOM]),
    ("L0", 0, []),  # nothing changed: nothing to check
    ("L0-L5", 0, []),
])
def test_gate_checks(tmp_path, tier, changed, checks):
    assert decide(tmp_path, "gate_checks", f"Tier={tier}", f"Changed files={changed}") == checks


def test_gate_checks_from_the_command_line_gives_the_two_checks_of_l0_l3(tmp_path):
    proc = engine("decide", "gate_checks", "--model", DMN, "--input", "Tier=L0-L3", "--input", "Changed files=2",
                  "--json", cwd=tmp_path, check=0)
    assert json.loads(proc.stdout) == {"result": [{"check": "ruff-checker", "required": True},
                                                  {"check": "pytest-runner", "required": True}]}


@pytest.mark.parametrize(("inputs", "action"), [
    (["Exit code=0", "Diff size=3", "Gates passed=false"], "rollback"),  # a failed gate wins over keep
    (["Exit code=0", "Diff size=900", "Gates passed=false"], "rollback"),  # ... and over manual
    (["Exit code=0", "Diff size=3", "Gates passed=true"], "keep"),
    (["Exit code=0", "Diff size=501", "Gates passed=true"], "manual"),
    (["Exit code=1", "Diff size=12", "Gates passed=true"], "rollback"),
    (["Exit code=1", "Diff size=0", "Gates passed=true"], "keep"),
    (["Exit code=-9", "Diff size=4"], "rollback"),  # what recovery asks after a kill: no gates_passed at all
])
def test_rollback_trigger(tmp_path, inputs, action):
    assert decide(tmp_path, "rollback_trigger", *inputs) == action
