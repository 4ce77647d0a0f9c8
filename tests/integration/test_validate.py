"""`engine validate` on the shipped models and on broken copies of them."""

import re

import pytest

from engine.bundled import bundled
from tests.conftest import engine, line_of

SHIPPED = bundled("process")
DMN = ("--dmn", SHIPPED / "decisions.dmn")  # outside a workspace, validate is told which decisions


def broken_copy(tmp_path, old, new, name="orchestration.bpmn"):
    text = (SHIPPED / name).read_text()
    assert old in text, f"fixture drifted: {old!r} not in {name}"
    path = tmp_path / name
    path.write_text(text.replace(old, new, 1))
    return path


def test_shipped_models_are_valid(tmp_path):
    proc = engine("validate", "--bpmn", SHIPPED / "orchestration.bpmn", *DMN, cwd=tmp_path, check=0)
    assert "models ok" in proc.stdout


def test_topic_naming_no_plugin_is_reported_with_a_suggestion(tmp_path):
    bpmn = broken_copy(tmp_path, 'camunda:topic="git-inspector.status"', 'camunda:topic="git-inspectr.status"')
    proc = engine("validate", "--bpmn", bpmn, *DMN, cwd=tmp_path, check=3)
    line = line_of(bpmn, "git-inspectr")
    assert f"{bpmn}:{line} serviceTask Task_acquire 'Acquire repository state': names topic " \
           "'git-inspectr.status': no such plugin. Did you mean 'git-inspector.status'?" in proc.stdout


def test_unknown_operation_is_reported(tmp_path):
    bpmn = broken_copy(tmp_path, 'camunda:topic="git-inspector.status"', 'camunda:topic="git-inspector.stat"')
    proc = engine("validate", "--bpmn", bpmn, *DMN, cwd=tmp_path, check=3)
    assert "plugin 'git-inspector' has no operation 'stat'. Did you mean 'git-inspector.status'?" in proc.stdout


def test_missing_di_shape_is_reported(tmp_path):
    bpmn = broken_copy(tmp_path, 'bpmnElement="Task_execute"', 'bpmnElement="Task_nothing"')
    proc = engine("validate", "--bpmn", bpmn, *DMN, cwd=tmp_path, check=3)
    line = line_of(bpmn, 'id="Task_execute"')
    assert f"{bpmn}:{line} serviceTask Task_execute 'Execute': has no BPMNShape" in proc.stdout


def test_missing_di_edge_is_reported(tmp_path):
    bpmn = broken_copy(tmp_path, 'bpmnElement="Flow_no_plugin"', 'bpmnElement="Flow_nothing"')
    proc = engine("validate", "--bpmn", bpmn, *DMN, cwd=tmp_path, check=3)
    assert re.search(r"orchestration\.bpmn:\d+ sequenceFlow Flow_no_plugin 'no': has no BPMNEdge", proc.stdout)


def test_decision_ref_to_nothing_is_reported(tmp_path):
    bpmn = broken_copy(tmp_path, 'camunda:decisionRef="select_plugin"', 'camunda:decisionRef="select_plugins"')
    proc = engine("validate", "--bpmn", bpmn, *DMN, cwd=tmp_path, check=3)
    line = line_of(bpmn, "select_plugins")
    assert f"{bpmn}:{line} businessRuleTask Task_select_plugin 'Select plugin': names decisionRef " \
           "'select_plugins': no such decision in decisions.dmn. Did you mean 'select_plugin'?" in proc.stdout


def test_invalid_xml_names_the_line(tmp_path, data_dir):
    bpmn = data_dir / "process" / "invalid_xml.bpmn"
    proc = engine("validate", "--bpmn", bpmn, *DMN, cwd=tmp_path, check=3)
    assert re.search(rf"{re.escape(str(bpmn))}:5: invalid XML: .*startEvent", proc.stdout)


def test_several_problems_are_reported_at_once_one_line_each(tmp_path):
    bpmn = broken_copy(tmp_path, 'camunda:topic="git-inspector.status"', 'camunda:topic="nope"')
    text = bpmn.read_text().replace('camunda:decisionRef="select_plugin"', 'camunda:decisionRef="nothing"')
    bpmn.write_text(text.replace('bpmnElement="Task_execute"', 'bpmnElement="Task_x"'))
    proc = engine("validate", "--bpmn", bpmn, *DMN, cwd=tmp_path, check=3)
    problem_lines = [x for x in proc.stdout.splitlines() if x.startswith(str(bpmn))]
    assert len(problem_lines) == 3, proc.stdout
    assert "3 problem(s)" in proc.stderr


def close_renamed(text, tag):
    """Close the renamed Task_commit_ledger with its new tag (the model has other plain tasks)."""
    start = text.index(f'<bpmn:{tag} id="Task_commit_ledger"')
    end = text.index("</bpmn:task>", start)
    return text[:end] + f"</bpmn:{tag}>" + text[end + len("</bpmn:task>"):]


def test_xsd_violation_is_reported(tmp_path):
    bpmn = broken_copy(tmp_path, '<bpmn:task id="Task_commit_ledger"', '<bpmn:taks id="Task_commit_ledger"')
    bpmn.write_text(close_renamed(bpmn.read_text(), "taks"))
    proc = engine("validate", "--bpmn", bpmn, *DMN, cwd=tmp_path, check=3)
    assert "XSD:" in proc.stdout and "taks" in proc.stdout


@pytest.mark.parametrize("cell", ['"git" "x"'])
def test_bad_dmn_cell_is_reported_at_validate(tmp_path, cell):
    dmn = broken_copy(tmp_path, "<text>\"git\"</text>", f"<text>{cell}</text>", name="decisions.dmn")
    proc = engine("validate", "--dmn", dmn, cwd=tmp_path, check=3)
    assert "select_plugin" in proc.stdout and str(dmn) in proc.stdout


def test_dmn_decision_without_shape_is_reported(tmp_path):
    dmn = broken_copy(tmp_path, 'dmnElementRef="gate_tier"', 'dmnElementRef="gate_tiers"', name="decisions.dmn")
    proc = engine("validate", "--dmn", dmn, cwd=tmp_path, check=3)
    assert re.search(r"decisions\.dmn:\d+ decision gate_tier 'Quality Gate Tier': has no DMNShape", proc.stdout)


def test_condition_that_is_not_feel_is_reported(tmp_path):
    bpmn = broken_copy(tmp_path, ">plugin = null<", ">plugin = = null<")
    proc = engine("validate", "--bpmn", bpmn, *DMN, cwd=tmp_path, check=3)
    line = line_of(bpmn, "plugin = = null")
    assert f"{bpmn}:{line} sequenceFlow Flow_no_plugin 'no': conditionExpression 'plugin = = null' is not " \
           "valid FEEL" in proc.stdout


def test_a_dmn_file_is_checked_on_its_own_in_every_dmn_version(tmp_path, data_dir):
    for name in ("dmn11_camunda.dmn", "prefixed_namespace_dmn12.dmn", "several_decisions.dmn"):
        proc = engine("validate", "--dmn", data_dir / "dmn" / name, cwd=tmp_path, check=0)
        assert proc.stdout.strip() == f"models ok: {data_dir / 'dmn' / name}"


def test_a_user_task_is_reported_because_nobody_would_complete_it(tmp_path):
    bpmn = broken_copy(tmp_path, '<bpmn:task id="Task_commit_ledger"', '<bpmn:userTask id="Task_commit_ledger"')
    bpmn.write_text(close_renamed(bpmn.read_text(), "userTask"))
    proc = engine("validate", "--bpmn", bpmn, *DMN, cwd=tmp_path, check=3)
    assert "userTask Task_commit_ledger 'Commit ledger': waits for a person" in proc.stdout


def test_a_start_event_that_waits_for_a_message_is_refused(tmp_path):
    bpmn = broken_copy(tmp_path, '<bpmn:outgoing>Flow_start_validate</bpmn:outgoing>\n    </bpmn:startEvent>',
                       '<bpmn:outgoing>Flow_start_validate</bpmn:outgoing>\n      '
                       '<bpmn:messageEventDefinition id="Msg_def" />\n    </bpmn:startEvent>')
    proc = engine("validate", "--bpmn", bpmn, *DMN, cwd=tmp_path, check=3)
    assert "startEvent StartEvent_task 'Task claimed': is a message start event" in proc.stdout


def test_a_step_with_nowhere_to_go_is_refused(tmp_path):
    bpmn = broken_copy(tmp_path, '<bpmn:outgoing>Flow_commit_done</bpmn:outgoing>\n    </bpmn:task>',
                       '</bpmn:task>')
    proc = engine("validate", "--bpmn", bpmn, *DMN, cwd=tmp_path, check=3)
    assert "task Task_commit_ledger 'Commit ledger': has no outgoing sequence flow" in proc.stdout


def test_a_flow_to_a_missing_element_is_named_with_its_line(tmp_path):
    bpmn = broken_copy(tmp_path, 'sourceRef="Task_commit_ledger" targetRef="EndEvent_done"',
                       'sourceRef="Task_commit_ledger" targetRef="EndEvent_gone"')
    proc = engine("validate", "--bpmn", bpmn, *DMN, cwd=tmp_path, check=3)
    line = line_of(bpmn, 'targetRef="EndEvent_gone"')
    assert f"{bpmn}:{line} sequenceFlow Flow_commit_done: has targetRef 'EndEvent_gone', which is no element" \
        in proc.stdout


def test_a_script_in_another_language_is_refused(tmp_path):
    bpmn = broken_copy(tmp_path, '<bpmn:task id="Task_commit_ledger" name="Commit ledger">',
                       '<bpmn:scriptTask id="Task_commit_ledger" name="Commit ledger" scriptFormat="javascript">'
                       '<bpmn:script>var x = 1;</bpmn:script>')
    bpmn.write_text(close_renamed(bpmn.read_text(), "scriptTask"))
    proc = engine("validate", "--bpmn", bpmn, *DMN, cwd=tmp_path, check=3)
    assert "has scriptFormat 'javascript': engine run executes Python scripts only" in proc.stdout


def test_an_id_spiffworkflow_uses_itself_is_refused(tmp_path):
    bpmn = broken_copy(tmp_path, 'id="StartEvent_task"', 'id="Start"')
    text = bpmn.read_text().replace('sourceRef="StartEvent_task"', 'sourceRef="Start"').replace(
        'bpmnElement="StartEvent_task"', 'bpmnElement="Start"')
    bpmn.write_text(text)
    proc = engine("validate", "--bpmn", bpmn, *DMN, cwd=tmp_path, check=3)
    assert "startEvent Start 'Task claimed': has the id 'Start', which SpiffWorkflow uses" in proc.stdout


def test_a_name_with_line_breaks_stays_on_one_line(tmp_path):
    bpmn = broken_copy(tmp_path, 'name="Commit ledger">\n      <bpmn:incoming>Flow_record_ledger</bpmn:incoming>\n'
                                 '      <bpmn:outgoing>Flow_commit_done</bpmn:outgoing>',
                       'name="Commit&#10;ledger">\n      <bpmn:incoming>Flow_record_ledger</bpmn:incoming>')
    proc = engine("validate", "--bpmn", bpmn, *DMN, cwd=tmp_path, check=3)
    assert "task Task_commit_ledger 'Commit ledger': has no outgoing sequence flow" in proc.stdout


def test_validate_outside_a_workspace_says_so_instead_of_checking_the_bundled_models(tmp_path):
    proc = engine("validate", cwd=tmp_path, check=5)
    assert "is not an engine workspace, so it has no models to validate" in proc.stderr
    assert "models ok" not in proc.stdout
    proc = engine("validate", "--bpmn", SHIPPED / "orchestration.bpmn", cwd=tmp_path, check=5)
    assert "--bpmn FILE --dmn FILE" in proc.stderr


def test_a_workspace_whose_models_are_gone_is_refused_not_run_on_the_bundled_ones(example_ws):
    (example_ws / "process" / "orchestration.bpmn").unlink()
    proc = engine("run", "--drain", cwd=example_ws, check=3)
    assert f"{example_ws / 'process' / 'orchestration.bpmn'}: cannot read the file" in proc.stdout + proc.stderr
    assert sorted(p.name for p in (example_ws / ".tasks" / "inbox").iterdir()) == ["001-inspect.jsonl",
                                                                                "002-normalize.jsonl"]
    engine("validate", cwd=example_ws, check=3)
