"""FEEL syntax trees -> Python closures, built once at load time.

An expression compiles to ``f(ctx) -> value``; unary tests compile to ``t(value, ctx) -> bool | None``
(``True`` means the cell matches; ``None`` is FEEL's null, which does not match either). ``ctx`` is
any ``Mapping`` of variable names to values. Nothing is parsed while a decision is evaluated.

Constant parts are folded at compile time, and the common cells (``"git"``, ``< 5``, ``[1..10]``) get
specialised closures, because those are where evaluation spends its time.
"""

from __future__ import annotations

import difflib
from collections import ChainMap
from collections.abc import Callable, Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from engine.dmn import syntax as s
from engine.dmn.functions import BUILTINS, CALL_ERRORS
from engine.dmn.lexer import FeelSyntaxError
from engine.dmn.parser import KnownNames, parse_expression, parse_unary_tests
from engine.dmn.temporal import YearMonthDuration
from engine.dmn.values import (
    FeelFunction,
    Range,
    add,
    divide,
    equal,
    greater,
    greater_equal,
    is_number,
    less,
    less_equal,
    multiply,
    negate,
    normalize,
    not_equal,
    power,
    subtract,
)

Expr = Callable[[Mapping[str, Any]], Any]
Test = Callable[[Any, Mapping[str, Any]], "bool | None"]

INPUT = "?"  # the scope key that holds the input value inside a unary test

_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "+": add, "-": subtract, "*": multiply, "/": divide, "**": power,
    "=": equal, "!=": not_equal, "<": less, "<=": less_equal, ">": greater, ">=": greater_equal,
}
_CONSTRUCTORS = frozenset({"date", "time", "date and time", "duration", "@", "number"})


class FeelCompileError(FeelSyntaxError):
    """FEEL text that parses but cannot work: an unknown function, a wrong number of arguments."""


# ---- public entry points ------------------------------------------------------------------------------


def compile_expression(text: str, *, input_variable: str | None = None, names: KnownNames | None = None,
                       callables: frozenset[str] = frozenset()) -> Expr:
    """Parse and compile a FEEL expression.

    ``names`` are the model's declared names that need help to be read (``Extra days case 1``);
    ``callables`` are names that may hold a function when evaluated (business knowledge models,
    context entries, parameters): calling one of them is not an unknown function.
    """
    try:
        node = parse_expression(text, names)
        return ExpressionCompiler(text, input_variable, callables | _bound_names(node)).expression(node)
    except RecursionError as e:
        raise FeelSyntaxError("the expression is nested too deeply", 1) from e


def compile_unary_tests(text: str, *, input_variable: str | None = None, names: KnownNames | None = None,
                        callables: frozenset[str] = frozenset()) -> Test | None:
    """Parse and compile an input entry. ``None`` means the cell matches anything (``-`` or empty)."""
    try:
        node = parse_unary_tests(text, names)
        if isinstance(node, s.AnyTest):
            return None
        return ExpressionCompiler(text, input_variable, callables | _bound_names(node)).unary_tests(node)
    except RecursionError as e:
        raise FeelSyntaxError("the test is nested too deeply", 1) from e


def compile_test_list(text: str, *, names: KnownNames | None = None,
                      callables: frozenset[str] = frozenset()) -> list[Test]:
    """``inputValues``/``outputValues``: one test per comma-separated item, in order."""
    node = parse_unary_tests(text, names)
    if isinstance(node, s.AnyTest):
        return []
    items = node.tests if isinstance(node, s.In) and isinstance(node.value, s.InputRef) else [node]
    c = ExpressionCompiler(text, None, callables | _bound_names(node), conditions=False)
    return [c.test(item, exact=True) for item in items]


def _bound_names(node: s.Node) -> frozenset[str]:
    """Names an expression binds itself (context keys, loop variables, parameters): callable inside it."""
    out: set[str] = set()

    def walk(n: s.Node) -> None:
        if isinstance(n, s.ContextExpr):
            out.update(k for k, _ in n.entries)
        elif isinstance(n, s.Iteration):
            out.update(name for name, _, _ in n.sources)
        elif isinstance(n, s.FunctionDef):
            out.update(n.params)
        for child in _children(n):
            walk(child)

    walk(node)
    return frozenset(out)


def free_names(node: s.Node, bound: frozenset[str] = frozenset(), *, filter_conditions: bool = True) -> set[str]:
    """The variables an expression reads, as dotted paths (``task.retry.max_retries``). Without
    ``filter_conditions``, the conditions of filters (``files[size > limit]``) are not read: a name
    there may be a field of the items as well as a variable."""
    out: set[str] = set()

    def path_of(n: s.Node) -> str | None:
        if isinstance(n, s.Name):
            return n.name
        if isinstance(n, s.Path):
            base = path_of(n.base)
            return None if base is None else f"{base}.{n.key}"
        return None

    def walk(n: s.Node, bound: frozenset[str]) -> None:
        p = path_of(n)
        if p is not None:
            if p.split(".")[0] not in bound:
                out.add(p)
            return
        if isinstance(n, s.Iteration):
            inner = bound
            for name, start, end in n.sources:
                walk(start, inner)
                if end is not None:
                    walk(end, inner)
                inner = inner | {name}
            walk(n.body, inner)
            return
        if isinstance(n, s.Filter):
            walk(n.base, bound)
            if filter_conditions:
                walk(n.condition, bound | {"item"})
            return
        if isinstance(n, s.ContextExpr):
            inner = bound
            for key, value in n.entries:
                walk(value, inner)
                inner = inner | {key}
            return
        if isinstance(n, s.FunctionDef):
            walk(n.body, bound | set(n.params))
            return
        for child in _children(n):
            walk(child, bound)

    walk(node, bound)
    return out


def expression_free_names(text: str, names: KnownNames | None = None) -> set[str]:
    return free_names(parse_expression(text, names))


def unary_test_free_names(text: str, input_variable: str | None, names: KnownNames | None = None) -> set[str]:
    bound = frozenset({input_variable}) if input_variable else frozenset()
    return free_names(parse_unary_tests(text, names), bound)


def _children(n: s.Node) -> list[s.Node]:
    out: list[s.Node] = []
    for slot in getattr(n, "__slots__", ()):
        v = getattr(n, slot)
        if isinstance(v, s.Node):
            out.append(v)
        elif isinstance(v, list):
            for item in v:
                if isinstance(item, s.Node):
                    out.append(item)
                elif isinstance(item, tuple):
                    out.extend(x for x in item if isinstance(x, s.Node))
    return out


def _uses_input(n: s.Node, input_variable: str | None) -> bool:
    if isinstance(n, s.InputRef):
        return True
    if isinstance(n, s.Name) and input_variable is not None and n.name == input_variable:
        return True
    return any(_uses_input(c, input_variable) for c in _children(n))


def _is_constant(n: s.Node, callables: frozenset[str] = frozenset()) -> bool:
    if isinstance(n, s.Literal):
        return True
    if isinstance(n, (s.Name, s.InputRef, s.Iteration, s.Filter, s.ContextExpr, s.Path, s.Invoke,
                      s.FunctionDef)):
        return False
    if isinstance(n, s.Call) and (n.named or n.function in callables or
                                  n.function not in _CONSTRUCTORS | _PURE_BUILTINS):
        return False
    return all(_is_constant(c, callables) for c in _children(n))


# built-ins that may be folded when their arguments are constants (a model's own function of the same
# name would shadow them, so only names no one would reuse)
_PURE_BUILTINS = frozenset(BUILTINS) - {"get value", "is defined"}


# ---- runtime helpers ------------------------------------------------------------------------------


def _lookup(ctx: Mapping[str, Any], name: str) -> Any:
    v = ctx.get(name)
    t = type(v)
    if t is float or t is list or t is tuple:
        return normalize(v)
    return v


_MEMBERS: dict[type, dict[str, Callable[[Any], Any]]] = {
    date: {"year": lambda d: d.year, "month": lambda d: d.month, "day": lambda d: d.day,
           "weekday": lambda d: d.isoweekday()},
    datetime: {"year": lambda d: d.year, "month": lambda d: d.month, "day": lambda d: d.day,
               "weekday": lambda d: d.isoweekday(), "hour": lambda d: d.hour, "minute": lambda d: d.minute,
               "second": lambda d: d.second,
               "time offset": lambda d: d.utcoffset() if d.tzinfo else None},
    time: {"hour": lambda d: d.hour, "minute": lambda d: d.minute, "second": lambda d: d.second,
           "time offset": lambda d: d.utcoffset() if d.tzinfo else None},
    timedelta: {"days": lambda d: d.days, "hours": lambda d: d.seconds // 3600,
                "minutes": lambda d: d.seconds % 3600 // 60, "seconds": lambda d: d.seconds % 60},
    YearMonthDuration: {"years": lambda d: d.years, "months": lambda d: d.months - d.years * 12},
    Range: {"start": lambda r: r.start, "end": lambda r: r.end,
            "start included": lambda r: r.start_closed, "end included": lambda r: r.end_closed},
}


def member(value: Any, key: str) -> Any:
    """``value.key`` in FEEL: a context entry, a list mapped, or a property of a date/time/duration."""
    if isinstance(value, Mapping):
        v = value.get(key)
        t = type(v)
        return normalize(v) if t is float or t is list or t is tuple else v
    t = type(value)
    if t is list:
        return [member(v, key) for v in value]
    props = _MEMBERS.get(t)
    if props is not None and key in props:
        return props[key](value)
    return None


def matches_value(v: Any, r: Any) -> bool | None:
    """Does input ``v`` satisfy a unary test whose expression evaluated to ``r``?"""
    t = type(r)
    if t is Range:
        return r.contains(v)  # type: ignore[no-any-return]  # exact type checked above
    if t is list and type(v) is not list:
        found: bool | None = False
        for item in r:
            e = matches_value(v, item)
            if e is True:
                return True
            if e is None:
                found = None
        return found
    if t is bool and type(v) is not bool and v is not None:
        return r  # type: ignore[no-any-return]  # Camunda: a cell that is itself a condition (`amount > 100`)
    return equal(v, r)


def satisfies(v: Any, r: Any) -> bool | None:
    """DMN's reading of a unary test whose expression evaluated to ``r`` (for ``inputValues``,
    ``outputValues`` and ``allowedValues``): ``v`` equals ``r``, is in the list or range ``r``; unlike
    :func:`matches_value`, a ``true`` that does not come from ``?`` is not a match (TCK 1157)."""
    t = type(r)
    if t is Range:
        return r.contains(v)  # type: ignore[no-any-return]  # exact type checked above
    if t is list and type(v) is not list:
        found: bool | None = False
        for item in r:
            e = satisfies(v, item)
            if e is True:
                return True
            if e is None:
                found = None
        return found
    return equal(v, r)


def _builtin_value(fn: Callable[..., Any], lo: int, hi: int | None) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        if len(args) < lo or (hi is not None and len(args) > hi):
            return None
        try:
            return fn(*args)
        except CALL_ERRORS:
            return None
    return call


def _truth_and(a: Any, b: Any) -> bool | None:
    if a is False or b is False:
        return False
    if a is True and b is True:
        return True
    return None


def _instance_of(value: Any, type_name: str) -> bool:
    checks: dict[str, Callable[[Any], bool]] = {
        "number": is_number, "string": lambda v: type(v) is str, "boolean": lambda v: type(v) is bool,
        "date": lambda v: type(v) is date, "time": lambda v: type(v) is time,
        "date and time": lambda v: type(v) is datetime,
        "days and time duration": lambda v: type(v) is timedelta,
        "years and months duration": lambda v: type(v) is YearMonthDuration,
        "list": lambda v: type(v) is list, "context": lambda v: isinstance(v, Mapping),
        "Any": lambda v: v is not None, "Null": lambda v: v is None,
    }
    return checks[type_name](value)


# ---- the compiler -----------------------------------------------------------------------------------


class ExpressionCompiler:
    """Compiles the nodes of one FEEL text. ``input_variable`` is Camunda's name for ``?``.

    ``conditions``: whether a boolean expression that does not use ``?`` is a test by itself (Camunda's
    reading of input entries, ``amount > 100``). Lists of allowed values use DMN's reading instead:
    a value is allowed when it equals an item, or when an item using ``?`` is true or equals it.
    """

    def __init__(self, text: str, input_variable: str | None, callables: frozenset[str] = frozenset(), *,
                 conditions: bool = True) -> None:
        self.text = text
        self.input_variable = input_variable
        self.callables = callables
        self.conditions = conditions

    def fail(self, message: str, column: int = 1) -> FeelCompileError:
        return FeelCompileError(message, column)

    # -- expressions --

    def expression(self, n: s.Node) -> Expr:
        if _is_constant(n, self.callables) and not isinstance(n, s.Literal):
            value = self._fold(n)
            return lambda ctx: value
        method = getattr(self, "_" + type(n).__name__)
        return method(n)  # type: ignore[no-any-return]

    def _fold(self, n: s.Node) -> Any:
        if isinstance(n, s.Call) and n.function in _CONSTRUCTORS:
            fn, lo, hi = self._builtin(n)
            args = [self._fold(a) for a in n.args]
            try:
                return fn(*args)
            except CALL_ERRORS as e:
                label = "a temporal literal" if n.function == "@" else f"{n.function}()"
                raise self.fail(f"{label} cannot be built from these arguments: {e}", n.column) from e
        return getattr(self, "_" + type(n).__name__)(n)({})

    def _Literal(self, n: s.Literal) -> Expr:
        value = n.value
        return lambda ctx: value

    def _Name(self, n: s.Name) -> Expr:
        name = n.name
        if self.input_variable is not None and name == self.input_variable:
            return self._InputRef(s.InputRef())
        return lambda ctx: _lookup(ctx, name)

    def _argument(self, n: s.Node) -> Expr:
        """A call argument. A built-in's name there, when no variable has that name, is the built-in
        itself, passed as a value: ``Apply(abs, -3)``. (Elsewhere ``count`` unset is null, as always.)"""
        builtin = BUILTINS.get(n.name) if isinstance(n, s.Name) and n.name != "@" else None
        if builtin is None:
            return self.expression(n)
        name, function = n.name, _builtin_value(*builtin)  # type: ignore[attr-defined]
        return lambda ctx: _lookup(ctx, name) if name in ctx else function

    def _InputRef(self, n: s.InputRef) -> Expr:
        def get(ctx: Mapping[str, Any]) -> Any:
            try:
                return ctx[INPUT]
            except KeyError:
                return None
        return get

    def _Path(self, n: s.Path) -> Expr:
        key = n.key
        if isinstance(n.base, s.Name) and n.base.name != self.input_variable:
            name = n.base.name

            def path1(ctx: Mapping[str, Any]) -> Any:
                base = ctx.get(name)
                if type(base) is dict:
                    v = base.get(key)
                    t = type(v)
                    return normalize(v) if t is float or t is list or t is tuple else v
                return member(base, key)
            return path1
        base = self.expression(n.base)
        return lambda ctx: member(base(ctx), key)

    def _Filter(self, n: s.Filter) -> Expr:
        base = self.expression(n.base)
        cond = self.expression(n.condition)
        static_index = isinstance(n.condition, s.Literal) and is_number(n.condition.value)

        def index(items: list[Any], i: Any) -> Any:
            i = int(i)
            if i > 0 and i <= len(items):
                return items[i - 1]
            if i < 0 and -i <= len(items):
                return items[i]
            return None

        def run(ctx: Mapping[str, Any]) -> Any:
            value = base(ctx)
            if value is None:
                return None
            items = value if type(value) is list else [value]
            if static_index:
                return index(items, n.condition.value)  # type: ignore[attr-defined]
            out = []
            for pos, item in enumerate(items):
                local = dict(item) if isinstance(item, Mapping) else {}
                local["item"] = item
                r = cond(ChainMap(local, ctx))  # type: ignore[arg-type]  # read-only scopes
                if pos == 0 and is_number(r):
                    return index(items, r)
                if r is True:
                    out.append(item)
            return out
        return run

    def _Call(self, n: s.Call) -> Expr:
        if n.function in self.callables or n.named:
            return self._user_call(n)
        fn, lo, hi = self._builtin(n)
        args = [self._argument(a) for a in n.args]
        if len(args) == 1:
            a0 = args[0]

            def call1(ctx: Mapping[str, Any]) -> Any:
                try:
                    return fn(a0(ctx))
                except CALL_ERRORS:
                    return None
            return call1
        if len(args) == 2:
            a0, a1 = args

            def call2(ctx: Mapping[str, Any]) -> Any:
                try:
                    return fn(a0(ctx), a1(ctx))
                except CALL_ERRORS:
                    return None
            return call2

        def call(ctx: Mapping[str, Any]) -> Any:
            try:
                return fn(*[a(ctx) for a in args])
            except CALL_ERRORS:
                return None
        return call

    def _user_call(self, n: s.Call) -> Expr:
        """A call of a name that may hold a function when evaluated; a built-in of the same name is the
        fallback when it does not."""
        name = n.function
        builtin = BUILTINS.get(name)
        if n.named and name not in self.callables:
            if builtin is None:
                self._builtin(n)  # reports the unknown function, with a did-you-mean
            raise self.fail(f"named arguments are supported for the model's own functions, not for the "
                            f"built-in '{name}'; pass the arguments in order", n.column)
        invoke = self._invoker(n.args, n.named)
        fallback = builtin[0] if builtin is not None and not n.named else None

        def call(ctx: Mapping[str, Any]) -> Any:
            f = ctx.get(name)
            if type(f) is not FeelFunction and fallback is not None:
                f = fallback
            return invoke(f, ctx)
        return call

    def _invoker(self, args: list[s.Node], named: list[tuple[str, s.Node]] | None) -> \
            Callable[[Any, Mapping[str, Any]], Any]:
        if named:
            pairs = [(k, self._argument(v)) for k, v in named]

            def by_name(f: Any, ctx: Mapping[str, Any]) -> Any:
                if type(f) is not FeelFunction:
                    return None
                return f(**{k: v(ctx) for k, v in pairs})
            return by_name
        compiled = [self._argument(a) for a in args]

        def by_position(f: Any, ctx: Mapping[str, Any]) -> Any:
            if type(f) is FeelFunction:
                return f(*[a(ctx) for a in compiled])
            if f is None or not callable(f):
                return None
            try:
                return f(*[a(ctx) for a in compiled])
            except CALL_ERRORS:
                return None
        return by_position

    def _Invoke(self, n: s.Invoke) -> Expr:
        target = self.expression(n.target)
        invoke = self._invoker(n.args, n.named)
        return lambda ctx: invoke(target(ctx), ctx)

    def _FunctionDef(self, n: s.FunctionDef) -> Expr:
        params = list(n.params)
        body = self.expression(n.body)
        return lambda ctx: FeelFunction("anonymous", params, body, ctx)

    def _builtin(self, n: s.Call) -> tuple[Callable[..., Any], int, int | None]:
        entry = BUILTINS.get(n.function)
        if entry is None:
            known = [k for k in BUILTINS if k != "@"] + sorted(self.callables)
            close = difflib.get_close_matches(n.function, known, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise self.fail(f"unknown function '{n.function}'{hint}", n.column)
        fn, lo, hi = entry
        if len(n.args) < lo or (hi is not None and len(n.args) > hi):
            want = str(lo) if lo == hi else (f"{lo} or more" if hi is None else f"{lo} to {hi}")
            raise self.fail(f"function '{n.function}' takes {want} argument(s), got {len(n.args)}", n.column)
        return entry

    def _Negate(self, n: s.Negate) -> Expr:
        operand = self.expression(n.operand)
        return lambda ctx: negate(operand(ctx))

    def _Binary(self, n: s.Binary) -> Expr:
        op = _BINARY[n.op]
        left, right = self.expression(n.left), self.expression(n.right)
        if isinstance(n.right, s.Literal):
            k = n.right.value
            return lambda ctx: op(left(ctx), k)
        return lambda ctx: op(left(ctx), right(ctx))

    def _And(self, n: s.And) -> Expr:
        left, right = self.expression(n.left), self.expression(n.right)

        def run(ctx: Mapping[str, Any]) -> Any:
            a = left(ctx)
            if a is False:
                return False
            b = right(ctx)
            if b is False:
                return False
            return True if a is True and b is True else None
        return run

    def _Or(self, n: s.Or) -> Expr:
        left, right = self.expression(n.left), self.expression(n.right)

        def run(ctx: Mapping[str, Any]) -> Any:
            a = left(ctx)
            if a is True:
                return True
            b = right(ctx)
            if b is True:
                return True
            return False if a is False and b is False else None
        return run

    def _If(self, n: s.If) -> Expr:
        cond, then, otherwise = self.expression(n.condition), self.expression(n.then), \
            self.expression(n.otherwise)
        return lambda ctx: then(ctx) if cond(ctx) is True else otherwise(ctx)

    def _Between(self, n: s.Between) -> Expr:
        value, low, high = self.expression(n.value), self.expression(n.low), self.expression(n.high)

        def run(ctx: Mapping[str, Any]) -> Any:
            v = value(ctx)
            return _truth_and(greater_equal(v, low(ctx)), less_equal(v, high(ctx)))
        return run

    def _ListExpr(self, n: s.ListExpr) -> Expr:
        items = [self.expression(i) for i in n.items]
        return lambda ctx: [i(ctx) for i in items]

    def _RangeExpr(self, n: s.RangeExpr) -> Expr:
        start = self.expression(n.start) if n.start is not None else (lambda ctx: None)
        end = self.expression(n.end) if n.end is not None else (lambda ctx: None)
        sc, ec = n.start_closed, n.end_closed
        return lambda ctx: Range(start(ctx), end(ctx), sc, ec)

    def _ContextExpr(self, n: s.ContextExpr) -> Expr:
        entries = [(k, self.expression(v)) for k, v in n.entries]
        if len({k for k, _ in entries}) != len(entries):
            return lambda ctx: None  # a key twice: FEEL makes the context an error, i.e. null

        def run(ctx: Mapping[str, Any]) -> Any:
            out: dict[str, Any] = {}
            scope = ChainMap(out, ctx)  # type: ignore[arg-type]  # read-only scopes
            for key, value in entries:
                out[key] = value(scope)
            return out
        return run

    def _Iteration(self, n: s.Iteration) -> Expr:
        sources = [(name, self.expression(start), self.expression(end) if end is not None else None)
                   for name, start, end in n.sources]
        body = self.expression(n.body)
        kind = n.kind

        def values(first: Any, last: Any | None) -> list[Any] | None:
            if last is None:
                return first if type(first) is list else [first]
            if not (type(first) is int and type(last) is int):
                return None
            step = 1 if last >= first else -1
            return list(range(first, last + step, step))

        def bindings(ctx: Mapping[str, Any], i: int, local: dict[str, Any]) -> Any:
            if i == len(sources):
                yield body(ChainMap(dict(local), ctx))  # type: ignore[arg-type]  # read-only scopes
                return
            name, start, end = sources[i]
            scope = ChainMap(local, ctx)  # type: ignore[arg-type]  # read-only scopes
            items = values(start(scope), end(scope) if end else None)
            if items is None:
                raise ValueError("bad iteration")
            for item in items:
                local[name] = item
                yield from bindings(ctx, i + 1, local)
            local.pop(name, None)

        def run(ctx: Mapping[str, Any]) -> Any:
            try:
                results = list(bindings(ctx, 0, {}))
            except ValueError:
                return None
            if kind == "for":
                return results
            if kind == "some":
                return True if any(r is True for r in results) else (
                    False if all(r is False for r in results) else None)
            return False if any(r is False for r in results) else (
                True if all(r is True for r in results) else None)
        return run

    def _InstanceOf(self, n: s.InstanceOf) -> Expr:
        known = ("number", "string", "boolean", "date", "time", "date and time", "days and time duration",
                 "years and months duration", "list", "context", "Any", "Null")
        if n.type_name not in known:
            raise self.fail(f"unknown type '{n.type_name}' after 'instance of'")
        value, type_name = self.expression(n.value), n.type_name
        return lambda ctx: _instance_of(value(ctx), type_name)

    def _In(self, n: s.In) -> Expr:
        value = self.expression(n.value)
        test = self._any_of([self.test(t, exact=True) for t in n.tests])
        return lambda ctx: test(value(ctx), ctx)

    def _unsupported(self, n: s.Node) -> Expr:  # pragma: no cover - the parser never builds these here
        raise self.fail(f"{type(n).__name__} is not an expression")

    _AnyTest = _CompareTest = _RangeTest = _ExprTest = _NotTest = _unsupported

    # -- unary tests --

    def unary_tests(self, n: s.Node) -> Test:
        if isinstance(n, s.In) and isinstance(n.value, s.InputRef):
            return self._any_of([self.test(t, exact=False) for t in n.tests])
        return self.test(n, exact=False)

    def _any_of(self, tests: list[Test]) -> Test:
        if len(tests) == 1:
            return tests[0]

        def any_of(v: Any, ctx: Mapping[str, Any]) -> bool | None:
            result: bool | None = False
            for t in tests:
                r = t(v, ctx)
                if r is True:
                    return True
                if r is None:
                    result = None
            return result
        return any_of

    def test(self, n: s.Node, *, exact: bool) -> Test:
        """One positive unary test (or ``not(...)``). ``exact`` keeps FEEL's null for type mismatches."""
        if isinstance(n, s.NotTest):
            inner = self._any_of([self.test(t, exact=True) for t in n.tests])

            def negated(v: Any, ctx: Mapping[str, Any]) -> bool | None:
                r = inner(v, ctx)
                return None if r is None else not r
            return negated
        if isinstance(n, s.AnyTest):
            return lambda v, ctx: True
        if isinstance(n, s.CompareTest):
            return self._compare_test(n, exact)
        if isinstance(n, s.RangeTest):
            return self._range_test(n.range, exact)
        if isinstance(n, s.ExprTest):
            return self._expr_test(n.expr, exact)
        if isinstance(n, s.In) and isinstance(n.value, s.InputRef):
            return self._any_of([self.test(t, exact=exact) for t in n.tests])
        return self._expr_test(n, exact)

    def _with_input(self, f: Expr) -> Test:
        return lambda v, ctx: f(ChainMap({INPUT: v}, ctx))  # type: ignore[arg-type]  # read-only scopes

    def _operand(self, n: s.Node) -> tuple[bool, Any, Expr]:
        """(is constant, constant value, closure); a closure that needs ``?`` gets it from the scope."""
        if _is_constant(n, self.callables):
            value = self._fold(n) if not isinstance(n, s.Literal) else n.value
            return True, value, lambda ctx: value
        return False, None, self.expression(n)

    def _compare_test(self, n: s.CompareTest, exact: bool) -> Test:
        if n.op == "=":
            return self._expr_test(n.endpoint, exact, equality_only=True)
        op = _BINARY[n.op]
        constant, k, endpoint = self._operand(n.endpoint)
        if constant and not exact and type(k) in (int, Decimal, str):
            return _fast_compare(n.op, k)
        if constant:
            return lambda v, ctx: op(v, k)
        if _uses_input(n.endpoint, self.input_variable):
            return lambda v, ctx: op(v, endpoint(ChainMap({INPUT: v}, ctx)))  # type: ignore[arg-type]  # read-only scopes
        return lambda v, ctx: op(v, endpoint(ctx))

    def _range_test(self, n: s.RangeExpr, exact: bool) -> Test:
        sc, ec = n.start_closed, n.end_closed
        assert n.start is not None and n.end is not None
        c1, lo, start = self._operand(n.start)
        c2, hi, end = self._operand(n.end)
        if c1 and c2:
            if not exact and is_number(lo) and is_number(hi):
                return _fast_number_range(lo, hi, sc, ec)
            rng = Range(lo, hi, sc, ec)
            return lambda v, ctx: rng.contains(v)
        if _uses_input(n.start, self.input_variable) or _uses_input(n.end, self.input_variable):
            def dynamic_with_input(v: Any, ctx: Mapping[str, Any]) -> bool | None:
                scope = ChainMap({INPUT: v}, ctx)  # type: ignore[arg-type]  # read-only scopes
                return Range(start(scope), end(scope), sc, ec).contains(v)
            return dynamic_with_input
        return lambda v, ctx: Range(start(ctx), end(ctx), sc, ec).contains(v)

    def _expr_test(self, n: s.Node, exact: bool, equality_only: bool = False) -> Test:
        if _uses_input(n, self.input_variable):
            f = self.expression(n)
            if equality_only:
                return lambda v, ctx: equal(v, f(ChainMap({INPUT: v}, ctx)))  # type: ignore[arg-type]  # read-only scopes

            if not self.conditions:
                def allowed(v: Any, ctx: Mapping[str, Any]) -> bool | None:
                    r = f(ChainMap({INPUT: v}, ctx))  # type: ignore[arg-type]  # read-only scopes
                    return True if r is True else (None if r is None else satisfies(v, r))
                return allowed

            def boolean(v: Any, ctx: Mapping[str, Any]) -> bool | None:
                r = f(ChainMap({INPUT: v}, ctx))  # type: ignore[arg-type]  # read-only scopes
                return r if type(r) is bool else None
            return boolean
        if not self.conditions:
            g = self._operand(n)[2]
            return lambda v, ctx: satisfies(v, g(ctx))
        constant, k, f = self._operand(n)
        if constant:
            t = type(k)
            if equality_only:
                return lambda v, ctx: equal(v, k)
            if not exact:
                if k is None:
                    return lambda v, ctx: v is None
                if t is bool:
                    return lambda v, ctx: v is k
                if t is int or t is Decimal:
                    return lambda v, ctx: (type(v) is int or type(v) is Decimal) and v == k
                if t is str:
                    return lambda v, ctx: v == k
            return lambda v, ctx: matches_value(v, k)
        if equality_only:
            return lambda v, ctx: equal(v, f(ctx))
        return lambda v, ctx: matches_value(v, f(ctx))


def _fast_compare(op: str, k: Any) -> Test:
    """``< 5``, ``>= "m"``: the commonest cells, without the generic comparison machinery."""
    if type(k) is str:
        if op == "<":
            return lambda v, ctx: type(v) is str and v < k
        if op == "<=":
            return lambda v, ctx: type(v) is str and v <= k
        if op == ">":
            return lambda v, ctx: type(v) is str and v > k
        if op == ">=":
            return lambda v, ctx: type(v) is str and v >= k
        return lambda v, ctx: type(v) is str and v != k
    if op == "<":
        return lambda v, ctx: (type(v) is int or type(v) is Decimal) and v < k
    if op == "<=":
        return lambda v, ctx: (type(v) is int or type(v) is Decimal) and v <= k
    if op == ">":
        return lambda v, ctx: (type(v) is int or type(v) is Decimal) and v > k
    if op == ">=":
        return lambda v, ctx: (type(v) is int or type(v) is Decimal) and v >= k
    return lambda v, ctx: (type(v) is int or type(v) is Decimal) and v != k


def _fast_number_range(lo: Any, hi: Any, sc: bool, ec: bool) -> Test:
    if sc and ec:
        return lambda v, ctx: (type(v) is int or type(v) is Decimal) and lo <= v <= hi
    if sc:
        return lambda v, ctx: (type(v) is int or type(v) is Decimal) and lo <= v < hi
    if ec:
        return lambda v, ctx: (type(v) is int or type(v) is Decimal) and lo < v <= hi
    return lambda v, ctx: (type(v) is int or type(v) is Decimal) and lo < v < hi
