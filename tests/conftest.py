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
def example_ws(tmp_path):
    """A workspace made by `engine init --example`."""
    ws = tmp_path / "ws"
    engine("init", "--example", ws, check=0)
    return ws


@pytest.fixture
def data_dir():
    return DATA


def copy_plugin(name, ws):
    shutil.copytree(DATA / "plugins" / name, ws / "plugins" / name)
