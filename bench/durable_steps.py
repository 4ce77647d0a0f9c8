"""What keeping a task's process state durable costs along one long task: flat, or growing with its steps?

One task runs a loop of four steps per round (a merging gateway, a plugin call, a script task, a gateway
that loops back) until it has taken ``--steps`` steps, through the real kernel in this process, its
plugin (``napper``, the test plugin, asked to sleep 0 s) in a worker of its own. Every plugin call is a
durable point before and after (``engine.process.state``): one line appended to the task's state journal
and fsync'd. For each durable point the bench notes the bytes written and the time spent writing it
(making the line and the fsync); the steps' times come from the ledger's envelopes.

Compared: the durable points from the 10th step on and those at the end (medians of 50 points each),
and the time per step there (means of 200 steps each: the machine is shared and noisy). The last line of
output is one JSON object with ``steps``, ``bytes_first``, ``bytes_last``, ``bytes_growth``,
``write_us_first``, ``write_us_last``, ``write_growth``, ``step_us_first``, ``step_us_last``, ``step_growth``
(goal for the bytes and the time per step: growth <= 1.2), ``durable_points`` and ``total_s``.

Usage: ``python bench/durable_steps.py [--steps N]`` (default 1,200: the end is past the 1,000th step).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import structlog  # noqa: E402

from engine.clock import Clock  # noqa: E402
from engine.process import runtime  # noqa: E402
from engine.testing import KernelHarness  # noqa: E402

MODEL = ROOT / "tests" / "data" / "process" / "long_calls.bpmn"
PLUGIN = ROOT / "tests" / "data" / "plugins" / "napper"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1200)
    args = parser.parse_args()
    structlog.configure(logger_factory=structlog.ReturnLoggerFactory())
    rounds = max(10, (args.steps - 2) // 4)
    points: list[dict[str, Any]] = []
    durable = runtime.TaskRunner._durable

    def measured(self: runtime.TaskRunner, workflow: Any) -> None:  # the real method, timed from outside
        journal = self.journal
        size = journal.path.stat().st_size if journal is not None and journal.exists() else 0
        started = time.perf_counter()
        durable(self, workflow)
        took = time.perf_counter() - started
        after = journal.path.stat().st_size if journal is not None and journal.exists() else 0
        points.append({"step": self.steps, "bytes": after - size, "us": took * 1e6})

    runtime.TaskRunner._durable = measured  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory() as tmp:
        harness = KernelHarness(Path(tmp) / "ws", clock=Clock())
        shutil.copytree(PLUGIN, harness.root / "plugins" / "napper")
        started = time.perf_counter()
        task, entries = harness.long_task(MODEL, rounds)
        total = time.perf_counter() - started
    times = [datetime.fromisoformat(e["envelope"]["ts"]) for e in entries]
    costs = [(b - a).total_seconds() * 1e6 for a, b in zip(times, times[1:], strict=False)]
    early = [p for p in points if p["step"] >= 10][:50]
    late = points[-50:]
    result = {
        "benchmark": "durable_steps", "steps": task["steps"], "durable_points": len(points),
        "bytes_first": statistics.median(p["bytes"] for p in early),
        "bytes_last": statistics.median(p["bytes"] for p in late),
        "write_us_first": round(statistics.median(p["us"] for p in early), 1),
        "write_us_last": round(statistics.median(p["us"] for p in late), 1),
        # means, not medians: a round's steps are two kinds (quick gateways, a call and a script with a
        # durable point), so a median of a window jumps between the two
        "step_us_first": round(statistics.mean(costs[9:209]), 1),
        "step_us_last": round(statistics.mean(costs[-200:]), 1),
        "total_s": round(total, 2),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
    }
    for name in ("bytes", "write_us", "step_us"):
        result[f"{name.split('_')[0] if name == 'bytes' else name.rsplit('_', 1)[0]}_growth"] = round(
            result[f"{name}_last"] / result[f"{name}_first"], 2)
    print(f"{task['steps']} steps, {len(points)} durable points in {total:.1f} s")
    print(f"bytes per durable point: {result['bytes_first']} near step 10, {result['bytes_last']} at the end")
    print(f"time to write one: {result['write_us_first']} us near step 10, {result['write_us_last']} us at the end")
    print(f"time per step: {result['step_us_first']} us near step 10, {result['step_us_last']} us at the end")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
