"""codex-executor: runs the codex CLI non-interactively (``codex exec``), once, in the task's worktree.

WhatIf (``ctx.whatif``) never starts codex. An apply runs ``codex exec`` in the sandbox mode
``workspace-write`` (it may write inside the working directory, not elsewhere, and has no network for
the commands it runs; ``codex exec`` never asks for approval) with the prompt on stdin (``-``), and
reports what changed in the working tree. Codex's workspace sandbox keeps ``.git`` read only, so it
cannot commit; committing is the process's business, after the quality gates.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from engine.sdk import Context, PluginError, run_tool, worktree_changes, worktree_snapshot

TOOL = "codex"
# The task.flags codex may get: the name, and whether it takes a value (given as --name=value). Nothing
# that changes the sandbox or approvals, overrides configuration, or reads or writes other files.
FLAGS = {"--model": True, "--ephemeral": False, "--skip-git-repo-check": False}


def _prompt(task: Mapping[str, Any], files: list[str]) -> str:
    prompt = task.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise PluginError(f"{TOOL}-executor needs task.prompt, the instruction for {TOOL}; this task has none",
                          retryable=False)
    return prompt + (f"\n\nFiles to work on: {', '.join(files)}" if files else "")


def _files(task: Mapping[str, Any]) -> list[str]:
    files = [str(f) for f in task.get("files") or []]
    for name in files:
        path = PurePosixPath(name)
        if path.is_absolute() or ".." in path.parts:
            raise PluginError(f"task.files: {name!r} is not inside the repository; name files relative to it",
                              retryable=False)
    return files


def _flags(task: Mapping[str, Any]) -> list[str]:
    for flag in task.get("flags") or []:
        name, eq, value = str(flag).partition("=")
        if name not in FLAGS or FLAGS[name] != bool(eq) or (eq and not value):
            allowed = ", ".join(f"{n}=VALUE" if v else n for n, v in FLAGS.items())
            raise PluginError(f"task.flags: {flag!r} is not allowed for {TOOL}; allowed: {allowed}",
                              retryable=False)
    return [str(f) for f in task.get("flags") or []]


def edit(ctx: Context, data: Mapping[str, Any]) -> dict[str, Any]:
    task = data["task"]
    files = _files(task)
    prompt, flags = _prompt(task, files), _flags(task)
    argv = [TOOL, "exec", "--sandbox", "workspace-write", "--color", "never", *flags, "-"]
    workdir = Path(ctx.workdir)
    plan = {"summary": f"would run {TOOL} on {', '.join(files) or 'the files it picks'} with the task's prompt "
                       f"in {workdir}",
            "changes": [{"path": f, "action": "modify" if (workdir / f).exists() else "create"} for f in files],
            "commands": [argv]}
    if ctx.whatif:
        return {"plan": plan}
    before = worktree_snapshot(ctx)
    result = run_tool(ctx, argv, stdin=prompt)
    ctx.log.info("tool_exited", tool=TOOL, exit_code=result.returncode)
    if result.returncode != 0:
        raise PluginError(f"{TOOL} exited with code {result.returncode}: {result.tail(2000)}", retryable=False)
    after = worktree_changes(ctx, before)
    return {"plan": plan, "applied": {"exit_code": result.returncode, "output": result.tail(4000),
                                      "changes": after.changes, "diff_lines": after.diff_lines}}
