"""`--json` on every command: the real `engine` command prints exactly one JSON document on stdout (nothing
else), and it matches the command's entry in contracts/cli.v1.json; a failing command prints the error
document (exit code unchanged). docs/cli-json.md documents the same shapes."""

import json
import shutil

import click
import jsonschema
import pytest
from referencing import Registry, Resource

from engine.bundled import bundled
from engine.errors import ExitCode
from tests.conftest import DATA, engine

CONTRACTS = bundled("contracts")
CLI_SCHEMA = json.loads((CONTRACTS / "cli.v1.json").read_text(encoding="utf-8"))
# the document of each command (and the error document), by its name in cli.v1.json's $defs
DOCUMENTS = ("init", "run-event", "status", "submit", "requeue", "worktrees", "worktrees-prune", "validate", "show",
             "explain", "replay", "decide", "plugin-list", "plugin-check", "ledger-verify", "ledger-anchor",
             "ledger-show", "ledger-export", "migrate", "shadow", "conformance", "conformance-set", "plugin-new",
             "plugin-route", "plugin-pack", "error")


def _registry():
    """Every contract, by its $id: cli.v1's ledger-export refers to ledger.v1."""
    resources = []
    for path in sorted(CONTRACTS.glob("*.json")):
        body = json.loads(path.read_text(encoding="utf-8"))
        resources.append((body["$id"], Resource.from_contents(body)))
    return Registry().with_resources(resources)


REGISTRY = _registry()


def violations(document, def_name):
    """Every way ``document`` breaks ``cli.v1#/$defs/<def_name>``, one line each."""
    assert def_name in CLI_SCHEMA["$defs"], f"no $defs/{def_name} in cli.v1.json"
    validator = jsonschema.Draft202012Validator({"$ref": f"{CLI_SCHEMA['$id']}#/$defs/{def_name}"},
                                                registry=REGISTRY,
                                                format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    return [f"{e.json_path}: {e.message}" for e in validator.iter_errors(document)]


def assert_document(stdout, def_name):
    """stdout is exactly one JSON document matching ``$defs/<def_name>``; returns it."""
    try:
        document = json.loads(stdout)
    except json.JSONDecodeError as e:
        raise AssertionError(f"stdout is not one JSON document ({e}):\n{stdout}") from e
    found = violations(document, def_name)
    assert not found, f"not a {def_name} document:\n" + "\n".join(found) + f"\n{stdout}"
    return document


def assert_events(stdout, def_name="run-event"):
    """stdout is one JSON object per line (`engine run --json`), each matching ``$defs/<def_name>``; returns
    them."""
    lines = stdout.splitlines()
    assert lines, "no events"
    return [assert_document(line, def_name) for line in lines]


def assert_error(proc, exit_code):
    """The command exited ``exit_code`` and printed the error document (saying the same exit code)."""
    assert proc.returncode == exit_code, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    body = assert_document(proc.stdout, "error")
    assert body["exit_code"] == exit_code and body["error"]
    return body


def leaf_commands(group, prefix=()):
    """(path, command) of every command of ``group`` that runs on its own: each leaf, and each group that
    runs without a subcommand (``engine worktrees``)."""
    found = []
    for name, command in sorted(group.commands.items()):
        path = (*prefix, name)
        if isinstance(command, click.Group):
            if command.invoke_without_command:
                found.append((path, command))
            found += leaf_commands(command, path)
        else:
            found.append((path, command))
    return found


def make_worktree(ws, task_id):
    """A worktree of the example repository as a task leaves it (what `engine worktrees` lists)."""
    from engine.safety.worktrees import create

    return create(ws / "example-repo", ws / ".engine" / "worktrees", task_id, run_id="run-test").path


def put(ws, name, *tasks):
    (ws / ".tasks" / "inbox" / name).write_text("".join(json.dumps(t) + "\n" for t in tasks))


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """A workspace after one run (the example files done, one file failed), with a worktree left behind.
    Shared by the tests of commands that only read."""
    ws = tmp_path_factory.mktemp("ran") / "ws"
    engine("init", "--example", ws, check=0)
    put(ws, "003-unknown.jsonl", {"id": "lost-1", "tool": "no-such-tool", "repo": "example-repo"})
    engine("run", "--drain", cwd=ws, check=1)
    make_worktree(ws, "kept-1")
    return ws


def run_id_of(ws):
    [run] = [p.name for p in (ws / ".engine" / "runs").iterdir()]
    return run


# ---- the contract itself ------------------------------------------------------------------------------------


def test_the_schema_is_a_draft_2020_12_schema_with_a_def_for_every_document():
    assert CLI_SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(CLI_SCHEMA)
    assert set(DOCUMENTS) <= set(CLI_SCHEMA["$defs"])
    error_codes = CLI_SCHEMA["$defs"]["error"]["properties"]["exit_code"]["enum"]
    assert sorted(error_codes) == sorted(int(c) for c in ExitCode if c != ExitCode.OK)


def test_the_run_event_def_tells_events_apart_and_refuses_unknown_ones():
    ts = "2026-01-02T03:04:05+00:00"
    good = {"event": "file_finished", "ts": ts, "file": "a.jsonl", "status": "parked", "reason": None}
    assert violations(good, "run-event") == []
    assert violations({**good, "status": "lost"}, "run-event")
    assert violations({"event": "exploded", "ts": ts}, "run-event")
    assert violations({"event": "warning", "message": "no ts"}, "run-event")
    assert violations({"event": "plan", "ts": ts, "plan": {"summary": "anything"}}, "run-event") == []


def test_the_docs_describe_every_document():
    docs = (bundled("contracts").parent / "docs" / "cli-json.md")
    if not docs.is_file():
        pytest.skip("docs/ is not installed with the engine")
    text = docs.read_text(encoding="utf-8")
    assert "contracts/cli.v1.json" in text
    for name in DOCUMENTS:
        assert f"`{name}`" in text, f"docs/cli-json.md does not name the document {name}"


def test_every_command_has_a_json_option():
    from engine.cli import cli

    missing = [" ".join(path) for path, command in leaf_commands(cli)
               if not any("--json" in p.opts for p in command.params)]
    assert missing == []


# ---- each command's document ---------------------------------------------------------------------------------


def test_status(ran):
    body = assert_document(engine("status", "--json", cwd=ran, check=0).stdout, "status")
    assert body["queue"]["done"] == 2 and body["queue"]["failed"] == 1
    assert [f["file"] for f in body["failures"]] == ["003-unknown.jsonl"]
    assert [w["task_id"] for w in body["worktrees"]] == ["kept-1"]


def test_submit(example_ws, tmp_path):
    source = tmp_path / "070-more.jsonl"
    source.write_text(json.dumps({"id": "more-1", "tool": "git", "repo": "example-repo"}) + "\n")
    body = assert_document(engine("submit", source, "--json", cwd=example_ws, check=0).stdout, "submit")
    assert body == {"submitted": str(example_ws / ".tasks" / "inbox" / "070-more.jsonl"), "tasks": 1}


def test_migrate(example_ws, tmp_path):
    old = tmp_path / "old-queue"
    old.mkdir()
    (old / "a.jsonl").write_text(json.dumps({"tool": "git", "args": ["log", "-n", "2"]}) + "\n"
                                 + json.dumps({"tool": "git", "args": ["rebase", "main"]}) + "\n")
    body = assert_document(engine("migrate", old, "--json", cwd=example_ws, check=1).stdout, "migrate")
    assert [line["status"] for line in body["files"][0]["lines"]] == ["converted", "refused"]
    assert body["counts"] == {"task.v1": 0, "converted": 1, "refused": 1} and body["ok"] is False
    assert_error(engine("migrate", tmp_path / "nothing-here", "--json", cwd=example_ws), 2)


def test_requeue(example_ws):
    (example_ws / ".tasks" / "failed" / "071-again.jsonl").write_text(
        json.dumps({"id": "again-1", "tool": "git", "repo": "example-repo"}) + "\n")
    body = assert_document(engine("requeue", "071-again.jsonl", "--json", cwd=example_ws, check=0).stdout, "requeue")
    assert body == {"requeued": str(example_ws / ".tasks" / "inbox" / "071-again.jsonl"), "from": "failed"}


def test_worktrees(ran):
    body = assert_document(engine("worktrees", "--json", cwd=ran, check=0).stdout, "worktrees")
    [kept] = body["worktrees"]
    assert kept["task_id"] == "kept-1" and kept["branch"] == "engine/kept-1"


def test_worktrees_prune(example_ws):
    first, second = make_worktree(example_ws, "old-1"), make_worktree(example_ws, "old-2")
    body = assert_document(engine("worktrees", "prune", "--json", cwd=example_ws, check=0).stdout, "worktrees-prune")
    assert body == {"removed": []}  # both are younger than a week
    body = assert_document(engine("worktrees", "prune", "--older-than", "0", "--json", cwd=example_ws,
                                  check=0).stdout, "worktrees-prune")
    assert sorted(w["task_id"] for w in body["removed"]) == ["old-1", "old-2"]
    assert not first.exists() and not second.exists()
    make_worktree(example_ws, "old-3")  # the group's --json asks the subcommand for JSON too
    body = assert_document(engine("worktrees", "--json", "prune", "--older-than", "0", cwd=example_ws,
                                  check=0).stdout, "worktrees-prune")
    assert [w["task_id"] for w in body["removed"]] == ["old-3"]


def test_validate_ok(ran):
    body = assert_document(engine("validate", "--json", cwd=ran, check=0).stdout, "validate")
    assert body["ok"] is True and body["problems"] == body["warnings"] == body["replacements"] == []
    assert body["checked"] == {"bpmn": str(ran / "process" / "orchestration.bpmn"),
                               "dmn": str(ran / "process" / "decisions.dmn")}


def test_validate_a_bad_model_exits_3_with_its_problems(ran):
    bad = DATA / "dmn" / "xml_syntax_error.dmn"
    proc = engine("validate", "--dmn", bad, "--json", cwd=ran, check=3)
    body = assert_document(proc.stdout, "validate")
    assert body["ok"] is False and body["checked"] == {"bpmn": None, "dmn": str(bad)}
    [problem] = body["problems"]
    assert problem["file"] == str(bad) and problem["line"] == 6 and "invalid XML" in problem["message"]


def test_validate_warnings_fail_only_with_strict(example_ws):
    bpmn = example_ws / "process" / "orchestration.bpmn"
    bpmn.write_text(bpmn.read_text().replace('retry.action = "retry"', 'retyr.action = "retry"', 1))
    body = assert_document(engine("validate", "--json", cwd=example_ws, check=0).stdout, "validate")
    assert body["ok"] is True and body["strict"] is False and body["problems"] == []
    [warning] = body["warnings"]
    assert "reads 'retyr', which no step sets" in warning["message"] and warning["file"] == str(bpmn)
    body = assert_document(engine("validate", "--strict", "--json", cwd=example_ws, check=3).stdout, "validate")
    assert body["ok"] is False and body["strict"] is True and len(body["warnings"]) == 1


def test_validate_lists_the_plugins_replaced_in_the_document(example_ws):
    folder = example_ws / "plugins" / "git-inspector"
    shutil.copytree(bundled("plugins") / "git-inspector", folder, ignore=shutil.ignore_patterns("__pycache__"))
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "replaces": "git-inspector"}))
    body = assert_document(engine("validate", "--json", cwd=example_ws, check=0).stdout, "validate")
    [replaced] = body["replacements"]
    assert replaced["replaced"] == replaced["by"] == "git-inspector"
    assert (replaced["by_origin"], replaced["origin"]) == ("workspace", "bundled")
    assert replaced["message"] == "plugin git-inspector: using workspace plugins/git-inspector (replaces the bundled " \
                                  "one)"


def test_show(ran, tmp_path):
    run = run_id_of(ran)
    body = assert_document(engine("show", run, "-o", tmp_path / "run.html", "--json", cwd=ran, check=0).stdout, "show")
    assert body == {"written": str(tmp_path / "run.html"), "run": run, "task": None}
    assert (tmp_path / "run.html").read_text().startswith("<!DOCTYPE html>")
    body = assert_document(engine("show", run, "--task", "lost-1", "--json", cwd=tmp_path, check=0,
                                  env={"ENGINE_WORKSPACE": str(ran)}).stdout, "show")
    assert body == {"written": str(tmp_path / f"{run}-lost-1.html"), "run": run, "task": "lost-1"}


def test_explain(ran):
    body = assert_document(engine("explain", "inspect-log", "--json", cwd=ran, check=0).stdout, "explain")
    assert body["outcome"] == {"status": "done", "reason": None} and body["rederivation"]["agrees"] > 0
    body = assert_document(engine("explain", "lost-1", "--json", cwd=ran, check=0).stdout, "explain")
    assert body["outcome"]["status"] == "failed" and body["outcome"]["reason"]


def test_replay(ran):
    run = run_id_of(ran)
    body = assert_document(engine("replay", run, "--json", cwd=ran, check=0).stdout, "replay")
    assert body["run"] == run and len(body["tasks"]) == 5 and all(t["ok"] for t in body["tasks"])


def test_decide(ran):
    body = assert_document(engine("decide", "select_plugin", "--input", "tool=git", "--json", cwd=ran,
                                  check=0).stdout, "decide")
    assert body == {"result": "git-inspector"}
    body = assert_document(engine("decide", "select_plugin", "--input", "tool=git", "--json", "--explain", cwd=ran,
                                  check=0).stdout, "decide")
    assert body["result"] == "git-inspector" and isinstance(body["explain"], dict)


def test_plugin_list(ran):
    body = assert_document(engine("plugin", "list", "--json", cwd=ran, check=0).stdout, "plugin-list")
    assert "git-inspector" in {row["id"] for row in body["plugins"]} and body["problems"] == []


def test_plugin_check(ran):
    body = assert_document(engine("plugin", "check", "git-inspector", "--json", cwd=ran, check=0).stdout,
                           "plugin-check")
    assert body == {"plugin": "git-inspector", "ok": True, "problems": []}
    body = assert_document(engine("plugin", "check", "git-inspectr", "--json", cwd=ran, check=6).stdout,
                           "plugin-check")
    assert body["ok"] is False and "did you mean 'git-inspector'?" in body["problems"][0]["message"]


def test_ledger_verify_and_anchor(ran):
    anchor = assert_document(engine("ledger", "anchor", "--json", cwd=ran, check=0).stdout, "ledger-anchor")
    stored = (ran / ".engine" / "ledger" / "ledger.jsonl").read_text().splitlines()
    assert anchor == {"hash": json.loads(stored[-1])["hash"], "seq": len(stored)}
    body = assert_document(engine("ledger", "verify", "--json", cwd=ran, check=0).stdout, "ledger-verify")
    assert body == {"ok": True, "entries": len(stored), "files": 1, "head": anchor["hash"], "anchor": None}
    body = assert_document(engine("ledger", "verify", "--anchor", anchor["hash"], "--json", cwd=ran, check=0).stdout,
                           "ledger-verify")
    assert body["anchor"] == anchor["hash"]


def test_ledger_show(ran):
    body = assert_document(engine("ledger", "show", "--task", "inspect-status", "--step", "Task_select_plugin",
                                  "--json", cwd=ran, check=0).stdout, "ledger-show")
    [row] = body["entries"]
    assert (row["decision"], json.loads(row["result"])) == ("select_plugin", "git-inspector")
    body = assert_document(engine("ledger", "show", "--task", "nobody", "--json", cwd=ran, check=0).stdout,
                           "ledger-show")
    assert body == {"entries": []}


def test_ledger_export(ran, tmp_path):
    stored = [json.loads(line) for line in (ran / ".engine" / "ledger" / "ledger.jsonl").read_text().splitlines()]
    mine = [e for e in stored if e["record"].get("task_id") == "inspect-status"]
    body = assert_document(engine("ledger", "export", "--task", "inspect-status", "--json", cwd=ran, check=0).stdout,
                           "ledger-export")
    assert body == {"entries": mine}  # the entries as stored
    for fmt in ("jsonl", "csv"):
        target = tmp_path / f"ledger.{fmt}"
        body = assert_document(engine("ledger", "export", "--format", fmt, "-o", target, "--json", cwd=ran,
                                      check=0).stdout, "ledger-export")
        assert body == {"written": str(target), "format": fmt, "entries": len(stored)}
        plain = engine("ledger", "export", "--format", fmt, cwd=ran, check=0).stdout
        assert target.read_text() == plain  # the file is what the command prints without --output
    proc = engine("ledger", "export", "--format", "csv", "--json", cwd=ran)  # CSV is no JSON document
    assert "--output" in assert_error(proc, 2)["error"]


# ---- errors --------------------------------------------------------------------------------------------------

# the commands with --json, each with the arguments it needs
COMMANDS = {"status": (), "run": (), "submit": ("x.jsonl",), "requeue": ("x.jsonl",), "worktrees": (),
            "worktrees prune": (), "validate": (), "show": ("run-x",), "explain": ("t",), "replay": ("run-x",),
            "decide": ("select_plugin",), "plugin list": (), "plugin check": ("git-inspector",),
            "ledger verify": (), "ledger anchor": (), "ledger show": (), "ledger export": ()}
NEED_A_WORKSPACE = sorted(COMMANDS)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_usage_error_is_the_error_document(command, tmp_path):
    proc = engine(*command.split(), *COMMANDS[command], "--no-such-option", "--json", cwd=tmp_path)
    assert "No such option" in assert_error(proc, 2)["error"]


@pytest.mark.parametrize("command", NEED_A_WORKSPACE)
def test_no_workspace_is_the_error_document_exit_5(command, tmp_path):
    proc = engine(*command.split(), *COMMANDS[command], "--json", cwd=tmp_path)
    assert "is not an engine workspace" in assert_error(proc, 5)["error"]


@pytest.mark.no_replay  # the run's pinned model is changed
def test_a_bad_model_is_the_error_document_exit_3(example_ws):
    engine("run", "--drain", cwd=example_ws, check=0)
    [pinned] = (example_ws / ".engine" / "models").glob("dmn-*.dmn")
    pinned.write_text(pinned.read_text() + "<!-- changed -->\n")
    proc = engine("show", run_id_of(example_ws), "--json", cwd=example_ws)
    body = assert_error(proc, 3)
    assert "were changed after they were pinned" in body["error"]


def test_a_bad_decision_model_is_the_error_document_exit_3(tmp_path):
    proc = engine("decide", "d", "--model", DATA / "dmn" / "xml_syntax_error.dmn", "--json", cwd=tmp_path)
    body = assert_error(proc, 3)
    assert body["problems"][0]["line"] == 6


@pytest.mark.no_replay  # the ledger is broken on purpose
@pytest.mark.parametrize("command", ["verify", "anchor"])
def test_a_broken_ledger_is_the_error_document_exit_4(example_ws, command):
    engine("run", "--drain", cwd=example_ws, check=0)
    path = example_ws / ".engine" / "ledger" / "ledger.jsonl"
    rows = path.read_text().splitlines()
    entry = json.loads(rows[4])
    entry["record"]["status"] = "forged"
    rows[4] = json.dumps(entry, separators=(",", ":"), sort_keys=True)
    path.write_text("\n".join(rows) + "\n")
    body = assert_error(engine("ledger", command, "--json", cwd=example_ws), 4)
    assert "entry seq 5 was edited" in body["error"]


def test_a_plugin_refused_is_the_error_document_exit_6(example_ws):
    folder = example_ws / "plugins" / "git-inspector"  # shadows the bundled one without saying "replaces"
    shutil.copytree(bundled("plugins") / "git-inspector", folder, ignore=shutil.ignore_patterns("__pycache__"))
    body = assert_error(engine("validate", "--json", cwd=example_ws), 6)
    assert body["problems"]
