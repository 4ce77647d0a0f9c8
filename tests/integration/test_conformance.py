"""`engine conformance`: the six levels (L0 static, L1 golden fixtures called in a real worker, L2 behaviour
scenarios run by pytest-bdd, L3 the example process end to end in a fresh workspace, L4 P95 latency against
the workspace's budget, L5 security with its real policies) on a bundled plugin and on plugins broken one
level at a time; several plugins at once (--changed-since, --matrix); the run outside a workspace."""

import json
import subprocess
from pathlib import Path

import jsonschema
from referencing import Registry, Resource

from engine.bundled import bundled
from engine.plugins.loader import source_digest
from tests.conftest import engine
from tests.integration.test_cli_json import assert_document

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


def test_a_bundled_plugin_passes_every_level_and_the_report_is_written(example_ws):
    body, levels = conformance(example_ws, "task-parser", check=0)
    assert {name: levels[name]["status"] for name in levels} == {
        "L0": "passed", "L1": "passed", "L2": "passed", "L3": "passed", "L4": "passed", "L5": "passed"}
    assert "2 fixture(s)" in levels["L1"]["summary"] and "3 scenario(s) passed" in levels["L2"]["summary"]
    assert "2 task(s) done through the example process" in levels["L3"]["summary"]
    assert "budget 250 ms" in levels["L4"]["summary"]
    assert body["declared_level"] == "L5" and body["meets_declared_level"] is True
    report = example_ws / "conformance" / "reports" / "task-parser-0.1.0.json"
    assert body["ok"] is True and body["report"] == str(report)
    assert json.loads(report.read_text()) == body
    readable = report.with_suffix(".md").read_text()
    assert "the plugin meets its declared level L5" in readable and "| L3 | passed | 2 task(s) done" in readable

    text = engine("conformance", "task-parser", "--level", "L2", cwd=example_ws, check=0).stdout
    assert "L1  passed" in text and "L2  passed" in text and "L3" not in text
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
    assert rows["greeter"]["conformance_level"] == "L1" and rows["task-parser"]["conformance_level"] == "L5"
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
    body, levels = conformance(example_ws, "greeter", "--level", "L1", check=6)
    assert levels["L0"]["status"] == "passed" and levels["L1"]["status"] == "failed"
    [problem] = levels["L1"]["problems"]
    assert problem["path"] == "$.greeting"
    assert problem["file"] == str(folder / "conformance" / "fixtures" / "greet" / "ada.output.json")
    assert '"hello ada"' in problem["message"] and '"hi ada"' in problem["message"]
    assert json.loads(Path(body["report"]).read_text())["ok"] is False
    readable = Path(body["report"]).with_suffix(".md").read_text()
    assert "a level FAILED" in readable and "## L1: what to fix" in readable and "$.greeting" in readable


def test_a_fixture_input_that_breaks_the_input_schema_fails_l1(example_ws):
    put_plugin(example_ws, fixtures={("greet", "nameless"): ({"nom": "ada"}, EXPECTED)})
    _, levels = conformance(example_ws, "greeter", "--level", "L1", check=6)
    [problem] = levels["L1"]["problems"]
    assert problem["file"].endswith("nameless.input.json") and "input_schema" in problem["message"]


def test_no_fixtures_is_not_run_unless_the_declared_level_includes_l1(example_ws):
    put_plugin(example_ws)
    _, levels = conformance(example_ws, "greeter", "--level", "L2", check=0)
    assert levels["L1"]["status"] == "skipped" and levels["L1"]["summary"].startswith("not run: no fixtures")
    put_plugin(example_ws, {**SPEC, "conformance_level": "L5"})
    body, levels = conformance(example_ws, "greeter", check=6)
    assert levels["L1"]["status"] == "failed" and body["meets_declared_level"] is False
    assert levels["L2"]["status"] == "failed" and "no behaviour scenarios" in levels["L2"]["problems"][0]["message"]


def test_a_state_change_operation_without_a_plan_fails_l5(example_ws):
    spec = {**SPEC, "category": "state_change", "whatif": True}
    folder = put_plugin(example_ws, spec, fixtures={("greet", "ada"): ({"name": "ada"}, EXPECTED)})
    _, levels = conformance(example_ws, "greeter", check=6)
    assert levels["L0"]["status"] == "passed" and levels["L1"]["status"] == "passed"
    assert levels["L3"]["status"] == "failed"  # its default task has no name: it cannot end done either
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


FEATURE = '''Feature: greeter greets
  Scenario: a name is greeted
    Given the input:
      """
      {"name": "ada"}
      """
    When the plugin is called
    Then the output at "greeting" is "hello ada"
    And the ledger record's status is "completed"

  Scenario: a nameless input is refused by the input schema
    Given the input:
      """
      {"nom": "ada"}
      """
    When the plugin is called
    Then it fails with a message containing "name"
'''


def put_feature(folder, text, name="greet.feature"):
    features = folder / "conformance" / "features"
    features.mkdir(parents=True, exist_ok=True)
    (features / name).write_text(text)
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "source_digest": source_digest(folder)}))


def test_behaviour_scenarios_pass_l2_and_a_failing_or_undefined_step_fails_it_naming_file_line_and_step(example_ws):
    folder = put_plugin(example_ws, fixtures={("greet", "ada"): ({"name": "ada"}, EXPECTED)})
    put_feature(folder, FEATURE)
    _, levels = conformance(example_ws, "greeter", "--level", "L2", check=0)
    assert levels["L2"]["status"] == "passed" and levels["L2"]["summary"] == "2 scenario(s) passed"

    broken = FEATURE.replace('is "hello ada"', 'is "hi ada"')
    put_feature(folder, broken.replace("called\n    Then it", "asked\n    Then it"))
    body, levels = conformance(example_ws, "greeter", "--level", "L2", check=6)
    problems = levels["L2"]["problems"]
    feature_file = str(folder / "conformance" / "features" / "greet.feature")
    assert [p["file"] for p in problems] == [feature_file, feature_file]
    wrong, undefined = problems
    assert wrong["line"] == 8 and "scenario 'a name is greeted'" in wrong["message"]
    assert 'Then the output at "greeting" is "hi ada" failed' in wrong["message"]
    assert "expected 'hi ada', got 'hello ada'" in wrong["message"]
    assert undefined["line"] == 16 and "When the plugin is asked has no step definition" in undefined["message"]
    assert body["ok"] is False


def test_a_plugins_own_steps_are_used(example_ws):
    folder = put_plugin(example_ws)
    put_feature(folder, FEATURE + '''
  Scenario: the greeting is polite
    Given the input:
      """
      {"name": "ada"}
      """
    When the plugin is called
    Then the greeting is polite
''')
    (folder / "conformance" / "features" / "steps.py").write_text(
        "from pytest_bdd import then\n\n\n@then('the greeting is polite')\n"
        "def _polite(plugin_scenario):\n    assert plugin_scenario.call.output['greeting'].startswith('hello')\n")
    put_feature(folder, (folder / "conformance" / "features" / "greet.feature").read_text())
    _, levels = conformance(example_ws, "greeter", "--level", "L2", check=0)
    assert levels["L2"]["summary"] == "3 scenario(s) passed"


WORDS = '''"""words: a pure transformation of task.args.text."""

import time
from collections.abc import Mapping
from typing import Any

from engine.sdk import Context


def count(ctx: Context, data: Mapping[str, Any]) -> dict[str, Any]:
    args = data["task"].get("args") or {}
    time.sleep(float(args.get("nap", 0)))
    return {"words": len(str(args.get("text", "")).split())}
'''
WORDS_SPEC = {"id": "words", "version": "0.3.0", "category": "transformation",
              "operations": {"count": {"input_schema": {"type": "object", "required": ["task"]},
                                       "output_schema": {"type": "object", "required": ["words"]}}}}


def test_l3_runs_the_plugin_through_the_example_process_in_a_fresh_workspace(example_ws):
    folder = put_plugin(example_ws, WORDS_SPEC, source=WORDS,
                        fixtures={("count", "two"): ({"task": {"id": "t", "args": {"text": "a b"}}}, {"words": 2})})
    body, levels = conformance(example_ws, "words", "--level", "L3", check=0)
    assert levels["L3"]["status"] == "passed" and levels["L3"]["summary"].startswith(
        "1 task(s) done through the example process (from the golden fixtures")
    assert not (example_ws / ".tasks" / "done").exists() or not any((example_ws / ".tasks" / "done").iterdir())

    # the tasks of conformance/tasks.jsonl instead; one the plugin cannot answer fails L3 saying which
    (folder / "conformance" / "tasks.jsonl").write_text(
        json.dumps({"id": "fine", "args": {"text": "x y z"}}) + "\n" + json.dumps({"id": "bad", "args": {"nap": "x"}})
        + "\n")
    put_feature(folder, "Feature: none\n  Scenario: nothing\n    When the plugin is called\n", name="x.feature")
    _, levels = conformance(example_ws, "words", "--level", "L3", check=6)
    [problem] = levels["L3"]["problems"]
    assert problem["message"].startswith("task bad (from " + str(folder / "conformance" / "tasks.jsonl"))
    assert "ended failed" in problem["message"] and "ValueError" in problem["message"]


def test_l4_fails_a_plugin_over_its_categorys_latency_budget_naming_the_policy(example_ws):
    nap = {("count", "nap"): ({"task": {"id": "t", "args": {"text": "a", "nap": 0.03}}}, {"words": 1})}
    put_plugin(example_ws, WORDS_SPEC, source=WORDS, fixtures=nap)
    policy = example_ws / "policies" / "performance.yml"
    policy.write_text(policy.read_text() + "\nlatency_p95_ms:\n  transformation: 10\n")
    _, levels = conformance(example_ws, "words", "--level", "L4", check=6)
    [problem] = levels["L4"]["problems"]
    assert problem["file"] == str(policy) and problem["path"] == "$.latency_p95_ms.transformation"
    assert problem["message"].startswith("words.count: P95 latency ") and "over the transformation budget of 10 ms" \
        in problem["message"]
    policy.write_text(policy.read_text().replace("transformation: 10\n", "transformation: 5000\n"))
    _, levels = conformance(example_ws, "words", "--level", "L4", check=0)
    assert levels["L4"]["status"] == "passed" and "(budget 5000 ms)" in levels["L4"]["summary"]


def test_golden_fixtures_may_expect_an_error_run_in_whatif_and_get_a_fixture_repository(example_ws):
    source = SOURCE.replace("from collections.abc", "import subprocess\nfrom collections.abc").replace(
        '    return {"greeting"',
        '    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ctx.workdir, text=True,\n'
        '                          capture_output=True).stdout.strip()\n'
        '    if data["name"] == "":\n        raise PluginError("no name", code="NO_NAME")\n'
        '    return {"head": head, "whatif": ctx.whatif, "where": str(ctx.workdir),\n            "greeting"').replace(
        "import Context", "import Context, PluginError")
    spec = {**SPEC, "errors": {"NO_NAME": "the name is empty"}}
    folder = put_plugin(example_ws, spec, source=source)
    where = folder / "conformance" / "fixtures" / "greet"
    where.mkdir(parents=True)
    (where / "repo.input.json").write_text(json.dumps({"name": "ada"}))
    (where / "repo.context.json").write_text(json.dumps({"whatif": True}))
    (where / "repo.repo").mkdir()
    (where / "repo.repo" / "README.md").write_text("hello\n")
    (where / "empty.input.json").write_text(json.dumps({"name": ""}))
    (where / "empty.error.json").write_text(json.dumps({"code": "NO_NAME"}))
    # the commit of a fixture repository is the same on every machine
    (where / "repo.output.json").write_text(json.dumps({**EXPECTED, "whatif": True, "where": "${workdir}",
                                                        "head": "0" * 40}))
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "source_digest": source_digest(folder)}))
    _, levels = conformance(example_ws, "greeter", "--level", "L1", check=6)
    [problem] = levels["L1"]["problems"]
    assert problem["path"] == "$.head" and problem["file"].endswith("repo.output.json")
    head = json.loads(problem["message"].split(" returned ")[1].split(" where ")[0])
    assert len(head) == 40
    (where / "repo.output.json").write_text(json.dumps({**EXPECTED, "whatif": True, "where": "${workdir}",
                                                        "head": head}))
    (folder / "manifest.json").write_text(json.dumps({**manifest, "source_digest": source_digest(folder)}))
    _, levels = conformance(example_ws, "greeter", "--level", "L1", check=0)
    assert levels["L1"]["summary"] == "2 fixture(s) reproduced"

    (where / "empty.error.json").write_text(json.dumps({"code": "OTHER"}))
    (folder / "manifest.json").write_text(json.dumps({**manifest, "source_digest": source_digest(folder)}))
    _, levels = conformance(example_ws, "greeter", "--level", "L1", check=6)
    [problem] = levels["L1"]["problems"]
    assert problem["path"] == "$.code" and "failed with code 'NO_NAME' where empty.error.json expects 'OTHER'" \
        in problem["message"]


def test_a_plugin_written_for_another_sdk_is_refused_at_l0(example_ws):
    put_plugin(example_ws, {**SPEC, "sdk_versions": ["2.0"]})
    _, levels = conformance(example_ws, "greeter", "--level", "L0", check=6)
    [problem] = levels["L0"]["problems"]
    assert problem["path"] == "$.sdk_versions" and "this engine provides SDK 1.0" in problem["message"]


def test_outside_a_workspace_a_fresh_example_workspace_is_used_and_the_report_lands_here(tmp_path):
    body = json.loads(engine("conformance", "task-parser", "--level", "L1", "--json", cwd=tmp_path, check=0).stdout)
    assert body["ok"] is True
    assert Path(body["report"]) == tmp_path / "conformance" / "reports" / "task-parser-0.1.0.json"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conformance"]


def test_changed_since_runs_the_plugins_whose_folders_changed(example_ws):
    def git(*args):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=example_ws, check=True,
                       capture_output=True)

    git("init", "-q")
    git("add", "-A", "process", "policies")
    git("commit", "-qm", "base")
    put_plugin(example_ws, {**SPEC, "conformance_level": "L1"},
               fixtures={("greet", "ada"): ({"name": "ada"}, EXPECTED)})
    proc = engine("conformance", "--changed-since", "HEAD", "--json", cwd=example_ws, check=0)
    body = assert_document(proc.stdout, "conformance-set")
    assert [r["plugin"] for r in body["plugins"]] == ["greeter"] and body["ok"] is True
    assert body["selection"] == "changed since HEAD"
    text = engine("conformance", "--changed-since", "HEAD", cwd=example_ws, check=0).stdout
    assert "greeter 1.2.0: ok (L0:passed L1:passed)" in text
    engine("conformance", "--changed-since", "no-such-rev", cwd=example_ws, check=2)
    engine("conformance", "--matrix", "--level", "L1", cwd=example_ws, check=2)
    engine("conformance", cwd=example_ws, check=2)


def test_the_matrix_holds_every_bundled_plugin_at_its_declared_level_and_is_the_committed_one(tmp_path):
    out = tmp_path / "compatibility.md"
    proc = engine("conformance", "--matrix", "--output", out, "--json", cwd=tmp_path, check=None, timeout=900)
    body = assert_document(proc.stdout, "conformance-set")
    bundled_ids = sorted(p.name for p in bundled("plugins").iterdir() if (p / "plugin.spec.json").is_file())
    assert [r["plugin"] for r in body["plugins"]] == bundled_ids
    missing = [r["plugin"] for r in body["plugins"] if r["declared_level"] is None]
    assert not missing, f"bundled plugins without a declared conformance_level: {missing}"
    failing = {r["plugin"]: [p for level in r["levels"] for p in level["problems"]] for r in body["plugins"]
               if not r["meets_declared_level"]}
    assert not failing, failing
    assert proc.returncode == 0 and body["ok"] is True
    text = out.read_text()
    assert all(f"| {pid} |" in text for pid in bundled_ids) and "does not meet" not in text
    committed = Path(__file__).resolve().parents[2] / "docs" / "compatibility.md"
    assert text == committed.read_text(), "docs/compatibility.md is out of date: run `engine conformance --matrix " \
                                          "--output docs/compatibility.md`"


def test_l3_runs_only_its_own_workspace_whatever_engine_workspace_says(example_ws, tmp_path):
    inbox = sorted(p.name for p in (example_ws / ".tasks" / "inbox").iterdir())
    assert inbox  # the example's tasks, waiting
    body = json.loads(engine("conformance", "task-parser", "--level", "L3", "--json", cwd=tmp_path,
                             env={"ENGINE_WORKSPACE": str(example_ws)}, check=0).stdout)
    assert body["levels"][3]["status"] == "passed"
    assert sorted(p.name for p in (example_ws / ".tasks" / "inbox").iterdir()) == inbox
    assert not any((example_ws / ".tasks" / "done").iterdir())
