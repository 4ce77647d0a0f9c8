"""typeRef, inputValues and outputValues at evaluation, and coerce_inputs for `engine decide --input`."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from pathlib import Path

import pytest

from engine import dmn
from engine.dmn import YearMonthDuration, to_json
from engine.errors import DecisionError

DATA = Path(__file__).resolve().parents[2] / "data" / "dmn"
FILE = DATA / "types_and_values.dmn"


@pytest.fixture(scope="module")
def model() -> dmn.DecisionModel:
    return dmn.load(DATA / "types_and_values.dmn")


def hits(model: dmn.DecisionModel, **ctx: object) -> list[str]:
    return model.evaluate("typed_inputs", ctx).value  # type: ignore[no-any-return]


def test_strings_from_json_become_dates_times_and_durations_by_type_ref(model):
    assert hits(model, start="2024-02-01") == ["start after new year"]
    assert hits(model, at="09:15:00") == ["morning"]
    assert hits(model, deadline="2024-06-01T12:00:00") == ["deadline in 2024"]
    assert hits(model, grace="P2D") == ["grace of a day or more"]
    assert hits(model, term="P1Y1M") == ["term over a year"]


def test_python_temporal_values_are_accepted_as_they_are(model):
    assert hits(model, start=date(2024, 2, 1), at=time(8), grace=timedelta(days=3)) == [
        "start after new year", "morning", "grace of a day or more"]
    assert hits(model, deadline=datetime(2025, 1, 1)) == []  # the range is half open
    assert hits(model, term=YearMonthDuration(12)) == []


def test_numbers_integers_doubles_and_booleans(model):
    assert hits(model, count=3, ratio=0.5, flag=True, size=2_000_000) == [
        "more than two", "ratio one half", "flagged", "big"]
    assert hits(model, count=3.0) == ["more than two"]  # a whole float is an integer
    assert hits(model, count="3") == ["more than two"]  # so is a numeric string


@pytest.mark.parametrize(("variable", "value", "expected", "hits"), [
    ("start", "31/01/2024", "Start date", []),
    ("start", 20240101, "Start date", []),
    ("count", 2.5, "Count", ["more than two"]),  # `> 2` still reads 2.5
    ("flag", "maybe", "Flag", []),
    ("ratio", "half", "Ratio", []),
    ("grace", "P1Y", "Grace", []),  # a years-months duration is not a days-time duration
])
def test_a_value_that_does_not_fit_an_input_type_is_used_as_it_is_with_a_warning(model, variable, value, expected,
                                                                                  hits):
    # DMN converts at decisions, parameters and input data, not at an input expression's typeRef (TCK
    # 0004-lending has `string` on boolean and number inputs); the cells read the value unconverted.
    result = model.evaluate("typed_inputs", {variable: value})
    assert result.value == hits
    [warning] = result.warnings
    assert warning.startswith(f"{FILE}:4: decision 'typed_inputs' (Typed Inputs): "
                              f"input '{expected}' ({variable}): expected ")
    assert warning.endswith("; the value is used as it is")


def test_an_output_that_does_not_fit_its_type_is_null_with_a_warning(model):
    assert model.evaluate("typed_output", {}).value == date(2024, 3, 1)
    result = model.evaluate("output_type_mismatch", {})
    assert (result.value, result.matched_rules) == (None, ["says_text"])
    assert result.warnings == [f"{FILE}:360: decision 'output_type_mismatch' (Output Type Mismatch): "
                               "output 'count' of rule says_text: expected number, got string \"many\"; "
                               "the output is null"]


def test_a_value_outside_input_values_is_null_with_a_warning(model):
    ok = model.evaluate("input_values", {"colour": "red", "percent": 50})
    assert (ok.value, ok.warnings) == (True, [])
    assert model.evaluate("input_values", {"colour": None, "percent": None}).warnings == []  # null is no value
    result = model.evaluate("input_values", {"colour": "purple", "percent": 101})
    assert result.value is True  # the table's only rule is `-`, which matches null too
    assert result.warnings == [
        f"{FILE}:378: decision 'input_values' (Input Values): input 'Colour' (colour) is \"purple\", "
        "which is not among its allowed values \"red\",\"green\",\"blue\"; the input is null",
        f"{FILE}:378: decision 'input_values' (Input Values): input 'Percent' (percent) is 101, "
        "which is not among its allowed values [0..100]; the input is null"]


def test_an_output_outside_output_values_is_null_with_a_warning(model):
    assert model.evaluate("output_values", {"amount": 1}).value == "A"
    result = model.evaluate("output_values", {"amount": 50})
    assert (result.value, result.matched_rules) == (None, ["grade_z"])
    assert result.warnings == [f"{FILE}:410: decision 'output_values' (Output Values): output 'grade' "
                               "of rule grade_z is \"Z\", which is not among its output values \"A\",\"B\"; "
                               "the output is null"]
    assert result.as_dict()["warnings"] == result.warnings
    assert "warnings" not in model.evaluate("output_values", {"amount": 1}).as_dict()  # ledger records unchanged


def test_rules_see_the_null_input_and_other_outputs_keep_their_values(make_dmn):
    # As the DMN TCK (compliance-level-3 1157) has it: the rest of the table goes on with null.
    model = dmn.load(make_dmn("""
<decision id="size" name="Size"><decisionTable hitPolicy="FIRST">
  <input label="Shirt size"><inputExpression typeRef="string"><text>shirt</text></inputExpression>
    <inputValues><text>"S","M","L"</text></inputValues></input>
  <output name="label" typeRef="string"><outputValues><text>"small","medium","other"</text></outputValues></output>
  <output name="code" typeRef="string"><outputValues><text>"S","M","L","?"</text></outputValues></output>
  <rule><inputEntry><text>null</text></inputEntry>
        <outputEntry><text>"unknown"</text></outputEntry><outputEntry><text>"?"</text></outputEntry></rule>
  <rule><inputEntry><text>-</text></inputEntry>
        <outputEntry><text>"other"</text></outputEntry><outputEntry><text>shirt</text></outputEntry></rule>
</decisionTable></decision>
<decision id="needs_size" name="Needs size">
  <informationRequirement><requiredDecision href="#size"/></informationRequirement>
  <literalExpression><text>Size.label = null</text></literalExpression></decision>"""), filename="sizes.dmn")
    result = model.evaluate("Size", {"shirt": "XL"})
    assert result.value == {"label": None, "code": "?"}  # rule 1 matched null; its "unknown" is not allowed
    assert [w.split(": ", 2)[2] for w in result.warnings] == [
        'input \'Shirt size\' (shirt) is "XL", which is not among its allowed values "S","M","L"; the input is null',
        'output \'label\' of rule rule-1 is "unknown", which is not among its output values "small","medium",'
        '"other"; the output is null']
    requiring = model.evaluate("needs_size", {"shirt": "XL"})
    assert requiring.value is True  # the requiring decision sees the null
    assert requiring.warnings == [] and requiring.required[0].warnings == result.warnings
    assert requiring.as_dict()["required"][0]["warnings"] == result.warnings


def test_input_values_read_as_dmn_unary_tests(make_dmn):
    # `?` alone allows the value it equals; a condition that does not use `?` allows nothing by being true.
    def allowed(values: str, value: str) -> bool:
        model = dmn.load(make_dmn(f"""
<decision id="d" name="d"><decisionTable>
  <input><inputExpression><text>{value}</text></inputExpression><inputValues><text>{values}</text></inputValues></input>
  <output/><rule><inputEntry><text>-</text></inputEntry><outputEntry><text>"x"</text></outputEntry></rule>
</decisionTable></decision>"""))
        return model.evaluate("d", {}).warnings == []
    assert allowed("?", '"foo"') and allowed("?", "false") and allowed("?", "true")
    assert allowed('"bar", string length(?) = 3', '"foo"')
    assert not allowed('"bar", string length("?") = 1', '"foo"')
    assert not allowed("[345, ? = 123, 456]", "123")
    assert not allowed("string length(?) &gt;= 3", "123")
    assert allowed("not(456, 789)", "123") and not allowed("not(123)", "123")
    assert allowed("", "123") and allowed("-", "123")


def test_to_json_gives_iso_strings_and_plain_numbers():
    assert to_json({"d": date(2024, 1, 2), "t": time(10, 0), "dt": datetime(2024, 1, 2, 3, 4, 5),
                    "dur": timedelta(days=1, hours=2, minutes=3, seconds=4.5), "ym": YearMonthDuration(14),
                    "neg": -timedelta(hours=1), "zero": timedelta(0), "items": (1, 2.5)}) == {
        "d": "2024-01-02", "t": "10:00:00", "dt": "2024-01-02T03:04:05", "dur": "P1DT2H3M4.5S", "ym": "P1Y2M",
        "neg": "-PT1H", "zero": "PT0S", "items": [1, 2.5]}


# ---- coerce_inputs: what `engine decide --input name=value` hands over ---------------------------------


def test_coerce_by_label_expression_and_path(model):
    typed = model.decision("typed_inputs")
    ctx = typed.coerce_inputs({"Start date": "2024-02-01", "at": "09:00:00", "Deadline": "2024-06-01T00:00:00",
                               "Grace": "P1D", "Term": "P2Y", "Count": "3", "Ratio": "0.5", "Flag": "true",
                               "Size": "7"})
    assert ctx == {"start": date(2024, 2, 1), "at": time(9), "deadline": datetime(2024, 6, 1),
                   "grace": timedelta(days=1), "term": YearMonthDuration(24), "count": 3, "ratio": 0.5,
                   "flag": True, "size": 7}
    assert model.evaluate("typed_inputs", ctx).value == [
        "start after new year", "morning", "deadline in 2024", "grace of a day or more", "term over a year",
        "more than two", "ratio one half", "flagged"]


def test_coerce_bad_value_names_the_input_and_type(model):
    with pytest.raises(DecisionError, match=r"input 'Count' \(integer\): cannot use 'three'"):
        model.decision("typed_inputs").coerce_inputs({"Count": "three"})
    with pytest.raises(DecisionError, match=r"input 'Start date' \(date\): cannot use '2024-02-30'"):
        model.decision("typed_inputs").coerce_inputs({"Start date": "2024-02-30"})


def test_coerce_unknown_key_suggests_the_closest(model):
    with pytest.raises(DecisionError, match="no input or variable called 'Colur'. Did you mean 'Colour'?"):
        model.decision("input_values").coerce_inputs({"Colur": "red"})


def test_coerce_with_spaces_paths_and_camunda_input_variable():
    drg = dmn.load(DATA / "several_decisions.dmn")
    assert drg.decision("risk_level").coerce_inputs({"Applicant Age": "19"}) == {"Applicant Age": 19}
    # inputs of required decisions are accepted too
    ctx = drg.decision("approval_by_name").coerce_inputs({"Applicant Age": "40"})
    assert drg.evaluate("approval_by_name", ctx).value is True
    camunda = dmn.load(DATA / "dmn11_camunda.dmn").decision("dish")
    assert camunda.coerce_inputs({"currentSeason": "Fall", "How many guests": "4"}) == {
        "season": "Fall", "guestCount": 4}


def test_item_definitions_as_type_refs(make_dmn):
    body = """
<itemDefinition name="tPercent"><typeRef>number</typeRef>
  <allowedValues><text>[0..100]</text></allowedValues></itemDefinition>
<itemDefinition name="tTags" isCollection="true"><typeRef>string</typeRef></itemDefinition>
<decision id="d" name="D"><decisionTable hitPolicy="FIRST">
  <input label="Load"><inputExpression typeRef="tPercent"><text>load</text></inputExpression></input>
  <input label="Tags"><inputExpression typeRef="tTags"><text>tags</text></inputExpression></input>
  <output name="o" typeRef="string"/>
  <rule><inputEntry><text>&gt; 90</text></inputEntry><inputEntry><text>-</text></inputEntry>
        <outputEntry><text>"hot"</text></outputEntry></rule>
  <rule><inputEntry><text>-</text></inputEntry><inputEntry><text>list contains(?, "x")</text></inputEntry>
        <outputEntry><text>"tagged"</text></outputEntry></rule>
</decisionTable></decision>"""
    model = dmn.load(make_dmn(body), filename="items.dmn")
    assert model.evaluate("d", {"load": 95, "tags": []}).value == "hot"
    assert model.evaluate("d", {"load": 5, "tags": ["x"]}).value == "tagged"
    for ctx, value, reason in [
            ({"load": 150, "tags": []}, "hot", "input 'Load' (load): 150 is not one of the allowed values of tPercent: "
                                               "[0..100]; the value is used as it is"),
            ({"load": 5, "tags": "x"}, None, "input 'Tags' (tags): expected a list of tTags, got string"),
            ({"load": 5, "tags": ["x", 3]}, "tagged", "input 'Tags' (tags): expected string, got number 3")]:
        result = model.evaluate("d", ctx)
        assert result.value == value
        [warning] = result.warnings
        assert warning.startswith(f"items.dmn:7: decision 'd' (D): {reason}")
    assert model.decision("d").coerce_inputs({"Tags": '["a", "b"]', "Load": "50"}) == {
        "tags": ["a", "b"], "load": 50}


def test_input_data_type_refs_convert_the_callers_values(make_dmn):
    # Values arrive as text (from XML, forms, the command line): inputData typeRefs make them typed.
    model = dmn.load(make_dmn("""
        <itemDefinition name="tLoan">
          <itemComponent name="amount"><typeRef>number</typeRef></itemComponent>
          <itemComponent name="months"><typeRef>number</typeRef></itemComponent>
        </itemDefinition>
        <inputData id="i_ok" name="Approved"><variable name="Approved" typeRef="boolean"/></inputData>
        <inputData id="i_loan" name="Loan"><variable name="Loan" typeRef="tLoan"/></inputData>
        <inputData id="i_day" name="Day"><variable name="Day" typeRef="date"/></inputData>
        <decision id="both" name="Both"><literalExpression><text>Approved and true</text></literalExpression></decision>
        <decision id="monthly" name="Monthly"><literalExpression><text>Loan.amount / Loan.months</text>
        </literalExpression></decision>
        <decision id="next" name="Next"><literalExpression><text>Day + duration("P1D")</text></literalExpression>
        </decision>"""))
    assert model.evaluate("Both", {"Approved": "true"}).value is True
    assert model.evaluate("Both", {"Approved": None}).value is None
    assert model.evaluate("Monthly", {"Loan": {"amount": "1200", "months": "12"}}).value == 100
    assert model.evaluate("Next", {"Day": "2024-02-28"}).value == date(2024, 2, 29)
    maybe = model.evaluate("Both", {"Approved": "maybe"})
    assert maybe.value is None  # `null and true`
    assert [w.split(": ", 2)[2] for w in maybe.warnings] == [
        "inputData 'Approved' (boolean): expected boolean, got string \"maybe\"; it is null"]


def test_unknown_input_data_type_ref_is_reported_at_load(make_dmn):
    problems = dmn.check(make_dmn('<inputData id="i" name="Age"><variable name="Age" typeRef="nubmer"/></inputData>'
                                  '<decision id="d" name="D"><literalExpression><text>Age</text></literalExpression>'
                                  "</decision>"))
    assert [p.message for p in problems] == ["unknown typeRef 'nubmer'; did you mean 'number'?"]
