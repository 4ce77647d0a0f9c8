"""The old worker's exit codes, from the engine's outcomes and plugin errors (engine.audit.legacy_ledger)."""

import json

import pytest

from engine.audit.legacy_ledger import Attempt, append_lines, attempts, bad_lines, call_exit, read_old_ledger


def failed(code=None, reason="boom", step="Task_execute"):
    return {"step": step, "error": {"code": code, "kind": "technical", "retryable": False}, "reason": reason}


@pytest.mark.parametrize(("call", "expected"), [
    (failed("engine.timeout", "plugin x timed out after 1 s"), 998),
    (failed("engine.policy_denied", "denied by policy: no"), 403),
    (failed(None, "claude not found on PATH; install it or put it on the PATH the engine runs with"), 127),
    (failed("EXECUTABLE_NOT_FOUND", "gone"), 127),
    (failed(None, "command-runner: ./build.sh not found in the repository /r (a shell would exit 127)"), 127),
    (failed(None, "command-runner: 'rm' is not an executable this workspace allows (allowed: none); add it"), 403),
    (failed(None, "aider exited with code 3: oops"), 3),
    (failed(None, "command-runner: make exited with code 2 (usage): tail"), 2),
    (failed("engine.crashed", "the worker died"), 1),
])
def test_a_failed_call_gets_the_old_exit_code(call, expected):
    assert call_exit(call) == expected


def test_attempts_are_the_dispatch_steps_calls_and_the_last_carries_the_outcome():
    steps = {"Task_execute"}
    calls = [{"step": "Task_acquire", "output": {}}, failed(None, "flaky"), failed("engine.timeout"),
             {"step": "Task_execute", "output": {"exit_code": 0}}, {"step": "Task_verify", "output": {}}]
    assert attempts("done", None, calls, steps) == [Attempt(1, 1, False), Attempt(2, 998, False), Attempt(3, 0, True)]
    assert attempts("quarantine", "retries exhausted", calls[:3], steps) == [Attempt(1, 1, False),
                                                                           Attempt(2, 998, False)]
    assert attempts("failed", "denied by policy: x", [], steps) == [Attempt(1, 403, False)]
    assert attempts("failed", "task field repo '/x' resolves to /x, outside", [], steps) == [Attempt(1, 403, False)]
    assert attempts("failed", "the process ended at 'No plugin for tool'", [], steps) == [Attempt(1, 1, False)]
    # a gate that fails after a successful execution: the failing call's code, else 1
    assert attempts("failed", "gate", [calls[3], failed(None, "pytest exited with code 1: x", "Task_verify")],
                    steps) == [Attempt(1, 1, False)]


def test_bad_lines_name_their_task_when_they_can():
    raw = b'{"id": "a", "tool": "git"}\nnot json\n{"id": "b", "repo": "r"}\n'
    assert bad_lines(raw, [2, 3, 3, None], "f.jsonl") == [("f.jsonl:2", None, None), ("b", None, "r"),
                                                         ("f.jsonl", None, None)]


def test_append_and_read_back(tmp_path):
    path = tmp_path / "logs" / "ledger.jsonl"
    append_lines(path, [{"id": "a", "attempt": 1, "exit": 1, "ok": False}, {"id": "a", "attempt": 2, "exit": 0,
                                                                            "ok": True}])
    append_lines(path, [{"id": "b", "attempt": 1, "exit": 999, "ok": False}])
    with path.open("a") as handle:
        handle.write("garbage\n" + json.dumps({"no": "id"}) + "\n")
    last, problems = read_old_ledger(path)
    assert {k: (v["attempt"], v["exit"]) for k, v in last.items()} == {"a": (2, 0), "b": (1, 999)}
    assert len(problems) == 2 and ":4:" in problems[0]
