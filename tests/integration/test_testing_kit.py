"""engine.testing for plugin authors (issue 19, item 2): `PluginRunner` calls an operation as the kernel does,
in a real worker, and its `record` is the one the kernel's ledger keeps of the same call; `fixture_repo`
makes the same commit on every machine."""

import json
import subprocess

from engine.plugins.binding import route_tool
from engine.testing import FIXED_NOW, PluginRunner, fixture_repo
from tests.conftest import engine


def test_a_call_gives_the_output_and_the_ledger_record_the_kernel_writes_for_it(example_ws, tmp_path):
    engine("plugin", "new", "words", "--category", "transformation", cwd=example_ws, check=0)
    route_tool(example_ws / "process" / "decisions.dmn", "words", "words", worktree=False)
    for old in (example_ws / ".tasks" / "inbox").iterdir():
        old.unlink()
    (example_ws / ".tasks" / "inbox" / "w.jsonl").write_text(
        json.dumps({"id": "w1", "tool": "words", "repo": "example-repo", "args": {"text": "A  B c"}}) + "\n")
    engine("run", "--drain", cwd=example_ws, check=0)
    ledger = example_ws / ".engine" / "ledger" / "ledger.jsonl"
    entries = [json.loads(line) for line in ledger.read_text().splitlines()]
    [kernel] = [e["record"] for e in entries if e["record"].get("step") == "Task_execute"]
    outputs = [json.loads(line) for path in (example_ws / ".engine" / "runs").glob("*/outputs.jsonl")
               for line in path.read_text().splitlines()]
    [normalized] = [o["output"]["task"] for o in outputs if o["plugin"] == "task-parser"]

    with PluginRunner(tmp_path / "calls") as runner:
        call = runner.call(example_ws / "plugins" / "words", "transform", {"task": normalized})
        again = runner.call(example_ws / "plugins" / "words", None, {"task": normalized})
        refused = runner.call(example_ws / "plugins" / "words", "transform", {"task": {**normalized, "args": {}}})
        contract = runner.call(example_ws / "plugins" / "words", "transform", {"no": "task"})
    assert call.ok and call.output == {"text": "a b c"} and call.operation == "transform"
    assert {k: kernel[k] for k in ("plugin", "input_digest", "output_digest", "status")} == call.record
    assert again.record == call.record and again.workdir != call.workdir
    assert call.workdir.parent == tmp_path / "calls" and call.seconds > 0
    assert refused.ok is False and refused.code == "NO_TEXT" and refused.record["status"] == "error"
    assert refused.record["error"] == {"kind": "business", "code": "NO_TEXT", "retryable": False}
    assert contract.code == "engine.contract" and "input_schema" in contract.record["reason"]


def test_a_plugin_that_exits_costs_its_call_only_and_whatif_and_the_clock_reach_it(tmp_path):
    folder = tmp_path / "plugins"
    engine("plugin", "new", "probe", "--category", "transformation", "--dir", folder, cwd=tmp_path, check=0)
    src = folder / "probe" / "src" / "probe.py"
    text = src.read_text()
    start = text.index("def _transform(")
    src.write_text(text[:start] + '''def _transform(ctx: Context, data: Mapping[str, Any]) -> dict[str, Any]:
    if data["task"].get("exit"):
        raise SystemExit(9)
    return {"text": f"{ctx.now.isoformat()} {ctx.whatif} {ctx.seed} {ctx.task_id}"}
''')
    # the manifest's digest is stale now: the kernel would refuse the plugin, an author's tests still run it
    with PluginRunner() as runner:
        died = runner.call(folder / "probe", "transform", {"task": {"exit": True}})
        fine = runner.call(folder / "probe", "transform", {"task": {}}, whatif=True, task_id="t9", seed=4)
    assert died.ok is False and died.code == "engine.exception" and "SystemExit: 9" in died.record["reason"]
    assert fine.output == {"text": f"{FIXED_NOW.isoformat()} True 4 t9"}


def test_a_fixture_repository_has_the_same_commit_everywhere(tmp_path):
    def head(path):
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True,
                              check=True).stdout.strip()

    one = fixture_repo(tmp_path / "one", {"README.md": "hi\n", "src/app.py": b"print(1)\n"})
    source = tmp_path / "files"
    (source / "src").mkdir(parents=True)
    (source / "README.md").write_text("hi\n")
    (source / "src" / "app.py").write_text("print(1)\n")
    (source / "src" / "__pycache__").mkdir()  # what pip's byte-compiling leaves in an installed copy
    (source / "src" / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"\0")
    two = fixture_repo(tmp_path / "two", source)
    assert head(one) == head(two) and len(head(one)) == 40
    branch = subprocess.run(["git", "branch", "--show-current"], cwd=one, capture_output=True, text=True).stdout
    assert branch.strip() == "main"
    assert subprocess.run(["git", "status", "--porcelain"], cwd=one, capture_output=True, text=True).stdout == ""
