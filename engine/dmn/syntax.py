"""The FEEL syntax tree: what :mod:`engine.dmn.parser` builds and :mod:`engine.dmn.compiler` compiles."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class Node:
    """Base of every syntax node."""


@dataclass(slots=True)
class Literal(Node):
    value: Any


@dataclass(slots=True)
class Name(Node):
    name: str


@dataclass(slots=True)
class InputRef(Node):
    """``?``: the value of the input column, inside a unary test."""


@dataclass(slots=True)
class Path(Node):
    base: Node
    key: str


@dataclass(slots=True)
class Filter(Node):
    base: Node
    condition: Node


@dataclass(slots=True)
class Call(Node):
    """A call by name: a built-in, a business knowledge model, or a function-valued variable."""

    function: str
    args: list[Node]
    column: int
    named: list[tuple[str, Node]] | None = None  # ``f(a: 1, b: 2)``; then ``args`` is empty


@dataclass(slots=True)
class Invoke(Node):
    """A call of a computed function value: ``fn library.sumFn(1, 2)``."""

    target: Node
    args: list[Node]
    column: int
    named: list[tuple[str, Node]] | None = None


@dataclass(slots=True)
class FunctionDef(Node):
    """``function(a, b) a + b``."""

    params: list[str]
    body: Node


@dataclass(slots=True)
class Negate(Node):
    operand: Node


@dataclass(slots=True)
class Binary(Node):
    op: str  # + - * / ** = != < <= > >=
    left: Node
    right: Node


@dataclass(slots=True)
class And(Node):
    left: Node
    right: Node


@dataclass(slots=True)
class Or(Node):
    left: Node
    right: Node


@dataclass(slots=True)
class If(Node):
    condition: Node
    then: Node
    otherwise: Node


@dataclass(slots=True)
class Between(Node):
    value: Node
    low: Node
    high: Node


@dataclass(slots=True)
class ListExpr(Node):
    items: list[Node]


@dataclass(slots=True)
class RangeExpr(Node):
    start: Node | None
    end: Node | None
    start_closed: bool
    end_closed: bool


@dataclass(slots=True)
class ContextExpr(Node):
    entries: list[tuple[str, Node]]


@dataclass(slots=True)
class Iteration(Node):
    """``for``/``some``/``every``: ``kind`` names which; ``sources`` bind names to lists or ranges."""

    kind: str
    sources: list[tuple[str, Node, Node | None]]  # (name, list-or-start, end when ``a..b``)
    body: Node


@dataclass(slots=True)
class InstanceOf(Node):
    value: Node
    type_name: str


# ---- unary tests ------------------------------------------------------------------------------------


@dataclass(slots=True)
class AnyTest(Node):
    """``-`` or an empty cell."""


@dataclass(slots=True)
class CompareTest(Node):
    op: str  # < <= > >= = !=
    endpoint: Node


@dataclass(slots=True)
class RangeTest(Node):
    range: RangeExpr


@dataclass(slots=True)
class ExprTest(Node):
    """A plain expression used as a test: ``"git"``, ``max_retries``, ``? > 3``, ``[1, 2]``."""

    expr: Node


@dataclass(slots=True)
class NotTest(Node):
    tests: list[Node]


@dataclass(slots=True)
class In(Node):
    """``value in tests``: true when any of the positive unary tests accepts the value."""

    value: Node
    tests: list[Node] = field(default_factory=list)
