"""End-to-end throughput of the shipped process, and what the engine adds to SpiffWorkflow (issue 14).

Five modes in one run, interleaved (round 1 of every mode, then round 2 of every mode, ...):

- ``noop``: ``engine run --drain`` as an operator runs it (a new process, in the workspace) over
  ``--tasks`` read-only git tasks in one file, on a workspace made by ``engine init`` whose process is
  the shipped one (``process/orchestration.bpmn`` and ``decisions.dmn``) but whose plugins do nothing:
  every plugin the shipped process binds (its ``camunda:topic`` values, and the plugin ``select_plugin``
  picks for the task) is replaced by a workspace plugin of the same id (``"replaces"``) that returns at
  once an output that satisfies its output schema and keeps the process on its successful path to
  ``EndEvent_done``. Rate: tasks / wall seconds of the whole command; CPU: the command's, its plugin
  workers' included (they exit, and are waited for, before it does).
- ``noop-files``: the same over ``--files`` one-line files (every file claimed, reported, moved).
- ``shipped``: the shipped process with the real bundled plugins (git-inspector runs git) over
  ``--shipped`` tasks on the example workspace's small repository. The workspaces of every round are made
  before the first round, as an operator's repository exists before a run: git-inspector gives a warm
  worker's last snapshot of a working tree again only when nothing in it changed in the two seconds before
  that snapshot, so a repository written just now would have every snapshot of the first seconds remade.
- ``raw``: SpiffWorkflow alone, in this process, on the shipped model parsed by the engine's parser
  (``EngineParser``, SpiffWorkflow's ``CamundaParser`` with the engine's task classes: the stock one
  leaves an external service task STARTED without calling the script engine and makes a plain
  ``bpmn:task`` wait for a person), run by SpiffWorkflow's own ``PythonScriptEngine``: the gateway
  conditions evaluated as Python (FEEL's ``=`` and ``null`` rewritten), ``call_service`` setting the no-op
  plugins' outputs, decisions setting their fixed results on the successful path. ``--tasks`` instances
  of ``BpmnWorkflow`` start from the data the engine starts from and run with ``do_engine_steps()`` to
  their end. The script checks that raw takes the steps the engine's ledger shows for ``noop``, and that
  the engine's decisions gave the values raw sets.
- ``floor``: per task, one small line written to a file and fsync'd, and one file renamed between two
  folders: what any durable queue pays per task.

An ``engine run --drain`` on an empty inbox (``startup``) is timed in each round too: the fixed cost in
each command's wall time.

Usage: ``python bench/throughput.py [--tasks N] [--files N] [--shipped N] [--rounds R]`` (defaults
1,000, 200, 200, 3). The last line of output is one JSON object: ``tasks_per_s`` (noop, one file),
``tasks_per_s_files``, ``shipped_tasks_per_s``, ``raw_spiff_tasks_per_s``, ``floor_tasks_per_s`` (the
medians of the rounds), ``overhead_ratio`` (the engine's CPU seconds per task in ``noop``, plugin
workers included, over raw SpiffWorkflow's CPU seconds per instance), ``steps_per_task``, ``machine``.
Goals (issue 14): ``overhead_ratio`` <= 1.5, ``tasks_per_s`` >= 200 on a quiet machine,
``shipped_tasks_per_s`` >= 100.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine, TaskDataEnvironment  # noqa: E402
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow  # noqa: E402
from SpiffWorkflow.util.task import TaskState  # noqa: E402

from engine import dmn  # noqa: E402
from engine.contracts import Task  # noqa: E402
from engine.plugins.loader import Registry  # noqa: E402
from engine.process.models import DISPATCH_TOPIC  # noqa: E402
from engine.process.parser import EngineParser  # noqa: E402
from engine.workspace import EXAMPLE_REPO, Workspace, init  # noqa: E402

BPMN = ROOT / "process" / "orchestration.bpmn"
DMN = ROOT / "process" / "decisions.dmn"
CAMUNDA = "{http://camunda.org/schema/1.0/bpmn}"
BPMN_NS = "{http://www.omg.org/spec/BPMN/20100524/MODEL}"
END = "EndEvent_done"
SHA = "0" * 40


def bench_task(i: int) -> dict[str, Any]:
    return {"id": f"t{i:05d}", "tool": "git", "repo": EXAMPLE_REPO}


# What each no-op stand-in returns, by (plugin, operation): outputs that satisfy the operation's output
# schema and route the shipped process along its successful path (nothing changed, no checks, keep).
NOOP_OUTPUTS: dict[tuple[str, str], dict[str, Any]] = {
    ("git-inspector", "status"): {"repo_state": {"branch": "main", "head": SHA, "dirty": False, "changed": [],
                                                 "untracked": [], "snapshot": SHA}},
    ("git-inspector", "diff"): {"diff": {"files": [], "changed_files": 0, "diff_lines": 0, "base": SHA}},
    ("quality-gate", "run"): {"gate": {"passed": True, "verdicts": [], "failed": [], "summary": "no checks"}},
    ("worktree-manager", "create"): {"plan": {"summary": "no-op", "changes": [], "commands": []}, "worktree": None},
    ("worktree-manager", "rollback"): {"plan": {}, "rolled_back": None},
    ("worktree-manager", "merge"): {"plan": {}, "merged": None},
    ("worktree-manager", "remove"): {"plan": {}, "worktree": None},
    ("git-executor", "commit"): {"plan": {"summary": "no-op", "changes": [], "commands": []}},
}
PASS_THROUGH = {("task-parser", "normalize")}  # returns its input task: the engine already normalised it
# Fixed values of the output parameters on the successful path (raw mode; the engine computes them).
OUTPUT_PARAMETERS = {"baseline": SHA, "exit_code": 0}
# Fixed decision results on the successful path (raw mode); checked against the engine's ledger.
DECISIONS: dict[str, Any] = {"select_plugin": "git-inspector", "needs_worktree": False, "gate_tier": "L0",
                             "gate_checks": [], "rollback_trigger": "keep"}


# -- the no-op workspace ---------------------------------------------------------------------------------


def bound_operations(ws: Workspace) -> dict[str, set[str]]:
    """Plugin id -> operations the shipped process calls for the bench task: every ``camunda:topic``, the
    ``dispatch`` topic being the plugin ``select_plugin`` picks (its default operation)."""
    registry = Registry.discover(ws.plugin_sources())
    bound: dict[str, set[str]] = {}
    topics = {n.get(CAMUNDA + "topic") for n in ElementTree.parse(BPMN).iter() if n.get(CAMUNDA + "topic")}
    for topic in sorted(topics):
        if topic == DISPATCH_TOPIC:
            task = Task.model_validate(bench_task(0)).as_data()
            plugin_id = str(dmn.load(DMN).evaluate("select_plugin", {"task": task}).value)
            operation = task["args"].get("operation")
        else:
            plugin_id, _, operation = topic.partition(".")
        plugin = registry.get(plugin_id)
        if plugin is None:
            raise SystemExit(f"topic {topic!r}: no plugin {plugin_id!r} is installed")
        bound.setdefault(plugin_id, set()).add(operation or plugin.spec.first_operation)
    return bound


def noop_plugin(folder: Path, real: Path, operations: set[str]) -> None:
    """A stand-in for the plugin in ``real``: its spec with only ``operations``, each returning at once."""
    spec = json.loads((real / "plugin.spec.json").read_text())
    spec["description"] = f"No-op stand-in for {spec['id']} (bench/throughput.py)."
    spec["operations"] = {op: spec["operations"][op] for op in sorted(operations)}
    if spec.get("default_operation") not in operations:
        spec.pop("default_operation", None)
    source: list[str] = []
    for op in sorted(operations):
        if (spec["id"], op) in PASS_THROUGH:
            source.append(f"\ndef {op}(ctx, data):\n    return {{'task': data['task']}}\n")
        else:
            source.append(f"\ndef {op}(ctx, data):\n    return {NOOP_OUTPUTS[(spec['id'], op)]!r}\n")
    (folder / "src").mkdir(parents=True)
    (folder / "src" / "noop.py").write_text("".join(source))
    (folder / "plugin.spec.json").write_text(json.dumps(spec, indent=2))
    (folder / "manifest.json").write_text(json.dumps({"id": spec["id"], "version": spec["version"],
                                                      "entry_point": "src/noop.py", "replaces": spec["id"]}))


def noop_workspace(root: Path, bound: dict[str, set[str]]) -> Workspace:
    ws, _ = init(root, example=False)
    registry = Registry.discover(ws.plugin_sources())
    for plugin_id, operations in bound.items():
        real = registry.get(plugin_id)
        assert real is not None
        noop_plugin(ws.root / "plugins" / plugin_id, real.folder, operations)
    (ws.root / EXAMPLE_REPO).mkdir()  # the tasks' repo: a plain folder, which no stand-in reads
    return ws


def shipped_workspace(root: Path) -> Workspace:
    ws, _ = init(root, example=True)
    for path in (ws.tasks / "inbox").iterdir():
        path.unlink()
    return ws


def put(ws: Workspace, tasks: int, per_file: int) -> None:
    for first in range(0, tasks, per_file):
        lines = (json.dumps(bench_task(i)) + "\n" for i in range(first, min(tasks, first + per_file)))
        (ws.tasks / "inbox" / f"{first // per_file:05d}.jsonl").write_text("".join(lines))


# -- engine run --drain ----------------------------------------------------------------------------------


def engine_run(ws: Workspace) -> tuple[float, float, str]:
    """``engine run --drain`` in ``ws`` as an operator runs it: (wall seconds, CPU seconds of it and its
    children, its output)."""
    env = {k: v for k, v in os.environ.items() if k != "ENGINE_WORKSPACE"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "engine", "run", "--drain"], cwd=ws.root, env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"engine run --drain in {ws.root} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
    return wall, cpu, proc.stdout


def done_tasks(ws: Workspace) -> list[dict[str, Any]]:
    reports = sorted((ws.tasks / "done").glob("*.result.json"))
    return [t for path in reports for t in json.loads(path.read_text())["tasks"]]


def ledger_paths(ws: Workspace) -> dict[str, list[str]]:
    """Task id -> the steps its ledger records name, in order."""
    paths: dict[str, list[str]] = {}
    for line in (ws.ledger_dir / "ledger.jsonl").read_text().splitlines():
        record = json.loads(line)["record"]
        if record.get("kind") == "step":
            paths.setdefault(record["task_id"], []).append(record["step"])
    return paths


def ledger_decisions(ws: Workspace) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for line in (ws.ledger_dir / "ledger.jsonl").read_text().splitlines():
        record = json.loads(line)["record"]
        if record.get("kind") == "step" and "decision" in record:
            found[record["decision"]["id"]] = record["decision"]["result"]
    return found


def engine_round(ws: Workspace, tasks: int) -> dict[str, float]:
    wall, cpu, _ = engine_run(ws)
    finished = done_tasks(ws)
    ended = Counter(t.get("end_event") for t in finished)
    if len(finished) != tasks or ended != {END: tasks}:
        raise SystemExit(f"{ws.root}: {len(finished)} of {tasks} tasks done, ends {dict(ended)}")
    return {"rate": tasks / wall, "wall_s": wall, "cpu_ms": cpu * 1000 / tasks}


# -- raw SpiffWorkflow ---------------------------------------------------------------------------------


def python_conditions() -> dict[str, str]:
    """The model's FEEL conditions as Python: ``=`` is ``==``; ``null`` is a global (None) below."""
    texts = [n.text.strip() for n in ElementTree.parse(BPMN).iter(BPMN_NS + "conditionExpression") if n.text]
    return {t: re.sub(r"(?<![!<>=])=(?!=)", "==", t) for t in texts}


class TrivialScriptEngine(PythonScriptEngine):
    """SpiffWorkflow's script engine; service tasks and decisions set fixed values, conditions are Python."""

    def __init__(self, conditions: dict[str, str]) -> None:
        names = {n for text in conditions.values() for n in compile(text, "<condition>", "eval").co_names}
        # a variable no step has set yet is null, as in FEEL (worktree, on the read-only path)
        super().__init__(environment=TaskDataEnvironment({name: None for name in names} | {"null": None}))
        self.conditions = conditions

    def evaluate(self, task: Any, expression: str, external_context: Any = None) -> Any:
        return super().evaluate(task, self.conditions[expression], external_context)

    def call_service(self, task: Any, **kwargs: Any) -> bool:
        topic = kwargs["topic"]
        plugin_id, _, operation = topic.partition(".")
        if topic == DISPATCH_TOPIC:  # the selected plugin's default operation (the task names none)
            plugin_id, operation = task.data["plugin"], "status"
        if (plugin_id, operation) in PASS_THROUGH:
            task.data.update({"task": task.data["task"], "error": None})
        else:
            task.data.update(NOOP_OUTPUTS[(plugin_id, operation)], error=None)
        for name, _ in task.task_spec.output_parameters:
            task.data[name] = OUTPUT_PARAMETERS[name]
        return True

    def decide(self, task: Any, decision_ref: str, result_variable: str) -> None:
        task.data[result_variable] = DECISIONS[decision_ref]


def raw_spec() -> tuple[Any, dict[str, Any]]:
    parser = EngineParser()
    parser.add_bpmn_file(str(BPMN))
    process_id = next(p.get("id") for p in ElementTree.parse(BPMN).iter(BPMN_NS + "process"))
    return parser.get_spec(process_id), parser.get_subprocess_specs(process_id)


def raw_instance(spec: Any, subprocesses: dict[str, Any], engine: TrivialScriptEngine, task: dict[str, Any],
                 on_step: Callable[[Any], None]) -> BpmnWorkflow:
    workflow = BpmnWorkflow(spec, subprocesses, script_engine=engine)
    for t in workflow.get_tasks(state=TaskState.READY):
        t.data.update({"task": copy.deepcopy(task), "error": None, "failures": 0})
    workflow.do_engine_steps(did_complete_task=on_step)
    return workflow


def raw_path(spec: Any, subprocesses: dict[str, Any], engine: TrivialScriptEngine, task: dict[str, Any]) -> list[str]:
    """The steps one instance takes, counted as the engine counts them (a ledger record per BPMN element)."""
    path: list[str] = []

    def on_step(t: Any) -> None:
        if getattr(t.task_spec, "bpmn_id", None) is not None and t.state != TaskState.STARTED:
            path.append(t.task_spec.bpmn_id)

    workflow = raw_instance(spec, subprocesses, engine, task, on_step)
    if not workflow.is_completed():
        raise SystemExit(f"raw SpiffWorkflow stopped after {path}")
    return path


def raw_round(spec: Any, subprocesses: dict[str, Any], engine: TrivialScriptEngine, task: dict[str, Any],
              instances: int, steps: int) -> dict[str, float]:
    count = [0]

    def on_step(t: Any) -> None:
        if getattr(t.task_spec, "bpmn_id", None) is not None and t.state != TaskState.STARTED:
            count[0] += 1

    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(instances):
        if not raw_instance(spec, subprocesses, engine, task, on_step).is_completed():
            raise SystemExit("raw SpiffWorkflow: an instance did not complete")
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    if count[0] != instances * steps:
        raise SystemExit(f"raw SpiffWorkflow: {count[0]} steps for {instances} instances, not {steps} each")
    return {"rate": instances / wall, "wall_s": wall, "cpu_ms": cpu * 1000 / instances}


# -- the floor -----------------------------------------------------------------------------------------


def floor_round(root: Path, tasks: int) -> dict[str, float]:
    inbox, done = root / "inbox", root / "done"
    inbox.mkdir(parents=True)
    done.mkdir()
    for i in range(tasks):
        (inbox / f"{i:05d}.jsonl").write_text("{}\n")
    line = (json.dumps({"task_id": "t00000", "status": "done", "steps": 30}) + "\n").encode()
    fd = os.open(root / "log.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    try:
        for i in range(tasks):
            os.write(fd, line)
            os.fsync(fd)
            os.rename(inbox / f"{i:05d}.jsonl", done / f"{i:05d}.jsonl")
    finally:
        os.close(fd)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {"rate": tasks / wall, "wall_s": wall, "cpu_ms": cpu * 1000 / tasks}


# -- the run -------------------------------------------------------------------------------------------


def check_path(base: Path, bound: dict[str, set[str]]) -> tuple[list[str], dict[str, Any]]:
    """Three tasks through the no-op workspace: each must end done, along one path; returns it."""
    ws = noop_workspace(base / "check", bound)
    if ws.bpmn.read_bytes() != BPMN.read_bytes() or ws.dmn.read_bytes() != DMN.read_bytes():
        raise SystemExit(f"{ws.root}: engine init did not write the shipped models")
    put(ws, 3, 3)
    _, _, out = engine_run(ws)
    paths = ledger_paths(ws)
    finished = done_tasks(ws)
    if len({tuple(p) for p in paths.values()}) != 1 or [t.get("end_event") for t in finished] != [END] * 3:
        raise SystemExit(f"the no-op check run did not end {END} along one path:\n{out}{paths}")
    path = next(iter(paths.values()))
    if {t["steps"] for t in finished} != {len(path)}:
        raise SystemExit(f"steps in the reports {[t['steps'] for t in finished]} differ from the ledger's {len(path)}")
    return path, ledger_decisions(ws)


def median(rounds: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000, help="tasks of noop (one file), raw and floor")
    parser.add_argument("--files", type=int, default=200, help="one-line files of noop-files")
    parser.add_argument("--shipped", type=int, default=200, help="tasks of shipped (real plugins, one file)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    load_before = os.getloadavg()
    spec, subprocesses = raw_spec()
    engine = TrivialScriptEngine(python_conditions())
    task = Task.model_validate(bench_task(0)).as_data()
    modes = ("startup", "noop", "noop-files", "shipped", "raw", "floor")
    results: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory(prefix="engine-bench-") as tmp:
        base = Path(tmp)
        bound = bound_operations(init(base / "probe")[0])
        print("no-op stand-ins (workspace plugins replacing the ones the shipped process binds):")
        for plugin_id, operations in sorted(bound.items()):
            print(f"  {plugin_id}: {', '.join(sorted(operations))}")
        path, decisions = check_path(base, bound)
        raw = raw_path(spec, subprocesses, engine, task)
        print(f"steps per task: engine (ledger) {len(path)}, raw SpiffWorkflow {len(raw)}")
        print(f"  path: {' > '.join(path)}")
        if raw != path:
            raise SystemExit(f"raw SpiffWorkflow takes another path: {' > '.join(raw)}")
        if {k: decisions.get(k) for k in DECISIONS} != DECISIONS:
            raise SystemExit(f"the engine's decisions {decisions} differ from raw's fixed {DECISIONS}")
        shipped = [shipped_workspace(base / f"round-{index + 1}" / "shipped") for index in range(args.rounds)]
        for index in range(args.rounds):
            here = base / f"round-{index + 1}"
            ws = noop_workspace(here / "startup", bound)
            wall, cpu, _ = engine_run(ws)
            results["startup"].append({"rate": 0.0, "wall_s": wall, "cpu_ms": cpu * 1000})
            ws = noop_workspace(here / "noop", bound)
            put(ws, args.tasks, args.tasks)
            results["noop"].append(engine_round(ws, args.tasks))
            ws = noop_workspace(here / "noop-files", bound)
            put(ws, args.files, 1)
            results["noop-files"].append(engine_round(ws, args.files))
            ws = shipped[index]
            put(ws, args.shipped, args.shipped)
            results["shipped"].append(engine_round(ws, args.shipped))
            results["raw"].append(raw_round(spec, subprocesses, engine, task, args.tasks, len(path)))
            results["floor"].append(floor_round(here / "floor", args.tasks))
            for mode in modes:
                r = results[mode][-1]
                rate = f"{r['rate']:9.1f} tasks/s" if mode != "startup" else f"{'':>15}"
                unit = "ms CPU/task" if mode != "startup" else "ms CPU"
                print(f"round {index + 1} {mode:<11}{rate}  {r['wall_s']:7.2f} s wall  {r['cpu_ms']:8.3f} {unit}")
    load_after = os.getloadavg()
    counts = {"startup": 0, "noop": args.tasks, "noop-files": args.files, "shipped": args.shipped,
              "raw": args.tasks, "floor": args.tasks}
    print(f"\nmedians of {args.rounds} rounds ({args.tasks} tasks in one file, {args.files} one-line files, "
          f"{args.shipped} shipped tasks; load average {load_before[0]:.2f} before, {load_after[0]:.2f} after):")
    print(f"{'mode':<12}{'tasks':>7}{'tasks/s':>10}{'wall s':>9}{'CPU ms/task':>13}  (startup: CPU ms of the command)")
    for mode in modes:
        rate = f"{median(results[mode], 'rate'):10.1f}" if mode != "startup" else f"{'':>10}"
        print(f"{mode:<12}{counts[mode]:>7}{rate}{median(results[mode], 'wall_s'):9.2f}"
              f"{median(results[mode], 'cpu_ms'):13.3f}")
    ratio = median(results["noop"], "cpu_ms") / median(results["raw"], "cpu_ms")
    print(f"overhead_ratio: the engine's CPU per task (workers included) / raw SpiffWorkflow's = {ratio:.2f}")
    print(json.dumps({
        "benchmark": "throughput", "tasks": args.tasks, "files": args.files, "shipped_tasks": args.shipped,
        "rounds": args.rounds,
        "tasks_per_s": round(median(results["noop"], "rate"), 1),
        "tasks_per_s_files": round(median(results["noop-files"], "rate"), 1),
        "shipped_tasks_per_s": round(median(results["shipped"], "rate"), 1),
        "raw_spiff_tasks_per_s": round(median(results["raw"], "rate"), 1),
        "floor_tasks_per_s": round(median(results["floor"], "rate"), 1),
        "overhead_ratio": round(ratio, 2),
        "engine_cpu_ms_per_task": round(median(results["noop"], "cpu_ms"), 3),
        "engine_files_cpu_ms_per_task": round(median(results["noop-files"], "cpu_ms"), 3),
        "shipped_cpu_ms_per_task": round(median(results["shipped"], "cpu_ms"), 3),
        "raw_spiff_cpu_ms_per_instance": round(median(results["raw"], "cpu_ms"), 3),
        "startup_s": round(median(results["startup"], "wall_s"), 3),
        "steps_per_task": len(path), "raw_steps_per_task": len(raw),
        "rounds_detail": {m: [{k: round(v, 3) for k, v in r.items()} for r in rs] for m, rs in results.items()},
        "load_average": [round(load_before[0], 2), round(load_after[0], 2)],
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
    }))


if __name__ == "__main__":
    main()
