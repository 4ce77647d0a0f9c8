"""aider-executor: runs the aider command line, headless, once, in the task's worktree.

WhatIf (``ctx.whatif``) never starts aider: it says what would run and which of the task's files it
would touch. An apply writes the prompt to a temporary folder outside the repository, runs aider with
it, and reports what changed in the working tree (measured with git, untracked files included). Aider
never commits, never asks, and does not use git at all (``--no-git``): it adds the files it creates to
git's index otherwise. Committing is the process's business, after the quality gates.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from engine.sdk import Context, PluginError, run_tool, worktree_changes, worktree_snapshot

TOOL = "aider"
TEMP = "<temporary folder>"  # stands for the apply's own temporary folder in the plan's command
# Always given: one message, then exit; yes to every question; no commit and no git; plain output; no
# update check, analytics, shell commands or URL fetching; chat histories outside the repository.
FIXED = ["--yes-always", "--no-auto-commits", "--no-dirty-commits", "--no-git", "--no-gitignore", "--no-pretty",
         "--no-stream", "--no-fancy-input", "--no-check-update", "--no-show-release-notes", "--no-analytics",
         "--no-suggest-shell-commands", "--no-detect-urls"]
# The task.flags aider may get: the name, and whether it takes a value (given as --name=value). Nothing
# that commits, reads or writes other files, runs commands, or changes where aider connects.
FLAGS = {"--model": True, "--weak-model": True, "--editor-model": True, "--edit-format": True, "--architect": False,
         "--reasoning-effort": True, "--thinking-tokens": True, "--max-chat-history-tokens": True, "--timeout": True,
         "--cache-prompts": False, "--no-cache-prompts": False, "--auto-lint": False, "--no-auto-lint": False,
         "--chat-language": True, "--encoding": True, "--verbose": False}


def _prompt(task: Mapping[str, Any]) -> str:
    prompt = task.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise PluginError(f"{TOOL}-executor needs task.prompt, the instruction for {TOOL}; this task has none",
                          retryable=False)
    return prompt


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


def _argv(temp: str, flags: list[str], files: list[str]) -> list[str]:
    return [TOOL, "--message-file", f"{temp}/prompt.md", *FIXED, "--input-history-file", f"{temp}/input.history",
            "--chat-history-file", f"{temp}/chat.history.md", *flags, "--", *files]


def edit(ctx: Context, data: Mapping[str, Any]) -> dict[str, Any]:
    task = data["task"]
    prompt, files, flags = _prompt(task), _files(task), _flags(task)
    workdir = Path(ctx.workdir)
    plan = {"summary": f"would run {TOOL} on {', '.join(files) or 'the files it picks'} with the task's prompt "
                       f"in {workdir}",
            "changes": [{"path": f, "action": "modify" if (workdir / f).exists() else "create"} for f in files],
            "commands": [_argv(TEMP, flags, files)]}
    if ctx.whatif:
        return {"plan": plan}
    before = worktree_snapshot(ctx)
    with tempfile.TemporaryDirectory(prefix=f"engine-{TOOL}-") as temp:
        if Path(temp).resolve().is_relative_to(workdir.resolve()):
            raise PluginError(f"the temporary folder {temp} is inside the repository {workdir}; set TMPDIR "
                              "elsewhere", retryable=False)
        (Path(temp) / "prompt.md").write_text(prompt, encoding="utf-8")
        result = run_tool(ctx, _argv(temp, flags, files))
    ctx.log.info("tool_exited", tool=TOOL, exit_code=result.returncode)
    if result.returncode != 0:
        raise PluginError(f"{TOOL} exited with code {result.returncode}: {result.tail(2000)}", retryable=False)
    after = worktree_changes(ctx, before)
    return {"plan": plan, "applied": {"exit_code": result.returncode, "output": result.tail(4000),
                                      "changes": after.changes, "diff_lines": after.diff_lines}}
