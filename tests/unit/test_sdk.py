"""The plugin surface is small on purpose: adding to it is a decision, so this test locks it."""

import os
import sys
from dataclasses import fields
from datetime import UTC, datetime

import pytest
import structlog

from engine import sdk


def test_exported_members():
    assert sorted(sdk.__all__) == ["Context", "PluginError", "SDK_VERSION", "SUPPORTED_SDK_VERSIONS", "ToolResult",
                                   "ToolTask", "WorktreeChanges", "run_tool", "task_problems", "verdict",
                                   "worktree_changes", "worktree_snapshot"]
    assert sdk.SDK_VERSION in sdk.SUPPORTED_SDK_VERSIONS
    assert all(name in vars(sdk) for name in sdk.__all__)


def test_context_fields():
    assert [f.name for f in fields(sdk.Context)] == ["run_id", "task_id", "now", "seed", "whatif", "workdir", "log",
                                                 "workspace", "call"]


def test_task_problems_names_each_path():
    assert sdk.task_problems({"id": "t1", "tool": "git"}) == []
    assert sdk.task_problems({"id": "t 1"}) == ["$: 'tool' is a required property",
                                               "$.id: 't 1' does not match '^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$'"]


def ctx(workdir):
    return sdk.Context("run-1", "t1", datetime(2026, 1, 1, tzinfo=UTC), 7, False, workdir, structlog.get_logger())


def test_run_tool_names_a_tool_missing_from_path_and_starts_nothing(tmp_path):
    with pytest.raises(sdk.PluginError) as caught:
        sdk.run_tool(ctx(tmp_path), ["no-such-tool"], env={"PATH": str(tmp_path)})
    assert str(caught.value) == "no-such-tool not found on PATH; install it or put it on the PATH the engine runs with"
    assert caught.value.retryable is False and caught.value.code is None


def test_run_tool_runs_without_a_shell_in_the_workdir_and_returns_a_failure(tmp_path):  # one tiny subprocess
    script = ("import os, sys; print(os.getcwd()); print(os.environ['EXTRA']); print(sys.argv[1]); "
              "print(sys.stdin.read()); sys.stdout.flush(); sys.stdout.buffer.write(b'\\xff'); "
              "sys.stderr.write('warn\\n'); sys.exit(3)")
    result = sdk.run_tool(ctx(tmp_path), [sys.executable, "-c", script, "$(echo hi); rm x"], stdin="h\u00e9llo",
                          env={"EXTRA": "yes", "PYTHONIOENCODING": "utf-8"})
    assert result.returncode == 3 and result.stderr == "warn\n"
    assert result.stdout.splitlines() == [os.path.realpath(tmp_path), "yes", "$(echo hi); rm x", "h\u00e9llo", "\ufffd"]


def test_tool_result_tail_is_stdout_then_stderr():
    assert sdk.ToolResult(1, "a\nb\n", "c\n").tail() == "a\nb\nc"
    assert sdk.ToolResult(1, "a\nb\n", "c\n").tail(3) == "b\nc"
    assert sdk.ToolResult(1, "", "only stderr").tail() == "only stderr"
