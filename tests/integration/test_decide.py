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
    assert proc.stdout.splitlines() == ["1000", "credit_limit (Credit Limit): matched rules: limit_high",
                                        "  risk_level (Risk Level): matched rules: risk_young"]


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
    assert len(lines) == 6
    assert all("decision 'bad_" in x for x in lines)


def test_explain_shows_why_a_value_was_read_as_null(tmp_path):
    model = DMN / "types_and_values.dmn"
    proc = decide("input_values", "--model", model, "--input", "Colour=purple", "--input", "Percent=50", "--explain",
                  cwd=tmp_path)
    assert "warning:" in proc.stdout and '"purple", which is not among its allowed values' in proc.stdout


def test_decide_outside_a_workspace_needs_the_model_named(tmp_path):
    proc = decide("select_plugin", "--input", "tool=git", check=5, cwd=tmp_path)
    assert "is not an engine workspace, so it has no decisions.dmn" in proc.stderr and "--model FILE" in proc.stderr
