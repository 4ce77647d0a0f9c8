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


def add_selection_rule(dmn_path, tool, plugin):
    """Add a rule `"tool" -> "plugin"` to the select_plugin table of a workspace's decisions.dmn."""
    from lxml import etree

    tree = etree.parse(str(dmn_path))
    ns = {"d": tree.getroot().nsmap[None]}
    table = tree.find(".//d:decision[@id='select_plugin']/d:decisionTable", ns)
    rule = etree.SubElement(table, f"{{{ns['d']}}}rule", id=f"test_rule_{plugin.replace('-', '_')}")
    for kind, text in (("inputEntry", f'"{tool}"'), ("outputEntry", f'"{plugin}"')):
        entry = etree.SubElement(rule, f"{{{ns['d']}}}{kind}", id=f"test_{kind}_{plugin.replace('-', '_')}")
        etree.SubElement(entry, f"{{{ns['d']}}}text").text = text
    tree.write(str(dmn_path), xml_declaration=True, encoding="UTF-8")


def install_test_plugin(ws, name, tool=None):
    """Copy tests/data/plugins/<name> into the workspace and route `tool` (default: name) to it."""
    copy_plugin(name, ws)
    add_selection_rule(ws / "process" / "decisions.dmn", tool or name, name)
