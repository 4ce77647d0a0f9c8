import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


def engine(*args, cwd=None, env=None, check=None, timeout=120):
    """Run the real `engine` command in a subprocess; returns the CompletedProcess."""
    full_env = {k: v for k, v in os.environ.items() if k not in ("ENGINE_WORKSPACE", "ENGINE_PLUGIN_PATH")}
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, "-m", "engine", *map(str, args)], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
    if check is not None:
        assert proc.returncode == check, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc


@pytest.fixture
def example_ws(tmp_path, request):
    """A workspace made by `engine init --example`. After the test, every run the test made in it must
    replay (`engine replay`: the same records from the task files, the pinned models and the recorded
    plugin results), unless the test is marked ``no_replay`` (it tampers with what replay reads)."""
    ws = tmp_path / "ws"
    engine("init", "--example", ws, check=0)
    yield ws
    if request.node.get_closest_marker("no_replay") is None:
        replays(ws)


def replays(root, last_only=False):
    """Assert that every run in the workspace ``root`` (or its last) replays to the records its ledger
    holds."""
    from engine.errors import EngineError
    from engine.kernel import load_registry
    from engine.ledger import Ledger
    from engine.process.replay import replay_run
    from engine.workspace import Workspace

    ws = Workspace(root)
    runs = sorted((p.stat().st_mtime_ns, p.parent.name) for p in ws.runs_dir.glob("*/run.json")) \
        if ws.runs_dir.is_dir() else []
    runs = [name for _, name in runs][-1:] if last_only else [name for _, name in runs]
    if not runs:
        return
    try:
        Ledger(ws.ledger_dir).verify()
        registry = load_registry(ws)
    except EngineError:
        return  # the test broke the ledger or the plugins on purpose: nothing to replay against
    for run in runs:
        bad = [r.as_dict() for r in replay_run(ws, registry, run) if not r.ok]
        assert not bad, f"run {run} does not replay: {bad}"


@pytest.fixture
def data_dir():
    return DATA


def copy_plugin(name, ws):
    shutil.copytree(DATA / "plugins" / name, ws / "plugins" / name)


def add_selection_rule(dmn_path, tool, plugin, worktree=None):
    """Route `tool` to `plugin` in a workspace's decisions.dmn: a select_plugin rule `"tool", -, ... -> "plugin"`
    (one input entry per input column of the table: the tool, then "-").

    A plugin that changes the repository needs a worktree, which the process makes when the needs_worktree
    decision says so: with `worktree` true (by default: when the workspace's plugins/<plugin>/plugin.spec.json
    says category state_change) a rule `"plugin" -> true` goes first in that table (hit policy FIRST)."""
    import json

    from engine.plugins.binding import route_tool

    if worktree is None:
        spec = Path(dmn_path).resolve().parent.parent / "plugins" / plugin / "plugin.spec.json"
        worktree = spec.is_file() and json.loads(spec.read_text()).get("category") == "state_change"
    route_tool(Path(dmn_path), tool, plugin, worktree=bool(worktree), label="test")


def install_test_plugin(ws, name, tool=None):
    """Copy tests/data/plugins/<name> into the workspace and route `tool` (default: name) to it."""
    copy_plugin(name, ws)
    add_selection_rule(ws / "process" / "decisions.dmn", tool or name, name)


def line_of(path, needle):
    """The number of the first line of ``path`` that contains ``needle``."""
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


def git(repo, *args):
    """Run git in ``repo`` (an identity given, so commits work anywhere); returns its stdout."""
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *map(str, args)], cwd=repo,
                          check=True, capture_output=True, text=True).stdout


def tree_snapshot(root):
    """Every file, folder and symlink under ``root`` (``.git`` and untracked files included), by content:
    equal snapshots mean nothing there changed, byte for byte."""
    import hashlib

    out = {}
    for path in sorted(Path(root).rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            out[rel] = "link:" + os.readlink(path)
        elif path.is_file():
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            out[rel] = "folder"
    return out


@pytest.fixture
def check_state(monkeypatch):
    """Every durable point of the runs in this test restores, from the task's state journal, a workflow
    equal to the live one (``ENGINE_CHECK_STATE``: engine.process.state.check_restores), or fails the task."""
    monkeypatch.setenv("ENGINE_CHECK_STATE", "1")
