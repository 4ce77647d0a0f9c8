"""`engine validate` warnings, and `--strict`, which fails on them: names that no step sets, exclusive
gateways whose conditions may all be false."""

import re
from xml.sax.saxutils import escape

import pytest

from engine.bundled import bundled
from tests.conftest import DATA, engine, line_of

SHIPPED = bundled("process")
DMN = ("--dmn", SHIPPED / "decisions.dmn")  # outside a workspace, validate is told which decisions
KNOWN_NAMES = DATA / "process" / "lint_known_names.bpmn"
OPEN_GATEWAY = ("has no default flow and its conditions may all be false (then the task fails at run time): "
                "add a default flow")


def edited_copy(tmp_path, source, *edits):
    """A copy of ``source`` with each (old, new) replaced once; the copy's path."""
    text = source.read_text()
    for old, new in edits:
        assert old in text, f"fixture drifted: {old!r} not in {source.name}"
        text = text.replace(old, new, 1)
    path = tmp_path / source.name
    path.write_text(text)
    return path


def set_condition(text, flow_id, condition):
    """The model text with the sequence flow ``flow_id`` given the condition (FEEL text, unescaped)."""
    body = f'<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">{escape(condition)}</bpmn:conditionExpression>'
    with_condition = re.compile(rf'(<bpmn:sequenceFlow id="{flow_id}"[^>]*[^/]>\s*<bpmn:conditionExpression[^>]*>)'
                                r"[^<]*(</bpmn:conditionExpression>)")
    if with_condition.search(text):
        return with_condition.sub(lambda m: m.group(1) + escape(condition) + m.group(2), text, count=1)
    bare = re.compile(rf'(<bpmn:sequenceFlow id="{flow_id}"[^>]*?)\s*/>')
    assert bare.search(text), flow_id
    return bare.sub(lambda m: m.group(1) + ">" + body + "</bpmn:sequenceFlow>", text, count=1)


def assert_warns(bpmn, expected, cwd):
    """Without --strict the warning is printed and the models are ok; with --strict the exit is non-zero."""
    lenient = engine("validate", "--bpmn", bpmn, *DMN, cwd=cwd, check=0)
    assert f"warning: {expected}" in lenient.stdout.splitlines(), lenient.stdout
    assert f"models ok: {bpmn} and " in lenient.stdout
    strict = engine("validate", "--strict", "--bpmn", bpmn, *DMN, cwd=cwd, check=3)
    assert f"warning: {expected}" in strict.stdout.splitlines(), strict.stdout
    assert "models ok" not in strict.stdout
    assert re.fullmatch(rf"1 warning\(s\) in {re.escape(str(bpmn))} and \S+decisions\.dmn \(--strict\)\n",
                        strict.stderr), strict.stderr


# ---- the shipped models ----------------------------------------------------------------------------


def test_the_shipped_models_have_no_warnings(tmp_path):
    proc = engine("validate", "--strict", "--bpmn", SHIPPED / "orchestration.bpmn", *DMN,
                  cwd=tmp_path, check=0)
    assert "warning: " not in proc.stdout and "warning(s)" not in proc.stderr
    assert proc.stdout.startswith("models ok: ")


def test_the_example_workspace_has_no_warnings(example_ws):
    proc = engine("validate", "--strict", cwd=example_ws, check=0)
    assert "warning: " not in proc.stdout and "warning(s)" not in proc.stderr
    assert proc.stdout.strip() == f"models ok: {example_ws / 'process' / 'orchestration.bpmn'} and " \
                                  f"{example_ws / 'process' / 'decisions.dmn'}"


def test_every_kind_of_step_sets_names_that_expressions_may_read(tmp_path):
    """Decision results (decisionRef when there is no resultVariable), output parameters, input parameters,
    a script's assignments, multi-instance variables and collected outputs, error boundary variables, the
    plugin outputs of a bound operation and of dispatch, the kernel's variables."""
    proc = engine("validate", "--strict", "--bpmn", KNOWN_NAMES, *DMN, cwd=tmp_path, check=0)
    assert proc.stdout.startswith("models ok: ") and "warning" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("name", ["camunda7_pool_juel.bpmn", "error_boundary.bpmn", "parallel_ends.bpmn"])
def test_the_test_models_have_no_warnings(tmp_path, name):
    proc = engine("validate", "--strict", "--bpmn", DATA / "process" / name, *DMN, cwd=tmp_path, check=0)
    # the DMN is the bundled one, wherever the engine is installed (a checkout, site-packages)
    assert proc.stdout.startswith(f"models ok: {DATA / 'process' / name} and ") and \
        proc.stdout.endswith("decisions.dmn\n") and proc.stdout.count("\n") == 1


# ---- names no step sets ----------------------------------------------------------------------------


def test_a_condition_reading_a_misspelt_variable_is_a_warning_with_a_suggestion(tmp_path):
    bpmn = edited_copy(tmp_path, SHIPPED / "orchestration.bpmn",
                       ('retry.action = "retry"', 'retyr.action = "retry"'),
                       ('id="Flow_retry" name="retry"', 'id="Flow_retry" name="retry&#10;now"'))
    line = line_of(bpmn, "retyr.action")
    assert_warns(bpmn, f"{bpmn}:{line} sequenceFlow Flow_retry 'retry now': reads 'retyr', which no step sets. "
                       "Did you mean 'retry'?", tmp_path)


def test_an_input_parameter_reading_a_misspelt_variable_is_a_warning(tmp_path):
    bpmn = edited_copy(tmp_path, SHIPPED / "orchestration.bpmn", ("else baseline}", "else base_line}"))
    line = line_of(bpmn, "base_line")
    assert_warns(bpmn, f"{bpmn}:{line} serviceTask Task_measure 'Measure changes': reads 'base_line', which no "
                       "step sets. Did you mean 'baseline'?", tmp_path)


def test_a_value_inside_a_parameter_map_is_read_too(tmp_path):
    bpmn = edited_copy(tmp_path, KNOWN_NAMES, ("${loopCounter}", "${loopCount}"))
    line = line_of(bpmn, "${loopCount}")
    assert_warns(bpmn, f"{bpmn}:{line} serviceTask Task_each 'Inspect each file': reads 'loopCount', which no step "
                       "sets. Did you mean 'loopCounter'?", tmp_path)


def test_a_bare_multi_instance_collection_is_a_name_read(tmp_path):
    bpmn = edited_copy(tmp_path, KNOWN_NAMES, ('camunda:collection="files"', 'camunda:collection="fiels"'))
    line = line_of(bpmn, 'camunda:collection="fiels"')
    assert_warns(bpmn, f"{bpmn}:{line} serviceTask Task_each 'Inspect each file': reads 'fiels', which no step "
                       "sets. Did you mean 'files'?", tmp_path)


def test_a_timer_reading_a_name_without_a_close_match_lists_the_nearest_known_names(tmp_path):
    bpmn = edited_copy(tmp_path, KNOWN_NAMES, ('camunda:topic="dispatch"', 'camunda:topic="git-inspector.diff"'),
                       ("caught_message != null", "waited != null"))
    line = line_of(bpmn, "waited != null")
    assert_warns(bpmn, f"{bpmn}:{line} intermediateCatchEvent Event_wait 'Wait before quarantine': reads 'waited', "
                       "which no step sets (known: failures, file, files, last_state, limit, path, repo_state, "
                       "states, ...)", tmp_path)


def test_names_bound_inside_an_expression_and_functions_are_not_variables(tmp_path):
    bpmn = edited_copy(tmp_path, SHIPPED / "orchestration.bpmn", (
        "${some f in diff.files satisfies ends with(f.path, \".py\")}",
        "${some f in diff.files satisfies ends with(f.path, \".py\") and (for n in [1, 2] return n * 2) = [2, 4] "
        "and (function(x) x + 1)(1) = 2 and {a: 1, b: a + 1}.b = 2 and count(diff.files[size &gt; 0]) &gt;= 0}"))
    proc = engine("validate", "--strict", "--bpmn", bpmn, *DMN, cwd=tmp_path, check=0)
    assert "warning: " not in proc.stdout


def test_every_unknown_name_is_reported_at_once_one_line_each(tmp_path):
    bpmn = edited_copy(tmp_path, SHIPPED / "orchestration.bpmn", ('retry.action = "retry"', 'retyr.action = "retry"'),
                       ("else baseline}", "else base_line}"))
    proc = engine("validate", "--strict", "--bpmn", bpmn, *DMN, cwd=tmp_path, check=3)
    warnings = [x for x in proc.stdout.splitlines() if x.startswith("warning: ")]
    assert len(warnings) == 2 and all(w.startswith(f"warning: {bpmn}:") for w in warnings), proc.stdout
    assert "2 warning(s)" in proc.stderr


def test_invalid_models_get_their_problems_and_no_lint(tmp_path):
    bpmn = edited_copy(tmp_path, SHIPPED / "orchestration.bpmn", ('retry.action = "retry"', 'retyr.action = "retry"'),
                       ('camunda:topic="git-inspector.status"', 'camunda:topic="git-inspectr.status"'))
    proc = engine("validate", "--strict", "--bpmn", bpmn, *DMN, cwd=tmp_path, check=3)
    assert "warning(s)" not in proc.stderr and "warning: " not in proc.stdout and "1 problem(s)" in proc.stderr


# ---- exclusive gateways without a default ----------------------------------------------------------


def test_a_gateway_without_default_whose_conditions_may_all_be_false_is_a_warning(tmp_path):
    bpmn = edited_copy(tmp_path, SHIPPED / "orchestration.bpmn",
                       ('id="Gateway_retry" name="Retry?" default="Flow_give_up"',
                        'id="Gateway_retry" name="Retry&#10;or give up?"'))
    bpmn.write_text(set_condition(bpmn.read_text(), "Flow_give_up", 'retry.action = "fail"'))
    line = line_of(bpmn, 'id="Gateway_retry"')
    assert_warns(bpmn, f"{bpmn}:{line} exclusiveGateway Gateway_retry 'Retry or give up?': {OPEN_GATEWAY}", tmp_path)


@pytest.mark.parametrize(("succeeded", "failed", "exhaustive"), [
    ("error=null", "error != null", True),
    ("not(error != null)", "error != null", True),
    ("error = null", "not(error = null)", True),
    ("${error == null}", "error != null", True),
    ("failures < 3", "failures >= 3", True),
    ("3 > failures", "failures >= 3", True),
    ("failures <= 3", "failures > 3", True),
    ("failures > 3", "failures<=3", True),
    ("error.retryable = true", "error.retryable = false", False),
    ("failures < 3", "failures > 3", False),
    ("error = null", "failures > 0", False),
])
def test_only_complementary_conditions_make_a_gateway_exhaustive(tmp_path, succeeded, failed, exhaustive):
    bpmn = edited_copy(tmp_path, SHIPPED / "orchestration.bpmn",
                       ('id="Gateway_executed" name="Execution succeeded?" default="Flow_executed"',
                        'id="Gateway_executed" name="Execution succeeded?"'))
    text = set_condition(bpmn.read_text(), "Flow_executed", succeeded)
    bpmn.write_text(set_condition(text, "Flow_execute_failed", failed))
    proc = engine("validate", "--strict", "--bpmn", bpmn, *DMN, cwd=tmp_path, check=0 if exhaustive else 3)
    line = line_of(bpmn, 'id="Gateway_executed"')
    warning = f"warning: {bpmn}:{line} exclusiveGateway Gateway_executed 'Execution succeeded?': {OPEN_GATEWAY}"
    shown = [x.rpartition(" and ")[0] if x.startswith("models ok: ") else x for x in proc.stdout.splitlines()]
    assert shown == ([] if exhaustive else [warning]) + ([f"models ok: {bpmn}"] if exhaustive else []), proc.stdout


def test_engine_run_is_not_affected_by_warnings(example_ws):
    bpmn = example_ws / "process" / "orchestration.bpmn"
    bpmn.write_text(bpmn.read_text().replace('retry.action = "retry"', 'retyr.action = "retry"', 1))
    engine("validate", "--strict", cwd=example_ws, check=3)
    engine("run", "--drain", cwd=example_ws, check=0)
