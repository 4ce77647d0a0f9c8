"""The plugin developer kit: the only ``engine`` module a plugin may import.

A plugin is a folder with ``plugin.spec.json`` (its contract), ``manifest.json`` (identity and entry
point) and a Python file that defines one function per operation::

    def status(ctx: Context, data: Mapping[str, Any]) -> dict[str, Any]: ...

Every call takes ``(ctx, data)``. ``data`` has been checked against the operation's ``input_schema``
and the returned dict is checked against its ``output_schema``. A plugin must not read the wall clock
(use ``ctx.now``) or draw unseeded randomness (use ``ctx.seed``). It signals a business error by raising
``PluginError(message, code="CODE")`` with a code its ``plugin.spec.json`` declares under ``errors``, and a
technical failure by raising ``PluginError(message, retryable=...)``. Anything else it raises, and
anything it prints, exits or crashes with, costs its own call only: the kernel reports it as a
technical error of that call.

A plugin that drives a command line tool runs it with ``run_tool`` (never through a shell), and reports
what the tool changed in the task's worktree with ``worktree_snapshot`` and ``worktree_changes``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import PluginError

if TYPE_CHECKING:  # types only: a worker starts without structlog (its ctx.log has the same methods)
    import subprocess
    from types import FrameType

    import structlog

__all__ = ["SDK_VERSION", "SUPPORTED_SDK_VERSIONS", "Context", "PluginError", "ToolResult", "ToolTask",
           "WorktreeChanges", "run_tool", "task_problems", "verdict", "worktree_changes", "worktree_snapshot"]

SDK_VERSION = "1.0"  # MAJOR.MINOR of this module's interface: Context, PluginError, run_tool, verdict ...
# the SDK versions this engine serves plugins written for (a plugin's spec may name them in sdk_versions)
SUPPORTED_SDK_VERSIONS = ("1.0",)
MAX_FINDINGS = 200  # findings listed in a verdict; its counts always cover all of them


@dataclass(frozen=True)
class Context:
    """What the kernel tells a plugin about the call. New needs become new fields, never new parameters."""

    run_id: str
    task_id: str
    now: datetime  # from the kernel clock: plugins never read the wall clock
    seed: int  # for any randomness
    whatif: bool  # plan only: change nothing
    workdir: Path  # the task's repository (or worktree)
    log: structlog.typing.FilteringBoundLogger  # already bound to run, task and plugin: bind, debug ... error
    workspace: Path | None = None  # the engine workspace the task runs in (for the kernel's built-in plugins)
    # Built-in orchestration plugins only (None in a worker): call another plugin through the kernel,
    # ``call(plugin_id, operation, data) -> output``, with the task's deadline, worktree and breakers.
    call: Callable[[str, str | None, Mapping[str, Any]], dict[str, Any]] | None = None


def verdict(check: str, passed: bool, summary: str, findings: list[dict[str, Any]], counts: dict[str, int], *,
            skipped: bool = False) -> dict[str, Any]:
    """A validation plugin's verdict, the shape the quality gate reads: ``{check, passed, skipped, summary,
    findings, counts}``, each finding ``{tool, file, line, rule, message}``; at most ``MAX_FINDINGS`` are
    listed (the summary says so). A skipped check never passes: the gate's table decides what it means."""
    shown = findings[:MAX_FINDINGS]
    if len(findings) > len(shown):
        summary += f" (the first {len(shown)} listed)"
    return {"check": check, "passed": passed and not skipped, "skipped": skipped, "summary": summary,
            "findings": shown, "counts": counts}


def task_problems(data: Mapping[str, Any] | Any) -> list[str]:
    """Every way ``data`` breaks the task.v1 contract, one line each with its JSON path; [] if none."""
    from engine.contracts import problems as _problems  # on first use: workers start without it

    return [f"{p.path}: {p.message}" for p in _problems("task.v1", data)]


def _not_found(tool: str) -> str:
    return f"{tool} not found on PATH; install it or put it on the PATH the engine runs with"


@dataclass(frozen=True)
class ToolTask:
    """What a task asks of a command line tool, checked: its ``prompt`` (required), its ``files``
    (relative, inside the repository) and its ``flags`` (only the ones the plugin allows). Build it with
    ``ToolTask.of``, which raises a ``PluginError`` naming the field."""

    tool: str
    prompt: str
    files: list[str]
    flags: list[str]

    @classmethod
    def of(cls, task: Mapping[str, Any], tool: str, allowed_flags: Mapping[str, bool]) -> ToolTask:
        """``allowed_flags`` maps each flag the tool may get to whether it takes a value (``--name=value``)."""
        prompt = task.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise PluginError(f"{tool}-executor needs task.prompt, the instruction for {tool}; this task has none",
                              retryable=False)
        files = [str(f) for f in task.get("files") or []]
        for name in files:
            parts = name.replace("\\", "/").split("/")
            if name.startswith("/") or ".." in parts:
                raise PluginError(f"task.files: {name!r} is not inside the repository; name files relative to it",
                                  retryable=False)
        flags = [str(f) for f in task.get("flags") or []]
        for flag in flags:
            name, eq, value = flag.partition("=")
            if name not in allowed_flags or allowed_flags[name] != bool(eq) or (eq and not value):
                allowed = ", ".join(f"{n}=VALUE" if v else n for n, v in allowed_flags.items())
                raise PluginError(f"task.flags: {flag!r} is not allowed for {tool}; allowed: {allowed}",
                                  retryable=False)
        return cls(tool, prompt, files, flags)

    def apply(self, ctx: Context, argv: Sequence[str], *,
              stdin: str | None = None) -> tuple[ToolResult, dict[str, Any]]:
        """Run the tool once in ``ctx.workdir`` and measure what it changed there: (its result, the
        ``applied`` part of the answer). A non-zero exit is a ``PluginError`` with the end of its output;
        its partial changes stay, for the kernel to roll back."""
        before = worktree_snapshot(ctx)
        result = run_tool(ctx, argv, stdin=stdin)
        ctx.log.info("tool_exited", tool=self.tool, exit_code=result.returncode)
        if result.returncode != 0:
            raise PluginError(f"{self.tool} exited with code {result.returncode}: {result.tail(2000)}",
                              retryable=False)
        after = worktree_changes(ctx, before)
        return result, {"exit_code": result.returncode, "output": result.tail(4000), "changes": after.changes,
                        "diff_lines": after.diff_lines}

    def plan(self, workdir: Path, command: Sequence[str]) -> dict[str, Any]:
        """The plan of running the tool once: the task's files it may change, and the command. A tool that
        is not on PATH fails the plan as it would fail the apply (WhatIf then foretells it)."""
        import shutil

        if shutil.which(str(command[0])) is None:
            raise PluginError(_not_found(str(command[0])), retryable=False)
        return {"summary": f"would run {self.tool} on {', '.join(self.files) or 'the files it picks'} with the "
                           f"task's prompt in {workdir}",
                "changes": [{"path": f, "action": "modify" if (workdir / f).exists() else "create"}
                            for f in self.files],
                "commands": [list(command)]}


@dataclass(frozen=True)
class ToolResult:
    """What an outside tool did when ``run_tool`` ran it: its exit code and its output, as text."""

    returncode: int
    stdout: str
    stderr: str

    def tail(self, chars: int = 4000) -> str:
        """The last ``chars`` characters of its output: stdout, then stderr."""
        return "\n".join(part.rstrip("\n") for part in (self.stdout, self.stderr) if part.strip())[-chars:]


def run_tool(ctx: Context, argv: Sequence[str], *, stdin: str | None = None, timeout: float | None = None,
             env: Mapping[str, str] | None = None) -> ToolResult:
    """Run an outside command line tool (an AI editor, git, a linter) in ``ctx.workdir`` and wait for it.

    A deliberate addition to the plugin surface (issue 11): every plugin that drives a tool needs the same
    care, so the kit gives it once. ``argv`` runs without a shell, in the worker's environment (``PATH``
    and the variables the plugin's spec lists under ``env``) plus ``env``; ``stdin`` is written to it (else
    it reads nothing); stdout and stderr are captured as UTF-8 text, bad bytes replaced. A non-zero exit is
    returned, not raised: what it means is the plugin's call.

    Raises ``PluginError`` (not retryable) when ``argv[0]`` is not on ``PATH`` or cannot be started, and
    when the tool outlives ``timeout`` seconds: its process group (the tool and what it started) is then
    killed. The tool runs in a process group of its own; when the kernel stops the worker at the call's
    deadline (SIGTERM), that group is killed too, so a tool does not outlive its call.
    """
    import shutil
    import subprocess

    if not argv:
        raise PluginError("run_tool needs a command: argv is empty", retryable=False)
    environ = {**os.environ, **(env or {})}
    program = shutil.which(argv[0], path=environ.get("PATH", os.defpath))
    if program is None:
        raise PluginError(_not_found(argv[0]), retryable=False, code=None)
    if not Path(ctx.workdir).is_dir():
        raise PluginError(f"cannot run {argv[0]}: its working directory {ctx.workdir} does not exist",
                          retryable=False)
    try:
        proc = subprocess.Popen(list(argv), executable=program, cwd=ctx.workdir, env=environ,
                                stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, process_group=0)
    except OSError as e:
        raise PluginError(f"{argv[0]} could not be started: {e}", retryable=False) from e
    restore = _stop_with_the_worker(proc.pid)
    try:
        out, err = proc.communicate(None if stdin is None else stdin.encode("utf-8"), timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(proc)
        raise PluginError(f"{argv[0]} timed out after {timeout:g} s and was stopped, with the processes it "
                          "started", retryable=False) from None
    except BaseException:
        _kill(proc)
        raise
    finally:
        restore()
    return ToolResult(proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))


def _kill(proc: subprocess.Popen[bytes]) -> None:
    """Kill the tool's process group, reap the tool, close our ends of its pipes."""
    import signal
    import subprocess

    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    try:
        proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:  # something that left the group still holds the pipes
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        proc.wait()


def _stop_with_the_worker(group: int) -> Callable[[], None]:
    """While a tool runs, a SIGTERM to this process (the kernel stopping a worker at the call's deadline)
    kills the tool's process group, then unwinds the call with ``SystemExit`` so that the plugin's
    ``finally`` and ``with`` blocks still remove its temporary files (the kernel's SIGKILL follows). Only
    where SIGTERM has its default action, on the main thread (a worker): a process with a handler of its
    own keeps it."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return lambda: None

    def stop(signum: int, frame: FrameType | None) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signal.SIGKILL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise SystemExit(128 + signum)

    def restore() -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)

    signal.signal(signal.SIGTERM, stop)
    return restore


@dataclass(frozen=True)
class WorktreeChanges:
    """What changed in a git working tree since a snapshot (``worktree_changes``)."""

    snapshot: str  # the working tree now, as a git tree id: the next call's ``since``
    changes: list[dict[str, str]]  # {"path", "action": "create" | "modify" | "delete"}, sorted by path
    diff_lines: int  # lines added plus lines removed (a binary file counts 0)


def worktree_snapshot(ctx: Context) -> str:
    """The working tree of ``ctx.workdir`` as it is now (tracked and untracked files, ``.gitignore``
    respected), as a git tree id to hand to ``worktree_changes`` later.

    Part of the same deliberate addition as ``run_tool``: a state-change plugin that runs a tool reports
    what the tool changed. It runs git through ``run_tool`` with a temporary index, so the index, HEAD, refs
    and files stay as they are; only unreferenced objects are added to the object store, which git's
    garbage collection removes. Not for WhatIf, which writes nothing at all.
    """
    import shutil
    import tempfile

    index = Path(ctx.workdir) / _git(ctx, "rev-parse", "--git-path", "index").strip()
    with tempfile.TemporaryDirectory(prefix="engine-snapshot-") as tmp:
        temp_index = os.path.join(tmp, "index")
        if index.is_file():  # a copy only saves hashing unchanged files again
            shutil.copy2(index, temp_index)  # its mtime kept, so git still re-reads racily clean files
        _git(ctx, "add", "--all", env={"GIT_INDEX_FILE": temp_index})
        return _git(ctx, "write-tree", env={"GIT_INDEX_FILE": temp_index}).strip()


def worktree_changes(ctx: Context, since: str) -> WorktreeChanges:
    """The files created, modified and deleted in ``ctx.workdir`` since the snapshot ``since``
    (``worktree_snapshot``), and the lines changed; renames count as a delete and a create."""
    now = worktree_snapshot(ctx)
    fields = _git(ctx, "diff", "--no-renames", "--name-status", "-z", since, now).split("\0")
    actions = {"A": "create", "D": "delete"}
    changes = [{"path": path, "action": actions.get(status[:1], "modify")}
               for status, path in zip(fields[0::2], fields[1::2], strict=False) if status]
    lines = 0
    for row in _git(ctx, "diff", "--no-renames", "--numstat", "-z", since, now).split("\0"):
        added, removed, *_ = [*row.split("\t", 2), "", ""]
        lines += sum(int(n) for n in (added, removed) if n.isdigit())
    return WorktreeChanges(now, sorted(changes, key=lambda c: c["path"]), lines)


def _git(ctx: Context, *args: str, env: Mapping[str, str] | None = None) -> str:
    result = run_tool(ctx, ["git", *args], env=env, timeout=600)
    if result.returncode != 0:
        raise PluginError(f"git {args[0]} failed in {ctx.workdir}: {result.stderr.strip()[-1000:]}",
                          retryable=False)
    return result.stdout
