"""Running one task through the process with SpiffWorkflow: the thin adapter around ``steps``.

The process data starts as ``{"task": <task.v1>, "error": None, "failures": 0}``. SpiffWorkflow walks
the model; when it reaches a service task or a business rule task, the script engine hands the step to
``engine.process.steps`` (``run_service``/``run_decision``), merges the ``StepResult``'s variables into
the task's data and keeps the result until Spiff reports the step complete, when its ledger record is
written: the step's own fields, the identity of the step and the digest of the data after it. Gateway
conditions and timer expressions are FEEL. The end event reached decides the task's outcome through
its ``camunda:property name="outcome"`` (``done`` when absent).
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import functools
import hashlib
import json
import os
import queue
import socket
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import ErrorEventDefinition
from SpiffWorkflow.exceptions import SpiffWorkflowException, WorkflowException
from SpiffWorkflow.util.task import TaskState

from engine.clock import Clock
from engine.contracts import Task
from engine.dmn.compiler import CLOCK as FEEL_CLOCK
from engine.errors import ContractViolation, DecisionError, EngineError, PluginError
from engine.ledger import Ledger, digest, record_hash
from engine.plugins.dispatch import CallInterrupted, Dispatcher
from engine.plugins.loader import LoadedPlugin, Registry
from engine.plugins.pool import WorkerSpec
from engine.policy import PolicyEngine
from engine.process.expressions import compile_feel, is_expression, result_for_spiff
from engine.process.models import Models
from engine.process.parser import DecisionTask, ExternalServiceTask, ParallelInstances, SequentialInstances
from engine.process.state import Snapshots, StateError, StateJournal, check_restores, restore
from engine.process.steps import (
    KERNEL_VARIABLES,
    Step,
    StepResult,
    flows_taken,
    resolve,
    run_decision,
    run_service,
)
from engine.process.timers import due_at, waits_on_timer
from engine.process.workflow import EngineWorkflow
from engine.redact import redact, remember
from engine.safety import checkpoints
from engine.safety.breaker import Breakers
from engine.safety.journal import Journal
from engine.sdk import Context
from engine.telemetry import Telemetry

__all__ = ["KERNEL_VARIABLES", "Outcome", "RunContext", "TaskRunner"]


@dataclass
class Outcome:
    """How a task ended: ``status`` is done, failed or quarantine (``interrupted`` when stopped mid-way)."""

    status: str
    reason: str | None = None
    end_event: str | None = None
    steps: int = 0
    gate: dict[str, Any] | None = None  # the quality gate's verdicts (and what its checks made, an SBOM)
    wake: datetime | None = None  # status parked: when its timer is due

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in {"status": self.status, "reason": self.reason, "end_event": self.end_event,
                                  "steps": self.steps, "gate": self.gate}.items() if v is not None}


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
    dispatcher: Dispatcher
    telemetry: Telemetry = field(default_factory=Telemetry)
    outputs_file: Path | None = None
    repo_roots: tuple[str, ...] = ()
    whatif: bool = False
    journal: Journal | None = None  # applies in flight (None: no state change may run)
    breakers: Breakers | None = None
    on_plan: Callable[[dict[str, Any]], None] | None = None  # what-if runs: each plan, as it is made
    policy: PolicyEngine | None = None  # policies/ checked before a task's first step and around changes
    park_after: float | None = None  # seconds of waiting on a timer from which a journaled task is parked
    on_event: Callable[[dict[str, Any]], None] | None = None  # progress: each step as it starts, each timer wait

    @property
    def worktrees(self) -> Path:
        """Where the tasks' worktrees are (a what-if run's throwaway clones are in its own folder)."""
        if self.whatif:
            return self.workspace / ".engine" / "whatif" / self.run_id / "worktrees"
        return self.workspace / ".engine" / "worktrees"
    host: str = field(default_factory=socket.gethostname)

    def plugin_env(self, plugin: LoadedPlugin) -> list[str]:
        """The names of the environment ``plugin`` is given: a worker's scrubbed one (``PATH`` and what its
        spec names), the engine's own for a plugin that runs in the engine's process (the plugins that
        ship with the engine aside: they are the engine's own code, as the kernel is)."""
        if plugin.spec.isolation == "inprocess":
            return [] if plugin.origin in ("builtin", "bundled") else sorted(os.environ)
        return sorted(self.dispatcher.pool.environment(WorkerSpec.of(plugin)))

    @functools.cached_property
    def plugins_env(self) -> list[str]:
        """The names any installed plugin is given (what a task's policy check sees): the same for every
        task of the run, so computed once."""
        return sorted({name for plugin in self.registry.plugins.values() for name in self.plugin_env(plugin)})

    @functools.cached_property
    def _envelope(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "host": self.host, "pid": os.getpid(), "worker": self.worker}

    def envelope(self, duration_ms: float | None = None) -> dict[str, Any]:
        env: dict[str, Any] = {**self._envelope, "ts": self.clock.now().isoformat(), **self.telemetry.ids()}
        if duration_ms is not None:
            env["duration_ms"] = round(duration_ms, 3)
        return env


def _step(spec: Any) -> Step:
    return Step(id=spec.bpmn_id, name=spec.bpmn_name, type=_step_type(spec),
                inputs=list(getattr(spec, "input_parameters", [])),
                outputs=list(getattr(spec, "output_parameters", [])))


class _StepScriptEngine(PythonScriptEngine):  # type: ignore[misc]
    """Spiff's script engine with FEEL expressions and the engine's service and decision steps."""

    def __init__(self, runner: TaskRunner) -> None:
        super().__init__()
        self.runner = runner

    def evaluate(self, task: Any, expression: str, external_context: Mapping[str, Any] | None = None) -> Any:
        """Gateway conditions and timer expressions are FEEL, compiled once per text."""
        return self.runner.feel(expression, {**task.data, **(external_context or {})}, task.task_spec.bpmn_id)

    def call_service(self, task: Any, **kwargs: Any) -> bool | None:
        return self.runner.service(task, kwargs["topic"])

    def cancel_service(self, task: Any) -> None:
        self.runner.cancel_service(task)

    def now(self) -> datetime:
        """Timers read the run's clock (``engine.process.timers``)."""
        return self.runner.run.clock.now()

    def decide(self, task: Any, decision_ref: str, result_variable: str) -> None:
        self.runner.decision(task, decision_ref, result_variable)


@dataclass
class _Call:
    """A service task's plugin call running in the background: its thread's result or exception, and
    whether the process cancelled it (``interrupt``)."""

    task: Any
    step: Step
    interrupt: threading.Event = field(default_factory=threading.Event)
    result: StepResult | None = None
    error: BaseException | None = None
    ended: threading.Event = field(default_factory=threading.Event)


class TaskRunner:
    """Runs one task through the process and writes its steps to the ledger.

    A service task whose plugin runs in workers (isolation ``process``) is started in the background
    when anything else of the process could go on meanwhile (another branch, a timer, a boundary event
    of the step): SpiffWorkflow keeps the step STARTED, so the other branches go on (their calls overlap,
    bounded by each plugin's ``concurrency`` in the worker pool) and boundary timers can fire;
    ``execute`` waits for the calls, completes their steps and writes the ledger, one record at a time,
    in this thread. A call nothing could overlap runs in place. State
    changes of one task run one at a time: they share its worktree. In-process plugins (the built-in
    orchestration steps) run in place.
    """

    def __init__(self, run: RunContext, task: Task, *, task_file: str, line: int,
                 stop: Callable[[], bool] = lambda: False, journal: StateJournal | None = None,
                 models: Models | None = None) -> None:
        self.run, self.task, self.stop = run, task, stop
        self.models = models or run.models  # a resumed task runs on the models it started with
        self.base = {"task_id": task.id, "task_file": task_file, "line": line, "models": self.models.hashes}
        self.journal = journal  # the task's state journal (None: not durable, as in a what-if run)
        self._snapshots = Snapshots()
        self._unjournaled: list[list[dict[str, Any]]] = []  # ledger records since the journal's last line
        self._journaled = False  # whether the journal has its first line (which names the models)
        self._emitted = 0  # records this task has produced
        self._committed: list[str] = []  # on resume: record hashes the ledger already holds past the journal's
        self.durable_points = 0
        self._check_state = os.environ.get("ENGINE_CHECK_STATE") == "1"  # the test suite: restore every point
        self.log = run.log.bind(task_id=task.id, task_file=task_file, line=line)
        self.workdir = (run.workspace / task.repo).resolve()
        self.results: dict[Any, StepResult] = {}  # a step's result, from when it ran until Spiff completes it
        self._started: dict[Any, float] = {}
        self._current: Any = None
        self.steps = 0
        self.last_error: str | None = None
        self.checkpoint: dict[str, Any] | None = None  # the task's first checkpoint: what a rollback restores
        self._last_checkpoint = ""
        self._applies = 0
        self.gate: dict[str, Any] | None = None
        self._calls: dict[Any, _Call] = {}  # background calls by Spiff task id
        self._finished: queue.Queue[_Call] = queue.Queue()
        self._changes = threading.Lock()  # one state change at a time in the task's worktree
        self._announced: set[Any] = set()  # the timers a progress event said the task waits on

    # -- what the task leaves behind: ledger records and durable points ---------------------------

    def _record(self, record: Mapping[str, Any], envelope: Mapping[str, Any]) -> None:
        """One ledger record of this task. A resumed task makes again the records of the steps it takes
        again after its journal's last line: those the ledger already holds (its run was interrupted
        after them) are checked to be the same, not written twice."""
        self._emitted += 1
        if self._committed:
            held = self._committed.pop(0)
            made = record_hash(record)
            if made != held:
                raise ResumeDiverged(f"resumed, the task's record {self._emitted} ({record.get('kind')} "
                                     f"{record.get('step') or record.get('status')}) differs from the one the ledger "
                                     "holds from before the interruption")
            return
        written = self.run.ledger.append(record, envelope)
        if self.journal is not None:
            self._unjournaled.append([written["record"], written["envelope"]])

    def record_outcome(self, outcome: Outcome) -> None:
        """The task's last record: how it ended."""
        self._record({**self.base, "kind": "run", "status": outcome.status,
                      **({"reason": outcome.reason} if outcome.reason else {})}, self.run.envelope())

    def _durable(self, workflow: Any) -> None:
        """A durable point: the records since the last one and the workflow's changes, fsync'd."""
        if self.journal is None:
            return
        line: dict[str, Any] = {
            "v": 1, "records": self._unjournaled, "workflow": self._snapshots.delta(workflow.top_workflow),
            "runner": {"steps": self.steps, "emitted": self._emitted, "checkpoint": self.checkpoint,
                       "last_checkpoint": self._last_checkpoint, "applies": self._applies,
                       "last_error": self.last_error, "gate": self.gate}}
        if not self._journaled:
            line["models"] = self.models.hashes
            line["task"] = {"id": self.task.id, "file": self.base["task_file"], "line": self.base["line"]}
        self.journal.append(line)
        self._journaled = True
        self._unjournaled = []
        self.durable_points += 1
        if self._check_state:  # every point must restore exactly
            check_restores(self.journal.lines(), workflow.top_workflow)

    # -- what steps are given ---------------------------------------------------------------------

    def _context(self, plugin_id: str, worktree: Path | None = None,
                 call: Callable[[str, str | None, Mapping[str, Any]], dict[str, Any]] | None = None) -> Context:
        seed = int.from_bytes(hashlib.sha256(self.task.id.encode()).digest()[:4], "big")
        return Context(run_id=self.run.run_id, task_id=self.task.id, now=self.run.clock.now(), seed=seed,
                       whatif=self.run.whatif, workdir=worktree or self.workdir, log=self.log.bind(plugin=plugin_id),
                       workspace=self.run.workspace, call=call)

    def _nested(self, step: Step, data: Mapping[str, Any]) -> Callable[[str, str | None, Mapping[str, Any]],
                                                                        dict[str, Any]]:
        """``ctx.call`` for a built-in orchestration plugin: another plugin, called as the step itself would
        call it (same task, worktree, deadline, breaker), its input being ``{"task": ..., **data}``."""
        def call(plugin_id: str, operation: str | None, payload: Mapping[str, Any]) -> dict[str, Any]:
            plugin = self.run.registry.get(plugin_id)
            if plugin is None:
                raise PluginError(f"no installed plugin {plugin_id!r}", code="engine.no_plugin", plugin=plugin_id)
            op = operation or plugin.spec.first_operation
            return self._call(step, plugin, op, {"task": data.get("task"), **payload}, data)
        return call

    def _worktree(self, data: Mapping[str, Any]) -> Path | None:
        """The task's worktree, when the process has one (``worktree.path``, set by worktree-manager.create);
        only a folder under the run's worktrees folder counts, whoever set the variable."""
        raw = data.get("worktree")
        if not isinstance(raw, Mapping) or not isinstance(raw.get("path"), str):
            return None
        path = Path(raw["path"]).resolve()
        root = self.run.worktrees.resolve()
        return path if path.is_relative_to(root) and path != root and path.is_dir() else None

    def _call(self, step: Step, plugin: LoadedPlugin, operation: str, payload: Mapping[str, Any],
              data: Mapping[str, Any], interrupt: threading.Event | None = None) -> dict[str, Any]:
        """The plugin boundary: one call, with this task's deadline and the engine's stop signal, in the
        task's worktree when there is one; a state change only there, behind a checkpoint the kernel takes
        and journals first; counted by the plugin's circuit breaker. ``interrupt`` ends the call at once
        (its worker is stopped): the process cancelled the step."""
        changes = plugin.spec.category == "state_change" and not self.run.whatif
        with self._changes if changes else contextlib.nullcontext():
            return self._call_locked(step, plugin, operation, payload, data, interrupt)

    def _call_locked(self, step: Step, plugin: LoadedPlugin, operation: str, payload: Mapping[str, Any],
                     data: Mapping[str, Any], interrupt: threading.Event | None) -> dict[str, Any]:
        worktree = self._worktree(data)
        builtin = plugin.origin == "builtin"
        breakers = None if builtin or self.run.whatif else self.run.breakers
        if breakers is not None:
            allowed, why = breakers.allows(plugin.id)
            if not allowed:
                raise PluginError(why or "circuit breaker open", code="engine.breaker_open", plugin=plugin.id,
                                  operation=operation)
        key = None
        if plugin.spec.category == "state_change" and not self.run.whatif:
            key = self._checkpoint(step, plugin, operation, worktree)
        nested = self._nested(step, data) if plugin.origin == "builtin" else None
        ctx = self._context(plugin.id, worktree, nested)
        try:
            with self.run.telemetry.span(f"plugin {plugin.id}.{operation}", **{
                    "engine.plugin": plugin.id, "engine.operation": operation, "engine.task_id": self.task.id}):
                output = self.run.dispatcher.call(plugin, operation, ctx, payload, task_timeout=self.task.timeout_sec,
                                                  cancelled=self.stop, traceparent=self.run.telemetry.traceparent(),
                                                  interrupt=interrupt.is_set if interrupt is not None else
                                                  lambda: False)
            if key is not None and worktree is not None:
                # what the change brought in is checked too (a secret written into a file, say)
                try:
                    diff = checkpoints.diff_text(worktree, self._last_checkpoint)
                except checkpoints.CheckpointError as e:
                    raise PluginError(f"cannot read what the change did: {e.message}", code="engine.checkpoint",
                                      plugin=plugin.id, operation=operation) from e
                self._policy("apply", plugin, operation, checkpoint=self._last_checkpoint, diff=diff)
        except (PluginError, ContractViolation) as e:
            counted = getattr(e, "code", None) not in ("engine.policy_denied", "engine.checkpoint")
            if breakers is not None and counted and getattr(e, "kind", "technical") == "technical":
                breakers.record(plugin.id, False, e.message)
            raise
        finally:
            if key is not None and self.run.journal is not None:
                self.run.journal.end(key)
        if breakers is not None:
            breakers.record(plugin.id, True)
        return output

    def _policy(self, phase: str, plugin: LoadedPlugin, operation: str, **extra: Any) -> None:
        """Ask the policies about a change (``phase`` apply); a denial fails the call before (or right after)
        the change, which the process then rolls back. Secrets found go to the redaction layer."""
        if self.run.policy is None:
            return
        result = self.run.policy.check({
            "phase": phase, "task": self.task.as_data(), "env": self.run.plugin_env(plugin),
            "plugin": {"id": plugin.id, "category": plugin.spec.category, "whatif": plugin.spec.whatif}, **extra})
        for secret in result.secrets:
            remember(secret.value, secret.rule)
        if not result.allowed:
            raise PluginError("denied by policy: " + "; ".join(f"{d.message} ({d.policy}.{d.rule})"
                                                               for d in result.denials),
                              code="engine.policy_denied", plugin=plugin.id, operation=operation)

    def _checkpoint(self, step: Step, plugin: LoadedPlugin, operation: str, worktree: Path | None) -> str:
        """Before a state change: the task's worktree, a checkpoint of it, and a journal entry, or refuse."""
        if worktree is None:
            raise PluginError(f"{plugin.id}.{operation} changes the repository, and a change runs only in the "
                              "task's own worktree: put a worktree-manager.create step (the default process's "
                              "Checkpoint) before this step", code="engine.no_worktree", plugin=plugin.id,
                              operation=operation)
        if self.run.journal is None:
            raise PluginError("this run cannot journal a state change", code="engine.no_worktree", plugin=plugin.id)
        self._applies += 1
        name = f"{self.run.run_id}/{self.task.id}/{step.id}-{self._applies}"
        try:
            taken = checkpoints.take(worktree, name)
        except checkpoints.CheckpointError as e:
            raise PluginError(f"no checkpoint, so no change: {e.message}", code="engine.checkpoint", plugin=plugin.id,
                              operation=operation) from e
        if self.checkpoint is None:
            self.checkpoint = taken.as_dict()  # the state before the task changed anything: what rollback restores
        self._last_checkpoint = taken.sha
        self._policy("apply", plugin, operation, checkpoint=taken.sha)
        self.run.journal.begin(name, {
            "run_id": self.run.run_id, "task_id": self.task.id, "task_file": self.base["task_file"],
            "line": self.base["line"], "step": step.id, "plugin": plugin.id, "operation": operation,
            "worktree": str(worktree), "checkpoint": taken.as_dict(), "first_checkpoint": self.checkpoint})
        return name

    def feel(self, expression: str, scope: Mapping[str, Any], where: str | None = None) -> Any:
        compiled = self.models.expressions.get(expression)
        if compiled is None:
            compiled = compile_feel(expression)
            self.models.expressions[expression] = compiled
        try:  # now() and today() read the run's clock (a replay's gives the recorded time)
            return result_for_spiff(compiled({**scope, FEEL_CLOCK: self.run.clock}))
        except EngineError:
            raise
        except Exception as e:
            raise DecisionError(f"expression {expression!r} failed on step {where}: {e}") from e

    def _parameter(self, value: Any, scope: Mapping[str, Any]) -> Any:
        """A camunda:inputParameter/outputParameter: ``${FEEL}`` is evaluated, other text is a string; a
        list or map has each of its values read the same way."""
        if isinstance(value, list):
            return [self._parameter(v, scope) for v in value]
        if isinstance(value, dict):
            return {k: self._parameter(v, scope) for k, v in value.items()}
        return self.feel(value, scope) if is_expression(value) else value

    # -- the steps ------------------------------------------------------------------------------------

    def _apply(self, task: Any, result: StepResult) -> None:
        task.data.update(result.variables)
        task.internal_data["set"] = sorted(result.variables)  # a multi-instance collects what its instance set
        self.results[task.id] = result

    def service(self, task: Any, topic: str) -> bool | None:
        """Run a service task's plugin: here (True: the step is done), or in the background (None)."""
        step = _step(task.task_spec)
        plugin_id, _ = resolve(topic, task.data, self.run.registry)
        plugin = self.run.registry.get(plugin_id) if plugin_id else None
        if plugin is None or plugin.spec.isolation == "inprocess" or self._alone(task):
            self._settle_service(task, step, self._run_service(step, topic, task.data, None))
            return True
        call = _Call(task, step)
        data = copy.deepcopy(dict(task.data))  # the branch's data as it is now; other branches go on
        context = contextvars.copy_context()  # the task's trace span, in the call's thread
        self._calls[task.id] = call
        _call_threads().submit(context.run, self._background, call, topic, data)
        return None

    def _alone(self, task: Any) -> bool:
        """Whether nothing else of the process could go on while this step's call runs: no other call is
        running, and no other step is ready, waiting (a timer, a boundary event of this step) or started
        (a subprocess, a multi-instance). Then the call runs here: the thread would only be waited for."""
        if self._calls:
            return False
        return all(t is task for t in task.workflow.top_workflow.get_tasks(
            state=TaskState.READY | TaskState.WAITING | TaskState.STARTED))

    def _background(self, call: _Call, topic: str, data: dict[str, Any]) -> None:
        try:
            call.result = self._run_service(call.step, topic, data, call.interrupt)
        except BaseException as e:  # handed to the runner's thread, which raises it there
            call.error = e
        finally:
            call.ended.set()
            self._finished.put(call)

    def _run_service(self, step: Step, topic: str, data: Mapping[str, Any],
                     interrupt: threading.Event | None) -> StepResult:
        def call(plugin: LoadedPlugin, operation: str, payload: Mapping[str, Any]) -> dict[str, Any]:
            return self._call(step, plugin, operation, payload, data, interrupt)

        with self.run.telemetry.span(f"step {step.id}", **{"engine.step": step.id, "engine.step_type": step.type}):
            return run_service(step, topic, data, registry=self.run.registry, call=call, parameter=self._parameter)

    def _settle_service(self, task: Any, step: Step, result: StepResult) -> None:
        """A service step's result into the process: its variables, its output, its error thrown."""
        if self.checkpoint is not None and task.data.get("checkpoint") is None:
            result = replace(result, variables={**result.variables, "checkpoint": self.checkpoint})
        if result.failed:
            self.last_error = result.record["reason"]
            self.log.warning("plugin_failed", plugin=result.plugin, operation=result.operation,
                             error=result.record["reason"], **result.record["error"])
            if result.plugin is not None:
                self._record_output(step.id, result)
        elif result.output is not None:
            self._record_output(step.id, result)
            if isinstance(result.output.get("gate"), Mapping):
                self.gate = dict(result.output["gate"])
            if self.run.whatif and self.run.on_plan is not None and isinstance(result.output.get("plan"), Mapping):
                self.run.on_plan({"task_id": self.task.id, "step": step.id, "step_name": step.name,
                                  "plugin": result.plugin, "operation": result.operation,
                                  "plan": result.output["plan"]})
        self._apply(task, result)
        if result.failed:
            self._throw(task, step, result)

    def cancel_service(self, task: Any) -> None:
        """The process cancelled a step whose call is running: stop the call, record the step cancelled."""
        call = self._calls.get(task.id)
        if call is None or call.interrupt.is_set():
            return
        call.interrupt.set()
        by = _canceller(task)
        spec = task.task_spec
        record = {**self.base, "kind": "step", "step": spec.bpmn_id, "step_name": spec.bpmn_name,
                  "step_type": _step_type(spec), "status": "cancelled",
                  "reason": f"cancelled by {by}" if by else "cancelled by the process",
                  "state_digest": digest(task.data)}
        self._record(record, self.run.envelope())
        self.steps += 1
        self.log.info("step_cancelled", step=spec.bpmn_id, by=by)

    def _settle(self, call: _Call) -> None:
        """A background call ended: complete its step (unless the process cancelled it meanwhile)."""
        self._calls.pop(call.task.id, None)
        task = call.task
        if call.interrupt.is_set():
            return  # cancelled: recorded when it was
        self._current = task
        if call.error is not None:
            raise call.error
        assert call.result is not None
        self._settle_service(task, call.step, call.result)
        if task.state == TaskState.STARTED:
            task.complete()
        self._did_complete(task)

    def _wait(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for background calls to end; settle those that did. True if any did."""
        settled = False
        try:
            call = self._finished.get(timeout=seconds) if seconds > 0 else self._finished.get_nowait()
            while True:
                self._settle(call)
                settled = True
                call = self._finished.get_nowait()
        except queue.Empty:
            return settled

    def _abandon(self) -> None:
        """The run is over (ended, failed or stopped): no call of it may go on."""
        for call in list(self._calls.values()):
            call.interrupt.set()
        for call in list(self._calls.values()):
            call.ended.wait(timeout=30)
        self._calls.clear()

    def _throw(self, task: Any, step: Step, result: StepResult) -> None:
        """A plugin's business error (a code its spec declares) is also a BPMN error: an error boundary event
        on the step with that errorCode (or with none) catches it, with its camunda:errorCodeVariable and
        errorMessageVariable set. Technical failures are not thrown: ``error`` and the retry route stay."""
        error = result.record.get("error") or {}
        code = error.get("code")
        if error.get("kind") != "business" or not code:
            return
        for catches, code_var, message_var in self.models.error_boundaries.get(step.id, []):
            if catches in (None, code):
                if code_var:
                    task.data[code_var] = code
                if message_var:
                    task.data[message_var] = result.record.get("reason")
        ErrorEventDefinition(str(code), code=str(code)).throw(task)  # caught by a waiting boundary event, if any

    def decision(self, task: Any, decision_ref: str, result_variable: str) -> None:
        step = _step(task.task_spec)
        with self.run.telemetry.span(f"step {step.id}", **{"engine.step": step.id, "engine.decision": decision_ref}):
            result = run_decision(step, decision_ref, result_variable, task.data,
                                  decisions=self.models.decisions, parameter=self._parameter, clock=self.run.clock)
        warnings = result.record["decision"].get("warnings")
        if warnings:
            self.log.warning("decision_warnings", decision=decision_ref, warnings=warnings)
        self._apply(task, result)

    def _record_output(self, step_id: str, result: StepResult) -> None:
        """The run's outputs file: what each call returned (or its error), in order; with what the kernel
        put beside it (the task's first checkpoint), so that ``engine replay`` can feed it back."""
        if self.run.outputs_file is None:
            return
        body: dict[str, Any] = {"task_id": self.task.id, "task_file": self.base["task_file"], "line": self.base["line"],
                                "step": step_id, "plugin": result.plugin, "operation": result.operation,
                                "input_digest": result.record.get("input_digest")}
        if result.failed:
            body.update(error=result.record.get("error"), reason=result.record.get("reason"))
        else:
            body["output"] = result.output
        if self.checkpoint is not None:
            body["checkpoint"] = self.checkpoint
        line = json.dumps(redact(body), sort_keys=True, default=str)
        with self.run.outputs_file.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    # -- the run ---------------------------------------------------------------------------------------

    def _will_complete(self, task: Any) -> None:
        self._current = task
        self._started[task.id] = self.run.clock.monotonic()
        spec = task.task_spec
        if self.run.on_event is not None and getattr(spec, "bpmn_id", None) is not None:
            self._event("step", step=spec.bpmn_id, step_name=spec.bpmn_name, step_type=_step_type(spec))

    def _event(self, kind: str, **fields: Any) -> None:
        """A progress event of this task for whoever watches the run (nothing when nobody does)."""
        if self.run.on_event is not None:
            self.run.on_event({"event": kind, "file": self.base["task_file"], "line": self.base["line"],
                               "task_id": self.task.id, **fields})

    def _did_complete(self, task: Any) -> None:
        spec = task.task_spec
        if getattr(spec, "bpmn_id", None) is None or task.state == TaskState.STARTED:
            return  # Spiff's own bookkeeping tasks; a step whose call runs in the background (recorded when settled)
        result = self.results.pop(task.id, None)
        record: dict[str, Any] = {**self.base, "kind": "step", "step": spec.bpmn_id, "step_name": spec.bpmn_name,
                                  "step_type": _step_type(spec), "status": "completed"}
        if result is not None:
            record.update(result.record)
        if "instance" in task.internal_data:
            record["instance"] = task.internal_data["instance"]  # the loopCounter of a multi-instance's instance
        flows = flows_taken(task)
        if flows is not None:
            record["flows"] = flows  # the sequence flows a gateway took
        record["state_digest"] = digest(task.data)
        started = self._started.pop(task.id, None)
        duration = (self.run.clock.monotonic() - started) * 1000 if started is not None else None
        self._record(record, self.run.envelope(duration))
        self.steps += 1
        if isinstance(spec, ExternalServiceTask) or waits_on_timer(spec):
            self._durable(task.workflow)  # after a plugin call or a timer: never run or waited for again

    def execute(self) -> Outcome:
        """Run the process to an end event; wait through timers (checking ``stop``) but nothing else."""
        with self.run.telemetry.span(f"task {self.task.id}", **{"engine.task_id": self.task.id}):
            return self._execute()

    def _confined(self) -> str | None:
        """Why the task may not run, or None: its repository must lie in the workspace or a configured root
        (``[repos] roots``) and its files inside its repository, symlinks followed."""
        roots = [self.run.workspace.resolve(), *((self.run.workspace / r).resolve() for r in self.run.repo_roots)]
        if not any(self.workdir == root or self.workdir.is_relative_to(root) for root in roots):
            return (f"task field repo {self.task.repo!r} resolves to {self.workdir}, outside the workspace"
                    + (" and [repos] roots" if self.run.repo_roots else "")
                    + ": a task may only name repositories there (add a root to [repos] roots in engine.toml)")
        for index, name in enumerate(self.task.files):
            target = (self.workdir / name).resolve()
            if Path(name).is_absolute() or not target.is_relative_to(self.workdir):
                return (f"task field files[{index}] {name!r} resolves to {target}, outside the task's repository "
                        f"{self.workdir}: files must be paths inside it")
        return None

    def _refused(self) -> tuple[str, str] | None:
        """(check, why) the task may not start, or None: its paths leave their roots (``confinement``), or a
        policy denies it (``policy``). The secrets the security policy finds go to the redaction layer first."""
        refused = self._confined()
        if refused is not None:
            return "confinement", refused
        if self.run.policy is None:
            return None
        result = self.run.policy.check({"phase": "task", "task": self.task.as_data(), "env": self.run.plugins_env})
        for secret in result.secrets:
            remember(secret.value, secret.rule)
        if result.allowed:
            return None
        return "policy", "denied by policy: " + "; ".join(f"{d.message} ({d.policy}.{d.rule})"
                                                         for d in result.denials)

    def _execute(self) -> Outcome:
        legacy = self.task.metadata.get("legacy")  # an old worker's line: what it was and what it became
        self._record({**self.base, "kind": "run", "status": "started",
                      **({"detail": {"legacy": legacy}} if isinstance(legacy, dict) else {})}, self.run.envelope())
        refused = self._refused()
        if refused is not None:
            check, reason = refused
            self._record({**self.base, "kind": "step", "step": check, "status": "error", "reason": reason},
                         self.run.envelope())
            return Outcome("failed", reason, steps=self.steps)
        workflow = EngineWorkflow(self.models.spec, self.models.subprocess_specs,
                                script_engine=_StepScriptEngine(self))
        for t in workflow.get_tasks(state=TaskState.READY):
            t.data.update({"task": self.task.as_data(), "error": None, "failures": 0})
        return self._drive(workflow)

    def resume(self, lines: list[dict[str, Any]], committed: list[str]) -> Outcome:
        """Go on with a task whose worker died (or whose run stopped) from its journal's last durable point.

        ``committed`` are the hashes of the task's records the ledger holds (in order): the journal's
        records it lacks are written now, with the envelopes they were made with; those it holds beyond
        the journal's are the steps the task takes again, checked rather than written twice."""
        with self.run.telemetry.span(f"task {self.task.id}", **{"engine.task_id": self.task.id,
                                                                 "engine.resumed": True}):
            journaled = [pair for line in lines for pair in line.get("records", [])]
            for index, (held, (record, _)) in enumerate(zip(committed, journaled, strict=False)):
                if record_hash(record) != held:
                    return Outcome("quarantine", f"cannot resume: the ledger's record {index + 1} of this task "
                                   "differs from its state journal's", steps=self.steps)
            for record, envelope in journaled[len(committed):]:
                self.run.ledger.append(record, envelope)
            if len(journaled) > len(committed):
                self.run.ledger.commit()  # on disk before the task goes on (and perhaps dies again)
            self._committed = list(committed[len(journaled):])
            runner = lines[-1].get("runner", {})
            self.steps = int(runner.get("steps", 0))
            self._emitted = int(runner.get("emitted", len(journaled)))
            self.checkpoint = runner.get("checkpoint")
            self._last_checkpoint = str(runner.get("last_checkpoint") or "")
            self._applies = int(runner.get("applies", 0))
            self.last_error = runner.get("last_error")
            self.gate = runner.get("gate")
            self._journaled = True
            try:
                workflow = restore(lines, self.models.spec, self.models.subprocess_specs, _StepScriptEngine(self))
            except StateError as e:
                return Outcome("quarantine", f"cannot resume: {e}", steps=self.steps)
            self._snapshots.prime(workflow)  # the next line holds only what changes from here
            self.log.info("task_resumed", steps=self.steps, durable_points=len(lines))
            return self._drive(workflow)

    def _drive(self, workflow: EngineWorkflow) -> Outcome:
        try:
            return self._loop(workflow)
        except ResumeDiverged as e:
            return Outcome("quarantine", f"cannot resume: {e}", steps=self.steps)
        except CallInterrupted:
            return Outcome("interrupted", "stopped while a plugin call was running", steps=self.steps)
        except EngineError as e:
            return self._step_failed("; ".join(e.lines()), getattr(e, "step", None))
        except (WorkflowException, SpiffWorkflowException) as e:
            if isinstance(e.__cause__, CallInterrupted) or isinstance(e.__context__, CallInterrupted):
                return Outcome("interrupted", "stopped while a plugin call was running", steps=self.steps)
            if isinstance(e.__cause__, ResumeDiverged) or isinstance(e.__context__, ResumeDiverged):
                return Outcome("quarantine", f"cannot resume: {e.__cause__ or e.__context__}", steps=self.steps)
            return self._step_failed(str(e))
        finally:
            self._abandon()

    def _loop(self, workflow: EngineWorkflow) -> Outcome:
        """Run the engine's steps; between them, settle the background calls that ended and check timers."""
        while True:
            workflow.do_engine_steps(will_complete_task=self._will_complete, did_complete_task=self._did_complete)
            if self._wait(0):
                continue
            if workflow.is_completed():
                return self._outcome(workflow)
            waiting = workflow.get_tasks(state=TaskState.WAITING | TaskState.READY)
            timers = any(waits_on_timer(t.task_spec) for t in waiting)
            if not self._calls and not timers:
                names = ", ".join(sorted({t.task_spec.bpmn_id or t.task_spec.name for t in waiting})) or "none"
                return Outcome("failed", "the process stopped without reaching an end event, waiting on: "
                               f"{names} (engine run delivers no messages or signals)", steps=self.steps)
            if timers and self._unjournaled:
                self._durable(workflow)  # a timer started: its due time is kept, also across a restart
            wake = self._parks(waiting) if timers and not self._calls else None
            if wake is not None:
                self._durable(workflow)
                self.log.info("task_parked", wake=wake.isoformat())
                return Outcome("parked", f"waiting on a timer until {wake.isoformat()}", steps=self.steps,
                               wake=wake)
            if timers and self.run.on_event is not None:
                self._waiting(waiting)
            if self._calls:
                self._wait(0.05 if timers else 0.25)  # a stop reaches the calls: they end CallInterrupted
            elif self.stop():
                return Outcome("interrupted", "stopped while waiting on a timer", steps=self.steps)
            else:
                self.run.clock.sleep(0.05)
            if timers:
                workflow.refresh_timers()

    def _waiting(self, waiting: list[Any]) -> None:
        """Say once per timer that the task waits on it, and until when."""
        for t in waiting:
            if not waits_on_timer(t.task_spec):
                continue
            due = due_at(t)
            if due is None or (t.id, due) in self._announced:
                continue
            self._announced.add((t.id, due))
            spec = t.task_spec
            self._event("waiting", until=due.isoformat(), step=spec.bpmn_id,
                        why=f"timer {spec.bpmn_name or spec.bpmn_id!r}")

    def _parks(self, waiting: list[Any]) -> datetime | None:
        """When the task should be woken, if it is to be parked: it is journaled, nothing of it is ready
        or running, and its first timer is due ``park_after`` seconds from now or later."""
        if self.journal is None or self.run.park_after is None:
            return None
        if any(t.state == TaskState.READY for t in waiting):
            return None
        dues = [due for t in waiting if waits_on_timer(t.task_spec) for due in [due_at(t)] if due is not None]
        if not dues:
            return None
        first = min(dues)
        return first if (first - self.run.clock.now()).total_seconds() >= self.run.park_after else None

    def _step_failed(self, reason: str, step_id: str | None = None) -> Outcome:
        """A step raised (a decision error, a bad condition): record it and fail the task. ``step_id`` names
        the step when the error knows it better than the step running (a multi-instance's collection is
        read while the step before it completes)."""
        spec = self._current.task_spec if self._current is not None else None
        if step_id is not None:
            spec = self.models.spec.task_specs.get(step_id) or next(
                (s.task_specs[step_id] for s in self.models.subprocess_specs.values() if step_id in s.task_specs),
                spec)
        record: dict[str, Any] = {**self.base, "kind": "step", "status": "error", "reason": reason}
        if spec is not None and getattr(spec, "bpmn_id", None) is not None:
            record.update(step=spec.bpmn_id, step_name=spec.bpmn_name, step_type=_step_type(spec))
        self._record(record, self.run.envelope())
        self.steps += 1
        return Outcome("failed", f"step failed: {reason}", steps=self.steps)

    def _outcome(self, workflow: EngineWorkflow) -> Outcome:
        ends = [t for t in workflow.get_tasks(state=TaskState.COMPLETED)
                if getattr(t.task_spec, "bpmn_id", None) in self.models.end_outcomes]
        # several ends reached (parallel branches): the most severe outcome wins, failed over quarantine over done
        severity = {"done": 0, "quarantine": 1, "failed": 2}
        outcomes = self.models.end_outcomes
        ranked = [(severity.get(outcomes[t.task_spec.bpmn_id], 0), i, t) for i, t in enumerate(ends)]
        end = max(ranked, key=lambda r: (r[0], r[1]))[2] if ranked else None
        end_id = end.task_spec.bpmn_id if end is not None else None
        if end_id is None:  # SpiffWorkflow found nothing left to do, yet no end event was reached
            return Outcome("failed", f"the process stopped after {self.steps} steps without reaching an end event",
                           steps=self.steps)
        status = self.models.end_outcomes.get(end_id, "done")
        reason = None
        if status != "done":
            name = end.task_spec.bpmn_name if end is not None else None
            reason = f"the process ended at '{name or end_id}'"
            if self.last_error:
                reason += f" after: {self.last_error}"
        return Outcome(status, reason, end_event=end_id, steps=self.steps, gate=self.gate)


class ResumeDiverged(Exception):
    """A resumed task made a record other than the one the ledger holds for that place."""


def _step_type(spec: Any) -> str:
    if isinstance(spec, ExternalServiceTask):
        return "serviceTask"
    if isinstance(spec, DecisionTask):
        return "businessRuleTask"
    if isinstance(spec, SequentialInstances | ParallelInstances):
        return "multiInstanceBody"
    name = type(spec).__name__.removeprefix("Engine")  # the engine's own specs keep the BPMN element's name
    return name[0].lower() + name[1:]


@functools.cache
def _call_threads() -> ThreadPoolExecutor:
    """The threads background plugin calls run in, shared by the runs of this process (a thread per call
    would cost its start each time). Calls wait in their worker pool for a worker, not here: the pool is
    larger than any plugin's concurrency needs."""
    return ThreadPoolExecutor(max_workers=64, thread_name_prefix="engine-step")


def _canceller(task: Any) -> str | None:
    """The boundary event that interrupted ``task``'s activity, if one did."""
    parent = task.parent
    for sibling in (parent.children if parent is not None else []):
        spec = sibling.task_spec
        if sibling is not task and getattr(spec, "cancel_activity", False) and sibling.state in (
                TaskState.READY, TaskState.COMPLETED):
            name = spec.bpmn_name
            return f"{_step_type(spec)} {spec.bpmn_id}" + (f" '{name}'" if name else "")
    return None
