"""Hit policies: from the rules that matched to the decision table's result, as DMN 1.3 section 8.2.11
defines it.

Single hit: UNIQUE (one match at most, else an error), ANY (matches must agree), PRIORITY (highest
priority by ``outputValues`` order), FIRST (first in rule order). Multiple hit: RULE ORDER,
OUTPUT ORDER (by ``outputValues`` priority), COLLECT (a list, or with SUM, MIN, MAX, COUNT one value).

A *row* is one rule's outputs: the bare value when the table has one output, else a dict keyed by
output name. Aggregations skip null values; ``COUNT`` counts the non-null ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from engine.dmn.values import add, compare, equal, is_number, show

if TYPE_CHECKING:
    from engine.dmn.model import Decision, Rule

HIT_POLICIES = {
    "UNIQUE": "UNIQUE", "U": "UNIQUE",
    "FIRST": "FIRST", "F": "FIRST",
    "PRIORITY": "PRIORITY", "P": "PRIORITY",
    "ANY": "ANY", "A": "ANY",
    "COLLECT": "COLLECT", "C": "COLLECT",
    "RULE ORDER": "RULE ORDER", "R": "RULE ORDER",
    "OUTPUT ORDER": "OUTPUT ORDER", "O": "OUTPUT ORDER",
}
AGGREGATIONS = {"SUM": "SUM", "+": "SUM", "MIN": "MIN", "<": "MIN", "MAX": "MAX", ">": "MAX",
                "COUNT": "COUNT", "#": "COUNT"}
SINGLE_HIT = frozenset({"UNIQUE", "FIRST", "PRIORITY", "ANY"})
NEEDS_PRIORITY = frozenset({"PRIORITY", "OUTPUT ORDER"})

Outputs = Callable[["Rule"], tuple[Any, ...]]


def parse_hit_policy(hit_policy: str | None, aggregation: str | None) -> tuple[str | None, str | None]:
    """``("COLLECT", "SUM")``, also from the short forms ``C+``, ``C<``, ``C>``, ``C#``, ``U``, ``F``...

    Returns None in place of a name that is not a hit policy / aggregation.
    """
    policy = (hit_policy or "UNIQUE").strip().upper()
    agg = aggregation.strip().upper() if aggregation and aggregation.strip() else None
    if len(policy) == 2 and policy[0] == "C" and policy[1] in "+<>#":
        return "COLLECT", AGGREGATIONS[policy[1]]
    name = HIT_POLICIES.get(" ".join(policy.split()))
    if agg is None:
        return name, None
    return name, AGGREGATIONS.get(agg)


def row_value(decision: Decision, values: tuple[Any, ...]) -> Any:
    if len(decision.outputs) == 1:
        return values[0]
    return {out.name: v for out, v in zip(decision.outputs, values, strict=True)}


def _describe(decision: Decision, rules: Sequence[Rule], rows: Sequence[tuple[Any, ...]]) -> str:
    parts = []
    for rule, row in zip(rules, rows, strict=True):
        shown = ", ".join(show(v) for v in row)
        parts.append(f"{rule.ref} -> {shown}")
    return "; ".join(parts)


def _priority(decision: Decision, row: tuple[Any, ...]) -> tuple[int, ...]:
    key = []
    for out, value in zip(decision.outputs, row, strict=True):
        if not out.priority_tests:
            continue
        for i, test in enumerate(out.priority_tests):
            if test(value, {}) is True:
                key.append(i)
                break
        else:
            key.append(len(out.priority_tests))
    return tuple(key)


def select(decision: Decision, matched: list[Rule], outputs: Outputs,
           defaults: Callable[[], tuple[Any, ...] | None]) -> tuple[Any, list[Rule]]:
    """The table's result from the matched rules: ``(value, rules that make it up, in order)``."""
    policy = decision.hit_policy
    if not matched:
        row = defaults()
        if policy in SINGLE_HIT:
            return (None if row is None else row_value(decision, row)), []
        if decision.aggregation == "COUNT":
            return row_value(decision, (0,) * len(decision.outputs)), []
        if decision.aggregation is not None:
            return (None if row is None else row_value(decision, row)), []
        return ([] if row is None else [row_value(decision, row)]), []

    if policy == "FIRST":
        return row_value(decision, outputs(matched[0])), matched[:1]
    if policy == "UNIQUE":
        if len(matched) > 1:
            ids = ", ".join(r.ref for r in matched)
            raise decision.error(f"hit policy UNIQUE allows one matching rule, but {len(matched)} matched: "
                                 f"{ids}", matched)
        return row_value(decision, outputs(matched[0])), matched

    rows = [outputs(r) for r in matched]
    if policy == "ANY":
        first = rows[0]
        for row in rows[1:]:
            if any(equal(a, b) is not True for a, b in zip(first, row, strict=True)):
                raise decision.error("hit policy ANY needs every matching rule to give the same output, "
                                     f"but they differ: {_describe(decision, matched, rows)}", matched)
        return row_value(decision, first), matched
    if policy == "PRIORITY":
        best = min(range(len(rows)), key=lambda i: _priority(decision, rows[i]))
        return row_value(decision, rows[best]), [matched[best]]
    if policy == "OUTPUT ORDER":
        order = sorted(range(len(rows)), key=lambda i: _priority(decision, rows[i]))
        return [row_value(decision, rows[i]) for i in order], [matched[i] for i in order]
    if policy == "RULE ORDER" or decision.aggregation is None:
        return [row_value(decision, row) for row in rows], matched
    # Several outputs: each column is aggregated on its own (as the TCK's multi-output COLLECT cases do).
    return row_value(decision, tuple(_aggregate(decision, matched, [row[i] for row in rows])
                                     for i in range(len(decision.outputs)))), matched


def _aggregate(decision: Decision, matched: list[Rule], values: list[Any]) -> Any:
    present = [v for v in values if v is not None]
    agg = decision.aggregation
    if agg == "COUNT":
        return len(present)
    if not present:
        return None
    if agg == "SUM":
        total: Any = 0
        for rule, v in zip(matched, values, strict=True):
            if v is None:
                continue
            if not is_number(v):
                raise decision.error(f"COLLECT SUM needs numbers, but rule {rule.ref} gave {show(v)}", [rule])
            total = add(total, v)
        return total
    best = present[0]
    for v in present[1:]:
        c = compare(v, best)
        if c is None and equal(v, best) is True:
            continue  # equal values need no order (MIN of [false, false] is false)
        if c is None:
            raise decision.error(f"COLLECT {agg} cannot order {show(best)} and {show(v)}", matched)
        if (agg == "MIN" and c < 0) or (agg == "MAX" and c > 0):
            best = v
    if compare(best, best) is None and len(set(map(show, present))) > 1:
        raise decision.error(f"COLLECT {agg} cannot order {show(best)}", matched)
    return best
