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
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.bundled import bundled
from engine.durable import sync_folder, write_durably
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


_README = "# Example\n\nA small repository for the engine's example tasks.\n"
_APP = ('def greet(name: str) -> str:\n    return f"Hello, {name}!"\n',
        'def greet(name: str) -> str:\n    return f"Hello, {name}!"\n\n\n'
        'def farewell(name: str) -> str:\n    return f"Goodbye, {name}!"\n')
_APP_LAST = _APP[1] + '\n\ndef shout(text: str) -> str:\n    return text.upper()\n'
# What an example repository holds before its first commit: its files, each possibly cut short by a kill.
_EXAMPLE_FILES = {"README.md": (_README,), "app.py": (*_APP, _APP_LAST)}
# The example repository is made in `.example-repo.partial-<pid>` and renamed into place when complete; a
# half-made one being replaced is renamed to `.example-repo.removing-<pid>` and then removed. Either, left by
# an init that was killed (its process is gone), is removed by the next init.
_TEMP_REPO = re.compile(rf"^\.{re.escape(EXAMPLE_REPO)}\.(partial|removing)-(\d+)$")


def _build_example_repo(repo: Path) -> None:
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text(_README)
    (repo / "app.py").write_text(_APP[0])
    _git(repo, "add", "README.md", "app.py")
    _git(repo, "commit", "-q", "-m", "Add README and app")
    (repo / "app.py").write_text(_APP[1])
    _git(repo, "commit", "-q", "-am", "Add farewell")
    (repo / "app.py").write_text(_APP_LAST)


def _make_example_repo(repo: Path, *, replace: bool = False) -> None:
    """Make the example repository at ``repo``: built whole in a temporary folder beside it, then renamed
    into place, so a kill leaves either no repository or a complete one (and a temporary folder the next
    ``init`` removes). ``replace``: ``repo`` is a half-made example (``_half_made_example``) to replace."""
    partial = repo.with_name(f".{repo.name}.partial-{os.getpid()}")
    if partial.exists():  # left by a killed process that had this pid
        shutil.rmtree(partial)
    try:
        _build_example_repo(partial)
        if replace:  # renamed aside first: a kill never leaves a half-removed folder at `repo`
            removing = repo.with_name(f".{repo.name}.removing-{os.getpid()}")
            os.rename(repo, removing)
            os.rename(partial, repo)
            shutil.rmtree(removing)
        else:
            os.rename(partial, repo)  # fails when a folder with content appeared there meanwhile
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    sync_folder(repo.parent)


def _remove_stale_temp_repos(root: Path) -> None:
    """Remove the temporary example repositories left by an ``init`` that was killed (its process is gone)."""
    for entry in root.glob(f".{EXAMPLE_REPO}.*-*"):
        match = _TEMP_REPO.match(entry.name)
        if match is None or not entry.is_dir() or entry.is_symlink():
            continue
        pid = int(match.group(2))
        if pid != os.getpid():
            try:
                os.kill(pid, 0)
                continue  # its process still runs (another init making it)
            except ProcessLookupError:
                pass
            except PermissionError:
                continue  # a process of another user has that pid
        shutil.rmtree(entry, ignore_errors=True)


def _git_succeeds(repo: Path, *args: str) -> str | None:
    """The output of ``git --git-dir=<repo>/.git ARGS`` (no search of the folders above), None when it fails."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    try:
        proc = subprocess.run(["git", f"--git-dir={repo / '.git'}", *args], cwd=repo, capture_output=True,
                              text=True, env={**env, "GIT_CONFIG_NOSYSTEM": "1"})
    except FileNotFoundError as e:
        raise WorkspaceError("git is not installed: `engine init --example` needs it for the example "
                             "repository (apt-get install git)") from e
    return proc.stdout if proc.returncode == 0 else None


def _example_repo_problem(repo: Path) -> str | None:
    """What keeps ``repo`` from being a usable example repository (a git repository with a commit), or None."""
    if not repo.is_dir():
        return "not a folder"
    if not (repo / ".git").exists():
        return "no .git: not a git repository"
    if _git_succeeds(repo, "rev-parse", "--git-dir") is None:
        return "its .git is not a git repository"
    if _git_succeeds(repo, "rev-parse", "--verify", "-q", "HEAD^{commit}") is None:
        return "a git repository with no commit"
    return None


def _half_made_example(repo: Path) -> bool:
    """Whether ``repo`` (not a usable repository) is recognisably an example repository an ``init`` did not
    finish: a real folder holding nothing but a ``.git`` without commits and the example's files (each whole
    or cut short). Anything else may be the user's, and is never removed."""
    if repo.is_symlink() or not repo.is_dir():
        return False
    for entry in repo.iterdir():
        if entry.name == ".git":
            if entry.is_symlink() or not entry.is_dir():
                return False
            continue
        versions = _EXAMPLE_FILES.get(entry.name)
        if versions is None or entry.is_symlink() or not entry.is_file():
            return False
        body = entry.read_bytes()
        if not any(v.encode().startswith(body) for v in versions):
            return False
    git = repo / ".git"
    if not git.is_dir():
        return True
    if _git_succeeds(repo, "rev-parse", "--git-dir") is not None:
        return _git_succeeds(repo, "rev-list", "-n", "1", "--all") == ""  # no commit on any branch
    # a .git git does not recognise (`git init` killed): only if it holds no objects
    return not any(p.is_file() for p in (git / "objects").rglob("*"))


class Initialised(tuple[Workspace, list[str]]):
    """What ``init`` did: unpacks as ``(workspace, created)``; ``repaired`` lists what it remade (a half-made
    example repository). Paths are relative to the workspace, folders end in ``/``."""

    repaired: list[str]

    def __new__(cls, workspace: Workspace, created: list[str], repaired: list[str]) -> Initialised:
        self = super().__new__(cls, (workspace, created))
        self.repaired = repaired
        return self

    @property
    def workspace(self) -> Workspace:
        return self[0]

    @property
    def created(self) -> list[str]:
        return self[1]


def _copy_whole(source: Path, dest: Path) -> None:
    """Copy ``source`` to ``dest`` whole: written to a temporary name beside it, fsync'd, renamed."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    write_durably(dest, source.read_bytes())


def init(root: Path, *, example: bool = False) -> Initialised:
    """Make (or complete) a workspace; returns it, what was created and what was repaired. Existing files are
    kept (a model that differs from the bundled one may be the user's edit: ``engine validate`` checks it).
    Idempotent: run again, it creates nothing; every file is written whole (temporary name, fsync, rename),
    so an init killed half-way leaves nothing half-written that the next one keeps.

    With ``example``: the example repository (made whole, then renamed into place; a half-made one left by
    an older engine is remade, a folder there that is not one is refused with ``WorkspaceError``) and the
    example task files, each written only if no queue folder holds a file of its name (it was given before)."""
    ws = Workspace(root.resolve())
    made: list[str] = []
    repaired: list[str] = []
    repo = ws.root / EXAMPLE_REPO
    replace = False
    if ws.root.is_dir():
        _remove_stale_temp_repos(ws.root)
    if example and (repo.exists() or repo.is_symlink()):
        problem = _example_repo_problem(repo)
        if problem is not None:
            if not _half_made_example(repo):
                raise WorkspaceError(
                    f"{repo} is not a complete example repository ({problem}) and holds what `engine init "
                    f"--example` did not make: move it away (mv {repo} {repo}.old) and run it again",
                    path=str(repo))
            replace = True  # checked before anything is made: a refusal leaves the workspace as it was
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
                _copy_whole(path, dest)
                made.append(str(dest.relative_to(ws.root)))
    from engine.config import CONFIG_FILE, DEFAULT_TOML

    config = ws.root / CONFIG_FILE
    if not config.exists():
        write_durably(config, DEFAULT_TOML.encode("utf-8"))
        made.append(CONFIG_FILE)
    if example:
        if replace:
            _make_example_repo(repo, replace=True)
            repaired.append(EXAMPLE_REPO + "/")
        elif not repo.exists():
            _make_example_repo(repo)
            made.append(EXAMPLE_REPO + "/")
        for name, tasks in EXAMPLE_TASKS.items():
            if any((ws.tasks / folder / name).exists() for folder in FOLDERS):
                continue  # given before (perhaps run, and in done/ now): not given again
            path = ws.tasks / "inbox" / name
            write_durably(path, "".join(json.dumps(t) + "\n" for t in tasks).encode("utf-8"))
            made.append(str(path.relative_to(ws.root)))
    return Initialised(ws, made, repaired)
