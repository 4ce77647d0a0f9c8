import json
from pathlib import Path

import pytest

from engine.bundled import bundled
from engine.errors import ContractViolation, PluginError, PluginLoadError
from engine.plugins import Registry, dispatch, load_plugin, source_digest
from engine.sdk import Context

SPEC = {
    "id": "echo", "version": "1.0.0", "category": "transformation",
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


def make(root: Path, spec=SPEC, manifest=MANIFEST, source=SOURCE) -> Path:
    folder = root / spec.get("id", "echo") if isinstance(spec, dict) else root / "echo"
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


def test_missing_operation_function_and_stale_digest(tmp_path):
    manifest = {**MANIFEST, "source_digest": "sha256:" + "0" * 64}
    with pytest.raises(PluginLoadError) as caught:
        load_plugin(make(tmp_path, manifest=manifest, source="def other(ctx, data):\n    return {}\n"))
    messages = " | ".join(p.message for p in caught.value.problems)
    assert "source_digest does not match" in messages
    assert "has no function echo(ctx, data)" not in messages  # import is not attempted on a stale digest


def test_missing_function_is_reported(tmp_path):
    with pytest.raises(PluginLoadError) as caught:
        load_plugin(make(tmp_path, source="def other(ctx, data):\n    return {}\n"))
    assert "has no function echo(ctx, data)" in caught.value.problems[0].message


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
