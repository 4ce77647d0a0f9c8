"""An in-process kernel for tests: a real workspace, the real kernel, an injected clock and tracer.

``KernelHarness`` makes a workspace (``engine init``, optionally with the example), lets a test add
task files and plugin folders, and runs the real ``Kernel`` in the test's own process: the queue,
SpiffWorkflow, the DMN layer, the ledger and the plugin workers are all real; only the clock
(``FixedClock`` by default, so ids, times and seeds repeat) and the tracer (in memory) are injected.
Plugins still run in their own worker processes unless their spec says ``isolation: "inprocess"``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from engine.clock import Clock, FixedClock
from engine.kernel import Kernel, RunSummary
from engine.telemetry import Telemetry
from engine.workspace import Workspace, init

__all__ = ["KernelHarness"]


class KernelHarness:
    """A workspace at ``root`` and a way to run the kernel on it; see the module docstring."""

    def __init__(self, root: Path, *, example: bool = True, clock: Clock | None = None) -> None:
        self.ws, _ = init(root, example=example)
        self.clock = clock or FixedClock()
        self.telemetry = Telemetry.in_memory()

    @property
    def root(self) -> Path:
        return self.ws.root

    def put(self, name: str, *tasks: dict[str, Any] | str) -> Path:
        """Write a task file into the inbox (dicts as JSON lines, strings as they are)."""
        path = self.ws.tasks / "inbox" / name
        path.write_text("".join((t if isinstance(t, str) else json.dumps(t)) + "\n" for t in tasks),
                        encoding="utf-8")
        return path

    def add_plugin(self, folder: Path) -> Path:
        """Copy a plugin folder into the workspace's ``plugins/``."""
        target = self.ws.root / "plugins" / folder.name
        shutil.copytree(folder, target)
        return target

    def kernel(self) -> Kernel:
        return Kernel(self.ws, clock=self.clock, telemetry=self.telemetry)

    def run(self, *, stop: Callable[[], bool] = lambda: False) -> RunSummary:
        """One ``engine run --drain``, in process."""
        return self.kernel().run(drain=True, stop=stop)

    def files(self, folder: str) -> list[str]:
        """The task files (not reports) in a queue folder."""
        return sorted(p.name for p in (self.ws.tasks / folder).glob("*.jsonl")
                      if not p.name.endswith(".progress.jsonl"))

    def report(self, folder: str, name: str) -> dict[str, Any]:
        kind = "error" if folder == "failed" else "result"
        loaded: dict[str, Any] = json.loads((self.ws.tasks / folder / f"{name}.{kind}.json").read_text("utf-8"))
        return loaded

    def ledger(self) -> list[dict[str, Any]]:
        """Every ledger entry, the sealed segments' first."""
        from engine.ledger import Ledger

        return list(Ledger(self.ws.ledger_dir).entries())

    def long_task(self, model: Path, rounds: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Run one task (``task.args.rounds``: ``rounds``) through ``model`` as the only file of the inbox:
        (the task's entry of its file's report, its step entries in the ledger)."""
        shutil.copy(model, self.root / "process" / "orchestration.bpmn")
        for path in (self.ws.tasks / "inbox").iterdir():
            path.unlink()
        self.put("t.jsonl", {"id": "long", "tool": "x", "repo": "example-repo", "args": {"rounds": rounds}})
        self.run()
        [task] = self.report("done", "t.jsonl")["tasks"]
        steps = [e for e in self.ledger() if e["record"].get("kind") == "step" and e["record"].get("task_id") == "long"]
        return task, steps

    def records(self, **match: Any) -> list[dict[str, Any]]:
        """The ledger records whose fields equal ``match``."""
        return [e["record"] for e in self.ledger() if all(e["record"].get(k) == v for k, v in match.items())]

    def spans(self) -> Iterable[Any]:
        """Every finished span (kernel and workers) of the runs so far."""
        exporter = self.telemetry.exporter
        return exporter.get_finished_spans() if exporter is not None and hasattr(exporter, "get_finished_spans") \
            else []

    @staticmethod
    def workspace(root: Path) -> Workspace:
        return Workspace(root.resolve())
