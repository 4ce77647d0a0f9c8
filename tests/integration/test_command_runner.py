"""command-runner and the legacy executor end to end: the real `engine` command on a workspace made by
`engine init --example`, the shipped process and decisions, real git. The executables are stand-ins put
first on the engine's PATH (a worker gets the engine's PATH): each records how it was called, outside the
repository, and writes what its arguments ask for."""

import json
import os
import re
import sys

import pytest

from tests.conftest import engine, git
from tests.integration.test_run import files, ledger_entries, put

STAND_IN = r'''
import json, os, sys, time
from pathlib import Path

args = sys.argv[1:]
call = {"name": Path(sys.argv[0]).name, "argv": args, "cwd": os.getcwd()}
if "--message-file" in args:
    call["message_file"] = args[args.index("--message-file") + 1]
    call["prompt"] = Path(call["message_file"]).read_text()
with open(Path(__file__).resolve().parent.parent / "calls.jsonl", "a") as log:
    log.write(json.dumps(call) + "\n")
if "sleep" in args:
    time.sleep(60)
if "write" in args:
    Path("made.txt").write_text(f"{call['name']} wrote this\n")
if "exit" in args:
    Path("partial.txt").write_text("half done\n")
    print(f"{call['name']}: giving up", file=sys.stderr)
    sys.exit(int(args[args.index("exit") + 1]))
print("ran", len(args), "argument(s)")
'''

ALLOW = "[plugins] command_runner_allow"


@pytest.fixture
def tools(tmp_path):
    """A bin/ of stand-ins (gen, mytool) and the environment that puts it first on the engine's PATH."""
    bin_dir = tmp_path / "tools" / "bin"
    bin_dir.mkdir(parents=True)
    for name in ("gen", "mytool"):
        script = bin_dir / name
        script.write_text(f"#!{sys.executable}\n{STAND_IN}")
        script.chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}"}


@pytest.fixture
def ws(example_ws):
    """The example workspace without its example tasks."""
    for path in (example_ws / ".tasks" / "inbox").iterdir():
        path.unlink()
    return example_ws


def calls(tmp_path):
    log = tmp_path / "tools" / "calls.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def settings(ws, allow=(), legacy=None):
    """Set command_runner_allow (and [legacy] executor) in the workspace's engine.toml."""
    path = ws / "engine.toml"
    text = path.read_text()
    assert "command_runner_allow = []" in text  # the default a fresh workspace gets
    text = text.replace("command_runner_allow = []", f"command_runner_allow = {json.dumps(list(allow))}")
    if legacy is not None:
        text = re.sub(r"(?m)^executor = false$", f"executor = {str(legacy).lower()}", text)
    path.write_text(text)


def command(task_id, executable, argv=(), **extra):
    args = {"executable": executable, "argv": list(argv), **extra.pop("args", {})}
    return {"id": task_id, "tool": "command", "repo": "example-repo", "args": args, **extra}


def failure(ws, name):
    report = json.loads((ws / ".tasks" / "failed" / f"{name}.error.json").read_text())
    return report["tasks"][0]["reason"]


def execute_records(ws, task_id):
    return [e["record"] for e in ledger_entries(ws)
            if e["record"].get("task_id") == task_id and e["record"].get("step") == "Task_execute"]


def recorded_output(ws, task_id):
    """command-runner's answer for the task, as recorded for replay in .engine/runs/<run>/outputs.jsonl."""
    [output] = [line["output"] for path in (ws / ".engine" / "runs").glob("*/outputs.jsonl")
                for line in map(json.loads, path.read_text().splitlines())
                if line["task_id"] == task_id and line["plugin"] == "command-runner"]
    return output


def test_a_fresh_workspace_allows_no_executable(ws, tools, tmp_path):
    text = (ws / "engine.toml").read_text()
    assert "command_runner_allow = []" in text and "executor = false" in text
    put(ws, "001-gen.jsonl", command("gen-1", "gen", ["write"]))
    engine("run", "--drain", cwd=ws, env=tools, check=1)
    reason = failure(ws, "001-gen.jsonl")
    assert "'gen' is not an executable this workspace allows (allowed: none)" in reason and ALLOW in reason
    assert calls(tmp_path) == []


def test_an_allowed_executable_runs_with_its_argv_in_the_worktree_and_its_change_is_committed(
        ws, tools, tmp_path):
    settings(ws, allow=["gen"])
    repo = ws / "example-repo"
    head, status = git(repo, "rev-parse", "HEAD"), git(repo, "status", "--porcelain")
    # shell metacharacters, quotes, globs, spaces and an empty string reach the executable as written
    argv = ["write", "a; rm -rf /", "$(touch pwned)", "`id`", "*", "x > y", "'q'", '"dq"', "", "--flag=1 2"]
    put(ws, "001-gen.jsonl", command("gen-1", "gen", argv, args={"flags": ["-v"], "prompt": "do it\n"}))
    engine("run", "--drain", cwd=ws, env=tools, check=0)
    assert files(ws, "done") == ["001-gen.jsonl", "001-gen.jsonl.result.json"]
    [call] = calls(tmp_path)
    worktree = ws / ".engine" / "worktrees" / "gen-1"
    assert call["cwd"] == str(worktree)  # the task's worktree, not the user's checkout
    # the old worker's order: flags, then the prompt file, then the arguments
    assert call["argv"] == ["-v", "--message-file", call["message_file"], *argv]
    assert call["prompt"] == "do it\n"
    assert not call["message_file"].startswith(str(ws))  # outside the repository, and removed after
    assert not os.path.exists(call["message_file"])
    assert not list(ws.rglob("pwned"))  # nothing went through a shell
    # the change is on the task's branch, committed by the process; the user's checkout is as it was
    assert git(repo, "show", "engine/gen-1:made.txt") == "gen wrote this\n"
    assert git(repo, "log", "-1", "--format=%s", "engine/gen-1").strip() == "engine: task gen-1"
    assert (git(repo, "rev-parse", "HEAD"), git(repo, "status", "--porcelain")) == (head, status)
    [record] = execute_records(ws, "gen-1")
    assert record["plugin"]["id"] == "command-runner" and record["plugin"]["operation"] == "run"
    output = recorded_output(ws, "gen-1")
    assert output["command"] == {"executable": "gen", "legacy": False}
    assert output["applied"]["changes"] == [{"path": "made.txt", "action": "create"}]
    assert output["plan"]["commands"] == [["gen", "-v", "--message-file", "<temporary folder>/prompt.md", *argv]]
    engine("ledger", "verify", cwd=ws, check=0)


def test_whatif_plans_the_command_and_never_starts_it(ws, tools, tmp_path):
    settings(ws, allow=["gen"])
    put(ws, "001-gen.jsonl", command("gen-1", "gen", ["write", "a b"]))
    proc = engine("run", "--whatif", cwd=ws, env=tools, check=0)
    assert "command-runner.run: would run gen with 2 argument(s) in" in proc.stdout
    assert "$ gen write 'a b'" in proc.stdout  # quoted as a shell would need it: one argument, not two
    assert calls(tmp_path) == [] and not list(ws.rglob("made.txt"))
    assert files(ws, "inbox") == ["001-gen.jsonl"]  # nothing claimed
    [planned] = [json.loads(line)["output"] for line in
                 next((ws / ".engine" / "whatif").glob("*/plans.jsonl")).read_text().splitlines()
                 if json.loads(line)["plugin"] == "command-runner"]
    assert planned["plan"]["commands"] == [["gen", "write", "a b"]] and planned["plan"]["changes"] == []
    assert planned["command"] == {"executable": "gen", "legacy": False} and "applied" not in planned


def test_whatif_foretells_a_disallowed_executable(ws, tools, tmp_path):
    put(ws, "001-gen.jsonl", command("gen-1", "gen", ["write"]))
    proc = engine("run", "--whatif", cwd=ws, env=tools, check=0)
    assert "would be failed     001-gen.jsonl" in proc.stdout
    [record] = [e["record"] for e in map(json.loads, next((ws / ".engine" / "whatif").glob("*/ledger.jsonl"))
                                         .read_text().splitlines()) if e["record"].get("step") == "Task_execute"]
    assert record["status"] == "error" and ALLOW in record["reason"]
    assert calls(tmp_path) == []


@pytest.mark.parametrize("executable", ["mytool", "not-even-on-path"])
def test_a_disallowed_executable_fails_naming_the_setting(ws, tools, tmp_path, executable):
    settings(ws, allow=["gen"])
    put(ws, "001-tool.jsonl", command("t-1", executable, ["write"]))
    engine("run", "--drain", cwd=ws, env=tools, check=1)
    reason = failure(ws, "001-tool.jsonl")
    assert f"'{executable}' is not an executable this workspace allows (allowed: gen)" in reason
    assert f"add it to {ALLOW} in engine.toml" in reason
    assert calls(tmp_path) == []


@pytest.mark.parametrize(("executable", "why"), [
    ("/bin/echo", "is an absolute path, which is refused"),
    ("{bin}/gen", "is an absolute path, which is refused"),
    ("../../../tools/bin/gen", "leads outside the repository"),
    ("linked/gen", "leads outside the repository"),
])
def test_paths_outside_the_repository_are_refused_even_when_allowed(ws, tools, tmp_path, executable, why):
    repo = ws / "example-repo"
    (repo / "linked").symlink_to(tmp_path / "tools" / "bin")
    git(repo, "add", "linked")
    git(repo, "commit", "-q", "-m", "a link out")
    executable = executable.format(bin=tmp_path / "tools" / "bin")
    settings(ws, allow=[executable])
    put(ws, "001-out.jsonl", command("out-1", executable, ["write"]))
    engine("run", "--drain", cwd=ws, env=tools, check=1)
    reason = failure(ws, "001-out.jsonl")
    assert f"task.args.executable {executable!r} {why}" in reason
    assert calls(tmp_path) == []


def test_an_executable_inside_the_repository_runs_by_its_relative_path(ws, tools, tmp_path):
    repo = ws / "example-repo"
    (repo / "scripts").mkdir()
    script = repo / "scripts" / "gen.py"
    script.write_text(f"#!{sys.executable}\n{STAND_IN}".replace(
        'Path(__file__).resolve().parent.parent / "calls.jsonl"', repr(str(tmp_path / "tools" / "calls.jsonl"))))
    script.chmod(0o755)
    git(repo, "add", "scripts")
    git(repo, "commit", "-q", "-m", "a script")
    settings(ws, allow=["scripts/gen.py"])
    put(ws, "001-script.jsonl", command("s-1", "scripts/gen.py", ["write"]))
    engine("run", "--drain", cwd=ws, env=tools, check=0)
    [call] = calls(tmp_path)
    assert call["cwd"] == str(ws / ".engine" / "worktrees" / "s-1") and call["argv"] == ["write"]
    assert git(repo, "show", "engine/s-1:made.txt") == "gen.py wrote this\n"


def test_a_missing_executable_fails_clearly(ws, tools, tmp_path):
    settings(ws, allow=["no-such-tool"])
    put(ws, "001-missing.jsonl", command("m-1", "no-such-tool"))
    engine("run", "--drain", cwd=ws, env=tools, check=1)
    reason = failure(ws, "001-missing.jsonl")
    assert "no-such-tool not found on PATH; install it or put it on the PATH the engine runs with" in reason
    assert "exit 127: command not found" in reason


def test_a_failing_command_fails_with_its_exit_code_meaning_and_output_and_is_rolled_back(
        ws, tools, tmp_path):
    settings(ws, allow=["gen"])
    repo = ws / "example-repo"
    put(ws, "001-fail.jsonl", command("f-1", "gen", ["exit", "127"]))
    engine("run", "--drain", cwd=ws, env=tools, check=1)
    reason = failure(ws, "001-fail.jsonl")
    assert "gen exited with code 127 (a program it ran was not found (command not found))" in reason
    assert "gen: giving up" in reason
    worktree = ws / ".engine" / "worktrees" / "f-1"
    assert git(worktree, "status", "--porcelain", "--untracked-files=all") == ""  # partial.txt rolled back
    assert git(repo, "rev-parse", "engine/f-1") == git(repo, "rev-parse", "main")  # nothing committed


def test_a_command_that_outlives_the_tasks_timeout_is_stopped(ws, tools, tmp_path):
    settings(ws, allow=["gen"])
    put(ws, "001-slow.jsonl", command("slow-1", "gen", ["sleep"], timeout_sec=2))
    proc = engine("run", "--drain", cwd=ws, env=tools, check=1, timeout=60)
    reason = failure(ws, "001-slow.jsonl")
    assert "command-runner.run timed out after 2 s and was stopped" in reason, proc.stdout
    [record] = execute_records(ws, "slow-1")
    assert record["status"] == "error" and record["error"]["code"] == "engine.timeout"
    assert len(calls(tmp_path)) == 1  # it did start


def test_the_legacy_executor_runs_a_tool_without_plugin_marked_legacy_in_the_ledger(ws, tools, tmp_path):
    settings(ws, allow=["mytool"], legacy=True)
    # what the legacy adapter makes of an old-worker line whose tool (mytool) has no plugin
    task = command("old-1", "mytool", [], args={"operation": "legacy", "legacy": True, "flags": ["--yes"],
                                                "prompt": "tidy up\n"})
    put(ws, "001-old.jsonl", task)
    engine("run", "--drain", cwd=ws, env=tools, check=0)
    [call] = calls(tmp_path)
    assert call["argv"] == ["--yes", "--message-file", call["message_file"]] and call["prompt"] == "tidy up\n"
    assert call["cwd"] == str(ws / ".engine" / "worktrees" / "old-1")
    [record] = execute_records(ws, "old-1")
    assert record["plugin"]["id"] == "command-runner" and record["plugin"]["operation"] == "legacy"
    [selected] = [e["record"]["decision"] for e in ledger_entries(ws)
                  if e["record"].get("task_id") == "old-1"
                  and e["record"].get("decision", {}).get("id") == "select_plugin"]
    assert selected["matched_rules"] == ["select_plugin_command_legacy"]
    assert "legacy executor" in selected["rules"][0]["annotation"]
    output = recorded_output(ws, "old-1")
    assert output["command"] == {"executable": "mytool", "legacy": True} and "(legacy)" in output["plan"]["summary"]
    engine("ledger", "verify", cwd=ws, check=0)


@pytest.mark.parametrize("executor", [True, False])
def test_a_task_the_adapter_marked_legacy_runs_as_legacy_only_when_the_workspace_allows_it(
        ws, tools, tmp_path, executor):
    settings(ws, allow=["mytool"], legacy=executor)
    # the adapter's shape without an operation: args.legacy true, the prompt where task.v1 keeps it
    put(ws, "001-old.jsonl", command("old-2", "mytool", ["a b"], prompt="old prompt\n",
                                     args={"flags": ["-q"], "legacy": True}))
    engine("run", "--drain", cwd=ws, env=tools, check=0 if executor else 1)
    if not executor:
        assert "[legacy] executor = true" in failure(ws, "001-old.jsonl") and calls(tmp_path) == []
        return
    [call] = calls(tmp_path)
    assert call["argv"] == ["-q", "--message-file", call["message_file"], "a b"]
    assert call["prompt"] == "old prompt\n"
    assert recorded_output(ws, "old-2")["command"] == {"executable": "mytool", "legacy": True}


def test_the_legacy_executor_is_off_unless_the_workspace_turns_it_on(ws, tools, tmp_path):
    settings(ws, allow=["mytool"])
    put(ws, "001-old.jsonl", command("old-1", "mytool", [], args={"operation": "legacy"}))
    engine("run", "--drain", cwd=ws, env=tools, check=1)
    reason = failure(ws, "001-old.jsonl")
    assert "the legacy executor is off in this workspace" in reason and "[legacy] executor = true" in reason
    assert calls(tmp_path) == []


def test_the_legacy_executor_still_needs_the_executable_allowed(ws, tools, tmp_path):
    settings(ws, allow=[], legacy=True)
    put(ws, "001-old.jsonl", command("old-1", "mytool", [], args={"operation": "legacy"}))
    engine("run", "--drain", cwd=ws, env=tools, check=1)
    assert ALLOW in failure(ws, "001-old.jsonl")
    assert calls(tmp_path) == []


@pytest.mark.parametrize(("inputs", "plugin"), [
    (["Tool=command"], "command-runner"),
    (["Tool=command", "Operation=run"], "command-runner"),
    (["Tool=command", "Operation=legacy"], "command-runner"),
])
def test_command_tasks_select_command_runner_which_gets_a_worktree(ws, inputs, plugin):
    def decide(decision, *items):
        args = [arg for item in items for arg in ("--input", item)]
        return json.loads(engine("decide", decision, "--json", *args, cwd=ws, check=0).stdout)["result"]

    assert decide("select_plugin", *inputs) == plugin
    assert decide("needs_worktree", f"Plugin={plugin}") is True


def test_the_workspace_validates_with_command_runner(ws):
    proc = engine("validate", cwd=ws, check=0)
    assert "models ok" in proc.stdout
    proc = engine("plugin", "list", cwd=ws, check=0)
    assert "command-runner" in proc.stdout
