"""`engine plugin list`, `engine plugin check` and `engine validate` against real plugin folders,
real entry points of an installed distribution and real worker processes."""

import json
import shutil
from pathlib import Path

import pytest

from engine.bundled import bundled
from tests.conftest import engine

SPEC = {"id": "acme-plugin", "version": "0.1.0", "category": "transformation",
        "operations": {"shout": {"input_schema": {"type": "object"}, "output_schema": {"type": "object"}}}}
SOURCE = "def shout(ctx, data):\n    return {'text': str(data.get('text', '')).upper()}\n"


@pytest.fixture
def ws(tmp_path):
    root = tmp_path / "ws"
    engine("init", root, check=0)
    return root


def plugin_folder(folder, spec=SPEC, source=SOURCE, **manifest):
    (folder / "src").mkdir(parents=True)
    (folder / "plugin.spec.json").write_text(json.dumps(spec))
    (folder / "manifest.json").write_text(json.dumps({"id": spec["id"], "version": spec["version"],
                                                      "entry_point": "src/plugin.py", **manifest}))
    (folder / "src" / "plugin.py").write_text(source)
    return folder


def test_list_shows_the_bundled_plugins_and_where_they_come_from(ws):
    proc = engine("plugin", "list", "--json", cwd=ws, check=0)
    body = json.loads(proc.stdout)
    rows = {row["id"]: row for row in body["plugins"]}
    assert body["problems"] == []
    folder = Path(rows["git-inspector"].pop("folder"))  # the installed engine's bundled copy, or the repo's
    assert (folder / "plugin.spec.json").is_file() and folder.parts[-2:] == ("plugins", "git-inspector")
    assert rows["git-inspector"] == {
        "id": "git-inspector", "version": "0.1.0", "category": "acquisition", "operations": ["status", "diff", "log"],
        "origin": "bundled", "isolation": "process", "replaces": None, "conformance_level": "L5"}
    assert rows["task-parser"]["isolation"] == "inprocess"
    table = engine("plugin", "list", cwd=ws, check=0).stdout
    assert "git-inspector" in table and "bundled" in table


def test_check_loads_an_isolated_plugin_in_a_worker(ws):
    proc = engine("plugin", "check", "git-inspector", cwd=ws, check=0)
    assert "plugin git-inspector ok" in proc.stdout
    body = json.loads(engine("plugin", "check", "task-parser", "--json", cwd=ws, check=0).stdout)
    assert body == {"plugin": "task-parser", "ok": True, "problems": []}


def test_check_names_the_file_and_field_of_a_broken_workspace_plugin(ws):
    (ws / "plugins").mkdir()
    (ws / "plugins" / "evil.py").write_text("import os\nos._exit(9)\n")
    spec = {**SPEC, "id": "broken"}
    plugin_folder(ws / "plugins" / "broken", spec, entry_point="../evil.py")
    proc = engine("plugin", "check", "broken", cwd=ws, check=6)
    manifest = ws / "plugins" / "broken" / "manifest.json"
    assert f"{manifest} $.entry_point: entry point '../evil.py' resolves to" in proc.stdout
    body = json.loads(engine("plugin", "check", "broken", "--json", cwd=ws, check=6).stdout)
    assert body["plugin"] == "broken" and body["ok"] is False
    assert [(p["file"], p["path"]) for p in body["problems"]] == [(str(manifest), "$.entry_point")]
    # the broken plugin also stops `plugin list` (and `engine run`), but the good ones are still listed
    proc = engine("plugin", "list", "--json", cwd=ws, check=6)
    listed = {row["id"] for row in json.loads(proc.stdout)["plugins"]}
    assert {"git-inspector", "task-parser", "worktree-manager"} <= listed and "broken" not in listed


def test_check_reports_what_the_worker_finds_at_import_and_survives_it(ws):
    # Statically fine; its import ends the process that runs it: the worker, never the engine.
    plugin_folder(ws / "plugins" / "exiter", {**SPEC, "id": "exiter"}, source="import os\nos._exit(9)\n" + SOURCE)
    proc = engine("plugin", "check", "exiter", cwd=ws, check=6)
    assert str(ws / "plugins" / "exiter" / "src" / "plugin.py") in proc.stdout
    assert "plugin exiter: 1 problem(s)" in proc.stderr


def test_check_of_an_unknown_plugin_suggests_one(ws):
    proc = engine("plugin", "check", "git-inspectr", cwd=ws, check=6)
    assert "no plugin 'git-inspectr' is installed; did you mean 'git-inspector'?" in proc.stdout


def test_an_installed_distribution_provides_a_plugin_through_its_entry_point(ws, tmp_path):
    site = tmp_path / "site"
    marker = tmp_path / "package-ran"
    package = plugin_folder(site / "acme_plugin")
    (package / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    dist = site / "acme_plugin-0.1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-plugin\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text("[engine.plugins]\nacme-plugin = acme_plugin\n")
    env = {"PYTHONPATH": str(site)}
    body = json.loads(engine("plugin", "list", "--json", cwd=ws, env=env, check=0).stdout)
    [row] = [row for row in body["plugins"] if row["id"] == "acme-plugin"]
    assert row["origin"] == "entry-point" and row["folder"] == str(package) and row["operations"] == ["shout"]
    engine("plugin", "check", "acme-plugin", cwd=ws, env=env, check=0)
    assert not marker.exists()  # found and checked without running the package


def test_an_entry_point_naming_another_id_is_refused(ws, tmp_path):
    site = tmp_path / "site"
    plugin_folder(site / "acme_plugin")
    dist = site / "acme_plugin-0.1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-plugin\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text("[engine.plugins]\nacme = acme_plugin\n")
    proc = engine("plugin", "check", "acme", cwd=ws, env={"PYTHONPATH": str(site)}, check=6)
    assert "$.id: plugin id 'acme-plugin' differs from its entry point's name 'acme'" in proc.stdout


def shadow_git_inspector(ws, **manifest_extra):
    folder = ws / "plugins" / "git-inspector"
    shutil.copytree(bundled("plugins") / "git-inspector", folder, ignore=shutil.ignore_patterns("__pycache__"))
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, **manifest_extra}))
    return folder


def test_validate_says_which_plugin_replaces_which(ws):
    shadow_git_inspector(ws, replaces="git-inspector")
    proc = engine("validate", cwd=ws, check=0)
    lines = proc.stdout.splitlines()
    assert lines[0] == "plugin git-inspector: using workspace plugins/git-inspector (replaces the bundled one)"
    assert lines[1].startswith("models ok")
    body = json.loads(engine("plugin", "list", "--json", cwd=ws, check=0).stdout)
    [row] = [row for row in body["plugins"] if row["id"] == "git-inspector"]
    assert row["origin"] == "workspace" and row["replaces"] == "git-inspector"


def test_a_plugin_shadowing_a_bundled_one_without_replaces_is_refused(ws):
    shadow_git_inspector(ws)
    proc = engine("validate", cwd=ws, check=6)
    assert 'add "replaces": "git-inspector" to this manifest' in proc.stderr


def test_plugin_route_adds_the_rules_once_and_refuses_a_tool_routed_elsewhere(example_ws):
    from tests.integration.test_cli_json import assert_document, assert_error

    dmn = example_ws / "process" / "decisions.dmn"
    before = dmn.read_bytes()
    body = assert_document(engine("plugin", "route", "file-writer", "--tool", "notes", "--json", cwd=example_ws,
                                  check=0).stdout, "plugin-route")
    assert body == {"plugin": "file-writer", "tool": "notes", "file": str(dmn),
                    "added": ["route_rule_file_writer_notes", "route_worktree_file_writer_notes"]}
    after = dmn.read_bytes()
    again = engine("plugin", "route", "file-writer", "--tool", "notes", cwd=example_ws, check=0).stdout
    assert "already runs plugin file-writer" in again and dmn.read_bytes() == after
    assert "models ok" in engine("validate", cwd=example_ws, check=0).stdout

    # a task with that tool now writes its file through the process, in a worktree
    for old in (example_ws / ".tasks" / "inbox").iterdir():
        old.unlink()
    (example_ws / ".tasks" / "inbox" / "n.jsonl").write_text(json.dumps(
        {"id": "n1", "tool": "notes", "repo": "example-repo",
         "args": {"files": [{"path": "NOTES.md", "content": "hi\n"}]}}) + "\n")
    engine("run", "--drain", cwd=example_ws, check=0)
    assert (example_ws / ".tasks" / "done" / "n.jsonl").is_file()

    proc = engine("plugin", "route", "word-count", "--tool", "git", cwd=example_ws, check=6)
    assert "no plugin 'word-count' is installed" in proc.stderr
    refused = assert_error(engine("plugin", "route", "file-writer", "--tool", "git", "--json", cwd=example_ws), 2)
    assert "tool 'git' is routed to \"git-executor\" by rule" in refused["error"]
    assert refused["problems"][0]["file"] == str(dmn) and refused["problems"][0]["line"] > 0
    assert dmn.read_bytes() == after != before
