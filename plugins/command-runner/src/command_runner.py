"""command-runner: runs one executable the workspace allows, with the task's argv, in the task's worktree.

A task of tool ``command`` names ``args.executable`` and ``args.argv`` (and, as the old worker gave them,
``args.flags`` and ``args.prompt``). The command line is ``executable *flags [--message-file FILE] *argv``,
run once without a shell (every argv element reaches the executable as it is written, metacharacters and
all) in ``ctx.workdir``: the task's worktree when applied, a throwaway clone when planned.

What may run is the workspace's call, never the task's: the executable must be named, exactly as the task
writes it, in ``[plugins] command_runner_allow`` of ``engine.toml`` (empty by default: a fresh workspace
runs no executable at all). It is a name looked up on ``PATH`` or a path relative to the repository that
stays inside it (symlinks followed); an absolute path is refused, allowed or not. ``legacy`` is the same
run for a task of the old worker whose tool has no plugin, only when ``[legacy] executor = true``; so is
a ``run`` whose ``args.legacy`` is true (the legacy adapter's mark). Its answer says ``"legacy": true``; the
ledger names the operation ``legacy`` when the task names it.

WhatIf (``ctx.whatif``) never starts the command: it checks all of the above, that the executable is
there, and says what would run. What a command changes cannot be known before it runs, so the plan lists
no changes; an apply measures them with git (``applied.changes``), for the kernel's checkpoint, the
quality gates and the commit, like every state change.
"""

from __future__ import annotations

import shutil
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.sdk import Context, PluginError, run_tool, worktree_changes, worktree_snapshot

ALLOW = "[plugins] command_runner_allow"
LEGACY = "[legacy] executor"
TEMP = "<temporary folder>"  # stands for the apply's own temporary folder in the plan's command
# What a shell would have said of these exit codes; here the executable itself was found and started.
EXIT_MEANINGS = {126: "a program it ran could not be executed",
                 127: "a program it ran was not found (command not found)"}


def _fail(message: str) -> PluginError:
    return PluginError(f"command-runner: {message}", retryable=False)


def _settings(ctx: Context) -> tuple[list[str], bool]:
    """``[plugins] command_runner_allow`` and ``[legacy] executor`` of the workspace's engine.toml. A plugin
    imports nothing of the engine but the SDK, so it reads the file itself; the kernel refused to start
    had the file been invalid. No workspace (a call from outside the engine): nothing allowed."""
    if ctx.workspace is None:
        return [], False
    path = Path(ctx.workspace) / "engine.toml"
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise _fail(f"the workspace's settings {path} cannot be read: {e}") from e
    plugins, legacy = raw.get("plugins") or {}, raw.get("legacy") or {}
    allow = plugins.get("command_runner_allow", []) if isinstance(plugins, dict) else []
    executor = legacy.get("executor", False) if isinstance(legacy, dict) else False
    if not isinstance(allow, list) or not all(isinstance(name, str) for name in allow):
        raise _fail(f"{ALLOW} in {path} must be a list of executable names")
    return allow, executor is True


@dataclass(frozen=True)
class _Command:
    """A command the task asks for, checked: allowed, confined, there."""

    executable: str  # as the task and the allow list write it
    program: str  # what runs: the name (found on PATH) or the path inside the repository, resolved
    flags: list[str]
    argv: list[str]
    prompt: str | None

    def line(self, program: str, temp: str) -> list[str]:
        prompt = ["--message-file", f"{temp}/prompt.md"] if self.prompt is not None else []
        return [program, *self.flags, *prompt, *self.argv]


def _strings(args: Mapping[str, Any], task: Mapping[str, Any], key: str) -> list[str]:
    value = args.get(key, task.get(key) if key == "flags" else None)  # task.flags: where task.v1 keeps them
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(f"task.args.{key} must be a list of strings, one argument each")
    return list(value)


def _confined(executable: str, workdir: Path) -> Path | None:
    """Where a path-like ``executable`` leads, inside the repository (None for a bare name, found on PATH);
    anything else is refused, allowed or not."""
    if "\0" in executable or executable.startswith("-"):
        raise _fail(f"task.args.executable {executable!r} is not an executable's name")
    if Path(executable).is_absolute() or executable.startswith("~"):
        raise _fail(f"task.args.executable {executable!r} is an absolute path, which is refused: name an "
                    "executable on PATH, or one inside the repository by a path relative to it")
    if "/" not in executable and "\\" not in executable:
        return None
    path = (workdir / executable).resolve()
    if not path.is_relative_to(workdir.resolve()):
        raise _fail(f"task.args.executable {executable!r} leads outside the repository ({path}), which is "
                    "refused: name an executable on PATH, or one inside the repository")
    return path


def _program(executable: str, path: Path | None, workdir: Path) -> str:
    """What runs: the name, once it is known to be on PATH, or the path inside the repository."""
    if path is None:
        if shutil.which(executable) is None:
            raise _fail(f"{executable} not found on PATH; install it or put it on the PATH the engine runs with "
                        "(a shell would exit 127: command not found)")
        return executable
    if not path.is_file():
        raise _fail(f"{executable} not found in the repository {workdir} (a shell would exit 127: command not "
                    "found)")
    return str(path)


def _command(ctx: Context, data: Mapping[str, Any], *, legacy: bool) -> _Command:
    allow, executor = _settings(ctx)
    task = data.get("task") or {}
    args = task.get("args") or {}
    executable = args.get("executable")
    if not isinstance(executable, str) or not executable:
        raise _fail("task.args.executable is missing: name the executable to run")
    if legacy and not executor:
        raise _fail(f"the legacy executor is off in this workspace, so {executable!r} (a tool of the old worker "
                    f"with no plugin) does not run: set {LEGACY} = true in engine.toml to run such tasks (and list "
                    f"the executable in {ALLOW})")
    workdir = Path(ctx.workdir)
    path = _confined(executable, workdir)  # confinement first: an absolute path never runs, even if listed
    if executable not in allow:
        allowed = ", ".join(allow) if allow else "none"
        raise _fail(f"{executable!r} is not an executable this workspace allows (allowed: {allowed}); add it to "
                    f"{ALLOW} in engine.toml to let tasks run it")
    program = _program(executable, path, workdir)
    prompt = args["prompt"] if "prompt" in args else task.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        raise _fail("task.args.prompt must be text")
    return _Command(executable, program, _strings(args, task, "flags"), _strings(args, task, "argv"), prompt)


def _outcome(command: _Command, returncode: int, tail: str) -> str:
    meaning = EXIT_MEANINGS.get(returncode) or (f"killed by signal {-returncode}" if returncode < 0 else "")
    return f"{command.executable} exited with code {returncode}{f' ({meaning})' if meaning else ''}: {tail}"


def _execute(ctx: Context, data: Mapping[str, Any], *, legacy: bool) -> dict[str, Any]:
    args = (data.get("task") or {}).get("args") or {}
    legacy = legacy or args.get("legacy") is True  # the legacy adapter's mark, whatever the operation
    command = _command(ctx, data, legacy=legacy)
    workdir = Path(ctx.workdir)
    shown = command.line(command.executable, TEMP)
    what = f"{len(command.flags) + len(command.argv)} argument(s)" + (" and the prompt file" if command.prompt
                                                                       is not None else "")
    plan = {"summary": f"would run {command.executable}{' (legacy)' if legacy else ''} with {what} in {workdir}; "
                       "what it changes is known once it ran", "changes": [], "commands": [shown]}
    answer: dict[str, Any] = {"plan": plan, "command": {"executable": command.executable, "legacy": legacy}}
    if ctx.whatif:
        return answer
    if legacy:
        ctx.log.warning("legacy_executor", executable=command.executable)
    with tempfile.TemporaryDirectory(prefix="engine-command-") as temp:
        if Path(temp).resolve().is_relative_to(workdir.resolve()):
            raise _fail(f"the temporary folder {temp} is inside the repository {workdir}; set TMPDIR elsewhere")
        if command.prompt is not None:
            (Path(temp) / "prompt.md").write_text(command.prompt, encoding="utf-8")
        before = worktree_snapshot(ctx)
        result = run_tool(ctx, command.line(command.program, temp))
    ctx.log.info("command_exited", executable=command.executable, exit_code=result.returncode, legacy=legacy)
    if result.returncode != 0:  # what it changed before it failed stays, for the kernel to roll back
        raise _fail(_outcome(command, result.returncode, result.tail(2000)))
    after = worktree_changes(ctx, before)
    answer["applied"] = {"exit_code": 0, "output": result.tail(4000), "changes": after.changes,
                         "diff_lines": after.diff_lines}
    return answer


def run(ctx: Context, data: Mapping[str, Any]) -> dict[str, Any]:
    """Run the allowed executable with the task's argv (tool ``command``)."""
    return _execute(ctx, data, legacy=False)


def legacy(ctx: Context, data: Mapping[str, Any]) -> dict[str, Any]:
    """The legacy executor: an old-worker task whose tool has no plugin, run as the old worker ran it."""
    return _execute(ctx, data, legacy=True)
