"""Circuit breakers, one per plugin: a tool that keeps failing is cut off for a while.

``closed``: calls go through; a technical failure is counted. ``failures`` failures within
``window_sec`` open the breaker. ``open``: calls fail at once with ``engine.breaker_open``, without
reaching the plugin, until ``cooldown_sec`` have passed; then the breaker is ``half_open`` and lets one
probe call through: its success closes the breaker, its failure opens it again for another cool-down.
A business error (a declared code) is the plugin doing its job: it counts as a success.

The state of every breaker is one JSON file, ``.engine/state/breakers.json``, rewritten atomically and
fsync'd on every change, so it survives restarts; times come from the kernel's clock.
"""

from __future__ import annotations

import copy
import json
import os
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from engine.clock import Clock
from engine.durable import write_durably

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
BREAKERS_FILE = "breakers.json"


@dataclass(frozen=True)
class Thresholds:
    failures: int = 5
    window_sec: float = 600
    cooldown_sec: float = 300


class Breakers:
    def __init__(self, path: Path, clock: Clock, thresholds: Thresholds) -> None:
        self.path, self.clock, self.thresholds = path, clock, thresholds
        self._lock = threading.Lock()  # parallel branches of a task record their calls from several threads
        # the file as last read, by its stat: read again only when it changed (it is replaced on every change,
        # by this kernel or another one), not on each of the two or three looks every plugin call takes
        self._read: tuple[tuple[int, int, int, int], dict[str, dict[str, Any]]] | None = None

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return {}
        except OSError:
            return {}
        key = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        if self._read is not None and self._read[0] == key:
            return copy.deepcopy(self._read[1])
        try:
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            return {}  # a garbled file cannot be trusted to keep a breaker open: start closed, say so in status
        state = loaded if isinstance(loaded, dict) else {}
        self._read = (key, state)
        return copy.deepcopy(state)

    def _save(self, state: dict[str, dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_durably(self.path, (json.dumps(state, sort_keys=True, indent=2) + "\n").encode())

    def state(self, plugin: str) -> dict[str, Any]:
        """``{"state", "failures": [iso times], "opened_at", "reason"}`` of one plugin, as it is now."""
        entry = self._load().get(plugin) or {"state": CLOSED, "failures": []}
        if entry.get("state") == OPEN and self._cooled(entry):
            entry = {**entry, "state": HALF_OPEN}
        return entry

    def all(self) -> dict[str, dict[str, Any]]:
        return {plugin: self.state(plugin) for plugin in sorted(self._load())}

    def _cooled(self, entry: dict[str, Any]) -> bool:
        opened = datetime.fromisoformat(str(entry.get("opened_at")))
        return self.clock.now() >= opened + timedelta(seconds=self.thresholds.cooldown_sec)

    def allows(self, plugin: str) -> tuple[bool, str | None]:
        """Whether a call may go to ``plugin`` now, and if not, why (for the task's reason)."""
        entry = self.state(plugin)
        if entry["state"] != OPEN:
            return True, None
        until = datetime.fromisoformat(str(entry["opened_at"])) + timedelta(seconds=self.thresholds.cooldown_sec)
        return False, (f"the circuit breaker of plugin {plugin} is open since {entry['opened_at']} after "
                       f"{len(entry.get('failures') or [])} failures ({entry.get('reason')}); it lets a call "
                       f"through again after {until.isoformat()}")

    def record(self, plugin: str, ok: bool, reason: str | None = None) -> dict[str, Any]:
        """Count one call's result; returns the breaker's new state."""
        with self._lock:
            return self._record(plugin, ok, reason)

    def _record(self, plugin: str, ok: bool, reason: str | None) -> dict[str, Any]:
        state = self._load()
        entry = self.state(plugin)
        now = self.clock.now()
        if ok:
            if entry["state"] == CLOSED and not entry.get("failures"):
                return entry  # nothing to write: the common case costs no fsync
            entry = {"state": CLOSED, "failures": []}
        else:
            window = now - timedelta(seconds=self.thresholds.window_sec)
            failures = [t for t in entry.get("failures") or [] if datetime.fromisoformat(t) >= window]
            failures.append(now.isoformat())
            if entry["state"] == HALF_OPEN or len(failures) >= self.thresholds.failures:
                entry = {"state": OPEN, "failures": failures, "opened_at": now.isoformat(), "reason": reason}
            else:
                entry = {"state": CLOSED, "failures": failures}
        state[plugin] = entry
        self._save(state)
        return entry


def breakers_of(workspace: Path, clock: Clock | None = None) -> Breakers:
    """The breakers of a workspace (``.engine/state/breakers.json``), with its performance policy's
    thresholds."""
    from engine.workspace import Workspace

    policy = Workspace(workspace).performance().breaker
    return Breakers(workspace / ".engine" / "state" / BREAKERS_FILE, clock or Clock(),
                    Thresholds(policy.failures, policy.window_sec, policy.cooldown_sec))
