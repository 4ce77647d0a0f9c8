"""AC-7: one OpenTelemetry trace spans the kernel and the plugin workers.

The kernel makes spans for the run, each task, each step and each plugin call; the worker that runs a
plugin gets the W3C trace context with the call and its own span joins the same trace, as a child of
the kernel's span for that call. Every ledger envelope and every log event of the run names the trace.
"""

import json

from engine.testing import KernelHarness
from tests.conftest import engine


def test_kernel_and_worker_spans_form_one_trace_named_in_every_ledger_envelope(tmp_path):
    harness = KernelHarness(tmp_path / "ws")
    assert harness.run().ok
    spans = list(harness.spans())
    runs = [s for s in spans if s.name == "engine run"]
    assert len(runs) == 1
    trace = runs[0].context.trace_id
    assert {s.context.trace_id for s in spans} == {trace}

    by_id = {s.context.span_id: s for s in spans}
    worker = [s for s in spans if s.instrumentation_scope is not None and "worker" in s.instrumentation_scope.name]
    assert worker, "no span came back from a plugin worker"
    for span in worker:  # each worker span is the child of the kernel's span for that call
        parent = by_id[span.parent.span_id]
        assert parent.name == span.name and parent.attributes["engine.plugin"] == span.attributes["engine.plugin"]
        assert parent.context.trace_id == trace
    names = {s.name for s in spans}
    assert {"task inspect-log", "step Task_execute", "step Task_select_plugin",
            "plugin git-inspector.log"} <= names

    hex_trace = format(trace, "032x")
    entries = harness.ledger()
    assert entries and all(e["envelope"]["trace_id"] == hex_trace for e in entries)
    assert all(len(e["envelope"]["span_id"]) == 16 for e in entries)


def test_log_events_of_a_run_carry_the_trace(example_ws):
    engine("run", "--drain", cwd=example_ws, check=0)
    events = [json.loads(line) for line in (example_ws / ".engine" / "logs" / "engine.jsonl").read_text().splitlines()]
    in_run = [e for e in events if e.get("run_id")]
    assert in_run and all(len(e.get("trace_id", "")) == 32 for e in in_run)
    ledger = [json.loads(x) for x in (example_ws / ".engine" / "ledger" / "ledger.jsonl").read_text().splitlines()]
    assert {e["trace_id"] for e in in_run} == {e["envelope"]["trace_id"] for e in ledger}


def test_console_export_writes_the_spans_to_the_log(example_ws):
    (example_ws / "engine.toml").write_text('[telemetry]\nexport = "console"\n')
    engine("run", "--drain", cwd=example_ws, check=0)
    events = [json.loads(line) for line in (example_ws / ".engine" / "logs" / "engine.jsonl").read_text().splitlines()]
    spans = [e for e in events if e.get("event") == "span"]
    assert any(s.get("name") == "engine run" for s in spans), spans[:3]
    assert any(s.get("name", "").startswith("plugin git-inspector") for s in spans)
