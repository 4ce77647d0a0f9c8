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
    assert "issue 12" in node(process, "Task_policy_check").findtext("bpmn:documentation", namespaces=NS)
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


def test_verify_and_the_rollback_step(process):
    graph = flows(process)
    assert ("Task_gate_tier", "Task_verify") in graph and ("Task_verify", "Task_rollback_trigger") in graph
    assert "issue 12" in node(process, "Task_verify").findtext("bpmn:documentation", namespaces=NS)
    assert graph[("Gateway_rollback", "Task_rollback")][2] == 'rollback = "rollback"'
    rollback = node(process, "Task_rollback")
    assert rollback.get(CAMUNDA + "topic") == "worktree-manager.rollback"
    assert parameters(rollback) == {"checkpoint": "${checkpoint}"}
    assert ("Task_rollback", "EndEvent_rollback") in graph
    end = node(process, "EndEvent_rollback")
    assert (end.get("name"), outcome(end)) == ("Rolled back", "failed")


def test_a_change_in_a_worktree_is_committed_before_the_gates_decide(process):
    graph = flows(process)
    assert graph[("Gateway_succeeded", "Gateway_in_worktree")][:2] == ("Flow_succeeded", "yes")
    assert graph[("Gateway_succeeded", "Gateway_in_worktree")][3]
    assert graph[("Gateway_in_worktree", "Task_commit")][2] == "worktree != null"
    assert graph[("Gateway_in_worktree", "Gateway_gate_check")][:2] == ("Flow_not_in_worktree", "no")
    assert graph[("Gateway_in_worktree", "Gateway_gate_check")][3]
    commit = node(process, "Task_commit")
    assert commit.get(CAMUNDA + "topic") == "git-executor.commit"
    assert parameters(commit) == {"message": '${"engine: task " + task.id}'}
    assert ("Task_commit", "Gateway_committed") in graph
    assert graph[("Gateway_committed", "EndEvent_commit_failed")][2] == "error != null"
    assert outcome(node(process, "EndEvent_commit_failed")) == "failed"
    assert graph[("Gateway_committed", "Gateway_gate_check")][:2] == ("Flow_committed", "yes")
    assert graph[("Gateway_committed", "Gateway_gate_check")][3]
    # the joining gateway: both ways in, one way on, to the gates
    assert sorted(source for source, target in graph if target == "Gateway_gate_check") == [
        "Gateway_committed", "Gateway_in_worktree"]
    assert [target for source, target in graph if source == "Gateway_gate_check"] == ["Gateway_gates"]
    assert [source for source, target in graph if target == "Gateway_gates"] == ["Gateway_gate_check"]
    # nothing is committed or published past the gates but by these flows
    assert not {("Gateway_gates", "Gateway_in_worktree"), ("Gateway_committed", "Task_publish"),
                ("Gateway_in_worktree", "Gateway_record"), ("Gateway_succeeded", "Gateway_gates")} & set(graph)


def test_a_tier_above_l0_ends_after_the_commit_as_quality_gates_required(process):
    graph = flows(process)
    assert graph[("Gateway_gates", "EndEvent_gates")][:3] == ("Flow_gates", "L0-L3, L0-L5", 'tier != "L0"')
    end = node(process, "EndEvent_gates")
    assert (end.get("name"), outcome(end)) == ("Quality gates required", "quarantine")
    documentation = end.findtext("bpmn:documentation", namespaces=NS)
    assert "committed on branch engine/<task-id>" in documentation and "worktree" in documentation
    assert "issue 12" in documentation


def test_an_l0_change_in_a_worktree_is_published(process):
    graph = flows(process)
    assert graph[("Gateway_gates", "Gateway_publish_needed")][:2] == ("Flow_no_gates", "L0")
    assert graph[("Gateway_gates", "Gateway_publish_needed")][3]
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
