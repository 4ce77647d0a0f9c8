"""`engine conformance ID`: the levels built so far (L0 static, L1 golden fixtures called in a real worker,
L5 security with the workspace's real policies) on a bundled plugin and on plugins broken one level at a
time; L2-L4 are reported as not built yet."""

import json
from pathlib import Path

import jsonschema
from referencing import Registry, Resource

from engine.bundled import bundled
from engine.plugins.loader import source_digest
from tests.conftest import engine

SOURCE = '''"""greeter: a typed, pure test plugin."""

from collections.abc import Mapping
from typing import Any

from engine.sdk import Context


def greet(ctx: Context, data: Mapping[str, Any]) -> dict[str, Any]:
    return {"greeting": f"hello {data['name']}", "at": ctx.now.isoformat(), "seed": ctx.seed}
'''
SPEC = {"id": "greeter", "version": "1.2.0", "category": "transformation",
        "operations": {"greet": {"input_schema": {"type": "object", "required": ["name"],
                                                  "properties": {"name": {"type": "string"}}},
                                 "output_schema": {"type": "object", "required": ["greeting"]}}}}
EXPECTED = {"greeting": "hello ada", "at": "2026-01-01T00:00:00+00:00", "seed": 0}


def put_plugin(ws, spec=SPEC, source=SOURCE, fixtures=None):
    """A plugin folder in the workspace's plugins/, its manifest's source_digest computed last."""
    folder = ws / "plugins" / spec["id"]
    (folder / "src").mkdir(parents=True, exist_ok=True)
    (folder / "plugin.spec.json").write_text(json.dumps(spec, indent=2) + "\n")
    (folder / "src" / "plugin.py").write_text(source)
    for (operation, name), (given, expected) in (fixtures or {}).items():
        where = folder / "conformance" / "fixtures" / operation
        where.mkdir(parents=True, exist_ok=True)
        (where / f"{name}.input.json").write_text(json.dumps(given))
        (where / f"{name}.output.json").write_text(json.dumps(expected))
    manifest = {"id": spec["id"], "version": spec["version"], "entry_point": "src/plugin.py"}
    manifest["source_digest"] = source_digest(folder)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return folder


def conformance(ws, plugin_id, *args, check):
    proc = engine("conformance", plugin_id, "--json", *args, cwd=ws, check=check)
    body = json.loads(proc.stdout)
    schema = json.loads((bundled("contracts") / "cli.v1.json").read_text(encoding="utf-8"))
    registry = Registry().with_resources([(schema["$id"], Resource.from_contents(schema))])
    jsonschema.Draft202012Validator({"$ref": f"{schema['$id']}#/$defs/conformance"}, registry=registry).validate(body)
    return body, {level["level"]: level for level in body["levels"]}


def test_a_bundled_plugin_passes_l0_l1_l5_and_the_report_is_written(example_ws):
    body, levels = conformance(example_ws, "task-parser", check=0)
    assert {name: levels[name]["status"] for name in levels} == {
        "L0": "passed", "L1": "passed", "L2": "skipped", "L3": "skipped", "L4": "skipped", "L5": "passed"}
    assert "2 fixture(s)" in levels["L1"]["summary"]
    assert all("not built yet" in levels[name]["summary"] for name in ("L2", "L3", "L4"))
    report = example_ws / "conformance" / "reports" / "task-parser-0.1.0.json"
    assert body["ok"] is True and body["report"] == str(report)
    assert json.loads(report.read_text()) == body

    text = engine("conformance", "task-parser", cwd=example_ws, check=0).stdout
    assert "L1  passed" in text and "L3  skipped  not built yet" in text
    assert "report: conformance/reports/task-parser-0.1.0.json" in text


def test_a_plugin_with_a_fixture_passes_and_meets_its_declared_level(example_ws):
    put_plugin(example_ws, {**SPEC, "conformance_level": "L1"},
               fixtures={("greet", "ada"): ({"name": "ada"}, EXPECTED)})
    body, levels = conformance(example_ws, "greeter", check=0)
    assert body["declared_level"] == "L1" and body["level"] == "L1" and body["meets_declared_level"] is True
    assert list(levels) == ["L0", "L1"] and levels["L1"]["status"] == "passed"
    assert (example_ws / "conformance" / "reports" / "greeter-1.2.0.json").is_file()
    listing = json.loads(engine("plugin", "list", "--json", cwd=example_ws, check=0).stdout)
    rows = {r["id"]: r for r in listing["plugins"]}
    assert rows["greeter"]["conformance_level"] == "L1" and rows["task-parser"]["conformance_level"] is None
    [line] = [x for x in engine("plugin", "list", cwd=example_ws, check=0).stdout.splitlines()
              if x.startswith("greeter ")]
    assert " L1 " in line


def test_a_bad_spec_fails_l0_naming_the_file_and_field(example_ws):
    folder = put_plugin(example_ws, {**SPEC, "category": "magic"})
    body, levels = conformance(example_ws, "greeter", "--level", "L1", check=6)
    assert levels["L0"]["status"] == "failed" and body["ok"] is False
    [problem] = [p for p in levels["L0"]["problems"] if p.get("path") == "$.category"]
    assert problem["file"] == str(folder / "plugin.spec.json")
    assert levels["L1"]["status"] == "skipped" and "does not load" in levels["L1"]["summary"]


def test_a_ruff_error_in_the_source_fails_l0_naming_the_line(example_ws):
    folder = put_plugin(example_ws, source=SOURCE.replace("from collections.abc", "import os\nfrom collections.abc"))
    _, levels = conformance(example_ws, "greeter", "--level", "L0", check=6)
    found = [p for p in levels["L0"]["problems"] if p["message"].startswith("ruff:")]
    assert found and "F401" in found[0]["message"] and "os" in found[0]["message"]
    assert found[0]["file"] == str(folder / "src" / "plugin.py") and found[0]["line"] == 3


def test_a_stale_source_digest_and_a_type_error_fail_l0(example_ws):
    folder = put_plugin(example_ws)
    (folder / "src" / "plugin.py").write_text(SOURCE + "\n\ndef broken(x: int) -> str:\n    return x\n")
    _, levels = conformance(example_ws, "greeter", "--level", "L0", check=6)
    messages = {(p.get("path"), p["message"].split(":")[0]) for p in levels["L0"]["problems"]}
    assert ("$.source_digest", "source_digest does not match the source on disk (sha256") in messages
    assert (None, "mypy") in messages


def test_a_fixture_whose_output_differs_fails_l1_naming_the_json_path(example_ws):
    folder = put_plugin(example_ws, fixtures={("greet", "ada"): ({"name": "ada"}, {**EXPECTED, "greeting": "hi ada"})})
    body, levels = conformance(example_ws, "greeter", check=6)
    assert levels["L0"]["status"] == "passed" and levels["L1"]["status"] == "failed"
    [problem] = levels["L1"]["problems"]
    assert problem["path"] == "$.greeting"
    assert problem["file"] == str(folder / "conformance" / "fixtures" / "greet" / "ada.output.json")
    assert '"hello ada"' in problem["message"] and '"hi ada"' in problem["message"]
    assert json.loads(Path(body["report"]).read_text())["ok"] is False


def test_a_fixture_input_that_breaks_the_input_schema_fails_l1(example_ws):
    put_plugin(example_ws, fixtures={("greet", "nameless"): ({"nom": "ada"}, EXPECTED)})
    _, levels = conformance(example_ws, "greeter", "--level", "L1", check=6)
    [problem] = levels["L1"]["problems"]
    assert problem["file"].endswith("nameless.input.json") and "input_schema" in problem["message"]


def test_no_fixtures_is_not_run_unless_the_declared_level_includes_l1(example_ws):
    put_plugin(example_ws)
    _, levels = conformance(example_ws, "greeter", check=0)
    assert levels["L1"]["status"] == "skipped" and levels["L1"]["summary"].startswith("not run: no fixtures")
    put_plugin(example_ws, {**SPEC, "conformance_level": "L5"})
    body, levels = conformance(example_ws, "greeter", check=6)
    assert levels["L1"]["status"] == "failed" and body["meets_declared_level"] is False


def test_a_state_change_operation_without_a_plan_fails_l5(example_ws):
    spec = {**SPEC, "category": "state_change", "whatif": True}
    folder = put_plugin(example_ws, spec, fixtures={("greet", "ada"): ({"name": "ada"}, EXPECTED)})
    _, levels = conformance(example_ws, "greeter", check=6)
    assert levels["L0"]["status"] == "passed" and levels["L1"]["status"] == "passed"
    [problem] = levels["L5"]["problems"]
    assert problem["path"] == "$.operations.greet.output_schema" and "plan" in problem["message"]
    assert problem["file"] == str(folder / "plugin.spec.json")


def test_l5_applies_the_workspace_policies_to_the_environment_asked_for(example_ws):
    put_plugin(example_ws, {**SPEC, "env": ["GITHUB_TOKEN", "DB_PASSWORD"]})
    _, levels = conformance(example_ws, "greeter", check=6)
    messages = [p["message"] for p in levels["L5"]["problems"]]
    assert any("GITHUB_TOKEN" in m and "(rule forbidden_env)" in m for m in messages)
    assert any("DB_PASSWORD" in m and "(rule forbidden_env)" in m for m in messages)
    assert any("credential_env_needs_network" in m for m in messages)
    assert all(p["path"] == "$.env" for p in levels["L5"]["problems"])


def test_an_unknown_plugin_fails_with_a_suggestion(example_ws):
    body, levels = conformance(example_ws, "task-parsr", "--level", "L0", check=6)
    assert "did you mean 'task-parser'" in levels["L0"]["problems"][0]["message"]
    assert body["version"] is None and body["report"] is None
    assert not (example_ws / "conformance" / "reports").exists()


def test_l5_refuses_key_files_in_the_plugin_folder(example_ws):
    folder = put_plugin(example_ws)
    (folder / "deploy.pem").write_text("not really a key\n")
    (folder / ".git" / "objects").mkdir(parents=True)
    (folder / ".git" / "objects" / "x").write_text("x")
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "source_digest": source_digest(folder)}))
    _, levels = conformance(example_ws, "greeter", check=6)
    assert levels["L0"]["status"] == "passed"
    assert sorted(p["file"] for p in levels["L5"]["problems"]) == [str(folder / ".git"), str(folder / "deploy.pem")]
    assert all("no_secret_files" in p["message"] for p in levels["L5"]["problems"])


def test_a_fixture_that_kills_its_worker_fails_l1_and_the_command_goes_on(example_ws):
    # in process in the kernel, yet in a worker under conformance: its exit costs the fixture only
    source = SOURCE.replace('    return {"greeting"', '    if data["name"] == "exit":\n        os._exit(3)\n'
                            '    return {"greeting"').replace("from collections.abc", "import os\nfrom collections.abc")
    put_plugin(example_ws, {**SPEC, "isolation": "inprocess"}, source=source,
               fixtures={("greet", "ada"): ({"name": "ada"}, EXPECTED),
                         ("greet", "exit"): ({"name": "exit"}, EXPECTED)})
    body, levels = conformance(example_ws, "greeter", check=6)
    assert levels["L0"]["status"] == "passed" and levels["L5"]["status"] == "passed"
    [problem] = levels["L1"]["problems"]
    assert problem["file"].endswith("exit.input.json") and "exited with code 3" in problem["message"]
