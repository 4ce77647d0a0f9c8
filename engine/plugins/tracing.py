"""Worker-side tracing: spans recorded as plain dicts, to be shipped back to the kernel.

A plugin worker is a separate ``python -I`` process. It must start fast and must not depend on
OpenTelemetry, so this module uses the standard library only (a test runs it in a fresh interpreter
and checks that ``opentelemetry`` was never imported). The kernel hands the worker a W3C
``traceparent`` with each call; the worker records its spans under it with a ``SpanRecorder`` and
returns ``drain()`` with its reply; the kernel's ``engine.telemetry.Telemetry.export_remote`` turns
the records back into spans of the same trace.

A span record is JSON-ready::

    {"name": str, "trace_id": 32 hex, "span_id": 16 hex, "parent_span_id": 16 hex | None,
     "start_ns": int, "end_ns": int, "attributes": {str: str | int | float | bool},
     "status": "ok" | "error", "error": str | None}

Span ids come from ``os.urandom`` and times from ``time.time_ns()``: this is the tracing envelope,
like the ledger envelope, and never reaches a plugin, which still gets its time and seed from the
kernel's clock through ``Context``.

A test loads this file by path in a fresh ``python -I`` and checks that no ``opentelemetry``, ``engine``
or ``structlog`` module came with it; keep it that way (standard library only).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["AttributeValue", "SpanHandle", "SpanRecorder", "format_traceparent", "parse_traceparent"]

AttributeValue = str | int | float | bool

_HEX = frozenset("0123456789abcdef")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


def _is_hex(value: str, length: int) -> bool:
    return len(value) == length and _HEX.issuperset(value)


def parse_traceparent(value: object) -> tuple[str, str] | None:
    """``(trace_id, parent_span_id)`` from a W3C ``traceparent`` header value; None when it is malformed.

    Follows the W3C Trace Context rules: lowercase hex only; version ``ff`` and all-zero ids are
    invalid; version ``00`` has exactly four fields, a later version may append fields after the flags.
    """
    if not isinstance(value, str):
        return None
    parts = value.strip().split("-")
    if len(parts) < 4:
        return None
    version, trace_id, span_id, flags = parts[:4]
    if not _is_hex(version, 2) or version == "ff" or (version == "00" and len(parts) != 4):
        return None
    if not _is_hex(trace_id, 32) or trace_id == _ZERO_TRACE:
        return None
    if not _is_hex(span_id, 16) or span_id == _ZERO_SPAN:
        return None
    if not _is_hex(flags, 2):
        return None
    return trace_id, span_id


def format_traceparent(trace_id: str, span_id: str) -> str:
    """The ``traceparent`` value naming ``span_id`` in ``trace_id`` as the parent (sampled)."""
    return f"00-{trace_id}-{span_id}-01"


@dataclass(frozen=True)
class SpanHandle:
    """An open span of a ``SpanRecorder``; ``traceparent`` makes a child span of it."""

    trace_id: str
    span_id: str

    @property
    def traceparent(self) -> str:
        return format_traceparent(self.trace_id, self.span_id)


def _attribute(value: object) -> AttributeValue | None:
    """A value a span attribute can hold: JSON scalars as they are, None dropped, anything else as text."""
    if value is None:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # NaN and infinity are not JSON
    if isinstance(value, str | bool | int | float):
        return value
    return str(value)


def _attributes(attributes: Mapping[str, object] | None) -> dict[str, AttributeValue]:
    out: dict[str, AttributeValue] = {}
    for key, value in (attributes or {}).items():
        clean = _attribute(value)
        if clean is not None:
            out[str(key)] = clean
    return out


class SpanRecorder:
    """Records a worker's spans as plain dicts; not thread-safe (a worker runs one call at a time).

    Guarantees: every record ``drain()`` returns has the shape in the module docstring and survives
    ``json.dumps``/``json.loads`` unchanged; a span started with a valid ``traceparent`` has its trace
    id and its span as parent; without one (missing or malformed) it starts a new trace and has no parent.
    Tracing never raises into the worker: ending an unknown or already ended handle does nothing.
    """

    def __init__(self) -> None:
        self._open: dict[str, dict[str, Any]] = {}
        self._done: list[dict[str, Any]] = []

    def start(self, name: str, traceparent: str | None = None,
              attributes: Mapping[str, object] | None = None) -> SpanHandle:
        """Open a span named ``name`` under ``traceparent`` (a new trace when it is missing or malformed)."""
        parent = parse_traceparent(traceparent)
        trace_id, parent_span_id = parent if parent is not None else (os.urandom(16).hex(), None)
        span_id = os.urandom(8).hex()
        self._open[span_id] = {"name": str(name), "trace_id": trace_id, "span_id": span_id,
                               "parent_span_id": parent_span_id, "start_ns": time.time_ns(),
                               "attributes": _attributes(attributes)}
        return SpanHandle(trace_id, span_id)

    def end(self, handle: SpanHandle, error: str | None = None) -> None:
        """Close the span: status "error" with ``error`` as its message when given, else "ok"."""
        record = self._open.pop(handle.span_id, None)
        if record is None:
            return
        record["end_ns"] = max(time.time_ns(), record["start_ns"])
        record["status"] = "error" if error is not None else "ok"
        record["error"] = None if error is None else str(error)
        self._done.append(record)

    def drain(self) -> list[dict[str, Any]]:
        """The finished spans since the last drain, oldest first; spans still open stay open."""
        done, self._done = self._done, []
        return done
