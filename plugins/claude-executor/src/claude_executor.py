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
from pathlib import Path, PurePosixPath
from typing import Any

from engine.sdk import Context, PluginError, run_tool, worktree_changes, worktree_snapshot

TOOL = "claude"
MODES = {"edit": "acceptEdits", "propose": "plan"}
# The task.flags claude may get: the name, and whether it takes a value (given as --name=value). Nothing
# that widens permissions or directories, adds tools or servers, or resumes another session.
FLAGS = {"--model": True, "--fallback-model": True, "--max-turns": True, "--append-system-prompt": True,
         "--verbose": False}


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


def _run(ctx: Context, data: Mapping[str, Any], operation: str) -> dict[str, Any]:
    task = data["task"]
    files = _files(task)
    prompt, flags = _prompt(task, files), _flags(task)
    argv = [TOOL, "-p", "--permission-mode", MODES[operation], "--output-format", "text", *flags]
    workdir = Path(ctx.workdir)
    if operation == "edit":
        plan = {"summary": f"would run {TOOL} on {', '.join(files) or 'the files it picks'} with the task's prompt "
                           f"in {workdir}",
                "changes": [{"path": f, "action": "modify" if (workdir / f).exists() else "create"} for f in files],
                "commands": [argv]}
    else:
        plan = {"summary": f"would ask {TOOL} for a proposal on the task's prompt in {workdir}, read only: "
                           "changes nothing", "changes": [], "commands": [argv]}
    if ctx.whatif:
        return {"plan": plan}
    before = worktree_snapshot(ctx)
    result = run_tool(ctx, argv, stdin=prompt)
    ctx.log.info("tool_exited", tool=TOOL, exit_code=result.returncode)
    if result.returncode != 0:
        raise PluginError(f"{TOOL} exited with code {result.returncode}: {result.tail(2000)}", retryable=False)
    after = worktree_changes(ctx, before)
    out: dict[str, Any] = {"plan": plan, "applied": {"exit_code": result.returncode, "output": result.tail(4000),
                                                     "changes": after.changes, "diff_lines": after.diff_lines}}
    if operation == "propose":
        out["proposal"] = result.stdout.strip()
    return out


def edit(ctx: Context, data: Mapping[str, Any]) -> dict[str, Any]:
    return _run(ctx, data, "edit")


def propose(ctx: Context, data: Mapping[str, Any]) -> dict[str, Any]:
    return _run(ctx, data, "propose")
