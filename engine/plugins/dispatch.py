"""Dispatch: the one way the kernel calls a plugin.

``Dispatcher.call(plugin, operation, ctx, data)`` checks ``data`` against the operation's
``input_schema``, runs the operation in one of the plugin's warm workers (``engine.plugins.pool``) or,
for ``isolation: "inprocess"`` plugins, in this process, and checks the answer: a dict of plain JSON
that matches the ``output_schema``. It returns the output or raises:

- ``ContractViolation`` when the input or the output breaks the operation's schema, the output is not
  plain JSON, or the plugin raised an error code its spec does not declare;
- ``PluginError`` for everything else, typed: ``kind="business"`` with the plugin's declared ``code``, or
  ``kind="technical"``: the plugin's own technical error (its ``retryable`` kept), or the kernel's
  finding, with a code of its own: ``engine.timeout``, ``engine.crashed``,
  ``engine.protocol``, ``engine.import``, ``engine.exception`` (anything else the plugin raised);
- ``CallInterrupted`` when the engine is stopping and the call was abandoned (after the pool's grace), or
  at once when ``interrupt()`` turns true (the process cancelled the step: an interrupting timer).

A call's deadline is the smallest of the task's ``timeout_sec``, the operation's timeout (else the
plugin's ``timeout_sec``) and the bound for the plugin's category in ``policies/performance.yml``.
In-process plugins get no enforced deadline: they are for pure transformations.
"""

from __future__ import annotations

import atexit
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from engine.config import Performance
from engine.contracts import problems_against
from engine.errors import ContractViolation, PluginError, Problem
from engine.plugins.loader import LoadedPlugin
from engine.plugins.pool import CallInterrupted, WorkerFault, WorkerPool, WorkerSpec
from engine.sdk import Context

__all__ = ["CallInterrupted", "Dispatcher", "dispatch", "timeout_for"]

SpanSink = Callable[[list[dict[str, Any]]], None]


def timeout_for(plugin: LoadedPlugin, operation: str, task_timeout: float | None,
                performance: Performance | None) -> float:
    """The deadline of one call, in seconds: the smallest of the three bounds that apply."""
    op = plugin.spec.operations[operation]
    bounds = [op.timeout_sec or plugin.spec.timeout_sec]
    if task_timeout is not None:
        bounds.append(task_timeout)
    bound = performance.bound(plugin.spec.category) if performance is not None else None
    if bound is not None:
        bounds.append(bound)
    return min(bounds)


def _seconds(value: float) -> str:
    return f"{value:g} s"


class Dispatcher:
    """Calls plugins for one kernel: its worker pool, its performance policy, where worker spans go."""

    def __init__(self, pool: WorkerPool, *, performance: Performance | None = None,
                 spans: SpanSink | None = None) -> None:
        self.pool = pool
        self.performance = performance
        self.spans = spans

    def call(self, plugin: LoadedPlugin, operation: str | None, ctx: Context, data: Mapping[str, Any], *,
             task_timeout: float | None = None, cancelled: Callable[[], bool] = lambda: False,
             traceparent: str | None = None, interrupt: Callable[[], bool] = lambda: False) -> dict[str, Any]:
        op_name = operation or plugin.spec.first_operation
        subject: dict[str, Any] = {"plugin": plugin.id, "operation": op_name}
        if op_name not in plugin.spec.operations:
            raise ContractViolation(f"plugin {plugin.id!r} has no operation {op_name!r}; it has: "
                                    f"{', '.join(plugin.spec.operations)}", **subject)
        op = plugin.spec.operations[op_name]
        found = problems_against(op.input_schema, dict(data))
        if found:
            raise ContractViolation(f"input of {plugin.id}.{op_name} violates its input_schema",
                                    problems=found, side="input", **subject)
        if plugin.spec.isolation == "inprocess":
            result = self._inprocess(plugin, op_name, ctx, data, subject)
            return _checked_output(plugin, op_name, result, op.output_schema, subject)
        timeout = timeout_for(plugin, op_name, task_timeout, self.performance)
        result = self._isolated(plugin, op_name, ctx, data, timeout, cancelled, traceparent, subject, interrupt)
        # a worker's answer came as a frame: plain JSON already (engine.plugins.protocol), and a copy of its own
        return _checked_output(plugin, op_name, result, op.output_schema, subject, plain=True)

    def _inprocess(self, plugin: LoadedPlugin, op_name: str, ctx: Context, data: Mapping[str, Any],
                   subject: dict[str, Any]) -> Any:
        function = plugin.functions.get(op_name)
        if function is None:
            raise PluginError(f"plugin {plugin.id} has no function {op_name}(ctx, data)", code="engine.import",
                              **subject)
        try:
            return function(ctx, data)
        except PluginError as e:
            e.subject.update(subject)
            raise _declared(plugin, op_name, e.message, e.code, e.retryable, subject) from e
        except (Exception, SystemExit) as e:  # a plugin's exit must not end the engine
            raise PluginError(f"plugin {plugin.id}.{op_name} raised {type(e).__name__}: {e}",
                              code="engine.exception", **subject) from e

    def _isolated(self, plugin: LoadedPlugin, op_name: str, ctx: Context, data: Mapping[str, Any], timeout: float,
                  cancelled: Callable[[], bool], traceparent: str | None, subject: dict[str, Any],
                  interrupt: Callable[[], bool] = lambda: False) -> Any:
        request = {"call": 1, "plugin": plugin.id, "operation": op_name, "data": dict(data),
                   "traceparent": traceparent,
                   "context": {"run_id": ctx.run_id, "task_id": ctx.task_id, "now": ctx.now.isoformat(),
                               "seed": ctx.seed, "whatif": ctx.whatif, "workdir": str(ctx.workdir),
                               "workspace": str(ctx.workspace) if ctx.workspace else None}}
        try:
            answer, stdout, stderr = self.pool.call(WorkerSpec.of(plugin), request, timeout=timeout,
                                                    cancelled=cancelled, interrupt=interrupt)
        except WorkerFault as e:
            what = f"plugin {plugin.id}.{op_name}"
            if e.cause == "timeout":
                message = f"{what} {e.message} after {_seconds(timeout)} and was stopped"
            elif e.cause == "import":
                message = f"{what}: the plugin {e.message}"
            else:
                message = f"{what} crashed: its worker {e.message}; a new worker takes the next call"
            if e.stderr:
                message += " (last stderr: " + " | ".join(e.stderr[-5:]) + ")"
            ctx.log.warning("plugin_worker_fault", cause=e.cause, stderr=e.stderr)
            raise PluginError(message, code=f"engine.{e.cause}", retryable=False, **subject) from e
        for stream, lines in (("stdout", stdout), ("stderr", stderr)):
            if lines:
                ctx.log.info("plugin_printed", stream=stream, lines=lines)
        for event in answer.get("logs") or []:
            if isinstance(event, dict):
                level = str(event.pop("level", "info"))
                name = str(event.pop("event", "plugin_log"))
                log = getattr(ctx.log, level if level in ("debug", "info", "warning", "error") else "info")
                log(name, **{k: v for k, v in event.items() if k not in ("run_id", "task_id", "plugin")})
        if self.spans is not None and isinstance(answer.get("spans"), list):
            self.spans(answer["spans"])
        if answer.get("ok") is True:
            return answer.get("output")
        raw = answer.get("error")
        error: dict[str, Any] = raw if isinstance(raw, dict) else {}
        message = str(error.get("message") or "failed without a message")
        code = error.get("code")
        if error.get("type") == "ContractViolation":
            raise ContractViolation(f"{plugin.id}.{op_name} {message}", side="output", **subject)
        if error.get("type") == "PluginError":
            raise _declared(plugin, op_name, message, code if isinstance(code, str) else None,
                            bool(error.get("retryable")), subject)
        tb = str(error.get("traceback") or "")
        if tb:
            ctx.log.warning("plugin_raised", traceback=tb)
        raise PluginError(f"plugin {plugin.id}.{op_name} {message}", code="engine.exception", **subject)


def _declared(plugin: LoadedPlugin, op_name: str, message: str, code: str | None, retryable: bool,
              subject: dict[str, Any]) -> PluginError:
    """The plugin's own error, typed; an undeclared code is the plugin breaking its contract."""
    if code is None:
        return PluginError(message, retryable=retryable, **subject)
    if code not in plugin.spec.errors:
        declared = ", ".join(sorted(plugin.spec.errors)) or "none"
        raise ContractViolation(f"{plugin.id}.{op_name} raised error code {code!r}, which its plugin.spec.json does "
                                f"not declare under errors (declared: {declared}); its message: {message}",
                                side="output", **subject)
    return PluginError(message, code=code, retryable=retryable, **subject)


def _checked_output(plugin: LoadedPlugin, op_name: str, result: Any, schema: Mapping[str, Any],
                    subject: dict[str, Any], plain: bool = False) -> dict[str, Any]:
    if not isinstance(result, Mapping):
        raise ContractViolation(f"{plugin.id}.{op_name} returned {type(result).__name__}, not an object",
                                side="output", **subject)
    output: dict[str, Any]
    if plain and isinstance(result, dict):
        output = result
    else:
        try:  # the output goes to the ledger and the run record: it must be plain JSON
            output = json.loads(json.dumps(dict(result), allow_nan=False))
        except (TypeError, ValueError) as e:
            raise ContractViolation(f"output of {plugin.id}.{op_name} is not plain JSON: {e}", side="output",
                                    **subject) from e
    found: list[Problem] = problems_against(schema, output)
    if found:
        raise ContractViolation(f"output of {plugin.id}.{op_name} violates its output_schema",
                                problems=found, side="output", **subject)
    return output


_default: Dispatcher | None = None


def dispatch(plugin: LoadedPlugin, operation: str | None, ctx: Context, data: Mapping[str, Any], *,
             task_timeout: float | None = None) -> dict[str, Any]:
    """One call through a process-wide dispatcher (for tools and tests; the kernel has its own)."""
    global _default
    if _default is None:
        _default = Dispatcher(WorkerPool(Path.cwd()))
        atexit.register(_default.pool.close)
    return _default.call(plugin, operation, ctx, data, task_timeout=task_timeout)
