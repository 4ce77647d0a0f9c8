"""Plugin dispatch overhead: a kernel call to a trivial isolated plugin and back.

Three things are measured side by side in one run, each over the same number of calls:

- ``isolated``: ``Dispatcher.call`` on a no-op plugin running in a warm worker process (input and
  output schema checks, the framed request, the worker's context, the answer, the output checks);
- ``pipe``: a bare round trip of a small length-prefixed frame between two processes over a pair of
  pipes, the floor any worker protocol stands on;
- ``inprocess``: ``Dispatcher.call`` on the same plugin with ``isolation: "inprocess"``.

Usage: ``python bench/dispatch.py [--calls N]`` (default 10,000). The last line of output is one JSON
object with ``p50_ms``, ``p95_ms``, ``p99_ms`` (isolated), ``pipe_p95_ms``, ``inprocess_p95_ms`` and
the ratio of the isolated P95 to the pipe's.
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
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import structlog  # noqa: E402

from engine.plugins.dispatch import Dispatcher  # noqa: E402
from engine.plugins.loader import load_plugin  # noqa: E402
from engine.plugins.pool import WorkerPool  # noqa: E402
from engine.sdk import Context  # noqa: E402

SOURCE = "def noop(ctx, data):\n    return {'ok': True}\n"
ECHO = """
import os, struct, sys
r, w = int(sys.argv[1]), int(sys.argv[2])
while True:
    head = os.read(r, 4)
    if len(head) < 4:
        break
    (n,) = struct.unpack('>I', head)
    body = b''
    while len(body) < n:
        body += os.read(r, n - len(body))
    os.write(w, head + body)
"""


def make_plugin(root: Path, isolation: str) -> Path:
    folder = root / f"noop-{isolation}"
    (folder / "src").mkdir(parents=True)
    spec = {"id": folder.name, "version": "1.0.0", "category": "transformation", "isolation": isolation,
            "operations": {"noop": {"input_schema": {"type": "object", "required": ["task"]},
                                    "output_schema": {"type": "object", "required": ["ok"]}}}}
    (folder / "plugin.spec.json").write_text(json.dumps(spec))
    (folder / "manifest.json").write_text(json.dumps({"id": folder.name, "version": "1.0.0",
                                                      "entry_point": "src/noop.py"}))
    (folder / "src" / "noop.py").write_text(SOURCE)
    return folder


def percentiles(samples: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return {"p50_ms": round(cuts[49] * 1000, 4), "p95_ms": round(cuts[94] * 1000, 4),
            "p99_ms": round(cuts[98] * 1000, 4), "mean_ms": round(statistics.fmean(samples) * 1000, 4)}


def time_calls(call, n: int) -> list[float]:
    for _ in range(min(200, n)):  # warm up: worker started, caches filled
        call()
    samples = []
    clock = time.perf_counter
    for _ in range(n):
        start = clock()
        call()
        samples.append(clock() - start)
    return samples


def bench_dispatch(root: Path, isolation: str, n: int) -> list[float]:
    plugin = load_plugin(make_plugin(root, isolation))
    pool = WorkerPool(root)
    dispatcher = Dispatcher(pool)
    ctx = Context("run-bench", "task-bench", datetime(2026, 1, 1, tzinfo=UTC), 1, False, root, structlog.get_logger())
    data = {"task": {"id": "task-bench", "tool": "noop", "repo": ".", "args": {}, "tags": ["bench"]}}
    try:
        return time_calls(lambda: dispatcher.call(plugin, "noop", ctx, data, task_timeout=60), n)
    finally:
        pool.close()


def bench_pipe(n: int) -> list[float]:
    request_r, request_w = os.pipe()
    reply_r, reply_w = os.pipe()
    proc = subprocess.Popen([sys.executable, "-I", "-c", ECHO, str(request_r), str(reply_w)],
                            pass_fds=(request_r, reply_w))
    os.close(request_r)
    os.close(reply_w)
    body = json.dumps({"call": 1, "operation": "noop", "data": {"task": {"id": "task-bench"}}}).encode()
    frame = len(body).to_bytes(4, "big") + body

    def roundtrip() -> None:
        os.write(request_w, frame)
        got = b""
        while len(got) < len(frame):
            got += os.read(reply_r, 65536)

    try:
        return time_calls(roundtrip, n)
    finally:
        os.close(request_w)
        proc.wait()
        os.close(reply_r)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10_000)
    args = parser.parse_args()
    structlog.configure(logger_factory=structlog.ReturnLoggerFactory())
    with tempfile.TemporaryDirectory(prefix="engine-bench-") as tmp:
        root = Path(tmp)
        pipe = percentiles(bench_pipe(args.calls))
        inprocess = percentiles(bench_dispatch(root, "inprocess", args.calls))
        isolated = percentiles(bench_dispatch(root, "process", args.calls))
    print(f"{'':<12}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}{'mean ms':>10}")
    for name, row in (("isolated", isolated), ("bare pipe", pipe), ("in-process", inprocess)):
        print(f"{name:<12}{row['p50_ms']:>10.4f}{row['p95_ms']:>10.4f}{row['p99_ms']:>10.4f}{row['mean_ms']:>10.4f}")
    result = {"benchmark": "dispatch", "calls": args.calls, **{k: isolated[k] for k in ("p50_ms", "p95_ms", "p99_ms")},
              "pipe_p50_ms": pipe["p50_ms"], "pipe_p95_ms": pipe["p95_ms"], "pipe_p99_ms": pipe["p99_ms"],
              "inprocess_p50_ms": inprocess["p50_ms"], "inprocess_p95_ms": inprocess["p95_ms"],
              "inprocess_p99_ms": inprocess["p99_ms"],
              "p95_over_pipe": round(isolated["p95_ms"] / pipe["p95_ms"], 2),
              "python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count()}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
