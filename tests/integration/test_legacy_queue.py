"""The old worker's task lines in the queue: converted to task.v1 when a file is read, run like any task, the
conversion in the ledger; `engine migrate` says what a folder of them becomes, changing nothing."""

import hashlib
import json
import re

from tests.conftest import engine


def put_lines(ws, name, *lines):
    (ws / ".tasks" / "inbox" / name).write_text("".join(json.dumps(line) + "\n" for line in lines))


def ledger_records(ws):
    lines = (ws / ".engine" / "ledger" / "ledger.jsonl").read_text().splitlines()
    return [json.loads(line)["record"] for line in lines]


def set_legacy_repo(ws, repo):
    config = ws / "engine.toml"
    text = config.read_text()
    assert text.count('\nrepo = "."\n') == 1
    config.write_text(text.replace('\nrepo = "."\n', f'\nrepo = "{repo}"\n'))


def test_a_legacy_git_task_runs_to_done_with_its_conversion_in_the_ledger(example_ws):
    set_legacy_repo(example_ws, "example-repo")  # the old worker's repository
    line = {"tool": "git", "args": ["log", "-n", "2"], "max_retries": 0, "attempt": 1, "metadata": {"from": "old"}}
    put_lines(example_ws, "040-legacy-git.jsonl", line, {"id": "old-status", "tool": "git", "args": ["status"],
                                                          "repo": "example-repo", "timeout_sec": 0})
    engine("run", "--drain", cwd=example_ws, check=0)
    done = example_ws / ".tasks" / "done"
    assert (done / "040-legacy-git.jsonl").exists()
    report = json.loads((done / "040-legacy-git.jsonl.result.json").read_text())
    assert [t["status"] for t in report["tasks"]] == ["done", "done"]
    started = {r["task_id"]: r for r in ledger_records(example_ws)
               if r["kind"] == "run" and r["status"] == "started" and r["task_file"] == "040-legacy-git.jsonl"}
    derived = next(tid for tid in started if tid.startswith("legacy-"))
    legacy = started[derived]["detail"]["legacy"]
    assert legacy["attempt"] == 1 and legacy["recognised_by"][:2] == ["no id", "args is an argv array"]
    assert 'args ["log", "-n", "2"] -> git-inspector log, args.max_count 2' in legacy["converted"]
    assert "repo: none -> 'example-repo' (the old worker's repository: [legacy] repo)" in legacy["converted"]
    raw = (done / "040-legacy-git.jsonl").read_text().splitlines()[0]
    assert legacy["line_sha256"] == hashlib.sha256(raw.encode()).hexdigest()
    assert "old-status" in started
    engine("ledger", "verify", cwd=example_ws, check=0)


def test_a_legacy_executable_task_runs_only_when_the_workspace_lets_it(example_ws):
    line = {"tool": "python3", "repo": "example-repo", "args": ["-c", "print('hi')"], "max_retries": 0}
    put_lines(example_ws, "041-legacy-python.jsonl", line)
    engine("run", "--drain", cwd=example_ws, check=1)
    report = json.loads((example_ws / ".tasks" / "failed" / "041-legacy-python.jsonl.error.json").read_text())
    assert report["tasks"][0]["task_id"].startswith("legacy-")
    # before command-runner: no plugin takes tool "command"; with it: the legacy executor is off, or python3 is
    # not in the allow list
    assert re.search(r"No plugin for tool 'command'|legacy executor is off|is not an executable this workspace "
                     r"allows", report["reason"]), report["reason"]
    if "No plugin for tool" in report["reason"]:
        return  # command-runner has not landed
    config = example_ws / "engine.toml"
    text = config.read_text()
    assert text.count("\ncommand_runner_allow = []\n") == 1 and text.count("\nexecutor = false\n") == 1
    config.write_text(text.replace("\ncommand_runner_allow = []\n", '\ncommand_runner_allow = ["python3"]\n')
                      .replace("\nexecutor = false\n", "\nexecutor = true\n"))
    put_lines(example_ws, "044-legacy-python.jsonl", line)
    engine("run", "--drain", cwd=example_ws, check=0)
    assert (example_ws / ".tasks" / "done" / "044-legacy-python.jsonl").exists()


def test_a_file_with_a_line_neither_shape_accepts_fails_with_both_lists(example_ws):
    put_lines(example_ws, "042-legacy-bad.jsonl", {"tool": "git", "repo": "example-repo", "args": ["status"]},
              {"tool": "git", "args": ["rebase", "main"]})
    engine("run", "--drain", cwd=example_ws, check=1)
    report = json.loads((example_ws / ".tasks" / "failed" / "042-legacy-bad.jsonl.error.json").read_text())
    messages = [(p["line"], p["message"]) for p in report["problems"]]
    assert all(line == 2 for line, _ in messages)
    assert any(m.startswith("read as task.v1: ") for _, m in messages)
    assert any("read as a legacy task" in m and "no git plugin operation" in m for _, m in messages)


def test_submit_accepts_a_legacy_file(example_ws, tmp_path):
    source = tmp_path / "043-old.jsonl"
    source.write_text(json.dumps({"tool": "git", "repo": "example-repo", "args": ["diff"]}) + "\n")
    proc = engine("submit", source, "--json", cwd=example_ws, check=0)
    assert json.loads(proc.stdout)["tasks"] == 1
    engine("run", "--drain", cwd=example_ws, check=0)
    assert (example_ws / ".tasks" / "done" / "043-old.jsonl").exists()


def test_migrate_reports_each_line_and_changes_nothing(example_ws, tmp_path):
    old = tmp_path / "old-queue"
    (old / "done").mkdir(parents=True)
    (old / "a.jsonl").write_text("\n".join(json.dumps(x) for x in (
        {"tool": "git", "args": ["status"]},
        {"id": "v1", "tool": "git", "args": {"operation": "log"}},
        {"tool": "codex", "prompt": "Fix it", "flags": ["--model", "o3"]},
        {"tool": "git", "args": ["rebase", "main"]},
    )) + "\n")
    (old / "done" / "b.jsonl").write_text(json.dumps({"tool": "pwsh", "args": ["-File", "x.ps1"],
                                                      "timeout_sec": 0}) + "\n")
    (old / "notes.txt").write_text("not a task file")
    before = {p: p.read_bytes() for p in old.rglob("*") if p.is_file()}
    proc = engine("migrate", old, "--json", cwd=example_ws, check=1)
    body = json.loads(proc.stdout)
    assert [f["file"] for f in body["files"]] == ["a.jsonl", "done/b.jsonl"]
    lines = body["files"][0]["lines"]
    assert [line["status"] for line in lines] == ["converted", "task.v1", "converted", "refused"]
    assert lines[2]["task"]["tool"] == "codex" and lines[2]["task"]["flags"] == ["--model=o3"]
    assert lines[3]["task"] is None and {p["path"] for p in lines[3]["problems"]} == {"$", "$.args"}
    [pwsh] = body["files"][1]["lines"]
    assert pwsh["task"]["args"] == {"operation": "legacy", "executable": "pwsh", "argv": ["-File", "x.ps1"],
                                    "flags": [], "legacy": True}
    assert body["counts"] == {"task.v1": 1, "converted": 3, "refused": 1} and body["ok"] is False
    assert {p: p.read_bytes() for p in old.rglob("*") if p.is_file()} == before
    (old / "a.jsonl").write_text(json.dumps({"tool": "git", "args": ["status"]}) + "\n")
    text = engine("migrate", old, cwd=example_ws, check=0).stdout
    assert "0 task.v1, 2 converted, 0 refused" in text
    engine("migrate", old / "nothing", cwd=example_ws, check=2)


def test_legacy_ai_tool_tasks_fail_only_because_their_cli_is_not_on_this_machine(example_ws):
    """aider, codex and claude lines in the old shape (no id, flags, prompt, files, top-level retry fields)
    are read; what stops them here is the missing CLI, said plainly, not their format."""
    set_legacy_repo(example_ws, "example-repo")
    for i, tool in enumerate(("aider", "codex", "claude")):
        put_lines(example_ws, f"05{i}-legacy-{tool}.jsonl",
                  {"tool": tool, "prompt": "add a docstring", "files": ["app.py"], "flags": ["--model", "m1"],
                   "max_retries": 0, "backoff_sec": 1, "timeout_sec": 0})
    proc = engine("run", "--drain", cwd=example_ws, env={"PATH": "/usr/bin:/bin"}, check=1)
    for i, tool in enumerate(("aider", "codex", "claude")):
        report = json.loads((example_ws / ".tasks" / "failed" / f"05{i}-legacy-{tool}.jsonl.error.json").read_text())
        [task] = report["tasks"]
        assert task["task_id"].startswith("legacy-") and "invalid task lines" not in report["reason"]
        assert re.search(rf"{tool}\S* not found", task["reason"]), task["reason"]
    assert "the file holds invalid task lines" not in proc.stdout
