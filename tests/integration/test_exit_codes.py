"""Every documented exit code of `engine`, provoked the way a user meets it, and documented where a user
looks: `engine --help` and the README."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.cli import EXIT_CODES
from engine.errors import ExitCode
from tests.conftest import engine, install_test_plugin

ROOT = Path(__file__).resolve().parents[2]


def put(ws, name, *tasks):
    (ws / ".tasks" / "inbox" / name).write_text("".join(json.dumps({"repo": "example-repo", **t}) + "\n"
                                                        for t in tasks))


def tamper_ledger(ws):
    ledger = ws / ".engine" / "ledger" / "ledger.jsonl"
    lines = ledger.read_text().splitlines()
    entry = json.loads(lines[1])
    entry["record"]["status"] = "edited"
    lines[1] = json.dumps(entry)
    ledger.write_text("\n".join(lines) + "\n")


def ok(ws, tmp_path):
    return engine("status", cwd=ws)


def tasks_failed(ws, tmp_path):
    put(ws, "900-unknown.jsonl", {"id": "u", "tool": "no-such-tool"})
    proc = engine("run", "--drain", cwd=ws)
    assert "failed     900-unknown.jsonl: line 1 (task u, tool 'no-such-tool')" in proc.stdout
    return proc


def usage(ws, tmp_path):
    proc = engine("run", "--poll", "soon", cwd=ws)
    assert "'soon' is not a valid float" in proc.stderr
    return proc


def model_invalid(ws, tmp_path):
    (ws / "process" / "orchestration.bpmn").write_text("<definitions>not closed")
    proc = engine("run", "--drain", cwd=ws)
    assert "orchestration.bpmn" in proc.stdout + proc.stderr
    assert sorted(p.name for p in (ws / ".tasks" / "inbox").iterdir())  # nothing was claimed
    return proc


def ledger_broken(ws, tmp_path):
    engine("run", "--drain", cwd=ws, check=0)
    tamper_ledger(ws)
    proc = engine("ledger", "verify", cwd=ws)
    assert "ledger.jsonl:2" in proc.stdout + proc.stderr
    return proc


def workspace(ws, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = engine("run", "--drain", cwd=empty)
    assert "engine init" in proc.stderr
    return proc


def plugin_invalid(ws, tmp_path):
    broken = ws / "plugins" / "broken"
    broken.mkdir(parents=True)
    (broken / "plugin.spec.json").write_text('{"id": "broken"')
    proc = engine("run", "--drain", cwd=ws)
    assert "plugin.spec.json" in proc.stdout + proc.stderr
    return proc


def decision_failed(ws, tmp_path):
    proc = engine("decide", "select_plugn", "--input", "tool=git", cwd=ws)
    assert "select_plugin" in proc.stdout + proc.stderr  # the did-you-mean
    return proc


def policy_denied(ws, tmp_path):
    engine("run", "--drain", cwd=ws, check=0)
    tamper_ledger(ws)
    put(ws, "901-more.jsonl", {"id": "m", "tool": "git", "args": {"operation": "status"}})
    proc = engine("run", "--drain", cwd=ws)
    assert "deny" in proc.stderr and (ws / ".tasks" / "inbox" / "901-more.jsonl").exists()
    return proc


def slow_run(ws):
    install_test_plugin(ws, "sleeper", tool="sleep")
    for i in range(4):
        put(ws, f"3{i:02d}-slow.jsonl", {"id": f"z{i}", "tool": "sleep", "args": {"seconds": 1.5}})
    env = {k: v for k, v in os.environ.items() if k != "ENGINE_WORKSPACE"}
    worker = subprocess.Popen([sys.executable, "-m", "engine", "run", "--drain"], cwd=ws, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    processing = ws / ".tasks" / "processing"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list(processing.glob("3*-slow.jsonl")):
        time.sleep(0.05)
    time.sleep(0.3)  # inside the first task's plugin call
    return worker


def interrupted(ws, tmp_path):
    worker = slow_run(ws)
    worker.send_signal(signal.SIGINT)
    stdout, stderr = worker.communicate(timeout=60)
    assert "stopped with work left" in stderr
    return subprocess.CompletedProcess(worker.args, worker.returncode, stdout, stderr)


def aborted(ws, tmp_path):
    worker = slow_run(ws)
    worker.send_signal(signal.SIGINT)
    time.sleep(0.2)
    worker.send_signal(signal.SIGINT)  # the second: stop at once
    stdout, stderr = worker.communicate(timeout=60)
    assert "stopped at once" in stderr
    return subprocess.CompletedProcess(worker.args, worker.returncode, stdout, stderr)


def internal(ws, tmp_path):
    # An unexpected error can only come from a bug: one is planted in a command added for the test, and
    # the real error boundary (engine.cli.main) must turn it into exit 70 with the traceback in the log.
    code = ("from engine import cli\n"
            "@cli.cli.command('boom')\n"
            "def boom():\n"
            "    cli._workspace(__import__('click').get_current_context())\n"
            "    raise RuntimeError('planted bug')\n"
            f"cli.main(['-w', {str(ws)!r}, 'boom'])\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "internal error: RuntimeError: planted bug" in proc.stderr
    assert "the traceback is in" in proc.stderr and "engine.jsonl" in proc.stderr
    log = (ws / ".engine" / "logs" / "engine.jsonl").read_text()
    assert "planted bug" in log and "Traceback" in log
    return proc


PROVOKED = {ExitCode.OK: ok, ExitCode.TASKS_FAILED: tasks_failed, ExitCode.USAGE: usage,
            ExitCode.MODEL_INVALID: model_invalid, ExitCode.LEDGER_BROKEN: ledger_broken,
            ExitCode.WORKSPACE: workspace, ExitCode.PLUGIN_INVALID: plugin_invalid,
            ExitCode.DECISION_FAILED: decision_failed, ExitCode.POLICY_DENIED: policy_denied,
            ExitCode.INTERRUPTED: interrupted, ExitCode.INTERNAL: internal, ExitCode.ABORTED: aborted}


def test_every_exit_code_has_a_test_here():
    assert set(PROVOKED) == set(ExitCode)


@pytest.mark.no_replay  # some of them tamper with the ledger on purpose
@pytest.mark.parametrize("code", list(ExitCode), ids=lambda c: f"{int(c)}-{c.name.lower()}")
def test_each_exit_code_is_what_a_user_gets(code, example_ws, tmp_path):
    proc = PROVOKED[code](example_ws, tmp_path)
    assert proc.returncode == code, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"


def test_a_plugins_exit_status_never_becomes_the_engines(example_ws):
    install_test_plugin(example_ws, "faulty")
    put(example_ws, "910-exits.jsonl", {"id": "x3", "tool": "faulty", "args": {"operation": "sysexit"}},
        {"id": "never", "tool": "faulty", "args": {"operation": "ok"}})
    put(example_ws, "911-dies.jsonl", {"id": "x1", "tool": "faulty", "args": {"operation": "exit"}})
    proc = engine("run", "--drain", cwd=example_ws)
    assert proc.returncode == ExitCode.TASKS_FAILED, proc.stderr  # not the plugin's 3, nor its 1 by chance
    assert "failed     910-exits.jsonl: line 1 (task x3, tool 'faulty')" in proc.stdout
    assert "SystemExit: 3" in proc.stdout
    assert "failed     911-dies.jsonl: line 1 (task x1, tool 'faulty')" in proc.stdout


def test_help_and_readme_list_every_command_and_every_exit_code():
    from engine.cli import cli

    assert set(EXIT_CODES) == set(ExitCode)
    help_text = engine("--help", check=0).stdout
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("### Exit codes"):]
    for code in ExitCode:
        assert re.search(rf"^\s+{int(code)}\s+\S", help_text, re.M), f"engine --help lacks exit code {int(code)}"
        assert re.search(rf"^\| {int(code)} \| \S", table, re.M), f"README lacks exit code {int(code)}"
    commands = []
    for name, command in cli.commands.items():
        subs = getattr(command, "commands", None)
        commands += [f"{name} {sub}" for sub in subs] if subs else [name]
        assert re.search(rf"^\s+{name}\s", help_text, re.M), f"engine --help lacks {name}"
    for command in commands:
        assert f"`engine {command}" in readme, f"README lacks `engine {command}`"
