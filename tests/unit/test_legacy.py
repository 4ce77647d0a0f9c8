"""engine.legacy: the old worker's task lines read as task.v1, every conversion recorded."""

import hashlib
import json

import pytest

from engine.contracts import problems
from engine.errors import ContractViolation
from engine.legacy import TaskAdapter, derived_id, git_operation
from engine.queue import TaskQueue

ADAPTER = TaskAdapter()


def read(line, adapter=ADAPTER):
    raw = json.dumps(line)
    return adapter.read(line, raw, file="old.jsonl", line=7)


def refused(line, adapter=ADAPTER):
    with pytest.raises(ContractViolation) as caught:
        read(line, adapter)
    return caught.value.problems


def notes(task):
    return task.metadata["legacy"]["converted"]


@pytest.mark.parametrize(("argv", "operation", "args"), [
    (["status"], "status", {}),
    (["status", "--porcelain"], "status", {}),
    (["diff"], "diff", {}),
    (["diff", "main"], "diff", {"base": "main"}),
    (["log", "-n", "5"], "log", {"max_count": 5}),
    (["log", "-5", "--oneline"], "log", {"max_count": 5}),
    (["log", "--max-count=3"], "log", {"max_count": 3}),
    (["commit", "-m", "fix"], "commit", {"message": "fix"}),
    (["commit", "-am", "fix"], "commit", {"message": "fix"}),
    (["commit", "--message=fix", "--", "a.py", "b.py"], "commit", {"message": "fix", "paths": ["a.py", "b.py"]}),
    (["merge", "--no-ff", "topic"], "merge", {"branch": "topic", "no_ff": True}),
    (["fetch"], "fetch", {}),
    (["fetch", "upstream"], "fetch", {"remote": "upstream"}),
    (["push", "origin", "topic", "--force"], "push", {"remote": "origin", "branch": "topic", "force": True}),
    (["branch", "topic", "main"], "branch", {"name": "topic", "start": "main"}),
    (["branch", "-d", "topic"], "branch", {"name": "topic", "delete": True}),
])
def test_git_argv_becomes_an_operation_of_the_git_plugins(argv, operation, args):
    task = read({"id": "g1", "tool": "git", "repo": "example-repo", "args": argv})
    assert task.tool == "git" and task.args == {"operation": operation, **args}
    plugin = "git-inspector" if operation in ("status", "diff", "log") else "git-executor"
    assert any(n.startswith(f"args {json.dumps(argv)} -> {plugin} {operation}") for n in notes(task))


@pytest.mark.parametrize("argv", [["rebase", "main"], ["commit"], ["log", "-n", "zero"], ["push", "origin", "a:b"],
                                  ["status", "--ignored"], ["diff", "a", "b"], []])
def test_git_argv_no_operation_matches_is_refused_naming_the_operations(argv):
    found = refused({"id": "g1", "tool": "git", "args": argv})
    legacy = [p for p in found if "read as a legacy task" in p.message]
    assert legacy and all(p.line == 7 and p.file == "old.jsonl" for p in found)
    assert "git-executor: commit -m MESSAGE" in legacy[0].message and legacy[0].path == "$.args"
    with pytest.raises(ValueError):
        git_operation(argv)


def test_flags_of_a_git_line_are_appended_to_its_argv():
    task = read({"id": "g2", "tool": "git", "args": ["log"], "flags": ["-n", "2"]})
    assert task.args == {"operation": "log", "max_count": 2}


def test_a_line_without_id_gets_an_id_derived_from_its_content():
    line = {"tool": "git", "repo": "r", "args": ["status"]}
    first, again = read(line), read(dict(reversed(list(line.items()))))  # key order does not matter
    assert first.id == again.id == derived_id(line)
    canonical = json.dumps(line, sort_keys=True, separators=(",", ":")).encode()
    assert first.id == "legacy-" + hashlib.sha256(canonical).hexdigest()[:10]
    assert read({**line, "args": ["diff"]}).id != first.id
    assert f"id: none -> {first.id}" in notes(first)[0]


def test_the_line_digest_and_why_it_was_read_as_legacy_are_recorded():
    line = {"tool": "git", "args": ["status"]}
    raw = '{"tool": "git",   "args": ["status"]}'
    task = ADAPTER.read(line, raw)
    record = task.metadata["legacy"]
    assert record["line_sha256"] == hashlib.sha256(raw.encode()).hexdigest()
    assert record["recognised_by"] == ["no id", "args is an argv array"]


def test_retry_fields_become_task_v1_retry_and_the_rest_is_kept():
    task = read({"id": "r1", "tool": "git", "args": ["fetch"], "max_retries": 2, "backoff_sec": 1.5,
                 "backoff_max": 30, "jitter_sec": 0, "attempt": 1})
    assert task.retry.max_retries == 2 and task.retry.backoff_sec == 1.5
    assert task.metadata["legacy"]["retry"] == {"backoff_max": 30, "jitter_sec": 0}
    assert task.metadata["legacy"]["attempt"] == 1
    assert "attempt 1 -> metadata.legacy.attempt" in notes(task)


def test_missing_retry_fields_take_the_old_workers_defaults():
    task = read({"tool": "git", "args": ["status"]})
    assert (task.retry.max_retries, task.retry.backoff_sec) == (3, 5)
    assert task.metadata["legacy"]["retry"] == {"backoff_max": 120, "jitter_sec": 3}


def test_bad_retry_fields_are_problems_with_their_path():
    found = refused({"tool": "git", "args": ["status"], "max_retries": -1, "attempt": "two"})
    assert {p.path for p in found if "legacy" in p.message} == {"$.max_retries", "$.attempt"}


@pytest.mark.parametrize("tool", ["aider", "codex", "claude"])
def test_ai_tools_keep_prompt_files_and_flags_with_values_joined(tool):
    task = read({"tool": tool, "repo": "/srv/repo", "prompt": "Add a docstring",
                 "files": ["/srv/repo/app.py", "docs/x.md"], "flags": ["--model", "m1", "--verbose"]})
    assert task.tool == tool and task.args == {} and task.prompt == "Add a docstring"
    assert task.files == ["app.py", "docs/x.md"]  # the old worker made them absolute against the repository
    assert task.flags == ["--model=m1", "--verbose"]
    assert any("--name value as --name=value" in n for n in notes(task))


def test_an_ai_tool_needs_a_prompt_and_takes_no_argv():
    found = refused({"tool": "aider", "args": ["x"]})
    assert {p.path for p in found if "legacy" in p.message} == {"$.args", "$.prompt"}


def test_a_file_outside_the_repository_is_refused():
    found = refused({"tool": "aider", "repo": "/srv/repo", "prompt": "p", "files": ["/etc/passwd"]})
    assert [p.path for p in found if "legacy" in p.message] == ["$.files[0]"]


@pytest.mark.parametrize(("tool", "argv", "flags"), [("pwsh", ["-File", "build.ps1"], ["-NoProfile"]),
                                                     ("python", ["-m", "pytest", "-q"], [])])
def test_other_tools_are_executables_for_the_command_runner(tool, argv, flags):
    task = read({"id": "x1", "tool": tool, "args": argv, "flags": flags, "prompt": "hello"})
    assert task.tool == "command"
    assert task.args == {"operation": "legacy", "executable": tool, "argv": argv, "flags": flags, "legacy": True}
    assert task.prompt == "hello" and task.flags == []


def test_timeout_zero_means_none_and_is_left_unset():
    task = read({"id": "t0", "tool": "python", "args": [], "timeout_sec": 0})
    assert task.timeout_sec == 600  # task.v1's default
    assert any(n.startswith("timeout_sec 0 (none) -> unset") for n in notes(task))
    assert read({"id": "t1", "tool": "python", "args": [], "timeout_sec": 30}).timeout_sec == 30


def test_metadata_is_kept_beside_the_conversion_record():
    task = read({"id": "m1", "tool": "python", "args": [], "metadata": {"owner": "ops", "environment": "dev"}})
    assert task.metadata["owner"] == "ops" and task.metadata["environment"] == "dev"
    assert set(task.metadata["legacy"]) == {"line_sha256", "recognised_by", "retry", "converted"}
    assert problems("task.v1", task.as_data()) == []
    found = refused({"id": "m2", "tool": "python", "args": [], "metadata": {"legacy": 1}})
    assert [p.path for p in found if "legacy task" in p.message] == ["$.metadata.legacy"]


def test_a_valid_task_v1_line_is_never_converted():
    task = read({"id": "v1", "tool": "teleport", "args": {"operation": "x"}})
    assert task.tool == "teleport" and "legacy" not in task.metadata


def test_a_line_neither_shape_accepts_lists_both_shapes_problems():
    found = refused({"tool": "git", "args": ["rebase", "main"], "colour": "red"})
    as_v1 = [p for p in found if p.message.startswith("read as task.v1: ")]
    as_legacy = [p for p in found if p.message.startswith("read as a legacy task (no id; args is an argv array)")]
    assert len(as_v1) + len(as_legacy) == len(found)
    assert {p.path for p in as_v1} == {"$", "$.args"}
    assert {p.path for p in as_legacy} == {"$.colour", "$.args"}


def test_a_bad_line_without_the_old_workers_shape_gets_task_v1_problems_only():
    found = refused({"id": "t3"})
    assert [(p.path, p.message) for p in found] == [("$", "'tool' is a required property")]


def test_modes_always_and_off():
    always, off = TaskAdapter("always"), TaskAdapter("off")
    task = read({"id": "a1", "tool": "pwsh"}, always)  # valid task.v1, read as the old worker's all the same
    assert task.tool == "command" and task.metadata["legacy"]["recognised_by"] == ['[legacy] adapter = "always"']
    assert all("read as a legacy task" in p.message for p in refused({"id": "a2", "tool": "git", "args": {}}, always))
    found = refused({"tool": "git", "args": ["status"]}, off)
    assert found and not any("legacy" in p.message for p in found)
    with pytest.raises(ValueError):
        TaskAdapter("sometimes")


def test_the_queue_reads_legacy_lines_and_the_workspace_setting(tmp_path):
    queue = TaskQueue(tmp_path / ".tasks", worker="w1")
    queue.ensure()
    path = queue.folder("inbox") / "old.jsonl"
    path.write_text(json.dumps({"tool": "git", "args": ["status"]}) + "\n"
                    + json.dumps({"id": "v1", "tool": "git"}) + "\n"
                    + json.dumps({"tool": "git", "args": ["status"]}) + "\n")
    parsed = queue.parse_file(path, "old.jsonl")
    assert [t.line for t in parsed.tasks] == [1, 2]
    assert [(p.line, p.path) for p in parsed.problems] == [(3, "$.id")]  # the same line again: the same id
    (tmp_path / "engine.toml").write_text('[legacy]\nadapter = "off"\n')
    parsed = queue.parse_file(path, "old.jsonl")
    assert [t.line for t in parsed.tasks] == [2] and {p.line for p in parsed.problems} == {1, 3}
