"""An in-process kernel for tests: a real workspace, the real kernel, an injected clock and tracer.

``KernelHarness`` makes a workspace (``engine init``, optionally with the example), lets a test add
task files and plugin folders, and runs the real ``Kernel`` in the test's own process: the queue,
SpiffWorkflow, the DMN layer, the ledger and the plugin workers are all real; only the clock
(``FixedClock`` by default, so ids, times and seeds repeat) and the tracer (in memory) are injected.
Plugins still run in their own worker processes unless their spec says ``isolation: "inprocess"``.

For plugin authors' own pytest tests, ``PluginRunner`` calls one operation of a plugin the way the
kernel's dispatch does (input checked against the operation's ``input_schema``, the call in a real
worker process, the output checked against its ``output_schema``), with a fixed clock and seed and a
workdir that is an empty folder or a fixture repository (``fixture_repo``: a git repository with one
commit made by a fixed author at a fixed time, so its commit id is the same on every machine). Each
``Call`` carries the output (or the error) and the record the kernel's ledger keeps of such a call
(plugin id, version and source digest, operation, input and output digests, status)::

    from engine.testing import PluginRunner

    def test_counts_words(tmp_path):
        with PluginRunner(tmp_path) as runner:
            call = runner.call("plugins/word-count", "transform", {"task": {"args": {"text": "a b"}}})
        assert call.output == {"text": "a b", "words": 2}
        assert call.record["status"] == "completed"
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from engine.clock import EPOCH, Clock, FixedClock
from engine.errors import ContractViolation, EngineError, PluginError
from engine.kernel import Kernel, RunSummary
from engine.plugins.loader import LoadedPlugin, load_plugin
from engine.telemetry import Telemetry
from engine.workspace import Workspace, init

__all__ = ["FIXED_NOW", "Call", "KernelHarness", "PluginRunner", "fixture_repo"]

FIXED_NOW = EPOCH  # ctx.now of every call a PluginRunner makes, unless told otherwise
FIXTURE_AUTHOR = ("engine fixture", "fixture@engine.invalid")


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


def fixture_repo(path: Path, files: Mapping[str, str | bytes] | Path | None = None, *,
                 when: datetime = FIXED_NOW) -> Path:
    """A git repository at ``path`` (made if missing) holding ``files`` (relative path -> text or bytes, or
    a folder whose contents, but for Python caches, are copied), committed once on branch ``main`` by
    ``FIXTURE_AUTHOR`` at ``when``, with no user or system git configuration read: the same files give the
    same commit id on every machine. Returns ``path``."""
    path.mkdir(parents=True, exist_ok=True)
    if isinstance(files, Path):  # not Python's caches (an installed copy of the folder may have been compiled)
        shutil.copytree(files, path, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    else:
        for rel, content in (files or {}).items():
            target = path / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content, encoding="utf-8")
    stamp = when.isoformat()
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(path), "GIT_CONFIG_NOSYSTEM": "1",
           "GIT_AUTHOR_NAME": FIXTURE_AUTHOR[0], "GIT_AUTHOR_EMAIL": FIXTURE_AUTHOR[1],
           "GIT_COMMITTER_NAME": FIXTURE_AUTHOR[0], "GIT_COMMITTER_EMAIL": FIXTURE_AUTHOR[1],
           "GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp}
    for args in (["init", "-q", "-b", "main"], ["add", "-A"],
                 ["-c", "commit.gpgsign=false", "commit", "-q", "--allow-empty", "-m", "fixture"]):
        try:
            subprocess.run(["git", *args], cwd=path, env=env, check=True, capture_output=True, text=True)
        except FileNotFoundError as e:
            raise EngineError("git is not installed: a fixture repository needs it (apt-get install git)") from e
        except subprocess.CalledProcessError as e:
            raise EngineError(f"git {' '.join(args)} failed in {path}: {e.stderr.strip()}") from e
    return path


@dataclass(frozen=True)
class Call:
    """One call of a plugin operation: what it answered (``output``) or the error it failed with, the record
    a step's ledger entry keeps of it, the workdir it ran in, and how long it took (seconds, wall time)."""

    plugin: str
    operation: str
    output: dict[str, Any] | None
    error: EngineError | None
    record: dict[str, Any]
    workdir: Path
    seconds: float

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def code(self) -> str | None:
        """The error's code as the ledger records it (a business code the plugin declares, or the engine's
        ``engine.*``: ``engine.contract`` for a schema violation), if it failed."""
        error = self.record.get("error")
        return error.get("code") if isinstance(error, dict) else None


class PluginRunner:
    """Calls plugin operations as the kernel's dispatch does, in real worker processes (see the module
    docstring). Workdirs are made under ``base`` (a temporary folder removed on ``close`` when not given).
    A plugin whose spec says ``inprocess`` runs in a worker too: nothing it does can end the caller."""

    def __init__(self, base: Path | None = None, *, workspace: Path | None = None,
                 clock: Clock | None = None) -> None:
        from engine.plugins.dispatch import Dispatcher
        from engine.plugins.pool import WorkerPool

        self._temp = None if base is not None else tempfile.TemporaryDirectory(prefix="engine-plugin-runner-")
        self.base = base if base is not None else Path(self._temp.name)  # type: ignore[union-attr]
        self.base.mkdir(parents=True, exist_ok=True)
        self._pool = WorkerPool((workspace or self.base).resolve())
        self._dispatcher = Dispatcher(self._pool)
        self._clock = clock or Clock()  # durations only (monotonic); ctx.now is always the call's ``now``
        self._made = 0

    def load(self, plugin: str | Path | LoadedPlugin) -> LoadedPlugin:
        """A plugin from its folder (a path), as the loader validates it but for its manifest's
        ``source_digest`` (tests run while the code changes; ``engine plugin check`` and conformance L0 check
        the digest); run in a worker whatever its spec says."""
        loaded = plugin if isinstance(plugin, LoadedPlugin) else load_plugin(Path(plugin).resolve(),
                                                                            verify_digest=False)
        if loaded.spec.isolation == "process":
            return loaded
        return replace(loaded, spec=loaded.spec.model_copy(update={"isolation": "process"}))

    def workdir(self, repo: Mapping[str, str | bytes] | Path | None = None) -> Path:
        """A new workdir under ``base``: a fixture repository of ``repo`` when given, else an empty folder."""
        self._made += 1
        path = self.base / f"workdir-{self._made}"
        if repo is not None:
            return fixture_repo(path, repo)
        path.mkdir(parents=True)
        return path

    def call(self, plugin: str | Path | LoadedPlugin, operation: str | None = None,
             data: Mapping[str, Any] | None = None, *, repo: Mapping[str, str | bytes] | Path | None = None,
             workdir: Path | None = None, now: datetime = FIXED_NOW, whatif: bool = False, task_id: str = "test",
             run_id: str = "test", seed: int = 0) -> Call:
        """Call ``operation`` (default: the plugin's first) with ``data``; never raises for what the plugin
        does: a failure is the returned ``Call``'s ``error``."""
        import structlog

        from engine.process.steps import call_record, completed_record, failed_record
        from engine.sdk import Context

        loaded = self.load(plugin)
        op = operation or loaded.spec.first_operation
        payload = dict(data or {})
        where = workdir if workdir is not None else self.workdir(repo)
        ctx = Context(run_id=run_id, task_id=task_id, now=now, seed=seed, whatif=whatif, workdir=where,
                      log=structlog.get_logger("engine").bind(plugin=loaded.id, task=task_id))
        record = call_record(loaded, op, payload)
        started = self._clock.monotonic()
        output: dict[str, Any] | None = None
        error: EngineError | None = None
        try:
            output = self._dispatcher.call(loaded, op, ctx, payload)
            record = completed_record(record, output)
        except (ContractViolation, PluginError, EngineError) as e:
            error = e
            record = failed_record(record, e)
        return Call(loaded.id, op, output, error, record, where, self._clock.monotonic() - started)

    def close(self) -> None:
        self._pool.close()
        if self._temp is not None:
            self._temp.cleanup()

    def __enter__(self) -> PluginRunner:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()
