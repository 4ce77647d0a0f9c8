"""A step is one function: process variables in, a StepResult (variables, ledger record) out."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import structlog

from engine import dmn
from engine.plugins.dispatch import Dispatcher
from engine.plugins.loader import Registry
from engine.plugins.pool import WorkerPool
from engine.process.steps import Step, run_decision, run_service
from engine.sdk import Context

SOURCE = '''
from engine.sdk import PluginError


def work(ctx, data):
    mode = data["task"]["args"].get("mode")
    if mode == "business":
        raise PluginError("the branch moved", code="MERGE_CONFLICT")
    if mode == "retry":
        raise PluginError("try later", retryable=True)
    if mode == "kernel":
        return {"error": None}
    return {"answer": data.get("extra", 1) * 2}
'''


@pytest.fixture
def registry(tmp_path):
    folder = tmp_path / "plugins" / "stepper"
    (folder / "src").mkdir(parents=True)
    (folder / "plugin.spec.json").write_text(json.dumps({
        "id": "stepper", "version": "1.0.0", "category": "transformation", "isolation": "inprocess",
        "errors": {"MERGE_CONFLICT": "someone else changed the branch"},
        "operations": {"work": {"input_schema": {"type": "object"}, "output_schema": {"type": "object"}}}}))
    (folder / "manifest.json").write_text(json.dumps({"id": "stepper", "version": "1.0.0",
                                                      "entry_point": "src/stepper.py"}))
    (folder / "src" / "stepper.py").write_text(SOURCE)
    return Registry.discover([tmp_path / "plugins"])


def call_for(tmp_path):
    dispatcher = Dispatcher(WorkerPool(tmp_path))
    ctx = Context("run", "t1", datetime(2026, 1, 1, tzinfo=UTC), 1, False, tmp_path, structlog.get_logger())
    return lambda plugin, op, data: dispatcher.call(plugin, op, ctx, data)


def parameter(text, scope):
    return scope[text[2:-1]] if text.startswith("${") else text


def data(mode=None, **extra):
    return {"task": {"id": "t1", "tool": "x", "args": {"mode": mode} if mode else {}}, "error": None, "failures": 0,
            **extra}


def test_a_call_that_succeeds_sets_its_output_and_clears_error(registry, tmp_path):
    step = Step("S", "Work", "serviceTask", inputs=[("extra", "${n}")], outputs=[("copied", "${answer}")])
    result = run_service(step, "stepper.work", data(n=21), registry=registry, call=call_for(tmp_path),
                         parameter=parameter)
    assert result.variables == {"answer": 42, "error": None, "copied": 42}
    assert result.record["status"] == "completed" and result.record["plugin"]["id"] == "stepper"
    assert result.record["input_digest"] != result.record["output_digest"]
    assert result.output == {"answer": 42} and not result.failed


@pytest.mark.parametrize(("mode", "kind", "code", "retryable"), [
    ("business", "business", "MERGE_CONFLICT", False),
    ("retry", "technical", None, True),
    ("kernel", "technical", "engine.contract", False),
])
def test_a_failed_call_sets_a_typed_error_and_counts_it(registry, tmp_path, mode, kind, code, retryable):
    result = run_service(Step("S", None, "serviceTask"), "stepper.work", data(mode, failures=1), registry=registry,
                         call=call_for(tmp_path), parameter=parameter)
    error = result.variables["error"]
    assert (error["kind"], error["code"], error["retryable"]) == (kind, code, retryable)
    assert error["plugin"] == "stepper" and error["operation"] == "work"
    assert result.variables["failures"] == 2 and result.failed
    assert result.record["error"] == {"kind": kind, "code": code, "retryable": retryable}
    assert result.record["reason"] == error["message"]


def test_dispatch_topic_without_a_selected_plugin_is_a_typed_failure(registry, tmp_path):
    result = run_service(Step("S", None, "serviceTask"), "dispatch", data(), registry=registry,
                         call=call_for(tmp_path), parameter=parameter)
    assert result.variables["error"]["code"] == "engine.no_plugin"


def test_an_unexpected_exception_in_the_call_is_not_swallowed(registry):
    def broken(plugin, op, payload):
        raise RuntimeError("kernel bug")

    with pytest.raises(RuntimeError):
        run_service(Step("S", None, "serviceTask"), "stepper.work", data(), registry=registry, call=broken,
                    parameter=parameter)


def test_a_decision_step_stores_its_result_and_the_matched_rules():
    model = dmn.load(Path(__file__).resolve().parents[2] / "process" / "decisions.dmn")
    step = Step("D", "Select", "businessRuleTask")
    result = run_decision(step, "select_plugin", "plugin", data() | {"task": {"id": "t", "tool": "git"}},
                          decisions=model, parameter=parameter)
    assert result.variables == {"plugin": "git-inspector"}
    assert result.record["decision"]["id"] == "select_plugin" and result.record["decision"]["matched_rules"]


# -- what a decision step records (decision 0016) ------------------------------------------------------------

DECISIONS = Path(__file__).resolve().parents[2] / "process" / "decisions.dmn"
DMN_DATA = Path(__file__).resolve().parents[1] / "data" / "dmn"


def modeler_rows(path, decision_id):
    """rule id -> (row number as Camunda Modeler shows it, the rule's description), read from the XML itself."""
    from lxml import etree

    root = etree.parse(str(path)).getroot()
    ns = {"d": root.nsmap[None]}
    rules = root.findall(f".//d:decision[@id='{decision_id}']/d:decisionTable/d:rule", ns)
    return {r.get("id"): (row, r.findtext("d:description", namespaces=ns)) for row, r in enumerate(rules, start=1)}


def decide(decision_id, variables, model_path=DECISIONS):
    model = dmn.load(model_path)
    result = run_decision(Step("D", "Decide", "businessRuleTask"), decision_id, "out", variables, decisions=model,
                          parameter=parameter)
    return result.record["decision"]


def test_a_decision_record_names_its_inputs_rows_annotations_hit_policy_and_model():
    import hashlib

    from engine.contracts import problems

    decision = decide("select_plugin", data() | {"task": {"id": "t", "tool": "git", "args": {"operation": "commit"}}})
    row, annotation = modeler_rows(DECISIONS, "select_plugin")["select_plugin_git_executor"]
    assert row == 1 and annotation.startswith("git operations that change the repository")
    assert decision == {
        "id": "select_plugin", "result": "git-executor", "matched_rules": ["select_plugin_git_executor"],
        "hit_policy": "UNIQUE", "model": hashlib.sha256(DECISIONS.read_bytes()).hexdigest(),
        "inputs": {"Tool": "git", "Operation": "commit"},
        "rules": [{"id": "select_plugin_git_executor", "row": 1, "annotation": annotation,
                   "outputs": {"plugin": "git-executor"}}]}
    assert problems("ledger.v1#/properties/record", {"kind": "step", "status": "completed", "decision": decision}) == []


def test_the_row_is_the_rules_place_in_its_table_and_what_else_a_rule_read_is_kept_for_re_deriving():
    task = {"id": "t", "tool": "flaky", "tags": [], "retry": {"max_retries": 3, "backoff_sec": 2}}
    decision = decide("retry_policy", {"task": task, "failures": 2,
                                       "error": {"code": None, "retryable": True, "message": "try later"}})
    [hit] = decision["rules"]
    assert (hit["row"], hit["annotation"]) == modeler_rows(DECISIONS, "retry_policy")[hit["id"]]
    assert hit["row"] > 1 and hit["outputs"] == {"action": "retry", "backoff": 4} == decision["result"]
    assert decision["hit_policy"] == "FIRST"
    assert decision["inputs"] == {"Tags": [], "Error code": None, "Retryable": True, "Failures": 2}
    # `<= task.retry.max_retries` and the backoff read the task beyond the table's columns
    assert decision["context"] == {"task.retry.backoff_sec": 2, "task.retry.max_retries": 3}


def test_collect_with_an_aggregation_records_each_rules_own_outputs():
    decision = decide("collect_sum", {"items": 150}, DMN_DATA / "hit_policies.dmn")
    assert decision["hit_policy"] == "COLLECT SUM"
    assert [(r["row"], r["outputs"]) for r in decision["rules"]] == [(1, {"fee": 5}), (2, {"fee": 10}),
                                                                    (3, {"fee": 20})]
    assert decision["result"] == 35 and all(r["annotation"] is None for r in decision["rules"])
    fewer = decide("collect_sum", {"items": 50}, DMN_DATA / "hit_policies.dmn")
    assert fewer["matched_rules"] == ["fee_any", "fee_ten"] and [r["row"] for r in fewer["rules"]] == [1, 2]


def test_a_decision_that_is_no_table_records_the_variables_it_read_and_its_required_decisions():
    decision = decide("summary", {"Applicant Age": 30, "amount": 200, "unread": "x"},
                      DMN_DATA / "several_decisions.dmn")
    assert decision["hit_policy"] is None and decision["rules"] == []
    assert decision["inputs"] == {"Applicant Age": 30, "amount": 200}
    assert [(r["id"], r["inputs"], [h["row"] for h in r["rules"]]) for r in decision["required"]] == [
        ("pricing", {"Amount": 200}, [2]), ("risk_level", {"Applicant Age": 30}, [2])]


def test_a_decision_record_is_the_same_each_time():
    variables = data() | {"task": {"id": "t", "tool": "git", "tags": ["x"]}}
    assert decide("select_plugin", variables) == decide("select_plugin", variables)


ROUTE_DMN = b'''<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" id="route" name="Route" namespace="t">
  <decision id="route" name="Route">
    <decisionTable id="route_table" hitPolicy="FIRST">
      <input id="in_prompt" label="Prompt">
        <inputExpression id="in_prompt_expr" typeRef="string"><text>task.prompt</text></inputExpression>
      </input>
      <output id="out_route" name="route" typeRef="string" />
      <rule id="route_ai">
        <description>anything with a prompt goes to the AI</description>
        <inputEntry id="route_ai_in"><text>not(null)</text></inputEntry>
        <outputEntry id="route_ai_out"><text>"ai"</text></outputEntry>
      </rule>
    </decisionTable>
  </decision>
</definitions>
'''


def test_a_secret_among_a_decisions_inputs_is_redacted_in_the_ledger_and_not_re_derived(tmp_path):
    import hashlib

    from engine.audit.explain import CANNOT, rederive
    from engine.ledger import Ledger
    from tests.unit.test_redact import GITHUB

    model_file = tmp_path / "route.dmn"
    model_file.write_bytes(ROUTE_DMN)
    decision = decide("route", {"task": {"id": "t", "tool": "x", "prompt": f"push with {GITHUB}"}}, model_file)
    assert decision["inputs"] == {"Prompt": f"push with {GITHUB}"}  # the step's record, before the ledger
    ledger = Ledger(tmp_path / "ledger")
    ledger.append({"kind": "step", "status": "completed", "step": "D", "decision": decision},
                  {"run_id": "r", "ts": "2026-01-01T00:00:00+00:00"})
    text = ledger.path.read_text()
    assert GITHUB not in text
    [entry] = ledger.entries()
    assert entry["record"]["decision"]["inputs"] == {"Prompt": "push with [REDACTED:github_token]"}
    store = tmp_path / "models"
    store.mkdir()
    (store / f"dmn-{hashlib.sha256(ROUTE_DMN).hexdigest()}.dmn").write_bytes(ROUTE_DMN)
    verdict = rederive(entry["record"], store)
    assert verdict.verdict == CANNOT and "inputs.Prompt" in verdict.reason
    assert rederive({"decision": decision}, store).verdict == "agrees"  # the same record, unredacted


# -- the flows a gateway took ----------------------------------------------------------------------------------

GATEWAYS = '''<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="defs" targetNamespace="t">
  <bpmn:process id="gateways" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:sequenceFlow id="f_start" sourceRef="start" targetRef="xor"/>
    <bpmn:exclusiveGateway id="xor" default="f_xor_small"/>
    <bpmn:sequenceFlow id="f_xor_big" sourceRef="xor" targetRef="big">
      <bpmn:conditionExpression>n &gt; 5</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f_xor_small" sourceRef="xor" targetRef="small"/>
    <bpmn:task id="big"/>
    <bpmn:task id="small"/>
    <bpmn:sequenceFlow id="f_big" sourceRef="big" targetRef="merge"/>
    <bpmn:sequenceFlow id="f_small" sourceRef="small" targetRef="merge"/>
    <bpmn:exclusiveGateway id="merge"/>
    <bpmn:sequenceFlow id="f_merge" sourceRef="merge" targetRef="or"/>
    <bpmn:inclusiveGateway id="or" default="f_or_none"/>
    <bpmn:sequenceFlow id="f_or_a" sourceRef="or" targetRef="a">
      <bpmn:conditionExpression>n &gt; 1</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f_or_b" sourceRef="or" targetRef="b">
      <bpmn:conditionExpression>n &gt; 2</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f_or_c" sourceRef="or" targetRef="c">
      <bpmn:conditionExpression>n &gt; 100</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f_or_none" sourceRef="or" targetRef="join_or"/>
    <bpmn:task id="a"/>
    <bpmn:task id="b"/>
    <bpmn:task id="c"/>
    <bpmn:sequenceFlow id="f_a" sourceRef="a" targetRef="join_or"/>
    <bpmn:sequenceFlow id="f_b" sourceRef="b" targetRef="join_or"/>
    <bpmn:sequenceFlow id="f_c" sourceRef="c" targetRef="join_or"/>
    <bpmn:inclusiveGateway id="join_or"/>
    <bpmn:sequenceFlow id="f_join_or" sourceRef="join_or" targetRef="and"/>
    <bpmn:parallelGateway id="and"/>
    <bpmn:sequenceFlow id="f_and_x" sourceRef="and" targetRef="x"/>
    <bpmn:sequenceFlow id="f_and_y" sourceRef="and" targetRef="y"/>
    <bpmn:task id="x"/>
    <bpmn:task id="y"/>
    <bpmn:sequenceFlow id="f_x" sourceRef="x" targetRef="join_and"/>
    <bpmn:sequenceFlow id="f_y" sourceRef="y" targetRef="join_and"/>
    <bpmn:parallelGateway id="join_and"/>
    <bpmn:sequenceFlow id="f_join_and" sourceRef="join_and" targetRef="race"/>
    <bpmn:eventBasedGateway id="race"/>
    <bpmn:sequenceFlow id="f_race_now" sourceRef="race" targetRef="now"/>
    <bpmn:sequenceFlow id="f_race_later" sourceRef="race" targetRef="later"/>
    <bpmn:intermediateCatchEvent id="now">
      <bpmn:timerEventDefinition><bpmn:timeDuration>"PT0S"</bpmn:timeDuration></bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:intermediateCatchEvent id="later">
      <bpmn:timerEventDefinition><bpmn:timeDuration>"PT1H"</bpmn:timeDuration></bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:sequenceFlow id="f_now" sourceRef="now" targetRef="end"/>
    <bpmn:sequenceFlow id="f_later" sourceRef="later" targetRef="end"/>
    <bpmn:endEvent id="end"/>
  </bpmn:process>
</bpmn:definitions>
'''


def gateway_flows(tmp_path, n):
    """Drive the process above with SpiffWorkflow (Python conditions over ``n``): element id -> flows_taken."""
    from engine.process.parser import EngineParser
    from engine.process.steps import flows_taken
    from engine.process.workflow import EngineWorkflow

    path = tmp_path / "gateways.bpmn"
    path.write_text(GATEWAYS)
    parser = EngineParser()
    parser.add_bpmn_file(str(path))
    workflow = EngineWorkflow(parser.get_spec("gateways"))
    for task in workflow.get_tasks():
        task.data["n"] = n
    taken = {}

    def done(task):
        taken.setdefault(task.task_spec.bpmn_id, flows_taken(task))

    for _ in range(10):
        workflow.do_engine_steps(did_complete_task=done)
        if workflow.is_completed():
            break
        workflow.refresh_timers()
    assert workflow.is_completed()
    return taken


@pytest.mark.parametrize(("n", "exclusive", "inclusive"), [
    (1, ["f_xor_small"], ["f_or_none"]),     # no condition holds: the default flows
    (3, ["f_xor_small"], ["f_or_a", "f_or_b"]),
    (10, ["f_xor_big"], ["f_or_a", "f_or_b"]),
])
def test_flows_taken_names_the_flows_each_gateway_took(tmp_path, n, exclusive, inclusive):
    taken = gateway_flows(tmp_path, n)
    assert taken["xor"] == exclusive and taken["or"] == inclusive
    assert taken["and"] == ["f_and_x", "f_and_y"]  # parallel: every outgoing flow
    assert taken["merge"] == ["f_merge"] and taken["join_or"] == ["f_join_or"] and taken["join_and"] == ["f_join_and"]
    assert taken["race"] == ["f_race_now"]  # event-based: the flow to the event that came first
    gateways = {"xor", "merge", "or", "join_or", "and", "join_and", "race"}
    others = {element: flows for element, flows in taken.items() if element not in gateways}
    assert {"start", "x", "y", "now", "end"} <= set(others) and set(others.values()) == {None}


def test_now_and_today_in_a_decision_read_the_runs_clock(tmp_path):
    from engine.clock import FixedClock

    model_path = tmp_path / "clocked.dmn"
    model_path.write_text(
        '<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" id="d" name="d" namespace="n">'
        '<decision id="when" name="when"><literalExpression><text>string(today()) + " " + string(now())</text>'
        '</literalExpression></decision></definitions>')
    model = dmn.load(model_path)
    clock = FixedClock(datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC))
    result = run_decision(Step("D", "When", "businessRuleTask"), "when", "out", data(), decisions=model,
                          parameter=parameter, clock=clock)
    assert result.variables["out"] == "2031-05-06 2031-05-06T07:08:10Z"  # the clock moved a second per reading


def test_a_decisions_decimal_result_reaches_process_data_as_a_json_number(tmp_path):
    from decimal import Decimal

    model_path = tmp_path / "third.dmn"
    model_path.write_text(
        '<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" id="d" name="d" namespace="n">'
        '<decision id="third" name="third"><literalExpression><text>[1/3, 2]</text>'
        '</literalExpression></decision></definitions>')
    model = dmn.load(model_path)
    assert model.evaluate("third", {}).value == [Decimal("0.3333333333333333333333333333333333"), 2]  # the API: exact
    result = run_decision(Step("D", "Third", "businessRuleTask"), "third", "out", data(), decisions=model,
                          parameter=parameter)
    assert result.variables["out"] == [1 / 3, 2] and type(result.variables["out"][0]) is float  # what plugins get
    assert result.record["decision"]["result"] == [1 / 3, 2]  # and what the ledger records, as before
