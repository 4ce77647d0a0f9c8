"""What a worker is doing, for ``engine status``: ``.engine/state/worker-<host>-<pid>.json``.

The kernel hands each run event to :meth:`Heartbeat.note`; a background thread writes the file when it
changed (at most every ``interval`` seconds, and every ``refresh`` seconds anyway so that its ``beat``
time stays fresh). The file holds the worker's run: its id, when it started, the files and tasks it has
finished by outcome, and what it works on now (file, line, task, tool, step, and the time a timer wait
ends). Nothing here must survive a crash: a worker killed hard leaves its file behind, and
:func:`live_workers` tells those from live ones by their process id.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import socket
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.clock import Clock

PREFIX = "worker-"


class Heartbeat:
    """The heartbeat file of one worker's run."""

    def __init__(self, folder: Path, worker: str, *, interval: float = 0.5, refresh: float = 5.0) -> None:
        self.path = folder / f"{PREFIX}{worker}.json"
        self.clock = Clock()  # the wall clock, never a run's injected one: the thread's readings would move it
        self.interval, self.refresh = interval, refresh
        self._lock = threading.Lock()
        self._state: dict[str, Any] = {"worker": worker, "pid": os.getpid(), "host": socket.gethostname()}
        self._version = 0
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, run_id: str) -> None:
        with self._lock:
            self._state.update(run_id=run_id, started=self.clock.now().isoformat(), files=dict.fromkeys(
                ("done", "failed", "quarantine", "parked"), 0), tasks=dict.fromkeys(
                ("done", "failed", "quarantine"), 0), current=None, waiting=None)
            self._version += 1
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._write()
        self._stopped.clear()
        self._thread = threading.Thread(target=self._beat, name="engine-heartbeat", daemon=True)
        self._thread.start()

    def note(self, event: Mapping[str, Any]) -> None:
        """Take one run event into the picture (cheap: the thread writes it)."""
        kind = event.get("event")
        with self._lock:
            state = self._state
            if kind == "file_claimed":
                state["current"] = {"file": event["file"]}
            elif kind == "task_started":
                state["current"] = {k: event.get(k) for k in ("file", "line", "task_id", "tool")}
                state["waiting"] = None
            elif kind == "step" and state.get("current"):
                state["current"]["step"] = event.get("step_name") or event.get("step")
                state["waiting"] = None
            elif kind == "waiting":
                state["waiting"] = {"until": event.get("until"), "why": event.get("why")}
            elif kind == "task_finished":
                tasks = state.setdefault("tasks", {})
                tasks[event["status"]] = tasks.get(event["status"], 0) + 1
                if state.get("current"):
                    state["current"] = {"file": state["current"].get("file")}
                state["waiting"] = None
            elif kind == "file_finished":
                files = state.setdefault("files", {})
                files[event["status"]] = files.get(event["status"], 0) + 1
                state["current"] = state["waiting"] = None
            else:
                return
            self._version += 1

    def stop(self) -> None:
        """End the thread and remove the file: a worker that stops cleanly leaves no heartbeat."""
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.path.unlink(missing_ok=True)

    def _beat(self) -> None:
        written, since = self._version, 0.0
        while not self._stopped.wait(self.interval):
            since += self.interval
            if self._version != written or since >= self.refresh:
                written, since = self._version, 0.0
                with contextlib.suppress(OSError):  # the status picture is best effort: the run goes on
                    self._write()

    def _write(self) -> None:
        with self._lock:
            body = copy.deepcopy(self._state)
        body["beat"] = self.clock.now().isoformat()
        body["current_file"] = (body.get("current") or {}).get("file")
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps(body, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.path)


def live_workers(folder: Path) -> list[dict[str, Any]]:
    """The heartbeats of the workers still running (files of workers killed hard are left out)."""
    found = []
    for path in sorted(folder.glob(f"{PREFIX}*.json")):
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # being replaced, or torn by a crash: the next beat rewrites it
        if isinstance(body, dict) and alive(body):
            found.append(body)
    return found


def alive(worker: Mapping[str, Any]) -> bool:
    """Whether a heartbeat (or a run record naming its worker) belongs to a live process."""
    host, _, pid = str(worker.get("worker", "")).rpartition("-")
    if host != socket.gethostname():
        return True  # another machine's worker: its heartbeat time is all we know
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True
