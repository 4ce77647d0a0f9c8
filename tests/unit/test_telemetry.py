"""One trace across the kernel and its plugin workers (engine.telemetry, engine.plugins.tracing).

The real OpenTelemetry SDK throughout; ``Telemetry.in_memory()`` keeps the finished spans to look at.
"""

import ast
import io
import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import structlog
from opentelemetry.trace import StatusCode

import engine
from engine.config import TelemetryConfig
from engine.contracts import problems
from engine.ledger import Ledger
from engine.plugins.tracing import SpanRecorder, parse_traceparent
from engine.telemetry import Telemetry

ROOT = Path(__file__).resolve().parents[2]
TRACING_FILE = ROOT / "engine" / "plugins" / "tracing.py"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


@pytest.fixture
def telemetry():
    t = Telemetry.in_memory()
    yield t
    t.shutdown()


def finished(t):
    return {s.name: s for s in t.exporter.get_finished_spans()}


def hex_ids(span):
    return f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}"


# -- kernel spans --------------------------------------------------------------------------------------


def test_nested_spans_make_one_trace_and_ids_name_the_current_span(telemetry):
    assert telemetry.ids() == {} and telemetry.traceparent() is None
    with telemetry.span("run", run_id="run-1") as run:
        run_ids = telemetry.ids()
        with telemetry.span("step", step="Task_1", attempt=2, skipped=None, path=Path("a/b")):
            step_ids = telemetry.ids()
    assert telemetry.ids() == {}
    spans = finished(telemetry)
    run, step = spans["run"], spans["step"]
    assert run_ids == dict(zip(("trace_id", "span_id"), hex_ids(run), strict=True))
    assert step_ids == dict(zip(("trace_id", "span_id"), hex_ids(step), strict=True))
    assert step.context.trace_id == run.context.trace_id and step.parent.span_id == run.context.span_id
    assert run.parent is None
    assert dict(step.attributes) == {"step": "Task_1", "attempt": 2, "path": "a/b"}  # None left out
    assert run.resource.attributes["service.name"] == "engine"
    assert run.resource.attributes["service.version"] == engine.__version__


def test_an_exception_in_a_span_sets_error_and_is_re_raised(telemetry):
    with pytest.raises(ValueError, match="boom"), telemetry.span("step"):
        raise ValueError("boom")
    with pytest.raises(KeyboardInterrupt), telemetry.span("interrupted"):
        raise KeyboardInterrupt
    spans = finished(telemetry)
    assert spans["step"].status.status_code is StatusCode.ERROR
    assert "boom" in spans["step"].status.description
    assert [e.name for e in spans["step"].events] == ["exception"]
    assert spans["interrupted"].status.status_code is StatusCode.ERROR


def test_traceparent_names_the_current_span(telemetry):
    with telemetry.span("call"):
        value = telemetry.traceparent()
        ids = telemetry.ids()
    assert value == f"00-{ids['trace_id']}-{ids['span_id']}-01"
    assert parse_traceparent(value) == (ids["trace_id"], ids["span_id"])


# -- worker spans join the trace -----------------------------------------------------------------------


def test_worker_spans_cross_the_pipe_and_join_the_kernel_trace(telemetry):
    recorder = SpanRecorder()  # what the worker does, in this process
    with telemetry.span("plugin.call", plugin="git-inspector"):
        kernel = telemetry.ids()
        handle = recorder.start("plugin.git-inspector.status", telemetry.traceparent(), {"operation": "status"})
        inner = recorder.start("git.status", handle.traceparent, {"files": 3})
        recorder.end(inner)
        recorder.end(handle, error="PluginError: not a repository")
        wire = json.dumps(recorder.drain())  # the reply message crosses a pipe as JSON
    assert recorder.drain() == []
    telemetry.export_remote(json.loads(wire))
    assert telemetry.remote_skipped == 0

    spans = finished(telemetry)
    call, worker, inner_span = spans["plugin.call"], spans["plugin.git-inspector.status"], spans["git.status"]
    assert hex_ids(call) == (kernel["trace_id"], kernel["span_id"])
    assert worker.context.trace_id == inner_span.context.trace_id == call.context.trace_id
    assert worker.parent.span_id == call.context.span_id
    assert inner_span.parent.span_id == worker.context.span_id
    assert dict(worker.attributes) == {"operation": "status"} and dict(inner_span.attributes) == {"files": 3}
    assert worker.status.status_code is StatusCode.ERROR
    assert worker.status.description == "PluginError: not a repository"
    assert inner_span.status.status_code is StatusCode.UNSET
    assert worker.start_time <= inner_span.start_time <= inner_span.end_time <= worker.end_time
    assert worker.resource is call.resource
    assert worker.instrumentation_scope.name == "engine.plugins.worker"


WORKER = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("engine_worker_tracing", sys.argv[1])
tracing = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = tracing
spec.loader.exec_module(tracing)
recorder = tracing.SpanRecorder()
handle = recorder.start("plugin.echo.run", sys.argv[2], {"pid_kind": "worker", "ok": True})
recorder.end(handle)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("opentelemetry", "engine", "structlog"))
print(json.dumps({"loaded": loaded, "spans": recorder.drain()}))
"""


def test_a_fresh_isolated_worker_records_spans_without_opentelemetry(telemetry):
    with telemetry.span("plugin.call"):
        kernel = telemetry.ids()
        proc = subprocess.run([sys.executable, "-I", "-c", WORKER, str(TRACING_FILE), telemetry.traceparent()],
                              capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 0, proc.stderr
    reply = json.loads(proc.stdout)
    assert reply["loaded"] == []  # no opentelemetry, no engine package, no structlog in the worker
    telemetry.export_remote(reply["spans"])
    assert telemetry.remote_skipped == 0
    worker = finished(telemetry)["plugin.echo.run"]
    assert f"{worker.context.trace_id:032x}" == kernel["trace_id"]
    assert f"{worker.parent.span_id:016x}" == kernel["span_id"]
    assert dict(worker.attributes) == {"pid_kind": "worker", "ok": True}


@pytest.mark.parametrize("value", [
    None, "", "garbage", f"00-{TRACE}-{PARENT}", f"00-{TRACE.upper()}-{PARENT}-01", f"ff-{TRACE}-{PARENT}-01",
    f"00-{'0' * 32}-{PARENT}-01", f"00-{TRACE}-{'0' * 16}-01", f"00-{TRACE}-{PARENT}-01-extra",
    f"00-{TRACE[:-1]}-{PARENT}-01", f"00-{TRACE}-{PARENT}-zz", 42,
])
def test_a_malformed_traceparent_starts_a_new_trace(value):
    assert parse_traceparent(value) is None
    recorder = SpanRecorder()
    recorder.end(recorder.start("call", value))
    [record] = recorder.drain()
    assert record["parent_span_id"] is None
    assert len(record["trace_id"]) == 32 and record["trace_id"] != TRACE
    assert parse_traceparent(f"00-{record['trace_id']}-{record['span_id']}-01") is not None


def test_valid_traceparents_parse():
    assert parse_traceparent(f"00-{TRACE}-{PARENT}-01") == (TRACE, PARENT)
    assert parse_traceparent(f" 00-{TRACE}-{PARENT}-00 ") == (TRACE, PARENT)
    assert parse_traceparent(f"01-{TRACE}-{PARENT}-01-future") == (TRACE, PARENT)  # later versions may extend


def test_recorder_records_are_plain_json_and_ending_twice_is_harmless():
    recorder = SpanRecorder()
    handle = recorder.start("call", f"00-{TRACE}-{PARENT}-01",
                            {"n": 1, "x": 0.5, "flag": False, "none": None, "path": Path("p"), "nan": float("nan")})
    recorder.end(handle)
    recorder.end(handle)
    [record] = recorder.drain()
    assert json.loads(json.dumps(record, allow_nan=False)) == record
    assert set(record) == {"name", "trace_id", "span_id", "parent_span_id", "start_ns", "end_ns", "attributes",
                           "status", "error"}
    assert (record["trace_id"], record["parent_span_id"], record["status"], record["error"]) == (TRACE, PARENT,
                                                                                                  "ok", None)
    assert record["attributes"] == {"n": 1, "x": 0.5, "flag": False, "path": "p", "nan": "nan"}
    assert record["start_ns"] <= record["end_ns"]


def good_record(**change):
    record = {"name": "w", "trace_id": TRACE, "span_id": "a" * 16, "parent_span_id": PARENT, "start_ns": 1,
              "end_ns": 2, "attributes": {"k": "v"}, "status": "ok", "error": None}
    record.update(change)
    return record


@pytest.mark.parametrize("bad", [
    "not a dict", None, [], good_record(trace_id="XYZ"), good_record(trace_id=TRACE.upper()),
    good_record(span_id="0" * 16), good_record(span_id=12), good_record(parent_span_id="short"),
    good_record(name=""), good_record(name=None), good_record(start_ns="1"), good_record(end_ns=True),
    good_record(start_ns=5, end_ns=4), good_record(start_ns=-1), good_record(attributes=[]),
    good_record(attributes={"k": {"nested": 1}}), good_record(attributes={"k": None}), good_record(status="fine"),
    good_record(error=3), {k: v for k, v in good_record().items() if k != "trace_id"},
])
def test_bad_span_records_are_skipped_and_counted(telemetry, bad):
    telemetry.export_remote([bad, good_record(parent_span_id=None)])
    assert telemetry.remote_skipped == 1
    [span] = telemetry.exporter.get_finished_spans()
    assert span.name == "w" and span.parent is None
    telemetry.export_remote("not even a list")
    assert telemetry.remote_skipped == 2


# -- export settings -----------------------------------------------------------------------------------


def test_export_none_makes_ids_but_writes_nothing():
    log = io.StringIO()
    with Telemetry.from_config(TelemetryConfig(export="none"), console_file=log) as t:
        with t.span("run"):
            assert set(t.ids()) == {"trace_id", "span_id"}
            assert t.traceparent() is not None
        t.export_remote([good_record()])
    assert t.processors == () and t.exporter is None
    assert log.getvalue() == ""


def test_export_console_writes_one_json_line_per_span_to_the_given_file():
    log = io.StringIO()
    with Telemetry.from_config(TelemetryConfig(export="console"), console_file=log) as t:
        with t.span("run", run_id="run-1"):
            ids = t.ids()
        t.export_remote([good_record(name="worker")])
    lines = [json.loads(line) for line in log.getvalue().splitlines()]
    assert [(x["event"], x["name"]) for x in lines] == [("span", "run"), ("span", "worker")]
    assert lines[0]["context"]["trace_id"] == f"0x{ids['trace_id']}"
    assert lines[0]["attributes"] == {"run_id": "run-1"}


def test_export_console_without_a_file_is_refused():
    with pytest.raises(ValueError, match="console"):
        Telemetry.from_config(TelemetryConfig(export="console"))


def test_export_otlp_to_a_dead_endpoint_logs_and_does_not_raise(capsys):
    config = TelemetryConfig(export="otlp", otlp_endpoint="http://127.0.0.1:9/v1/traces")
    with structlog.testing.capture_logs() as logs:
        t = Telemetry.from_config(config, otlp_timeout_sec=0.5)
        with t.span("run"):
            pass
        began = time.monotonic()
        t.shutdown()
        t.shutdown()
    assert time.monotonic() - began < 3
    assert any(e["event"] == "telemetry_sdk" for e in logs)  # in the engine's log ...
    assert capsys.readouterr().err == ""  # ... never on the terminal


class Collector(BaseHTTPRequestHandler):
    received: list

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, self.headers["Content-Type"], body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_export_otlp_sends_kernel_and_worker_spans_to_the_collector():
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    Collector.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
        t = Telemetry.from_config(TelemetryConfig(export="otlp", otlp_endpoint=url), otlp_timeout_sec=5)
        with t.span("run"):
            recorder = SpanRecorder()
            recorder.end(recorder.start("worker", t.traceparent()))
            t.export_remote(recorder.drain())
        t.flush()  # between runs: sent now, and tracing goes on
        sent_by_flush = len(Collector.received)
        with t.span("next run"):
            pass
        t.shutdown()
    finally:
        server.shutdown()
        server.server_close()
    names, traces = set(), set()
    for path, kind, body in Collector.received:
        assert (path, kind) == ("/v1/traces", "application/x-protobuf")
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    names.add(span.name)
                    traces.add(span.trace_id)
    assert sent_by_flush >= 1
    assert names == {"run", "worker", "next run"} and len(traces) == 2


# -- logs and ledger -----------------------------------------------------------------------------------


def test_structlog_events_carry_the_current_ids(telemetry):
    log = structlog.wrap_logger(structlog.ReturnLogger(), processors=[
        Telemetry.structlog_processor, structlog.processors.JSONRenderer(sort_keys=True)])
    assert "trace_id" not in json.loads(log.info("outside"))
    with telemetry.span("step"):
        ids = telemetry.ids()
        inside = json.loads(log.info("inside", step="Task_1"))
    assert {k: inside[k] for k in ("trace_id", "span_id")} == ids


def test_the_ledger_envelope_carries_trace_ids(telemetry, tmp_path):
    ledger = Ledger(tmp_path / "ledger")
    with telemetry.span("step"):
        entry = ledger.append({"kind": "step", "status": "completed", "step": "Task_1"},
                              {"run_id": "run-1", "ts": "2026-01-01T00:00:00+00:00", **telemetry.ids()})
    assert set(entry["envelope"]) >= {"trace_id", "span_id"}
    assert problems("ledger.v1", entry) == []
    assert ledger.verify().entries == 1
    for key, bad in (("trace_id", TRACE.upper()), ("trace_id", TRACE[:-1]), ("span_id", "z" * 16)):
        broken = {**entry, "envelope": {**entry["envelope"], key: bad}}
        assert [p.path for p in problems("ledger.v1", broken)] == [f"$.envelope.{key}"]


# -- dependency rules ----------------------------------------------------------------------------------


def imported(path):
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_only_telemetry_imports_opentelemetry_and_the_worker_side_only_the_stdlib():
    users = {p.relative_to(ROOT).as_posix() for p in (ROOT / "engine").rglob("*.py")
             if "opentelemetry" in imported(p)}
    assert users == {"engine/telemetry.py"}
    assert imported(TRACING_FILE) - {"__future__"} <= set(sys.stdlib_module_names)


def test_with_nothing_to_export_spans_still_carry_one_trace_and_their_own_ids():
    """export "none" (the default): spans are not recorded, but their ids are what the ledger, the log and
    the workers get, a child in its parent's trace with an id of its own."""
    telemetry = Telemetry()
    assert Telemetry.ids() == {}
    with telemetry.span("task t1") as outer:
        task_ids = Telemetry.ids()
        with telemetry.span("plugin p.op"):
            plugin_ids = Telemetry.ids()
            parent = Telemetry.traceparent()
        assert Telemetry.ids() == task_ids  # the outer span is current again
    assert Telemetry.ids() == {}
    assert len(task_ids["trace_id"]) == 32 and len(task_ids["span_id"]) == 16
    assert plugin_ids["trace_id"] == task_ids["trace_id"] and plugin_ids["span_id"] != task_ids["span_id"]
    assert parent == f"00-{plugin_ids['trace_id']}-{plugin_ids['span_id']}-01"
    assert not outer.is_recording()
    with telemetry.span("task t2"):
        assert Telemetry.ids()["trace_id"] != task_ids["trace_id"]  # a new trace at the top
