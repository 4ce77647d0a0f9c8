"""Step cost along one long process instance: does the 10,000th step cost what the 10th did?

One task runs through a loop of three steps per round (a merging gateway, a script task, a gateway
that loops back) until it has taken ``--steps`` steps, in a real workspace through the real kernel
(in process, the real clock). The ledger's step entries carry their times; a step's cost is the time
from the entry before it to its own. The cost near the start (steps 10 to 60) and near the end (the
last 50 steps) are compared as medians.

Usage: ``python bench/step_growth.py [--steps N]`` (default 10,000). The last line of output is one JSON
object with ``steps``, ``first_us`` and ``last_us`` (median microseconds per step), ``growth`` (last /
first; goal <= 1.2) and ``total_s``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import structlog  # noqa: E402

from engine.clock import Clock  # noqa: E402
from engine.testing import KernelHarness  # noqa: E402

MODEL = ROOT / "tests" / "data" / "process" / "long_loop.bpmn"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000)
    args = parser.parse_args()
    structlog.configure(logger_factory=structlog.ReturnLoggerFactory())
    rounds = max(1, (args.steps - 2) // 3)
    with tempfile.TemporaryDirectory() as tmp:
        harness = KernelHarness(Path(tmp) / "ws", clock=Clock())
        started = time.perf_counter()
        task, entries = harness.long_task(MODEL, rounds)
        total = time.perf_counter() - started
    times = [datetime.fromisoformat(e["envelope"]["ts"]) for e in entries]
    costs = [(b - a).total_seconds() * 1e6 for a, b in zip(times, times[1:], strict=False)]
    first = statistics.median(costs[9:59])
    last = statistics.median(costs[-50:])
    print(f"{task['steps']} steps in {total:.2f} s; end event {task.get('end_event')}")
    print(f"median step cost: steps 10-60 {first:.0f} us, last 50 {last:.0f} us: growth {last / first:.2f}")
    print(json.dumps({"benchmark": "step_growth", "steps": task["steps"], "end_event": task.get("end_event"),
                      "first_us": round(first, 1), "last_us": round(last, 1), "growth": round(last / first, 3),
                      "total_s": round(total, 2),
                      "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                                  "platform": platform.platform()}}))


if __name__ == "__main__":
    main()
