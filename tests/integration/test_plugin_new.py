"""`engine plugin new`: a plugin folder from a category's template that passes `engine plugin check` as made,
runs in `engine run` once routed to, and is brought in step with its spec again without losing the author's
code (issue 19, item 1)."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

import engine as engine_package
from tests.conftest import engine, replays
from tests.integration.test_cli_json import assert_document, assert_error

CATEGORIES = ("acquisition", "transformation", "state_change", "validation", "orchestration")

WORD_COUNT = '''def _transform(ctx: Context, data: Mapping[str, Any]) -> dict[str, Any]:
    """Hand-written: the text normalised, and how many words it has."""
    text = (data["task"].get("args") or {}).get("text", "")
    if not isinstance(text, str):
        raise PluginError("task.args.text is not a string: give the text to count", code="NO_TEXT")
    words = text.split()
    ctx.log.info("counted", words=len(words))
    return {"text": " ".join(w.lower() for w in words), "words": len(words)}
'''


WORD_COUNT_FEATURE = '''Feature: word-count counts the words of task.args.text
  Scenario: words are counted and the text normalised
    Given the task args:
      """
      {"text": "One two  THREE"}
      """
    When the plugin is called
    Then it answers:
      """
      {"text": "one two three", "words": 3}
      """

  Scenario: no text is no words
    Given the task args:
      """
      {}
      """
    When the plugin is called
    Then the output at "words" is 0
'''


def package_digest() -> str:
    h = hashlib.sha256()
    root = Path(engine_package.__file__).parent
    for path in sorted(root.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def generated_tests(folder: Path):
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder / "tests")],
                          cwd=folder.parent.parent, capture_output=True, text=True, timeout=120)


def replace_function(source: str, name: str, new: str) -> str:
    """``source`` with the top-level function ``name`` (up to the next top-level statement) replaced."""
    start = source.index(f"def {name}(")
    end = source.find("\ndef ", start + 1)
    end = len(source) if end == -1 else end + 1
    return source[:start] + new + ("\n\n" + source[end:] if end < len(source) else "")


@pytest.mark.no_replay  # it changes the plugin after its run: replay is checked right after the run instead
def test_a_new_transformation_plugin_checks_tests_and_runs_and_an_update_keeps_the_hand_written_code(example_ws):
    before = package_digest()
    body = assert_document(engine("plugin", "new", "word-count", "--category", "transformation", "--json",
                                  cwd=example_ws, check=0).stdout, "plugin-new")
    folder = example_ws / "plugins" / "word-count"
    assert body["plugin"] == "word-count" and Path(body["folder"]) == folder and body["updated"] == []
    assert set(body["created"]) == {
        "plugin.spec.json", "manifest.json", "README_PLUGIN.md", "healthcheck.md", "src/word_count.py",
        "tests/test_word_count.py", "conformance/fixtures/transform/spaces-and-case.input.json",
        "conformance/fixtures/transform/spaces-and-case.output.json",
        "conformance/fixtures/transform/empty.input.json", "conformance/fixtures/transform/empty.output.json",
        "conformance/features/transform.feature"}
    assert "plugin word-count ok" in engine("plugin", "check", "word-count", cwd=example_ws, check=0).stdout
    proc = generated_tests(folder)
    assert proc.returncode == 0 and "3 passed" in proc.stdout, proc.stdout + proc.stderr

    # the author writes the operation outside the fences, fixes the golden outputs, runs the command again
    src = folder / "src" / "word_count.py"
    src.write_text(replace_function(src.read_text(), "_transform", WORD_COUNT))
    golden = folder / "conformance" / "fixtures" / "transform"
    (golden / "spaces-and-case.output.json").write_text(json.dumps({"text": "hello world", "words": 2}))
    (golden / "empty.output.json").write_text(json.dumps({"text": "", "words": 0}))
    assert engine("plugin", "check", "word-count", cwd=example_ws).returncode == 6  # the digest is stale
    body = assert_document(engine("plugin", "new", "word-count", "--json", cwd=example_ws, check=0).stdout,
                           "plugin-new")
    assert body["created"] == [] and body["updated"] == ["manifest.json"]
    engine("plugin", "check", "word-count", cwd=example_ws, check=0)
    proc = generated_tests(folder)
    assert proc.returncode == 0 and "3 passed" in proc.stdout, proc.stdout + proc.stderr
    engine("plugin", "check", "word-count", cwd=example_ws, check=0)  # running its tests left the digest as it was

    # routed to by the process's select_plugin table, it runs in `engine run`
    routed = assert_document(engine("plugin", "route", "word-count", "--json", cwd=example_ws, check=0).stdout,
                             "plugin-route")
    assert routed["added"] == ["route_rule_word_count_word_count"]
    for old in (example_ws / ".tasks" / "inbox").iterdir():
        old.unlink()
    (example_ws / ".tasks" / "inbox" / "001-count.jsonl").write_text(json.dumps(
        {"id": "wc-1", "tool": "word-count", "repo": "example-repo", "args": {"text": "One two  THREE"}}) + "\n")
    engine("run", "--drain", cwd=example_ws, check=0)
    assert sorted(p.name for p in (example_ws / ".tasks" / "done").iterdir()) == [
        "001-count.jsonl", "001-count.jsonl.result.json"]
    outputs = [json.loads(line) for path in (example_ws / ".engine" / "runs").glob("*/outputs.jsonl")
               for line in path.read_text().splitlines()]
    counted = [o["output"] for o in outputs if o.get("plugin") == "word-count"]
    assert counted == [{"text": "one two three", "words": 3}]
    replays(example_ws)

    # with its behaviour written as scenarios, it passes every conformance level its template declares
    (folder / "conformance" / "features" / "transform.feature").write_text(WORD_COUNT_FEATURE)
    engine("plugin", "new", "word-count", cwd=example_ws, check=0)  # the manifest's digest follows
    report = assert_document(engine("conformance", "word-count", "--json", cwd=example_ws, check=0).stdout,
                             "conformance")
    assert [(r["level"], r["status"]) for r in report["levels"]] == [
        ("L0", "passed"), ("L1", "passed"), ("L2", "passed"), ("L3", "passed"), ("L4", "passed"), ("L5", "passed")]
    assert report["declared_level"] == "L5" and report["meets_declared_level"] is True

    # an operation added to the spec: the fenced parts follow, the hand-written body stays
    spec_path = folder / "plugin.spec.json"
    spec = json.loads(spec_path.read_text())
    spec["operations"]["count_lines"] = {"description": "How many lines task.args.text has.",
                                         "input_schema": {"type": "object"},
                                         "output_schema": {"type": "object", "required": ["lines"]}}
    spec_path.write_text(json.dumps(spec, indent=2))
    body = assert_document(engine("plugin", "new", "word-count", "--json", cwd=example_ws, check=0).stdout,
                           "plugin-new")
    assert body["created"] == [] and set(body["updated"]) == {
        "src/word_count.py", "tests/test_word_count.py", "README_PLUGIN.md", "healthcheck.md", "manifest.json"}
    text = src.read_text()
    auto = text[text.index("# BEGIN AUTO"):text.index("# END AUTO")]
    assert "def count_lines(ctx" in auto and "return _count_lines(ctx, data)" in auto and "def transform(" in auto
    assert WORD_COUNT in text and "def _count_lines(" in text.split("# END AUTO")[1]
    assert "### `count_lines` (topic `word-count.count_lines`)" in (folder / "README_PLUGIN.md").read_text()
    assert "OPERATIONS = ['transform', 'count_lines']" in (folder / "tests" / "test_word_count.py").read_text()
    engine("plugin", "check", "word-count", cwd=example_ws, check=0)
    proc = generated_tests(folder)
    assert proc.returncode == 0 and "3 passed" in proc.stdout, proc.stdout + proc.stderr
    # run again with nothing changed: nothing is rewritten
    again = assert_document(engine("plugin", "new", "word-count", "--json", cwd=example_ws, check=0).stdout,
                            "plugin-new")
    assert again["created"] == again["updated"] == []
    assert package_digest() == before  # the engine itself did not change


@pytest.mark.parametrize("category", CATEGORIES)
def test_every_category_makes_a_plugin_that_checks_and_whose_tests_pass(example_ws, category):
    plugin_id = f"my-{category.replace('_', '-')}"
    engine("plugin", "new", plugin_id, "--category", category, cwd=example_ws, check=0)
    folder = example_ws / "plugins" / plugin_id
    assert json.loads((folder / "plugin.spec.json").read_text())["category"] == category
    assert "ok" in engine("plugin", "check", plugin_id, cwd=example_ws, check=0).stdout
    proc = generated_tests(folder)
    assert proc.returncode == 0 and "passed" in proc.stdout and "failed" not in proc.stdout, proc.stdout + proc.stderr
    source = (folder / "src" / f"{plugin_id.replace('-', '_')}.py").read_text()
    imports = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert [line for line in imports if "engine" in line] == ["from engine.sdk import Context, PluginError"]


def test_a_dir_outside_the_workspace(tmp_path):
    body = assert_document(engine("plugin", "new", "elsewhere", "--category", "validation", "--dir",
                                  tmp_path / "mine", "--json", cwd=tmp_path, check=0).stdout, "plugin-new")
    assert Path(body["folder"]) == tmp_path / "mine" / "elsewhere"
    assert (tmp_path / "mine" / "elsewhere" / "src" / "elsewhere.py").is_file()


def test_a_bad_id_a_foreign_folder_and_a_missing_category_are_refused(example_ws):
    proc = engine("plugin", "new", "Word_Count", "--category", "transformation", cwd=example_ws, check=2)
    assert "'Word_Count' is not a plugin id" in proc.stderr
    assert not (example_ws / "plugins" / "Word_Count").exists()
    assert_error(engine("plugin", "new", "2words", "--category", "transformation", "--json", cwd=example_ws), 2)

    foreign = example_ws / "plugins" / "greeter"
    (foreign / "src").mkdir(parents=True)
    (foreign / "manifest.json").write_text(json.dumps({"id": "greeter", "version": "0.1.0",
                                                       "entry_point": "src/greeter.py"}))
    (foreign / "src" / "greeter.py").write_text("def greet(ctx, data):\n    return {}\n")
    proc = engine("plugin", "new", "greeter", "--category", "transformation", cwd=example_ws, check=2)
    assert "was not made by `engine plugin new`" in proc.stderr
    assert (foreign / "src" / "greeter.py").read_text() == "def greet(ctx, data):\n    return {}\n"
    assert sorted(p.name for p in foreign.rglob("*")) == ["greeter.py", "manifest.json", "src"]

    proc = engine("plugin", "new", "fresh", cwd=example_ws, check=2)
    assert "--category" in proc.stderr and not (example_ws / "plugins" / "fresh").exists()
    engine("plugin", "new", "fresh", "--category", "acquisition", cwd=example_ws, check=0)
    proc = engine("plugin", "new", "fresh", "--category", "validation", cwd=example_ws, check=2)
    assert "says category 'acquisition'" in proc.stderr
