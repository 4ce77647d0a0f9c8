"""What `engine run` shows while it runs, built from the kernel's run events (``Kernel.run(on_event=...)``).

:class:`RunProgress` keeps the picture: files and tasks finished by outcome of those waiting, what runs
now (file, line, task, tool, step), a timer being waited on, parked tasks, elapsed time and rate. The
command prints it (``engine.cli`` is the only module that prints): on a terminal as a live panel
(:meth:`RunProgress.__rich__`), elsewhere one line per finished task and file (:meth:`RunProgress.line`).
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from engine.clock import Clock

OUTCOMES = ("done", "failed", "quarantine")


class RunProgress:
    """The running picture of one `engine run`."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self.began = self.clock.monotonic()
        self.run_id: str | None = None
        self.files_total = self.tasks_total = 0
        self.files = dict.fromkeys((*OUTCOMES, "parked"), 0)
        self.tasks = dict.fromkeys(OUTCOMES, 0)
        self.current: dict[str, Any] | None = None
        self.waiting: dict[str, Any] | None = None
        self.parked: dict[str, str] = {}  # file -> why (its wake time)
        self._task_began: float | None = None
        self._seen: set[str] = set()  # the files claimed in this run
        self._lock = threading.Lock()  # a live display draws from its own thread

    def take(self, event: dict[str, Any]) -> None:
        """Take one run event into the picture."""
        with self._lock:
            self._take(event)

    def _take(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "run_started":
            self.run_id = event["run_id"]
            self.files_total, self.tasks_total = event["files_waiting"], event["tasks_waiting"]
        elif kind == "file_claimed":
            if event.get("queued_after_start"):
                self.files_total += 1
                self.tasks_total += event["tasks"]
            if event["file"] not in self._seen:  # lines an earlier run finished are not this run's to do
                self.tasks_total -= event.get("already_done", 0)
            self._seen.add(event["file"])
            self.parked.pop(event["file"], None)
            self.current = {"file": event["file"]}
        elif kind == "task_started":
            self.current = {k: event.get(k) for k in ("file", "line", "task_id", "tool")}
            self.waiting, self._task_began = None, self.clock.monotonic()
        elif kind == "step" and self.current is not None:
            self.current["step"] = event.get("step_name") or event.get("step")
            self.waiting = None
        elif kind == "waiting":
            self.waiting = event
        elif kind == "task_finished":
            self.tasks[event["status"]] = self.tasks.get(event["status"], 0) + 1
            self.waiting = None
            if self.current is not None:
                self.current = {"file": self.current.get("file")}
        elif kind == "file_finished":
            status = event["status"]
            if status == "parked":
                self.parked[event["file"]] = event.get("reason") or ""
                self.files_total += 1  # it comes back: counted again when it ends
            self.files[status] = self.files.get(status, 0) + 1
            self.current = self.waiting = None

    # -- without a terminal: one line per finished task and file ---------------------------------------

    def line(self, event: dict[str, Any]) -> str | None:
        """The line to print for ``event`` when not on a terminal (None: nothing to say). Call it after
        :meth:`take` for task durations."""
        kind = event.get("event")
        if kind == "task_finished":
            took = "" if self._task_began is None else f", {_short(self.clock.monotonic() - self._task_began)}"
            text = (f"task {event['status']:<10} {event['file']}:{event['line']} {event['task_id']} "
                    f"({event['steps']} steps{took})")
            return text + (f": {event['reason']}" if event.get("reason") and event["status"] != "done" else "")
        if kind == "file_finished":
            reason = event.get("reason")
            return f"{event['status']:<10} {event['file']}" + (
                f": {reason}" if reason and event["status"] != "done" else "")
        if kind == "waiting":
            return (f"waiting    {event['file']}:{event['line']} {event['task_id']} on {event['why']} until "
                    f"{_clock_time(event['until'])}")
        return None

    # -- on a terminal: a live panel -------------------------------------------------------------------

    def __rich__(self) -> Group:
        with self._lock:
            return self._panel()

    def _panel(self) -> Group:
        elapsed = self.clock.monotonic() - self.began
        finished = sum(self.tasks.values())
        rate = f"{finished / elapsed:.1f} tasks/s" if elapsed >= 1 and finished else "-"
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="bold")
        grid.add_column()
        grid.add_row("run", f"{self.run_id or 'starting'}   {_duration(elapsed)} elapsed, {rate}")
        files_done = sum(self.files[k] for k in OUTCOMES)
        grid.add_row("files", _counts(files_done, self.files_total, self.files) + (
            f", {len(self.parked)} parked" if self.parked else ""))
        grid.add_row("tasks", _counts(finished, self.tasks_total, self.tasks))
        if self.current is not None:
            now = self.current["file"]
            if self.current.get("task_id") is not None:
                now += f" line {self.current['line']}, task {self.current['task_id']} ({self.current['tool']})"
            if self.current.get("step"):
                now += f", step {self.current['step']}"
            grid.add_row("now", Text(now))
        else:
            grid.add_row("now", "waiting for task files")
        if self.waiting is not None:
            grid.add_row("waiting", Text(f"{self.waiting['why']} until {_clock_time(self.waiting['until'])} "
                                         f"({_until(self.waiting['until'], self.clock)})"))
        for name, why in list(self.parked.items())[:5]:
            grid.add_row("parked", Text(f"{name}: {why}"))
        if len(self.parked) > 5:
            grid.add_row("", f"and {len(self.parked) - 5} more parked")
        return Group(grid)


def _counts(finished: int, total: int, by: dict[str, int]) -> str:
    shown = f"{finished}/{max(total, finished)}"
    return shown + f"  ({by['done']} done, {by['failed']} failed, {by['quarantine']} quarantined)"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _short(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def _clock_time(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).strftime("%H:%M:%S")
    except ValueError:
        return iso


def _until(iso: str, clock: Clock) -> str:
    try:
        left = (datetime.fromisoformat(iso) - clock.now()).total_seconds()
    except (TypeError, ValueError):
        return "?"
    return f"in {_duration(left)}" if left > 0 else "due"
