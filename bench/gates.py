"""A whole task through the quality gates: what Verify costs, and what the task costs around it.

Each round runs one `file-writer` task on a small Python repository (a package and its tests) through
the real kernel and the shipped process: worktree, checkpoint, the change, Measure, gate tier L0-L3
(a .py file changed), Gate checks, Verify (ruff-checker and pytest-runner, each in its worker, on the
worktree), Rollback decision, Commit, Publish, Remove worktree. The Verify step's duration and the
task's are read from the ledger's envelopes.

Usage: ``python bench/gates.py [--rounds N]`` (default 5). The last line of output is one JSON object
with the medians and P95s in milliseconds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import structlog  # noqa: E402

from engine.testing import KernelHarness  # noqa: E402


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=b", "-c", "user.email=b@b", *args], cwd=repo, check=True,
                   capture_output=True)


def workspace(root: Path) -> KernelHarness:
    harness = KernelHarness(root, example=False)
    repo = harness.root / "app"
    (repo / "pkg").mkdir(parents=True)
    (repo / "tests").mkdir()
    (repo / "pkg" / "__init__.py").write_text("")
    (repo / "pkg" / "core.py").write_text("def add(a, b):\n    return a + b\n")
    for i in range(20):
        (repo / "tests" / f"test_{i}.py").write_text(f"from pkg.core import add\n\n\ndef test_{i}():\n"
                                                      f"    assert add({i}, 1) == {i + 1}\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "start")
    return harness


def quantile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    structlog.configure(logger_factory=structlog.ReturnLoggerFactory())
    verify: list[float] = []
    task: list[float] = []
    with tempfile.TemporaryDirectory(prefix="engine-bench-gates-") as tmp:
        harness = workspace(Path(tmp) / "ws")
        for i in range(args.rounds):
            harness.put(f"{i:03d}.jsonl", {"id": f"w{i}", "tool": "write", "repo": "app", "args": {"files": [
                {"path": "pkg/core.py", "content": f"def add(a, b):\n    return a + b  # round {i}\n"}]}})
            started = time.perf_counter()
            summary = harness.run()
            task.append((time.perf_counter() - started) * 1000)
            if summary.tasks.get("done") != 1:
                raise SystemExit(f"round {i}: the task did not pass its gates: {summary}")
            durations = [e["envelope"].get("duration_ms") for e in harness.ledger()
                         if e["record"].get("task_id") == f"w{i}" and e["record"].get("step") == "Task_verify"]
            verify.append(float(durations[-1]))
            print(f"round {i + 1}: task {task[-1]:8.1f} ms, verify (ruff + pytest) {verify[-1]:8.1f} ms")
    result = {"benchmark": "gates", "rounds": args.rounds,
              "verify_median_ms": round(statistics.median(verify), 1), "verify_p95_ms": round(quantile(verify, 95), 1),
              "task_median_ms": round(statistics.median(task), 1), "task_p95_ms": round(quantile(task, 95), 1),
              "python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count()}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
