"""``typeRef``: the names DMN and Camunda give to types, checking values against them, and reading
command-line text as a value of a type.

Known names: ``string``, ``number``, ``boolean``, ``date``, ``time``, ``dateTime``,
``dayTimeDuration``, ``yearMonthDuration``, their FEEL spellings (``date and time``,
``days and time duration``, ``years and months duration``), the DMN 1.1 ``feel:`` prefixed forms,
Camunda's ``integer``, ``long``, ``double``, and ``Any``. An ``itemDefinition`` in the file may name a
type of its own (see :class:`TypeDef`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from engine.dmn.temporal import (
    DayTimeDuration,
    FeelDate,
    FeelDateTime,
    FeelTime,
    YearMonthDuration,
    date_of,
    make_datetime,
    parse_date,
    parse_datetime,
    parse_duration,
    parse_time,
)
from engine.dmn.values import DEC, from_float, normalize, number_result, show, type_name

_ALIASES = {
    "string": "string", "number": "number", "boolean": "boolean", "date": "date", "time": "time",
    "datetime": "dateTime", "date and time": "dateTime",
    "daytimeduration": "dayTimeDuration", "days and time duration": "dayTimeDuration",
    "yearmonthduration": "yearMonthDuration", "years and months duration": "yearMonthDuration",
    "integer": "integer", "int": "integer", "long": "long", "double": "double", "float": "double",
    "decimal": "number", "any": "Any", "context": "context", "list": "list",
}
BASE_TYPES = frozenset(_ALIASES.values())


class TypeMismatch(Exception):
    """A value does not fit a typeRef; the message says what was expected and what came."""


@dataclass
class TypeDef:
    """A type from an ``itemDefinition``: a base type, maybe a collection, maybe restricted values."""

    name: str
    base: str | None  # a BASE_TYPES name, or None for a structured (context) type
    is_collection: bool = False
    allowed: list[Callable[[Any, Any], Any]] = field(default_factory=list)
    allowed_text: str = ""
    components: dict[str, str] = field(default_factory=dict)


def normalize_type(type_ref: str | None) -> str | None:
    """``"feel:string"`` -> ``"string"``; ``"dateTime"`` -> ``"dateTime"``; unknown names as written."""
    if type_ref is None or not type_ref.strip():
        return None
    name = type_ref.strip()
    if ":" in name:
        name = name.split(":", 1)[1]
    return _ALIASES.get(name.lower(), _ALIASES.get(re.sub(r"\s+", " ", name.lower()), name))


def conform(value: Any, type_ref: str | None, types: dict[str, TypeDef] | None = None) -> Any:
    """``value`` checked (and, where a faithful conversion exists, converted) to ``type_ref``.

    ``None`` always conforms. Strings become dates, times and durations when the type asks for one
    (JSON has no date type, so this is how a date reaches a decision). Raises :class:`TypeMismatch`.
    """
    if value is None or type_ref is None or type_ref == "Any":
        return value
    t = type(value)
    if type_ref in ("number", "double"):
        if t is int or t is Decimal:
            return value
        if t is float:
            return from_float(value)
        if t is str and re.fullmatch(r"\s*[+-]?(\d+(\.\d*)?|\.\d+)\s*", value):
            return number_result(DEC.create_decimal(value.strip()))
    elif type_ref in ("integer", "long"):
        if t is int:
            return value
        if t is Decimal or t is float:
            d = value if t is Decimal else from_float(value)
            if d is not None and d == d.to_integral_value():
                return int(d)
        if t is str and re.fullmatch(r"\s*[+-]?\d+\s*", value):
            return int(value)
    elif type_ref == "string":
        if t is str:
            return value
    elif type_ref == "boolean":
        if t is bool:
            return value
        if t is str and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
    elif type_ref == "date":  # (and below) Python's types, or the engine's own past Python's years
        if t is date or t is FeelDate:
            return value
        if t is datetime or t is FeelDateTime:
            return date_of(value)
        if t is str:
            return _parsed(parse_date, value, type_ref)
    elif type_ref == "dateTime":
        if t is datetime or t is FeelDateTime:
            return value
        if t is date or t is FeelDate:
            return make_datetime(value.year, value.month, value.day)
        if t is str:
            return _parsed(parse_datetime, value, type_ref)
    elif type_ref == "time":
        if t is time or t is FeelTime:
            return value
        if t is str:
            return _parsed(parse_time, value, type_ref)
    elif type_ref == "dayTimeDuration":
        if t is timedelta or t is DayTimeDuration:
            return value
        if t is str:
            d = _parsed(parse_duration, value, type_ref)
            if type(d) is timedelta or type(d) is DayTimeDuration:
                return d
    elif type_ref == "yearMonthDuration":
        if t is YearMonthDuration:
            return value
        if t is str:
            d = _parsed(parse_duration, value, type_ref)
            if type(d) is YearMonthDuration:
                return d
    elif type_ref == "list":
        if t is list:
            return value
    elif type_ref == "context":
        if isinstance(value, dict):
            return value
    elif type_ref == "function":  # an itemDefinition's functionItem; the signature is not checked
        if callable(value):
            return value
    elif types and type_ref in types:
        return _conform_typedef(value, types[type_ref], types)
    else:
        return value  # an unknown type name was reported at load time; do not fail twice
    raise TypeMismatch(f"expected {type_ref}, got {type_name(value)} {show(value)}")


def _parsed(parse: Callable[[str], Any], text: str, type_ref: str) -> Any:
    try:
        return parse(text)
    except ValueError as e:
        raise TypeMismatch(f"expected {type_ref}: {e}") from e


def _conform_typedef(value: Any, typedef: TypeDef, types: dict[str, TypeDef]) -> Any:
    if typedef.is_collection:
        if type(value) is not list:
            raise TypeMismatch(f"expected a list of {typedef.name}, got {type_name(value)} {show(value)}")
        inner = TypeDef(typedef.name, typedef.base, False, typedef.allowed, typedef.allowed_text,
                        typedef.components)
        return [_conform_typedef(v, inner, types) for v in value]
    if typedef.base is None:
        if not isinstance(value, dict):
            raise TypeMismatch(f"expected {typedef.name} (a context), got {type_name(value)} {show(value)}")
        out = dict(value)
        for key, component_type in typedef.components.items():
            if key in out:
                out[key] = conform(normalize(out[key]), component_type, types)
        return out
    value = conform(value, typedef.base, types)
    if typedef.allowed and value is not None and not any(t(value, {}) is True for t in typedef.allowed):
        raise TypeMismatch(f"{show(value)} is not one of the allowed values of {typedef.name}: "
                           f"{typedef.allowed_text}")
    return value


def parse_text(text: str, type_ref: str | None, types: dict[str, TypeDef] | None = None) -> Any:
    """Command-line text -> a plain Python value of ``type_ref`` (``"3"`` -> 3, ``"2024-01-01"`` -> date).

    Without a type, JSON is tried (``["a","b"]``, ``3``, ``true``, ``null``) and anything else is a string.
    Raises :class:`TypeMismatch`.
    """
    raw = text.strip()
    if type_ref in (None, "Any", "list", "context") or (types and type_ref in types and
                                                         types[type_ref].base is None):
        try:
            return json.loads(raw)
        except ValueError:
            return text
    if type_ref == "string":
        if len(raw) >= 2 and raw[0] == raw[-1] == '"':
            try:
                return str(json.loads(raw))
            except ValueError:
                return raw[1:-1]
        return text
    if types and type_ref in types and types[type_ref].is_collection:
        try:
            value = json.loads(raw)
        except ValueError as e:
            raise TypeMismatch(f"expected a JSON list for {type_ref}, got {text!r}") from e
        return _to_plain(conform(value, type_ref, types))
    if type_ref == "boolean":
        lowered = raw.lower()
        if lowered in ("true", "yes", "1"):
            return True
        if lowered in ("false", "no", "0"):
            return False
        raise TypeMismatch(f"expected boolean (true or false), got {text!r}")
    if raw.lower() == "null":
        return None
    if type_ref in ("number", "double", "integer", "long") and not re.fullmatch(
            r"[+-]?(\d+(\.\d*)?|\.\d+)", raw):
        raise TypeMismatch(f"expected {type_ref}, got {text!r}")
    return _to_plain(conform(raw, type_ref, types))


def _to_plain(value: Any) -> Any:
    """A conformed value as plain Python, its numbers with every digit given (``values.to_plain``)."""
    from engine.dmn.values import to_plain

    return to_plain(value)

