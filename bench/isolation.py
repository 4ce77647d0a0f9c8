"""End-to-end throughput: what plugin isolation costs a whole run.

The same 1,000 tasks (10 files of 100 lines) run through the real kernel (queue, SpiffWorkflow,
ledger) on a one-step process whose service task calls a no-op plugin, once with the plugin in warm
worker processes (``isolation: "process"``, the default) and once in the engine's own process
(``isolation: "inprocess"``), in fresh workspaces, alternating, in one run.

Usage: ``python bench/isolation.py [--tasks N] [--rounds R]``. The last line of output is one JSON
object with both rates (tasks per second: the median round of each, and the best) and
``isolation_cost`` (how much of the in-process rate isolation costs, as a fraction, from the medians;
``isolation_cost_best`` from the best rounds). The machine is shared and noisy: rounds alternate so
that both modes see the same noise.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import structlog  # noqa: E402

from engine.testing import KernelHarness  # noqa: E402

PROCESS = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI" xmlns:dc="http://www.omg.org/spec/DD/20100524/DC"
  xmlns:di="http://www.omg.org/spec/DD/20100524/DI" xmlns:camunda="http://camunda.org/schema/1.0/bpmn"
  id="bench" targetNamespace="http://bpmn.io/schema/bpmn">
  <bpmn:process id="bench_process" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:serviceTask id="call" name="Call" camunda:type="external" camunda:topic="TOPIC">
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
    </bpmn:serviceTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="call" />
    <bpmn:sequenceFlow id="f2" sourceRef="call" targetRef="end" />
  </bpmn:process>
  <bpmndi:BPMNDiagram id="d"><bpmndi:BPMNPlane id="p" bpmnElement="bench_process">
    <bpmndi:BPMNShape id="start_di" bpmnElement="start"><dc:Bounds x="100" y="100" width="36" height="36" />
    </bpmndi:BPMNShape>
    <bpmndi:BPMNShape id="call_di" bpmnElement="call"><dc:Bounds x="200" y="78" width="100" height="80" />
    </bpmndi:BPMNShape>
    <bpmndi:BPMNShape id="end_di" bpmnElement="end"><dc:Bounds x="360" y="100" width="36" height="36" />
    </bpmndi:BPMNShape>
    <bpmndi:BPMNEdge id="f1_di" bpmnElement="f1"><di:waypoint x="136" y="118" /><di:waypoint x="200" y="118" />
    </bpmndi:BPMNEdge>
    <bpmndi:BPMNEdge id="f2_di" bpmnElement="f2"><di:waypoint x="300" y="118" /><di:waypoint x="360" y="118" />
    </bpmndi:BPMNEdge>
  </bpmndi:BPMNPlane></bpmndi:BPMNDiagram>
</bpmn:definitions>
"""
SOURCE = "def noop(ctx, data):\n    return {'done': True}\n"


def workspace(root: Path, isolation: str, tasks: int) -> KernelHarness:
    harness = KernelHarness(root, example=False)
    plugin = harness.root / "plugins" / "noop"
    (plugin / "src").mkdir(parents=True)
    (plugin / "plugin.spec.json").write_text(json.dumps({
        "id": "noop", "version": "1.0.0", "category": "transformation", "isolation": isolation,
        "operations": {"noop": {"input_schema": {"type": "object"}, "output_schema": {"type": "object"}}}}))
    (plugin / "manifest.json").write_text(json.dumps({"id": "noop", "version": "1.0.0", "entry_point": "src/noop.py"}))
    (plugin / "src" / "noop.py").write_text(SOURCE)
    (harness.root / "process" / "orchestration.bpmn").write_text(PROCESS.replace("TOPIC", "noop.noop"))
    per_file = 100
    for f in range(0, tasks, per_file):
        harness.put(f"{f // per_file:04d}.jsonl", *({"id": f"t{i}", "tool": "noop"}
                                                     for i in range(f, min(tasks, f + per_file))))
    return harness


def one_round(base: Path, isolation: str, tasks: int, index: int) -> float:
    harness = workspace(base / f"{isolation}-{index}", isolation, tasks)
    kernel = harness.kernel()
    started = time.perf_counter()
    summary = kernel.run(drain=True)
    elapsed = time.perf_counter() - started
    if summary.tasks.get("done") != tasks:
        raise SystemExit(f"{isolation}: only {summary.tasks} of {tasks} tasks done")
    return tasks / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    structlog.configure(logger_factory=structlog.ReturnLoggerFactory())
    rates: dict[str, list[float]] = {"process": [], "inprocess": []}
    with tempfile.TemporaryDirectory(prefix="engine-bench-") as tmp:
        for index in range(args.rounds):
            for isolation in ("inprocess", "process"):
                rate = one_round(Path(tmp), isolation, args.tasks, index)
                rates[isolation].append(rate)
                print(f"round {index + 1} {isolation:<10} {rate:8.1f} tasks/s")
    best = {k: max(v) for k, v in rates.items()}
    median = {k: statistics.median(v) for k, v in rates.items()}
    cost = 1 - median["process"] / median["inprocess"]
    cost_best = 1 - best["process"] / best["inprocess"]
    print(f"median: isolated workers {median['process']:.1f} tasks/s, in-process {median['inprocess']:.1f} "
          f"tasks/s: isolation costs {cost:.1%} of the rate (best rounds: {cost_best:.1%})")
    print(json.dumps({"benchmark": "isolation", "tasks": args.tasks, "rounds": args.rounds,
                      "isolated_tasks_per_sec": round(median["process"], 1),
                      "inprocess_tasks_per_sec": round(median["inprocess"], 1),
                      "isolation_cost": round(cost, 4), "isolation_cost_best": round(cost_best, 4),
                      "rates": {k: [round(r, 1) for r in v] for k, v in rates.items()},
                      "python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count()}))


if __name__ == "__main__":
    main()
