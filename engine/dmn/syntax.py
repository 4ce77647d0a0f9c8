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
class TypeSpec:
    """A FEEL type, after ``instance of`` or a parameter's ``:``: a name (``number``, ``date and time``,
    ``Any``, an item definition of the model), ``list<T>``, ``range<T>``, ``context<a: T, b: U>`` or
    ``function<T, U> -> R``. Not a :class:`Node`: it holds no expression."""

    name: str
    params: list[TypeSpec] = field(default_factory=list)  # list<T>, range<T>: [T]; function<T, U>: [T, U]
    fields: list[tuple[str, TypeSpec]] = field(default_factory=list)  # context<a: T>
    result: TypeSpec | None = None  # function<...> -> R

    def __str__(self) -> str:
        if self.name == "function":
            return f"function<{', '.join(map(str, self.params))}> -> {self.result}"
        if self.fields:
            return f"{self.name}<{', '.join(f'{k}: {v}' for k, v in self.fields)}>"
        if self.params:
            return f"{self.name}<{', '.join(map(str, self.params))}>"
        return self.name


@dataclass(slots=True)
class FunctionDef(Node):
    """``function(a, b) a + b``; ``types`` holds the declared parameter types (``function(a: number)``)."""

    params: list[str]
    body: Node
    types: list[TypeSpec | None] | None = None


@dataclass(slots=True)
class ExternalFunction(Node):
    """``function(n) external {java: {...}}``: a function another language implements (Java, PMML)."""

    params: list[str]
    mapping: Node


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
    type_spec: TypeSpec


@dataclass(slots=True)
class UnaryRange(Node):
    """A unary comparison used as a value, ``(< 10)``, ``(>= x)``, ``(= 10)``: the range it stands for."""

    op: str  # < <= > >= = !=
    endpoint: Node


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
