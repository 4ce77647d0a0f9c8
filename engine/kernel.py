"""The kernel: claim a task file, run each task through the process, finish the file, audit every move.

A file whose lines do not all parse as task.v1 goes to ``failed/`` without running anything, with an
``.error.json`` naming every bad line. Otherwise its tasks run in line order; the first task that does
not end ``done`` stops the file, which then goes to ``failed/`` or ``quarantine/`` with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from engine.audit.legacy_ledger import dual_writer
from engine.canary import CanaryRouter, StopFile
from engine.clock import Clock
from engine.errors import EngineError, LedgerBroken, PluginLoadError, PolicyDenied, Problem
from engine.heartbeat import Heartbeat
from engine.ledger import Ledger
from engine.plugins.dispatch import Dispatcher
from engine.plugins.loader import Registry
from engine.plugins.pool import WorkerPool
from engine.policy import PolicyEngine
from engine.process import Models, Outcome, RunContext, TaskRunner, load_models
from engine.process.pinned import load_pinned, pin
from engine.process.state import StateError, StateJournal
from engine.queue import Claim, TaskQueue
from engine.safety.breaker import BREAKERS_FILE, Breakers, Thresholds
from engine.safety.journal import Journal
from engine.safety.recovery import recover
from engine.telemetry import Telemetry
from engine.workspace import Workspace

ROLLBACK_DECISION = "rollback_trigger"  # asked for an apply a killed kernel left half done

Listener = Callable[[dict[str, Any]], None]  # takes each run event (docs/cli-json.md lists them)


@dataclass
class RunSummary:
    run_id: str
    files: dict[str, list[str]] = field(default_factory=lambda: {"done": [], "failed": [], "quarantine": [],
                                                                 "parked": []})
    tasks: dict[str, int] = field(default_factory=lambda: {"done": 0, "failed": 0, "quarantine": 0})
    interrupted: bool = False
    stopped_by: str | None = None  # what stopped the run when no signal did (a STOP.HEADLESS file)

    @property
    def ok(self) -> bool:
        return not self.files["failed"] and not self.files["quarantine"]


def load_registry(ws: Workspace) -> Registry:
    registry = Registry.discover(ws.plugin_sources())
    if registry.errors:
        problems: list[Problem] = [p for e in registry.errors for p in (e.problems or [Problem(e.message)])]
        raise PluginLoadError(f"{len(registry.errors)} plugin(s) failed to load", problems=problems)
    return registry


class Kernel:
    def __init__(self, ws: Workspace, *, clock: Clock | None = None, registry: Registry | None = None,
                 models: Models | None = None, telemetry: Telemetry | None = None) -> None:
        self.ws = ws
        self.clock = clock or Clock()
        self.worker = f"{socket.gethostname()}-{os.getpid()}"
        self.log = structlog.get_logger("engine").bind(worker=self.worker)
        # Bad settings, a bad plugin or a bad model are refused here, before any task is claimed.
        self.config = ws.config()
        self.performance = ws.performance()
        self.registry = registry or load_registry(ws)
        self.models = models or load_models(ws.bpmn, ws.dmn, self.registry)
        self.queue = TaskQueue(ws.tasks, worker=self.worker)
        self.ledger = Ledger(ws.ledger_dir, segment_bytes=self.config.ledger.segment_mb << 20)
        if telemetry is None:
            console = ws.log_file.open("a", encoding="utf-8") if self.config.telemetry.export == "console" else None
            telemetry = Telemetry.from_config(self.config.telemetry, console_file=console,
                                              otlp_timeout_sec=self.config.telemetry.otlp_timeout_sec)
        self.telemetry = telemetry
        self.policy = PolicyEngine.from_settings(ws.policies, self.config.policy)
        self.journal = Journal(ws.state_dir / "applies")
        policy = self.performance.breaker
        self.breakers = Breakers(ws.state_dir / BREAKERS_FILE, self.clock,
                                 Thresholds(policy.failures, policy.window_sec, policy.cooldown_sec))
        self.dispatcher = Dispatcher(self._new_pool(), performance=self.performance,
                                     spans=self.telemetry.export_remote)
        self._last_reason: str | None = None  # why the file just finished went where it went
        self.beat = Heartbeat(ws.state_dir, self.worker)
        self._listener: Listener | None = None
        self._at_start: set[str] = set()  # the task files waiting when the run started
        self.dual = dual_writer(ws.root, self.config, self.models)  # [ledger] dual_write: the old worker's lines
        self.canary: float | None = None  # `engine run --canary PERCENT`: the share of task files run here

    def _rollback_decision(self, inputs: dict[str, Any]) -> str:
        return str(self.models.decisions.evaluate(ROLLBACK_DECISION, inputs).value)

    def _new_pool(self) -> WorkerPool:
        return WorkerPool(self.ws.root, clock=self.clock, kill_grace=self.config.plugins.kill_grace_sec,
                          stop_grace=self.config.plugins.stop_grace_sec)

    @property
    def pool(self) -> WorkerPool:
        return self.dispatcher.pool

    def check_run_start(self) -> None:
        """The ledger must verify and the policies must allow the run: else ``PolicyDenied``, before any
        claim."""
        try:
            self.ledger.verify()
            ledger: dict[str, Any] = {"verified": True, "reason": None}
        except LedgerBroken as e:
            ledger = {"verified": False, "reason": e.message}
        result = self.policy.check({"phase": "run_start", "ledger": ledger})
        if not result.allowed:
            raise PolicyDenied("the policies deny this run: " + "; ".join(result.messages()), problems=[
                Problem(d.message, file=f"policies ({d.policy})", element=d.rule) for d in result.denials])

    def close(self) -> None:
        """Stop the plugin workers and flush the traces; the kernel can run again afterwards."""
        self.dispatcher.pool.close()
        self.dispatcher.pool = self._new_pool()
        self.telemetry.flush()

    def run(self, *, drain: bool, stop: Callable[[], bool] = lambda: False, poll_sec: float = 1.0,
            on_event: Listener | None = None, canary: float | None = None) -> RunSummary:
        """Process task files until the inbox is empty (``drain``) or ``stop()`` says so (or a
        ``.tasks/STOP.HEADLESS`` file exists). ``on_event`` gets each event of the run as it happens (a file
        claimed, a task started, a step, a timer waited on, a task or file finished), in the run's thread.
        ``canary``: run only that percentage of the task files, leave the others to the old worker
        (``engine.canary``)."""
        self.check_run_start()
        self._listener = on_event
        self.canary = canary
        halt = StopFile(self.ws.tasks, stop)
        try:
            with self.telemetry.span("engine run", **{"engine.drain": drain}):
                summary = self._run(drain=drain, stop=halt, poll_sec=poll_sec)
                summary.stopped_by = halt.path.name if halt.seen and not stop() else None
                return summary
        finally:
            self.beat.stop()  # a worker that stops cleanly leaves no heartbeat
            self._listener = None
            self.close()

    def _emit(self, body: dict[str, Any]) -> None:
        """One run event: into the heartbeat's picture, and to the listener with its time."""
        self.beat.note(body)
        if self._listener is not None:  # the time is read only for a listener: a test's clock stays put
            self._listener({"event": body["event"], "ts": self.clock.now().isoformat(), **body})

    def _event(self, kind: str, **fields: Any) -> None:
        self._emit({"event": kind, **fields})

    def _run(self, *, drain: bool, stop: Callable[[], bool], poll_sec: float) -> RunSummary:
        run_id = self.clock.new_id("run-")
        run_dir = self.ws.runs_dir / run_id
        run_dir.mkdir(parents=True, exist_ok=True)
        ctx = RunContext(run_id=run_id, workspace=self.ws.root, models=self.models, registry=self.registry,
                         ledger=self.ledger, clock=self.clock, log=self.log.bind(run_id=run_id),
                         worker=self.worker, dispatcher=self.dispatcher, telemetry=self.telemetry,
                         outputs_file=run_dir / "outputs.jsonl", repo_roots=tuple(self.config.repos.roots),
                         journal=self.journal, breakers=self.breakers, policy=self.policy,
                         park_after=self.config.queue.park_after_sec, on_event=self._emit)
        summary = RunSummary(run_id)
        self.queue.ensure()
        pin(self.models, self.ws.models_dir)  # before any claim: every entry of the run names models kept
        self._write_run(run_dir, summary, "running")
        self.beat.start(run_id)
        router = None if self.canary is None else CanaryRouter(  # before any claim, and before each one
            self.canary, self.ws.root / self.config.legacy.old_inbox, lambda r: self.ledger.append(r, ctx.envelope()))
        if router is not None:
            router.route(self.queue.inbox_files())
            self.queue.admit = router.admit  # and each file again as it is claimed: one that came since is routed
        waiting = self.queue.pending()
        self._at_start = {p.name for p in waiting}
        self._event("run_started", run_id=run_id, worker=self.worker, files_waiting=len(waiting),
                    tasks_waiting=sum(_lines(p) for p in waiting))
        ctx.log.info("run_started", bpmn=str(self.models.bpmn_path), dmn=str(self.models.dmn_path),
                     models=self.models.hashes, drain=drain)
        # A state change a killed kernel left half done is settled before any new work is taken.
        for settled in recover(self.journal, self.queue, self.ledger, self._rollback_decision, ctx.envelope, ctx.log):
            if settled["status"] == "quarantined":
                summary.files["quarantine"].append(str(settled["task_file"]))
                self._event("file_finished", file=str(settled["task_file"]), status="quarantine",
                            reason=settled.get("reason"))
        while not stop():
            if router is not None:
                router.route(self.queue.inbox_files())
            claim = self.queue.claim_next(now=self.clock.now())
            if claim is None:
                parked = self.queue.parked()
                if drain and not parked:
                    break
                wait = poll_sec
                if parked:  # a parked task is part of the work: wake for it (a drain waits for it too)
                    due = (datetime.fromisoformat(str(parked[0]["wake"])) - self.clock.now()).total_seconds()
                    wait = max(0.05, min(poll_sec if not drain else due, due))
                self._sleep(wait, stop)
                continue
            dest = self._work(ctx, claim, summary, stop)
            if dest is None:
                summary.interrupted = True
                break
            summary.files[dest].append(claim.name)
            self._event("file_finished", file=claim.name, status=dest, reason=self._last_reason)
        summary.interrupted = summary.interrupted or stop()
        self._write_run(run_dir, summary, "interrupted" if summary.interrupted else "finished")
        ctx.log.info("run_finished", files={k: len(v) for k, v in summary.files.items()}, tasks=summary.tasks)
        return summary

    def whatif(self, *, stop: Callable[[], bool] = lambda: False,
               on_plan: Callable[[dict[str, Any]], None] | None = None,
               files: list[Path] | None = None) -> RunSummary:
        """Run every task waiting in the inbox (or of ``files``) with plans only: nothing is claimed or moved, no
        repository changes, no tool is started; steps and plans go to ``.engine/whatif/<run-id>/``, not the
        ledger."""
        try:
            with self.telemetry.span("engine run --whatif"):
                return self._whatif(stop, on_plan, files)
        finally:
            self.close()

    def _whatif(self, stop: Callable[[], bool], on_plan: Callable[[dict[str, Any]], None] | None,
                files: list[Path] | None = None) -> RunSummary:
        run_id = self.clock.new_id("whatif-")
        folder = self.ws.engine_dir / "whatif" / run_id
        folder.mkdir(parents=True, exist_ok=True)
        record = Ledger(folder)
        ctx = RunContext(run_id=run_id, workspace=self.ws.root, models=self.models, registry=self.registry,
                         ledger=record, clock=self.clock, log=self.log.bind(run_id=run_id, whatif=True),
                         worker=self.worker, dispatcher=self.dispatcher, telemetry=self.telemetry,
                         outputs_file=folder / "plans.jsonl", repo_roots=tuple(self.config.repos.roots),
                         whatif=True, on_plan=on_plan, policy=self.policy)
        summary = RunSummary(run_id)
        for path in self.queue.inbox_files() if files is None else files:
            label = f"{self.ws.tasks.name}/inbox/{path.name}" if files is None else str(path)
            parsed = self.queue.parse_file(path, label)
            dest = "failed" if parsed.problems else "done"
            for item in parsed.tasks if not parsed.problems else []:
                if stop():
                    summary.interrupted = True
                    break
                runner = TaskRunner(ctx, item.task, task_file=path.name, line=item.line, stop=stop)
                outcome = runner.execute()
                runner.record_outcome(outcome)
                summary.tasks[outcome.status] = summary.tasks.get(outcome.status, 0) + 1
                if outcome.status != "done":
                    dest = outcome.status if outcome.status in summary.files else "failed"
                    break
            if summary.interrupted:
                break
            summary.files[dest].append(path.name)
        shutil.rmtree(ctx.worktrees, ignore_errors=True)  # the throwaway clones plans were made in
        body = {"run_id": run_id, "whatif": True, "files": summary.files, "tasks": summary.tasks,
                "models": self.models.hashes}
        (folder / "run.json").write_text(json.dumps(body, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        return summary

    def _sleep(self, seconds: float, stop: Callable[[], bool]) -> None:
        deadline = self.clock.monotonic() + seconds
        while self.clock.monotonic() < deadline and not stop():
            self.clock.sleep(min(0.1, seconds))

    def _queue_entry(self, ctx: RunContext, claim: Claim, transition: str, status: str, **extra: Any) -> None:
        record = {"kind": "queue", "task_file": claim.name, "transition": transition, "status": status, **extra}
        self.ledger.append(record, ctx.envelope())

    def _work(self, ctx: RunContext, claim: Claim, summary: RunSummary, stop: Callable[[], bool]) -> str | None:
        """One claimed file. Its ledger entries are group commits: each one written and fsync'd before the
        queue transition it leads to (a task's outcome noted, the file moved or released)."""
        self._last_reason = None
        with self.ledger.group():
            return self._work_file(ctx, claim, summary, stop)

    def _work_file(self, ctx: RunContext, claim: Claim, summary: RunSummary,
                   stop: Callable[[], bool]) -> str | None:
        log = ctx.log.bind(task_file=claim.name)
        if self._poisoned(claim):
            return self._quarantine_poison(ctx, claim, log)
        if claim.unparked:
            self.queue.unpark(claim)
            self._queue_entry(ctx, claim, "processing->processing", "resumed", detail={
                "lines_already_done": sorted(claim.done_lines)})
            log.info("file_unparked", lines_done=sorted(claim.done_lines))
        elif claim.recovered:
            self._queue_entry(ctx, claim, "processing->processing", "recovered", detail={
                "lines_already_done": sorted(claim.done_lines)})
            log.warning("file_recovered", lines_done=sorted(claim.done_lines))
        else:
            self._queue_entry(ctx, claim, "inbox->processing", "claimed")
        self.ledger.commit()  # the claim is on disk whatever its tasks do: a worker dying in one leaves a trace
        read = claim.path.read_bytes()  # what the file held when its tasks were read: a change later is seen
        parsed = self.queue.parse(claim)
        if parsed.problems:
            invalid: dict[str, Any] = {
                "file": claim.name, "status": "failed",
                "reason": "the file holds invalid task lines; no task of it was run",
                "problems": [p.as_dict() for p in parsed.problems]}
            self._queue_entry(ctx, claim, "processing->failed", "failed", reason=invalid["reason"],
                              detail={"lines": sorted({p.line for p in parsed.problems if p.line})})
            self.ledger.commit()
            self.queue.finish(claim, "failed", invalid)
            if self.dual is not None:  # the old worker's ledger: one line (exit 999) per bad line
                self.dual.invalid(self.clock.now().isoformat(), read, [p.line for p in parsed.problems], claim.name)
            log.warning("file_invalid", problems=[str(p) for p in parsed.problems])
            first = parsed.problems[0]
            self._last_reason = f"{invalid['reason']}: {first}" + (
                f" (and {len(parsed.problems) - 1} more)" if len(parsed.problems) > 1 else "")
            return "failed"
        self._event("file_claimed", file=claim.name, tasks=len(parsed.tasks), already_done=len(claim.done_lines),
                    resumed=claim.recovered or claim.unparked, queued_after_start=claim.name not in self._at_start)

        results: list[dict[str, Any]] = []
        dest = "done"
        for item in parsed.tasks:
            previous = claim.done_lines.get(item.line)
            if previous is not None:
                results.append(previous)
                if previous["status"] != "done":
                    dest = previous["status"]
                    break
                continue
            if stop():
                self.ledger.commit()
                self.queue.release(claim)  # the file stays in processing/ and resumes on the next start
                return None
            journal = StateJournal(self.queue.state_path(claim.name, item.line))
            self._event("task_started", file=claim.name, line=item.line, task_id=item.task.id, tool=item.task.tool)
            try:
                outcome, runner = self._run_task(ctx, claim, item, journal, stop, log)
            except Exception as e:  # a bug must cost its task, not the queue: no file may crash every restart
                log.exception("task_crashed", task_id=item.task.id)
                outcome = Outcome("failed", f"internal error while running the task: {type(e).__name__}: {e} "
                                  "(the traceback is in .engine/logs/engine.jsonl)")
                runner = TaskRunner(ctx, item.task, task_file=claim.name, line=item.line, stop=stop)
            finally:
                journal.close()
            if outcome.status == "interrupted":
                self.ledger.commit()
                self.queue.release(claim)
                return None
            if outcome.status == "parked" and outcome.wake is not None:
                self._queue_entry(ctx, claim, "processing->processing", "parked", detail={
                    "line": item.line, "task_id": item.task.id, "wake": outcome.wake.isoformat()})
                self.ledger.commit()  # what the task did so far is on disk before the file is given back
                self.queue.park(claim, item.line, item.task.id, outcome.wake)
                log.info("task_parked", task_id=item.task.id, wake=outcome.wake.isoformat())
                self._last_reason = f"line {item.line} (task {item.task.id}) waits on a timer until " \
                                    f"{outcome.wake.isoformat()}"
                return "parked"
            runner.record_outcome(outcome)
            entry = {"task_id": item.task.id, **outcome.as_dict()}
            self.ledger.commit()  # the task's steps and outcome are on disk before the queue notes it
            self.queue.record(claim, item.line, entry)
            if self.dual is not None:  # the old worker's ledger: one line per attempt
                self.dual.task(self.clock.now().isoformat(), ctx.outputs_file, claim.name, item.line, item.task,
                               outcome.status, outcome.reason)
            journal.remove()
            results.append({"line": item.line, **entry})
            summary.tasks[outcome.status] = summary.tasks.get(outcome.status, 0) + 1
            self._event("task_finished", file=claim.name, line=item.line, task_id=item.task.id,
                        status=outcome.status, reason=outcome.reason, steps=outcome.steps)
            log.info("task_finished", task_id=item.task.id, status=outcome.status, reason=outcome.reason)
            if outcome.status != "done":
                dest = outcome.status
                break
        finished = {r["line"] for r in results}
        not_run = [t.line for t in parsed.tasks if t.line not in finished]
        report: dict[str, Any] = {"file": claim.name, "status": dest, "run_id": ctx.run_id, "tasks": results}
        changed = claim.path.read_bytes() != read
        if dest == "done" and changed:  # lines written after the claim would be dropped without a word
            dest = report["status"] = "failed"
            report["reason"] = ("the file was changed after it was claimed (its tasks were read when it was "
                                "claimed; what was written later was not run): write a task file under another "
                                "name and rename it into inbox/ when it is complete, or move this one back to "
                                "inbox/ to run it whole")
            report["not_run_lines"] = []
        elif dest != "done":
            failed = results[-1]
            tool = next((f", tool '{t.task.tool}'" for t in parsed.tasks if t.line == failed["line"]), "")
            report["reason"] = f"line {failed['line']} (task {failed['task_id']}{tool}): {failed.get('reason')}"
            report["not_run_lines"] = not_run
        self._queue_entry(ctx, claim, f"processing->{dest}", dest,
                          **({"reason": report["reason"]} if "reason" in report else {}))
        self.ledger.commit()
        self.queue.finish(claim, dest, report)
        self._last_reason = report.get("reason")
        return dest

    def _run_task(self, ctx: RunContext, claim: Claim, item: Any, journal: StateJournal,
                  stop: Callable[[], bool], log: Any) -> tuple[Outcome, TaskRunner]:
        """Run one task, or resume it from its state journal when an earlier claim got it under way."""
        try:
            lines = journal.lines()
        except StateError as e:
            runner = TaskRunner(ctx, item.task, task_file=claim.name, line=item.line, stop=stop)
            return Outcome("quarantine", f"cannot resume: {e}"), runner
        if not lines:
            journal.remove()  # a journal whose first line never became durable: the task starts afresh
            runner = TaskRunner(ctx, item.task, task_file=claim.name, line=item.line, stop=stop, journal=journal)
            return runner.execute(), runner
        hashes = lines[0].get("models") or {}
        models = self.models
        if hashes != self.models.hashes:
            try:  # the task goes on on the models it started with, never on edited ones
                models = load_pinned(self.ws.models_dir, hashes, self.registry)
            except EngineError as e:
                self._journal_to_ledger(claim.name, item.line, item.task.id, lines)
                runner = TaskRunner(ctx, item.task, task_file=claim.name, line=item.line, stop=stop)
                return Outcome("quarantine", "cannot resume on the models it started with: " + "; ".join(e.lines())
                               ), runner
        runner = TaskRunner(ctx, item.task, task_file=claim.name, line=item.line, stop=stop, journal=journal,
                            models=models)
        log.info("task_resuming", task_id=item.task.id, line=item.line, durable_points=len(lines))
        return runner.resume(lines, self._committed(claim.name, item.line, item.task.id)), runner

    def _journal_to_ledger(self, name: str, line: int, task_id: str, lines: list[dict[str, Any]]) -> None:
        """What a task that will not go on did before, from its state journal into the ledger, once."""
        journaled = [pair for each in lines for pair in each.get("records", [])]
        held = self._committed(name, line, task_id)
        for record, envelope in journaled[len(held):]:
            self.ledger.append(record, envelope)

    def _committed(self, name: str, line: int, task_id: str) -> list[str]:
        """The record hashes of a task's records the ledger holds since its file was last claimed from the
        inbox, in order."""
        held: list[str] = []
        for entry in self.ledger.entries():
            record = entry.get("record") or {}
            if record.get("task_file") != name:
                continue
            if record.get("kind") == "queue" and record.get("transition") == "inbox->processing":
                held = []
            elif record.get("kind") in ("run", "step") and record.get("line") == line and \
                    record.get("task_id") == task_id:
                held.append(str(entry.get("record_hash")))
        return held

    def _poisoned(self, claim: Claim) -> bool:
        """Whether the workers of ``claim``'s earlier claims died ``[queue] max_claims`` times."""
        return claim.crashes >= self.config.queue.max_claims

    def _quarantine_poison(self, ctx: RunContext, claim: Claim, log: Any) -> str:
        """Move a file that killed its worker on every claim to quarantine/, without running it again."""
        crashes, in_flight = claim.crashes, self.queue.in_flight(claim)
        died = "once without finishing: its worker died" if crashes == 1 else \
            f"{crashes} times without finishing: its worker died each time"
        where = ""
        if in_flight is not None:
            task = f" (task {in_flight['task_id']})" if "task_id" in in_flight else ""
            where = f", the last time while running line {in_flight['line']}{task}"
        reason = (f"claimed {died} (a task that crashes the engine?){where}; quarantined so the queue can "
                  "move on. Once the cause is fixed, move the file back into inbox/ to run it again")
        if in_flight is not None and "task_id" in in_flight:  # what it did before it died: into the ledger, once
            try:
                lines = StateJournal(self.queue.state_path(claim.name, in_flight["line"])).lines()
            except StateError:
                lines = []
            self._journal_to_ledger(claim.name, in_flight["line"], in_flight["task_id"], lines)
        report: dict[str, Any] = {
            "file": claim.name, "status": "quarantine", "run_id": ctx.run_id, "reason": reason,
            "in_flight": in_flight, "tasks": [claim.done_lines[n] for n in sorted(claim.done_lines)]}
        self._queue_entry(ctx, claim, "processing->quarantine", "quarantine", reason=reason, detail={
            "crashes": crashes, "in_flight_line": in_flight["line"] if in_flight else None,
            "lines_already_done": sorted(claim.done_lines)})
        self.ledger.commit()
        self.queue.finish(claim, "quarantine", report)
        log.error("file_quarantined_poison", crashes=crashes, in_flight=in_flight)
        self._last_reason = reason
        return "quarantine"

    def _write_run(self, run_dir: Path, summary: RunSummary, state: str) -> None:
        body = {"run_id": summary.run_id, "state": state, "worker": self.worker, "models": {
            "bpmn": {"path": str(self.models.bpmn_path), "sha256": self.models.bpmn_hash},
            "dmn": {"path": str(self.models.dmn_path), "sha256": self.models.dmn_hash}},
            "plugins": {p.id: {"version": p.version, "digest": p.digest} for p in self.registry.plugins.values()},
            "files": summary.files, "tasks": summary.tasks}
        (run_dir / "run.json").write_text(json.dumps(body, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _lines(path: Path) -> int:
    """How many task lines a waiting file holds (its non-blank lines), for the run's progress."""
    try:
        return sum(1 for line in path.read_bytes().splitlines() if line.strip())
    except OSError:
        return 0
