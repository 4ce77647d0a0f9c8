"""The plugin worker: a process of its own that imports one plugin and answers calls over pipes.

The kernel starts it (``engine.plugins.pool``) as ``python -I -c <bootstrap> REQ_FD REPLY_FD FOLDER
ENTRY_POINT PLUGIN_ID``, with a scrubbed environment and its own session, so terminal signals reach the
kernel only. The worker imports the plugin's entry point, says hello with the functions it found, then
answers one call at a time until the kernel sends ``stop`` or closes the request pipe. What crosses the
pipes is plain JSON (``engine.plugins.protocol``): the ``Context`` a plugin sees is rebuilt here.

Whatever the plugin does costs its call only: a ``PluginError`` is answered as the plugin's error,
any other exception (``SystemExit`` and ``KeyboardInterrupt`` included) as a technical error with its
traceback; an exit, a crash or closed pipes end the worker, and the kernel starts a new one. A worker
whose kernel died exits by itself.
"""

from __future__ import annotations

import faulthandler
import importlib.util
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from engine.plugins.protocol import FrameReader, encode, read_message, write_all
from engine.plugins.tracing import SpanRecorder

BOOTSTRAP = "import sys; sys.path.insert(0, sys.argv[1]); from engine.plugins.worker import main; main(sys.argv[2:])"
PARENT_POLL_SEC = 1.0


def _watch_parent(parent: int) -> None:
    """End the worker when the kernel is gone (killed hard), even while a plugin call hangs."""
    while True:
        time.sleep(PARENT_POLL_SEC)
        if os.getppid() != parent:
            os._exit(70)


def _import(folder: Path, entry_point: str, plugin_id: str) -> Any:
    path = folder / entry_point
    name = "engine_plugin_" + plugin_id.replace("-", "_")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class _CallLog:
    """``ctx.log`` in a worker: structlog's methods, events collected and sent back with the answer (the
    kernel writes them to its log, bound to run, task and plugin). Not structlog itself: a worker starts
    without importing it."""

    def __init__(self, sink: list[dict[str, Any]], bound: dict[str, Any]) -> None:
        self._sink, self._bound = sink, bound

    def bind(self, **values: Any) -> _CallLog:
        return _CallLog(self._sink, {**self._bound, **values})

    def new(self, **values: Any) -> _CallLog:
        return _CallLog(self._sink, dict(values))

    def unbind(self, *keys: str) -> _CallLog:
        return _CallLog(self._sink, {k: v for k, v in self._bound.items() if k not in keys})

    def _emit(self, level: str, event: str, args: tuple[Any, ...], values: dict[str, Any]) -> None:
        if len(self._sink) >= 200:
            return
        if args:
            event = event % args
        merged = {**self._bound, **values, "event": event, "level": level}
        self._sink.append({k: v if isinstance(v, str | int | float | bool | None) else repr(v)
                           for k, v in merged.items()})

    def debug(self, event: str, *args: Any, **values: Any) -> None:
        self._emit("debug", event, args, values)

    def info(self, event: str, *args: Any, **values: Any) -> None:
        self._emit("info", event, args, values)

    msg = info

    def warning(self, event: str, *args: Any, **values: Any) -> None:
        self._emit("warning", event, args, values)

    warn = warning

    def error(self, event: str, *args: Any, **values: Any) -> None:
        self._emit("error", event, args, values)

    def exception(self, event: str, *args: Any, **values: Any) -> None:
        values.setdefault("exception", traceback.format_exc()[-4000:])
        self._emit("error", event, args, values)

    critical = error


class _Logs:
    """The events of the call in progress."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def logger(self, **bound: Any) -> _CallLog:
        return _CallLog(self.events, bound)

    def drain(self) -> list[dict[str, Any]]:
        events, self.events = self.events, []
        return events


def _error(e: BaseException) -> dict[str, Any]:
    from engine.errors import PluginError

    if isinstance(e, PluginError):
        return {"message": e.message, "code": e.code, "retryable": bool(e.retryable), "type": "PluginError"}
    return {"message": f"raised {type(e).__name__}: {e}".rstrip(": "), "code": None, "retryable": False,
            "type": type(e).__name__, "traceback": "".join(traceback.format_exception(e))[-4000:]}


def _not_plain(output: Any) -> str | None:
    """Why ``output`` cannot be an operation's answer, or None (JSON itself is checked when it is framed)."""
    if not isinstance(output, dict):
        return f"returned {type(output).__name__}, not an object"
    return None


def _answer(request: dict[str, Any], functions: dict[str, Callable[..., Any]], logs: _Logs,
            spans: SpanRecorder, home: str) -> dict[str, Any]:
    from engine.sdk import Context

    plugin, operation = request["plugin"], request["operation"]
    c = request["context"]
    workdir = Path(c["workdir"])
    target = str(workdir) if workdir.is_dir() else home
    try:
        here: str | None = os.getcwd()
    except FileNotFoundError:  # the last call's folder (a task's worktree) was removed since
        here = None
    if here != target:
        os.chdir(target)
    span = spans.start(f"plugin {plugin}.{operation}", request.get("traceparent"),
                       {"engine.plugin": plugin, "engine.operation": operation, "engine.task_id": c["task_id"]})
    trace = {"trace_id": span.trace_id, "span_id": span.span_id}
    ctx = Context(run_id=c["run_id"], task_id=c["task_id"], now=datetime.fromisoformat(c["now"]), seed=int(c["seed"]),
                  whatif=bool(c["whatif"]), workdir=workdir,
                  workspace=Path(c["workspace"]) if c.get("workspace") else None,
                  log=cast(Any, logs.logger(run_id=c["run_id"], task_id=c["task_id"], plugin=plugin, **trace)))
    reply: dict[str, Any] = {"reply": request["call"]}
    try:
        output = functions[operation](ctx, request["data"])
    except BaseException as e:  # noqa: BLE001 - everything a plugin raises is its call's error
        reply.update(ok=False, error=_error(e))
    else:
        broken = _not_plain(output)
        if broken:
            reply.update(ok=False, error={"message": broken, "type": "ContractViolation", "code": None,
                                          "retryable": False})
        else:
            reply.update(ok=True, output=output)
    spans.end(span, error=None if reply["ok"] else reply["error"]["message"])
    reply.update(logs=logs.drain(), spans=spans.drain())
    return reply


def main(argv: list[str]) -> None:
    request_fd, reply_fd = int(argv[0]), int(argv[1])
    folder, entry_point, plugin_id = Path(argv[2]), argv[3], argv[4]
    faulthandler.enable()  # a segfault leaves its Python stack on stderr, which the kernel reports
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    home = os.getcwd()
    hello: dict[str, Any] = {"hello": 1, "pid": os.getpid()}
    try:
        module = _import(folder, entry_point, plugin_id)
        functions = {name: fn for name, fn in vars(module).items() if callable(fn) and not name.startswith("_")}
        hello.update(ok=True, functions=sorted(functions))
    except BaseException as e:  # noqa: BLE001 - an import that fails is reported, not fatal to the kernel
        functions = {}
        hello.update(ok=False, error=f"{type(e).__name__}: {e}",
                     traceback="".join(traceback.format_exception(e))[-4000:])
    write_all(reply_fd, encode(hello))
    if not hello["ok"]:
        return
    reader, logs, spans = FrameReader(), _Logs(), SpanRecorder()
    while True:
        request = read_message(request_fd, reader)
        if request is None or "stop" in request:
            return
        reply = _answer(request, functions, logs, spans, home)
        try:
            frame = encode(reply)
        except (TypeError, ValueError, RecursionError) as e:
            reply.pop("output", None)
            reply.update(ok=False, error={"message": f"output is not plain JSON: {e}", "type": "ContractViolation",
                                          "code": None, "retryable": False})
            try:
                frame = encode(reply)
            except (TypeError, ValueError, RecursionError):  # the error or the logs are not JSON either
                frame = encode({"reply": reply["reply"], "ok": False, "error": reply["error"]})
        write_all(reply_fd, frame)
