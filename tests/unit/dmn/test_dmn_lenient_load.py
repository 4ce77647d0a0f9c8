"""What a DMN file says that cannot work is null at evaluation, with a warning, not a refused model.

FEEL that parses but cannot be evaluated (a built-in called with the wrong number of arguments or with named
arguments it does not take, an unknown function, an invalid date or time literal), a decision without logic,
a Java function, an invocation binding a name that is no parameter: each is a load warning
(``DecisionModel.load_warnings``, printed by ``engine validate``) and null when evaluated, with the warning on
the result. The model's other decisions evaluate as usual. Text that does not parse as FEEL, and structural
problems, still refuse the model.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine import dmn
from engine.bundled import bundled
from engine.errors import ModelError
from tests.conftest import engine

DATA = Path(__file__).resolve().parents[2] / "data" / "dmn"


def test_wrong_argument_count_is_null_with_a_warning_and_the_rest_works():
    path = DATA / "lenient_wrong_argument_count.dmn"
    assert dmn.check(path) == []
    model = dmn.load(path)
    texts = [w.extra["text"] for w in model.load_warnings]
    assert texts == ["abs()", 'if abs(1, 2) = null then "null" else "value"', "lsit contains([1], 1)",
                     "starts with(?)", "upper case()"]
    first = model.load_warnings[0]
    assert first.file == str(path) and first.line == 8 and first.element == "decision 'no_argument' literal expression"
    assert "function 'abs' takes 1 argument(s), got 0" in first.message and first.message.endswith("its value is null")
    result = model.evaluate("no_argument", {})
    assert result.value is None
    assert result.warnings == [f"{path}:8 decision 'no_argument' literal expression: literal expression 'abs()' "
                               "cannot be evaluated: function 'abs' takes 1 argument(s), got 0 (at column 1); its "
                               "value is null"]
    assert model.evaluate("inside", {}).value is None  # the whole cell is null, not only the call
    unknown = model.evaluate("unknown", {})
    assert unknown.value is None and "unknown function 'lsit contains'; did you mean 'list contains'?" \
        in unknown.warnings[0]
    fine = model.evaluate("fine", {"n": -2})
    assert fine.value == 3 and fine.warnings == []


def test_a_cell_that_cannot_work_in_a_table_is_null_and_its_rule_does_not_match():
    model = dmn.load(DATA / "lenient_wrong_argument_count.dmn")
    prefixed = model.evaluate("table", {"word": "prefix"})
    assert prefixed.value == "prefixed" and prefixed.matched_rules == ["prefix_rule"]
    assert len(prefixed.warnings) == 1 and "rule 'broken_rule' (#1) input 1 'Word'" in prefixed.warnings[0]
    assert "the test is null, so the rule does not match" in prefixed.warnings[0]
    other = model.evaluate("table", {"word": "other"})
    assert other.value is None and other.matched_rules == ["other_rule"]
    assert any("output entry 'upper case()' cannot be evaluated" in w for w in other.warnings)


def test_invalid_temporal_literals_are_null_with_a_warning():
    model = dmn.load(DATA / "lenient_invalid_temporal.dmn")
    assert [w.element for w in model.load_warnings] == [
        "decision 'at_literal' literal expression", "decision 'bad_date' literal expression",
        "decision 'compares_to_null' literal expression"]
    at = model.evaluate("at_literal", {})
    assert at.value is None and "a temporal literal cannot be built from these arguments" in at.warnings[0]
    bad = model.evaluate("Bad date", {})
    assert bad.value is None and "date() cannot be built from these arguments" in bad.warnings[0]
    assert model.evaluate("good_date", {}).value.isoformat() == "2018-12-25"


def test_a_warning_is_given_once_per_evaluation_however_often_the_cell_runs(make_dmn):
    body = """
<businessKnowledgeModel id="b" name="Broken"><encapsulatedLogic><formalParameter name="x"/>
  <literalExpression><text>abs()</text></literalExpression></encapsulatedLogic></businessKnowledgeModel>
<decision id="d" name="d"><knowledgeRequirement><requiredKnowledge href="#b"/></knowledgeRequirement>
  <literalExpression><text>for i in [1, 2, 3] return Broken(i)</text></literalExpression></decision>"""
    result = dmn.load(make_dmn(body), filename="loop.dmn").evaluate("d", {})
    assert result.value == [None, None, None]
    (warning,) = result.warnings
    assert warning.startswith("loop.dmn:5 businessKnowledgeModel 'Broken' Broken: literal expression 'abs()'")


def test_a_decision_without_id_is_known_by_its_name():
    model = dmn.load(DATA / "decision_without_id.dmn")
    assert list(model.decisions) == ["greeting", "with_id"]
    assert model.load_warnings == []
    assert model.evaluate("greeting", {"who": "Ada"}).value == "Hello Ada"
    assert model.evaluate("Shout", {"who": "Ada"}).value == "ADA"


def test_a_decision_with_neither_id_nor_name_is_still_a_problem(make_dmn):
    body = '<decision><literalExpression><text>1</text></literalExpression></decision>'
    (problem,) = dmn.check(make_dmn(body))
    assert problem.message == "decision #1 has neither an id nor a name"


def test_a_decision_without_logic_is_null_with_a_warning_unless_given():
    path = DATA / "decision_without_logic.dmn"
    model = dmn.load(path)
    (warning,) = model.load_warnings
    assert warning.element == "decision 'evaluation'" and "has no decision logic" in warning.message
    alone = model.evaluate("evaluation", {})
    assert alone.value is None and "has no decision logic" in alone.warnings[0]
    report = model.evaluate("report", {})
    assert report.value == "no evaluation"
    assert "has no decision logic" in report.required[0].warnings[0]
    # the caller may give its value (as a decision service's input decision is given)
    assert model.evaluate("report", {"Teacher's evaluation": "keen"}).value == "keen"


def test_a_java_function_is_null_with_a_warning():
    model = dmn.load(DATA / "java_function.dmn")
    assert [w.element for w in model.load_warnings] == ["businessKnowledgeModel 'Java cos'", "decision 'calls_boxed'"]
    assert all("function kind 'Java' is not supported" in w.message for w in model.load_warnings)
    bkm = model.evaluate("calls_bkm", {})
    assert bkm.value is None and "calling 'Java cos' gives null" in bkm.warnings[0]
    boxed = model.evaluate("calls_boxed", {})
    assert boxed.value is None and "function kind 'Java' is not supported" in boxed.warnings[0]
    assert model.evaluate("feel_only", {}).value == 42


def test_an_invocation_binding_no_parameter_is_null_with_a_warning(make_dmn):
    body = """
<businessKnowledgeModel id="b_fee" name="Fee"><encapsulatedLogic><formalParameter name="amount"/>
  <literalExpression><text>amount * 2</text></literalExpression></encapsulatedLogic></businessKnowledgeModel>
<decision id="bad" name="Bad binding"><invocation><literalExpression><text>Fee</text></literalExpression>
  <binding><parameter name="amout"/><literalExpression><text>1</text></literalExpression></binding>
</invocation></decision>
<decision id="good" name="Good binding"><invocation><literalExpression><text>Fee</text></literalExpression>
  <binding><parameter name="amount"/><literalExpression><text>4</text></literalExpression></binding>
</invocation></decision>"""
    model = dmn.load(make_dmn(body), filename="fee.dmn")
    (warning,) = model.load_warnings
    assert warning.message == ("the invocation binds 'amout', which is not a parameter of 'Fee' (amount); did you "
                               "mean 'amount'?; the invocation is null")
    bad = model.evaluate("bad", {})
    assert bad.value is None and bad.warnings == [str(warning)]
    assert model.evaluate("good", {}).value == 8


def test_a_syntax_error_still_refuses_the_model(make_dmn):
    body = """
<decision id="broken" name="Broken"><literalExpression><text>1 +</text></literalExpression></decision>
<decision id="semantic" name="Semantic"><literalExpression><text>abs()</text></literalExpression></decision>"""
    with pytest.raises(ModelError, match="1 problem in the decision model") as caught:
        dmn.load(make_dmn(body), filename="syntax.dmn")
    (problem,) = caught.value.problems
    assert "literal expression '1 +' does not parse" in problem.message and problem.extra["decision"] == "broken"


def test_bkm_parameters_with_dotted_names_read_the_callers_paths(make_dmn):
    body = """
<businessKnowledgeModel id="b" name="Describe"><encapsulatedLogic>
  <formalParameter name="Person.Name" typeRef="string"/>
  <literalExpression><text>"Name: " + Person.Name</text></literalExpression></encapsulatedLogic>
</businessKnowledgeModel>
<decision id="d" name="d"><invocation><literalExpression><text>Describe</text></literalExpression>
  <binding><parameter name="Person.Name"/><literalExpression><text>Person.Name</text></literalExpression></binding>
</invocation></decision>"""
    model = dmn.load(make_dmn(body), filename="dotted.dmn")
    assert model.evaluate("d", {"Person": {"Name": "Ann"}}).value == "Name: Ann"


def test_a_parameter_typed_as_a_function_takes_a_function(make_dmn):
    body = """
<itemDefinition name="tUnary"><functionItem outputTypeRef="number"><parameters name="n" typeRef="number"/>
</functionItem></itemDefinition>
<businessKnowledgeModel id="b" name="Twice"><encapsulatedLogic><formalParameter name="f" typeRef="tUnary"/>
  <formalParameter name="x" typeRef="number"/>
  <literalExpression><text>f(f(x))</text></literalExpression></encapsulatedLogic></businessKnowledgeModel>
<decision id="d" name="d"><literalExpression><text>Twice(function(n) n + 3, 1)</text></literalExpression></decision>
<decision id="e" name="e"><literalExpression><text>Twice("no function", 1)</text></literalExpression></decision>"""
    model = dmn.load(make_dmn(body), filename="lambda.dmn")
    assert model.evaluate("d", {}).value == 7
    assert model.evaluate("e", {}).value is None


@pytest.mark.parametrize(("kind", "logic", "expected"), [
    ("for", '<for iteratorVariable="x"><in><literalExpression><text>[1, 2, 3]</text></literalExpression></in>'
            "<return><literalExpression><text>x * 2</text></literalExpression></return></for>", [2, 4, 6]),
    ("some", '<some iteratorVariable="x"><in><literalExpression><text>[1, 5]</text></literalExpression></in>'
             "<satisfies><literalExpression><text>x &gt; 3</text></literalExpression></satisfies></some>", True),
    ("every", '<every iteratorVariable="x"><in><literalExpression><text>[1, 5]</text></literalExpression></in>'
              "<satisfies><literalExpression><text>x &gt; 3</text></literalExpression></satisfies></every>", False),
    ("filter", "<filter><in><literalExpression><text>[{a: 1}, {a: 4}]</text></literalExpression></in>"
               "<match><literalExpression><text>a &gt; 2</text></literalExpression></match></filter>", [{"a": 4}]),
    ("not a list", '<for iteratorVariable="x"><in><literalExpression><text>1</text></literalExpression></in>'
                   "<return><literalExpression><text>x</text></literalExpression></return></for>", None),
    ("no boolean", '<some iteratorVariable="x"><in><literalExpression><text>[1, 2]</text></literalExpression>'
                   '</in><satisfies><literalExpression><text>if x = 2 then true else "no"</text>'
                   "</literalExpression></satisfies></some>", None),
    ("conditional", '<conditional><if><literalExpression><text>"abc"</text></literalExpression></if>'
                    '<then><literalExpression><text>"then"</text></literalExpression></then>'
                    '<else><literalExpression><text>"else"</text></literalExpression></else></conditional>', None),
    ("null condition", "<conditional><if><literalExpression><text>null</text></literalExpression></if>"
                       '<then><literalExpression><text>"then"</text></literalExpression></then>'
                       '<else><literalExpression><text>"else"</text></literalExpression></else></conditional>',
     "else"),
])
def test_boxed_iterations_filters_and_conditionals(make_dmn, kind, logic, expected):
    model = dmn.load(make_dmn(f'<decision id="d" name="d">{logic}</decision>'), filename="boxed.dmn")
    assert model.evaluate("d", {}).value == expected


def test_validate_prints_the_warnings_and_exits_0_or_3_with_strict(tmp_path):
    path = DATA / "lenient_invalid_temporal.dmn"
    proc = engine("validate", "--dmn", path, cwd=tmp_path, check=0)
    warnings = [x for x in proc.stdout.splitlines() if x.startswith("warning: ")]
    assert len(warnings) == 3
    assert warnings[0].startswith(f"warning: {path}:6 decision 'at_literal' literal expression: literal expression "
                                  "'@\"foo\"' cannot be evaluated")
    assert f"models ok: {path} (3 warning(s))" in proc.stdout
    proc = engine("validate", "--dmn", path, "--strict", cwd=tmp_path, check=3)
    assert "3 warning(s)" in proc.stderr and "(--strict)" in proc.stderr


def test_validate_of_a_process_prints_its_decisions_warnings_too(tmp_path):
    shipped = bundled("process")
    dmn_text = (shipped / "decisions.dmn").read_text()
    assert '<text>"codex"</text>' in dmn_text, "fixture drifted"
    copy = tmp_path / "decisions.dmn"
    copy.write_text(dmn_text.replace('<text>"codex"</text>', "<text>starts with(?)</text>", 1))
    args = ("validate", "--bpmn", shipped / "orchestration.bpmn", "--dmn", copy)
    proc = engine(*args, cwd=tmp_path, check=0)
    (warning,) = [x for x in proc.stdout.splitlines() if x.startswith("warning: ")]
    assert f"{copy}:" in warning and "rule 'select_plugin_codex'" in warning and "takes 2 argument(s), got 1" in warning
    engine(*args, "--strict", cwd=tmp_path, check=3)


def test_validate_still_refuses_a_syntax_error(tmp_path):
    proc = engine("validate", "--dmn", DATA / "bad_cells.dmn", cwd=tmp_path, check=3)
    assert "does not parse" in proc.stdout and "warning:" not in proc.stdout
