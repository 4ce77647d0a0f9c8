"""FEEL built-in functions.

Each entry of :data:`BUILTINS` is ``name -> (function, min args, max args or None for any)``. The
compiler checks the number of arguments at load time. A function given values it does not accept
returns ``None`` (FEEL's null), never raises: the compiled call catches the usual Python errors.

:data:`PARAMETERS` gives the spec's parameter names, for calls by name.

``now()`` and ``today()`` read the clock the caller puts in the evaluation context (see
:data:`engine.dmn.compiler.CLOCK`), so that a decision can replay to the same outcome; without one, the
wall clock.
"""

from __future__ import annotations

import decimal
import functools
import re
import statistics
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, time, timedelta
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

from engine.clock import Clock
from engine.dmn import syntax as s
from engine.dmn.lexer import FeelSyntaxError
from engine.dmn.parser import parse_expression
from engine.dmn.temporal import (
    DATE,
    DATE_TIME,
    DAY_NAMES,
    DAY_TIME,
    KINDS,
    MONTH_NAMES,
    NANOS,
    TIME,
    YearMonthDuration,
    date_of,
    day_of_year,
    duration_nanos,
    fixed_zone,
    format_temporal,
    kind,
    make_date,
    make_datetime,
    make_time,
    nanosecond_of,
    parse_date,
    parse_datetime,
    parse_duration,
    parse_time,
    week_of_year,
    weekday,
    years_and_months_between,
)
from engine.dmn.values import (
    DEC,
    FeelFunction,
    Range,
    add,
    compare,
    equal,
    greater,
    is_number,
    less,
    number_result,
    show,
    to_plain,
)

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
        if d == d.to_integral_value() and d.adjusted() < 34:
            return str(int(d))
        return format(d.normalize(DEC), "f")  # 34 digits (a whole number beyond them written out in full)
    if type(value) in KINDS:  # dates, times, durations, also of years and precisions Python cannot hold
        return format_temporal(value)
    return show(to_plain(value))


def _number(text: Any, grouping: Any = None, decimal_sep: Any = None) -> Any:
    text = _str(text)
    # the spec's separators: grouping one of space, comma, period, apostrophe; decimal comma or period
    if grouping not in (None, " ", ",", ".", "'") or decimal_sep not in (None, ",", ".") or \
            (grouping is not None and grouping == decimal_sep):
        return None
    if grouping:
        text = text.replace(grouping, "")
    if decimal_sep:
        text = text.replace(decimal_sep, ".")
    if not re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", text.strip()):
        return None
    return number_result(DEC.create_decimal(text.strip()))


def _whole(value: Any) -> int:
    """A number that is a whole number, as an int (``date(2017, 1.5, 1)`` is not a date)."""
    n = _num(value)
    if n != n.to_integral_value():
        raise ValueError("not a whole number")
    return int(n)


def _date(*args: Any) -> Any:
    """``date("2024-01-31")``, ``date(2024, 1, 31)``, ``date(a date and time)``: a ``datetime.date``, or a
    :class:`~engine.dmn.temporal.FeelDate` for a year before 1 or after 9999."""
    if len(args) == 3:
        if any(a is None for a in args):
            return None
        return make_date(*(_whole(a) for a in args))
    if len(args) != 1:
        raise TypeError("date() takes a string, a date (and time), or year, month and day")
    (value,) = args
    if value is None:
        return None
    if type(value) is str:
        return parse_date(value)
    if kind(value) in (DATE, DATE_TIME):
        return date_of(value)
    raise TypeError("date() of something that is no date, date and time or string")


def _time(*args: Any) -> Any:
    """``time("10:00:00@Europe/Paris")``, ``time(10, 0, 30.5, duration("PT2H"))``, ``time(a date and time)``;
    a date is its midnight UTC."""
    if len(args) >= 3:
        hour, minute, second = args[:3]
        offset = args[3] if len(args) == 4 else None
        if hour is None or minute is None or second is None:
            return None
        seconds = _num(second)
        if seconds < 0:
            raise ValueError("second out of range")
        whole = int(seconds)
        tz = None
        if offset is not None:
            if kind(offset) != DAY_TIME or duration_nanos(offset) % NANOS:
                raise TypeError("the offset of a time is a duration of whole seconds")
            tz = fixed_zone(duration_nanos(offset) // NANOS)
        return make_time(_whole(hour), _whole(minute), whole, int((seconds - whole) * NANOS), tz)
    if len(args) != 1:
        raise TypeError("time() takes a string, a date (and time), or hour, minute, second and offset")
    (value,) = args
    if value is None:
        return None
    if type(value) is str:
        return parse_time(value)
    k = kind(value)
    if k == TIME:
        return value
    if k == DATE_TIME:
        return make_time(value.hour, value.minute, value.second, nanosecond_of(value), value.tzinfo)
    if k == DATE:
        return time(0, 0, 0, tzinfo=UTC)
    raise TypeError("time() of something that is no time, date, date and time or string")


def _date_and_time(*args: Any) -> Any:
    """``date and time("2024-01-31T10:00:00")``, ``date and time(date, time)`` (the time's zone is the
    result's), ``date and time(a date)`` (its midnight)."""
    if len(args) == 2:
        day, clock = args
        if day is None or clock is None:
            return None
        if kind(day) not in (DATE, DATE_TIME) or kind(clock) != TIME:
            raise TypeError("date and time(date, time) needs a date and a time")
        return make_datetime(day.year, day.month, day.day, clock.hour, clock.minute, clock.second,
                             nanosecond_of(clock), clock.tzinfo)
    (value,) = args
    if value is None:
        return None
    if type(value) is str:
        return parse_datetime(value)
    k = kind(value)
    if k == DATE_TIME:
        return value
    if k == DATE:
        return make_datetime(value.year, value.month, value.day)
    raise TypeError("date and time() of something that is no date, date and time or string")


def _duration(value: Any) -> Any:
    if value is None:
        return None
    return parse_duration(_str(value))


def _years_and_months(start: Any, end: Any) -> YearMonthDuration | None:
    """The whole years and months from ``start`` to ``end`` (dates or date-times; only the dates count)."""
    if start is None or end is None:
        return None
    if kind(start) not in (DATE, DATE_TIME) or kind(end) not in (DATE, DATE_TIME):
        raise TypeError("years and months duration() needs two dates or date-times")
    return years_and_months_between(start, end)


def _at_literal(text: Any) -> Any:
    """``@"2024-01-01"``, ``@"10:00:00"``, ``@"P1D"``: the FEEL 1.3 temporal literal."""
    text = _str(text)
    if text.startswith(("P", "-P")):
        return parse_duration(text)
    clock = text.partition("@")[0]  # a zone id may hold a T or a colon (@Etc/GMT)
    if "T" in clock:
        return parse_datetime(text)
    if ":" in clock:
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


# FEEL's patterns are XML Schema / XPath regular expressions; Python's ``re`` reads most of them alike. These
# are the differences :func:`_regex` translates: flags (only ``s m i x q``; ``x`` drops whitespace itself),
# ``.`` (no line end at all without ``s``), ``$`` (the very end without ``m``), class subtraction
# ``[a-z-[aeiou]]``, ``\p{IsBasicLatin}``, and what XPath forbids (``\0``, a back-reference in a class).
_BLOCKS = {"IsBasicLatin": "\\x00-\\x7F", "IsLatin-1Supplement": "\\x80-\\xFF"}
_CATEGORIES = {"L": "[^\\W\\d_]", "Nd": "\\d", "N": "\\d"}


def _regex(pattern: Any, flags: Any = None) -> re.Pattern[str]:
    """An XPath regular expression (FEEL's ``matches``, ``replace``, ``split``) as a compiled Python one;
    ValueError or re.error for a pattern or flags XPath does not accept."""
    pattern, flags = _str(pattern), _str(flags) if flags is not None else ""
    if set(flags) - set("smixq"):
        raise ValueError(f"unknown regular expression flags {flags!r}")
    py = (re.I if "i" in flags else 0) | (re.M if "m" in flags else 0) | (re.S if "s" in flags else 0)
    if "q" in flags:
        return re.compile(re.escape(pattern), py)
    if "x" in flags:
        pattern = _drop_whitespace(pattern)
    out, i = _translate(pattern, 0, "s" in flags, "m" in flags, top=True)
    return re.compile(out, py)


def _drop_whitespace(pattern: str) -> str:
    """The ``x`` flag: whitespace goes, but not inside a character class."""
    out, depth, escaped = [], 0, False
    for c in pattern:
        if not depth and c in " \t\n\r":
            continue  # even after a backslash: ``hello\ sworld`` is ``hello\sworld``
        if not escaped:
            depth += 1 if c == "[" else (-1 if c == "]" and depth else 0)
        escaped = c == "\\" and not escaped
        out.append(c)
    return "".join(out)


def _property(pattern: str, i: int) -> tuple[str, int]:
    r"""``\p{Name}`` at ``pattern[i]`` (the ``p``): the ranges it stands for, for inside a class."""
    end = pattern.find("}", i)
    if pattern[i + 1:i + 2] != "{" or end < 0:
        raise ValueError("\\p needs {name}")
    name = pattern[i + 2:end]
    if name in _BLOCKS:
        return _BLOCKS[name], end + 1
    raise ValueError(f"unsupported property \\p{{{name}}}")


def _translate(pattern: str, i: int, dot_all: bool, multiline: bool, *, top: bool = False) -> tuple[str, int]:
    out: list[str] = []
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            nxt = pattern[i + 1:i + 2]
            if nxt in ("p", "P"):
                end = pattern.find("}", i)
                name = pattern[i + 3:end] if pattern[i + 2:i + 3] == "{" and end > 0 else ""
                if name in _BLOCKS:
                    out.append(("[" if nxt == "p" else "[^") + _BLOCKS[name] + "]")
                elif name in _CATEGORIES and nxt == "p":
                    out.append(_CATEGORIES[name])
                else:
                    raise ValueError(f"unsupported property {pattern[i:end + 1]}")
                i = end + 1
                continue
            if nxt == "0" or not nxt:
                raise ValueError("\\0 is no escape in XPath")
            out.append(pattern[i:i + 2])
            i += 2
        elif c == "[":
            cls, i = _char_class(pattern, i)
            out.append(cls)
        elif c == "." and not dot_all:
            out.append("[^\\n\\r]")
            i += 1
        elif c == "$" and not multiline:
            out.append("(?!\\n)\\Z")  # the very end, not before a last line end
            i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out), i


def _char_class(pattern: str, i: int) -> tuple[str, int]:
    """The class at ``pattern[i] == "["``, with XPath's subtraction ``[base-[excluded]]``."""
    body: list[str] = []
    j = i + 1
    if pattern[j:j + 1] == "^":
        body.append("^")
        j += 1
    while j < len(pattern):
        c = pattern[j]
        if c == "]" and len(body) > (1 if body[:1] == ["^"] else 0):
            return "[" + "".join(body) + "]", j + 1
        if c == "-" and pattern[j + 1:j + 2] == "[":
            excluded, k = _char_class(pattern, j + 1)
            if pattern[k:k + 1] != "]":
                raise ValueError("a subtraction ends its class")
            return f"(?:(?!{excluded})[{''.join(body)}])", k + 1
        if c == "\\":
            nxt = pattern[j + 1:j + 2]
            if nxt.isdigit():
                raise ValueError("no back-reference inside a character class")
            if nxt == "p":
                ranges, j = _property(pattern, j + 1)
                body.append(ranges)
                continue
            body.append(pattern[j:j + 2])
            j += 2
            continue
        if c == "[":
            body.append("\\[")
        else:
            body.append(c)
        j += 1
    raise ValueError("a character class is not closed")


def _matches(value: Any, pattern: Any, flags: Any = None) -> bool:
    return _regex(pattern, flags).search(_str(value)) is not None


def _replace(value: Any, pattern: Any, replacement: Any, flags: Any = None) -> str:
    regex = _regex(pattern, flags)
    if regex.match(""):
        raise ValueError("a pattern that matches the empty string cannot replace")  # XPath: an error
    text = _str(replacement)
    if re.search(r"\$(?!\d)|\\", text.replace("\\\\", "").replace("\\$", "")):
        raise ValueError("in a replacement, '$' starts a group number and '\\' escapes '$' or '\\'")

    def group(m: re.Match[str], n: int) -> str:
        return (m.group(n) or "") if n <= regex.groups else ""  # a group that is not there: nothing

    def expand(m: re.Match[str]) -> str:
        return re.sub(r"\\([$\\])|\$(\d)", lambda g: g.group(1) or group(m, int(g.group(2))), text)
    return regex.sub(expand, _str(value))


def _split(value: Any, delimiter: Any) -> list[str]:
    return _regex(delimiter).split(_str(value))


def _string_join(values: Any, delimiter: Any = "") -> str | None:
    if values is None:
        return None
    parts = [_str(v) for v in _list(values) if v is not None]
    return (_str(delimiter) if delimiter is not None else "").join(parts)


def _substring_before(value: Any, match: Any) -> str:
    text, m = _str(value), _str(match)
    return text.partition(m)[0] if m and m in text else ""


def _substring_after(value: Any, match: Any) -> str:
    text, m = _str(value), _str(match)
    return text if not m else text.partition(m)[2]


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
    with decimal.localcontext(DEC):  # statistics works in the current context: 34 digits, not 28
        return number_result(+statistics.stdev([_num(v) for v in items]))


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
        digits = int(_num(scale))
        if not -6111 <= digits <= 6176:  # the scales of decimal128, as the spec bounds them
            return None
        value = _num(n)
        if value.as_tuple().exponent >= -digits:  # type: ignore[operator]  # finite: no more digits to round
            return number_result(value)
        return number_result(value.quantize(Decimal(1).scaleb(-digits), rounding=mode))
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
    return DAY_NAMES[weekday(d)]


def _check_date(d: Any) -> Any:
    """A date or date-time (of any year); TypeError for anything else."""
    if kind(d) not in (DATE, DATE_TIME):
        raise TypeError("not a date")
    return d


# ---- equality, contexts, lists (DMN 1.4/1.5) ------------------------------------------------------------


def _zone_key(value: Any) -> Any:
    tz = value.tzinfo
    if tz is None:
        return None
    key = getattr(tz, "key", None)  # a named zone (``@Europe/Paris``) is not the same as its offset
    return ("zone", key) if key else ("offset", value.utcoffset())


def _is(value1: Any, value2: Any) -> bool:
    """``is(a, b)``: the same value of the same type; unlike ``=``, ``10:00:00Z`` is not ``11:00:00+01:00``,
    a named time zone is not its offset, and a date is not its midnight."""
    if value1 is None or value2 is None:
        return value1 is value2
    k1, k2 = kind(value1), kind(value2)
    if k1 != k2:
        return False
    if k1 in (TIME, DATE_TIME):
        return format_temporal(value1) == format_temporal(value2) and _zone_key(value1) == _zone_key(value2)
    return equal(value1, value2) is True


_RANGE_ENDPOINT_CALLS = frozenset({"@", "date", "time", "date and time", "duration"})


def _range_endpoint(node: s.Node | None) -> Any:
    """A range literal's endpoint in ``range("...")``: a literal, or a temporal literal from a string."""
    if isinstance(node, s.Literal) and node.value is not None and type(node.value) is not bool:
        return node.value
    if isinstance(node, s.Call) and node.function in _RANGE_ENDPOINT_CALLS and not node.named and \
            len(node.args) == 1 and isinstance(node.args[0], s.Literal) and type(node.args[0].value) is str:
        return BUILTINS[node.function][0](node.args[0].value)
    raise ValueError("a range endpoint must be a literal")


def _range(text: Any) -> Range | None:
    """``range("[1..3]")``: the range a range literal spells; null when the text is none, its endpoints are
    not literals of one type, or the start comes after the end."""
    try:
        node = parse_expression(_str(text))
    except FeelSyntaxError:
        return None
    if not isinstance(node, s.RangeExpr):
        return None
    start, end = _range_endpoint(node.start), _range_endpoint(node.end)
    c = compare(start, end)
    if c is None or c > 0:
        return None
    return Range(start, end, node.start_closed, node.end_closed)


def _context(entries: Any) -> dict[str, Any] | None:
    """``context([{key: "a", value: 1}])`` -> ``{a: 1}``; null for an entry without a string key or a value,
    or a key twice."""
    out: dict[str, Any] = {}
    for entry in _list(entries):
        if not isinstance(entry, Mapping) or type(entry.get("key")) is not str or "value" not in entry:
            return None
        if entry["key"] in out:
            return None
        out[entry["key"]] = entry["value"]
    return out


def _context_put(context: Any, key: Any, value: Any) -> dict[str, Any] | None:
    """``context put(c, "k", v)`` or, with a list of keys, ``context put(c, ["a", "b"], v)`` into nested
    contexts (each one on the way must exist)."""
    if not isinstance(context, Mapping):
        return None
    if type(key) is list:
        if not key or any(type(k) is not str for k in key):
            return None
        if len(key) > 1:
            inner = _context_put(context.get(key[0]), key[1:], value)
            return None if inner is None else _context_put(context, key[0], inner)
        key = key[0]
    if type(key) is not str:
        return None
    out = dict(context)
    out[key] = value
    return out


def _context_put_key(context: Any, key: Any, value: Any) -> dict[str, Any] | None:
    """``context put(context: c, key: k, value: v)``: by name, ``key`` is one key, never a list."""
    return _context_put(context, key, value) if type(key) is str else None


def _context_merge(contexts: Any) -> dict[str, Any] | None:
    out: dict[str, Any] = {}
    for c in _list(contexts):
        if not isinstance(c, Mapping):
            return None
        out.update(c)
    return out


def _get_entries(m: Any) -> list[dict[str, Any]] | None:
    if not isinstance(m, Mapping):
        return None
    return [{"key": k, "value": v} for k, v in m.items()]


def _list_replace(values: Any, position: Any, new_item: Any) -> list[Any] | None:
    """``list replace(list, position, newItem)`` or ``list replace(list, match, newItem)``, where
    ``match(item, newItem)`` says which items to replace."""
    if values is None:
        return None
    items = list(_list(values))
    if is_number(position):
        items[_position(items, position)] = new_item
        return items
    if type(position) is FeelFunction and len(position.params) != 2:
        return None
    if not callable(position):
        return None
    out = []
    for item in items:
        hit = position(item, new_item)
        if hit is not None and type(hit) is not bool:
            return None
        out.append(new_item if hit is True else item)
    return out


def read_clock(clock: Any = None) -> datetime:
    """The time ``now()`` and ``today()`` read: from ``clock`` (a :class:`~engine.clock.Clock`, a function
    giving a datetime, or a datetime), or the wall clock (UTC) when there is none."""
    if clock is None:
        clock = Clock()
    if type(clock) is datetime:
        return clock
    now = getattr(clock, "now", clock)
    value = now()
    if not isinstance(value, datetime):
        raise TypeError("the clock did not give a date and time")
    return value


# ---- ranges (DMN 1.4 interval functions; the spec's table of range functions) -----------------------------


def _t_and(*values: Any) -> bool | None:
    if any(v is False for v in values):
        return False
    return True if all(v is True for v in values) else None


def _t_or(*values: Any) -> bool | None:
    if any(v is True for v in values):
        return True
    return False if all(v is False for v in values) else None


def _eq(a: Any, b: Any) -> bool | None:
    return None if a is None or b is None else equal(a, b)


def _kinds(a: Any, b: Any) -> str:
    """"pp", "pr", "rp" or "rr": which arguments are points and which ranges."""
    if a is None or b is None:
        raise TypeError("null")
    return ("r" if type(a) is Range else "p") + ("r" if type(b) is Range else "p")


def _before(a: Any, b: Any) -> bool | None:
    k = _kinds(a, b)
    if k == "pp":
        return less(a, b)
    if k == "pr":
        return _t_or(less(a, b.start), _t_and(_eq(a, b.start), not b.start_closed))
    if k == "rp":
        return _t_or(less(a.end, b), _t_and(_eq(a.end, b), not a.end_closed))
    return _t_or(less(a.end, b.start), _t_and(_eq(a.end, b.start), not (a.end_closed and b.start_closed)))


def _after(a: Any, b: Any) -> bool | None:
    k = _kinds(a, b)
    if k == "pp":
        return greater(a, b)
    if k == "pr":
        return _t_or(greater(a, b.end), _t_and(_eq(a, b.end), not b.end_closed))
    if k == "rp":
        return _t_or(greater(a.start, b), _t_and(_eq(a.start, b), not a.start_closed))
    return _t_or(greater(a.start, b.end), _t_and(_eq(a.start, b.end), not (a.start_closed and b.end_closed)))


def _ranges(a: Any, b: Any) -> tuple[Range, Range]:
    if _kinds(a, b) != "rr":
        raise TypeError("two ranges are needed")
    return a, b


def _meets(a: Any, b: Any) -> bool | None:
    r1, r2 = _ranges(a, b)
    return _t_and(r1.end_closed, r2.start_closed, _eq(r1.end, r2.start))


def _met_by(a: Any, b: Any) -> bool | None:
    r1, r2 = _ranges(a, b)
    return _t_and(r1.start_closed, r2.end_closed, _eq(r1.start, r2.end))


def _overlaps(a: Any, b: Any) -> bool | None:
    r1, r2 = _ranges(a, b)
    return _t_and(_t_or(greater(r1.end, r2.start), _t_and(_eq(r1.end, r2.start), r1.end_closed, r2.start_closed)),
                  _t_or(less(r1.start, r2.end), _t_and(_eq(r1.start, r2.end), r1.start_closed, r2.end_closed)))


def _overlaps_before(a: Any, b: Any) -> bool | None:
    r1, r2 = _ranges(a, b)
    return _t_and(
        _t_or(less(r1.start, r2.start), _t_and(_eq(r1.start, r2.start), r1.start_closed, not r2.start_closed)),
        _t_or(greater(r1.end, r2.start), _t_and(_eq(r1.end, r2.start), r1.end_closed, r2.start_closed)),
        _t_or(less(r1.end, r2.end), _t_and(_eq(r1.end, r2.end), not r1.end_closed or r2.end_closed)))


def _overlaps_after(a: Any, b: Any) -> bool | None:
    return _overlaps_before(b, a)


def _finishes(a: Any, b: Any) -> bool | None:
    k = _kinds(a, b)
    if k == "pr":
        return _t_and(b.end_closed, _eq(b.end, a))
    r1, r2 = _ranges(a, b)
    return _t_and(r1.end_closed == r2.end_closed, _eq(r1.end, r2.end), _t_or(
        greater(r1.start, r2.start),
        _t_and(_eq(r1.start, r2.start), not r1.start_closed or r2.start_closed)))


def _finished_by(a: Any, b: Any) -> bool | None:
    k = _kinds(a, b)
    if k == "rp":
        return _t_and(a.end_closed, _eq(a.end, b))
    r1, r2 = _ranges(a, b)
    return _t_and(r1.end_closed == r2.end_closed, _eq(r1.end, r2.end), _t_or(
        less(r1.start, r2.start),
        _t_and(_eq(r1.start, r2.start), r1.start_closed or not r2.start_closed)))


def _includes(a: Any, b: Any) -> bool | None:
    k = _kinds(a, b)
    if k == "rp":
        return _t_or(_t_and(less(a.start, b), greater(a.end, b)), _t_and(_eq(a.start, b), a.start_closed),
                     _t_and(_eq(a.end, b), a.end_closed))
    r1, r2 = _ranges(a, b)
    return _t_and(
        _t_or(less(r1.start, r2.start), _t_and(_eq(r1.start, r2.start), r1.start_closed or not r2.start_closed)),
        _t_or(greater(r1.end, r2.end), _t_and(_eq(r1.end, r2.end), r1.end_closed or not r2.end_closed)))


def _during(a: Any, b: Any) -> bool | None:
    if _kinds(a, b) not in ("pr", "rr"):
        raise TypeError("during(point, range) or during(range, range)")
    return _includes(b, a)


def _starts(a: Any, b: Any) -> bool | None:
    k = _kinds(a, b)
    if k == "pr":
        return _t_and(_eq(b.start, a), b.start_closed)
    r1, r2 = _ranges(a, b)
    return _t_and(_eq(r1.start, r2.start), r1.start_closed == r2.start_closed, _t_or(
        less(r1.end, r2.end), _t_and(_eq(r1.end, r2.end), not r1.end_closed or r2.end_closed)))


def _started_by(a: Any, b: Any) -> bool | None:
    k = _kinds(a, b)
    if k == "rp":
        return _t_and(_eq(a.start, b), a.start_closed)
    r1, r2 = _ranges(a, b)
    return _t_and(_eq(r1.start, r2.start), r1.start_closed == r2.start_closed, _t_or(
        less(r2.end, r1.end), _t_and(_eq(r2.end, r1.end), not r2.end_closed or r1.end_closed)))


def _coincides(a: Any, b: Any) -> bool | None:
    k = _kinds(a, b)
    if k == "pp":
        return _eq(a, b)
    r1, r2 = _ranges(a, b)
    return _t_and(_eq(r1.start, r2.start), r1.start_closed == r2.start_closed, _eq(r1.end, r2.end),
                  r1.end_closed == r2.end_closed)


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
    "substring before": (_substring_before, 2, 2),
    "substring after": (_substring_after, 2, 2),
    "contains": (_contains, 2, 2),
    "starts with": (lambda s, m: _str(s).startswith(_str(m)), 2, 2),
    "ends with": (lambda s, m: _str(s).endswith(_str(m)), 2, 2),
    "matches": (_matches, 2, 3),
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
    "day of year": (lambda d: day_of_year(_check_date(d)), 1, 1),
    "week of year": (lambda d: week_of_year(_check_date(d)), 1, 1),
    "month of year": (lambda d: MONTH_NAMES[_check_date(d).month - 1], 1, 1),
    # contexts and misc
    "get value": (_get_value, 2, 2),
    "is defined": (lambda v: v is not None, 1, 1),
    "is": (_is, 2, 2),
    "get entries": (_get_entries, 1, 1),
    "context": (_context, 1, 1),
    "context put": (_context_put, 3, 3),
    "context merge": (_context_merge, 1, 1),
    "list replace": (_list_replace, 3, 3),
    "now": (lambda: read_clock(), 0, 0),
    "today": (lambda: read_clock().date(), 0, 0),
    # ranges
    "range": (_range, 1, 1),
    "before": (_before, 2, 2),
    "after": (_after, 2, 2),
    "meets": (_meets, 2, 2),
    "met by": (_met_by, 2, 2),
    "overlaps": (_overlaps, 2, 2),
    "overlaps before": (_overlaps_before, 2, 2),
    "overlaps after": (_overlaps_after, 2, 2),
    "finishes": (_finishes, 2, 2),
    "finished by": (_finished_by, 2, 2),
    "includes": (_includes, 2, 2),
    "during": (_during, 2, 2),
    "starts": (_starts, 2, 2),
    "started by": (_started_by, 2, 2),
    "coincides": (_coincides, 2, 2),
}

# The spec's parameter names, for calls by name (``substring(string: "abc", start position: 2)``): one
# signature per form of the function, ``?`` after an optional parameter. A call by name takes the first
# form that has every name it gives; a parameter it leaves out is null (an optional one at the end is left
# out). Functions of any number of arguments (``min(1, 2, 3)``) are called by name with their list.
_RANGE_PAIRS = ("point1, point2", "point, range", "range, point", "range1, range2")
PARAMETERS: dict[str, tuple[str, ...]] = {
    # conversion
    "not": ("negand",),
    "string": ("from",),
    "number": ("from, grouping separator?, decimal separator?",),
    "date": ("from", "year, month, day"),
    "time": ("from", "hour, minute, second, offset?"),
    "date and time": ("from", "date, time"),
    "duration": ("from",),
    "years and months duration": ("from, to",),
    # strings
    "string length": ("string",),
    "upper case": ("string",),
    "lower case": ("string",),
    "substring": ("string, start position, length?",),
    "substring before": ("string, match",),
    "substring after": ("string, match",),
    "contains": ("string, match",),
    "starts with": ("string, match",),
    "ends with": ("string, match",),
    "matches": ("input, pattern, flags?",),
    "replace": ("input, pattern, replacement, flags?",),
    "split": ("string, delimiter",),
    "string join": ("list, delimiter?",),
    # lists
    "list contains": ("list, element",),
    "count": ("list",),
    "min": ("list",),
    "max": ("list",),
    "sum": ("list",),
    "mean": ("list",),
    "product": ("list",),
    "median": ("list",),
    "stddev": ("list",),
    "mode": ("list",),
    "all": ("list",),
    "and": ("list",),
    "any": ("list",),
    "or": ("list",),
    "sublist": ("list, start position, length?",),
    "append": ("list, item",),
    "concatenate": ("list",),
    "insert before": ("list, position, newItem",),
    "remove": ("list, position",),
    "reverse": ("list",),
    "index of": ("list, match",),
    "union": ("list",),
    "distinct values": ("list",),
    "flatten": ("list",),
    "sort": ("list, precedes?",),
    "list replace": ("list, position, newItem", "list, match, newItem"),
    # numbers
    "abs": ("n",),
    "floor": ("n, scale?",),
    "ceiling": ("n, scale?",),
    "decimal": ("n, scale",),
    "round up": ("n, scale",),
    "round down": ("n, scale",),
    "round half up": ("n, scale",),
    "round half down": ("n, scale",),
    "modulo": ("dividend, divisor",),
    "sqrt": ("number",),
    "log": ("number",),
    "exp": ("number",),
    "odd": ("number",),
    "even": ("number",),
    # temporal
    "day of week": ("date",),
    "day of year": ("date",),
    "week of year": ("date",),
    "month of year": ("date",),
    "is": ("value1, value2",),
    "now": ("",),
    "today": ("",),
    # contexts and misc
    "get value": ("m, key",),
    "get entries": ("m",),
    "context": ("entries",),
    "context put": ("context, key, value", "context, keys, value"),
    "context merge": ("contexts",),
    "is defined": ("value",),
    # ranges
    "range": ("from",),
    "before": _RANGE_PAIRS,
    "after": _RANGE_PAIRS,
    "coincides": ("point1, point2", "range1, range2"),
    **{name: ("range1, range2",) for name in ("meets", "met by", "overlaps", "overlaps before",
                                              "overlaps after")},
    "finishes": ("point, range", "range1, range2"),
    "finished by": ("range, point", "range1, range2"),
    "includes": ("range, point", "range1, range2"),
    "during": ("point, range", "range1, range2"),
    "starts": ("point, range", "range1, range2"),
    "started by": ("range, point", "range1, range2"),
}
# a form whose arguments a call by name gives to another function than the positional one
BY_NAME: dict[tuple[str, str], Callable[..., Any]] = {
    ("context put", "context, key, value"): _context_put_key,
}


def signatures(name: str) -> list[tuple[str, list[str], int]]:
    """The forms of built-in ``name`` for calls by name: (form as written, parameter names, how many are
    required)."""
    out = []
    for form in PARAMETERS.get(name, ()):
        params = [p.strip() for p in form.split(",") if p.strip()]
        required = sum(1 for p in params if not p.endswith("?"))
        out.append((form, [p.rstrip("?") for p in params], required))
    return out


# the errors a builtin may raise on values it does not accept; the call turns them into null
CALL_ERRORS = (TypeError, ValueError, ArithmeticError, AttributeError, IndexError, KeyError, re.error,
               InvalidOperation, OverflowError, statistics.StatisticsError)
