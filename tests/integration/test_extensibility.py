"""AC-1: a new plugin is added without touching the kernel.

A plugin folder written outside the repository, found through ENGINE_PLUGIN_PATH, bound to a service
task of a copied process by its topic, runs in `engine run`; nothing under engine/ changes.
"""

import hashlib
import json
from pathlib import Path

import pytest

import engine as engine_package
from tests.conftest import engine
from tests.integration.test_run import files, ledger_entries, put

GREETER = '''
from engine.sdk import Context


def greet(ctx: Context, data):
    name = data["task"]["args"].get("name", "world")
    ctx.log.info("greeting", name=name)
    return {"greeting": f"Hello, {name}!", "repo_is_dir": ctx.workdir.is_dir()}
'''


def tree_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*.py")):
        h.update(path.as_posix().encode() + path.read_bytes())
    return h.hexdigest()


def make_greeter(root: Path) -> Path:
    folder = root / "greeter"
    (folder / "src").mkdir(parents=True)
    (folder / "plugin.spec.json").write_text(json.dumps({
        "id": "greeter", "version": "0.1.0", "category": "transformation",
        "operations": {"greet": {"input_schema": {"type": "object", "required": ["task"]},
                                 "output_schema": {"type": "object", "required": ["greeting"],
                                                   "properties": {"greeting": {"type": "string"}}}}}}))
    (folder / "manifest.json").write_text(json.dumps({"id": "greeter", "version": "0.1.0",
                                                      "entry_point": "src/greeter.py"}))
    (folder / "src" / "greeter.py").write_text(GREETER)
    return folder


@pytest.mark.no_replay  # its plugin comes from ENGINE_PLUGIN_PATH, which the replay check does not see
def test_a_plugin_from_outside_the_repository_runs_bound_to_a_copied_process(example_ws, tmp_path):
    before = tree_digest(Path(engine_package.__file__).parent)
    plugins = tmp_path / "elsewhere" / "plugins"
    make_greeter(plugins)
    bpmn = example_ws / "process" / "orchestration.bpmn"
    text = bpmn.read_text()
    assert text.count('camunda:topic="dispatch"') == 1
    bpmn.write_text(text.replace('camunda:topic="dispatch"', 'camunda:topic="greeter.greet"'))
    env = {"ENGINE_PLUGIN_PATH": str(plugins)}
    for f in files(example_ws, "inbox"):
        (example_ws / ".tasks" / "inbox" / f).unlink()
    put(example_ws, "001-greet.jsonl", {"id": "hi", "tool": "git", "repo": "example-repo", "args": {"name": "Ada"}})

    assert "models ok" in engine("validate", cwd=example_ws, env=env, check=0).stdout
    engine("run", "--drain", cwd=example_ws, env=env, check=0)
    assert files(example_ws, "done") == ["001-greet.jsonl", "001-greet.jsonl.result.json"]
    execute = [e["record"] for e in ledger_entries(example_ws) if e["record"].get("step") == "Task_execute"][0]
    assert execute["plugin"]["id"] == "greeter" and execute["status"] == "completed"
    outputs = (next((example_ws / ".engine" / "runs").glob("*/outputs.jsonl"))).read_text()
    assert '"greeting": "Hello, Ada!"' in outputs and '"repo_is_dir": true' in outputs
    assert tree_digest(Path(engine_package.__file__).parent) == before
    events = [json.loads(x) for x in (example_ws / ".engine" / "logs" / "engine.jsonl").read_text().splitlines()]
    greeting = [e for e in events if e.get("event") == "greeting"]  # ctx.log in the worker reaches the log
    assert greeting and greeting[0]["name"] == "Ada" and greeting[0]["plugin"] == "greeter"
    assert greeting[0]["task_id"] == "hi" and len(greeting[0]["trace_id"]) == 32

    # without the path, the same model is refused before anything is claimed
    put(example_ws, "002-greet.jsonl", {"id": "hi2", "tool": "git", "repo": "example-repo"})
    proc = engine("run", "--drain", cwd=example_ws, check=3)
    assert "greeter.greet" in proc.stderr and files(example_ws, "inbox") == ["002-greet.jsonl"]
