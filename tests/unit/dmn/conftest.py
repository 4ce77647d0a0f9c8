"""Builders for small DMN documents, so a test can show the cell it is about next to its outcome."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import pytest

from engine import dmn

DMN13 = "https://www.omg.org/spec/DMN/20191111/MODEL/"


def definitions(body: str, namespace: str = DMN13) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<definitions xmlns="{namespace}" id="t" name="t" '
            f'namespace="http://example.org/t">\n{body}\n</definitions>\n').encode()


def table_xml(cells: Sequence[Sequence[str]], outputs: Sequence[str], *, inputs: Sequence[tuple[str, str | None]],
              hit_policy: str = "FIRST", decision_id: str = "d", out_type: str | None = None) -> str:
    """A decision table: ``inputs`` are (expression, typeRef); each rule is its cells, outputs[i] its output."""
    lines = [f'<decision id="{decision_id}" name="{decision_id}">',
             f'<decisionTable id="{decision_id}_t" hitPolicy="{hit_policy}">']
    for i, (expr, type_ref) in enumerate(inputs):
        tr = f' typeRef="{type_ref}"' if type_ref else ""
        lines.append(f'<input id="{decision_id}_i{i}" label={quoteattr(expr)}><inputExpression{tr}>'
                     f"<text>{escape(expr)}</text></inputExpression></input>")
    otr = f' typeRef="{out_type}"' if out_type else ""
    lines.append(f'<output id="{decision_id}_o" name="out"{otr}/>')
    for n, (rule_cells, out) in enumerate(zip(cells, outputs, strict=True), start=1):
        lines.append(f'<rule id="r{n}">')
        lines.extend(f"<inputEntry><text>{escape(c)}</text></inputEntry>" for c in rule_cells)
        lines.append(f"<outputEntry><text>{escape(out)}</text></outputEntry></rule>")
    lines.append("</decisionTable></decision>")
    return "\n".join(lines)


@pytest.fixture
def cell_matches() -> Callable[..., bool]:
    """``cell_matches('< 5', 4)``: does a one-input rule with that cell match when the input is ``value``?

    The input expression is ``x`` (or ``expr``); ``context`` adds variables the cell may read.
    """
    def run(cell: str, value: Any, *, context: dict[str, Any] | None = None, type_ref: str | None = None,
            expr: str = "x") -> bool:
        xml = table_xml([[cell]], ['"hit"'], inputs=[(expr, type_ref)])
        model = dmn.load(definitions(xml), filename="cell.dmn")
        ctx = dict(context or {})
        if expr == "x":
            ctx["x"] = value
        result = model.evaluate("d", ctx)
        assert result.value in ("hit", None)
        return result.value == "hit"
    return run


@pytest.fixture
def feel() -> Callable[..., Any]:
    """``feel('1 + 2', context)``: the value of a FEEL expression, as a literal-expression decision gives it."""
    def run(text: str, context: dict[str, Any] | None = None) -> Any:
        xml = (f'<decision id="e" name="e"><literalExpression><text>{escape(text)}</text>'
               "</literalExpression></decision>")
        return dmn.load(definitions(xml), filename="expr.dmn").evaluate("e", context or {}).value
    return run


@pytest.fixture
def make_dmn() -> Callable[..., bytes]:
    """``make_dmn(body, namespace=...)``: a DMN document around decision XML."""
    return definitions


@pytest.fixture
def make_table() -> Callable[..., str]:
    """``make_table(cells, outputs, inputs=[(expr, typeRef)], hit_policy=...)``: one decision table's XML."""
    return table_xml
