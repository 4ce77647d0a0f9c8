"""task-parser: validates a task against task.v1 and returns it in normal form."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any

from engine.sdk import Context, PluginError, task_problems

DEFAULTS: dict[str, Any] = {"repo": ".", "args": {}, "files": [], "prompt": None, "flags": [], "timeout_sec": 600,
                            "retry": {"max_retries": 0, "backoff_sec": 0}, "tags": [], "metadata": {}}


def _path(raw: str) -> str:
    path = posixpath.normpath(raw.replace("\\", "/"))
    if path.startswith("../") or path == "..":
        raise PluginError(f"file path {raw!r} leaves the repository", retryable=False)
    return path


def normalize(ctx: Context, data: Mapping[str, Any]) -> dict[str, Any]:
    raw = data["task"]
    found = task_problems(raw)
    if found:
        raise PluginError("task is not a valid task.v1: " + "; ".join(found), retryable=False)
    task = {**DEFAULTS, **{k: v for k, v in raw.items() if k != "schema"}}
    task["retry"] = {**DEFAULTS["retry"], **task["retry"]}
    task["tool"] = task["tool"].strip().lower()
    task["tags"] = sorted({t.strip().lower() for t in task["tags"]})
    task["flags"] = sorted(set(task["flags"]))
    task["files"] = [_path(f) for f in task["files"]]
    return {"task": task}
