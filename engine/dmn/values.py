"""FEEL values and their semantics in Python.

Inside the engine a FEEL number is an ``int`` or a ``Decimal`` (never a ``float``: ``0.1 + 0.2 = 0.3``
must hold), ``null`` is ``None``, a list is a ``list``, a context is a ``dict``. Every operator here
follows FEEL's null semantics: an operation on operands it does not apply to gives ``None``
instead of raising, so a rule whose cell meets an unexpected value simply does not match.

:func:`to_plain` and :func:`to_json` convert at the boundary, back to what callers expect.
"""

from __future__ import annotations

import decimal
import json
import math
from collections import ChainMap
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from engine.dmn import temporal
from engine.dmn.temporal import (
    KINDS,
    DayTimeDuration,
    FeelDate,
    FeelDateTime,
    FeelTime,
    YearMonthDuration,
    duration_nanos,
    format_temporal,
    make_day_time,
)

# decimal128, as FEEL asks for.
DEC = decimal.Context(prec=34, rounding=decimal.ROUND_HALF_EVEN, traps=[decimal.InvalidOperation,
                                                                      decimal.DivisionByZero,
                                                                      decimal.Overflow])

NUMBER_TYPES = (int, Decimal)  # bool is excluded by the exact-type checks below


def is_number(value: Any) -> bool:
    t = type(value)
    return t is int or t is Decimal


def from_float(value: float) -> Decimal | None:
    """A float from a JSON-ish context, read as the decimal it was written as (``0.1`` -> ``0.1``)."""
    if math.isnan(value) or math.isinf(value):
        return None
    return Decimal(repr(value))


def normalize(value: Any) -> Any:
    """A value from the caller's context, made FEEL-shaped: floats become Decimals (shallowly in lists)."""
    t = type(value)
    if t is float:
        return from_float(value)
    if t is list or t is tuple:
        if any(type(v) is float or type(v) is tuple for v in value):
            return [normalize(v) for v in value]
        return value if t is list else list(value)
    return value


class FeelFunction:
    """A FEEL function value: a ``function(a, b) ...`` literal, a boxed ``<functionDefinition>`` or a
    business knowledge model. ``body`` is compiled once; ``scope`` is where the function was defined.

    Called with positional or named arguments; a wrong number of arguments, or a name that is not a
    parameter, gives null (FEEL's answer), as does an argument that does not fit its parameter's type.
    """

    __slots__ = ("name", "params", "types", "body", "scope", "conform")

    def __init__(self, name: str, params: list[str], body: Any, scope: Mapping[str, Any], *,
                 types: list[str | None] | None = None, conform: Any = None) -> None:
        self.name = name
        self.params = params
        self.types = types or [None] * len(params)
        self.body = body
        self.scope = scope
        self.conform = conform  # (value, typeRef) -> value, raising on a misfit; None: no checks

    def __repr__(self) -> str:
        return f"function {self.name}({', '.join(self.params)})"

    def bind(self, args: list[Any], named: dict[str, Any] | None = None) -> dict[str, Any] | None:
        """The parameters bound to these arguments, or None when they do not fit."""
        if named:
            if args or any(k not in self.params for k in named):
                return None
            values = [named.get(p) for p in self.params]
        else:
            if len(args) != len(self.params):
                return None
            values = list(args)
        local: dict[str, Any] = {}
        for param, type_ref, value in zip(self.params, self.types, values, strict=True):
            if self.conform is not None and type_ref is not None and value is not None:
                try:
                    value = self.conform(value, type_ref)
                except Exception:  # noqa: BLE001 - a misfit of any kind is FEEL's null
                    value = None
            local[param] = value
            if "." in param:
                # Trisotech's implicit parameters are named ``Person.Gender`` and read as a path
                set_path(local, tuple(param.split(".")), value)
        return local

    def __call__(self, *args: Any, **named: Any) -> Any:
        local = self.bind(list(args), named)
        if local is None:
            return None
        return self.body(ChainMap(local, self.scope))  # type: ignore[arg-type]  # read-only scopes


@dataclass(frozen=True)
class Range:
    """A FEEL range such as ``[1..5)``. An end may be None (``< 5`` is ``(null..5)``)."""

    start: Any
    end: Any
    start_closed: bool = True
    end_closed: bool = True

    def contains(self, value: Any) -> bool | None:
        if value is None:
            return None
        if self.start is not None:
            c = compare(value, self.start)
            if c is None:
                return None
            if c < 0 or (c == 0 and not self.start_closed):
                return False
        if self.end is not None:
            c = compare(value, self.end)
            if c is None:
                return None
            if c > 0 or (c == 0 and not self.end_closed):
                return False
        return True

    def __str__(self) -> str:
        left = "[" if self.start_closed else "("
        right = "]" if self.end_closed else ")"
        return f"{left}{to_json(self.start)}..{to_json(self.end)}{right}"


def _same_kind(a: Any, b: Any) -> bool:
    ta, tb = type(a), type(b)
    if ta is tb:
        return True
    if (ta is int or ta is Decimal) and (tb is int or tb is Decimal):
        return True
    k = KINDS.get(ta)  # a FEEL date may be a datetime.date or a FeelDate, and so on
    return k is not None and k == KINDS.get(tb)


# temporal types whose FEEL comparison is not Python's (whole seconds, offsets against zone ids) or
# that Python cannot order at all: compared by engine.dmn.temporal
_TEMPORAL_COMPARED = frozenset({datetime, time, FeelDate, FeelDateTime, FeelTime, DayTimeDuration})


def equal(a: Any, b: Any) -> bool | None:
    """FEEL ``=``: null equals only null; values of different types are not comparable (None)."""
    if a is None or b is None:
        return a is b
    if not _same_kind(a, b) and not (isinstance(a, Mapping) and isinstance(b, Mapping)):
        return None
    if type(a) is list:
        if len(a) != len(b):
            return False
        for x, y in zip(a, b, strict=True):
            e = equal(x, y)
            if e is not True:
                return e
        return True
    if isinstance(a, Mapping):
        if set(a) != set(b):
            return False
        for key in a:
            e = equal(a[key], b[key])
            if e is not True:
                return e
        return True
    if type(a) in _TEMPORAL_COMPARED or type(b) in _TEMPORAL_COMPARED:
        return temporal.equal(a, b)
    return bool(a == b)


def compare(a: Any, b: Any) -> int | None:
    """-1, 0 or 1 when ``a`` and ``b`` are ordered in FEEL (numbers, strings, temporals); else None."""
    if a is None or b is None or not _same_kind(a, b):
        return None
    t = type(a)
    if t is bool or t is list or t is dict or t is Range:
        return None
    if t in _TEMPORAL_COMPARED or type(b) in _TEMPORAL_COMPARED:
        return temporal.compare(a, b)
    try:
        return -1 if a < b else (1 if a > b else 0)
    except TypeError:
        return None


def less(a: Any, b: Any) -> bool | None:
    c = compare(a, b)
    return None if c is None else c < 0


def less_equal(a: Any, b: Any) -> bool | None:
    c = compare(a, b)
    return None if c is None else c <= 0


def greater(a: Any, b: Any) -> bool | None:
    c = compare(a, b)
    return None if c is None else c > 0


def greater_equal(a: Any, b: Any) -> bool | None:
    c = compare(a, b)
    return None if c is None else c >= 0


def not_equal(a: Any, b: Any) -> bool | None:
    e = equal(a, b)
    return None if e is None else not e


def _dec(value: int | Decimal) -> Decimal:
    return value if type(value) is Decimal else Decimal(value)


def number_result(value: Decimal) -> int | Decimal:
    """Decimal results that are whole numbers become ints, so ``2 * 1.5`` is ``3`` (up to 34 digits: a
    larger one stays a Decimal, ``1E+5000``, which an int of that size could not even be written as)."""
    if value == value.to_integral_value() and value.adjusted() < 34:
        return int(value)
    return value


def _writable(value: int) -> int | Decimal:
    """An int as callers get it: itself, or beyond what Python writes as text (4,300 digits), rounded to
    FEEL's 34 digits."""
    return value if value.bit_length() <= 14_000 else DEC.create_decimal(value)


_TEMPORAL_ERRORS = (ArithmeticError, ValueError, OverflowError, TypeError)


def add(a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if ta is int and tb is int:
        return a + b
    try:
        if (ta is int or ta is Decimal) and (tb is int or tb is Decimal):
            return number_result(DEC.add(_dec(a), _dec(b)))
        if ta is str and tb is str:
            return a + b
        if ta is timedelta and tb is timedelta:
            return a + b
        if ta is YearMonthDuration and tb is YearMonthDuration:
            return YearMonthDuration(a.months + b.months)
        if ta in KINDS and tb in KINDS:
            # dates, date-times and times plus durations, on either side; a date plus a days-and-time
            # duration stays a date (the day the sum falls on)
            return temporal.add(a, b)
    except _TEMPORAL_ERRORS:
        return None
    return None


def negate(a: Any) -> Any:
    t = type(a)
    if t is int or t is Decimal or t is timedelta:
        try:
            return -a
        except OverflowError:
            return None
    if t is YearMonthDuration or t is DayTimeDuration:
        return temporal.negate(a)
    return None


def subtract(a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if ta is int and tb is int:
        return a - b
    try:
        if (ta is int or ta is Decimal) and (tb is int or tb is Decimal):
            return number_result(DEC.subtract(_dec(a), _dec(b)))
        if ta is date and tb is date:
            return a - b
        if ta in KINDS and tb in KINDS:
            return temporal.subtract(a, b)
    except _TEMPORAL_ERRORS:
        return None
    return None


def _scaled_day_time(duration: Any, factor: Decimal, *, divide: bool = False) -> Any:
    nanoseconds = Decimal(duration_nanos(duration))
    scaled = DEC.divide(nanoseconds, factor) if divide else DEC.multiply(nanoseconds, factor)
    return make_day_time(int(scaled.to_integral_value(rounding=decimal.ROUND_HALF_EVEN)))


def multiply(a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if ta is int and tb is int:
        return a * b
    try:
        if (ta is int or ta is Decimal) and (tb is int or tb is Decimal):
            return number_result(DEC.multiply(_dec(a), _dec(b)))
        if (ta is timedelta or ta is DayTimeDuration) and (tb is int or tb is Decimal):
            return _scaled_day_time(a, _dec(b))
        if ta is YearMonthDuration and (tb is int or tb is Decimal):
            return YearMonthDuration(int(DEC.multiply(_dec(b), Decimal(a.months))))
        if tb in (timedelta, DayTimeDuration, YearMonthDuration) and (ta is int or ta is Decimal):
            return multiply(b, a)
    except _TEMPORAL_ERRORS:
        return None
    return None


def divide(a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    try:
        if (ta is int or ta is Decimal) and (tb is int or tb is Decimal):
            return number_result(DEC.divide(_dec(a), _dec(b)))
        if (ta is timedelta or ta is DayTimeDuration) and (tb is int or tb is Decimal):
            return _scaled_day_time(a, _dec(b), divide=True)
        if (ta is timedelta or ta is DayTimeDuration) and (tb is timedelta or tb is DayTimeDuration):
            return number_result(DEC.divide(Decimal(duration_nanos(a)), Decimal(duration_nanos(b))))
        if ta is YearMonthDuration and (tb is int or tb is Decimal):
            return YearMonthDuration(int(DEC.divide(Decimal(a.months), _dec(b))))
        if ta is YearMonthDuration and tb is YearMonthDuration:
            return number_result(DEC.divide(Decimal(a.months), Decimal(b.months)))
    except (*_TEMPORAL_ERRORS, ZeroDivisionError):
        return None
    return None


def power(a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if not ((ta is int or ta is Decimal) and (tb is int or tb is Decimal)):
        return None
    try:
        if ta is int and tb is int and 0 <= b <= 10_000 and (abs(a) <= 1 or b * abs(a).bit_length() <= 112):
            return a**b  # exact while within decimal128's 34 digits; beyond, rounded like every FEEL number
        return number_result(DEC.power(_dec(a), _dec(b)))
    except (ArithmeticError, ValueError, OverflowError):
        return None


def to_plain(value: Any) -> Any:
    """An internal FEEL value as plain Python: a Decimal that is a whole number becomes an int, any other
    stays a Decimal with all its digits (``1/3`` is ``Decimal("0.3333333333333333333333333333333333")``,
    not a float); containers recursively."""
    t = type(value)
    if t is Decimal:
        return number_result(value) if value.is_finite() else None
    if t is int:
        return _writable(value)
    if t is list:
        return [to_plain(v) for v in value]
    if t is dict:
        return {k: to_plain(v) for k, v in value.items()}
    if t is Range:
        return str(value)
    return value


def with_floats(value: Any) -> Any:
    """``value`` with its Decimals as floats (containers recursively, dates and the rest as they are):
    what process data holds, which plugins receive as JSON numbers."""
    t = type(value)
    if t is Decimal:
        return float(value)
    if t is list:
        return [with_floats(v) for v in value]
    if t is dict:
        return {k: with_floats(v) for k, v in value.items()}
    return value


def to_json(value: Any, *, exact: bool = False) -> Any:
    """Any value the engine produces, as JSON-serialisable data.

    Dates, times, date-times and durations become ISO 8601 strings; Decimals become int (when whole)
    or float (``exact``: stay Decimal, for a writer that prints their digits, as ``engine decide --json``
    does); tuples become lists; mapping keys become strings.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        value = _writable(value)
        if type(value) is int:
            return value
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, Decimal):
        if not value.is_finite():
            return None
        if value == value.to_integral_value() and value.adjusted() < 34:
            return int(value)
        if exact:
            return value
        number = float(value)
        return number if math.isfinite(number) else str(value)  # beyond a float: its digits as text
    if isinstance(value, (date, time, timedelta, YearMonthDuration)):
        return format_temporal(value)
    if isinstance(value, Mapping):
        return {str(k): to_json(v, exact=exact) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_json(v, exact=exact) for v in value]
    if isinstance(value, Range):
        return str(value)
    if hasattr(value, "as_dict"):
        return to_json(value.as_dict(), exact=exact)
    return str(value)


def json_text(value: Any, *, indent: int | None = None) -> str:
    """``value`` (made by ``to_json(..., exact=True)``) as JSON text, every Decimal written as a JSON number
    with all its digits (``json`` would write a float's 17, or refuse the Decimal)."""
    digits: dict[str, str] = {}

    def marked(v: Any) -> Any:
        if type(v) is Decimal:
            key = f"\u0000{len(digits)}\u0000"
            digits[key] = str(v)  # a Decimal's text is a JSON number: 0.333..., 1E-7, 1.5E+40
            return key
        if isinstance(v, dict):
            return {k: marked(x) for k, x in v.items()}
        if isinstance(v, list):
            return [marked(x) for x in v]
        return v

    text = json.dumps(marked(value), indent=indent, ensure_ascii=False, default=str)
    for key, number in digits.items():
        text = text.replace(json.dumps(key), number, 1)
    return text


def type_name(value: Any) -> str:
    """FEEL's name for the type of a value, for messages."""
    t = type(value)
    if value is None:
        return "null"
    if t is bool:
        return "boolean"
    if t in (int, Decimal, float):
        return "number"
    if t is str:
        return "string"
    if t in KINDS:
        return KINDS[t]
    if t is list:
        return "list"
    if isinstance(value, Mapping):
        return "context"
    if t is Range:
        return "range"
    if t is FeelFunction or callable(value):
        return "function"
    return t.__name__


def show(value: Any) -> str:
    """A value as FEEL would write it, for messages: ``"git"``, ``5``, ``null``, ``date("2024-01-01")``."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    t = type(value)
    if t is str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'  # type: ignore[no-any-return]  # type(value) is str, checked above
    if t in (int, Decimal, float):
        return str(to_plain(value))
    if t in KINDS:
        constructor = KINDS[t] if KINDS[t] in ("date", "time", "date and time") else "duration"
        return f'{constructor}("{format_temporal(value)}")'
    if t is list:
        return "[" + ", ".join(show(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {show(v)}" for k, v in value.items()) + "}"
    return str(value)


def set_path(out: dict[str, Any], path: tuple[str, ...], value: Any, *, merge: bool = False) -> None:
    """Put ``value`` at ``path`` in nested dicts, making the dicts on the way. With ``merge``, a dict
    value is merged into a dict already there instead of replacing it."""
    node = out
    for part in path[:-1]:
        nxt = node.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            node[part] = nxt
        node = nxt
    last = path[-1]
    if merge and isinstance(value, dict) and isinstance(node.get(last), dict):
        node[last].update(value)
    else:
        node[last] = value
