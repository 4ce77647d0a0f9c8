"""The public surface of engine.dmn, locked: the rest of the engine codes against exactly these names."""

from __future__ import annotations

import ast
from pathlib import Path

import engine.dmn
from engine import dmn

PACKAGE = Path(engine.dmn.__file__).parent


def test_exported_names():
    assert sorted(dmn.__all__) == ["Decision", "DecisionModel", "DecisionResult", "FeelSyntaxError", "InputClause",
                                   "OutputClause", "Rule", "YearMonthDuration", "check", "compile_expression",
                                   "json_text", "load", "to_json"]
    for name in dmn.__all__:
        assert getattr(dmn, name) is not None


def test_decision_attributes(make_dmn, make_table):
    model = dmn.load(make_dmn(make_table([["< 5"]], ['"small"'], inputs=[("x", "number")])), filename="a.dmn")
    decision = model.decision("d")
    assert (decision.id, decision.name, decision.hit_policy, decision.aggregation, decision.required) == (
        "d", "d", "FIRST", None, [])
    assert [(i.label, i.expression, i.type_ref) for i in decision.inputs] == [("x", "x", "number")]
    assert [(o.name, o.type_ref) for o in decision.outputs] == [("out", None)]
    result = model.evaluate("d", {"x": 1})
    assert (result.decision_id, result.decision_name, result.value, result.matched_rules, result.required) == (
        "d", "d", "small", ["r1"], [])


def test_engine_dmn_does_not_import_spiffworkflow():
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.split(".")[0] == "SpiffWorkflow" for n in names), path


def test_cells_are_compiled_once_at_load(make_dmn, make_table, monkeypatch):
    model = dmn.load(make_dmn(make_table([["< 5"], ["-"]], ['"small"', '"big"'], inputs=[("x", "number")])))

    def no_parsing(*args, **kwargs):
        raise AssertionError("evaluation parsed FEEL text")

    monkeypatch.setattr("engine.dmn.parser._Parser.__init__", no_parsing)
    monkeypatch.setattr("engine.dmn.lexer.tokenize", no_parsing)
    assert [model.evaluate("d", {"x": x}).value for x in (1, 9)] == ["small", "big"]
