"""FEEL built-in functions.

Each entry of :data:`BUILTINS` is ``name -> (function, min args, max args or None for any)``. The
compiler checks the number of arguments at load time. A function given values it does not accept
returns ``None`` (FEEL's null), never raises: the compiled call catches the usual Python errors.

``now()`` and ``today()`` are deliberately absent: decisions must replay to the same outcome.
"""

from __future__ import annotations

import functools
import re
import statistics
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import (
    ROUND_CEILING,
    ROUND_DOWN,
    ROUND_FLOOR,
    ROUND_HALF_DOWN,
    ROUND_HALF_EVEN,
    ROUND_HALF_UP,
    ROUND_UP,
    Decimal,
    InvalidOperation,
)
from typing import Any

from engine.dmn.temporal import (
    YearMonthDuration,
    format_temporal,
    parse_date,
    parse_datetime,
    parse_duration,
    parse_time,
)
from engine.dmn.values import DEC, add, compare, equal, is_number, number_result, show, to_plain

Builtin = tuple[Callable[..., Any], int, int | None]


def _num(value: Any) -> Decimal:
    if not is_number(value):
        raise TypeError("not a number")
    return value if type(value) is Decimal else Decimal(value)


def _str(value: Any) -> str:
    if type(value) is not str:
        raise TypeError("not a string")
    return value


def _list(value: Any) -> list[Any]:
    return value if type(value) is list else [value]


def _items(args: tuple[Any, ...]) -> list[Any]:
    """``min([1, 2])`` and ``min(1, 2)`` both mean the list [1, 2]."""
    if len(args) == 1 and type(args[0]) is list:
        return args[0]
    return list(args)


# ---- conversion -------------------------------------------------------------------------------------


def feel_string(value: Any) -> str | None:
    if value is None:
        return None
    if type(value) is str:
        return value
    if is_number(value):
        d = _num(value)
        return format(d.normalize(), "f") if d != d.to_integral_value() else str(int(d))
    if type(value) in (date, datetime, time, timedelta, YearMonthDuration):
        return format_temporal(value)
    return show(to_plain(value))


def _number(text: Any, grouping: Any = None, decimal_sep: Any = None) -> Any:
    text = _str(text)
    if grouping:
        text = text.replace(grouping, "")
    if decimal_sep:
        text = text.replace(decimal_sep, ".")
    if not re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", text.strip()):
        return None
    return number_result(DEC.create_decimal(text.strip()))


def _date(*args: Any) -> date | None:
    if len(args) == 3:
        return date(*(int(_num(a)) for a in args))
    (value,) = args
    if type(value) is str:
        return parse_date(value)
    if type(value) is datetime:
        return value.date()
    if type(value) is date:
        return value
    return None


def _time(*args: Any) -> time | None:
    if len(args) >= 3:
        seconds = _num(args[2])
        tz = None
        if len(args) == 4 and args[3] is not None:
            if type(args[3]) is not timedelta:
                return None
            tz = timezone(args[3])
        whole = int(seconds)
        micro = int((seconds - whole) * 1_000_000)
        return time(int(_num(args[0])), int(_num(args[1])), whole, micro, tzinfo=tz)
    (value,) = args
    if type(value) is str:
        return parse_time(value)
    if type(value) is datetime:
        return value.timetz()
    if type(value) is date:
        return time(0, 0, 0, tzinfo=UTC)
    if type(value) is time:
        return value
    return None


def _date_and_time(*args: Any) -> datetime | None:
    if len(args) == 2:
        day, clock = args
        if type(day) not in (date, datetime) or type(clock) is not time:
            return None
        return datetime.combine(day if type(day) is date else day.date(), clock)
    (value,) = args
    if type(value) is str:
        return parse_datetime(value)
    if type(value) is date:
        return datetime.combine(value, time())
    if type(value) is datetime:
        return value
    return None


def _duration(value: Any) -> Any:
    return parse_duration(_str(value))


def _years_and_months(start: Any, end: Any) -> YearMonthDuration | None:
    if type(start) not in (date, datetime) or type(end) not in (date, datetime):
        return None
    months = (end.year - start.year) * 12 + (end.month - start.month)
    if months > 0 and (end.day, _clock(end)) < (start.day, _clock(start)):
        months -= 1
    elif months < 0 and (end.day, _clock(end)) > (start.day, _clock(start)):
        months += 1
    return YearMonthDuration(months)


def _clock(value: date) -> tuple[int, ...]:
    if type(value) is datetime:
        return (value.hour, value.minute, value.second, value.microsecond)
    return (0, 0, 0, 0)


def _at_literal(text: Any) -> Any:
    """``@"2024-01-01"``, ``@"10:00:00"``, ``@"P1D"``: the FEEL 1.3 temporal literal."""
    text = _str(text)
    if text.startswith(("P", "-P")):
        return parse_duration(text)
    if "T" in text:
        return parse_datetime(text)
    if ":" in text:
        return parse_time(text)
    return parse_date(text)


# ---- strings ----------------------------------------------------------------------------------------


def _substring(value: Any, start: Any, length: Any = None) -> str:
    text = _str(value)
    begin = int(_num(start))
    begin = begin - 1 if begin > 0 else len(text) + begin
    if length is None:
        return text[begin:]
    return text[begin:begin + int(_num(length))]


def _flags(flags: Any) -> int:
    out = 0
    for f in flags or "":
        out |= {"i": re.I, "s": re.S, "m": re.M, "x": re.X}.get(f, 0)
    return out


def _replace(value: Any, pattern: Any, replacement: Any, flags: Any = None) -> str:
    repl = re.sub(r"\$(\d)", r"\\\1", _str(replacement))
    return re.sub(_str(pattern), repl, _str(value), flags=_flags(flags))


def _split(value: Any, delimiter: Any) -> list[str]:
    return re.split(_str(delimiter), _str(value))


def _string_join(values: Any, delimiter: Any = "") -> str | None:
    parts = [_str(v) for v in _list(values) if v is not None]
    return (_str(delimiter) if delimiter is not None else "").join(parts)


# ---- lists ------------------------------------------------------------------------------------------


def _list_contains(values: Any, item: Any) -> bool | None:
    if type(values) is not list:
        return None
    return any(equal(v, item) is True for v in values)


def _ordered(items: list[Any], pick: int) -> Any:
    if not items:
        return None
    best = items[0]
    for v in items[1:]:
        c = compare(v, best)
        if c is None:
            return None
        if c == pick:
            best = v
    if len(items) == 1 and compare(best, best) is None:
        return None
    return best


def _sum(*args: Any) -> Any:
    items = _items(args)
    if not items:
        return None
    total: Any = 0
    for v in items:
        if not is_number(v):
            return None
        total = add(total, v)
    return total


def _mean(*args: Any) -> Any:
    items = _items(args)
    if not items or not all(is_number(v) for v in items):
        return None
    return number_result(DEC.divide(_num(_sum(items)), Decimal(len(items))))


def _product(*args: Any) -> Any:
    items = _items(args)
    if not items or not all(is_number(v) for v in items):
        return None
    total = Decimal(1)
    for v in items:
        total = DEC.multiply(total, _num(v))
    return number_result(total)


def _median(*args: Any) -> Any:
    items = _items(args)
    if not items or not all(is_number(v) for v in items):
        return None
    return number_result(_num(statistics.median(_num(v) for v in items)))


def _stddev(*args: Any) -> Any:
    items = _items(args)
    if len(items) < 2 or not all(is_number(v) for v in items):
        return None
    return number_result(DEC.create_decimal(statistics.stdev([_num(v) for v in items])))


def _mode(*args: Any) -> list[Any] | None:
    items = _items(args)
    if not all(is_number(v) for v in items):
        return None
    counts: dict[Any, int] = {}
    for v in items:
        counts[v] = counts.get(v, 0) + 1
    top = max(counts.values(), default=0)
    return sorted(v for v, n in counts.items() if n == top)


def _all(*args: Any) -> bool | None:
    items = _items(args)
    if any(v is False for v in items):
        return False
    return True if all(v is True for v in items) else None


def _any(*args: Any) -> bool | None:
    items = _items(args)
    if any(v is True for v in items):
        return True
    return False if all(v is False for v in items) else None


def _sublist(values: Any, start: Any, length: Any = None) -> list[Any]:
    items = _list(values)
    begin = int(_num(start))
    begin = begin - 1 if begin > 0 else len(items) + begin
    return items[begin:] if length is None else items[begin:begin + int(_num(length))]


def _index_of(values: Any, match: Any) -> list[int]:
    return [i + 1 for i, v in enumerate(_list(values)) if equal(v, match) is True]


def _distinct(values: Any) -> list[Any]:
    out: list[Any] = []
    for v in _list(values):
        if not any(equal(v, o) is True for o in out):
            out.append(v)
    return out


def _flatten(values: Any) -> list[Any]:
    out: list[Any] = []
    for v in _list(values):
        out.extend(_flatten(v) if type(v) is list else [v])
    return out


def _sort(values: Any, precedes: Any = None) -> list[Any] | None:
    items = list(_list(values))
    if precedes is not None:
        # ``sort(list, function(x, y) x.rate < y.rate)``: the function says whether x comes before y
        if not callable(precedes):
            return None

        def order(a: Any, b: Any) -> int:
            if precedes(a, b) is True:
                return -1
            return 1 if precedes(b, a) is True else 0
        return sorted(items, key=functools.cmp_to_key(order))
    for v in items[1:]:
        if compare(v, items[0]) is None:
            return None
    return sorted(items)


def _position(items: list[Any], position: Any) -> int:
    p = int(_num(position))
    index = p - 1 if p > 0 else len(items) + p
    if not 0 <= index < len(items):
        raise IndexError("position out of range")
    return index


def _insert_before(values: Any, position: Any, item: Any) -> list[Any]:
    items = list(_list(values))
    items.insert(_position(items, position), item)
    return items


def _remove(values: Any, position: Any) -> list[Any]:
    items = list(_list(values))
    del items[_position(items, position)]
    return items


# ---- numbers ----------------------------------------------------------------------------------------


def _rounder(mode: str) -> Callable[..., Any]:
    def fn(n: Any, scale: Any = 0) -> Any:
        return number_result(_num(n).quantize(Decimal(1).scaleb(-int(_num(scale))), rounding=mode))
    return fn


def _abs(n: Any) -> Any:
    if type(n) is timedelta:
        return abs(n)
    if type(n) is YearMonthDuration:
        return YearMonthDuration(abs(n.months))
    return number_result(abs(_num(n)))


def _modulo(dividend: Any, divisor: Any) -> Any:
    a, b = _num(dividend), _num(divisor)
    if b == 0:
        return None
    return number_result(a - b * (a / b).to_integral_value(rounding=ROUND_FLOOR))


def _sqrt(n: Any) -> Any:
    d = _num(n)
    return None if d < 0 else number_result(DEC.sqrt(d))


def _log(n: Any) -> Any:
    d = _num(n)
    return None if d <= 0 else number_result(DEC.ln(d))


def _odd(n: Any) -> bool | None:
    d = _num(n)
    return None if d != d.to_integral_value() else int(d) % 2 == 1


def _even(n: Any) -> bool | None:
    d = _num(n)
    return None if d != d.to_integral_value() else int(d) % 2 == 0


def _contains(s: Any, sub: Any) -> bool:
    return _str(sub) in _str(s)


def _get_value(context: Any, key: Any) -> Any:
    if not isinstance(context, Mapping):
        return None
    return context.get(_str(key))


def _not(value: Any) -> bool | None:
    if value is True:
        return False
    if value is False:
        return True
    return None


def _day_of_week(d: Any) -> str:
    return ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")[d.weekday()]


def _check_date(d: Any) -> date:
    if type(d) not in (date, datetime):
        raise TypeError("not a date")
    return d  # type: ignore[no-any-return]


BUILTINS: dict[str, Builtin] = {
    # conversion
    "not": (_not, 1, 1),
    "string": (feel_string, 1, 1),
    "number": (_number, 1, 3),
    "date": (_date, 1, 3),
    "time": (_time, 1, 4),
    "date and time": (_date_and_time, 1, 2),
    "duration": (_duration, 1, 1),
    "years and months duration": (_years_and_months, 2, 2),
    "@": (_at_literal, 1, 1),
    # strings
    "string length": (lambda s: len(_str(s)), 1, 1),
    "upper case": (lambda s: _str(s).upper(), 1, 1),
    "lower case": (lambda s: _str(s).lower(), 1, 1),
    "substring": (_substring, 2, 3),
    "substring before": (lambda s, m: _str(s).partition(_str(m))[0] if _str(m) in s else "", 2, 2),
    "substring after": (lambda s, m: _str(s).partition(_str(m))[2], 2, 2),
    "contains": (_contains, 2, 2),
    "starts with": (lambda s, m: _str(s).startswith(_str(m)), 2, 2),
    "ends with": (lambda s, m: _str(s).endswith(_str(m)), 2, 2),
    "matches": (lambda s, p, f=None: re.search(_str(p), _str(s), _flags(f)) is not None, 2, 3),
    "replace": (_replace, 3, 4),
    "split": (_split, 2, 2),
    "string join": (_string_join, 1, 2),
    # lists
    "list contains": (_list_contains, 2, 2),
    "count": (lambda values: len(_list(values)), 1, 1),
    "min": (lambda *a: _ordered(_items(a), -1), 1, None),
    "max": (lambda *a: _ordered(_items(a), 1), 1, None),
    "sum": (_sum, 1, None),
    "mean": (_mean, 1, None),
    "product": (_product, 1, None),
    "median": (_median, 1, None),
    "stddev": (_stddev, 1, None),
    "mode": (_mode, 1, None),
    "all": (_all, 1, None),
    "and": (_all, 1, None),
    "any": (_any, 1, None),
    "or": (_any, 1, None),
    "sublist": (_sublist, 2, 3),
    "append": (lambda values, *items: [*_list(values), *items], 1, None),
    "concatenate": (lambda *lists: [v for lst in lists for v in _list(lst)], 1, None),
    "insert before": (_insert_before, 3, 3),
    "remove": (_remove, 2, 2),
    "reverse": (lambda values: list(reversed(_list(values))), 1, 1),
    "index of": (_index_of, 2, 2),
    "union": (lambda *lists: _distinct([v for lst in lists for v in _list(lst)]), 1, None),
    "distinct values": (_distinct, 1, 1),
    "flatten": (_flatten, 1, 1),
    "sort": (_sort, 1, 2),
    # numbers
    "abs": (_abs, 1, 1),
    "floor": (_rounder(ROUND_FLOOR), 1, 2),
    "ceiling": (_rounder(ROUND_CEILING), 1, 2),
    "decimal": (_rounder(ROUND_HALF_EVEN), 2, 2),
    "round up": (_rounder(ROUND_UP), 2, 2),
    "round down": (_rounder(ROUND_DOWN), 2, 2),
    "round half up": (_rounder(ROUND_HALF_UP), 2, 2),
    "round half down": (_rounder(ROUND_HALF_DOWN), 2, 2),
    "modulo": (_modulo, 2, 2),
    "sqrt": (_sqrt, 1, 1),
    "log": (_log, 1, 1),
    "exp": (lambda n: number_result(DEC.exp(_num(n))), 1, 1),
    "odd": (_odd, 1, 1),
    "even": (_even, 1, 1),
    # temporal
    "day of week": (lambda d: _day_of_week(_check_date(d)), 1, 1),
    "day of year": (lambda d: _check_date(d).timetuple().tm_yday, 1, 1),
    "week of year": (lambda d: _check_date(d).isocalendar()[1], 1, 1),
    "month of year": (lambda d: _check_date(d).strftime("%B"), 1, 1),
    # contexts and misc
    "get value": (_get_value, 2, 2),
    "is defined": (lambda v: v is not None, 1, 1),
}

# the errors a builtin may raise on values it does not accept; the call turns them into null
CALL_ERRORS = (TypeError, ValueError, ArithmeticError, AttributeError, IndexError, KeyError, re.error,
               InvalidOperation, OverflowError, statistics.StatisticsError)
