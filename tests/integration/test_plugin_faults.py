"""A plugin that misbehaves costs its own task, never the engine or the tasks after it.

The `faulty` test plugin (tests/data/plugins/faulty) hangs, exits, raises SystemExit and
KeyboardInterrupt, segfaults, closes every file descriptor, writes garbage on the protocol pipe,
prints junk, breaks its output schema and raises error codes, one operation each. Every test here runs
the real `engine` command.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import engine, install_test_plugin
from tests.integration.test_run import files, ledger_entries, put

# operation -> what the reason in failed/ says
FAULTS = {
    "hang": "plugin faulty.hang timed out after 2 s and was stopped (last stderr: about to hang)",
    "exit": "plugin faulty.exit crashed: its worker exited with code 1",
    "sysexit": "plugin faulty.sysexit raised SystemExit: 3",
    "kbint": "plugin faulty.kbint raised KeyboardInterrupt",
    "segv": "plugin faulty.segv crashed: its worker was killed by signal SIGSEGV",
    "closefds": "plugin faulty.closefds crashed: its worker",
    "garbage": "plugin faulty.garbage crashed: its worker sent a malformed message (frame is not JSON",
    "badoutput": "output of faulty.badoutput violates its output_schema",
    "undeclared": "faulty.undeclared raised error code 'NOT_DECLARED', which its plugin.spec.json does not declare",
    "business": "the branch moved",
}
CODES = {"hang": "engine.timeout", "exit": "engine.crashed", "sysexit": "engine.exception",
         "kbint": "engine.exception", "segv": "engine.crashed", "closefds": "engine.crashed",
         "garbage": "engine.protocol",
         "badoutput": "engine.contract", "undeclared": "engine.contract", "business": "MERGE_CONFLICT"}


def task(op, **extra):
    return {"id": f"t-{op}", "tool": "faulty", "repo": "example-repo", "args": {"operation": op}, "timeout_sec": 2,
            **extra}


def test_every_fault_fails_its_task_and_the_queue_drains_in_one_run(example_ws):
    install_test_plugin(example_ws, "faulty")
    for i, op in enumerate(FAULTS):
        put(example_ws, f"1{i:02d}a-{op}.jsonl", task(op))
        put(example_ws, f"1{i:02d}b-{op}-after.jsonl", {**task("ok"), "id": f"after-{op}"})
    put(example_ws, "199-junk.jsonl", task("junk"))
    started = time.monotonic()
    proc = engine("run", "--drain", cwd=example_ws, check=1, timeout=300)
    assert time.monotonic() - started < 120, "the faults took far longer than their timeouts"
    assert "internal error" not in proc.stderr

    failed = files(example_ws, "failed")
    for i, op in enumerate(FAULTS):
        name = f"1{i:02d}a-{op}.jsonl"
        assert name in failed, (op, failed)
        report = json.loads((example_ws / ".tasks" / "failed" / f"{name}.error.json").read_text())
        assert FAULTS[op] in report["reason"], (op, report["reason"])
        assert f"1{i:02d}b-{op}-after.jsonl" in files(example_ws, "done"), op
    assert "199-junk.jsonl" in files(example_ws, "done")  # printing junk breaks nothing
    assert files(example_ws, "processing") == [] and files(example_ws, "inbox") == []

    executes = {e["record"]["task_id"]: e["record"] for e in ledger_entries(example_ws)
                if e["record"].get("step") == "Task_execute"}
    for op, code in CODES.items():
        record = executes[f"t-{op}"]
        assert record["status"] == "error" and FAULTS[op] in record["reason"], op
        assert record["error"]["code"] == code, (op, record["error"])
        assert record["error"]["kind"] == ("business" if op == "business" else "technical")
    assert all(executes[f"after-{op}"]["status"] == "completed" for op in FAULTS)
    engine("ledger", "verify", cwd=example_ws, check=0)
    log = (example_ws / ".engine" / "logs" / "engine.jsonl").read_text()
    assert "more junk" in log  # what a plugin prints is kept in the log, not read as protocol


def test_a_worker_sees_only_its_declared_environment_and_runs_in_the_task_repository(example_ws):
    install_test_plugin(example_ws, "faulty")
    put(example_ws, "100-env.jsonl", task("ok"))
    engine("run", "--drain", cwd=example_ws, check=0,
           env={"FAULTY_ALLOWED": "yes", "SECRET_TOKEN": "hunter2", "HOME": "/root"})
    outputs = [json.loads(x) for p in (example_ws / ".engine" / "runs").glob("*/outputs.jsonl")
               for x in p.read_text().splitlines()]
    ok = [o["output"] for o in outputs if o["task_id"] == "t-ok" and o["plugin"] == "faulty"][0]
    assert "FAULTY_ALLOWED" in ok["env"] and "PATH" in ok["env"]
    assert "SECRET_TOKEN" not in ok["env"] and "HOME" not in ok["env"]
    assert ok["cwd"] == str((example_ws / "example-repo").resolve())
    assert ok["pid"] != os.getpid()


def _worker_pids(folder):
    """Processes whose command line names the plugin folder (the plugin's workers)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if str(folder) in cmd and "engine.plugins.worker" in cmd:
                pids.append(int(entry))
    return pids


def test_sigterm_while_a_plugin_hangs_stops_its_worker_and_exits_within_seconds(example_ws):
    install_test_plugin(example_ws, "faulty")
    put(example_ws, "000-hang.jsonl", {**task("hang"), "timeout_sec": 600})
    env = {k: v for k, v in os.environ.items() if k not in ("ENGINE_WORKSPACE", "ENGINE_PLUGIN_PATH")}
    worker = subprocess.Popen([sys.executable, "-m", "engine", "run", "--drain"], cwd=example_ws, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    folder = example_ws / "plugins" / "faulty"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not _worker_pids(folder):
        time.sleep(0.05)
    assert _worker_pids(folder), "the plugin's worker never started"
    time.sleep(0.5)  # it is inside the hanging call now
    sent = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    stdout, stderr = worker.communicate(timeout=30)
    assert time.monotonic() - sent < 10
    assert worker.returncode == 9, stderr  # stopped with work left: not a finished run
    assert "(stopped by signal)" in stdout and "stopped with work left:" in stderr and "1 in processing/" in stderr
    assert _worker_pids(folder) == []
    # the task did not finish: its file stays in processing/ and resumes on the next start
    assert "000-hang.jsonl" in files(example_ws, "processing")


def test_a_worker_whose_engine_was_killed_exits_by_itself(example_ws):
    install_test_plugin(example_ws, "faulty")
    put(example_ws, "000-hang.jsonl", {**task("hang"), "timeout_sec": 600})
    env = {k: v for k, v in os.environ.items() if k not in ("ENGINE_WORKSPACE", "ENGINE_PLUGIN_PATH")}
    kernel = subprocess.Popen([sys.executable, "-m", "engine", "run", "--drain"], cwd=example_ws, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    folder = example_ws / "plugins" / "faulty"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not _worker_pids(folder):
        time.sleep(0.05)
    assert _worker_pids(folder), "the plugin's worker never started"
    kernel.kill()
    kernel.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _worker_pids(folder):
        time.sleep(0.1)
    assert _worker_pids(folder) == [], "the worker outlived its engine"


def test_the_performance_policy_bounds_a_call_and_bad_settings_stop_the_run_before_any_claim(example_ws):
    install_test_plugin(example_ws, "faulty")  # category: orchestration
    put(example_ws, "000-hang.jsonl", {**task("hang"), "timeout_sec": 600})
    (example_ws / "policies" / "performance.yml").write_text("timeouts:\n  orchestration: 1\n")
    (example_ws / "engine.toml").write_text("[plugins]\nstop_grace = 3\n")
    proc = engine("run", "--drain", cwd=example_ws, check=5)
    assert "engine.toml" in proc.stderr and "plugins.stop_grace" in proc.stderr
    assert "000-hang.jsonl" in files(example_ws, "inbox") and files(example_ws, "processing") == []

    (example_ws / "engine.toml").unlink()
    engine("run", "--drain", cwd=example_ws, check=1)
    report = json.loads((example_ws / ".tasks" / "failed" / "000-hang.jsonl.error.json").read_text())
    assert "plugin faulty.hang timed out after 1 s and was stopped" in report["reason"]
