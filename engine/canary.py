"""Running beside the old worker: canary routing (``engine run --canary PERCENT``) and ``STOP.HEADLESS``.

**Routing.** Every inbox file is routed before this kernel claims it (a routing pass at the start and
before each claim, and the queue asks ``CanaryRouter.admit`` of the very file it is about to claim, so a
file renamed into the inbox after a pass is routed too). A task file is the new kernel's when the stable
hash of its routing key falls in the canary's share: ``int(SHA-256(key)[:8]) mod 10,000 < PERCENT * 100``.
The key is the ``id`` of the file's first task line (the first non-blank line, read as JSON), or the
file's name when that line has no string ``id`` (not JSON, not an object). The decision depends on nothing
else (not the time, the worker or the order of files), so the same files go the same way every time, on
every machine, and raising PERCENT only moves files from the old worker to the new kernel, never back. A
file left to the old worker is moved (renamed, never copied, never over a file of the same name) into
``[legacy] old_inbox``; each decision is a queue record of the ledger, written before the file moves.

**Stop file.** ``.tasks/STOP.HEADLESS`` (beside the queue's folders, where the old worker looked for it
beside its queue) stops ``engine run`` as SIGTERM does: the task running finishes, the file is given back,
and the run exits 9 when work is left. It is checked before each claim, between tasks and while the run waits,
and once seen it stays seen for the run; delete it before the next start.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BUCKETS = 10_000
STOP_FILE = "STOP.HEADLESS"


def bucket(key: str) -> int:
    """The key's bucket, 0 to 9,999: the first 8 bytes of its SHA-256, mod 10,000."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") % BUCKETS


def to_new_kernel(key: str, percent: float) -> bool:
    """Whether a file whose routing key is ``key`` is the new kernel's at a canary of ``percent``."""
    return bucket(key) < round(percent * 100)


def routing_key(path: Path) -> str:
    """The first task line's ``id``, else the file's name."""
    try:
        with path.open("rb") as handle:
            for raw in handle:
                if raw.strip():
                    body = json.loads(raw.decode("utf-8-sig"))
                    if isinstance(body, dict) and isinstance(body.get("id"), str) and body["id"]:
                        return str(body["id"])
                    break
    except (OSError, ValueError, RecursionError):
        pass
    return path.name


@dataclass(frozen=True)
class Route:
    """Where one task file goes: ``new`` (this kernel) or ``old`` (moved to the old worker's inbox)."""

    name: str
    key: str
    bucket: int
    to: str

    def record(self, percent: float, moved_to: str | None = None) -> dict[str, Any]:
        """The queue record of the ledger that says so."""
        detail: dict[str, Any] = {"canary_percent": percent, "key": self.key, "bucket": self.bucket,
                                  "route": self.to}
        if moved_to is not None:
            detail["moved_to"] = moved_to
        transition = "inbox->inbox" if self.to == "new" else "inbox->legacy"
        return {"kind": "queue", "task_file": self.name, "transition": transition,
                "status": "routed_new" if self.to == "new" else "routed_old", "detail": detail}


class CanaryRouter:
    """Routes the inbox's task files between this kernel and the old worker, each file once per run."""

    def __init__(self, percent: float, old_inbox: Path, record: Callable[[dict[str, Any]], object]) -> None:
        if not 0 <= percent <= 100:
            raise ValueError(f"a canary is a percentage from 0 to 100, not {percent}")
        self.percent = percent
        self.old_inbox = old_inbox
        self.record = record  # writes one ledger record durably (before the move it announces)
        self._new: set[str] = set()  # the files this run routed to itself

    def route(self, inbox: Iterable[Path]) -> list[Route]:
        """Decide each file not decided yet; move those of the old worker. Returns the decisions made."""
        made = []
        for path in inbox:
            if path.name in self._new:
                continue
            key = routing_key(path)
            route = Route(path.name, key, bucket(key), "new" if to_new_kernel(key, self.percent) else "old")
            if route.to == "new":
                self.record(route.record(self.percent))
                self._new.add(path.name)
            else:
                target = self._free(path.name)
                self.record(route.record(self.percent, moved_to=str(target)))
                if not self._move(path, target):
                    continue  # another worker took or moved it
            made.append(route)
        return made

    def admit(self, path: Path) -> bool:
        """Whether the inbox file ``path`` is this kernel's to claim: routed now if it was not yet (a file
        that arrived after the last routing pass), moved to the old worker's inbox if it is its."""
        if path.name not in self._new:
            self.route([path])
        return path.name in self._new

    def _move(self, path: Path, target: Path) -> bool:
        """Move ``path`` to ``target`` (or the next free name), never over a file; False when it is gone."""
        while True:
            try:
                os.link(path, target)  # fails on a file of that name, even one made since _free looked
            except FileExistsError:
                target = self._free(path.name)
                continue
            except FileNotFoundError:
                return False
            os.unlink(path)
            return True

    def _free(self, name: str) -> Path:
        """``old_inbox/name``, or ``old_inbox/<stem>.<n>.jsonl`` when that name is taken."""
        self.old_inbox.mkdir(parents=True, exist_ok=True)
        target = self.old_inbox / name
        stem, dot, suffix = name.rpartition(".")
        n = 1
        while target.exists():
            target = self.old_inbox / (f"{stem}.{n}.{suffix}" if dot else f"{name}.{n}")
            n += 1
        return target


class StopFile:
    """``stop()`` for a run: true once the caller's own ``stop()`` is, or ``folder/STOP.HEADLESS`` exists (one
    ``stat`` per question, so it is honoured at each claim and between tasks; once seen, seen for the run)."""

    def __init__(self, folder: Path, stop: Callable[[], bool]) -> None:
        self.path = folder / STOP_FILE
        self._stop = stop
        self.seen = False

    def __call__(self) -> bool:
        if self._stop():
            return True
        self.seen = self.seen or self.path.exists()
        return self.seen
