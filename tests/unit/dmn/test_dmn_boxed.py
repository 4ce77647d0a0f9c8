"""Business knowledge models, boxed contexts, invocations, function definitions, lists and relations."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from engine import dmn
from engine.errors import DecisionError

DATA = Path(__file__).resolve().parents[2] / "data" / "dmn"
PARCEL = {"Parcel weight": 8, "Zone": "domestic", "Member-level": 1}


@pytest.fixture(scope="module")
def model() -> dmn.DecisionModel:
    return dmn.load(DATA / "bkm_and_boxed_context.dmn")


def test_bkm_wrapping_a_decision_table_is_called_by_position(model):
    assert model.evaluate("Price", PARCEL).value == 6
    assert model.evaluate("Price", {**PARCEL, "Zone": "abroad"}).value == 20


def test_bkm_called_with_named_arguments_in_any_order(model):
    # Discount tier 2(percent: 10, price: Rate table(weight: 8, zone: "domestic")) = 6 - 0.6
    assert model.evaluate("Price by name", PARCEL).value == Decimal("5.4")


def test_boxed_invocation_binds_parameters_by_name(model):
    assert model.evaluate("Invoked price", PARCEL).value == 10  # weight 16: 4.5 + 11 * 0.5


def test_boxed_context_entries_see_earlier_entries_and_required_decisions(model):
    result = model.evaluate("Quote", PARCEL)
    assert result.value == {"Handling": 2, "Label": "cheap", "Total": 8}
    heavy = model.evaluate("Quote", {**PARCEL, "Parcel weight": 30}).value
    assert heavy == {"Handling": 10, "Label": "dear", "Total": 27}


def test_last_context_entry_without_variable_is_the_result(model):
    # double(Quote.Total) + tripled(x: 1), both functions defined in the context
    assert model.evaluate("Total only", PARCEL).value == 19


def test_relation_and_list_decisions(model):
    assert model.evaluate("Zones and rates", PARCEL).value == [
        {"zone": "domestic", "rate": 4.5}, {"zone": "abroad", "rate": 13}]
    assert model.evaluate("Weights", PARCEL).value == [8, 16]


def test_bkm_table_errors_name_the_bkm(make_dmn):
    body = """
<businessKnowledgeModel id="b" name="Pick"><encapsulatedLogic><formalParameter name="x"/>
  <decisionTable hitPolicy="UNIQUE"><input><inputExpression><text>x</text></inputExpression></input><output/>
    <rule id="r1"><inputEntry><text>&gt; 0</text></inputEntry><outputEntry><text>1</text></outputEntry></rule>
    <rule id="r2"><inputEntry><text>&gt; 1</text></inputEntry><outputEntry><text>2</text></outputEntry></rule>
  </decisionTable></encapsulatedLogic></businessKnowledgeModel>
<decision id="d" name="d"><literalExpression><text>Pick(5)</text></literalExpression></decision>"""
    model = dmn.load(make_dmn(body), filename="pick.dmn")
    with pytest.raises(DecisionError, match=r"pick.dmn:5: businessKnowledgeModel 'Pick' .* 2 matched: r1, r2"):
        model.evaluate("d", {})


def test_a_value_a_bkm_table_makes_null_is_reported_on_the_calling_decision(make_dmn):
    body = """
<businessKnowledgeModel id="b" name="Grade"><encapsulatedLogic><formalParameter name="x"/>
  <decisionTable><input><inputExpression><text>x</text></inputExpression></input>
    <output><outputValues><text>"A","B"</text></outputValues></output>
    <rule id="r1"><inputEntry><text>-</text></inputEntry><outputEntry><text>"Z"</text></outputEntry></rule>
  </decisionTable></encapsulatedLogic></businessKnowledgeModel>
<decision id="d" name="d"><literalExpression><text>[Grade(1), "after"]</text></literalExpression></decision>"""
    result = dmn.load(make_dmn(body), filename="grade.dmn").evaluate("d", {})
    assert result.value == [None, "after"]
    assert result.warnings == ["grade.dmn:5: businessKnowledgeModel 'Grade' (Grade): output 'output' of rule r1 is "
                               "\"Z\", which is not among its output values \"A\",\"B\"; the output is null"]


def test_wrong_arguments_to_a_bkm_give_null(make_dmn):
    body = """
<businessKnowledgeModel id="b" name="Twice"><encapsulatedLogic><formalParameter name="n" typeRef="number"/>
  <literalExpression><text>n * 2</text></literalExpression></encapsulatedLogic></businessKnowledgeModel>
<decision id="few" name="few"><literalExpression><text>Twice()</text></literalExpression></decision>
<decision id="bad_name" name="bad_name"><literalExpression><text>Twice(m: 1)</text></literalExpression></decision>
<decision id="bad_type" name="bad_type"><literalExpression><text>Twice("x")</text></literalExpression></decision>
<decision id="ok" name="ok"><literalExpression><text>Twice(n: "21")</text></literalExpression></decision>"""
    model = dmn.load(make_dmn(body), filename="twice.dmn")
    assert [model.evaluate(d, {}).value for d in ("few", "bad_name", "bad_type", "ok")] == [None, None, None, 42]


def test_trisotech_dotted_parameters_are_read_as_paths(make_dmn):
    body = """
<businessKnowledgeModel id="b" name="Describe"><encapsulatedLogic>
  <formalParameter name="Person.Name" typeRef="string"/><formalParameter name="Person.Age" typeRef="number"/>
  <literalExpression><text>Person.Name + " is " + string(Person.Age)</text></literalExpression>
</encapsulatedLogic></businessKnowledgeModel>
<decision id="d" name="d"><invocation><literalExpression><text>Describe</text></literalExpression>
  <binding><parameter name="Person.Name"/><literalExpression><text>p.Name</text></literalExpression></binding>
  <binding><parameter name="Person.Age"/><literalExpression><text>p.Age</text></literalExpression></binding>
</invocation></decision>"""
    model = dmn.load(make_dmn(body), filename="describe.dmn")
    assert model.evaluate("d", {"p": {"Name": "Ann", "Age": 40}}).value == "Ann is 40"


def test_bkms_call_each_other(make_dmn):
    body = """
<businessKnowledgeModel id="b1" name="Outer"><encapsulatedLogic><formalParameter name="x"/>
  <literalExpression><text>Inner(x) + 1</text></literalExpression></encapsulatedLogic></businessKnowledgeModel>
<businessKnowledgeModel id="b2" name="Inner"><encapsulatedLogic><formalParameter name="y"/>
  <literalExpression><text>y * 10</text></literalExpression></encapsulatedLogic></businessKnowledgeModel>
<decision id="d" name="d"><literalExpression><text>Outer(4)</text></literalExpression></decision>"""
    assert dmn.load(make_dmn(body), filename="chain.dmn").evaluate("d", {}).value == 41


def test_problems_in_bkms_and_boxed_expressions_are_reported_at_load():
    problems = dmn.check(DATA / "bkm_problems.dmn")
    found = {(p.line, p.element, p.message.split(":")[0]) for p in problems}
    assert all(p.file.endswith("bkm_problems.dmn") for p in problems)
    assert (8, "businessKnowledgeModel 'Fee' Fee", "literal expression 'amount * ' does not parse") in found
    messages = "\n".join(p.message for p in problems)
    assert "requiredKnowledge '#b_fe' names no businessKnowledgeModel in this file; did you mean '#b_fee'?" \
        in messages
    assert "context entry 1 of the context has no variable" in messages
    # a Java function, a binding that names no parameter and an unknown function are null at evaluation, with
    # a warning (tests/unit/dmn/test_dmn_lenient_load.py), not problems
    assert "Java" not in messages and "amout" not in messages and "Fees" not in messages
    assert len(problems) == 3
    assert all(p.line for p in problems)


def test_boxed_conditional(make_dmn):
    body = """
<decision id="d" name="d"><conditional>
  <if><literalExpression><text>n &gt; 3</text></literalExpression></if>
  <then><literalExpression><text>"big"</text></literalExpression></then>
  <else><literalExpression><text>"small"</text></literalExpression></else>
</conditional></decision>"""
    model = dmn.load(make_dmn(body), filename="cond.dmn")
    assert [model.evaluate("d", {"n": n}).value for n in (5, 1, None)] == ["big", "small", "small"]


def test_boxed_decision_result_is_checked_against_its_variable_type(make_dmn):
    body = """
<decision id="d" name="d"><variable name="d" typeRef="number"/>
  <context><contextEntry><literalExpression><text>"text"</text></literalExpression></contextEntry></context>
</decision>"""
    result = dmn.load(make_dmn(body), filename="typed.dmn").evaluate("d", {})
    assert result.value is None
    assert result.warnings == ["typed.dmn:4: decision 'd' (d): the expression '<context>' gives a value that is not "
                               "number: expected number, got string \"text\"; the result is null"]


def test_decision_service_is_called_like_a_function_and_returns_its_outputs(make_dmn):
    body = """
<inputData id="i_n" name="n"><variable name="n" typeRef="number"/></inputData>
<decision id="d_tenfold" name="tenfold"><variable name="tenfold"/>
  <informationRequirement><requiredInput href="#i_n"/></informationRequirement>
  <literalExpression><text>n * 10</text></literalExpression></decision>
<decision id="d_half" name="half"><variable name="half"/>
  <informationRequirement><requiredInput href="#i_n"/></informationRequirement>
  <literalExpression><text>n / 2</text></literalExpression></decision>
<decisionService id="s" name="Tenfold service"><variable name="Tenfold service"/>
  <outputDecision href="#d_tenfold"/><inputData href="#i_n"/></decisionService>
<decisionService id="s2" name="Both"><variable name="Both"/>
  <outputDecision href="#d_tenfold"/><outputDecision href="#d_half"/><inputData href="#i_n"/></decisionService>
<decision id="d" name="d"><knowledgeRequirement><requiredKnowledge href="#s"/></knowledgeRequirement>
  <literalExpression><text>Tenfold service(4) + Tenfold service(n: "1")</text></literalExpression>
</decision>
<decision id="d2" name="d2"><knowledgeRequirement><requiredKnowledge href="#s2"/></knowledgeRequirement>
  <literalExpression><text>Both(4)</text></literalExpression>
</decision>"""
    model = dmn.load(make_dmn(body), filename="service.dmn")
    # one output decision: its value; several: a context of them by name (DMN 1.3, 10.4)
    assert model.evaluate("d", {"n": 100}).value == 50
    assert model.evaluate("d2", {"n": 100}).value == {"tenfold": 40, "half": 2}


def test_decision_service_with_an_unknown_output_is_reported(make_dmn):
    body = """<decisionService id="s" name="S"><outputDecision href="#nothing"/></decisionService>
<decision id="d" name="d"><literalExpression><text>1</text></literalExpression></decision>"""
    (problem,) = dmn.check(make_dmn(body), filename="service.dmn")
    assert "decision service 'S': outputDecision '#nothing' names no decision in this file" in problem.message
    assert problem.element == "decisionService 'S'" and problem.line == 3  # the <outputDecision>


def test_functions_are_values(make_dmn):
    body = """
<businessKnowledgeModel id="b1" name="Apply"><encapsulatedLogic>
  <formalParameter name="f"/><formalParameter name="x"/>
  <literalExpression><text>f(x)</text></literalExpression></encapsulatedLogic></businessKnowledgeModel>
<businessKnowledgeModel id="b2" name="Multiplier"><encapsulatedLogic><formalParameter name="k"/>
  <literalExpression><text>function(x) x * k</text></literalExpression></encapsulatedLogic></businessKnowledgeModel>
<decision id="lambda" name="lambda"><literalExpression><text>function(a) a + 1</text></literalExpression></decision>
<decision id="d" name="d"><informationRequirement><requiredDecision href="#lambda"/></informationRequirement>
  <literalExpression><text>[Apply(abs, -3), Apply(Multiplier(2), 5), Multiplier(3)(3), lambda(1), Apply(sqrt, "x")]
  </text></literalExpression></decision>"""
    assert dmn.load(make_dmn(body), filename="values.dmn").evaluate("d", {}).value == [3, 10, 9, 2, None]
