"""The workspace: where task files, models, ledger and run state live.

::

    .tasks/{inbox,processing,done,failed,quarantine}/   task files, one JSON task per line
    .engine/ledger/*.jsonl                              the audit ledger
    .engine/runs/<run-id>/                              run summary and recorded plugin outputs
    .engine/state/                                      worker heartbeats
    .engine/logs/engine.jsonl                           structlog JSON logs (and tracebacks)
    engine.toml                                         the operator's settings (engine.config)
    process/orchestration.bpmn, process/decisions.dmn   the models this workspace runs (from `engine init`)
    policies/                                           the policies this workspace runs
    plugins/                                            the workspace's own plugins (optional)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.bundled import bundled
from engine.errors import WorkspaceError
from engine.queue import FOLDERS

if TYPE_CHECKING:  # engine.config (pydantic, yaml) is imported when a setting is read
    from engine.config import Config, Performance

ENV_WORKSPACE = "ENGINE_WORKSPACE"
# The kernel's own plugins (worktree-manager, circuit-breaker): part of engine/safety, found last.
BUILTIN_PLUGINS = Path(__file__).resolve().parent / "safety" / "builtin"
ENV_PLUGIN_PATH = "ENGINE_PLUGIN_PATH"
BPMN_FILE = "orchestration.bpmn"
DMN_FILE = "decisions.dmn"


@dataclass(frozen=True)
class Workspace:
    root: Path

    @property
    def tasks(self) -> Path:
        return self.root / ".tasks"

    @property
    def engine_dir(self) -> Path:
        return self.root / ".engine"

    @property
    def ledger_dir(self) -> Path:
        return self.engine_dir / "ledger"

    @property
    def models_dir(self) -> Path:
        """The pinned models (``engine.process.pinned``): every model a run used, by content hash."""
        return self.engine_dir / "models"

    @property
    def runs_dir(self) -> Path:
        return self.engine_dir / "runs"

    @property
    def state_dir(self) -> Path:
        return self.engine_dir / "state"

    @property
    def log_file(self) -> Path:
        return self.engine_dir / "logs" / "engine.jsonl"

    def model(self, name: str) -> Path:
        """The workspace's own copy of a model (``engine init`` writes it). There is no fallback to the models
        bundled with the engine: a workspace without its models has no process, and loading it fails naming
        the missing file (it used to run the bundled defaults without a word)."""
        return self.root / "process" / name

    @property
    def bpmn(self) -> Path:
        return self.model(BPMN_FILE)

    @property
    def dmn(self) -> Path:
        return self.model(DMN_FILE)

    def config(self) -> Config:
        """``engine.toml`` (defaults when absent); ``WorkspaceError`` naming the file and key when invalid."""
        from engine.config import load_config

        return load_config(self.root)

    @property
    def policies(self) -> Path:
        """The workspace's ``policies/`` when it holds Rego policies, else the bundled ones (a workspace
        made before the policies existed still runs under them)."""
        own = self.root / "policies"
        return own if any(own.glob("*.rego")) else bundled("policies")

    def performance(self) -> Performance:
        """The workspace's ``policies/performance.yml``, or the bundled one when it has none."""
        from engine.config import PERFORMANCE_FILE, load_performance

        own = self.root / "policies" / PERFORMANCE_FILE
        return load_performance(own if own.exists() else bundled("policies") / PERFORMANCE_FILE)

    def plugin_sources(self) -> list[tuple[str, Path | None]]:
        """Where plugins are looked for, in order, as (origin, folder of plugin folders): the workspace's
        ``plugins/``, the folders of ENGINE_PLUGIN_PATH, the installed distributions' ``engine.plugins``
        entry points (folder None), the bundled plugins, the kernel's built-in ones. A later plugin with an
        id found earlier is used only if the earlier one's manifest replaces it (``engine.plugins.loader``)."""
        extra = [Path(p) for p in os.environ.get(ENV_PLUGIN_PATH, "").split(os.pathsep) if p]
        sources: list[tuple[str, Path | None]] = [
            ("workspace", self.root / "plugins"), *(("path", p) for p in extra), ("entry-point", None),
            ("bundled", bundled("plugins")), ("builtin", BUILTIN_PLUGINS)]
        seen: set[Path] = set()
        unique: list[tuple[str, Path | None]] = []
        for origin, folder in sources:  # one folder named twice (a clone of the engine used as a workspace)
            key = folder.resolve() if folder is not None else None
            if key is not None and key in seen:
                continue
            if key is not None:
                seen.add(key)
            unique.append((origin, folder))
        return unique

    def is_initialised(self) -> bool:
        return self.tasks.is_dir() and self.engine_dir.is_dir()

    @classmethod
    def find(cls, explicit: Path | None = None) -> Workspace:
        """The workspace named by ``--workspace``, else ``ENGINE_WORKSPACE``, else the current directory."""
        root = explicit or (Path(os.environ[ENV_WORKSPACE]) if os.environ.get(ENV_WORKSPACE) else Path.cwd())
        ws = cls(root.resolve())
        if not ws.is_initialised():
            raise WorkspaceError(f"{ws.root} is not an engine workspace (no .tasks/ and .engine/): "
                                 f"run `engine init {root}` first", path=str(ws.root))
        return ws


EXAMPLE_REPO = "example-repo"
EXAMPLE_TASKS: dict[str, list[dict[str, Any]]] = {
    "001-inspect.jsonl": [
        {"id": "inspect-status", "tool": "git", "repo": EXAMPLE_REPO, "tags": ["example"]},
        {"id": "inspect-log", "tool": "git", "repo": EXAMPLE_REPO, "args": {"operation": "log", "max_count": 5}},
        {"id": "inspect-diff", "tool": "git", "repo": EXAMPLE_REPO, "args": {"operation": "diff"}},
    ],
    "002-normalize.jsonl": [
        {"id": "normalize-readme", "tool": "Normalize", "repo": EXAMPLE_REPO, "files": ["./README.md"],
         "tags": ["Docs", "docs"], "prompt": "Tidy the README"},
    ],
}


def _git(repo: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "engine example", "GIT_AUTHOR_EMAIL": "example@engine.invalid",
           "GIT_COMMITTER_NAME": "engine example", "GIT_COMMITTER_EMAIL": "example@engine.invalid",
           "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(repo),
           # fixed dates: every example repository has the same commits, so example runs repeat exactly
           "GIT_AUTHOR_DATE": "2026-01-01T00:00:00+00:00", "GIT_COMMITTER_DATE": "2026-01-01T00:00:00+00:00"}
    try:
        subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True)
    except FileNotFoundError as e:
        raise WorkspaceError("git is not installed: `engine init --example` needs it for the example "
                             "repository (apt-get install git)") from e
    except subprocess.CalledProcessError as e:
        raise WorkspaceError(f"git {' '.join(args)} failed in {repo}: {e.stderr.strip()}") from e


def _make_example_repo(repo: Path) -> None:
    repo.mkdir(parents=True)
    _git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("# Example\n\nA small repository for the engine's example tasks.\n")
    (repo / "app.py").write_text('def greet(name: str) -> str:\n    return f"Hello, {name}!"\n')
    _git(repo, "add", "README.md", "app.py")
    _git(repo, "commit", "-q", "-m", "Add README and app")
    (repo / "app.py").write_text('def greet(name: str) -> str:\n    return f"Hello, {name}!"\n\n\n'
                                 'def farewell(name: str) -> str:\n    return f"Goodbye, {name}!"\n')
    _git(repo, "commit", "-q", "-am", "Add farewell")
    (repo / "app.py").write_text((repo / "app.py").read_text() + '\n\ndef shout(text: str) -> str:\n'
                                 '    return text.upper()\n')


def init(root: Path, *, example: bool = False) -> tuple[Workspace, list[str]]:
    """Make (or complete) a workspace; returns it and what was created. Existing files are kept."""
    ws = Workspace(root.resolve())
    made: list[str] = []
    for folder in [*(ws.tasks / f for f in FOLDERS), ws.ledger_dir, ws.runs_dir, ws.state_dir,
                   ws.log_file.parent]:
        if not folder.exists():
            folder.mkdir(parents=True)
            made.append(str(folder.relative_to(ws.root)) + "/")
    for name in ("process", "policies"):
        source, target = bundled(name), ws.root / name
        for path in sorted(source.rglob("*")):
            dest = target / path.relative_to(source)
            if path.is_file() and not dest.exists():
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, dest)
                made.append(str(dest.relative_to(ws.root)))
    from engine.config import CONFIG_FILE, DEFAULT_TOML

    config = ws.root / CONFIG_FILE
    if not config.exists():
        config.write_text(DEFAULT_TOML, encoding="utf-8")
        made.append(CONFIG_FILE)
    if example:
        repo = ws.root / EXAMPLE_REPO
        if not repo.exists():
            _make_example_repo(repo)
            made.append(EXAMPLE_REPO + "/")
        for name, tasks in EXAMPLE_TASKS.items():
            path = ws.tasks / "inbox" / name
            if not path.exists():
                path.write_text("".join(json.dumps(t) + "\n" for t in tasks), encoding="utf-8")
                made.append(str(path.relative_to(ws.root)))
    return ws, made
