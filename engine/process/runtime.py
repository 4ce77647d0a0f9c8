"""Running one task through the process with SpiffWorkflow.

The process data starts as ``{"task": <task.v1>, "error": None, "failures": 0}``. Service tasks
dispatch their topic to a plugin with ``{"task": task}`` as input and merge the plugin's output into
the process data (Camunda's external-task semantics); a plugin failure sets ``error`` to
``{"message", "retryable", "plugin", "operation"}`` instead of stopping the process, so gateways can
route on it. Business rule tasks store their decision's result in their result variable. Every
completed step is written to the ledger; the end event reached decides the task's outcome through its
``camunda:property name="outcome"`` (``done`` when absent).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.exceptions import SpiffWorkflowException, WorkflowException
from SpiffWorkflow.util.task import TaskState

from engine.clock import Clock
from engine.contracts import Task
from engine.errors import ContractViolation, DecisionError, EngineError, PluginError
from engine.ledger import Ledger, digest
from engine.plugins.dispatch import dispatch
from engine.plugins.loader import Registry
from engine.process.expressions import compile_feel, is_expression, result_for_spiff
from engine.process.models import DISPATCH_TOPIC, Models
from engine.process.parser import DecisionTask, ExternalServiceTask
from engine.sdk import Context

# Process variables only the kernel writes: a plugin output that sets one breaks its contract.
KERNEL_VARIABLES = frozenset({"error", "failures"})


@dataclass
class Outcome:
    """How a task ended: ``status`` is done, failed or quarantine (``interrupted`` when stopped mid-way)."""

    status: str
    reason: str | None = None
    end_event: str | None = None
    steps: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in {"status": self.status, "reason": self.reason, "end_event": self.end_event,
                                  "steps": self.steps}.items() if v is not None}


@dataclass
class RunContext:
    """What every step of one run shares."""

    run_id: str
    workspace: Path
    models: Models
    registry: Registry
    ledger: Ledger
    clock: Clock
    log: Any
    worker: str
    outputs_file: Path | None = None
    whatif: bool = False
    host: str = field(default_factory=socket.gethostname)

    def envelope(self, duration_ms: float | None = None) -> dict[str, Any]:
        env: dict[str, Any] = {"run_id": self.run_id, "ts": self.clock.now().isoformat(), "host": self.host,
                               "pid": os.getpid(), "worker": self.worker}
        if duration_ms is not None:
            env["duration_ms"] = round(duration_ms, 3)
        return env


class _StepScriptEngine(PythonScriptEngine):  # type: ignore[misc]
    """Spiff's script engine with FEEL expressions and the engine's service and decision calls."""

    def __init__(self, runner: TaskRunner) -> None:
        super().__init__()
        self.runner = runner

    def evaluate(self, task: Any, expression: str, external_context: Mapping[str, Any] | None = None) -> Any:
        """Gateway conditions and timer expressions are FEEL, compiled once per text."""
        return self.runner.feel(task, expression, {**task.data, **(external_context or {})})

    def call_service(self, task: Any, **kwargs: Any) -> None:
        self.runner.call_service(task, kwargs["topic"])

    def decide(self, task: Any, decision_ref: str, result_variable: str) -> None:
        self.runner.decide(task, decision_ref, result_variable)


class TaskRunner:
    """Runs one task through the process and writes its steps to the ledger."""

    def __init__(self, run: RunContext, task: Task, *, task_file: str, line: int) -> None:
        self.run, self.task = run, task
        self.base = {"task_id": task.id, "task_file": task_file, "line": line, "models": run.models.hashes}
        self.details: dict[Any, dict[str, Any]] = {}
        self.log = run.log.bind(task_id=task.id, task_file=task_file, line=line)
        self.workdir = (run.workspace / task.repo).resolve()
        self._started: dict[Any, float] = {}
        self._current: Any = None
        self.steps = 0
        self.last_error: str | None = None

    # -- what steps call ------------------------------------------------------------------------------

    def _context(self, plugin_id: str) -> Context:
        seed = int.from_bytes(hashlib.sha256(self.task.id.encode()).digest()[:4], "big")
        return Context(run_id=self.run.run_id, task_id=self.task.id, now=self.run.clock.now(), seed=seed,
                       whatif=self.run.whatif, workdir=self.workdir, log=self.log.bind(plugin=plugin_id))

    def feel(self, task: Any, expression: str, scope: Mapping[str, Any]) -> Any:
        compiled = self.run.models.expressions.get(expression)
        if compiled is None:
            compiled = compile_feel(expression)
            self.run.models.expressions[expression] = compiled
        try:
            return result_for_spiff(compiled(scope))
        except EngineError:
            raise
        except Exception as e:
            raise DecisionError(f"expression {expression!r} failed on step {task.task_spec.bpmn_id}: {e}") from e

    def _parameter(self, task: Any, text: str, scope: Mapping[str, Any]) -> Any:
        """A camunda:inputParameter/outputParameter: ``${FEEL}`` is evaluated, anything else is a string."""
        return self.feel(task, text, scope) if is_expression(text) else text

    def _apply_outputs(self, task: Any) -> None:
        for name, text in getattr(task.task_spec, "output_parameters", []):
            task.data[name] = self._parameter(task, text, task.data)

    def _mapped_inputs(self, task: Any) -> dict[str, Any]:
        params = getattr(task.task_spec, "input_parameters", [])
        return {name: self._parameter(task, text, task.data) for name, text in params}

    def call_service(self, task: Any, topic: str) -> None:
        detail: dict[str, Any] = {}
        self.details[task.id] = detail
        if topic == DISPATCH_TOPIC:
            plugin_id = task.data.get("plugin")
            operation = (task.data.get("task") or {}).get("args", {}).get("operation")
        else:
            plugin_id, _, operation = topic.partition(".")
        plugin = self.run.registry.get(str(plugin_id)) if plugin_id else None
        if plugin is None:
            self._failed(task, detail, f"topic '{topic}': no installed plugin {plugin_id!r}", False, plugin_id,
                         operation)
            return
        op = operation or plugin.spec.first_operation
        data = {"task": task.data.get("task"), **self._mapped_inputs(task)}
        detail.update(plugin={"id": plugin.id, "version": plugin.version, "digest": plugin.digest, "operation": op},
                      input_digest=digest(data))
        try:
            output = dispatch(plugin, op, self._context(plugin.id), data)
            taken = sorted(KERNEL_VARIABLES & output.keys())
            if taken:
                raise ContractViolation(f"output of {plugin.id}.{op} sets {', '.join(taken)}, which only the kernel "
                                        "sets", plugin=plugin.id, operation=op, side="output")
        except (PluginError, ContractViolation) as e:
            self._failed(task, detail, "; ".join(e.lines()), bool(getattr(e, "retryable", False)), plugin.id, op)
            return
        detail.update(output_digest=digest(output), status="completed")
        self._record_output(task, plugin.id, op, output)
        task.data.update(output)
        task.data["error"] = None
        self._apply_outputs(task)

    def _failed(self, task: Any, detail: dict[str, Any], message: str, retryable: bool, plugin: Any,
                operation: Any) -> None:
        """A plugin call failed: the process continues with ``error`` set and ``failures`` counted."""
        task.data["error"] = {"message": message, "retryable": retryable, "plugin": plugin, "operation": operation}
        task.data["failures"] = int(task.data.get("failures") or 0) + 1
        self.last_error = message
        detail.update(status="error", reason=message)
        self.log.warning("plugin_failed", plugin=plugin, operation=operation, error=message, retryable=retryable)
        self._apply_outputs(task)

    def decide(self, task: Any, decision_ref: str, result_variable: str) -> None:
        context = {k: v for k, v in task.data.items() if not k.startswith("_")}
        context.update(self._mapped_inputs(task))
        result = self.run.models.decisions.evaluate(decision_ref, context)
        outcome = result.as_dict()
        decision = {"id": result.decision_id, "result": outcome["value"], "matched_rules": result.matched_rules}
        if outcome.get("warnings"):
            decision["warnings"] = outcome["warnings"]
            self.log.warning("decision_warnings", decision=result.decision_id, warnings=outcome["warnings"])
        self.details[task.id] = {"decision": decision, "status": "completed", "input_digest": digest(context)}
        task.data[result_variable] = result.value
        self._apply_outputs(task)

    def _record_output(self, task: Any, plugin_id: str, operation: str, output: Mapping[str, Any]) -> None:
        if self.run.outputs_file is None:
            return
        line = json.dumps({"task_id": self.task.id, "step": task.task_spec.bpmn_id, "plugin": plugin_id,
                           "operation": operation, "output": output}, sort_keys=True, default=str)
        with self.run.outputs_file.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    # -- the run ---------------------------------------------------------------------------------------

    def _will_complete(self, task: Any) -> None:
        self._current = task
        self._started[task.id] = time.perf_counter()

    def _did_complete(self, task: Any) -> None:
        spec = task.task_spec
        if getattr(spec, "bpmn_id", None) is None:
            return  # Spiff's own bookkeeping tasks
        detail = self.details.pop(task.id, {})
        record: dict[str, Any] = {**self.base, "kind": "step", "step": spec.bpmn_id, "step_name": spec.bpmn_name,
                                  "step_type": _step_type(spec), "status": detail.pop("status", "completed"),
                                  "state_digest": digest(task.data)}
        record.update(detail)
        started = self._started.pop(task.id, None)
        duration = (time.perf_counter() - started) * 1000 if started is not None else None
        self.run.ledger.append(record, self.run.envelope(duration))
        self.steps += 1

    def execute(self, stop: Callable[[], bool] = lambda: False) -> Outcome:
        """Run the process to an end event; wait through timers (checking ``stop``) but nothing else."""
        workflow = BpmnWorkflow(self.run.models.spec, self.run.models.subprocess_specs,
                                script_engine=_StepScriptEngine(self))
        start = workflow.get_tasks(state=TaskState.READY)
        for t in start:
            t.data.update({"task": self.task.as_data(), "error": None, "failures": 0})
        try:
            while True:
                workflow.do_engine_steps(will_complete_task=self._will_complete, did_complete_task=self._did_complete)
                if workflow.is_completed():
                    break
                waiting = workflow.get_tasks(state=TaskState.WAITING | TaskState.READY)
                if not any(isinstance(getattr(t.task_spec, "event_definition", None), TimerEventDefinition)
                           for t in waiting):
                    names = ", ".join(sorted({t.task_spec.bpmn_id or t.task_spec.name for t in waiting})) or "none"
                    return Outcome("failed", "the process stopped without reaching an end event, waiting on: "
                                   f"{names} (engine run delivers no messages or signals)", steps=self.steps)
                if stop():
                    return Outcome("interrupted", "stopped while waiting on a timer", steps=self.steps)
                time.sleep(0.05)
                workflow.refresh_waiting_tasks()
        except EngineError as e:
            return self._step_failed("; ".join(e.lines()))
        except (WorkflowException, SpiffWorkflowException) as e:
            return self._step_failed(str(e))
        return self._outcome(workflow)

    def _step_failed(self, reason: str) -> Outcome:
        """A step raised (a decision error, a bad condition): record it and fail the task."""
        spec = self._current.task_spec if self._current is not None else None
        record: dict[str, Any] = {**self.base, "kind": "step", "status": "error", "reason": reason}
        if spec is not None and getattr(spec, "bpmn_id", None) is not None:
            record.update(step=spec.bpmn_id, step_name=spec.bpmn_name, step_type=_step_type(spec))
        self.run.ledger.append(record, self.run.envelope())
        self.steps += 1
        return Outcome("failed", f"step failed: {reason}", steps=self.steps)

    def _outcome(self, workflow: BpmnWorkflow) -> Outcome:
        ends = [t for t in workflow.get_tasks(state=TaskState.COMPLETED)
                if getattr(t.task_spec, "bpmn_id", None) in self.run.models.end_outcomes]
        end = ends[-1] if ends else None
        end_id = end.task_spec.bpmn_id if end is not None else None
        status = self.run.models.end_outcomes.get(end_id or "", "done")
        reason = None
        if status != "done":
            name = end.task_spec.bpmn_name if end is not None else None
            reason = f"the process ended at '{name or end_id}'"
            if self.last_error:
                reason += f" after: {self.last_error}"
        return Outcome(status, reason, end_event=end_id, steps=self.steps)


def _step_type(spec: Any) -> str:
    if isinstance(spec, ExternalServiceTask):
        return "serviceTask"
    if isinstance(spec, DecisionTask):
        return "businessRuleTask"
    name = type(spec).__name__
    return name[0].lower() + name[1:]
