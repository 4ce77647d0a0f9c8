"""A task's process state, durable while the task runs: what a killed worker's task resumes from.

Each in-flight task has a state journal (``StateJournal``, a JSON-lines file beside its task file in the
queue's ``processing/`` folder, removed once the task's outcome is recorded). At every durable point the
runner appends one line and fsyncs it:

- the ledger records the task produced since the previous line (``records``: record and envelope, as
  the ledger keeps them: redacted), so that what happened before a crash reaches the ledger exactly once;
- the change of the SpiffWorkflow state since the previous line (``workflow``): the tasks of the task
  tree that are new or changed, as SpiffWorkflow's own serializer writes a task (its data as a delta
  against its parent's), and the ids of the tasks that were dropped. Only the part of the tree at and
  below its *frontier* (``engine.process.workflow``) can change, so a line costs what that part holds,
  however many steps came before: the journal grows by a flat amount per durable point, not by the
  whole tree each time (a full serialization per step is quadratic in a long run);
- the runner's own counters (steps taken, the task's first checkpoint, the last error, the gate's
  verdicts) and, on the first line, the hashes of the models the task runs on (pinned: ``pinned.py``).

``restore`` rebuilds the workflow from all lines: the tasks in the order they first appeared (a parent
always before its children), with their last written form. A service task that was running in the
background when the line was written is made ready again: its call had not finished durably, so it runs
again (a state change in flight is the safety journal's to settle first).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from datetime import date, time
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

from SpiffWorkflow.bpmn.serializer.config import DEFAULT_CONFIG
from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnSubWorkflowConverter, BpmnWorkflowConverter
from SpiffWorkflow.bpmn.serializer.workflow import BpmnWorkflowSerializer
from SpiffWorkflow.util.task import TaskIterator, TaskState

from engine.dmn import temporal
from engine.dmn.temporal import YearMonthDuration
from engine.durable import sync_folder
from engine.errors import EngineError
from engine.process.parser import ExternalServiceTask
from engine.process.timers import CLOCKED
from engine.process.workflow import EngineSubWorkflow, EngineWorkflow

VERSION = 1


def _registry() -> Any:
    """SpiffWorkflow's serializer registry, with the engine's workflow classes and the values FEEL puts
    into process data (numbers, dates, times, durations of years and months) kept exactly."""
    registry = BpmnWorkflowSerializer.configure()
    BpmnWorkflowConverter(EngineWorkflow, registry)
    BpmnSubWorkflowConverter(EngineSubWorkflow, registry)
    for base, clocked in CLOCKED.items():  # the engine's timers (an event-based gateway keeps them in its data)
        DEFAULT_CONFIG[base](clocked, registry)
    registry.register(Decimal, lambda v: {"value": str(v)}, lambda v: Decimal(v["value"]))
    registry.register(date, lambda v: {"value": v.isoformat()}, lambda v: date.fromisoformat(v["value"]))
    registry.register(time, lambda v: {"value": v.isoformat()}, lambda v: time.fromisoformat(v["value"]))
    registry.register(YearMonthDuration, lambda v: {"months": v.months}, lambda v: YearMonthDuration(v["months"]))
    # FEEL's values beyond Python's types (years outside 1-9999, nanoseconds): kept as their ISO text
    for kind, parse in ((temporal.FeelDate, temporal.parse_date), (temporal.FeelDateTime, temporal.parse_datetime),
                        (temporal.FeelTime, temporal.parse_time), (temporal.DayTimeDuration, temporal.parse_duration)):
        registry.register(kind, lambda v: {"value": temporal.format_temporal(v)},
                          lambda v, parse=parse: parse(v["value"]))
    return registry


_REGISTRY = _registry()


class StateError(EngineError):
    """A journal that cannot be written (the data holds a value that is not data) or read back into a
    workflow (written by another engine version, edited)."""


class StateJournal:
    """The append-only, fsync'd journal of one in-flight task."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None  # open while the task writes to it

    def exists(self) -> bool:
        return self.path.is_file()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def append(self, line: Mapping[str, Any]) -> int:
        """Write one line durably; returns its size in bytes. ``StateError`` when the state holds a value
        that is not data (an object a script task made): it could not be restored as it is."""
        try:
            text = json.dumps(line, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise StateError(f"the process data holds a value the state journal cannot keep ({e}); process "
                             "variables must be JSON data, numbers, dates, times or durations") from e
        body = (text + "\n").encode()
        if self._fd is None:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)  # task data: the owner's only
            if os.fstat(fd).st_size == 0:  # a new file: its name must be durable too
                sync_folder(self.path.parent)
            self._fd = fd
        os.write(self._fd, body)
        os.fdatasync(self._fd)
        return len(body)

    def lines(self) -> list[dict[str, Any]]:
        """Every whole line; a last line torn by a kill is not one (its durable point did not happen)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        out = []
        for number, text in enumerate(raw.split(b"\n"), start=1):
            if not text.strip():
                continue
            try:
                line = json.loads(text)
            except ValueError:
                if raw.endswith(b"\n") or number <= raw.count(b"\n"):
                    raise StateError(f"{self.path} line {number} is not JSON") from None
                break  # the torn last line
            out.append(line)
        return out

    def remove(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)


def _below(task: Any) -> Iterator[Any]:
    """``task`` and every task below it, parents first."""
    return iter(TaskIterator(task, state=TaskState.ANY_MASK))


def _task_form(task: Any) -> dict[str, Any]:
    """A task as SpiffWorkflow's serializer writes it, its data's values converted too (the serializer
    leaves those to its JSON encoder)."""
    form: dict[str, Any] = _REGISTRY.convert(task)
    if form.get("data"):
        form["data"] = _REGISTRY.convert(form["data"])
    delta = form.get("delta")
    if delta and delta.get("updates"):
        delta["updates"] = _REGISTRY.convert(delta["updates"])
    return form


def _attributes(workflow: Any) -> dict[str, Any]:
    return {"data": _REGISTRY.convert(_REGISTRY.clean(workflow.data)), "correlations": workflow.correlations,
            "last_task": str(workflow.last_task.id) if workflow.last_task is not None else None,
            "success": workflow.success, "completed": workflow.completed, "root": str(workflow.task_tree.id)}


class Snapshots:
    """The changes of one task's workflow since the last line written (``delta``).

    A task can change only at or below the workflow's frontier; a delta walks from the frontier as it
    was at the previous line (an ancestor of today's, or the same task), so a task that finished and
    left the live part since is written in its final form. The first delta of a workflow writes it
    whole."""

    def __init__(self) -> None:
        self._written: dict[str, dict[str, Any]] = {}  # task id -> its form in the journal
        self._known: dict[str, set[str]] = {}  # workflow key -> ids written that were below its last walk start
        self._start: dict[str, Any] = {}  # workflow key -> the task its next walk starts at
        self._marks: dict[str, tuple[Any, ...]] = {}  # predicted task id -> what its form was made from

    def _tasks(self, key: str, workflow: Any) -> dict[str, Any]:
        changed: dict[str, Any] = {}
        seen: set[str] = set()
        for task in _below(self._start.get(key) or workflow.task_tree):
            ident = str(task.id)
            seen.add(ident)
            # a predicted task with no data of its own is written as these say (its data: none of its
            # parent's keys), so it is not serialized again while they stay the same
            mark = None
            if task.state & TaskState.PREDICTED_MASK and not task.data and not task.internal_data:
                mark = (task.state, task.last_state_change, tuple(task._children), task.triggered,
                        tuple(task.parent.data) if task.parent is not None else None)
                if mark == self._marks.get(ident) and ident in self._written:
                    continue
            form = _task_form(task)
            if mark is not None:
                self._marks[ident] = mark
            if self._written.get(ident) != form:
                changed[ident] = form
                self._written[ident] = form
        known = self._known.get(key, set())
        removed = sorted(i for i in known - seen if UUID(i) not in workflow.tasks)
        for ident in removed:
            self._written.pop(ident, None)
            self._marks.pop(ident, None)
        frontier = workflow._frontier()
        self._start[key] = frontier
        known = self._known[key] = {str(t.id) for t in _below(frontier)}
        for ident in seen - known:  # above the frontier now: never written again, not kept (flat memory)
            self._written.pop(ident, None)
            self._marks.pop(ident, None)
        return {"attributes": _attributes(workflow), "tasks": changed, "removed": removed}

    def prime(self, workflow: EngineWorkflow) -> None:
        """Take ``workflow`` (restored from the journal) as what the journal already holds."""
        self.delta(workflow)

    def delta(self, workflow: EngineWorkflow) -> dict[str, Any]:
        subprocesses = {}
        for parent_id, sub in workflow.subprocesses.items():
            part = self._tasks(str(parent_id), sub)
            part.update(spec=sub.spec.name, parent_task_id=str(parent_id))
            subprocesses[str(parent_id)] = part
        return {"top": self._tasks("top", workflow), "subprocesses": subprocesses,
                "subprocess_order": [str(k) for k in workflow.subprocesses],
                "bpmn_events": _REGISTRY.convert(workflow.bpmn_events)}

def _merge(lines: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, dict[str, Any]], list[str], Any]:
    """The workflow's last state from every line's delta: (top, subprocesses, their order, events)."""
    top: dict[str, Any] = {"tasks": {}}
    subs: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    events: Any = []
    for line in lines:
        delta = line.get("workflow")
        if not isinstance(delta, dict):
            continue
        parts = [("top", delta["top"], top)]
        for key, part in delta.get("subprocesses", {}).items():
            parts.append((key, part, subs.setdefault(key, {"tasks": {}})))
        for _, part, into in parts:
            into["tasks"].update(part["tasks"])
            for ident in part["removed"]:
                into["tasks"].pop(ident, None)
            into["attributes"] = part["attributes"]
            for field in ("spec", "parent_task_id"):
                if field in part:
                    into[field] = part[field]
        order = list(delta.get("subprocess_order", order))
        events = delta.get("bpmn_events", events)
    return top, subs, order, events


def _fill(workflow: Any, part: dict[str, Any]) -> None:
    for form in part["tasks"].values():  # parents first: the order they were first written in
        _REGISTRY.restore(form, workflow=workflow)
    attributes = part["attributes"]
    workflow.task_tree = workflow.tasks[UUID(attributes["root"])]
    workflow.success = attributes["success"]
    workflow.completed = attributes["completed"]
    workflow.correlations = attributes["correlations"]
    workflow.data = _REGISTRY.restore(attributes["data"])
    last = attributes["last_task"]
    workflow.last_task = workflow.tasks.get(UUID(last)) if isinstance(last, str) else None


def restore(lines: list[dict[str, Any]], spec: Any, subprocess_specs: dict[str, Any], script_engine: Any
            ) -> EngineWorkflow:
    """The workflow as the journal's last line left it (``StateError`` when the lines do not make one)."""
    top, subs, order, events = _merge(lines)
    if "attributes" not in top:
        raise StateError("the journal holds no workflow state")
    try:
        workflow = EngineWorkflow(spec, subprocess_specs, script_engine=script_engine, deserializing=True)
        _fill(workflow, top)
        for key in order:
            part = subs.get(key)
            if part is None or "attributes" not in part:
                continue
            parent = workflow.get_task_from_id(UUID(part["parent_task_id"]))
            sub = EngineSubWorkflow(subprocess_specs[part["spec"]], parent.id, workflow, deserializing=True)
            workflow.subprocesses[parent.id] = sub
            _fill(sub, part)
            sub.completed_event.connect(parent.task_spec._on_subworkflow_completed, parent)
        workflow.bpmn_events = _REGISTRY.restore(events)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise StateError(f"the journal does not make a workflow of these models: {type(e).__name__}: {e}") from e
    for task in workflow.get_tasks(state=TaskState.STARTED):
        if isinstance(task.task_spec, ExternalServiceTask):
            task._set_state(TaskState.READY)  # its call had not finished durably: it runs again
    return workflow


def _whole(workflow: Any) -> dict[str, Any]:
    parts = {"top": workflow, **{str(k): v for k, v in workflow.subprocesses.items()}}
    return {key: {"attributes": _attributes(w), "tasks": {str(t.id): _task_form(t) for t in w.tasks.values()}}
            for key, w in parts.items()}


def check_restores(lines: list[dict[str, Any]], workflow: EngineWorkflow) -> None:
    """Raise ``StateError`` unless ``lines`` restore a workflow equal to ``workflow`` (every task, every
    attribute). The test suite runs every durable point through this (``ENGINE_CHECK_STATE=1``)."""
    restored = restore(lines, workflow.spec, workflow.subprocess_specs, workflow.script_engine)
    live, back = _whole(workflow), _whole(restored)
    # a running background call's task is made ready on restore (a state change of its own, at that time):
    # compare it as the restore leaves it
    for key, part in live.items():
        for ident, form in part["tasks"].items():
            if form["state"] == TaskState.STARTED and form["task_spec"] in _service_specs(workflow):
                form["state"] = TaskState.READY
                form.pop("last_state_change")
                back.get(key, {}).get("tasks", {}).get(ident, {}).pop("last_state_change", None)
    if live != back:
        for key in sorted(set(live) | set(back)):
            a, b = live.get(key, {}), back.get(key, {})
            for ident in sorted(set(a.get("tasks", {})) | set(b.get("tasks", {}))):
                if a.get("tasks", {}).get(ident) != b.get("tasks", {}).get(ident):
                    raise StateError(f"the journal restores task {ident} of {key} as {b.get('tasks', {}).get(ident)}"
                                     f", not as {a.get('tasks', {}).get(ident)}")
            if a.get("attributes") != b.get("attributes"):
                raise StateError(f"the journal restores {key}'s attributes as {b.get('attributes')}, not as "
                                 f"{a.get('attributes')}")
        raise StateError("the journal restores another set of workflows")


def _service_specs(workflow: Any) -> set[str]:
    specs = [workflow.spec, *workflow.subprocess_specs.values()]
    return {name for spec in specs for name, task_spec in spec.task_specs.items()
            if isinstance(task_spec, ExternalServiceTask)}
