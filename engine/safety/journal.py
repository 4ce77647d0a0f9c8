"""The apply journal: which state changes are in flight, so a kernel killed mid-apply can undo them.

Before the kernel lets a state-change plugin apply anything, it writes one entry to
``.engine/state/applies/`` (fsync'd) naming the task, the worktree and the checkpoint taken just
before; when the call returns, however it ends, the entry is removed. An entry found when the engine
starts belongs to an apply whose kernel died: the kernel restores its checkpoint (or quarantines the
task, as the rollback decision says) before it takes new work.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.durable import write_durably


@dataclass(frozen=True)
class Entry:
    path: Path
    body: dict[str, Any]


class Journal:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, key: str) -> Path:
        return self.folder / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".json")

    def begin(self, key: str, body: dict[str, Any]) -> Path:
        """Durably note that the apply ``key`` (run, task and step) starts; returns the entry's file."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self._path(key)
        write_durably(path, (json.dumps({"key": key, **body}, sort_keys=True, indent=2) + "\n").encode())
        return path

    def end(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def pending(self) -> list[Entry]:
        """The entries of applies that never ended, oldest first; an unreadable one is kept as text."""
        if not self.folder.is_dir():
            return []
        found: list[Entry] = []
        for path in sorted(self.folder.glob("*.json"), key=lambda p: p.stat().st_mtime):
            try:
                body = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                body = {"unreadable": path.read_text(encoding="utf-8", errors="replace")[:2000]}
            found.append(Entry(path, body if isinstance(body, dict) else {"unreadable": str(body)[:2000]}))
        return found

    def settle(self, entry: Entry, outcome: str) -> Path:
        """Move a handled entry to ``settled/`` with how it was handled (kept, never deleted)."""
        settled = self.folder / "settled"
        settled.mkdir(parents=True, exist_ok=True)
        target = settled / entry.path.name
        write_durably(target, (json.dumps({**entry.body, "settled": outcome}, sort_keys=True, indent=2)
                               + "\n").encode())
        entry.path.unlink(missing_ok=True)
        return target
