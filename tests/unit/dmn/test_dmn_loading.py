"""Loading DMN files: every DMN version and notation, and every problem reported at once with its place."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import dmn
from engine.errors import ModelError, Problem

DATA = Path(__file__).resolve().parents[2] / "data" / "dmn"

NAMESPACES = {
    "1.1": "http://www.omg.org/spec/DMN/20151101/dmn.xsd",
    "1.2": "http://www.omg.org/spec/DMN/20180521/MODEL/",
    "1.3": "https://www.omg.org/spec/DMN/20191111/MODEL/",
    "1.4": "https://www.omg.org/spec/DMN/20211108/MODEL/",
    "1.5": "https://www.omg.org/spec/DMN/20230324/MODEL/",
}


@pytest.mark.parametrize("version", sorted(NAMESPACES))
def test_every_dmn_version_loads_and_evaluates(make_dmn, make_table, version):
    xml = make_table([['"a"'], ['"b"']], ['"first"', '"second"'], inputs=[("x", "string")])
    model = dmn.load(make_dmn(xml, namespace=NAMESPACES[version]), filename=f"v{version}.dmn")
    assert model.namespace == NAMESPACES[version]
    assert model.filename == f"v{version}.dmn"
    assert model.evaluate("d", {"x": "b"}).value == "second"


def test_prefixed_namespace_and_missing_ids():
    model = dmn.load(DATA / "prefixed_namespace_dmn12.dmn")
    assert list(model.decisions) == ["grade"]
    grade = model.decision("grade")
    assert grade.inputs[0].id is None and grade.inputs[0].type_ref == "number"  # feel:number
    assert [model.evaluate("grade", {"score": s}).value for s in (95, 90, 80, 75, 10)] == ["A", "A", "B", "B", "C"]
    # rules without an id are named by their 1-based position
    assert model.evaluate("grade", {"score": 10}).matched_rules == ["rule-3"]


def test_dmn11_camunda_file():
    model = dmn.load(DATA / "dmn11_camunda.dmn")
    assert model.namespace == NAMESPACES["1.1"]
    dish = model.decision("dish")
    assert dish.inputs[0].input_variable == "currentSeason"
    assert dish.inputs[1].type_ref == "integer"
    ctx = {"season": "Fall", "guestCount": 4, "guestsWithChildren": False}
    assert model.evaluate("dish", ctx).value == "Spareribs"
    # camunda:inputVariable names the input value inside the cell
    assert model.evaluate("dish", {"season": "Summer", "guestCount": 20}).value == "Light salad"
    # empty cells mean "any"
    assert model.evaluate("dish", {"season": "Winter", "guestCount": 99}).value == "Roastbeef"
    # a rule without an id
    spring = model.evaluate("dish", {"season": "Spring", "guestCount": 2})
    assert (spring.value, spring.matched_rules) == ("Steak", ["rule-5"])


def test_dmn11_camunda_drg_reads_the_required_decision_by_output_name():
    model = dmn.load(DATA / "dmn11_camunda.dmn")
    result = model.evaluate("beverages", {"season": "Fall", "guestCount": 4, "guestsWithChildren": True})
    assert result.value == ["Aecht Schlenkerla Rauchbier", "Water", "Apple Juice"]
    assert result.matched_rules == ["row-aecco", "row-water", "row-juice"]
    assert [r.decision_id for r in result.required] == ["dish"]
    assert result.required[0].value == "Spareribs"


def test_several_decisions_in_file_order():
    model = dmn.load(DATA / "several_decisions.dmn")
    assert list(model.decisions) == ["risk_level", "credit_limit", "approval_by_name", "pricing", "invoice_line",
                                     "summary", "collected_tags", "tag_count"]
    assert model.decisions["credit_limit"].required == ["risk_level"]


def test_load_accepts_a_str_path_a_pathlike_and_bytes():
    path = DATA / "prefixed_namespace_dmn12.dmn"
    assert dmn.load(str(path)).filename == str(path)
    assert dmn.load(path).filename == str(path)
    assert dmn.load(path.read_bytes(), filename="from-bytes.dmn").filename == "from-bytes.dmn"
    assert dmn.load(path.read_bytes()).filename == "<bytes>"


def test_a_missing_file_is_a_model_error(tmp_path):
    with pytest.raises(ModelError) as info:
        dmn.load(tmp_path / "nope.dmn")
    assert "cannot read the file" in info.value.problems[0].message
    assert info.value.problems[0].file == str(tmp_path / "nope.dmn")


def _problems(name: str) -> list[Problem]:
    with pytest.raises(ModelError) as info:
        dmn.load(DATA / name)
    problems = info.value.problems
    assert problems == dmn.check(DATA / name)  # check() finds exactly what load() raises
    assert all(p.file == str(DATA / name) for p in problems)
    return problems


def test_every_bad_cell_is_reported_at_once_with_its_place():
    problems = _problems("bad_cells.dmn")
    assert len(problems) == 5  # and the unknown function 'lsit contains' is a warning, null at evaluation
    first = problems[0]
    assert first.line == 29
    assert first.element == "decision 'bad_one' rule 'broken_rule' (#2) input 1 'Amount'"
    assert "'>> 5'" in first.message
    assert first.extra == {"decision": "bad_one", "rule": "broken_rule", "column": "input 1 'Amount'", "text": ">> 5"}
    texts = [p.extra["text"] for p in problems]
    assert texts == [">> 5", "[1..", '"unterminated', '"x" +', "amount +* 2"]
    # a rule without an id is named by its position
    assert problems[1].element == "decision 'bad_one' rule #3 input 1 'Amount'"
    assert problems[3].element == "decision 'bad_one' rule #3 output 1 'result'"
    # the second decision's problems come too
    assert problems[4].element == "decision 'bad_two' input 1 'Amount'" and "input expression" in problems[4].message
    # and the Problem prints as file:line element: message
    assert str(first).startswith(f"{DATA / 'bad_cells.dmn'}:29 decision 'bad_one' rule 'broken_rule'")


def test_model_error_message_counts_the_problems():
    with pytest.raises(ModelError, match=r"bad_cells\.dmn: 5 problems in the decision model"):
        dmn.load(DATA / "bad_cells.dmn")


def test_xml_syntax_error_gives_the_line():
    (problem,) = _problems("xml_syntax_error.dmn")
    assert problem.line == 6
    assert problem.message.startswith("XML syntax error")


def test_unknown_namespace():
    (problem,) = _problems("unknown_namespace.dmn")
    assert "unknown namespace 'https://www.omg.org/spec/DMN/20991231/MODEL/'" in problem.message
    assert problem.line == 3


def test_not_a_dmn_document():
    problems = dmn.check(b"<process xmlns='http://www.omg.org/spec/BPMN/20100524/MODEL'/>")
    assert len(problems) == 1 and "the root element is <process>, not a DMN <definitions>" in problems[0].message
    (bpmn,) = dmn.check(b"<bpmn:definitions xmlns:bpmn='http://www.omg.org/spec/BPMN/20100524/MODEL'/>")
    assert "unknown namespace 'http://www.omg.org/spec/BPMN/20100524/MODEL'" in bpmn.message


def test_requirement_cycle_is_reported_once_with_its_path():
    (problem,) = _problems("requirement_cycle.dmn")
    assert problem.message == "requiredDecision cycle: a -> b -> c -> a"
    assert problem.extra["decision"] == "a"


def test_required_decision_that_does_not_exist():
    (problem,) = _problems("required_decision_missing.dmn")
    assert "'#ghost_decisoin' names no decision" in problem.message
    assert "did you mean '#ghost_decision'?" in problem.message
    assert problem.element == "decision 'needs_ghost'"


def test_rule_with_the_wrong_number_of_entries():
    (problem,) = _problems("wrong_entry_count.dmn")
    assert problem.message == "the rule has 1 input entries, but the table has 2 inputs"
    assert problem.element == "decision 'counts' rule 'short_rule' (#2)"
    assert problem.line == 28


def test_unknown_hit_policy_and_misplaced_aggregation():
    typo, misplaced = _problems("unknown_hit_policy.dmn")
    assert "unknown hitPolicy 'FRIST'" in typo.message and typo.extra["decision"] == "typo_policy"
    assert "aggregation SUM is only allowed with hit policy COLLECT, not FIRST" in misplaced.message


def test_unknown_aggregation(make_dmn, make_table):
    xml = make_table([["-"]], ["1"], inputs=[("x", None)], hit_policy="COLLECT").replace(
        'hitPolicy="COLLECT"', 'hitPolicy="COLLECT" aggregation="AVERAGE"')
    (problem,) = dmn.check(make_dmn(xml))
    assert "unknown aggregation 'AVERAGE'" in problem.message


def test_priority_without_output_values_is_a_problem(make_dmn, make_table):
    xml = make_table([["-"]], ["1"], inputs=[("x", None)], hit_policy="PRIORITY")
    (problem,) = dmn.check(make_dmn(xml))
    assert "PRIORITY orders results by the outputs' outputValues" in problem.message


def test_unknown_type_ref_suggests_the_closest():
    (problem,) = _problems("unknown_type_ref.dmn")
    assert problem.message == "unknown typeRef 'strnig'; did you mean 'string'?"


def test_non_feel_expression_language_is_reported():
    (problem,) = _problems("javascript_expression_language.dmn")
    assert "expression language 'javascript' is not supported" in problem.message
    assert problem.extra["rule"] == "js_rule"


@pytest.mark.parametrize(("amount", "status", "expected"), [
    (7, "open", "big"), (10, "open", "other"), (7, "closed", "other"), (3, "open", "other")])
def test_juel_cells_are_read_as_the_feel_they_spell(amount, status, expected):
    model = dmn.load(DATA / "juel_expression_language.dmn")
    assert model.evaluate("juel_decision", {"amount": amount, "status": status}).value == expected


def test_problems_of_different_kinds_come_together(make_dmn):
    body = """
<decision id="one" name="One"><informationRequirement><requiredDecision href="#nowhere"/></informationRequirement>
  <literalExpression><text>1 +</text></literalExpression></decision>
<decision id="two" name="Two"><decisionTable hitPolicy="SOMETIMES">
  <input label="A"><inputExpression typeRef="number"><text>a</text></inputExpression></input>
  <output name="o" typeRef="number"/>
  <rule><inputEntry><text>&lt;&lt;</text></inputEntry><outputEntry><text>1</text></outputEntry></rule>
</decisionTable></decision>
<decision id="two" name="Duplicate"><literalExpression><text>2</text></literalExpression></decision>
<decision name="no id"><literalExpression><text>3</text></literalExpression></decision>
<decision id="empty" name="Empty"/>
<decision id="loop" name="Boxed for"><for/></decision>"""
    problems = dmn.check(make_dmn(body), filename="mixed.dmn")
    messages = [p.message for p in problems]
    assert any("literal expression '1 +' does not parse" in m for m in messages)
    assert any("unknown hitPolicy 'SOMETIMES'" in m for m in messages)
    assert any("input entry '<<' does not parse" in m for m in messages)
    assert any("duplicate decision id 'two'" in m for m in messages)
    assert any("the boxed <for> of the for has no iteratorVariable" in m for m in messages)
    assert any("'#nowhere' names no decision" in m for m in messages)
    # a decision without an id is known by its name; one without logic is null with a warning: no problems
    assert not any("has no id" in m or "no decision logic" in m for m in messages)
    assert len(problems) == 6
    assert all(p.file == "mixed.dmn" and p.line for p in problems)


def test_check_of_a_good_file_is_empty():
    assert dmn.check(DATA / "several_decisions.dmn") == []


def test_a_bad_constant_date_is_a_load_warning_and_null(make_dmn, make_table):
    xml = make_table([['date("2024-13-01")']], ['"x"'], inputs=[("x", "date")])
    assert dmn.check(make_dmn(xml)) == []
    model = dmn.load(make_dmn(xml))
    (warning,) = model.load_warnings
    assert "date() cannot be built from these arguments" in warning.message
    assert warning.extra["text"] == 'date("2024-13-01")'
    result = model.evaluate("d", {"x": "2024-01-01"})
    assert result.value is None and "date() cannot be built" in result.warnings[0]


def test_wrong_number_of_function_arguments_is_a_load_warning_and_null(make_dmn, make_table):
    xml = make_table([['starts with(?)']], ['"x"'], inputs=[("x", None)])
    model = dmn.load(make_dmn(xml))
    (warning,) = model.load_warnings
    assert "function 'starts with' takes 2 argument(s), got 1" in warning.message
    assert model.evaluate("d", {"x": "a"}).value is None


def test_absurdly_nested_cell_is_a_problem_not_a_crash(make_dmn, make_table):
    cell = "(" * 2000 + "1" + ")" * 2000
    (problem,) = dmn.check(make_dmn(make_table([[cell]], ['"x"'], inputs=[("x", None)])))
    assert "nested too deeply" in problem.message


@pytest.mark.parametrize("default_ns", ['xmlns="http://example.org/tool/model"', ""])
def test_dmn_declared_on_an_unused_prefix_is_still_read(default_ns):
    # Exporters (Trisotech, and TCK files written by it) leave <definitions> in the model's own
    # namespace, or in none, and declare DMN on a prefix nothing uses. The file says it is DMN.
    xml = (f'<definitions {default_ns} xmlns:semantic="http://www.omg.org/spec/DMN/20180521/MODEL/" id="m" '
           'name="m" namespace="http://example.org/tool/model">'
           '<decision id="greet" name="Greeting"><literalExpression><text>"Hello " + Full Name</text>'
           "</literalExpression></decision></definitions>").encode()
    model = dmn.load(xml)
    assert model.evaluate("Greeting", {"Full Name": "Ada"}).value == "Hello Ada"
