"""Policy evaluation cost per check: ``PolicyEngine.check`` with the shipped policies, embedded engine.

Usage: ``python bench/policy.py [--checks N] [--candidates]`` (default 2,000 checks, after 100 warm-up
checks). The input is a typical task at the ``task`` phase: a normalised task.v1 with a prompt of a few
sentences, args, three files, flags, tags and metadata, a state-change plugin with WhatIf, an
environment of six names and no secret anywhere (the common case: every shape's cheap hint test fails).
A second series checks the same task carrying a GitHub token in its prompt and a 40-line diff (the
regular expressions run). ``--candidates`` also times the same query on each installed candidate
evaluator directly (regorus, regopy), for decision 0012.

The last line of output is one JSON object: ``{"benchmark": "policy", "checks": N, "p50_ms", "p95_ms",
"p99_ms", "mean_ms", "secret_p50_ms", "secret_p95_ms", ...}``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.policy import PolicyEngine  # noqa: E402

POLICIES = ROOT / "policies"
QUERY = "s := data.engine.security.deny; c := data.engine.compliance.deny; k := data.engine.security.secrets"


def typical_input() -> dict[str, Any]:
    return {
        "phase": "task",
        "task": {
            "id": "task-0042", "tool": "claude", "repo": "repos/service",
            "args": {"operation": "edit", "model": "default", "max_turns": 8},
            "files": ["src/service/api.py", "src/service/models.py", "tests/test_api.py"],
            "prompt": ("Add input validation to the create endpoint in src/service/api.py: reject empty names "
                       "and names longer than 200 characters with a 422 response, and add tests for both cases "
                       "in tests/test_api.py. Keep the existing behaviour for valid input unchanged."),
            "flags": ["--verbose"], "timeout_sec": 900, "retry": {"max_retries": 2, "backoff_sec": 30},
            "tags": ["feature", "api"], "metadata": {"owner": "ann", "ticket": "SVC-118", "environment": "dev"},
        },
        "plugin": {"id": "ai-executor", "category": "state_change", "whatif": True},
        "checkpoint": None,
        "env": ["HOME", "PATH", "LANG", "TERM", "TMPDIR", "ANTHROPIC_API_KEY"],
    }


def secret_input() -> dict[str, Any]:
    doc = typical_input()
    doc["phase"] = "apply"
    doc["checkpoint"] = "3f2a9c1"
    doc["task"]["prompt"] += " Push with ghp_" + "A1b2C3d4" * 5 + "."
    lines = ["--- a/src/service/api.py", "+++ b/src/service/api.py", "@@ -10,6 +10,40 @@"]
    lines += [f"+    check_{i} = validate(name, limit={i})" for i in range(37)]
    doc["diff"] = "\n".join(lines)
    return doc


def timings(call: Callable[[], Any], checks: int, warmup: int = 100) -> list[float]:
    for _ in range(warmup):
        call()
    out = []
    for _ in range(checks):
        start = time.perf_counter()
        call()
        out.append((time.perf_counter() - start) * 1000)
    return out


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    q = statistics.quantiles(ordered, n=100)
    return {"p50": round(statistics.median(ordered), 4), "p95": round(q[94], 4), "p99": round(q[98], 4),
            "mean": round(statistics.fmean(ordered), 4)}


def candidates(doc: dict[str, Any], checks: int) -> dict[str, dict[str, float]]:
    """The same query on each installed candidate evaluator, called directly."""
    os.environ.setdefault("RUST_BACKTRACE", "0")
    sources = {p.name: p.read_text(encoding="utf-8") for p in sorted(POLICIES.glob("*.rego"))}
    text = json.dumps(doc)
    out: dict[str, dict[str, float]] = {}
    try:
        import regorus
    except ImportError:
        pass
    else:
        engine = regorus.Engine()
        for name, source in sources.items():
            engine.add_policy(name, source)

        def run_regorus() -> Any:
            engine.set_input_json(text)
            return engine.eval_query_as_json(QUERY)
        out["regorus"] = summary(timings(run_regorus, checks))
    try:
        import regopy
    except ImportError:
        pass
    else:
        rego = regopy.Interpreter()
        for name, source in sources.items():
            rego.add_module(name, source)

        def run_regopy() -> Any:
            rego.set_input_term(text)
            return rego.query(QUERY)
        out["regopy"] = summary(timings(run_regopy, max(checks // 4, 100)))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, default=2000, help="checks timed per series (at least 1,000)")
    parser.add_argument("--candidates", action="store_true", help="also time each candidate evaluator directly")
    opts = parser.parse_args()
    checks = max(opts.checks, 1000)

    engine = PolicyEngine.load(POLICIES)
    plain, secret = typical_input(), secret_input()
    assert engine.check(plain).allowed, engine.check(plain).messages()
    found = engine.check(secret)
    assert [d.rule for d in found.denials] == ["github_token"], found.messages()

    clean = summary(timings(lambda: engine.check(plain), checks))
    dirty = summary(timings(lambda: engine.check(secret), checks))
    print(f"policies: {', '.join(p.name for p in engine.files)}; evaluator: {engine.evaluator}; {checks} checks each")
    print(f"{'':24}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}{'mean ms':>10}")
    for label, row in (("typical task (allowed)", clean), ("token + 40-line diff", dirty)):
        print(f"{label:24}{row['p50']:10.4f}{row['p95']:10.4f}{row['p99']:10.4f}{row['mean']:10.4f}")
    result: dict[str, Any] = {"benchmark": "policy", "checks": checks, "evaluator": engine.evaluator,
                              "p50_ms": clean["p50"], "p95_ms": clean["p95"], "p99_ms": clean["p99"],
                              "mean_ms": clean["mean"], "secret_p50_ms": dirty["p50"], "secret_p95_ms": dirty["p95"],
                              "secret_p99_ms": dirty["p99"]}
    if opts.candidates:
        for name, row in candidates(plain, checks).items():
            print(f"{'raw ' + name:24}{row['p50']:10.4f}{row['p95']:10.4f}{row['p99']:10.4f}{row['mean']:10.4f}")
            result[f"{name}_p50_ms"] = row["p50"]
            result[f"{name}_p95_ms"] = row["p95"]
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
