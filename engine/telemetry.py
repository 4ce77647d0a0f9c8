"""OpenTelemetry tracing of the kernel: one trace per run, spanning the kernel and its plugin workers.

The only engine module that imports ``opentelemetry``. A ``Telemetry`` owns its own ``TracerProvider``
(the global provider is never set, so several can live in one process) and the span processors it
adds. Spans are always created, so trace and span ids exist for the ledger envelope and the logs
whatever the export setting (``engine.toml`` ``[telemetry] export``):

- ``none``: nothing is exported;
- ``console``: each finished span is one JSON line ``{"event": "span", ...}`` in the file handed in
  (the engine's log file: the terminal belongs to ``cli.py``);
- ``otlp``: spans are batched and sent over OTLP/HTTP to ``otlp_endpoint``. An endpoint that is down
  costs at most the export timeout at shutdown and a line in the log; it never fails the run.

The kernel hands ``traceparent()`` to a plugin worker with each call; the worker records its spans with
``engine.plugins.tracing.SpanRecorder`` (no OpenTelemetry there) and sends them back as plain dicts,
which ``export_remote`` rebuilds as finished spans of the same trace.

Span ids and times come from the SDK (random ids, the wall clock): they belong to the envelope, like the
ledger envelope's timestamps, and never enter a deterministic record or reach a plugin.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any, TextIO

import structlog
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Span, SpanContext, Status, StatusCode, TraceFlags

from engine import __version__
from engine.config import TelemetryConfig

__all__ = ["AttributeValue", "Telemetry"]

AttributeValue = str | int | float | bool

TRACER_NAME = "engine"
WORKER_SCOPE = InstrumentationScope("engine.plugins.worker", __version__)
_HEX = frozenset("0123456789abcdef")
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_log = structlog.get_logger("engine.telemetry")


class _SdkLogBridge(logging.Handler):
    """Sends the SDK's own stdlib log records (a failed export, a full queue) to the engine's log.

    Without it they would reach ``logging.lastResort`` and print on stderr, which only ``cli.py`` may use.
    """

    def emit(self, record: logging.LogRecord) -> None:
        try:
            emit = _log.error if record.levelno >= logging.ERROR else _log.warning
            emit("telemetry_sdk", logger=record.name, message=record.getMessage())
        except Exception:  # logging must never raise into the exporter thread
            self.handleError(record)


def _bridge_sdk_logs() -> None:
    sdk = logging.getLogger("opentelemetry")
    if not any(isinstance(h, _SdkLogBridge) for h in sdk.handlers):
        sdk.addHandler(_SdkLogBridge(logging.WARNING))
        sdk.propagate = False


def _attribute(value: object) -> AttributeValue | None:
    if value is None:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str | bool | int | float):
        return value
    return str(value)


def _is_id(value: object, length: int) -> bool:
    return isinstance(value, str) and len(value) == length and _HEX.issuperset(value) and value != "0" * length


def _console_line(span: ReadableSpan) -> str:
    # One JSON line per span, so the log file stays JSON lines next to structlog's events.
    return json.dumps({"event": "span", **json.loads(span.to_json(indent=None))}, sort_keys=True) + "\n"


_IDS = RandomIdGenerator()


class Telemetry:
    """The kernel's tracer: spans for the run, each step and each plugin call, in one trace.

    Guarantees: every span made by ``span()`` is a child of the span current at the time (the run span
    for a step, the step span for a plugin call), so a run is one trace; ids exist even when nothing is
    exported; nothing here raises into the run except the caller's own exceptions, which ``span()``
    records and re-raises. Batched (OTLP) spans are sent on ``flush()`` (between runs) and ``shutdown()``
    (at the end, or leave a ``with`` block); no exit hook does it for you. Spans are current per thread
    (contextvars).
    """

    def __init__(self, processors: Sequence[SpanProcessor] = (), *, exporter: SpanExporter | None = None) -> None:
        resource = Resource.create({SERVICE_NAME: "engine", SERVICE_VERSION: __version__})
        # ALWAYS_ON, not the OTEL_TRACES_SAMPLER environment: a run is traced whole or not at all, and the
        # export setting in engine.toml decides where it goes.
        self.provider = TracerProvider(sampler=ALWAYS_ON, resource=resource, shutdown_on_exit=False)
        self.processors: tuple[SpanProcessor, ...] = tuple(processors)
        for processor in self.processors:
            self.provider.add_span_processor(processor)
        self.exporter = exporter
        self.remote_skipped = 0
        self._tracer = self.provider.get_tracer(TRACER_NAME, __version__)
        self._closed = False

    @classmethod
    def from_config(cls, config: TelemetryConfig, *, console_file: TextIO | None = None,
                    otlp_timeout_sec: float | None = None) -> Telemetry:
        """The tracer ``engine.toml`` asks for.

        ``console_file`` receives the spans for "console" (required then; a ``ValueError`` otherwise).
        ``otlp_timeout_sec`` bounds one OTLP export with its retries (default: the SDK's 10 s, with which an
        endpoint that is down delays ``shutdown()`` by about 7 s). Also routes the SDK's own log records
        (a failed export) to structlog, never to stderr.
        """
        _bridge_sdk_logs()
        if config.export == "console":
            if console_file is None:
                raise ValueError("telemetry export 'console' needs the file to write spans to")
            exporter: SpanExporter = ConsoleSpanExporter(service_name="engine", out=console_file,
                                                         formatter=_console_line)
            return cls([SimpleSpanProcessor(exporter)], exporter=exporter)
        if config.export == "otlp":
            # Imported here: the exporter brings requests and protobuf (~40 ms) that "none" never needs.
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter(endpoint=config.otlp_endpoint, timeout=otlp_timeout_sec)
            return cls([BatchSpanProcessor(exporter)], exporter=exporter)
        return cls()

    @classmethod
    def in_memory(cls) -> Telemetry:
        """For tests: finished spans are kept in ``.exporter`` (an ``InMemorySpanExporter``)."""
        exporter = InMemorySpanExporter()
        return cls([SimpleSpanProcessor(exporter)], exporter=exporter)

    @contextmanager
    def span(self, name: str, **attributes: object) -> Iterator[Span]:
        """A span named ``name``, current inside the block, child of the span current outside it.

        Attribute values that are None are left out; anything but str, int, float and bool is stored as
        its ``str()``. An exception escaping the block is recorded on the span, sets its status to ERROR
        and is re-raised unchanged.
        """
        if not self.processors:  # nothing is exported: only the ids matter (ledger, logs, workers)
            yield from self._id_span()
            return
        clean = {k: v for k, v in ((k, _attribute(v)) for k, v in attributes.items()) if v is not None}
        with self._tracer.start_as_current_span(name, attributes=clean, record_exception=True,
                                                set_status_on_exception=True) as current:
            try:
                yield current
            except Exception:
                raise  # recorded by start_as_current_span
            except BaseException as e:  # KeyboardInterrupt, SystemExit: the SDK records only Exception
                current.record_exception(e)
                current.set_status(Status(StatusCode.ERROR, type(e).__name__))
                raise

    def _id_span(self) -> Iterator[Span]:
        """A span that only has ids (a child's of the current span's trace), current inside the block: what
        a span costs when nothing is exported (the SDK's recording span costs ~10 times as much)."""
        parent = trace.get_current_span().get_span_context()
        trace_id = parent.trace_id if parent.is_valid else _IDS.generate_trace_id()
        current = trace.NonRecordingSpan(SpanContext(trace_id, _IDS.generate_span_id(), is_remote=False,
                                                     trace_flags=TraceFlags(TraceFlags.SAMPLED)))
        with trace.use_span(current, end_on_exit=False, record_exception=False, set_status_on_exception=False):
            yield current

    @staticmethod
    def ids() -> dict[str, str]:
        """``{"trace_id": 32 hex, "span_id": 16 hex}`` of the current span, for the ledger envelope; {} if none."""
        context = trace.get_current_span().get_span_context()
        if not context.is_valid:
            return {}
        return {"trace_id": trace.format_trace_id(context.trace_id), "span_id": trace.format_span_id(context.span_id)}

    @staticmethod
    def traceparent() -> str | None:
        """The W3C ``traceparent`` value (``00-<trace>-<span>-01``) naming the current span; None if none.

        Only the sampled flag is passed on (Trace Context level 1); the SDK's level-2 "random trace id"
        flag is not, as the worker has no use for it.
        """
        context = trace.get_current_span().get_span_context()
        if not context.is_valid:
            return None
        flags = "01" if context.trace_flags.sampled else "00"
        return f"00-{trace.format_trace_id(context.trace_id)}-{trace.format_span_id(context.span_id)}-{flags}"

    @staticmethod
    def structlog_processor(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
                            ) -> MutableMapping[str, Any]:
        """structlog processor: adds ``trace_id`` and ``span_id`` of the current span to every event.

        Put it before the renderer. Events logged outside any span are left as they are, and ids an
        event already carries are kept.
        """
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            event_dict.setdefault("trace_id", trace.format_trace_id(context.trace_id))
            event_dict.setdefault("span_id", trace.format_span_id(context.span_id))
        return event_dict

    def export_remote(self, spans: object) -> None:
        """Export span records a plugin worker made (``engine.plugins.tracing``) as finished spans.

        ``spans`` is the list the worker's ``SpanRecorder.drain()`` returned, as it came off the pipe.
        Each record keeps its own trace id, span id, parent, times, attributes and status ("ok" stays
        UNSET like a kernel span that did not fail; "error" is ERROR with the message, plus an
        "exception" event). A record that is not of that shape (a missing key, a wrong type, an id that
        is not lowercase hex) is skipped, counted in ``remote_skipped`` and logged: this never raises.
        After ``shutdown()`` nothing is exported.
        """
        records = spans if isinstance(spans, list) else [spans]
        skipped = 0
        for record in records:
            span = self._remote_span(record)
            if span is None:
                skipped += 1
                continue
            if self._closed:
                continue
            for processor in self.processors:
                try:
                    processor.on_end(span)
                except Exception as e:  # an exporter's failure is not the run's
                    _log.warning("telemetry_export_failed", error=f"{type(e).__name__}: {e}")
        if skipped:
            self.remote_skipped += skipped
            _log.warning("telemetry_remote_spans_skipped", skipped=skipped)

    def _remote_span(self, record: object) -> ReadableSpan | None:
        if not isinstance(record, Mapping):
            return None
        name, trace_id, span_id = record.get("name"), record.get("trace_id"), record.get("span_id")
        parent_id, start, end = record.get("parent_span_id"), record.get("start_ns"), record.get("end_ns")
        attributes, status, error = record.get("attributes"), record.get("status"), record.get("error")
        if not (isinstance(name, str) and name and _is_id(trace_id, 32) and _is_id(span_id, 16)
                and (parent_id is None or _is_id(parent_id, 16))):
            return None
        if not (isinstance(start, int) and isinstance(end, int) and not isinstance(start, bool)
                and not isinstance(end, bool) and 0 <= start <= end):
            return None
        if not (isinstance(attributes, Mapping) and all(
                isinstance(k, str) and isinstance(v, str | int | float | bool) for k, v in attributes.items())):
            return None
        if status not in ("ok", "error") or not (error is None or isinstance(error, str)):
            return None
        tid = int(str(trace_id), 16)
        context = SpanContext(tid, int(str(span_id), 16), is_remote=False, trace_flags=_SAMPLED)
        parent = SpanContext(tid, int(parent_id, 16), is_remote=True, trace_flags=_SAMPLED) if parent_id else None
        events: list[Event] = []
        if status == "error":
            message = error or "error"
            span_status = Status(StatusCode.ERROR, message)
            events.append(Event("exception", {"exception.message": message}, timestamp=end))
        else:
            span_status = Status(StatusCode.UNSET)
        return ReadableSpan(name=name, context=context, parent=parent, resource=self.provider.resource,
                            attributes=dict(attributes), events=events, status=span_status,
                            start_time=start, end_time=end, instrumentation_scope=WORKER_SCOPE)

    def flush(self, timeout_millis: int = 30000) -> None:
        """Send what is batched now and keep going (between runs); a failing exporter is logged, never raised.

        With "otlp" this blocks while the batch is sent: against an endpoint that is down, up to the
        export timeout (see ``from_config``).
        """
        if self._closed:
            return
        try:
            self.provider.force_flush(timeout_millis)
        except Exception as e:
            _log.warning("telemetry_flush_failed", error=f"{type(e).__name__}: {e}")

    def shutdown(self) -> None:
        """Send what is batched and stop; idempotent. A failing exporter is logged, never raised."""
        if self._closed:
            return
        self._closed = True
        try:
            self.provider.shutdown()
        except Exception as e:
            _log.warning("telemetry_shutdown_failed", error=f"{type(e).__name__}: {e}")

    def __enter__(self) -> Telemetry:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.shutdown()
