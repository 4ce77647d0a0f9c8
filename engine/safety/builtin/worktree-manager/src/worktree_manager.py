"""worktree-manager: built into the engine (``engine/safety``), shaped as a plugin so the process can
name its steps. It runs in the engine's process and may use the kernel's safety module."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.safety import checkpoints, worktrees
from engine.sdk import Context, PluginError


def _root(ctx: Context) -> Path:
    """Where the task's worktree goes: ``.engine/worktrees``; in a WhatIf run, the run's own folder, where
    a throwaway clone stands in for it."""
    if ctx.workspace is None:
        raise PluginError("worktree-manager runs only inside the engine (no workspace in its context)")
    if ctx.whatif:
        return ctx.workspace / ".engine" / "whatif" / ctx.run_id / "worktrees"
    return ctx.workspace / ".engine" / "worktrees"


def _plan(summary: str, commands: list[list[str]]) -> dict[str, Any]:
    return {"summary": summary, "changes": [], "commands": commands}


def create(ctx: Context, data: Mapping[str, Any]) -> dict[str, Any]:
    root = _root(ctx)
    real = ctx.workspace / ".engine" / "worktrees" / ctx.task_id if ctx.workspace else root / ctx.task_id
    branch = worktrees.branch_for(ctx.task_id)
    plan = _plan(f"would make the worktree {real} on branch {branch} from HEAD of {ctx.workdir}",
                 [["git", "worktree", "add", "-B", branch, str(real), "HEAD"]])
    if ctx.whatif:  # the next steps plan in a throwaway clone that looks like that worktree
        try:
            rehearsal = worktrees.rehearse(ctx.workdir, root, ctx.task_id)
        except worktrees.WorktreeError as e:
            raise PluginError(e.message, retryable=False) from e
        return {"plan": plan, "worktree": {**rehearsal.as_dict(), "rehearsal": True}}
    try:
        made = worktrees.create(ctx.workdir, root, ctx.task_id, run_id=ctx.run_id)
    except worktrees.WorktreeError as e:
        raise PluginError(e.message, retryable=False) from e
    ctx.log.info("worktree_created", path=str(made.path), branch=made.branch, base=made.base)
    return {"plan": plan, "worktree": made.as_dict()}


def rollback(ctx: Context, data: Mapping[str, Any]) -> dict[str, Any]:
    raw = data.get("checkpoint")
    ref = raw.get("ref") or raw.get("sha") if isinstance(raw, Mapping) else raw
    if not ref:
        return {"plan": _plan("nothing to roll back: no checkpoint was taken", []), "rolled_back": None}
    plan = _plan(f"would restore {ctx.workdir} to checkpoint {ref}", [["git", "read-tree", "--reset", "-u", str(ref)]])
    if ctx.whatif:
        return {"plan": plan, "rolled_back": None}
    try:
        checkpoints.restore(ctx.workdir, str(ref))
    except checkpoints.CheckpointError as e:
        raise PluginError(e.message, retryable=False) from e
    ctx.log.info("rolled_back", workdir=str(ctx.workdir), checkpoint=str(ref))
    return {"plan": plan, "rolled_back": str(ref)}


def remove(ctx: Context, data: Mapping[str, Any]) -> dict[str, Any]:
    root = _root(ctx)
    plan = _plan(f"would remove the worktree {ctx.workdir} (its branch stays)",
                 [["git", "worktree", "remove", "--force", str(ctx.workdir)]])
    if not Path(ctx.workdir).resolve().is_relative_to(root.resolve()):
        return {"plan": _plan("no worktree to remove", []), "worktree": None}
    if ctx.whatif:
        shutil.rmtree(ctx.workdir, ignore_errors=True)  # the rehearsal clone, inside the what-if run's folder
    else:
        try:
            worktrees.remove(Path(ctx.workdir))
        except worktrees.WorktreeError as e:
            raise PluginError(e.message, retryable=False) from e
    return {"plan": plan, "worktree": None}


def merge(ctx: Context, data: Mapping[str, Any]) -> dict[str, Any]:
    """Merge the task's branch into the base branch its worktree was made from, only when that is safe."""
    try:
        found = worktrees.merge_plan(Path(ctx.workdir))
    except worktrees.WorktreeError as e:
        raise PluginError(e.message, retryable=False) from e
    into, how = found["into"], found["how"]
    where = f" (checked out in {found['checked_out'][0]})" if found["checked_out"] else ""
    plan = _plan(f"would {'leave' if how == 'up to date' else how} {into}{where} with {found['branch']}",
                 [] if how == "up to date" else [["git", "merge", "--no-edit", found["branch"]]])
    if ctx.whatif:
        return {"plan": plan, "merged": None}
    try:
        done = worktrees.merge(Path(ctx.workdir), when=ctx.now.isoformat())
    except worktrees.WorktreeError as e:
        raise PluginError(e.message, retryable=False) from e
    ctx.log.info("merged", into=into, how=how, sha=done["sha"])
    return {"plan": plan, "merged": {"into": into, "how": how, "sha": done["sha"]}}
