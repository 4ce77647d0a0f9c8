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
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from engine.clock import Clock
from engine.contracts import Task
from engine.errors import EngineError, PluginError
from engine.ledger import Ledger
from engine.plugins.dispatch import Dispatcher
from engine.plugins.loader import LoadedPlugin, Registry
from engine.plugins.pool import WorkerPool
from engine.process.models import Models
from engine.process.pinned import load_pinned
from engine.process.runtime import Outcome, ResumeDiverged, RunContext, TaskRunner, record_hash
from engine.process.steps import Step
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

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class _Recorded:
    """A task's records (ledger order) and its plugin calls' results (outputs order), per step."""

    records: list[dict[str, Any]] = field(default_factory=list)
    hashes: list[str] = field(default_factory=list)
    started: str | None = None  # when the task started (its first record's envelope)
    calls: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


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

    def _record(self, record: Mapping[str, Any], envelope: Mapping[str, Any]) -> None:
        if not self._expected:
            raise _Diverged(f"the replay makes a record the ledger does not hold: {_name(record)}", _step_of(record))
        held = self._expected.pop(0)
        made = dict(redact(dict(record)))
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
        queue = self.recorded.calls.get(step.id) or []
        if not queue:
            raise _Diverged(f"step {step.id} calls {plugin.id}.{operation}, and the run recorded no (more) result "
                            "of that step", step.id)
        row = queue.pop(0)
        if row.get("plugin") != plugin.id or row.get("operation") != operation:
            raise _Diverged(f"step {step.id} calls {plugin.id}.{operation}, the run recorded "
                            f"{row.get('plugin')}.{row.get('operation')}", step.id)
        if self.checkpoint is None and isinstance(row.get("checkpoint"), dict):
            self.checkpoint = row["checkpoint"]  # the state change's first checkpoint, as the kernel took it
        if "output" in row:
            return dict(row["output"])
        error = row.get("error") or {}
        raise PluginError(str(row.get("reason")), code=error.get("code"), retryable=bool(error.get("retryable")),
                          kind=error.get("kind"), plugin=plugin.id, operation=operation)


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
                return Task.from_json(json.loads(lines[line - 1]))
    raise EngineError(f"the task file {task_file} is not in the queue's folders any more: nothing to replay from",
                      file=task_file)


def recorded_tasks(ws: Workspace, run_id: str) -> dict[tuple[str, int, str], _Recorded]:
    """The tasks run ``run_id`` worked on, each with its whole story (from its file's claim out of the
    inbox, across the runs that resumed it) and its calls' results from the runs' outputs files."""
    stories: dict[tuple[str, int, str], _Recorded] = {}
    in_run: set[tuple[str, int, str]] = set()
    for entry in Ledger(ws.ledger_dir).entries():
        record, envelope = entry.get("record") or {}, entry.get("envelope") or {}
        name = record.get("task_file")
        if record.get("kind") == "queue" and record.get("transition") == "inbox->processing":
            for key in [k for k in stories if k[0] == name and k not in in_run]:
                del stories[key]  # an earlier story of a file of the same name
            continue
        if record.get("kind") not in ("run", "step") or not isinstance(record.get("task_id"), str):
            continue
        key = (str(name), int(record.get("line") or 0), str(record["task_id"]))
        if record.get("kind") == "run" and record.get("status") == "started" and key in stories and \
                key not in in_run:
            del stories[key]
        story = stories.setdefault(key, _Recorded())
        if not story.records:
            story.started = envelope.get("ts")
        story.records.append(record)
        story.hashes.append(str(entry.get("record_hash")))
        if envelope.get("run_id") == run_id:
            in_run.add(key)
    chosen = {k: v for k, v in stories.items() if k in in_run}
    for path in sorted(ws.runs_dir.glob("*/outputs.jsonl")):
        for raw in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(raw)
            except ValueError:
                continue
            for (task_file, line, task_id), story in chosen.items():
                if row.get("task_id") == task_id and row.get("task_file", task_file) == task_file and \
                        row.get("line", line) == line:
                    story.calls.setdefault(str(row.get("step")), []).append(row)
    return chosen


def replay_run(ws: Workspace, registry: Registry, run_id: str, task_id: str | None = None) -> list[Replayed]:
    """Replay every task of ``run_id`` (or only ``task_id``); one answer per task, in ledger order."""
    out = []
    for (task_file, line, tid), recorded in recorded_tasks(ws, run_id).items():
        if task_id is not None and tid != task_id:
            continue
        out.append(_replay_one(ws, registry, task_file, line, tid, recorded))
    return out


def _replay_one(ws: Workspace, registry: Registry, task_file: str, line: int, task_id: str,
                recorded: _Recorded) -> Replayed:
    answer = Replayed(task_id, task_file, line, len(recorded.records), ok=False)
    first = recorded.records[0] if recorded.records else {}
    if first.get("kind") != "run" or first.get("status") != "started":
        answer.difference = "the ledger does not hold this task's start (its story begins elsewhere)"
        return answer
    try:
        task = _task_line(ws, task_file, line)
        models = load_pinned(ws.models_dir, first.get("models") or {}, registry)
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
        lines.append(f"ok       {where} ({r.records} records)" if r.ok else f"DIVERGES {where}: {r.difference}")
    return lines


__all__ = ["Replayed", "ReplayRunner", "recorded_tasks", "replay_lines", "replay_run"]
