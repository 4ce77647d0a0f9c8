"""The lint rules of engine.process.lint on small models that never reach SpiffWorkflow (lint reads the XML)."""

from types import SimpleNamespace

import pytest

from engine.dmn.parser import parse_expression
from engine.plugins.loader import Registry
from engine.process.lint import exhaustive_pair, lint_models, reads

HEAD = ('<?xml version="1.0" encoding="UTF-8"?>\n'
        '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
        'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="D" targetNamespace="http://engine.dev/test">\n')


def lint(tmp_path, body, registry=None, extra=""):
    path = tmp_path / "lint.bpmn"
    path.write_text(f'{HEAD}<bpmn:process id="P" isExecutable="true">\n{body}\n</bpmn:process>\n{extra}'
                    "</bpmn:definitions>\n")
    models = SimpleNamespace(bpmn_path=path, process_id="P", called_files=())  # what lint reads of Models
    return [str(p) for p in lint_models(models, registry or Registry({}, []))]


def condition_on(flow_id, text):
    return (f'<bpmn:sequenceFlow id="{flow_id}" sourceRef="G" targetRef="E">'
            f"<bpmn:conditionExpression>{text}</bpmn:conditionExpression></bpmn:sequenceFlow>")


READS_UNKNOWN = condition_on("F", "unknown_thing = 1")


@pytest.mark.parametrize(("text", "expected"), [
    ('retry.action = "retry"', {"retry"}),
    ("some f in diff.files satisfies ends with(f.path, \".py\")", {"diff"}),
    ("for x in items return x + y", {"items", "y"}),
    ("for i in 1..n return i", {"n"}),
    ("{a: 1, b: a + z}.b", {"z"}),
    ("(function(p) p + q)(1)", {"q"}),
    ("files[size > limit]", {"files"}),  # inside a filter a name may be a field of the items: not counted
    ("count(files) > 0 and now() != null", {"files"}),
    ("if checkpoint != null then checkpoint.sha else baseline", {"checkpoint", "baseline"}),
])
def test_reads_the_first_segment_of_free_names_only(text, expected):
    assert reads(parse_expression(text)) == expected


@pytest.mark.parametrize(("first", "second", "complementary"), [
    ("done", "not(done)", True),
    ("${!done}", "done", True),
    ("not(not(done))", "not(done)", True),
    ("a = 1", "a != 1", True),
    ("a = 1", "a != 1.0", True),
    ('"x" = a', 'a != "x"', True),
    ("a = b", "b != a", True),
    ("a = null", "a != null", True),
    ("not(a = null)", "a = null", True),
    ("a < 3", "a >= 3", True),
    ("a <= 3", "a > 3", True),
    ("a > 3", "3 >= a", True),
    ("a >= 3", "not(a >= 3)", True),
    ("${a == 1 && b}", "not(a = 1 and b)", True),
    ("a = true", "a = false", False),  # a may be null
    ("a < 3", "a > 3", False),
    ("a < 3", "a >= 4", False),
    ("a = 1", "a != true", False),
    ("a and b", "not(a) or not(b)", True),
    ("${plugin != null && error == null}", "${plugin == null || error != null}", True),
    ("a and (b and c)", "not(c) or not(b) or not(a)", True),
    ("a and not(b or c)", "not(a) or b or c", True),
    ("a < b", "b <= a", True),
    ("a and b", "not(a) and not(b)", False),
    ("a or b", "not(a)", False),
])
def test_complementary_conditions(first, second, complementary):
    assert exhaustive_pair(first, second) is complementary
    assert exhaustive_pair(second, first) is complementary


def gateway(flows, default=""):
    return f'<bpmn:exclusiveGateway id="G" name="Which&#10;way?"{default} />\n' + "\n".join(flows)


def test_a_gateway_flow_without_a_condition_is_always_taken(tmp_path):
    flows = [condition_on("F1", "a = 1"), '<bpmn:sequenceFlow id="F2" sourceRef="G" targetRef="E" />']
    assert lint(tmp_path, gateway(flows) + '<bpmn:scriptTask id="S"><bpmn:script>a = 1</bpmn:script></bpmn:scriptTask>'
                ) == []


def test_a_gateway_with_a_default_or_a_single_flow_is_not_reported(tmp_path):
    script = '<bpmn:scriptTask id="S"><bpmn:script>a = 1</bpmn:script></bpmn:scriptTask>'
    two = [condition_on("F1", "a = 1"), condition_on("F2", "a = 2")]
    assert lint(tmp_path, gateway(two, ' default="F2"') + script) == []
    assert lint(tmp_path, gateway(two[:1]) + script) == []
    assert lint(tmp_path, gateway(two) + script) == [
        f"{tmp_path / 'lint.bpmn'}:4 exclusiveGateway G 'Which way?': has no default flow and its conditions may all "
        "be false (then the task fails at run time): add a default flow"]


def test_call_activity_outputs_are_known_and_all_variables_make_anything_known(tmp_path):
    called = ('<bpmn:process id="Q"><bpmn:scriptTask id="S"><bpmn:script>x = 1</bpmn:script></bpmn:scriptTask>'
              f"{condition_on('FQ', 'misspelt_in_called = 1')}</bpmn:process>\n")
    out = ('<bpmn:callActivity id="C" calledElement="Q"><bpmn:extensionElements>'
           '<camunda:out source="x" target="result" /></bpmn:extensionElements></bpmn:callActivity>')
    path = tmp_path / "lint.bpmn"
    warnings = lint(tmp_path, out + condition_on("F", "result = 1 and x = 1"), extra=called)
    assert warnings == [f"{path}:6 sequenceFlow FQ: reads 'misspelt_in_called', which no step sets (known: "
                        "checkpoint, error, failures, result, task, x)"]
    assert lint(tmp_path, out.replace('source="x" target="result"', 'variables="all"') + READS_UNKNOWN,
                extra=called) == []


def test_a_script_that_does_not_parse_may_set_anything(tmp_path):
    script = '<bpmn:scriptTask id="S"><bpmn:script>x = (</bpmn:script></bpmn:scriptTask>'
    assert lint(tmp_path, script + READS_UNKNOWN) == []
    assert len(lint(tmp_path, script.replace("x = (", "x = 1") + READS_UNKNOWN)) == 1


def test_script_assignments_imports_and_loops_set_names(tmp_path):
    script = ('<bpmn:scriptTask id="S"><bpmn:script>import json\nfor item in range(3):\n    total = item\n'
              "a, (b, c) = 1, (2, 3)</bpmn:script></bpmn:scriptTask>")
    assert lint(tmp_path, script + condition_on("F", "json != null and item + total + a + b + c > 0")) == []


def registry_with(tmp_path, output_schema):
    """A real registry of one plugin ``p`` whose operation ``op`` has ``output_schema``."""
    import json

    folder = tmp_path / "plugins" / "p"
    (folder / "src").mkdir(parents=True)
    (folder / "src" / "p.py").write_text("def op(ctx, data):\n    return {}\n")
    (folder / "manifest.json").write_text(json.dumps({"id": "p", "version": "1.0.0", "entry_point": "src/p.py"}))
    (folder / "plugin.spec.json").write_text(json.dumps({
        "id": "p", "version": "1.0.0", "category": "transformation", "description": "lint test plugin",
        "operations": {"op": {"input_schema": {"type": "object"}, "output_schema": output_schema}}}))
    return Registry.discover([tmp_path / "plugins"])


@pytest.mark.parametrize(("schema", "anything"), [
    ({"type": "object", "properties": {"out": {}}}, False),
    ({"type": "object", "allOf": [{"properties": {"out": {}}}]}, False),
    ({"type": "object"}, True),
    ({"type": "object", "additionalProperties": False}, False),
    ({"type": "object", "patternProperties": {"^x_": {}}, "properties": {"out": {}}}, True),
])
def test_a_bound_operation_sets_its_output_names_or_with_an_open_schema_anything(tmp_path, schema, anything):
    task = '<bpmn:serviceTask id="T" camunda:type="external" camunda:topic="{}" />'
    registry = registry_with(tmp_path, schema)
    for topic in ("p", "dispatch"):
        warnings = lint(tmp_path, task.format(topic) + condition_on("F", "out = 1") + READS_UNKNOWN, registry)
        expected = 0 if anything else 1 + ("out" not in str(schema))
        assert len(warnings) == expected, warnings
