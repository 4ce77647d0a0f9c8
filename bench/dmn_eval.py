"""Evaluations per second: engine.dmn against SpiffWorkflow 3.2.0's own DMN engine.

    python bench/dmn_eval.py [--seconds 3]

Builds one 4-input, 50-rule UNIQUE decision table whose cells both engines read the same way (string
literals, ``<``/``>=`` comparisons, ``-``), checks that both give the same answer for 500 contexts,
then evaluates it repeatedly with each engine for about ``--seconds`` each. The last line printed is
one JSON object: {"engine_eval_per_s": ..., "spiff_eval_per_s": ..., "ratio": ...}.

The comparison is conservative for engine.dmn: under UNIQUE it checks every rule (to report a
second match), while SpiffWorkflow stops at the first match.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine  # noqa: E402
from SpiffWorkflow.dmn.parser.BpmnDmnParser import BpmnDmnParser  # noqa: E402

from engine import dmn  # noqa: E402

REGIONS = ["north", "south", "east", "west", "central"]
TIERS = ["gold", "silver", "bronze", "basic", "trial"]
INPUTS = [("Region", "region", "string"), ("Tier", "tier", "string"), ("Amount", "amount", "number"),
          ("Score", "score", "number")]


def table_xml() -> str:
    """50 disjoint rules: region x tier x (amount < 1000 | amount >= 1000); score >= 0 (or any) on each."""
    rules = []
    for r in range(50):
        cells = [f'"{REGIONS[r % 5]}"', f'"{TIERS[(r // 5) % 5]}"', "&lt; 1000" if r < 25 else "&gt;= 1000",
                 "&gt;= 0" if r % 2 else "-"]
        entries = "".join(f'<inputEntry id="r{r}_i{i}"><text>{c}</text></inputEntry>' for i, c in enumerate(cells))
        rules.append(f'<rule id="r{r}">{entries}<outputEntry id="r{r}_o"><text>{r * 10}</text></outputEntry></rule>')
    inputs = "".join(
        f'<input id="in{i}" label="{label}"><inputExpression id="in{i}_e" typeRef="{t}"><text>{expr}</text>'
        f"</inputExpression></input>" for i, (label, expr, t) in enumerate(INPUTS))
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" id="bench" name="bench" '
            'namespace="http://example.org/bench">'
            '<decision id="price_band" name="Price Band"><decisionTable id="t" hitPolicy="UNIQUE">'
            f'{inputs}<output id="out" name="band" typeRef="number"/>{"".join(rules)}'
            "</decisionTable></decision></definitions>")


def contexts(n: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        out.append({
            "region": rng.choice(REGIONS + ["nowhere"]),  # about one in six matches no rule
            "tier": rng.choice(TIERS),
            "amount": rng.choice([rng.randint(0, 999), rng.randint(1000, 5000), round(rng.uniform(0, 2000), 2)]),
            "score": rng.randint(-5, 100),
        })
    return out


def engine_evaluator(xml: str) -> Callable[[dict[str, Any]], Any]:
    model = dmn.load(xml.encode(), filename="bench.dmn")
    return lambda ctx: model.evaluate("price_band", ctx).value


def spiff_evaluator(xml: str) -> Callable[[dict[str, Any]], Any]:
    parser = BpmnDmnParser()
    parser.add_dmn_str(xml.encode(), filename="bench.dmn")
    engine = parser.get_engine("price_band", None)
    task = SimpleNamespace(data={}, workflow=SimpleNamespace(script_engine=PythonScriptEngine()))

    def evaluate(ctx: dict[str, Any]) -> Any:
        task.data = ctx
        return engine.result(task).get("band")
    return evaluate


def rate(evaluate: Callable[[dict[str, Any]], Any], sample: list[dict[str, Any]], seconds: float) -> tuple[float, int]:
    done = 0
    start = time.perf_counter()
    elapsed = 0.0
    while elapsed < seconds:
        for ctx in sample:
            evaluate(ctx)
        done += len(sample)
        elapsed = time.perf_counter() - start
    return done / elapsed, done


def main() -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--seconds", type=float, default=3.0, help="time spent evaluating with each engine")
    opts = args.parse_args()

    xml = table_xml()
    ours, spiff = engine_evaluator(xml), spiff_evaluator(xml)
    sample = contexts(500)
    mismatches = [(ctx, ours(ctx), spiff(ctx)) for ctx in sample if ours(ctx) != spiff(ctx)]
    if mismatches:
        for ctx, a, b in mismatches[:5]:
            print(f"MISMATCH {ctx}: engine.dmn={a!r} spiff={b!r}")
        print(json.dumps({"error": f"{len(mismatches)} of {len(sample)} answers differ"}))
        return 1
    matched = sum(ours(ctx) is not None for ctx in sample)
    print(f"table: 4 inputs, 50 rules, UNIQUE; {len(sample)} contexts, {matched} matching a rule; answers agree")

    engine_rate, engine_n = rate(ours, sample, opts.seconds)
    spiff_rate, spiff_n = rate(spiff, sample[:50], opts.seconds)
    ratio = engine_rate / spiff_rate
    print(f"engine.dmn   {engine_rate:12,.0f} evaluations/s  ({engine_n} evaluations)")
    print(f"SpiffWorkflow{spiff_rate:12,.0f} evaluations/s  ({spiff_n} evaluations)")
    print(f"ratio        {ratio:12,.1f} x")
    print(json.dumps({"engine_eval_per_s": round(engine_rate, 1), "spiff_eval_per_s": round(spiff_rate, 1),
                      "ratio": round(ratio, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
