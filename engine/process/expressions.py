"""FEEL in the process model: gateway conditions and timer expressions.

Modelers write the same FEEL in ``conditionExpression`` and timer definitions as in the decision
tables (``error != null``, ``retry.action = "retry"``). A Camunda 7 style ``${...}`` wrapper is
accepted and removed. Each text is compiled once, when the model loads; a text that does not compile
is a model problem, reported before any task is claimed.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Mapping
from datetime import timedelta
from decimal import Decimal
from typing import Any

from engine.dmn import FeelSyntaxError, compile_expression, to_json
from engine.dmn.juel import from_juel

Compiled = Callable[[Mapping[str, Any]], Any]


def unwrap(text: str) -> str:
    text = text.strip()
    if text.startswith("${") and text.endswith("}"):
        return text[2:-1].strip()
    if text.startswith("=") and not text.startswith("=="):
        return text[1:].strip()  # Camunda 8 marks FEEL with a leading '='
    return text


def is_expression(text: str) -> bool:
    """Whether a camunda:inputParameter/outputParameter text is an expression (``${...}``), not a string."""
    return text.strip().startswith("${") and text.strip().endswith("}")


# What Camunda Modeler's Timer tab writes: an ISO 8601 duration (PT5M), date-time (2026-12-01T10:00:00Z) or
# repeating interval (R3/PT10M), not an expression. Such a text is its own value.
_DURATION = r"P(?!$)(?:\d+Y)?(?:\d+M)?(?:\d+W)?(?:\d+D)?(?:T(?=\d)(?:\d+H)?(?:\d+M)?(?:\d+(?:\.\d+)?S)?)?"
_DATETIME = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?"
ISO_8601 = re.compile(rf"^(?:{_DURATION}|{_DATETIME}|R\d*/(?:{_DATETIME}/)?{_DURATION}(?:/{_DATETIME})?)$")


def compile_feel(text: str) -> Compiled:
    """Compile one process expression; ``FeelSyntaxError`` when it does not parse.

    An ISO 8601 duration, date-time or repeating interval written as it is (``PT5M``, what the Modeler's
    Timer tab writes) is taken as that text, not read as a FEEL name.

    Text that is not FEEL but uses JUEL or Python spellings of comparison and logic (``==``, ``&&``,
    ``||``, ``!``, single quotes) is compiled in its FEEL spelling, so models from Camunda 7 and
    SpiffWorkflow keep working; the error reported is the FEEL one.
    """
    body = unwrap(text)
    if ISO_8601.match(body):
        return lambda scope: body
    try:
        return compile_expression(body)
    except FeelSyntaxError:
        translated = from_juel(body)
        if translated != body:
            with contextlib.suppress(FeelSyntaxError):
                return compile_expression(translated)
        raise


def result_for_spiff(value: Any) -> Any:
    """FEEL values as SpiffWorkflow expects them: durations as ISO 8601 text, numbers as int/float."""
    return to_json(value) if isinstance(value, timedelta | Decimal) else value


__all__ = ["Compiled", "FeelSyntaxError", "compile_feel", "from_juel", "is_expression", "result_for_spiff", "unwrap"]
