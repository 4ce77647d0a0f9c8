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
from pathlib import Path
from typing import Any

from engine.sdk import Context, PluginError, ToolTask

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


def _argv(temp: str, flags: list[str], files: list[str]) -> list[str]:
    return [TOOL, "--message-file", f"{temp}/prompt.md", *FIXED, "--input-history-file", f"{temp}/input.history",
            "--chat-history-file", f"{temp}/chat.history.md", *flags, "--", *files]


def edit(ctx: Context, data: Mapping[str, Any]) -> dict[str, Any]:
    task = ToolTask.of(data["task"], TOOL, FLAGS)
    workdir = Path(ctx.workdir)
    plan = task.plan(workdir, _argv(TEMP, task.flags, task.files))
    if ctx.whatif:
        return {"plan": plan}
    with tempfile.TemporaryDirectory(prefix=f"engine-{TOOL}-") as temp:
        if Path(temp).resolve().is_relative_to(workdir.resolve()):
            raise PluginError(f"the temporary folder {temp} is inside the repository {workdir}; set TMPDIR "
                              "elsewhere", retryable=False)
        (Path(temp) / "prompt.md").write_text(task.prompt, encoding="utf-8")
        _, applied = task.apply(ctx, _argv(temp, task.flags, task.files))
    return {"plan": plan, "applied": applied}
