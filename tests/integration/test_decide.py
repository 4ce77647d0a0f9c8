"""`engine decide` and `engine validate` on decision models, as a modeler uses them."""

import json

from engine.bundled import bundled
from tests.conftest import DATA, engine

DMN = DATA / "dmn"
SHIPPED_DMN = bundled("process") / "decisions.dmn"


def decide(*args, check=0, cwd=None):
    return engine("decide", *args, cwd=cwd, check=check)


def test_several_decisions_in_one_file_by_id_and_by_name(tmp_path):
    model = DMN / "several_decisions.dmn"
    proc = decide("risk_level", "--model", model, "--input", "Applicant Age=22", "--json", cwd=tmp_path)
    assert json.loads(proc.stdout) == {"result": "high"}
    proc = decide("Risk Level", "--model", model, "--input", "Applicant Age=40", "--json", cwd=tmp_path)
    assert json.loads(proc.stdout) == {"result": "low"}


def test_a_decision_that_requires_another(tmp_path):
    model = DMN / "several_decisions.dmn"
    proc = decide("credit_limit", "--model", model, "--input", "Applicant Age=22", "--json", "--explain", cwd=tmp_path)
    body = json.loads(proc.stdout)
    assert body["result"] == 1000
    assert body["explain"]["matched_rules"] == ["limit_high"]
    assert body["explain"]["required"][0]["decision_id"] == "risk_level"
    assert body["explain"]["required"][0]["matched_rules"] == ["risk_young"]
    proc = decide("credit_limit", "--model", model, "--input", "Applicant Age=22", "--explain", cwd=tmp_path)
    assert proc.stdout.splitlines() == ["1000",
                                        "credit_limit (Credit Limit), hit policy UNIQUE",
                                        '  input  Risk = "high"',
                                        "  row 1  -> limit = 1000",
                                        "  risk_level (Risk Level), hit policy FIRST",
                                        "    input  Applicant Age = 22",
                                        '    row 1  -> riskLevel = "high"',
                                        '    result = "high"']


def test_prefixed_namespace_file(tmp_path):
    model = DMN / "prefixed_namespace_dmn12.dmn"
    for score, grade in (("95", "A"), ("75", "B"), ("74.5", "C")):
        proc = decide("grade", "--model", model, "--input", f"score={score}", "--json", cwd=tmp_path)
        assert json.loads(proc.stdout) == {"result": grade}


def test_input_json_file(tmp_path):
    inputs = tmp_path / "in.json"
    inputs.write_text(json.dumps({"task": {"tool": "normalize"}}))
    proc = decide("select_plugin", "--model", SHIPPED_DMN, "--input-json", inputs, "--json", cwd=tmp_path)
    assert json.loads(proc.stdout) == {"result": "task-parser"}


def test_the_orchestration_tables_from_the_command_line(tmp_path):
    proc = decide("Quality Gate Tier", "--model", SHIPPED_DMN, "--input", "Tags=[\"docs\"]", "--input",
                  "Changed files=3", "--input", "Python changed=true", "--json", cwd=tmp_path)
    assert json.loads(proc.stdout) == {"result": "L0-L3"}
    proc = decide("rollback_trigger", "--model", SHIPPED_DMN, "--input", "Exit code=1", "--input", "Diff size=12",
                  cwd=tmp_path)
    assert proc.stdout.strip() == '"rollback"'


def test_bad_cells_are_reported_at_load_all_at_once(tmp_path):
    model = DMN / "bad_cells.dmn"
    proc = decide("bad_one", "--model", model, "--input", "Amount=1", check=3, cwd=tmp_path)
    lines = [x for x in proc.stderr.splitlines() if "does not parse" in x]
    assert len(lines) >= 5
    assert any("rule 'broken_rule'" in x and "'>> 5'" in x for x in lines)
    proc = decide("bad_one", "--model", model, "--json", check=3, cwd=tmp_path)
    body = json.loads(proc.stdout)
    assert "error" in body and len(body["problems"]) == len(lines)


def test_unknown_decision_suggests_the_closest(tmp_path):
    proc = decide("select_plugn", "--model", SHIPPED_DMN, "--json", check=7, cwd=tmp_path)
    assert "select_plugin" in json.loads(proc.stdout)["error"]


def test_bad_input_value_names_the_input_and_type(tmp_path):
    proc = decide("rollback_trigger", "--model", SHIPPED_DMN, "--input", "Exit code=zero", "--input", "Diff size=1",
                  check=7, cwd=tmp_path)
    assert "Exit code" in proc.stderr and "number" in proc.stderr


def test_malformed_input_option_is_a_usage_error(tmp_path):
    proc = decide("select_plugin", "--model", SHIPPED_DMN, "--input", "tool", check=2, cwd=tmp_path)
    assert "name=value" in proc.stderr


def test_validate_reports_every_bad_cell(tmp_path):
    model = DMN / "bad_cells.dmn"
    proc = engine("validate", "--dmn", model, cwd=tmp_path, check=3)
    lines = [x for x in proc.stdout.splitlines() if x.startswith(str(model))]
    assert len(lines) == 5  # the sixth bad cell, an unknown function, is null with a warning
    assert all("decision 'bad_" in x for x in lines)


def test_explain_shows_why_a_value_was_read_as_null(tmp_path):
    model = DMN / "types_and_values.dmn"
    proc = decide("input_values", "--model", model, "--input", "Colour=purple", "--input", "Percent=50", "--explain",
                  cwd=tmp_path)
    assert "warning:" in proc.stdout and '"purple", which is not among its allowed values' in proc.stdout


def test_decide_outside_a_workspace_needs_the_model_named(tmp_path):
    proc = decide("select_plugin", "--input", "tool=git", check=5, cwd=tmp_path)
    assert "is not an engine workspace, so it has no decisions.dmn" in proc.stderr and "--model FILE" in proc.stderr


# ---- --explain, as Camunda Modeler shows a decision ------------------------------------------------------

EXPLAINED_DMN = """<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" id="explained" name="explained"
             namespace="http://example.org/engine/tests">
  <decision id="change_size" name="Change size">
    <decisionTable id="change_size_table" hitPolicy="UNIQUE">
      <input id="cs_files" label="Changed files">
        <inputExpression typeRef="number"><text>changed_files</text></inputExpression>
      </input>
      <output id="cs_size" name="size" typeRef="string"/>
      <rule id="cs_small"><description>a handful of files</description>
        <inputEntry><text>&lt;= 3</text></inputEntry><outputEntry><text>"small"</text></outputEntry></rule>
      <rule id="cs_large"><description>more than three files</description>
        <inputEntry><text>&gt; 3</text></inputEntry><outputEntry><text>"large"</text></outputEntry></rule>
      <rule id="cs_unknown">
        <inputEntry><text>null</text></inputEntry><outputEntry><text>"unknown"</text></outputEntry></rule>
    </decisionTable>
  </decision>
  <decision id="select_plugin" name="Select plugin">
    <informationRequirement><requiredDecision href="#change_size"/></informationRequirement>
    <decisionTable id="select_plugin_table" hitPolicy="FIRST">
      <input id="sp_tool" label="Tool"><inputExpression typeRef="string"><text>tool</text></inputExpression></input>
      <input id="sp_size" label="Size"><inputExpression typeRef="string"><text>size</text></inputExpression></input>
      <output id="sp_plugin" name="plugin" typeRef="string"/>
      <output id="sp_review" name="review" typeRef="boolean"/>
      <rule id="sp_git"><description>git goes to the git plugin</description>
        <inputEntry><text>"git"</text></inputEntry><inputEntry><text>-</text></inputEntry>
        <outputEntry><text>"git"</text></outputEntry><outputEntry><text>false</text></outputEntry></rule>
      <rule id="sp_ai"><description>AI edits go to the AI editor</description>
        <inputEntry><text>"aider"</text></inputEntry><inputEntry><text>-</text></inputEntry>
        <outputEntry><text>"ai-editor"</text></outputEntry><outputEntry><text>size = "large"</text></outputEntry></rule>
      <rule id="sp_other">
        <inputEntry><text>-</text></inputEntry><inputEntry><text>-</text></inputEntry>
        <outputEntry><text>"shell"</text></outputEntry><outputEntry><text>false</text></outputEntry></rule>
    </decisionTable>
  </decision>
  <decision id="greeting" name="Greeting">
    <variable name="Greeting" typeRef="string"/>
    <literalExpression><text>"hello " + user.name</text></literalExpression>
  </decision>
</definitions>
"""


def explained_model(tmp_path):
    model = tmp_path / "explained.dmn"
    model.write_text(EXPLAINED_DMN, encoding="utf-8")
    return model


def test_explain_shows_the_matched_row_its_annotation_and_the_inputs_as_read(tmp_path):
    model = explained_model(tmp_path)
    proc = decide("select_plugin", "--model", model, "--input", "Tool=aider", "--input", "Changed files=5",
                  "--explain", cwd=tmp_path)
    assert proc.stdout.splitlines() == [
        '{"plugin": "ai-editor", "review": true}',
        "select_plugin (Select plugin), hit policy FIRST",
        '  input  Tool = "aider"',
        '  input  Size = "large"',
        '  row 2  "AI edits go to the AI editor"  -> plugin = "ai-editor", review = true',
        "  change_size (Change size), hit policy UNIQUE",
        "    input  Changed files = 5",
        '    row 2  "more than three files"  -> size = "large"',
        '    result = "large"',
    ]
    assert "warning" not in proc.stdout + proc.stderr and "note" not in proc.stdout  # every input was given


def test_explain_warns_of_each_input_that_was_not_given(tmp_path):
    model = explained_model(tmp_path)
    proc = decide("select_plugin", "--model", model, "--explain", cwd=tmp_path)
    lines = proc.stdout.splitlines()
    assert lines[0] == '{"plugin": "shell", "review": false}'
    assert "  input  Tool = null" in lines and "    input  Changed files = null" in lines
    assert "  row 3  -> plugin = \"shell\", review = false" in lines
    assert [x for x in lines if "warning" in x] == [
        "  warning: input 'Tool' (tool) was not given: read as null",
        "    warning: input 'Changed files' (changed_files) was not given: read as null",
    ]  # not Size: the required decision gives it
    proc = decide("select_plugin", "--model", model, "--input", "Tool=git", "--json", "--explain", cwd=tmp_path)
    facts = json.loads(proc.stdout)["explain"]
    assert facts["missing_inputs"] == [] and facts["warnings"] == []
    assert facts["required"][0]["missing_inputs"] == ["changed_files"]
    assert facts["required"][0]["warnings"] == ["input 'Changed files' (changed_files) was not given: read as null"]


def test_explain_as_json(tmp_path):
    model = explained_model(tmp_path)
    inputs = tmp_path / "in.json"
    inputs.write_text(json.dumps({"tool": "aider", "changed_files": 2, "colour": "red"}))
    proc = decide("select_plugin", "--model", model, "--input-json", inputs, "--json", "--explain", cwd=tmp_path)
    body = json.loads(proc.stdout)
    assert body["result"] == {"plugin": "ai-editor", "review": False}
    facts = body["explain"]
    assert {k: facts[k] for k in ("decision_id", "decision_name", "hit_policy", "inputs", "rules", "warnings",
                                  "missing_inputs", "unread_inputs")} == {
        "decision_id": "select_plugin", "decision_name": "Select plugin", "hit_policy": "FIRST",
        "inputs": {"Tool": "aider", "Size": "small"},
        "rules": [{"id": "sp_ai", "row": 2, "annotation": "AI edits go to the AI editor",
                   "outputs": {"plugin": "ai-editor", "review": False}}],
        "warnings": [], "missing_inputs": [], "unread_inputs": ["colour"]}
    [required] = facts["required"]
    assert required["decision_id"] == "change_size" and required["hit_policy"] == "UNIQUE"
    assert required["inputs"] == {"Changed files": 2} and required["required"] == []
    assert required["rules"] == [{"id": "cs_small", "row": 1, "annotation": "a handful of files",
                                  "outputs": {"size": "small"}}]
    proc = decide("select_plugin", "--model", model, "--input-json", inputs, "--explain", cwd=tmp_path)
    assert "  note: input 'colour' was given but not read by select_plugin" in proc.stdout.splitlines()
    proc = decide("select_plugin", "--model", model, "--input-json", inputs, "--json", cwd=tmp_path)
    assert json.loads(proc.stdout) == {"result": {"plugin": "ai-editor", "review": False}}


def test_explain_warns_of_an_input_given_as_nan(tmp_path):
    model = explained_model(tmp_path)
    inputs = tmp_path / "in.json"
    inputs.write_text('{"tool": "git", "changed_files": NaN}')
    proc = decide("select_plugin", "--model", model, "--input-json", inputs, "--explain", cwd=tmp_path)
    assert ("    warning: input 'Changed files' (changed_files) was given as NaN, which is no number in FEEL: "
            "read as null") in proc.stdout.splitlines()
    assert "    input  Changed files = null" in proc.stdout.splitlines()


def test_explain_a_literal_expression_decision(tmp_path):
    model = explained_model(tmp_path)
    proc = decide("greeting", "--model", model, "--explain", cwd=tmp_path)
    assert proc.stdout.splitlines()[1:] == ["greeting (Greeting)", "  input  user.name = null",
                                            "  warning: variable 'user.name' was not given: read as null"]
    inputs = tmp_path / "in.json"
    inputs.write_text(json.dumps({"user": {"name": "Ann"}}))
    proc = decide("greeting", "--model", model, "--input-json", inputs, "--json", "--explain", cwd=tmp_path)
    body = json.loads(proc.stdout)
    assert body["result"] == "hello Ann"
    assert body["explain"]["inputs"] == {"user.name": "Ann"} and body["explain"]["warnings"] == []
    assert body["explain"]["hit_policy"] is None and body["explain"]["rules"] == []


def test_explain_the_shipped_tables_with_their_annotations(tmp_path):
    proc = decide("select_plugin", "--model", SHIPPED_DMN, "--input", "Tool=aider", "--explain", cwd=tmp_path)
    lines = proc.stdout.splitlines()
    assert lines[1] == "select_plugin (Select Plugin), hit policy UNIQUE"
    assert '  input  Tool = "aider"' in lines and "  input  Operation = null" in lines
    assert any(x.startswith("  row ") and '"edits by the aider AI tool"' in x for x in lines)
    assert "  warning: input 'Operation' (task.args.operation) was not given: read as null" in lines


def test_an_input_file_that_cannot_be_read_is_a_clean_error_naming_it(tmp_path):
    model = DMN / "several_decisions.dmn"
    cases = {"latin1.json": ('{"Applicant Age": 22, "name": "Jos\xe9"}'.encode("latin-1"),
                             "not UTF-8 text (byte 0xe9 at offset 34, line 1)"),
             "huge.json": (b'{"Applicant Age": ' + b"9" * 5000 + b"}", "a number has more than 4300 digits"),
             "deep.json": (b'{"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
             "list.json": (b"[1, 2]", "must hold a JSON object"),
             "broken.json": (b'{"Applicant Age": }', "not valid JSON: Expecting value (line 1, column 19)")}
    for name, (body, message) in cases.items():
        path = tmp_path / name
        path.write_bytes(body)
        proc = decide("risk_level", "--model", model, "--input-json", path, check=2, cwd=tmp_path)
        assert f"--input-json {path}: {message}" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr + proc.stdout and "internal error" not in proc.stderr
        document = json.loads(decide("risk_level", "--model", model, "--input-json", path, "--json", check=2,
                                     cwd=tmp_path).stdout)
        assert message in document["error"] and document["exit_code"] == 2
    with_bom = tmp_path / "bom.json"  # what Windows editors write: still read
    with_bom.write_bytes(b'\xef\xbb\xbf{"Applicant Age": 22}')
    assert json.loads(decide("risk_level", "--model", model, "--input-json", with_bom, "--json",
                             cwd=tmp_path).stdout) == {"result": "high"}


def test_decide_json_keeps_every_digit_of_a_decimal_result(tmp_path):
    model = tmp_path / "third.dmn"
    model.write_text('<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" id="d" name="d" namespace="n">'
                     '<decision id="third" name="third"><literalExpression><text>[1/3, {a: x * 3}, 0.1 + 0.2]</text>'
                     '</literalExpression></decision></definitions>')
    inputs = tmp_path / "x.json"
    inputs.write_text('{"x": 0.1111111111111111111111111}')  # more digits than a float holds
    proc = decide("third", "--model", model, "--input-json", inputs, "--json", cwd=tmp_path)
    assert '0.3333333333333333333333333333333333' in proc.stdout  # 34 digits, written as a JSON number
    from decimal import Decimal

    body = json.loads(proc.stdout, parse_float=Decimal)
    assert body == {"result": [Decimal("0.3333333333333333333333333333333333"),
                               {"a": Decimal("0.3333333333333333333333333")}, Decimal("0.3")]}
    plain = decide("third", "--model", model, "--input-json", inputs, cwd=tmp_path).stdout
    assert json.loads(plain, parse_float=Decimal) == body["result"]


def test_a_model_with_a_number_of_thousands_of_digits_is_no_internal_error(tmp_path):
    model = tmp_path / "big.dmn"
    model.write_text('<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" id="d" name="d" namespace="n">'
                     f'<decision id="x" name="x"><literalExpression><text>{"9" * 5000} + 1</text>'
                     '</literalExpression></decision></definitions>')
    proc = decide("x", "--model", model, cwd=tmp_path)
    assert proc.stdout.strip() == "1.000000000000000000000000000000000E+5000"  # decimal128, as FEEL computes
    from decimal import Decimal

    body = json.loads(decide("x", "--model", model, "--json", cwd=tmp_path).stdout, parse_float=Decimal)
    assert body == {"result": Decimal("1.000000000000000000000000000000000E+5000")}


def test_an_input_given_on_the_command_line_keeps_its_digits(tmp_path):
    model = tmp_path / "triple.dmn"
    model.write_text('<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" id="d" name="d" namespace="n">'
                     '<decision id="triple" name="triple"><decisionTable id="t"><input id="i" label="x">'
                     '<inputExpression id="ie" typeRef="number"><text>x</text></inputExpression></input>'
                     '<output id="o" name="y"/><rule id="r"><inputEntry id="e"><text>-</text></inputEntry>'
                     '<outputEntry id="oe"><text>x * 3</text></outputEntry></rule></decisionTable></decision>'
                     '</definitions>')
    proc = decide("triple", "--model", model, "--input", "x=0.1111111111111111111111111", "--json", cwd=tmp_path)
    from decimal import Decimal

    assert json.loads(proc.stdout, parse_float=Decimal) == {"result": Decimal("0.3333333333333333333333333")}
