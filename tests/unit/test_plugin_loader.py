import json
import sys
from pathlib import Path

import pytest

from engine.bundled import bundled
from engine.errors import ContractViolation, PluginError, PluginLoadError
from engine.plugins.dispatch import dispatch
from engine.plugins.loader import Registry, load_plugin, package_folder, source_digest
from engine.sdk import Context

# "inprocess": the kernel imports it, so these tests can call its function directly.
SPEC = {
    "id": "echo", "version": "1.0.0", "category": "transformation", "isolation": "inprocess",
    "operations": {"echo": {"input_schema": {"type": "object", "required": ["text"]},
                            "output_schema": {"type": "object", "required": ["text"],
                                              "properties": {"text": {"type": "string"}}}}},
}
MANIFEST = {"id": "echo", "version": "1.0.0", "entry_point": "src/echo.py"}
SOURCE = "def echo(ctx, data):\n    if data['text'] == 'boom':\n        raise ValueError('exploded')\n" \
         "    if data['text'] == 'bad':\n        return {'text': 3}\n" \
         "    if data['text'] == 'set':\n        return {'text': 'x', 'extra': {1, 2}}\n" \
         "    if data['text'] == 'keys':\n        return {'text': 'x', 5: 'five'}\n" \
         "    return {'text': data['text']}\n"
ISOLATED = {k: v for k, v in SPEC.items() if k != "isolation"}  # the default: runs in workers, never imported


def make(root: Path, spec=SPEC, manifest=MANIFEST, source=SOURCE, name=None) -> Path:
    folder = root / (name or (spec.get("id", "echo") if isinstance(spec, dict) else "echo"))
    (folder / "src").mkdir(parents=True)
    (folder / "plugin.spec.json").write_text(spec if isinstance(spec, str) else json.dumps(spec))
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (folder / "src" / "echo.py").write_text(source)
    return folder


def ctx(tmp_path):
    from datetime import UTC, datetime

    import structlog

    return Context("run", "task", datetime(2026, 1, 1, tzinfo=UTC), 1, False, tmp_path, structlog.get_logger())


def test_valid_plugin_loads_with_its_digest(tmp_path):
    plugin = load_plugin(make(tmp_path))
    assert plugin.id == "echo" and plugin.spec.first_operation == "echo"
    assert plugin.digest == source_digest(plugin.folder)


def test_every_problem_is_reported_at_once(tmp_path):
    spec = {**SPEC, "category": "magic", "version": "1"}
    manifest = {"id": "echo", "version": "1.0.0", "entry_point": "src/echo.sh"}
    with pytest.raises(PluginLoadError) as caught:
        load_plugin(make(tmp_path, spec, manifest))
    found = {(Path(p.file).name, p.path) for p in caught.value.problems}
    assert found == {("plugin.spec.json", "$.category"), ("plugin.spec.json", "$.version"),
                     ("manifest.json", "$.entry_point")}


def test_invalid_json_names_the_line(tmp_path):
    with pytest.raises(PluginLoadError) as caught:
        load_plugin(make(tmp_path, '{\n  "id": "echo",\n  oops\n}'))
    assert caught.value.problems[0].line == 3


def test_stale_digest_and_missing_function_are_reported_together_without_importing(tmp_path):
    manifest = {**MANIFEST, "source_digest": "sha256:" + "0" * 64}
    marker = tmp_path / "imported"
    source = f"open({str(marker)!r}, 'w').close()\n\ndef other(ctx, data):\n    return {{}}\n"
    with pytest.raises(PluginLoadError) as caught:
        load_plugin(make(tmp_path, manifest=manifest, source=source))  # an inprocess plugin
    messages = " | ".join(p.message for p in caught.value.problems)
    assert "source_digest does not match" in messages and "has no function echo(ctx, data)" in messages
    assert not marker.exists()  # nothing is imported while a problem is known


def test_missing_function_is_found_by_reading_the_source(tmp_path):
    with pytest.raises(PluginLoadError) as caught:
        load_plugin(make(tmp_path, ISOLATED, source="def other(ctx, data):\n    return {}\n"))
    [problem] = caught.value.problems
    assert "has no function echo(ctx, data)" in problem.message
    assert Path(problem.file).name == "echo.py" and problem.path == "$.operations.echo"


@pytest.mark.parametrize("source", [
    "def echo(ctx, data):\n    return {}\n",
    "async def echo(ctx, data):\n    return {}\n",
    "from json import dumps as echo\n",
    "import os.path as echo\n",
    "echo = print\n",
    "first, (echo, last) = 1, (2, 3)\n",
    "try:\n    from fast import echo\nexcept ImportError:\n    def echo(ctx, data):\n        return {}\n",
    "from helpers import *\n",  # names unknown without running it: not checked
])
def test_top_level_names_count_as_operations(tmp_path, source):
    plugin = load_plugin(make(tmp_path, ISOLATED, source=source))
    assert plugin.functions == {}


@pytest.mark.parametrize("source", [
    "def helper():\n    def echo(ctx, data):\n        return {}\n",  # not at the top level
    "class Box:\n    echo = staticmethod(print)\n",
    "import echo_tools\n",
])
def test_names_not_bound_at_the_top_level_do_not_count(tmp_path, source):
    with pytest.raises(PluginLoadError, match="is invalid") as caught:
        load_plugin(make(tmp_path, ISOLATED, source=source))
    assert "has no function echo(ctx, data)" in caught.value.problems[0].message


def test_a_syntax_error_names_the_file_and_line(tmp_path):
    with pytest.raises(PluginLoadError) as caught:
        load_plugin(make(tmp_path, ISOLATED, source="def echo(ctx, data):\n    return {}\n\ndef broken(:\n"))
    [problem] = caught.value.problems
    assert problem.message.startswith("syntax error") and Path(problem.file).name == "echo.py"
    assert problem.line == 4


@pytest.mark.parametrize("body", [
    "raise SystemExit(9)\n",
    "import os\nos._exit(9)\n",
    "open({marker!r}, 'w').close()\n",
])
def test_an_isolated_plugin_is_checked_without_being_imported(tmp_path, body):
    marker = tmp_path / "imported"
    source = body.format(marker=str(marker)) + "\ndef echo(ctx, data):\n    return data\n"
    plugin = load_plugin(make(tmp_path, ISOLATED, source=source))
    assert plugin.spec.isolation == "process" and plugin.functions == {}
    assert not marker.exists()  # and this test process was neither exited nor killed


def test_an_inprocess_plugin_is_imported(tmp_path):
    plugin = load_plugin(make(tmp_path))
    assert set(plugin.functions) == {"echo"} and callable(plugin.functions["echo"])


def test_a_folder_linked_from_outside_the_search_root_is_refused(tmp_path):
    elsewhere = make(tmp_path / "elsewhere", ISOLATED)
    root = tmp_path / "plugins"
    root.mkdir()
    (root / "echo").symlink_to(elsewhere, target_is_directory=True)
    registry = Registry.discover([("workspace", root)])
    assert registry.plugins == {}
    [error] = registry.errors
    assert error.problems[0].file == str(root / "echo") and "outside" in error.problems[0].message


def test_a_file_linked_from_outside_the_folder_is_refused_before_import(tmp_path):
    marker = tmp_path / "imported"
    outside = tmp_path / "shared.py"
    outside.write_text("X = 1\n")
    folder = make(tmp_path / "plugins", source=f"open({str(marker)!r}, 'w').close()\n" + SOURCE)
    (folder / "src" / "shared.py").symlink_to(outside)
    with pytest.raises(PluginLoadError) as caught:
        load_plugin(folder)
    [problem] = caught.value.problems
    assert problem.file == str(folder / "src" / "shared.py") and "outside the plugin folder" in problem.message
    assert not marker.exists()


def test_a_link_inside_the_folder_is_fine(tmp_path):
    folder = make(tmp_path, ISOLATED)
    (folder / "src" / "alias.py").symlink_to(folder / "src" / "echo.py")
    assert load_plugin(folder).id == "echo"


@pytest.mark.parametrize("entry_point", ["../evil.py", "src/../../evil.py", "ABSOLUTE"])
def test_an_entry_point_outside_the_folder_is_refused_and_never_runs(tmp_path, entry_point):
    marker = tmp_path / "evil-ran"
    folder = make(tmp_path / "plugins")  # an inprocess plugin: it would be imported if it passed
    evil = tmp_path / "plugins" / "evil.py"
    evil.write_text(f"open({str(marker)!r}, 'w').close()\n" + SOURCE)
    entry_point = str(evil) if entry_point == "ABSOLUTE" else entry_point
    (folder / "manifest.json").write_text(json.dumps({**MANIFEST, "entry_point": entry_point}))
    with pytest.raises(PluginLoadError) as caught:
        load_plugin(folder)
    [problem] = caught.value.problems
    assert Path(problem.file).name == "manifest.json" and problem.path == "$.entry_point"
    assert "outside the plugin folder" in problem.message
    assert not marker.exists()


def test_the_digest_covers_docs_and_tests_but_not_caches(tmp_path):
    folder = make(tmp_path)
    before = source_digest(folder)
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "echo.cpython-311.pyc").write_bytes(b"cache")
    (folder / "src" / "echo.pyc").write_bytes(b"cache")
    (folder / "manifest.json").write_text(json.dumps({**MANIFEST, "source_digest": before}))
    assert source_digest(folder) == before
    (folder / "README_PLUGIN.md").write_text("# echo\n")
    with_readme = source_digest(folder)
    assert with_readme != before
    (folder / "tests").mkdir()
    (folder / "tests" / "test_echo.py").write_text("def test(): pass\n")
    assert source_digest(folder) not in (before, with_readme)
    with pytest.raises(PluginLoadError, match="is invalid"):
        load_plugin(folder)  # the manifest's digest no longer matches


def test_dispatch_checks_contracts_both_ways_and_wraps_foreign_errors(tmp_path):
    plugin = load_plugin(make(tmp_path))
    assert dispatch(plugin, None, ctx(tmp_path), {"text": "hi"}) == {"text": "hi"}
    with pytest.raises(ContractViolation) as caught:
        dispatch(plugin, "echo", ctx(tmp_path), {})
    assert caught.value.side == "input" and caught.value.problems[0].path == "$"
    with pytest.raises(ContractViolation) as caught:
        dispatch(plugin, "echo", ctx(tmp_path), {"text": "bad"})
    assert caught.value.side == "output" and caught.value.problems[0].path == "$.text"
    with pytest.raises(ContractViolation) as caught:
        dispatch(plugin, "echo", ctx(tmp_path), {"text": "set"})
    assert "is not plain JSON" in str(caught.value)
    assert dispatch(plugin, "echo", ctx(tmp_path), {"text": "keys"}) == {"text": "x", "5": "five"}
    with pytest.raises(PluginError) as caught:
        dispatch(plugin, "echo", ctx(tmp_path), {"text": "boom"})
    assert "ValueError: exploded" in str(caught.value) and caught.value.retryable is False


def test_bundled_plugins_load_and_match_their_manifests():
    registry = Registry.discover([bundled("plugins")])
    assert registry.errors == []
    assert {"git-inspector", "task-parser"} <= set(registry.ids())


def test_topic_resolution_and_suggestion(tmp_path):
    registry = Registry.discover([bundled("plugins")])
    plugin, op = registry.resolve_topic("git-inspector.diff")
    assert plugin.id == "git-inspector" and op == "diff"
    assert registry.resolve_topic("git-inspector.push") is None
    assert registry.suggest("git-inspectr") == "git-inspector"
    assert registry.suggest("zzz") is None


def roots(tmp_path):
    return tmp_path / "ws-plugins", tmp_path / "bundled-plugins"


def test_two_plugins_with_one_id_are_refused_without_replaces(tmp_path):
    mine, theirs = roots(tmp_path)
    make(mine, ISOLATED), make(theirs, ISOLATED)
    registry = Registry.discover([("workspace", mine), ("bundled", theirs)])
    assert registry.plugins == {}
    [error] = registry.errors
    assert str(mine / "echo") in error.message and str(theirs / "echo") in error.message
    [problem] = error.problems
    assert problem.file == str(mine / "echo" / "manifest.json") and problem.path == "$.replaces"
    assert 'add "replaces": "echo"' in problem.message


def test_replaces_with_its_own_id_shadows_on_purpose(tmp_path):
    mine, theirs = roots(tmp_path)
    make(mine, ISOLATED, manifest={**MANIFEST, "replaces": "echo"})
    make(theirs, ISOLATED, source="this is not python")  # set aside, so never even checked
    registry = Registry.discover([("workspace", mine), ("bundled", theirs)])
    assert registry.errors == []
    plugin = registry.get("echo")
    assert plugin.folder == mine / "echo" and plugin.origin == "workspace" and plugin.replaces == "echo"
    [replacement] = registry.replacements
    assert replacement.describe(tmp_path) == "plugin echo: using workspace ws-plugins/echo (replaces the bundled one)"


def test_a_plugin_can_take_the_place_of_another_id(tmp_path):
    mine, theirs = roots(tmp_path)
    marker = tmp_path / "replaced-was-imported"
    make(mine, {**SPEC, "id": "my-echo"}, {**MANIFEST, "id": "my-echo", "replaces": "echo"})
    make(theirs, source=f"open({str(marker)!r}, 'w').close()\n" + SOURCE)  # inprocess: imported if loaded
    registry = Registry.discover([("workspace", mine), ("bundled", theirs)])
    assert registry.errors == [] and registry.ids() == ["my-echo"] and not marker.exists()
    assert registry.get("echo").id == "my-echo"
    plugin, op = registry.resolve_topic("echo.echo")
    assert plugin.id == "my-echo" and op == "echo"
    assert registry.suggest("ecko") == "echo"
    [replacement] = registry.replacements
    assert replacement.describe(tmp_path) == \
        "plugin echo: using my-echo from workspace ws-plugins/my-echo (replaces the bundled one)"


@pytest.mark.parametrize("replaces", ["nothing-here", "echo"])
def test_replaces_naming_no_plugin_is_refused(tmp_path, replaces):
    mine, theirs = roots(tmp_path)
    make(mine, ISOLATED, manifest={**MANIFEST, "replaces": replaces})
    registry = Registry.discover([("workspace", mine), ("bundled", theirs)])
    assert registry.plugins == {}
    [error] = registry.errors
    assert error.plugin == "echo" and error.problems[0].path == "$.replaces"
    assert f"replaces {replaces!r}, but no" in error.problems[0].message


def test_plugins_without_replaces_keep_working_beside_the_bundled_ones(tmp_path):
    mine, _ = roots(tmp_path)
    make(mine, ISOLATED)
    registry = Registry.discover([("workspace", mine), bundled("plugins")])
    assert registry.errors == [] and registry.replacements == []
    assert {"echo", "git-inspector", "task-parser"} <= set(registry.ids())
    assert registry.get("echo").origin == "workspace" and registry.get("git-inspector").origin == "bundled"


def test_a_package_folder_is_found_without_running_the_package(tmp_path, monkeypatch):
    marker = tmp_path / "package-ran"
    package = tmp_path / "site" / "acme_tools"
    make(package, ISOLATED, name="acme_echo")
    for folder in (package, package / "acme_echo"):
        (folder / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert package_folder("acme_tools.acme_echo") == package / "acme_echo"
    assert not marker.exists() and "acme_tools" not in sys.modules
    with pytest.raises(LookupError, match="has no plugin.spec.json"):
        package_folder("acme_tools")
    with pytest.raises(LookupError, match="no package 'acme_tools.nope'"):
        package_folder("acme_tools.nope")


def test_a_replacement_of_a_replacement_resolves_to_the_plugin_in_use(tmp_path):
    mine, theirs = roots(tmp_path)
    make(mine, {**ISOLATED, "id": "newest"}, {**MANIFEST, "id": "newest", "replaces": "newer"})
    make(theirs, {**ISOLATED, "id": "newer"}, {**MANIFEST, "id": "newer", "replaces": "echo"})
    make(theirs, ISOLATED)
    registry = Registry.discover([("workspace", mine), ("bundled", theirs)])
    assert registry.errors == [] and registry.ids() == ["newest"]
    assert registry.get("echo").id == registry.get("newer").id == "newest"


def test_two_plugins_replacing_one_id_are_refused(tmp_path):
    mine, theirs = roots(tmp_path)
    for name in ("one", "two"):
        make(mine, {**ISOLATED, "id": name}, {**MANIFEST, "id": name, "replaces": "echo"})
    make(theirs, ISOLATED)
    registry = Registry.discover([("workspace", mine), ("bundled", theirs)])
    assert registry.ids() == ["one"] and registry.get("echo").id == "one"
    [error] = registry.errors
    assert error.plugin == "two" and "which 'one' replaces too" in error.problems[0].message


def test_a_cache_folder_linked_from_outside_is_refused_too(tmp_path):
    folder = make(tmp_path / "plugins", ISOLATED)
    (tmp_path / "elsewhere").mkdir()
    (folder / "src" / "__pycache__").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(PluginLoadError) as caught:
        load_plugin(folder)
    assert caught.value.problems[0].file == str(folder / "src" / "__pycache__")


def test_plugins_replacing_each_other_are_refused(tmp_path):
    mine, _ = roots(tmp_path)
    make(mine, {**ISOLATED, "id": "one"}, {**MANIFEST, "id": "one", "replaces": "two"})
    make(mine, {**ISOLATED, "id": "two"}, {**MANIFEST, "id": "two", "replaces": "one"})
    registry = Registry.discover([("workspace", mine)])
    assert registry.plugins == {} and registry.get("one") is None
    [error] = registry.errors
    assert "replace each other" in error.message


def test_a_source_digest_written_by_engine_0_1_still_loads(tmp_path):
    """Plugin folders made before the digest covered documentation and tests keep working unchanged."""
    from engine.plugins.loader import legacy_source_digest

    folder = make(tmp_path)
    (folder / "README_PLUGIN.md").write_text("# echo\n")
    manifest = {**MANIFEST, "source_digest": legacy_source_digest(folder)}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    loaded = load_plugin(folder)
    assert loaded.digest == source_digest(folder) != manifest["source_digest"]
    (folder / "src" / "echo.py").write_text(SOURCE + "\n# changed\n")  # the code it covers still counts
    with pytest.raises(PluginLoadError) as caught:
        load_plugin(folder)
    assert "source_digest does not match" in str(caught.value.problems[0])


def test_a_state_change_plugin_must_support_whatif(tmp_path):
    folder = make(tmp_path, spec={**SPEC, "category": "state_change"})
    with pytest.raises(PluginLoadError) as caught:
        load_plugin(folder)
    assert [p.path for p in caught.value.problems] == ["$.whatif"]
    (folder / "plugin.spec.json").write_text(json.dumps({**SPEC, "category": "state_change", "whatif": True}))
    assert load_plugin(folder).spec.whatif


def test_the_schemas_of_every_shipped_plugin_are_valid_json_schemas():
    """The loader trusts the schemas of a shipped plugin whose digest is the one it shipped with (checking
    them against the metaschema on every start is most of a command's start): this is where they are
    checked."""
    from engine.contracts import check_schema

    builtin = Path(__file__).resolve().parents[2] / "engine" / "safety" / "builtin"
    folders = [p for root in (Path(bundled("plugins")), builtin)
               for p in sorted(root.iterdir()) if (p / "plugin.spec.json").is_file()]
    assert len(folders) >= 10
    for folder in folders:
        spec = json.loads((folder / "plugin.spec.json").read_text())
        for name, operation in spec["operations"].items():
            for side in ("input_schema", "output_schema"):
                assert check_schema(operation[side]) == [], f"{folder.name}.{name}.{side}"


def test_a_shipped_plugin_changed_on_disk_has_its_schemas_checked_again(tmp_path):
    source = Path(bundled("plugins")) / "git-inspector"
    copy = tmp_path / "plugins" / "git-inspector"
    import shutil

    shutil.copytree(source, copy)
    spec = json.loads((copy / "plugin.spec.json").read_text())
    spec["operations"]["status"]["output_schema"] = {"type": "no-such-type"}
    (copy / "plugin.spec.json").write_text(json.dumps(spec))
    with pytest.raises(PluginLoadError) as caught:
        load_plugin(copy, origin="bundled")
    messages = [p.message for p in caught.value.problems]
    assert any("not a valid JSON Schema" in m for m in messages) and any("source_digest" in m for m in messages)
