"""Start-up time of the commands an operator types most: `engine --help`, `engine status`, `engine decide`.

Each command runs as a new process (the installed `engine` entry point's Python, `-m engine`) in an
example workspace, interleaved, ``--runs`` times; wall time from spawn to exit. A bare `python -c pass`
runs alongside as the floor (the interpreter's own start).

Usage: ``python bench/startup.py [--runs N]`` (default 15). The last line of output is one JSON object
with the median wall milliseconds of each (``help_ms``, ``status_ms``, ``decide_ms``, ``python_ms``).
Goals (issue 14): help and status under 150 ms, decide under 250 ms, on an idle machine.
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

from engine.workspace import init  # noqa: E402

COMMANDS = {
    "help": ["--help"],
    "status": ["status"],
    "decide": ["decide", "retry_policy", "--input", "failures=1", "--input", 'error={"retryable": true}',
               "--input", 'task={"retry": {"max_retries": 2, "backoff_sec": 1}}'],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "ws"
        init(ws, example=True)
        env = {k: v for k, v in os.environ.items() if k != "ENGINE_WORKSPACE"}
        times: dict[str, list[float]] = {name: [] for name in [*COMMANDS, "python"]}
        for _ in range(args.runs):
            for name, argv in [*COMMANDS.items(), ("python", None)]:
                command = [sys.executable, "-c", "pass"] if argv is None else [sys.executable, "-m", "engine", *argv]
                started = time.perf_counter()
                subprocess.run(command, cwd=ws, env=env, capture_output=True, check=True)
                times[name].append((time.perf_counter() - started) * 1000)
    medians = {name: round(statistics.median(values), 1) for name, values in times.items()}
    for name, value in medians.items():
        print(f"{name:8} median {value:7.1f} ms  (min {min(times[name]):.1f}, max {max(times[name]):.1f})")
    print(json.dumps({"benchmark": "startup", "runs": args.runs, **{f"{k}_ms": v for k, v in medians.items()},
                      "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                                  "platform": platform.platform()}}))


if __name__ == "__main__":
    main()
