"""A step is one function: process variables in, a StepResult (variables, ledger record) out."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import structlog

from engine import dmn
from engine.plugins.dispatch import Dispatcher
from engine.plugins.loader import Registry
from engine.plugins.pool import WorkerPool
from engine.process.steps import Step, run_decision, run_service
from engine.sdk import Context

SOURCE = '''
from engine.sdk import PluginError


def work(ctx, data):
    mode = data["task"]["args"].get("mode")
    if mode == "business":
        raise PluginError("the branch moved", code="MERGE_CONFLICT")
    if mode == "retry":
        raise PluginError("try later", retryable=True)
    if mode == "kernel":
        return {"error": None}
    return {"answer": data.get("extra", 1) * 2}
'''


@pytest.fixture
def registry(tmp_path):
    folder = tmp_path / "plugins" / "stepper"
    (folder / "src").mkdir(parents=True)
    (folder / "plugin.spec.json").write_text(json.dumps({
        "id": "stepper", "version": "1.0.0", "category": "transformation", "isolation": "inprocess",
        "errors": {"MERGE_CONFLICT": "someone else changed the branch"},
        "operations": {"work": {"input_schema": {"type": "object"}, "output_schema": {"type": "object"}}}}))
    (folder / "manifest.json").write_text(json.dumps({"id": "stepper", "version": "1.0.0",
                                                      "entry_point": "src/stepper.py"}))
    (folder / "src" / "stepper.py").write_text(SOURCE)
    return Registry.discover([tmp_path / "plugins"])


def call_for(tmp_path):
    dispatcher = Dispatcher(WorkerPool(tmp_path))
    ctx = Context("run", "t1", datetime(2026, 1, 1, tzinfo=UTC), 1, False, tmp_path, structlog.get_logger())
    return lambda plugin, op, data: dispatcher.call(plugin, op, ctx, data)


def parameter(text, scope):
    return scope[text[2:-1]] if text.startswith("${") else text


def data(mode=None, **extra):
    return {"task": {"id": "t1", "tool": "x", "args": {"mode": mode} if mode else {}}, "error": None, "failures": 0,
            **extra}


def test_a_call_that_succeeds_sets_its_output_and_clears_error(registry, tmp_path):
    step = Step("S", "Work", "serviceTask", inputs=[("extra", "${n}")], outputs=[("copied", "${answer}")])
    result = run_service(step, "stepper.work", data(n=21), registry=registry, call=call_for(tmp_path),
                         parameter=parameter)
    assert result.variables == {"answer": 42, "error": None, "copied": 42}
    assert result.record["status"] == "completed" and result.record["plugin"]["id"] == "stepper"
    assert result.record["input_digest"] != result.record["output_digest"]
    assert result.output == {"answer": 42} and not result.failed


@pytest.mark.parametrize(("mode", "kind", "code", "retryable"), [
    ("business", "business", "MERGE_CONFLICT", False),
    ("retry", "technical", None, True),
    ("kernel", "technical", "engine.contract", False),
])
def test_a_failed_call_sets_a_typed_error_and_counts_it(registry, tmp_path, mode, kind, code, retryable):
    result = run_service(Step("S", None, "serviceTask"), "stepper.work", data(mode, failures=1), registry=registry,
                         call=call_for(tmp_path), parameter=parameter)
    error = result.variables["error"]
    assert (error["kind"], error["code"], error["retryable"]) == (kind, code, retryable)
    assert error["plugin"] == "stepper" and error["operation"] == "work"
    assert result.variables["failures"] == 2 and result.failed
    assert result.record["error"] == {"kind": kind, "code": code, "retryable": retryable}
    assert result.record["reason"] == error["message"]


def test_dispatch_topic_without_a_selected_plugin_is_a_typed_failure(registry, tmp_path):
    result = run_service(Step("S", None, "serviceTask"), "dispatch", data(), registry=registry,
                         call=call_for(tmp_path), parameter=parameter)
    assert result.variables["error"]["code"] == "engine.no_plugin"


def test_an_unexpected_exception_in_the_call_is_not_swallowed(registry):
    def broken(plugin, op, payload):
        raise RuntimeError("kernel bug")

    with pytest.raises(RuntimeError):
        run_service(Step("S", None, "serviceTask"), "stepper.work", data(), registry=registry, call=broken,
                    parameter=parameter)


def test_a_decision_step_stores_its_result_and_the_matched_rules():
    model = dmn.load(Path(__file__).resolve().parents[2] / "process" / "decisions.dmn")
    step = Step("D", "Select", "businessRuleTask")
    result = run_decision(step, "select_plugin", "plugin", data() | {"task": {"id": "t", "tool": "git"}},
                          decisions=model, parameter=parameter)
    assert result.variables == {"plugin": "git-inspector"}
    assert result.record["decision"]["id"] == "select_plugin" and result.record["decision"]["matched_rules"]
