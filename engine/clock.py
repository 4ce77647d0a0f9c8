"""The only place that reads the time, waits, or makes ids.

Plugins never read the wall clock: they get ``now`` and ``seed`` through their call context, which the
kernel fills from a ``Clock``. Tests inject a ``FixedClock`` to make runs reproducible: every time and
id that can reach a plugin or a ledger record then comes out the same. ``monotonic`` and ``sleep`` only
measure durations and deadlines (ledger envelopes, timeouts); they stay real under ``FixedClock``, so a
hanging plugin still times out in a test.
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime, timedelta

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)  # where a FixedClock starts, and the ctx.now of conformance calls


class Clock:
    """Wall-clock time and random ids."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def new_id(self, prefix: str = "") -> str:
        """A sortable unique id: UTC timestamp, then random hex."""
        stamp = self.now().strftime("%Y%m%dT%H%M%SZ")
        return f"{prefix}{stamp}-{uuid.uuid4().hex[:8]}"

    def seed(self) -> int:
        return int.from_bytes(os.urandom(4), "big")


class FixedClock(Clock):
    """A clock that starts at a given instant and advances one second per reading; ids count up."""

    def __init__(self, start: datetime | None = None, seed: int = 0) -> None:
        self._now = start or EPOCH
        self._count = 0
        self._seed = seed

    def now(self) -> datetime:
        current = self._now
        self._now = current + timedelta(seconds=1)
        return current

    def advance(self, seconds: float) -> None:
        """Move the clock forward (a test's cool-down or timer passing)."""
        self._now += timedelta(seconds=seconds)

    def new_id(self, prefix: str = "") -> str:
        self._count += 1
        return f"{prefix}{self._count:06d}"

    def seed(self) -> int:
        return self._seed
