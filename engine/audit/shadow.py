"""``engine shadow``: a task file planned by the new kernel beside what the old worker recorded for it.

The file runs as ``engine run --whatif`` runs the inbox (plans only, nothing claimed or changed; the record
goes to ``.engine/whatif/<run-id>/``). Each task's planned outcome is put in the old worker's terms
(``engine.audit.legacy_ledger``: the exit code its last attempt would get) and set beside the old ledger's
last attempt for the same id. A task agrees when both say ok, or both say not ok (its exit codes may then
differ: ``exit_differs``). The differences, by kind:

- ``old_ok_new_failed``: the old worker succeeded, the new kernel plans a failure or quarantine (or the line
  is invalid for it);
- ``old_failed_new_ok``: the reverse;
- ``new_not_run``: the old worker ran it; the new kernel would not reach it (an earlier task of the file
  stops the file, or the file has a bad line and runs nothing);
- ``missing_old``: in the file, not in the old ledger;
- ``missing_new``: in the old ledger, not in the file (give the old ledger's lines of this file only).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.audit.legacy_ledger import EXIT_BAD_JSON, attempt_steps, attempts, bad_lines, read_old_ledger
from engine.ledger import Ledger

KINDS = ("old_ok_new_failed", "old_failed_new_ok", "new_not_run", "missing_old", "missing_new")


def _planned(kernel: Any, task_file: Path) -> tuple[str | None, dict[str, dict[str, Any]], list[str]]:
    """(what-if run id, task id -> planned outcome in old terms, the ids in file order)."""
    parsed = kernel.queue.parse_file(task_file, str(task_file))
    order: list[str] = []
    new: dict[str, dict[str, Any]] = {}
    if parsed.problems:
        for task_id, _, _ in bad_lines(task_file.read_bytes(), [p.line for p in parsed.problems], task_file.name):
            order.append(task_id)
            new[task_id] = {"status": "invalid", "ok": False, "exit": EXIT_BAD_JSON,
                            "reason": "the line is not a valid task: the file runs nothing"}
        for item in parsed.tasks:
            order.append(item.task.id)
            new[item.task.id] = {"status": "not_run", "ok": False, "exit": None, "line": item.line,
                                 "reason": "the file holds an invalid line, so none of it runs"}
        return None, new, order
    summary = kernel.whatif(files=[task_file])
    folder = kernel.ws.engine_dir / "whatif" / summary.run_id
    ended: dict[tuple[int, str], dict[str, Any]] = {}
    for entry in Ledger(folder).entries():
        record = entry.get("record") or {}
        if record.get("kind") == "run" and record.get("status") != "started":
            ended[(int(record.get("line") or 0), str(record.get("task_id")))] = record
    calls: dict[tuple[int, str], list[dict[str, Any]]] = {}
    plans = folder / "plans.jsonl"
    for raw in plans.read_text(encoding="utf-8").splitlines() if plans.exists() else []:
        call = json.loads(raw)
        calls.setdefault((int(call.get("line") or 0), str(call.get("task_id"))), []).append(call)
    steps = attempt_steps(kernel.models)
    for item in parsed.tasks:
        order.append(item.task.id)
        record = ended.get((item.line, item.task.id))
        if record is None:
            new[item.task.id] = {"status": "not_run", "ok": False, "exit": None, "line": item.line,
                                 "reason": "an earlier task of the file stops it before this one"}
            continue
        status, reason = str(record["status"]), record.get("reason")
        last = attempts(status, reason, calls.get((item.line, item.task.id), []), steps)[-1]
        new[item.task.id] = {"status": status, "ok": last.ok, "exit": last.exit, "line": item.line,
                             "reason": reason}
    return summary.run_id, new, order


def _difference(old: dict[str, Any] | None, new: dict[str, Any] | None) -> str | None:
    if old is None:
        return "missing_old"
    if new is None:
        return "missing_new"
    if new["status"] == "not_run":
        return "new_not_run"
    old_ok = old.get("ok") is True or (old.get("ok") is None and old.get("exit") == 0)
    if old_ok and not new["ok"]:
        return "old_ok_new_failed"
    if not old_ok and new["ok"]:
        return "old_failed_new_ok"
    return None


def shadow(kernel: Any, task_file: Path, old_ledger: Path) -> dict[str, Any]:
    """The shadow report of ``task_file`` against the old worker's ledger ``old_ledger`` (the document
    ``engine shadow --json`` prints; contracts/cli.v1.json ``$defs/shadow``)."""
    old, problems = read_old_ledger(old_ledger)
    run_id, new, order = _planned(kernel, task_file)
    ids = [*order, *(i for i in old if i not in new)]
    tasks: list[dict[str, Any]] = []
    differences: list[dict[str, Any]] = []
    for task_id in ids:
        was = old.get(task_id)
        then = {"ok": was.get("ok") is True or (was.get("ok") is None and was.get("exit") == 0),
                "exit": was.get("exit"), "attempt": was["attempt"]} if was is not None else None
        now = new.get(task_id)
        kind = _difference(was, now)
        exit_differs = then is not None and now is not None and then["exit"] != now["exit"]
        tasks.append({"id": task_id, "old": then, "new": now, "agree": kind is None, "exit_differs": exit_differs})
        if kind is not None:
            differences.append({"id": task_id, "kind": kind, "old": then, "new": now})
    return {"file": str(task_file), "old_ledger": str(old_ledger), "whatif_run": run_id, "tasks": tasks,
            "agree": sum(1 for t in tasks if t["agree"]), "differences": differences, "problems": problems}
