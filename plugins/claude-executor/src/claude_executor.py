"""claude-executor: runs Claude Code headless (``claude -p``), once, in the task's worktree.

WhatIf (``ctx.whatif``) never starts claude. ``edit`` lets Claude edit files in the working directory
only (permission mode ``acceptEdits``: edits inside the working directory are accepted, anything that
would need a person's approval, such as a shell command, is refused since nobody is there to approve it)
and reports what changed in the working tree. ``propose`` asks for a plan in the read-only permission
mode ``plan`` and returns its text; it changes nothing in either mode. The prompt goes to claude on
stdin, so it is never taken for an option and never shows in a process list.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.sdk import Context, ToolTask

TOOL = "claude"
MODES = {"edit": "acceptEdits", "propose": "plan"}
# The task.flags claude may get: the name, and whether it takes a value (given as --name=value). Nothing
# that widens permissions or directories, adds tools or servers, or resumes another session.
FLAGS = {"--model": True, "--fallback-model": True, "--max-turns": True, "--append-system-prompt": True,
         "--verbose": False}


def _prompt(task: ToolTask) -> str:
    """The prompt on stdin (never an argument: it cannot be read as an option), with the task's files."""
    return task.prompt + (f"\n\nFiles to work on: {', '.join(task.files)}" if task.files else "")


def _run(ctx: Context, data: Mapping[str, Any], operation: str) -> dict[str, Any]:
    task = ToolTask.of(data["task"], TOOL, FLAGS)
    argv = [TOOL, "-p", "--permission-mode", MODES[operation], "--output-format", "text", *task.flags]
    workdir = Path(ctx.workdir)
    if operation == "edit":
        plan = task.plan(workdir, argv)
    else:
        plan = {"summary": f"would ask {TOOL} for a proposal on the task's prompt in {workdir}, read only: "
                           "changes nothing", "changes": [], "commands": [argv]}
    if ctx.whatif:
        return {"plan": plan}
    result, applied = task.apply(ctx, argv, stdin=_prompt(task))
    out: dict[str, Any] = {"plan": plan, "applied": applied}
    if operation == "propose":
        out["proposal"] = result.stdout.strip()
    return out


def edit(ctx: Context, data: Mapping[str, Any]) -> dict[str, Any]:
    return _run(ctx, data, "edit")


def propose(ctx: Context, data: Mapping[str, Any]) -> dict[str, Any]:
    return _run(ctx, data, "propose")
