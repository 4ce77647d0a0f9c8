"""Warm plugin workers: started on first use, kept for the next call, replaced when they fail.

One pool serves every plugin of a kernel, with at most ``concurrency`` workers per plugin (its
``plugin.spec.json``). A worker is a ``python -I`` process of its own session, started in the workspace
with a scrubbed environment: ``PATH`` plus the variables the plugin's spec names under ``env``.

What the pool guarantees for one call:

- It ends by its deadline. A worker still busy then gets SIGTERM, then SIGKILL after ``kill_grace``
  (its whole process group, so tools it started go too), and the call fails with ``timeout``.
- A worker that exits, is killed by a signal, closes its pipes or sends something that is not a frame
  of the protocol is stopped and forgotten; the call fails with what happened and the worker's last
  stderr lines, and the next call starts a new worker.
- When ``cancelled()`` turns true (the engine was asked to stop), the call gets ``stop_grace`` more
  seconds, then its worker is stopped and ``CallInterrupted`` is raised: the task did not finish.

Failures are ``WorkerFault`` (what the kernel turns into a plugin's technical error); the answer of a
call that reached its plugin is returned as the worker sent it.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import os
import selectors
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import engine
from engine.clock import Clock
from engine.errors import Problem
from engine.plugins.loader import LoadedPlugin
from engine.plugins.protocol import FrameReader, ProtocolError, encode

ENGINE_ROOT = str(Path(engine.__file__).resolve().parent.parent)
TAIL_LINES = 12
TAIL_BYTES = 64 * 1024


class WorkerFault(Exception):
    """A call could not be answered by its worker. ``cause`` is timeout, crashed, protocol or import."""

    def __init__(self, message: str, *, cause: str, stderr: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.cause = cause
        self.stderr = stderr or []


class CallInterrupted(Exception):
    """The engine is stopping: the call was abandoned and its worker stopped."""


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker needs to start: taken from a loaded plugin."""

    plugin_id: str
    folder: Path
    entry_point: str
    env: tuple[str, ...] = ()
    concurrency: int = 1

    @classmethod
    def of(cls, plugin: LoadedPlugin) -> WorkerSpec:
        spec = plugin.spec
        return cls(spec.id, plugin.folder, plugin.manifest.entry_point, tuple(spec.env), spec.concurrency)


def _tail(buffer: bytearray) -> list[str]:
    text = bytes(buffer[-TAIL_BYTES:]).decode("utf-8", "replace")
    return [line for line in text.splitlines() if line.strip()][-TAIL_LINES:]


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "closed its pipes"
    if code < 0:
        try:
            return f"was killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


@dataclass
class Worker:
    spec: WorkerSpec
    proc: subprocess.Popen[bytes]
    request_fd: int
    reply_fd: int
    stdout: bytearray = field(default_factory=bytearray)
    stderr: bytearray = field(default_factory=bytearray)
    reader: FrameReader = field(default_factory=FrameReader)
    functions: list[str] = field(default_factory=list)
    calls: int = 0
    dead: bool = False
    selector: selectors.BaseSelector = field(default_factory=selectors.DefaultSelector)

    def __post_init__(self) -> None:
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.selector.register(self.reply_fd, selectors.EVENT_READ, "reply")
        self.selector.register(self.proc.stdout.fileno(), selectors.EVENT_READ, "stdout")
        self.selector.register(self.proc.stderr.fileno(), selectors.EVENT_READ, "stderr")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _drain(self, fd: int, into: bytearray) -> bool:
        """Read what is there; False at end of file."""
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return True
        if not chunk:
            return False
        into += chunk
        if len(into) > 2 * TAIL_BYTES:
            del into[:-TAIL_BYTES]
        return True

    def exchange(self, request: dict[str, Any] | None, deadline: float, clock: Clock,
                 cancelled: Callable[[], bool], stop_grace: float,
                 interrupt: Callable[[], bool] = lambda: False) -> dict[str, Any]:
        """Send ``request`` (None: just wait for the hello) and return the worker's next message.

        ``cancelled`` (the engine is stopping) gives the call ``stop_grace`` more seconds; ``interrupt``
        (the process no longer wants the result: an interrupting timer fired) ends it at once."""
        pending = memoryview(encode(request)) if request is not None else memoryview(b"")
        sel = self.selector
        if pending:  # most requests fit in the pipe: write at once, wait for room only when needed
            try:
                pending = pending[os.write(self.request_fd, pending):]
            except BlockingIOError:
                pass
            except BrokenPipeError:
                raise WorkerFault("closed its pipes", cause="crashed") from None
        if pending:
            sel.register(self.request_fd, selectors.EVENT_WRITE, "request")
        try:
            stop_at: float | None = None
            while True:
                now = clock.monotonic()
                if interrupt():
                    raise CallInterrupted()
                if stop_at is None and cancelled():
                    stop_at = now + stop_grace
                if stop_at is not None and now >= stop_at and stop_at < deadline:
                    raise CallInterrupted()
                if now >= deadline:
                    raise WorkerFault("timed out", cause="timeout")
                limit = min(deadline, stop_at if stop_at is not None else deadline) - now
                for key, _ in sel.select(timeout=min(limit, 0.1)):
                    if key.data == "request":
                        try:
                            written = os.write(self.request_fd, pending)
                        except BrokenPipeError:
                            raise WorkerFault("closed its pipes", cause="crashed") from None
                        pending = pending[written:]
                        if not pending:
                            sel.unregister(self.request_fd)
                            pending = memoryview(b"")
                    elif key.data == "reply":
                        try:
                            chunk = os.read(self.reply_fd, 1 << 16)
                        except BlockingIOError:
                            continue
                        if not chunk:
                            raise WorkerFault("closed its pipes", cause="crashed")
                        try:
                            messages = self.reader.feed(chunk)
                        except ProtocolError as e:
                            raise WorkerFault(f"sent a malformed message ({e})", cause="protocol") from None
                        if messages:
                            if len(messages) > 1 or self.reader.pending:
                                raise WorkerFault("sent more than one answer", cause="protocol")
                            return messages[0]
                    elif not self._drain(key.fd, self.stdout if key.data == "stdout" else self.stderr):
                        sel.unregister(key.fd)
        finally:
            if pending:
                sel.unregister(self.request_fd)

    def drain_output(self) -> tuple[list[str], list[str]]:
        """What the worker printed since the last call (whole lines), emptied."""
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._drain(self.proc.stdout.fileno(), self.stdout)
        self._drain(self.proc.stderr.fileno(), self.stderr)
        out, err = _tail(self.stdout), _tail(self.stderr)
        self.stdout.clear()
        self.stderr.clear()
        return out, err

    def stop(self, kill_grace: float, *, polite: bool = False) -> None:
        """Stop the worker and its process group; reap it; close our ends of its pipes."""
        if polite and self.proc.poll() is None:
            try:
                os.write(self.request_fd, encode({"stop": 1}))
                self.proc.wait(timeout=max(kill_grace, 0.2))
            except (OSError, subprocess.TimeoutExpired):
                pass
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if self.proc.poll() is not None:
                break
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=kill_grace if sig == signal.SIGTERM else 10)
            except subprocess.TimeoutExpired:
                continue
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # what the plugin left running in its group
        self.dead = True
        self.selector.close()
        for fd in (self.request_fd, self.reply_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()

    def exit_status(self, wait: float = 0.5) -> str:
        try:
            code = self.proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            return _describe_exit(None)
        return _describe_exit(code)


def _nonblocking(fd: int) -> None:
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_NONBLOCK)


class WorkerPool:
    """The warm workers of one kernel, per plugin. Thread-safe; ``close()`` stops them all."""

    def __init__(self, home: Path, *, clock: Clock | None = None, kill_grace: float = 1.0, stop_grace: float = 3.0,
                 environ: Mapping[str, str] | None = None, python: str = sys.executable) -> None:
        self.home = home
        self.clock = clock or Clock()
        self.kill_grace = kill_grace
        self.stop_grace = stop_grace
        self.environ = dict(os.environ if environ is None else environ)
        self.python = python
        self._idle: dict[str, list[Worker]] = collections.defaultdict(list)
        self._live: dict[str, int] = collections.defaultdict(int)
        self._lock = threading.Condition()
        self._closed = False
        self.started = 0  # workers started over the pool's life (for status and tests)

    def environment(self, spec: WorkerSpec) -> dict[str, str]:
        env = {"PATH": self.environ.get("PATH", os.defpath)}
        env.update({name: self.environ[name] for name in spec.env if name in self.environ})
        return env

    def _start(self, spec: WorkerSpec, deadline: float, cancelled: Callable[[], bool]) -> Worker:
        request_r, request_w = os.pipe()
        reply_r, reply_w = os.pipe()
        try:
            proc = subprocess.Popen(
                [self.python, "-I", "-c", _bootstrap(), ENGINE_ROOT, str(request_r), str(reply_w), str(spec.folder),
                 spec.entry_point, spec.plugin_id],
                pass_fds=(request_r, reply_w), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, cwd=self.home, env=self.environment(spec), start_new_session=True)
        except OSError as e:
            for fd in (request_r, request_w, reply_r, reply_w):
                os.close(fd)
            raise WorkerFault(f"could not be started: {e}", cause="crashed") from e
        os.close(request_r)
        os.close(reply_w)
        assert proc.stdout is not None and proc.stderr is not None
        for fd in (request_w, reply_r, proc.stdout.fileno(), proc.stderr.fileno()):
            _nonblocking(fd)
        worker = Worker(spec, proc, request_w, reply_r)
        with self._lock:
            self.started += 1
        try:
            hello = worker.exchange(None, deadline, self.clock, cancelled, self.stop_grace)
        except (WorkerFault, CallInterrupted) as e:
            if isinstance(e, WorkerFault) and e.cause == "crashed":
                e.message = f"{worker.exit_status()} while starting"
            _, e_stderr = worker.drain_output() if not worker.dead else ([], [])
            worker.stop(self.kill_grace)
            if isinstance(e, WorkerFault):
                e.stderr = e_stderr
                if e.cause == "timeout":
                    e.message = "timed out while starting"
            raise
        if not hello.get("ok"):
            _, err = worker.drain_output()
            worker.stop(self.kill_grace)
            raise WorkerFault(f"failed to import in its worker: {hello.get('error')}", cause="import",
                              stderr=str(hello.get("traceback", "")).splitlines()[-TAIL_LINES:] or err)
        worker.functions = [str(f) for f in hello.get("functions", [])]
        return worker

    def _acquire(self, spec: WorkerSpec, deadline: float, cancelled: Callable[[], bool]) -> Worker:
        with self._lock:
            while True:
                if self._closed:
                    raise CallInterrupted()
                idle = self._idle[spec.plugin_id]
                while idle:
                    worker = idle.pop()
                    if worker.proc.poll() is None:
                        return worker
                    worker.stop(self.kill_grace)
                    self._live[spec.plugin_id] -= 1
                if self._live[spec.plugin_id] < max(1, spec.concurrency):
                    self._live[spec.plugin_id] += 1
                    break
                if cancelled():
                    raise CallInterrupted()
                if self.clock.monotonic() >= deadline:
                    raise WorkerFault("timed out waiting for a free worker", cause="timeout")
                self._lock.wait(timeout=0.1)
        try:
            return self._start(spec, deadline, cancelled)
        except BaseException:
            with self._lock:
                self._live[spec.plugin_id] -= 1
                self._lock.notify()
            raise

    def _release(self, worker: Worker, *, keep: bool) -> None:
        with self._lock:
            if keep and not self._closed:
                self._idle[worker.spec.plugin_id].append(worker)
            else:
                self._live[worker.spec.plugin_id] -= 1
            self._lock.notify()
        if not keep:
            worker.stop(self.kill_grace)

    def call(self, spec: WorkerSpec, request: dict[str, Any], *, timeout: float,
             cancelled: Callable[[], bool] = lambda: False,
             interrupt: Callable[[], bool] = lambda: False) -> tuple[dict[str, Any], list[str], list[str]]:
        """Run one call in a worker of ``spec``: (the worker's answer, its stdout lines, its stderr lines).

        An interrupted call (``CallInterrupted``) stops its worker: a new one takes the next call."""
        deadline = self.clock.monotonic() + timeout
        worker = self._acquire(spec, deadline, lambda: cancelled() or interrupt())
        keep = False
        try:
            worker.calls += 1
            answer = worker.exchange(request, deadline, self.clock, cancelled, self.stop_grace, interrupt)
            keep = True
            out, err = worker.drain_output()
            return answer, out, err
        except WorkerFault as e:
            if e.cause == "crashed":
                e.message = worker.exit_status()
            if e.cause in ("timeout", "protocol"):
                worker.stop(self.kill_grace)
            out, err = worker.drain_output() if not worker.dead else (_tail(worker.stdout), _tail(worker.stderr))
            e.stderr = err
            raise
        finally:
            self._release(worker, keep=keep)

    def workers(self) -> dict[str, list[int]]:
        """The pids of the idle workers, per plugin."""
        with self._lock:
            return {k: [w.pid for w in v] for k, v in self._idle.items() if v}

    def close(self) -> None:
        """Stop every idle worker (politely first); calls still running end with ``CallInterrupted``."""
        with self._lock:
            self._closed = True
            idle = [w for workers in self._idle.values() for w in workers]
            self._idle.clear()
            self._lock.notify_all()
        for worker in idle:
            worker.stop(self.kill_grace, polite=True)


def _bootstrap() -> str:
    from engine.plugins.worker import BOOTSTRAP

    return BOOTSTRAP


def probe(plugin: LoadedPlugin, home: Path, *, timeout: float = 30.0) -> list[Problem]:
    """Start a worker for the plugin, let it import its entry point, call nothing, stop it.

    Returns every problem found ([] when the plugin loads in a worker and defines every operation).
    """
    spec, operations = WorkerSpec.of(plugin), list(plugin.spec.operations)
    pool = WorkerPool(home)
    try:
        worker = pool._acquire(spec, pool.clock.monotonic() + timeout, lambda: False)
    except WorkerFault as e:
        detail = f"; stderr: {' | '.join(e.stderr)}" if e.stderr else ""
        return [Problem(f"plugin {spec.plugin_id} {e.message}{detail}", file=str(spec.folder / spec.entry_point))]
    try:
        missing = [op for op in operations if op not in worker.functions]
        return [Problem(f"operation {op!r} has no function {op}(ctx, data) in {spec.entry_point}",
                        file=str(spec.folder / spec.entry_point), path=f"$.operations.{op}") for op in missing]
    finally:
        pool._release(worker, keep=False)
        pool.close()
