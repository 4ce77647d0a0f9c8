"""After a crash: the state changes a dead kernel left half done are undone before new work starts.

Each entry of the apply journal names a task, its worktree and the checkpoint taken just before the
apply. The rollback decision of the process's DMN (``rollback_trigger``) is asked with what such an
apply looks like, ``exit_code`` -9 (killed) and the ``diff_lines`` it left in the worktree, and its
answer is carried out: ``rollback`` restores the worktree to the task's first checkpoint; ``manual``
sends the task's file to ``quarantine/`` with the explanation; ``keep`` leaves the worktree as it is.
The file then runs again from that line, as any file of a dead worker does. Every outcome is a ledger
entry, and the journal entry is moved to ``settled/``, never deleted.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.errors import EngineError
from engine.ledger import Ledger
from engine.queue import TaskQueue
from engine.safety import checkpoints
from engine.safety.journal import Entry, Journal

Decide = Callable[[dict[str, Any]], str]  # the rollback decision: inputs -> rollback | keep | manual


def _restore(entry: Entry) -> tuple[str, str]:
    body = entry.body
    worktree = Path(str(body.get("worktree", "")))
    first = body.get("first_checkpoint") or body.get("checkpoint") or {}
    ref = first.get("sha") or first.get("ref") if isinstance(first, dict) else None
    if not ref or not worktree.is_dir():
        return "failed", f"cannot roll back: the worktree {worktree} or its checkpoint is gone"
    try:
        checkpoints.restore(worktree, str(ref))
    except EngineError as e:
        return "failed", f"rollback failed: {e.message}"
    return "rolled_back", f"restored {worktree} to checkpoint {ref}"


def recover(journal: Journal, queue: TaskQueue, ledger: Ledger, decide: Decide,
            envelope: Callable[[], dict[str, Any]], log: Any) -> list[dict[str, Any]]:
    """Handle every pending journal entry; returns what was done, one dict per entry."""
    done: list[dict[str, Any]] = []
    for entry in journal.pending():
        body = entry.body
        worktree = Path(str(body.get("worktree", "")))
        checkpoint = (body.get("checkpoint") or {}).get("sha") if isinstance(body.get("checkpoint"), dict) else None
        try:
            diff_lines = checkpoints.changed_lines(worktree, str(checkpoint)) if checkpoint else 0
        except EngineError:
            diff_lines = 1  # something is there that cannot be measured: treat it as a change
        try:
            action = decide({"exit_code": -9, "diff_lines": diff_lines, "crashed": True})
        except EngineError as e:
            action, why = "manual", f"the rollback decision failed ({e.message})"
        else:
            why = f"the rollback decision said {action!r} for a killed apply with {diff_lines} changed line(s)"
        status, detail = "kept", "the worktree was left as it is"
        if action == "rollback":
            status, detail = _restore(entry)
        if action == "manual" or status == "failed":
            status = "quarantined" if _quarantine(queue, body, f"{why}; {detail}") else status
        record = {"kind": "safety", "status": status, "task_id": body.get("task_id"),
                  "reason": f"an apply of {body.get('plugin')}.{body.get('operation')} was cut off by a crash: "
                            f"{why}; {detail}", "detail": {k: body.get(k) for k in (
                                "run_id", "step", "worktree", "checkpoint", "first_checkpoint")}}
        for key in ("task_file", "line", "step"):
            if body.get(key) is not None:
                record[key] = body[key]
        ledger.append(record, envelope())
        log.warning("apply_recovered", status=status, task_id=body.get("task_id"), detail=detail)
        journal.settle(entry, status)
        done.append(record)
    return done


def _quarantine(queue: TaskQueue, body: dict[str, Any], reason: str) -> bool:
    name = body.get("task_file")
    if not isinstance(name, str):
        return False
    claim = queue.claim_recovered(name)
    if claim is None:
        return False
    report = {"file": name, "status": "quarantine", "reason": f"line {body.get('line')} (task "
              f"{body.get('task_id')}): {reason}", "worktree": body.get("worktree"),
              "checkpoint": body.get("first_checkpoint") or body.get("checkpoint")}
    queue.finish(claim, "quarantine", report)
    return True
