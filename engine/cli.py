"""The ``engine`` command: the only place that prints or exits, and the one error boundary.

Exit codes: ``engine.errors.ExitCode``, each explained in ``EXIT_CODES`` (which ``engine --help`` prints).
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import signal
import socket
import sys
import tempfile
import traceback
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TextIO

import click
from rich.console import Console

from engine import __version__
from engine.errors import EngineError, ExitCode, ModelError, Problem, UsageError, WorkspaceError
from engine.redact import redact

if TYPE_CHECKING:
    from engine.workspace import Workspace

# Each command imports what it needs: `engine --help` and `engine status` start in well under 150 ms
# (the kernel, SpiffWorkflow, jsonschema, pydantic, OpenTelemetry and structlog are imported by the
# commands that use them).

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
_log_handle: TextIO | None = None
_log_path: Path | None = None


def _configure_logging(ws: Workspace | None) -> None:
    """structlog JSON lines to the workspace's log file; nothing on the terminal."""
    import structlog

    from engine.redact import structlog_processor as redact_event

    global _log_handle, _log_path
    if ws is not None and ws.engine_dir.is_dir():
        ws.log_file.parent.mkdir(parents=True, exist_ok=True)
        _log_handle = ws.log_file.open("a", encoding="utf-8")
        _log_path = ws.log_file
        factory: Any = structlog.WriteLoggerFactory(file=_log_handle)
    else:
        factory = structlog.ReturnLoggerFactory()
    structlog.configure(
        processors=[structlog.processors.add_log_level, structlog.processors.TimeStamper(fmt="iso", utc=True),
                    _trace_ids, structlog.processors.format_exc_info,
                    redact_event, structlog.processors.JSONRenderer(sort_keys=True)],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=factory, cache_logger_on_first_use=False)


def _trace_ids(logger: Any, method_name: str, event_dict: Any) -> Any:
    """The current span's ids on each event; a command that never imported OpenTelemetry has no spans."""
    telemetry = sys.modules.get("engine.telemetry")
    if telemetry is None:
        return event_dict
    return telemetry.Telemetry.structlog_processor(logger, method_name, event_dict)


def _workspace(ctx: click.Context, required: bool = True, *, log: bool = True) -> Workspace:
    """The workspace the command works on; ``log``: its events go to the workspace's log file (a command
    that logs nothing skips structlog's import)."""
    from engine.workspace import Workspace

    explicit: Path | None = ctx.obj.get("workspace")
    if required:
        ws = Workspace.find(explicit)
    else:
        try:
            ws = Workspace.find(explicit)
        except EngineError:
            ws = Workspace((explicit or Path.cwd()).resolve())
    if log:
        _configure_logging(ws)
    return ws


EXIT_CODES = {
    ExitCode.OK: "success",
    ExitCode.TASKS_FAILED: "the run finished, but a task file went to failed/ or quarantine/",
    ExitCode.USAGE: "bad command line",
    ExitCode.MODEL_INVALID: "a model is invalid (nothing was claimed)",
    ExitCode.LEDGER_BROKEN: "the ledger does not verify, or a replay differs from it",
    ExitCode.WORKSPACE: "no workspace here (run `engine init`), or it cannot be used",
    ExitCode.PLUGIN_INVALID: "a plugin failed to load or was refused",
    ExitCode.DECISION_FAILED: "a decision could not be evaluated",
    ExitCode.POLICY_DENIED: "the policies deny the run",
    ExitCode.INTERRUPTED: "`engine run` was stopped by a signal with work left",
    ExitCode.INTERNAL: "unexpected internal error (traceback in .engine/logs/engine.jsonl)",
    ExitCode.ABORTED: "stopped at once (a second signal during a run, or Ctrl-C)",
}


@click.group(context_settings={"help_option_names": ["-h", "--help"]},
             epilog="\b\nExit codes:\n" + "\n".join(f"  {int(c):>3}  {text}" for c, text in EXIT_CODES.items())
             + "\n\nEvery command takes --json: one JSON document on stdout, errors included (docs/cli-json.md).")
@click.option("--workspace", "-w", type=click.Path(file_okay=False, path_type=Path), envvar="ENGINE_WORKSPACE",
              help="Workspace directory (default: $ENGINE_WORKSPACE, else the current directory).")
@click.version_option(__version__, prog_name="engine")
@click.pass_context
def cli(ctx: click.Context, workspace: Path | None) -> None:
    """Run tasks from a JSONL queue through a BPMN process and DMN decisions, with plugins."""
    ctx.ensure_object(dict)
    ctx.obj["workspace"] = workspace


@cli.command()
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--example", is_flag=True, help="Also make a small git repository and example task files.")
@click.option("--json", "as_json", is_flag=True,
              help='Print {"workspace": ..., "created": [...], "repaired": [...], "example": ...}.')
@click.pass_context
def init(ctx: click.Context, directory: Path | None, example: bool, as_json: bool) -> int:
    """Make a workspace in DIRECTORY (default: the workspace option, else the current directory), or complete
    one: idempotent (run again, it creates nothing; existing files are kept, example tasks already given are
    not given again); a half-made example repository left by a killed init is repaired."""
    from engine.workspace import init as init_workspace

    root = directory or ctx.obj.get("workspace") or Path.cwd()
    done = init_workspace(root, example=example)
    ws, made, repaired = done.workspace, done.created, done.repaired
    _configure_logging(ws)
    import structlog

    structlog.get_logger("engine").info("workspace_initialised", root=str(ws.root), made=made, repaired=repaired)
    if as_json:
        out.print_json(json.dumps({"workspace": str(ws.root), "created": made, "repaired": repaired,
                                   "example": example}))
        return ExitCode.OK
    for item in made:
        out.print(f"  created {item}", markup=False)
    for item in repaired:
        out.print(f"  repaired {item}", markup=False)
    out.print(f"workspace ready: {ws.root}", markup=False)
    if example:
        out.print(f"next: cd {ws.root} && engine run --drain")
    return ExitCode.OK


@cli.command()
@click.option("--drain", is_flag=True, help="Process everything in the inbox, then exit.")
@click.option("--poll", "poll_sec", type=click.FloatRange(min=0.05), default=1.0, show_default=True,
              help="Seconds between inbox checks when not draining.")
@click.option("--whatif", is_flag=True,
              help="Plan only: run the inbox's tasks with every change planned, none made; nothing is claimed.")
@click.option("--canary", "canary", type=click.FloatRange(min=0, max=100), metavar="PERCENT",
              help="Run only this share of the task files (a stable hash of the first task's id); move the others "
                   "to [legacy] old_inbox for the old worker (docs/migration.md).")
@click.option("--json", "as_json", is_flag=True,
              help="Stream one JSON object per line: each event of the run, run_finished last (docs/cli-json.md).")
@click.pass_context
def run(ctx: click.Context, drain: bool, poll_sec: float, whatif: bool, canary: float | None, as_json: bool) -> int:
    """Run task files from the inbox through the process (until interrupted, or until empty with --drain).

    On a terminal a live panel shows files and tasks finished of those waiting, what runs now (file,
    task, step), timers waited on and parked tasks; elsewhere one line per finished task and file."""
    from engine.kernel import Kernel
    from engine.progress import RunProgress

    if canary is not None and whatif:
        raise UsageError("--canary routes task files and --whatif moves none: use `engine shadow FILE` to plan one")
    ws = _workspace(ctx)
    kernel = Kernel(ws)
    progress = RunProgress()
    for stray in kernel.queue.strays():  # said once at the start: the queue never claims these
        if as_json:
            _event({"event": "warning", "ts": kernel.clock.now().isoformat(),
                    "message": f"inbox/{stray['name']} is ignored: {stray['why']}"})
        else:
            err.print(f"warning: inbox/{stray['name']} is ignored: {stray['why']}", markup=False)
    stopping = {"flag": False}

    def on_signal(signum: int, frame: Any) -> None:
        if stopping["flag"]:
            raise KeyboardInterrupt
        stopping["flag"] = True
        err.print(f"{signal.Signals(signum).name}: finishing the current task, then stopping "
                  "(again to stop at once)")

    def stream(event: dict[str, Any]) -> None:
        progress.take(event)
        _event(event)

    def lines(event: dict[str, Any]) -> None:
        progress.take(event)
        line = progress.line(event)
        if line is not None:
            out.print(redact(line), markup=False)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    live = None
    try:
        if whatif:
            def planned(item: dict[str, Any]) -> None:
                _event({"event": "plan", "ts": kernel.clock.now().isoformat(), **item})

            summary = kernel.whatif(stop=lambda: stopping["flag"], on_plan=planned if as_json else _print_plan)
        elif as_json or not out.is_terminal:
            summary = kernel.run(drain=drain, stop=lambda: stopping["flag"], poll_sec=poll_sec,
                                 on_event=stream if as_json else lines, canary=canary)
        else:
            from rich.live import Live

            live = Live(progress, console=out, refresh_per_second=4)

            def shown(event: dict[str, Any]) -> None:
                progress.take(event)
                if event["event"] == "file_finished":
                    out.print(redact(progress.line(event) or ""), markup=False)

            with live:
                summary = kernel.run(drain=drain, stop=lambda: stopping["flag"], poll_sec=poll_sec, on_event=shown,
                                     canary=canary)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    code = ExitCode.OK if whatif or summary.ok else ExitCode.TASKS_FAILED
    left = {"inbox": 0, "processing": 0}
    if summary.interrupted and not whatif:
        from engine.queue import TaskQueue

        counts = TaskQueue(ws.tasks, worker="run").counts()
        left = {"inbox": counts["inbox"], "processing": counts["processing"]}
        if left["inbox"] + left["processing"]:
            code = ExitCode.INTERRUPTED
    why = f"{ws.tasks.name}/{summary.stopped_by} exists" if not whatif and summary.stopped_by else None
    if as_json:
        if why:
            _event({"event": "warning", "ts": kernel.clock.now().isoformat(), "message": f"stopped: {why}"})
        _event({"event": "run_finished", "ts": kernel.clock.now().isoformat(), "run_id": summary.run_id,
                "whatif": whatif, "files": {k: len(v) for k, v in summary.files.items()}, "tasks": summary.tasks,
                "interrupted": summary.interrupted, "left": left, "exit_code": int(code)})
        return code
    if whatif:
        tasks = ", ".join(f"{n} {k}" for k, n in summary.tasks.items() if n) or "none"
        for dest, names in summary.files.items():
            for name in names:
                out.print(f"would be {dest:<10} {name}")
        out.print(f"what-if run {summary.run_id}: nothing was changed or claimed; tasks as planned: {tasks}; "
                  f"the record is in .engine/whatif/{summary.run_id}/")
        return code  # a report of what would happen: it succeeded when every task was planned
    files = {k: len(v) for k, v in summary.files.items()}
    counted = summary.tasks
    parked = f", {files['parked']} parked" if files.get("parked") else ""
    out.print(f"run {summary.run_id}: {files['done']} file(s) done, {files['failed']} failed, "
              f"{files['quarantine']} quarantined{parked}; tasks: {counted['done']} done, {counted['failed']} failed, "
              f"{counted['quarantine']} quarantined" + (f" (stopped: {why})" if why else " (stopped by signal)"
                                                      if summary.interrupted else ""))
    if not summary.ok:
        out.print(f"see the .error.json / .result.json files beside them in {ws.tasks.relative_to(ws.root)}/")
    if code == ExitCode.INTERRUPTED:
        err.print(f"stopped with work left: {left['inbox']} file(s) in inbox/, {left['processing']} in "
                  "processing/ (the next `engine run` goes on with them)")
    return code


def _event(event: dict[str, Any]) -> None:
    """One event of `engine run --json`: a JSON object on its own line, flushed at once."""
    sys.stdout.write(json.dumps(redact(event), default=str, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _print_plan(item: dict[str, Any]) -> None:
    item = redact(item)
    plan = item["plan"]
    step = item["step_name"] or item["step"]
    out.print(f"plan       {item['task_id']} {step}: {item['plugin']}.{item['operation']}: {plan.get('summary', '')}",
              markup=False)
    for change in plan.get("changes") or []:
        out.print(f"             {change.get('action', '?'):<7} {change.get('path')}", markup=False)
    for command in plan.get("commands") or []:
        out.print(f"             $ {shlex.join(map(str, command))}", markup=False)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> int:
    """Counts per queue folder, live workers, the last runs, open circuit breakers, kept worktrees."""
    from engine.clock import Clock
    from engine.heartbeat import alive, live_workers
    from engine.queue import TaskQueue
    from engine.safety.breaker import BREAKERS_FILE, breakers_of
    from engine.safety.worktrees import kept

    ws = _workspace(ctx, log=False)
    queue = TaskQueue(ws.tasks, worker="status")
    counts, parked, failures, strays = queue.counts(), queue.parked(), _last_failures(ws), queue.strays()
    runs = []
    for path in sorted(ws.runs_dir.glob("*/run.json"))[-5:]:
        body = json.loads(path.read_text(encoding="utf-8"))
        if body["state"] == "running" and not alive(body):
            body["state"] = "died"  # the worker was killed; its files are recovered by the next run
        runs.append({"run_id": body["run_id"], "state": body["state"],
                     "files": {k: len(v) for k, v in body["files"].items()}, "tasks": body["tasks"]})
    now = Clock().now()
    workers = live_workers(ws.state_dir)
    for w in workers:  # how long each worker's run has gone on, as of now
        started = w.get("started")
        w["duration_sec"] = round((now - datetime.fromisoformat(started)).total_seconds(), 1) \
            if isinstance(started, str) else None
    left = kept(ws.engine_dir / "worktrees")
    breakers = {plugin: entry for plugin, entry in breakers_of(ws.root).all().items() if entry["state"] != "closed"} \
        if (ws.state_dir / BREAKERS_FILE).exists() else {}
    if as_json:
        out.print_json(json.dumps({"workspace": str(ws.root), "queue": counts, "workers": workers, "runs": runs,
                                   "parked": parked, "failures": failures, "ignored": strays, "worktrees": left,
                                   "breakers": breakers}))
        return ExitCode.OK
    from rich.table import Table

    table = Table("folder", "files", title=f"queue in {ws.root}")
    for name, n in counts.items():
        table.add_row(name, str(n))
    out.print(table)
    for w in workers:
        out.print(_worker_line(w), markup=False)
    for p in parked:
        out.print(f"parked: {p['file']} line {p['line']} (task {p['task_id']}) waits on a timer until {p['wake']}",
                  markup=False)
    for f in failures:
        out.print(f"{f['folder']}: {f['file']}: {f['reason']}", markup=False)
    for stray in strays:
        out.print(f"ignored in inbox/: {stray['name']}: {stray['why']}", markup=False)
    if runs:
        table = Table("run", "state", "done", "failed", "quarantine", title="last runs")
        for r in runs:
            table.add_row(r["run_id"], r["state"], *(str(r["files"].get(k, 0)) for k in
                                                     ("done", "failed", "quarantine")))
        out.print(table)
    else:
        out.print("no runs yet")
    for plugin, entry in breakers.items():
        out.print(f"circuit breaker of {plugin}: {entry['state']} since {entry.get('opened_at')} "
                  f"({entry.get('reason')})", markup=False)
    for w in left:
        out.print(f"worktree kept for inspection: {w.get('path')} (task {w.get('task_id')}, branch "
                  f"{w.get('branch', '?')}); `engine worktrees prune` removes old ones", markup=False)
    return ExitCode.OK


def _last_failures(ws: Workspace, count: int = 5) -> list[dict[str, Any]]:
    """The files that went to failed/ or quarantine/ last, newest first, with the reason their report gives."""
    reports = [(p.stat().st_mtime_ns, folder, p) for folder in ("failed", "quarantine")
               for p in (ws.tasks / folder).glob("*.json") if p.name.endswith((".error.json", ".result.json"))]
    found = []
    for _, folder, path in sorted(reports, reverse=True)[:count]:
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        found.append({"folder": folder, "file": body.get("file", path.name), "reason": body.get("reason"),
                      "run_id": body.get("run_id")})
    return found


def _worker_line(w: dict[str, Any]) -> str:
    """One live worker for `engine status`: its run, since when, what it finished, what it does now."""
    files, tasks = w.get("files") or {}, w.get("tasks") or {}
    since = str(w.get("started") or "?")[:19].replace("T", " ")
    took = f" ({_span(w['duration_sec'])})" if w.get("duration_sec") is not None else ""
    line = (f"worker {w.get('worker')}: run {w.get('run_id')} since {since} UTC{took}; files "
            f"{files.get('done', 0)} done, {files.get('failed', 0)} failed, {files.get('quarantine', 0)} quarantined"
            f"; tasks {tasks.get('done', 0)} done, {tasks.get('failed', 0)} failed, "
            f"{tasks.get('quarantine', 0)} quarantined; ")
    current = w.get("current")
    if not current:
        return line + "waiting for task files"
    now = f"now {current.get('file')}"
    if current.get("task_id") is not None:
        now += f" line {current.get('line')}, task {current.get('task_id')} ({current.get('tool')})"
    if current.get("step"):
        now += f", step {current['step']}"
    waiting = w.get("waiting")
    if waiting:
        now += f", waiting on {waiting.get('why')} until {waiting.get('until')}"
    return line + now


def _span(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {secs} s" if minutes else f"{secs} s"


@cli.command()
@click.option("--bpmn", type=click.Path(dir_okay=False, path_type=Path), help="BPMN file (default: the workspace's).")
@click.option("--dmn", type=click.Path(dir_okay=False, path_type=Path), help="DMN file (default: the workspace's).")
@click.option("--strict", is_flag=True, help="Fail (exit 3) on warnings too: names no step sets, exclusive gateways "
                                             "that may find no way out.")
@click.option("--json", "as_json", is_flag=True, help='Print {"ok": ..., "checked": ..., "problems": [...], '
                                                      '"warnings": [...], "replacements": [...]}.')
@click.pass_context
def validate(ctx: click.Context, bpmn: Path | None, dmn: Path | None, strict: bool, as_json: bool) -> int:
    """Check the models: XML, XSD, diagram interchange, plugin topics, decision references, DMN cells.

    Models that pass are linted: warnings name what may not run as meant. With only --dmn, the DMN file
    is checked on its own.
    """
    from engine.kernel import load_registry
    from engine.process import check_decisions, load_models
    from engine.process.lint import lint_models

    # a workspace's models unless both files are named (or the DMN alone): outside a workspace there are no
    # models to check, and checking the ones bundled with the engine would answer "models ok" about files
    # nobody asked about
    ws = _workspace(ctx, required=False)
    if dmn is None and not ws.is_initialised():
        raise WorkspaceError(f"{ws.root} is not an engine workspace, so it has no models to validate: run "
                             "`engine init` first, or name the files (--bpmn FILE --dmn FILE, or --dmn FILE alone)")
    warnings: list[Problem] = []
    replacements: list[dict[str, Any]] = []
    if dmn is not None and bpmn is None:
        problems, checked = check_decisions(dmn, warnings), f"{dmn}"
    else:
        bpmn, dmn = bpmn or ws.bpmn, dmn or ws.dmn
        registry = load_registry(ws)
        for replacement in registry.replacements:
            replacements.append({"replaced": replacement.replaced, "by": replacement.by.id,
                                 "by_origin": replacement.by.origin, "by_folder": str(replacement.by.folder),
                                 "origin": replacement.origin, "folder": str(replacement.folder),
                                 "message": replacement.describe(ws.root)})
            if not as_json:
                out.print(replacement.describe(ws.root), markup=False)
        checked = f"{bpmn} and {dmn}"
        try:
            models = load_models(bpmn, dmn, registry)
        except ModelError as e:
            problems = e.problems
        else:
            # the process models' lint warnings, then the DMN file's load warnings (null at evaluation)
            problems, warnings = [], lint_models(models, registry) + models.decisions.load_warnings
    if as_json:  # the document alone on stdout; the exit code is the same as without --json
        failed = bool(problems) or bool(warnings and strict)
        out.print_json(json.dumps({"ok": not failed, "strict": strict,
                                   "checked": {"bpmn": None if bpmn is None else str(bpmn), "dmn": str(dmn)},
                                   "problems": [p.as_dict() for p in problems],
                                   "warnings": [w.as_dict() for w in warnings], "replacements": replacements},
                                  default=str))
        return ExitCode.MODEL_INVALID if failed else ExitCode.OK
    for p in problems:
        out.print(str(p), markup=False)
    if problems:
        err.print(f"{len(problems)} problem(s) in {checked}", markup=False)
        return ExitCode.MODEL_INVALID
    for w in warnings:
        out.print(f"warning: {w}", markup=False)
    if warnings and strict:
        err.print(f"{len(warnings)} warning(s) in {checked} (--strict)", markup=False)
        return ExitCode.MODEL_INVALID
    out.print(f"models ok: {checked}" + (f" ({len(warnings)} warning(s))" if warnings else ""), markup=False)
    return ExitCode.OK


@cli.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def worktrees(ctx: click.Context, as_json: bool) -> int:
    """The worktrees tasks left behind (a task that failed keeps its worktree for inspection)."""
    if ctx.invoked_subcommand is not None:
        return ExitCode.OK
    from engine.safety.worktrees import kept

    ws = _workspace(ctx)
    found = kept(ws.engine_dir / "worktrees")
    if as_json:
        out.print_json(json.dumps({"worktrees": found}))
        return ExitCode.OK
    for w in found:
        out.print(f"{w.get('task_id')}: {w.get('path')} on {w.get('branch', '?')} (repository {w.get('repo', '?')}, "
                  f"run {w.get('run_id', '?')})", markup=False)
    if not found:
        out.print("no worktrees left by tasks")
    return ExitCode.OK


@worktrees.command("prune")
@click.option("--older-than", "days", type=click.FloatRange(min=0), default=7.0, show_default=True,
              help="Remove worktrees untouched for this many days (0: all).")
@click.option("--json", "as_json", is_flag=True, help='Print {"removed": [...]}.')
@click.pass_context
def worktrees_prune(ctx: click.Context, days: float, as_json: bool) -> int:
    """Remove old worktrees of failed tasks; their branches stay."""
    from engine.clock import Clock
    from engine.safety.worktrees import prune

    # `engine worktrees --json prune` asks for JSON too
    as_json = as_json or bool(ctx.parent is not None and ctx.parent.params.get("as_json"))
    ws = _workspace(ctx)
    removed = prune(ws.engine_dir / "worktrees", older_than_sec=days * 86400, now=Clock().now().timestamp())
    if as_json:
        out.print_json(json.dumps({"removed": removed}, default=str))
        return ExitCode.OK
    for w in removed:
        out.print(f"removed {w.get('path')} (branch {w.get('branch', '?')} kept)", markup=False)
    out.print(f"{len(removed)} worktree(s) removed")
    return ExitCode.OK


@cli.command()
@click.argument("run_id", metavar="RUN")
@click.option("--task", "task_id", metavar="ID", help="Only this task of the run (default: every task it ran).")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Write here (default: RUN.html, or RUN-ID.html with --task, in the current directory).")
@click.option("--json", "as_json", is_flag=True, help='Print {"written": PATH, "run": RUN, "task": ID|null}.')
@click.pass_context
def show(ctx: click.Context, run_id: str, task_id: str | None, output: Path | None, as_json: bool) -> int:
    """Write one self-contained HTML file picturing RUN: the process it ran on (as pinned), the path each
    task took and each step's status, and the decision tables with the matched rows marked."""
    from engine.audit import picture

    ws = _workspace(ctx)
    page = picture.render(picture.gather(ws, run_id, task_id))
    path = output or Path.cwd() / (f"{run_id}-{task_id}.html" if task_id else f"{run_id}.html")
    path.write_text(page, encoding="utf-8")
    if as_json:
        out.print_json(json.dumps({"written": str(path.resolve()), "run": run_id, "task": task_id}))
    else:
        out.print(str(path), markup=False)
    return ExitCode.OK


@cli.command()
@click.argument("source", metavar="FILE|-")
@click.option("--name", help="The name the task file gets in the inbox (NAME.jsonl; default: FILE's name, or a "
                             "new one for standard input).")
@click.option("--json", "as_json", is_flag=True, help='Print {"submitted": PATH, "tasks": N}.')
@click.pass_context
def submit(ctx: click.Context, source: str, name: str | None, as_json: bool) -> int:
    """Check a task file and put it into the inbox whole (a bad one is refused, every problem listed)."""
    from engine.clock import Clock
    from engine.queue import TaskQueue

    ws = _workspace(ctx, log=False)
    body = sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    name = name or (Path(source).name if source != "-" else Clock().new_id("submitted-") + ".jsonl")
    queue = TaskQueue(ws.tasks, worker="submit")
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "file.jsonl"
        staged.write_bytes(body)
        parsed = queue.parse_file(staged, name)
    if parsed.problems:
        raise UsageError(f"{name} was not submitted: {len(parsed.problems)} problem(s)", problems=parsed.problems)
    try:
        target = queue.submit(name, body)
    except ValueError as e:
        raise UsageError(f"--name: {e}") from e
    except FileExistsError as e:
        raise UsageError(f"{name} was not submitted: {e} exists (a file of that name is waiting or running); "
                         "give another --name") from e
    if as_json:
        out.print_json(json.dumps({"submitted": str(target), "tasks": len(parsed.tasks)}))
    else:
        out.print(f"submitted {target.relative_to(ws.root)} ({len(parsed.tasks)} task(s))", markup=False)
    return ExitCode.OK


@cli.command()
@click.argument("name", metavar="FILE")
@click.option("--json", "as_json", is_flag=True, help='Print {"requeued": PATH, "from": FOLDER}.')
@click.pass_context
def requeue(ctx: click.Context, name: str, as_json: bool) -> int:
    """Move FILE (a name in failed/ or quarantine/) back into the inbox to run again; its report stays as
    its history, and the ledger records the move."""
    from engine.clock import Clock
    from engine.ledger import Ledger
    from engine.queue import TaskQueue

    ws = _workspace(ctx, log=False)
    name = Path(name).name
    try:
        folder, target = TaskQueue(ws.tasks, worker="requeue").requeue(name)
    except FileNotFoundError as e:
        raise UsageError(f"no file {name!r} in failed/ or quarantine/") from e
    except FileExistsError as e:
        raise UsageError(f"{name} was not requeued: {e} exists") from e
    clock = Clock()
    ledger = Ledger(ws.ledger_dir, segment_bytes=ws.config().ledger.segment_mb << 20)
    ledger.append({"kind": "queue", "task_file": name, "transition": f"{folder}->inbox", "status": "requeued"},
                  {"run_id": clock.new_id("requeue-"), "ts": clock.now().isoformat(), "host": socket.gethostname(),
                   "pid": os.getpid(), "worker": "requeue"})
    if as_json:
        out.print_json(json.dumps({"requeued": str(target), "from": folder}))
    else:
        out.print(f"requeued {name} from {folder}/ (its report stays there)", markup=False)
    return ExitCode.OK


@cli.command()
@click.argument("task_file", metavar="FILE", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--old-ledger", "old_ledger", required=True, metavar="PATH",
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The old worker's ledger (one JSON line per attempt: ts, id, tool, attempt, exit, ok, repo).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (docs/cli-json.md).")
@click.pass_context
def shadow(ctx: click.Context, task_file: Path, old_ledger: Path, as_json: bool) -> int:
    """Plan FILE with the new kernel (as `engine run --whatif`: nothing claimed or changed) and set each
    task's planned outcome beside the old worker's recorded one. Exit 0 when they agree, 1 when they differ."""
    from engine.audit.shadow import shadow as compare
    from engine.kernel import Kernel

    ws = _workspace(ctx)
    report = compare(Kernel(ws), task_file, old_ledger)
    code = ExitCode.TASKS_FAILED if report["differences"] else ExitCode.OK
    if as_json:
        out.print_json(json.dumps(redact(report), default=str))
        return code

    def said(side: dict[str, Any] | None, new: bool) -> str:
        if side is None:
            return "-"
        status = side["status"] if new else ("ok" if side["ok"] else "failed")
        return f"{status} (exit {side['exit']})" if side.get("exit") is not None else status

    for problem in report["problems"]:
        err.print(f"warning: {problem}", markup=False)
    for task in report["tasks"]:
        mark = "agree " if task["agree"] else "DIFFER"
        out.print(redact(f"{mark} {task['id']}: old {said(task['old'], False)}, new {said(task['new'], True)}"),
                  markup=False)
    for diff in report["differences"]:
        out.print(redact(f"difference {diff['kind']}: {diff['id']}"), markup=False)
    out.print(f"{report['agree']} of {len(report['tasks'])} task(s) agree, {len(report['differences'])} differ"
              + (f"; the plans are in .engine/whatif/{report['whatif_run']}/" if report["whatif_run"] else ""))
    return code


@cli.command()
@click.argument("directory", metavar="DIR", type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help='Print {"dir": ..., "files": [...], "counts": {...}, "ok": ...}.')
@click.pass_context
def migrate(ctx: click.Context, directory: Path, as_json: bool) -> int:
    """Check an old worker's queue folder: every *.jsonl file under DIR (subfolders too, or DIR itself when it
    is a file), each line as the queue would read it: task.v1 as it is, converted from the old worker's format
    (with the task.v1 it becomes), or refused (with every problem). Changes nothing; exit 0 when every line
    is read, 1 otherwise."""
    from engine.legacy import TaskAdapter
    from engine.queue import TaskQueue
    from engine.workspace import Workspace

    try:
        root = Workspace.find(ctx.obj.get("workspace")).root
    except WorkspaceError:
        root = None  # no workspace: the default settings
    adapter = TaskAdapter.for_workspace(root) if root is not None else TaskAdapter(workspace=Path.cwd())
    if adapter.mode == "off":  # migrate checks the conversion the workspace would turn on
        adapter = TaskAdapter("auto", repo=adapter.repo, workspace=adapter.workspace)
    paths = [directory] if directory.is_file() else sorted(p for p in directory.rglob("*.jsonl") if p.is_file())
    if not paths:
        raise UsageError(f"{directory} holds no *.jsonl file")
    queue = TaskQueue((root or Path.cwd()) / ".tasks", worker="migrate")  # only its reading is used
    files: list[dict[str, Any]] = []
    counts = {"task.v1": 0, "converted": 0, "refused": 0}
    for path in paths:
        name = path.name if path == directory else path.relative_to(directory).as_posix()
        parsed = queue.parse_file(path, name, adapter=adapter)
        lines: dict[int, dict[str, Any]] = {}
        for item in parsed.tasks:
            status = "converted" if "legacy" in item.task.metadata else "task.v1"
            lines[item.line] = {"line": item.line, "status": status, "task": item.task.as_data(), "problems": []}
        for problem in parsed.problems:
            if problem.line is None:
                continue
            entry = lines.setdefault(problem.line, {"line": problem.line, "status": "refused", "task": None,
                                                    "problems": []})
            entry["status"], entry["task"] = "refused", None  # a repeated id: read, but not runnable
            entry["problems"].append(problem.as_dict())
        for entry in lines.values():
            counts[entry["status"]] += 1
        files.append({"file": name, "lines": [lines[n] for n in sorted(lines)],
                      "problems": [p.as_dict() for p in parsed.problems if p.line is None]})
    ok = counts["refused"] == 0 and not any(f["problems"] for f in files)
    document = redact({"dir": str(directory), "mode": adapter.mode, "files": files, "counts": counts, "ok": ok})
    if as_json:
        out.print_json(json.dumps(document))
    else:
        for entry_file in document["files"]:
            out.print(entry_file["file"], markup=False)
            for problem in entry_file["problems"]:
                out.print(f"  {problem['message']}", markup=False)
            for entry in entry_file["lines"]:
                if entry["task"] is not None:
                    body = json.dumps(entry["task"], sort_keys=True)
                    out.print(f"  {entry['line']:>4}  {entry['status']:<9}  {body}", markup=False)
                for problem in entry["problems"]:
                    out.print(f"  {entry['line']:>4}  refused    {problem.get('path') or '$'}: {problem['message']}",
                              markup=False)
        out.print(f"{counts['task.v1']} task.v1, {counts['converted']} converted, {counts['refused']} refused",
                  markup=False)
    return ExitCode.OK if ok else ExitCode.TASKS_FAILED


@cli.group()
def ledger() -> None:
    """Inspect the audit ledger."""


@ledger.command("verify")
@click.option("--no-head", is_flag=True, help="Check the chain even when head.json is missing (truncation of the "
                                              "tail then goes unnoticed unless --anchor is given).")
@click.option("--anchor", metavar="HASH", help="An entry hash kept from `engine ledger anchor`: the ledger must "
                                               "still hold that entry.")
@click.option("--json", "as_json", is_flag=True, help='Print {"ok": true, "entries": N, "files": N, "head": HASH, '
                                                      '"anchor": HASH|null} (a broken ledger: the error document).')
@click.pass_context
def ledger_verify(ctx: click.Context, no_head: bool, anchor: str | None, as_json: bool) -> int:
    """Check every ledger entry against its contract and the hash chain; name the first bad entry."""
    from engine.ledger import Ledger

    ws = _workspace(ctx)
    report = Ledger(ws.ledger_dir).verify(no_head=no_head, anchor=anchor)
    if as_json:  # a broken ledger raised LedgerBroken: main prints it as the error document, exit 4
        out.print_json(json.dumps({"ok": True, "entries": report.entries, "files": report.files,
                                   "head": report.last_hash, "anchor": anchor}))
        return ExitCode.OK
    out.print(f"ledger ok: {report.entries} entries in {report.files} file(s), head {report.last_hash[:16]}"
              + (f", holds anchor {anchor[:16]}" if anchor else ""))
    return ExitCode.OK


def _ledger_rows(ctx: click.Context, run: str | None, task: str | None, step: str | None) -> Any:
    from engine.ledger import Ledger

    ws = _workspace(ctx)
    for entry in Ledger(ws.ledger_dir).entries():
        record, envelope = entry.get("record", {}), entry.get("envelope", {})
        if (run and envelope.get("run_id") != run) or (task and record.get("task_id") != task) or \
                (step and record.get("step") != step):
            continue
        yield entry


EXPORT_COLUMNS = ("seq", "ts", "run_id", "kind", "status", "task_id", "task_file", "line", "step", "step_name",
                  "step_type", "plugin", "operation", "decision", "result", "reason", "trace_id", "hash")


def _flat(entry: dict[str, Any]) -> dict[str, Any]:
    """One entry as a row of ``EXPORT_COLUMNS``."""
    record, envelope = entry.get("record", {}), entry.get("envelope", {})
    plugin = record.get("plugin") if isinstance(record.get("plugin"), dict) else {}
    decision = record.get("decision") if isinstance(record.get("decision"), dict) else {}
    return {"seq": entry.get("seq"), "ts": envelope.get("ts"), "run_id": envelope.get("run_id"),
            "kind": record.get("kind"), "status": record.get("status"), "task_id": record.get("task_id"),
            "task_file": record.get("task_file"), "line": record.get("line"), "step": record.get("step"),
            "step_name": record.get("step_name"), "step_type": record.get("step_type"),
            "plugin": plugin.get("id"), "operation": plugin.get("operation"), "decision": decision.get("id"),
            "result": json.dumps(decision["result"], sort_keys=True) if "result" in decision else None,
            "reason": record.get("reason"), "trace_id": envelope.get("trace_id"), "hash": entry.get("hash")}


@ledger.command("export")
@click.option("--run", help="Only the entries of this run id.")
@click.option("--task", help="Only the entries of this task id.")
@click.option("--step", help="Only the entries of this step (BPMN element id).")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True,
              help="jsonl: the entries as stored; csv: one row per entry, the columns other tools want.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write here (default: stdout).")
@click.option("--json", "as_json", is_flag=True, help='Print {"entries": [...]} (the entries as stored); with '
                                                      '--output, write the file and print {"written": PATH, '
                                                      '"format": ..., "entries": N}.')
@click.pass_context
def ledger_export(ctx: click.Context, run: str | None, task: str | None, step: str | None, fmt: str,
                  output: Path | None, as_json: bool) -> int:
    """The ledger's entries for other tools, filtered by run, task or step."""
    import csv
    import io

    if as_json and output is None:
        if fmt == "csv":
            raise UsageError("--format csv --json: the JSON document holds the entries as stored; to write CSV, "
                             "give --output FILE too")
        entries = list(_ledger_rows(ctx, run, task, step))
        sys.stdout.write(json.dumps({"entries": entries}, indent=2, ensure_ascii=False) + "\n")
        return ExitCode.OK
    buffer, count = io.StringIO(), 0
    if fmt == "csv":
        writer = csv.DictWriter(buffer, fieldnames=EXPORT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for entry in _ledger_rows(ctx, run, task, step):
            writer.writerow(_flat(entry))
            count += 1
    else:
        for entry in _ledger_rows(ctx, run, task, step):
            buffer.write(json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n")
            count += 1
    if output is not None:
        output.write_text(buffer.getvalue(), encoding="utf-8")
        if as_json:
            out.print_json(json.dumps({"written": str(output.resolve()), "format": fmt, "entries": count}))
    else:
        sys.stdout.write(buffer.getvalue())
    return ExitCode.OK


@ledger.command("show")
@click.option("--run", help="Only the entries of this run id.")
@click.option("--task", help="Only the entries of this task id.")
@click.option("--step", help="Only the entries of this step (BPMN element id).")
@click.option("--json", "as_json", is_flag=True, help='Print {"entries": [...]}, one row per entry (the columns of '
                                                      '`ledger export --format csv`).')
@click.pass_context
def ledger_show(ctx: click.Context, run: str | None, task: str | None, step: str | None, as_json: bool) -> int:
    """The ledger's entries, one line each: seq, time, what, task, step, status, and the plugin, decision
    result or reason."""
    if as_json:
        rows = [_flat(entry) for entry in _ledger_rows(ctx, run, task, step)]
        sys.stdout.write(json.dumps({"entries": rows}, indent=2, ensure_ascii=False) + "\n")
        return ExitCode.OK
    shown = 0
    for entry in _ledger_rows(ctx, run, task, step):
        row = _flat(entry)
        what = (f"{row['plugin']}.{row['operation']}" if row["plugin"] else
                f"{row['decision']} -> {row['result']}" if row["decision"] else row["reason"] or "")
        where = row["step"] or (entry.get("record", {}).get("transition") or "")
        out.print(f"{row['seq']:>6} {row['ts'] or '':<32} {row['kind'] or '':<6} {row['task_id'] or '-':<16} "
                  f"{where:<28} {row['status'] or '':<10} {what}", markup=False)
        shown += 1
    if not shown:
        out.print("no ledger entries match", markup=False)
    return ExitCode.OK


@ledger.command("anchor")
@click.option("--json", "as_json", is_flag=True, help='Print {"hash": HASH, "seq": N}.')
@click.pass_context
def ledger_anchor(ctx: click.Context, as_json: bool) -> int:
    """Print the last entry's seq and hash (after verifying the ledger): keep it elsewhere, and
    `engine ledger verify --anchor HASH` later proves the ledger was not cut or rewritten before it."""
    from engine.ledger import Ledger

    ws = _workspace(ctx)
    head = Ledger(ws.ledger_dir).anchor()
    if as_json:
        out.print_json(json.dumps({"hash": head["hash"], "seq": head["seq"]}))
    else:
        out.print(f"{head['hash']} (entry seq {head['seq']})", markup=False)
    return ExitCode.OK


@cli.group()
def plugin() -> None:
    """List and check the installed plugins."""


@plugin.command("list")
@click.option("--json", "as_json", is_flag=True, help='Print one JSON object {"plugins": [...], "problems": [...]}.')
@click.pass_context
def plugin_list(ctx: click.Context, as_json: bool) -> int:
    """The plugins the engine uses here, with where each was found; exit 6 if one is refused."""
    from rich.measure import Measurement
    from rich.table import Table

    from engine.plugins.catalog import list_plugins

    ws = _workspace(ctx)  # the plugins used depend on the workspace's plugins/ (outside one: exit 5)
    listing = list_plugins(ws)
    if as_json:
        out.print_json(json.dumps(listing.as_dict()))
    else:
        columns = ["id", "version", "category", "operations", "origin", "isolation", "conformance_level", "folder",
                   "replaces"]
        if not any(row["replaces"] for row in listing.plugins):
            columns.pop()
        table = Table(*columns, box=None, pad_edge=False, header_style="bold")
        for row in listing.plugins:
            folder = Path(row["folder"])
            shown = {**row, "operations": ", ".join(row["operations"]), "replaces": row["replaces"] or "",
                     "folder": str(folder.relative_to(ws.root) if folder.is_relative_to(ws.root) else folder)}
            table.add_row(*(shown[name] for name in columns))
        # one line per plugin, however narrow the terminal (like `docker ps`): folded cells are unreadable
        needed = Measurement.get(out, out.options.update_width(10_000), table).maximum
        Console(file=out.file, width=max(out.width, needed), highlight=False).print(table)
        for replacement in listing.replacements:
            out.print(replacement.describe(ws.root), markup=False)
        for p in listing.problems:
            err.print(str(p), markup=False)
        if listing.problems:
            err.print(f"{len(listing.problems)} problem(s) with plugins: `engine run` refuses to start until they "
                      "are fixed", markup=False)
    return ExitCode.PLUGIN_INVALID if listing.problems else ExitCode.OK


@plugin.command("check")
@click.argument("plugin_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help='Print {"plugin": ID, "ok": ..., "problems": [...]}.')
@click.pass_context
def plugin_check(ctx: click.Context, plugin_id: str, as_json: bool) -> int:
    """Load plugin ID: every static problem, then (for a plugin that runs in workers) import it in a
    worker, calling nothing. Exit 0 when fine, 6 with one line per problem otherwise."""
    from engine.plugins.catalog import check_plugin

    ws = _workspace(ctx)
    report = check_plugin(ws, plugin_id)
    if as_json:
        out.print_json(json.dumps(report.as_dict()))
    elif report.ok and report.loaded is not None:
        p = report.loaded
        out.print(f"plugin {plugin_id} ok: {p.id} {p.version} ({p.origin}, isolation {p.spec.isolation}), "
                  f"operations {', '.join(p.spec.operations)}", markup=False)
    else:
        for problem in report.problems:
            out.print(str(problem), markup=False)
        err.print(f"plugin {plugin_id}: {len(report.problems)} problem(s)", markup=False)
    return ExitCode.OK if report.ok else ExitCode.PLUGIN_INVALID


@cli.command()
@click.argument("plugin_id", metavar="ID", required=False)
@click.option("--level", type=click.Choice(["L0", "L1", "L2", "L3", "L4", "L5"]),
              help="Run levels L0 up to this one (default: the plugin's declared conformance_level, else L5).")
@click.option("--matrix", is_flag=True, help="Every bundled plugin at its declared level, in a fresh example "
                                              "workspace: the compatibility matrix.")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
              help="With --matrix: write the matrix as Markdown to FILE (docs/compatibility.md).")
@click.option("--changed-since", "changed_since", metavar="REV",
              help="Every plugin whose folder changed since git revision REV (and in the work tree).")
@click.option("--json", "as_json", is_flag=True, help="Print the report document.")
@click.pass_context
def conformance(ctx: click.Context, plugin_id: str | None, level: str | None, matrix: bool, output: Path | None,
                changed_since: str | None, as_json: bool) -> int:
    """Check plugin ID against the conformance levels (L0 static, L1 golden fixtures, L2 behaviour scenarios,
    L3 the example process end to end, L4 latency budget, L5 security) and write
    conformance/reports/ID-VERSION.json; or several plugins (--matrix, --changed-since). Outside a workspace
    the checks run in a fresh example workspace and reports go to ./conformance/reports/. Exit 0 when no
    level fails and each plugin meets its declared level, 6 otherwise, each problem naming what to fix."""
    from engine.plugins import conformance as kit

    if sum([plugin_id is not None, matrix, changed_since is not None]) != 1:
        raise UsageError("name one plugin ID, or --matrix, or --changed-since REV")
    if output is not None and not matrix:
        raise UsageError("--output goes with --matrix")
    if matrix:
        if level is not None:
            raise UsageError("--matrix runs each plugin at its declared level: leave out --level")
        with kit.fresh_workspace() as fresh:
            _configure_logging(fresh)  # the runs' events go to its log, not to this terminal
            return _conformance_set(kit.matrix(fresh, output), as_json)
    ws = _workspace(ctx, required=False, log=False)
    with kit.hermetic_if_needed(ws) as used:
        _configure_logging(used)
        if changed_since is not None:
            return _conformance_set(kit.changed_since(used, changed_since, Path.cwd(), ws.root / kit.REPORTS), as_json)
        assert plugin_id is not None
        report = kit.run_conformance(used, plugin_id, level, reports=ws.root / kit.REPORTS)
    if as_json:
        out.print_json(json.dumps(report.as_dict()))
    else:
        _print_conformance(report, ws.root)
    return ExitCode.OK if report.ok and report.meets_declared is not False else ExitCode.PLUGIN_INVALID


def _print_conformance(report: Any, root: Path) -> None:
    out.print(f"conformance of {report.plugin} {report.version or '?'} (levels L0-{report.target})", markup=False)
    for result in report.levels:
        out.print(f"  {result.level}  {result.status:<7}  {result.summary}", markup=False)
        for problem in result.problems:
            out.print(f"      {problem}", markup=False)
    if report.meets_declared is not None:
        meets = "meets" if report.meets_declared else "does not meet"
        out.print(f"{report.plugin} {meets} its declared level {report.declared}", markup=False)
    elif report.declared is not None:
        out.print(f"levels up to {report.target} only: the declared level {report.declared} is not judged",
                  markup=False)
    if report.written is not None:
        shown = report.written.relative_to(root) if report.written.is_relative_to(root) else report.written
        out.print(f"report: {shown}", markup=False)


def _conformance_set(result: Any, as_json: bool) -> int:
    if as_json:
        out.print_json(json.dumps(result.as_dict()))
    else:
        for report in result.reports:
            failed = [r for r in report.levels if r.status == "failed"]
            verdict = "ok" if report.ok and report.meets_declared is not False else "FAILED"
            levels = " ".join(f"{r.level}:{r.status}" for r in report.levels)
            out.print(f"{report.plugin} {report.version or '?'}: {verdict} ({levels})", markup=False)
            for r in failed:
                for problem in r.problems:
                    out.print(f"    {r.level} {problem}", markup=False)
        if not result.reports:
            out.print(f"no plugin folder changed ({result.selection})", markup=False)
        if result.written is not None:
            out.print(f"matrix: {result.written}", markup=False)
    return ExitCode.OK if result.ok else ExitCode.PLUGIN_INVALID


@plugin.command("route")
@click.argument("plugin_id", metavar="ID")
@click.option("--tool", metavar="TOOL", help="The task tool to route (default: ID).")
@click.option("--json", "as_json", is_flag=True,
              help='Print {"plugin": ID, "tool": TOOL, "file": PATH, "added": [...]}.')
@click.pass_context
def plugin_route(ctx: click.Context, plugin_id: str, tool: str | None, as_json: bool) -> int:
    """Route tasks whose tool is TOOL to plugin ID: a select_plugin rule in the workspace's
    process/decisions.dmn (and a needs_worktree rule for a state_change plugin), then the models are loaded
    as `engine run` would and put back if they no longer load. Running it again changes nothing. Exit 6 for
    an unknown plugin, 2 when a rule already routes TOOL to another plugin, 3 when the models break."""
    from engine.plugins.binding import route

    ws = _workspace(ctx)
    routed = route(ws, plugin_id, tool or plugin_id)
    if as_json:
        out.print_json(json.dumps(routed.as_dict()))
    elif routed.added:
        out.print(f"tool {routed.tool!r} now runs plugin {routed.plugin}: added {', '.join(routed.added)} to "
                  f"{routed.file}", markup=False)
    else:
        out.print(f"tool {routed.tool!r} already runs plugin {routed.plugin} ({routed.file}): nothing changed",
                  markup=False)
    return ExitCode.OK


@plugin.command("new")
@click.argument("plugin_id", metavar="ID")
@click.option("--category", type=click.Choice(["acquisition", "transformation", "state_change", "validation",
                                               "orchestration"]),
              help="The template to make the plugin from (needed for a new folder; an existing one keeps its own).")
@click.option("--dir", "plugins_dir", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Where to make the plugin folder (default: the workspace's plugins/).")
@click.option("--json", "as_json", is_flag=True,
              help='Print {"plugin": ID, "folder": PATH, "created": [...], "updated": [...]}.')
@click.pass_context
def plugin_new(ctx: click.Context, plugin_id: str, category: str | None, plugins_dir: Path | None,
               as_json: bool) -> int:
    """Make plugins/ID from the template of a category, or, run again after its plugin.spec.json changed,
    rewrite its generated parts (between the AUTO fences, and manifest.json) and keep the rest. Exit 2 for
    a bad id or a folder not made by this command."""
    from engine.plugins.scaffold import new_plugin

    folder = plugins_dir if plugins_dir is not None else _workspace(ctx, log=False).root / "plugins"
    made = new_plugin(plugin_id, category, folder)
    if as_json:
        out.print_json(json.dumps(made.as_dict()))
    else:
        for rel in made.created:
            out.print(f"created {rel}", markup=False)
        for rel in made.updated:
            out.print(f"updated {rel}", markup=False)
        what = "up to date" if not made.created and not made.updated else "ready"
        out.print(f"plugin {plugin_id} {what} in {made.folder}; next: `engine plugin check {plugin_id}`, "
                  f"`engine plugin route {plugin_id}` (tasks with tool {plugin_id!r} run it), "
                  f"`engine conformance {plugin_id}`", markup=False)
    return ExitCode.OK


@plugin.command("pack")
@click.argument("plugin_id", metavar="ID")
@click.option("--output", "-o", "output", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Where to write the archive and its .sha256 (default: ./dist).")
@click.option("--json", "as_json", is_flag=True,
              help='Print {"plugin", "version", "archive", "sha256", "files", "source_digest"}.')
@click.pass_context
def plugin_pack(ctx: click.Context, plugin_id: str, output: Path | None, as_json: bool) -> int:
    """Pack plugin ID (found as `engine plugin check` finds it) into DIR/ID-VERSION.tar.gz, the same bytes
    every time, with DIR/ID-VERSION.tar.gz.sha256 beside it. Exit 6, writing nothing, for a plugin that does
    not load or whose manifest's source_digest is missing or stale."""
    from engine.plugins.package import pack_plugin

    made = pack_plugin(_workspace(ctx), plugin_id, output if output is not None else Path("dist"))
    if as_json:
        out.print_json(json.dumps(made.as_dict()))
    else:
        out.print(f"packed {made.plugin} {made.version}: {made.archive} ({len(made.files)} files)", markup=False)
        out.print(f"sha256 {made.sha256}  (also in {made.archive.name}.sha256)", markup=False)
    return ExitCode.OK


def _parse_inputs(pairs: Sequence[str]) -> dict[str, str]:
    inputs: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--input {pair!r}: write it as name=value")
        inputs[name.strip()] = value
    return inputs


@cli.command()
@click.argument("task_id", metavar="TASK")
@click.option("--file", "task_file", metavar="FILE", help="The task file the task is in, when its id is in several.")
@click.option("--run", "run_id", metavar="RUN", help="The run (its id, or the start of it), when the task ran in "
                                                     "several.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def explain(ctx: click.Context, task_id: str, task_file: str | None, run_id: str | None, as_json: bool) -> int:
    """The story of one TASK from the ledger: its steps, plugins, decisions (inputs, matched rows, each
    re-derived from the model its run used), retries and outcome."""
    from engine.audit.explain import explain as explain_task

    ws = _workspace(ctx, log=False)
    story = explain_task(ws, task_id, task_file=task_file, run=run_id)
    if as_json:
        out.print_json(json.dumps(story.as_dict(), default=str))
    else:
        for line in story.lines():
            out.print(line, markup=False)
    return ExitCode.OK


@cli.command()
@click.argument("run_id", metavar="RUN")
@click.option("--task", "task_id", metavar="ID", help="Replay only this task of the run.")
@click.option("--json", "as_json", is_flag=True, help='Print {"run": ..., "tasks": [...]}.')
@click.pass_context
def replay(ctx: click.Context, run_id: str, task_id: str | None, as_json: bool) -> int:
    """Run each task of RUN again on the models it used, with its plugin calls' recorded results, and check
    every record it makes (decisions, flows, state digests) against the ledger. Exit 4 at a difference."""
    from engine.kernel import load_registry
    from engine.process.replay import replay_lines, replay_run

    ws = _workspace(ctx)
    if not (ws.runs_dir / run_id / "run.json").is_file() or "/" in run_id or run_id in (".", ".."):
        runs = sorted((p.parent.name for p in ws.runs_dir.glob("*/run.json")), reverse=True)[:5]
        raise UsageError(f"no run {run_id!r} in {ws.runs_dir}; the most recent: {', '.join(runs) or 'none'}")
    results = replay_run(ws, load_registry(ws), run_id, task_id)
    if task_id is not None and not results:
        raise UsageError(f"run {run_id} has no task {task_id!r}")
    if as_json:
        out.print_json(json.dumps({"run": run_id, "tasks": [r.as_dict() for r in results]}))
    else:
        for line in replay_lines(results):
            out.print(line, markup=False)
        bad = sum(1 for r in results if not r.ok)
        out.print(f"replay {run_id}: {len(results) - bad} of {len(results)} task(s) made the records the ledger "
                  "holds" + (f"; {bad} differ" if bad else ""), markup=False)
    return ExitCode.OK if all(r.ok for r in results) else ExitCode.LEDGER_BROKEN


@cli.command()
@click.argument("decision")
@click.option("--model", type=click.Path(dir_okay=False, path_type=Path),
              help="DMN file (default: the workspace's process/decisions.dmn).")
@click.option("--input", "inputs", multiple=True, metavar="NAME=VALUE", help="An input value (repeatable).")
@click.option("--input-json", type=click.File("rb"), help="A JSON object of inputs ('-' for stdin).")
@click.option("--json", "as_json", is_flag=True, help='Print {"result": ...} or {"error": ...}.')
@click.option("--explain", is_flag=True, help="Also show the inputs as read, each matched rule's row, annotation and "
                                              "outputs, and warnings (an input not given was read as null), for the "
                                              "decision and those it requires.")
@click.pass_context
def decide(ctx: click.Context, decision: str, model: Path | None, inputs: Sequence[str],
           input_json: BinaryIO | None, as_json: bool, explain: bool) -> int:
    """Evaluate one DECISION (id or name) of a DMN model."""
    from engine import dmn

    ws = _workspace(ctx, required=False)
    if model is None and not ws.is_initialised():
        raise WorkspaceError(f"{ws.root} is not an engine workspace, so it has no decisions.dmn: run `engine init` "
                             "first, or name the model with --model FILE")
    path = model or ws.dmn
    decisions = dmn.load(path)  # an error here, as below, is main()'s to print (as a JSON document with --json)
    target = decisions.decision(decision)
    context: dict[str, Any] = {}
    if input_json is not None:
        context = _json_input(input_json)
    context.update(target.coerce_inputs(_parse_inputs(inputs)))
    result = decisions.evaluate(target.id, context)
    value = dmn.to_json(result.value, exact=True)  # numbers with all their digits (34), not a float's 17
    facts = _explanation(decisions, result, context) if explain else None
    if as_json:
        body: dict[str, Any] = {"result": value}
        if facts is not None:
            body["explain"] = facts
        out.print(dmn.json_text(body, indent=2), markup=False, highlight=False)
        return ExitCode.OK
    out.print(dmn.json_text(value), markup=False)
    if facts is not None:
        _explain(facts, indent="")
    return ExitCode.OK


def _json_input(source: BinaryIO) -> dict[str, Any]:
    """The object ``--input-json`` names, or a UsageError saying what is wrong with the file (never a
    traceback: bytes that are no UTF-8, a number of more digits than Python converts, deep nesting)."""
    where = getattr(source, "name", "-")
    raw = source.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise UsageError(f"--input-json {where}: not UTF-8 text (byte 0x{raw[e.start]:02x} at offset {e.start}, "
                         f"line {line})") from e
    try:
        context = json.loads(text, parse_float=Decimal)  # 0.1 is the decimal 0.1, as FEEL reads it
    except json.JSONDecodeError as e:
        raise UsageError(f"--input-json {where}: not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})") from e
    except RecursionError as e:
        raise UsageError(f"--input-json {where}: nested too deeply") from e
    except ValueError as e:  # an integer of more than sys.get_int_max_str_digits() digits
        raise UsageError(f"--input-json {where}: a number has more than {sys.get_int_max_str_digits()} digits, "
                         "more than can be read") from e
    if not isinstance(context, dict):
        raise UsageError(f"--input-json {where}: must hold a JSON object")
    return context


def _explain(facts: dict[str, Any], indent: str, top: bool = True) -> None:
    """``engine decide --explain``: what ``facts`` (from :func:`_explanation`) say, as Camunda Modeler shows a
    decision: its input values as read, each matched rule's row, annotation and outputs, the warnings; then
    the same for each required decision, indented."""
    def shown(value: Any) -> str:
        from engine import dmn

        text = dmn.json_text(dmn.to_json(value, exact=True))
        return text if len(text) <= 200 else text[:199] + "…"

    policy = f", hit policy {facts['hit_policy']}" if facts["hit_policy"] else ""
    out.print(f"{indent}{facts['decision_id']} ({facts['decision_name']}){policy}", markup=False)
    for name, value in facts["inputs"].items():
        out.print(f"{indent}  input  {name} = {shown(value)}", markup=False)
    for rule in facts["rules"]:
        note = f"  {shown(' '.join(rule['annotation'].split()))}" if rule["annotation"] else ""
        outputs = ", ".join(f"{name} = {shown(value)}" for name, value in rule["outputs"].items())
        out.print(f"{indent}  row {rule['row']}{note}  -> {outputs}", markup=False)
    if facts["hit_policy"] and not facts["rules"]:
        out.print(f"{indent}  no rule matched", markup=False)
    if not top:
        out.print(f"{indent}  result = {shown(facts['value'])}", markup=False)
    for warning in facts["warnings"]:
        out.print(f"{indent}  warning: {warning}", markup=False)
    for name in facts.get("unread_inputs") or []:
        out.print(f"{indent}  note: input '{name}' was given but not read by {facts['decision_id']}", markup=False)
    for required in facts["required"]:
        _explain(required, indent + "  ", top=False)


def _explanation(decisions: Any, result: Any, context: dict[str, Any], top: bool = True) -> dict[str, Any]:
    """The facts ``decide --explain`` shows of ``result`` (a ``DecisionResult`` of the ``DecisionModel``
    ``decisions``, evaluated in the caller's ``context``), as ``--json --explain`` gives them: the decision,
    its hit policy, value, input values as read, matched rules (id, 1-based row, annotation, outputs),
    warnings, ``missing_inputs`` (the variables it read that the caller did not give: null), ``required``
    (the same for each required decision) and, at the top, ``unread_inputs`` (what the caller gave that no
    decision read)."""
    import math

    from engine.dmn import to_json

    decision = decisions.decision(result.decision_id)
    warnings = list(result.warnings)
    missing: list[str] = []
    absent = object()
    for path, clause in decisions.caller_reads(decision):
        if clause is None:
            what = f"variable '{path}'"
        elif clause.path == tuple(path.split(".")):
            what = f"input '{clause.name}'" + ("" if clause.name == path else f" ({path})")
        else:
            what = f"variable '{path}', read by input '{clause.name}',"
        node: Any = context
        for part in path.split("."):
            node = node[part] if isinstance(node, dict) and part in node else absent
            if node is absent:
                break
        if node is absent:
            missing.append(path)
            warnings.append(f"{what} was not given: read as null")
        elif isinstance(node, float) and not math.isfinite(node):
            spelt = "NaN" if math.isnan(node) else "Infinity" if node > 0 else "-Infinity"
            warnings.append(f"{what} was given as {spelt}, which is no number in FEEL: read as null")
    facts: dict[str, Any] = {
        "decision_id": result.decision_id, "decision_name": result.decision_name, "hit_policy": result.hit_policy,
        "value": to_json(result.value, exact=True), "matched_rules": list(result.matched_rules),
        "inputs": to_json(decisions.read_values(result, context), exact=True),
        "rules": [{**rule.as_dict(), "outputs": to_json(rule.outputs, exact=True)} for rule in result.rules],
        "warnings": warnings, "missing_inputs": missing,
        "required": [_explanation(decisions, r, context, top=False) for r in result.required]}
    if top:
        read = {path[0] for path in decisions.read_paths(decision)}
        facts["unread_inputs"] = [name for name in context if name not in read]
    return facts


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: runs the command and turns every error into a message and an exit code. With ``--json``
    the error is also one JSON document on stdout (``{"error", "problems", "exit_code"}``), so a script that
    asked for JSON always gets JSON."""
    args = list(argv) if argv is not None else sys.argv[1:]
    as_json = "--json" in (args[:args.index("--")] if "--" in args else args)

    def as_document(message: str, code: int, problems: Sequence[Problem] = ()) -> None:
        if as_json:
            out.print_json(json.dumps(redact({"error": message, "problems": [p.as_dict() for p in problems],
                                              "exit_code": int(code)})))

    try:
        code = cli.main(args=args, prog_name="engine", standalone_mode=False)
    except click.exceptions.Exit as e:
        code = e.exit_code
    except click.ClickException as e:
        e.show()
        code = ExitCode.USAGE
        as_document(e.format_message(), code)
    except click.exceptions.Abort:
        err.print("stopped at once: what was in flight goes on at the next `engine run`")
        code = ExitCode.ABORTED
    except EngineError as e:
        for line in e.lines():
            err.print(redact(line), markup=False)
        code = e.exit_code
        where = e.subject.get("file")
        as_document(e.message, code, e.problems or ([Problem(e.message, file=str(where), line=e.subject.get(
            "line"))] if where is not None else []))
    except KeyboardInterrupt:
        err.print("stopped at once: what was in flight goes on at the next `engine run`")
        code = ExitCode.ABORTED
    except Exception as e:  # the one place that catches everything
        where = _log_path
        detail = traceback.format_exc()
        if _log_handle is not None:
            import structlog

            structlog.get_logger("engine").error("internal_error", error=repr(e), traceback=detail)
            _log_handle.flush()
        err.print(redact(f"internal error: {type(e).__name__}: {e}"), markup=False)
        err.print(f"the traceback is in {where}" if where else redact(detail), markup=False)
        code = ExitCode.INTERNAL
        as_document(f"internal error: {type(e).__name__}: {e}", code)
    sys.exit(int(code or 0))
