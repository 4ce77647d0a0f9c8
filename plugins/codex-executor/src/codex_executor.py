"""codex-executor: runs the codex CLI non-interactively (``codex exec``), once, in the task's worktree.

WhatIf (``ctx.whatif``) never starts codex. An apply runs ``codex exec`` in the sandbox mode
``workspace-write`` (it may write inside the working directory, not elsewhere, and has no network for
the commands it runs; ``codex exec`` never asks for approval) with the prompt on stdin (``-``), and
reports what changed in the working tree. Codex's workspace sandbox keeps ``.git`` read only, so it
cannot commit; committing is the process's business, after the quality gates.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.sdk import Context, ToolTask

TOOL = "codex"
# The task.flags codex may get: the name, and whether it takes a value (given as --name=value). Nothing
# that changes the sandbox or approvals, overrides configuration, or reads or writes other files.
FLAGS = {"--model": True, "--ephemeral": False, "--skip-git-repo-check": False}


def edit(ctx: Context, data: Mapping[str, Any]) -> dict[str, Any]:
    task = ToolTask.of(data["task"], TOOL, FLAGS)
    argv = [TOOL, "exec", "--sandbox", "workspace-write", "--color", "never", *task.flags, "-"]
    plan = task.plan(Path(ctx.workdir), argv)
    if ctx.whatif:
        return {"plan": plan}
    _, applied = task.apply(ctx, argv, stdin=_prompt(task))
    return {"plan": plan, "applied": applied}


def _prompt(task: ToolTask) -> str:
    """The prompt on stdin (never an argument: it cannot be read as an option), with the task's files."""
    return task.prompt + (f"\n\nFiles to work on: {', '.join(task.files)}" if task.files else "")
