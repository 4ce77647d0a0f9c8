"""Replay: run a recorded task again through the models it ran on, with the plugin calls' recorded results
instead of the plugins, and check that it makes exactly the ledger records it made then.

What a task did is in the ledger (its run and step records, in order) and in its run's outputs file
(``.engine/runs/<run>/outputs.jsonl``: each call's output or error, with the task's first checkpoint
once there is one). ``replay_task`` builds the task again from its task file, loads the pinned models its
records name (``pinned.py``), and runs it with a runner whose plugin boundary hands back the recorded
results in order and whose clock jumps over timers; every record it makes is compared with the ledger's
record at that place: each decision's result and matched rows, each gateway's flows, each state digest,
each plugin's input and output digests. The first difference is the answer, naming the step and what
was recorded and what was derived. Nothing is written: not the ledger, not the queue, no plugin runs.

Limits: a result stored redacted (it held a secret) cannot be fed back as it was; the step that used it
differs and the answer says the output was redacted. Calls that ran in parallel branches are fed back
in the order they were recorded.
"""

from __future__ import annotations

import json
import queue
import tempfile
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from SpiffWorkflow.util.task import TaskState

from engine.clock import Clock
from engine.contracts import Task
from engine.errors import EngineError, PluginError
from engine.ledger import Ledger, digest, record_hash
from engine.legacy import TaskAdapter
from engine.plugins.dispatch import Dispatcher
from engine.plugins.loader import LoadedPlugin, Registry
from engine.plugins.pool import CallInterrupted, WorkerPool
from engine.process.models import Models
from engine.process.pinned import load_pinned
from engine.process.runtime import Outcome, ResumeDiverged, RunContext, TaskRunner
from engine.process.steps import Step
from engine.process.timers import due_at, waits_on_timer
from engine.queue import FINAL
from engine.redact import redact
from engine.workspace import Workspace


class ReplayClock(Clock):
    """Time as the task saw it: starts when the task started and moves on only when the runner waits."""

    def __init__(self, start: datetime) -> None:
        self._now = start
        self._mono = 0.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def sleep(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)
        self._mono += seconds


@dataclass
class Replayed:
    """One task's replay: ``ok``, or the first ``difference`` (with the step it is at)."""

    task_id: str
    task_file: str
    line: int
    records: int
    ok: bool
    difference: str | None = None
    step: str | None = None
    unfinished: bool | None = None  # the task has no outcome yet: what it recorded so far agreed

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class _Recorded:
    """A task's records (ledger order) and its plugin calls' results (outputs order), per step."""

    records: list[dict[str, Any]] = field(default_factory=list)
    durations: list[float | None] = field(default_factory=list)  # each record's duration_ms (its envelope's)
    hashes: list[str] = field(default_factory=list)
    started: str | None = None  # when the task started (its first record's envelope)
    runs: set[str] = field(default_factory=set)  # the runs that wrote its records

    @property
    def finished(self) -> bool:
        return any(r.get("kind") == "run" and r.get("status") != "started" for r in self.records)
    calls: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


class _Unfinished(Exception):
    """The replay reached the end of a story that has no outcome yet: everything recorded agreed."""


class _Diverged(Exception):
    def __init__(self, message: str, step: str | None) -> None:
        super().__init__(message)
        self.step = step


class ReplayRunner(TaskRunner):
    """A task runner whose plugin calls return what the recorded run's calls returned."""

    def __init__(self, run: RunContext, task: Task, recorded: _Recorded, *, task_file: str, line: int,
                 models: Models) -> None:
        super().__init__(run, task, task_file=task_file, line=line, models=models)
        self.recorded = recorded
        self._expected = list(recorded.records)
        self._durations = {id(r): d for r, d in zip(recorded.records, recorded.durations, strict=False)}
        self._ends: dict[int, datetime] = {}  # a call in flight (its thread) -> when its recorded run ended
        self._ended: list[Any] = []  # background calls that ended, not settled yet
        self._workflow: Any = None
        self._runner_thread = threading.get_ident()
        self._cancelling: set[str] = set()  # steps whose calls wait to be cancelled, as the run's were
        self._tick = threading.Event()  # set when the replay's time moves on

    def _drive(self, workflow: Any) -> Outcome:
        self._workflow = workflow
        return super()._drive(workflow)

    def _wait(self, seconds: float) -> bool:
        """Settle the calls that ended in the order the run recorded them; with none ended, move the clock
        on to the next thing due (a call's recorded end, a timer), as the recorded run's time went."""
        self._collect()
        if not self._ended and seconds > 0 and self._calls:
            dues = list(self._ends.values())
            if self._workflow is not None:
                waiting = self._workflow.get_tasks(state=TaskState.WAITING)
                dues += [d for t in waiting if waits_on_timer(t.task_spec) for d in [due_at(t)] if d is not None]
            now = self.run.clock.now()
            later = [d for d in dues if d > now]
            if later:
                self.run.clock.sleep((min(later) - now).total_seconds())
                self._tick.set()  # the calls waiting for their end look at the time again
            elif self._cancelling and len(self._cancelling) == len(self._calls):
                raise _Diverged(f"the run cancelled step {sorted(self._cancelling)[0]}, and nothing in the replay "
                                "cancels it", sorted(self._cancelling)[0])
            self._collect()
        settled = False
        while self._ended:
            self._settle(self._next_ended())
            settled = True
        return settled

    def _collect(self) -> None:
        try:
            while True:
                self._ended.append(self._finished.get(timeout=0.002 if self._calls and not self._ended else 0))
        except queue.Empty:
            pass

    def _next_ended(self) -> Any:
        """Of the ended calls, the one whose step the run recorded first."""
        for held in self._expected:
            for call in self._ended:
                if held.get("kind") == "step" and held.get("step") == call.step.id:
                    self._ended.remove(call)
                    return call
        return self._ended.pop(0)

    def _recorded_step(self, step_id: str) -> Mapping[str, Any] | None:
        return next((r for r in self._expected if r.get("kind") == "step" and r.get("step") == step_id), None)

    def _take_time(self, step_id: str, interrupt: Any, cancelled: bool) -> None:
        """Let the call take the time it took (in the replay's time), or until the process cancels it."""
        held = self._recorded_step(step_id)
        took = self._durations.get(id(held)) if held is not None else None
        if threading.get_ident() == self._runner_thread:  # in place: nothing else runs meanwhile
            if took:
                self.run.clock.sleep(float(took) / 1000)
            return
        me = threading.get_ident()
        self._ends[me] = self.run.clock.now() + timedelta(milliseconds=float(took or 0))
        if cancelled:
            self._cancelling.add(step_id)
        try:
            while cancelled or self.run.clock.now() < self._ends[me]:
                if interrupt is not None and interrupt.is_set():
                    raise CallInterrupted()
                self._tick.wait(0.005)
                self._tick.clear()
        finally:
            self._ends.pop(me, None)
            self._cancelling.discard(step_id)

    def _record(self, record: Mapping[str, Any], envelope: Mapping[str, Any]) -> None:
        """Each record made must be the ledger's record of the same step (and instance, and occurrence): in
        order, except that steps of parallel branches may end in another order than they did."""
        if not self._expected and not self.recorded.finished:
            raise _Unfinished  # the recorded task stopped here (its worker died, or it waits, parked)
        if not self._expected:
            raise _Diverged(f"the replay makes a record the ledger does not hold: {_name(record)}", _step_of(record))
        made = dict(redact(dict(record)))
        index = next((i for i, held in enumerate(self._expected) if _same_place(held, made)), None)
        if index is None:
            held = self._expected[0]
            raise _Diverged(f"{_name(held)} is recorded next; the replay makes {_name(made)}: "
                            f"{_difference(held, made)}", _step_of(held))
        held = self._expected.pop(index)
        if record_hash(made) != record_hash(held):
            raise _Diverged(f"{_name(held)}: {_difference(held, made)}", _step_of(held))
        self._emitted += 1

    def _refused(self) -> tuple[str, str] | None:
        first = next((r for r in self._expected if r.get("kind") == "step"), None)
        if first is not None and first.get("step") in ("confinement", "policy") and first.get("status") == "error":
            return str(first["step"]), str(first.get("reason"))
        return None

    def _call(self, step: Step, plugin: LoadedPlugin, operation: str, payload: Mapping[str, Any],
              data: Mapping[str, Any], interrupt: Any = None) -> dict[str, Any]:
        held = self._recorded_step(step.id)
        if held is not None and held.get("status") == "cancelled":
            self._take_time(step.id, interrupt, cancelled=True)  # the run's process cancelled this call
        rows = self.recorded.calls.get(step.id) or []
        wanted = digest(payload)
        # the result of the call with these inputs (instances and branches may call in another order than
        # they were recorded in); rows from before inputs were recorded: in order
        index = next((i for i, r in enumerate(rows) if r.get("input_digest") in (wanted, None)), None)
        if index is None:
            if not self.recorded.finished:
                raise _Unfinished  # the recorded run stopped during this call
            raise _Diverged(f"step {step.id} calls {plugin.id}.{operation}, and the run recorded no (more) result "
                            "of that step with these inputs", step.id)
        row = rows.pop(index)
        if _redacted(row):
            raise _Diverged(f"step {step.id}: the recorded result of {plugin.id}.{operation} held a secret and was "
                            "stored redacted, so it cannot be fed back as it was", step.id)
        if row.get("plugin") != plugin.id or row.get("operation") != operation:
            raise _Diverged(f"step {step.id} calls {plugin.id}.{operation}, the run recorded "
                            f"{row.get('plugin')}.{row.get('operation')}", step.id)
        self._take_time(step.id, interrupt, cancelled=False)
        if self.checkpoint is None and isinstance(row.get("checkpoint"), dict):
            self.checkpoint = row["checkpoint"]  # the state change's first checkpoint, as the kernel took it
        if "output" in row:
            return dict(row["output"])
        error = row.get("error") or {}
        raise PluginError(str(row.get("reason")), code=error.get("code"), retryable=bool(error.get("retryable")),
                          kind=error.get("kind"), plugin=plugin.id, operation=operation)


def _same_place(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return all(a.get(k) == b.get(k) for k in ("kind", "step", "instance")) and \
        (a.get("kind") != "run" or a.get("status") == b.get("status") or "started" not in (a.get("status"),
                                                                                      b.get("status")))


def _redacted(value: Any) -> bool:
    if isinstance(value, str):
        return "[REDACTED:" in value
    if isinstance(value, dict):
        return any(_redacted(v) for v in value.values())
    if isinstance(value, list):
        return any(_redacted(v) for v in value)
    return False


def _name(record: Mapping[str, Any]) -> str:
    if record.get("kind") == "step":
        return f"step {record.get('step')} ({record.get('step_type')}, {record.get('status')})"
    return f"{record.get('kind')} record ({record.get('status')})"


def _step_of(record: Mapping[str, Any]) -> str | None:
    return str(record["step"]) if record.get("kind") == "step" and record.get("step") else None


def _difference(recorded: Mapping[str, Any], derived: Mapping[str, Any]) -> str:
    """What differs between two records, field by field (one level into objects)."""
    parts = []
    for key in sorted(set(recorded) | set(derived)):
        a, b = recorded.get(key), derived.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            for sub in sorted(set(a) | set(b)):
                if a.get(sub) != b.get(sub):
                    parts.append(f"{key}.{sub} recorded {_short(a.get(sub))}, derived {_short(b.get(sub))}")
        else:
            parts.append(f"{key} recorded {_short(a)}, derived {_short(b)}")
    return "; ".join(parts) or "the records differ"


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 120 else text[:117] + "..."


def _task_line(ws: Workspace, task_file: str, line: int) -> Task:
    """The task as its file holds it: wherever the file went (a done/, failed/, quarantine/ file whose report
    names it, or still in processing/)."""
    candidates = [ws.tasks / "processing" / task_file]
    for folder in FINAL:
        for report in (ws.tasks / folder).glob("*.json"):
            try:
                body = json.loads(report.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(body, dict) and body.get("file") == task_file:
                stem = report.name.rsplit(".", 2)[0]
                candidates.append(ws.tasks / folder / stem)
        candidates.append(ws.tasks / folder / task_file)
    for path in candidates:
        if path.is_file():
            lines = path.read_text(encoding="utf-8-sig").split("\n")
            if 0 < line <= len(lines) and lines[line - 1].strip():
                raw = lines[line - 1].removesuffix("\r")  # read as the queue read it: an old worker's line too
                return TaskAdapter.for_workspace(ws.root).read(json.loads(raw), raw)
    raise EngineError(f"the task file {task_file} is not in the queue's folders any more: nothing to replay from",
                      file=task_file)


def recorded_tasks(ws: Workspace, run_id: str) -> list[tuple[tuple[str, int, str], _Recorded]]:
    """The tasks run ``run_id`` worked on, each with its whole story (from its start, across the runs that
    resumed it) and its calls' results from those runs' outputs files, in ledger order."""
    current: dict[tuple[str, int, str], _Recorded] = {}
    stories: list[tuple[tuple[str, int, str], _Recorded]] = []
    for entry in Ledger(ws.ledger_dir).entries():
        record, envelope = entry.get("record") or {}, entry.get("envelope") or {}
        if record.get("kind") not in ("run", "step") or not isinstance(record.get("task_id"), str):
            continue
        key = (str(record.get("task_file")), int(record.get("line") or 0), str(record["task_id"]))
        story = current.get(key)
        if story is None or (record.get("kind") == "run" and record.get("status") == "started"):
            story = current[key] = _Recorded(started=envelope.get("ts"))  # a new attempt at the task
            stories.append((key, story))
        story.records.append(record)
        story.durations.append(envelope.get("duration_ms"))
        story.hashes.append(str(entry.get("record_hash")))
        story.runs.add(str(envelope.get("run_id")))
    chosen = [(key, story) for key, story in stories if run_id in story.runs]
    for key, story in chosen:
        task_file, line, task_id = key
        for run in sorted(story.runs):
            path = ws.runs_dir / run / "outputs.jsonl"
            for raw in path.read_text(encoding="utf-8").splitlines() if path.is_file() else []:
                try:
                    row = json.loads(raw)
                except ValueError:
                    continue
                if row.get("task_id") == task_id and row.get("task_file", task_file) == task_file and \
                        row.get("line", line) == line:
                    story.calls.setdefault(str(row.get("step")), []).append(row)
    return chosen


def replay_run(ws: Workspace, registry: Registry, run_id: str, task_id: str | None = None) -> list[Replayed]:
    """Replay every task of ``run_id`` (or only ``task_id``); one answer per task, in ledger order."""
    out = []
    models: dict[str, Models | EngineError] = {}  # each pinned model parsed once
    for (task_file, line, tid), recorded in recorded_tasks(ws, run_id):
        if task_id is not None and tid != task_id:
            continue
        out.append(_replay_one(ws, registry, task_file, line, tid, recorded, models))
    return out


def _replay_one(ws: Workspace, registry: Registry, task_file: str, line: int, task_id: str,
                recorded: _Recorded, parsed: dict[str, Models | EngineError]) -> Replayed:
    answer = Replayed(task_id, task_file, line, len(recorded.records), ok=False)
    first = recorded.records[0] if recorded.records else {}
    if first.get("kind") != "run" or first.get("status") != "started":
        answer.difference = "the ledger does not hold this task's start (its story begins elsewhere)"
        return answer
    hashes = first.get("models") or {}
    key = json.dumps(hashes, sort_keys=True)
    if key not in parsed:
        try:
            parsed[key] = load_pinned(ws.models_dir, hashes, registry)
        except EngineError as e:
            parsed[key] = e
    try:
        task = _task_line(ws, task_file, line)
        found = parsed[key]
        if isinstance(found, EngineError):
            raise found
        models = found
    except EngineError as e:
        answer.difference = "cannot replay: " + "; ".join(e.lines())
        return answer
    started = datetime.fromisoformat(recorded.started) if recorded.started else Clock().now()
    with tempfile.TemporaryDirectory(prefix="engine-replay-") as tmp:
        run = RunContext(run_id="replay", workspace=ws.root, models=models, registry=registry,
                         ledger=Ledger(Path(tmp)), clock=ReplayClock(started), log=_quiet(),
                         worker="replay", dispatcher=Dispatcher(WorkerPool(Path(tmp))), whatif=False)
        runner = ReplayRunner(run, task, recorded, task_file=task_file, line=line, models=models)
        try:
            outcome = runner.execute()
            if outcome.status == "parked":  # a replay does not park: it goes on with the clock jumped
                outcome = Outcome("failed", "parked")
            runner.record_outcome(outcome)
            if runner._expected:
                raise _Diverged(f"the ledger holds {len(runner._expected)} more record(s) than the replay makes, "
                                f"from {_name(runner._expected[0])}", _step_of(runner._expected[0]))
        except _Unfinished:
            answer.unfinished = True
        except _Diverged as e:
            answer.difference, answer.step = str(e), e.step
            return answer
        except ResumeDiverged as e:
            answer.difference = str(e)
            return answer
    answer.ok = True
    return answer


def _quiet() -> Any:
    import structlog

    return structlog.get_logger("engine.replay")


def replay_lines(results: Iterable[Replayed]) -> list[str]:
    lines = []
    for r in results:
        where = f"{r.task_file}:{r.line} task {r.task_id}"
        state = " (unfinished: what it recorded so far)" if r.unfinished else ""
        lines.append(f"ok       {where} ({r.records} records){state}" if r.ok else f"DIVERGES {where}: {r.difference}")
    return lines


__all__ = ["Replayed", "ReplayRunner", "recorded_tasks", "replay_lines", "replay_run"]
