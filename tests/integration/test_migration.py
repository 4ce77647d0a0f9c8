"""Running beside the old worker (issue 18): the dual-written old ledger, canary routing, shadow runs and
STOP.HEADLESS, with the real engine in a real workspace."""

import json
import os
import signal
import subprocess
import sys
import time

from engine.audit.legacy_ledger import FIELDS
from engine.canary import routing_key, to_new_kernel
from tests.conftest import engine, install_test_plugin
from tests.integration.test_cli_json import assert_document

# The old QueueWorker's ledger line and its exit codes.
OLD_FIELDS = ["ts", "id", "tool", "attempt", "exit", "ok", "repo"]
OK, NOT_FOUND, REJECTED, TIMEOUT, BAD_JSON = 0, 127, 403, 998, 999


def put(ws, name, *tasks):
    (ws / ".tasks" / "inbox" / name).write_text("".join(json.dumps(t) + "\n" for t in tasks))


def dual_write(ws, path=None):
    (ws / "engine.toml").write_text("[ledger]\ndual_write = true\n"
                                    + (f'dual_write_path = "{path}"\n' if path else ""))


def old_lines(path):
    """The old worker's ledger, read as its readers read it: every line has exactly its fields."""
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    for line in lines:
        assert list(line) == OLD_FIELDS, line
        assert isinstance(line["attempt"], int) and isinstance(line["exit"], int) and isinstance(line["ok"], bool)
        assert line["ok"] is (line["exit"] == OK)
    return lines


def by_id(lines):
    out = {}
    for line in lines:
        out.setdefault(line["id"], []).append((line["attempt"], line["exit"], line["ok"]))
    return out


def test_the_field_list_is_the_old_workers():
    assert list(FIELDS) == OLD_FIELDS


def test_dual_write_appends_the_old_workers_lines_with_its_exit_codes(example_ws):
    install_test_plugin(example_ws, "faulty")
    install_test_plugin(example_ws, "flaky")
    dual_write(example_ws)
    put(example_ws, "010-outside.jsonl", {"id": "outside", "tool": "git", "repo": "/tmp"})
    put(example_ws, "011-production.jsonl", {"id": "prod", "tool": "git", "repo": "example-repo",
                                             "metadata": {"environment": "production"}})
    (example_ws / ".tasks" / "inbox" / "012-bad.jsonl").write_text(
        json.dumps({"id": "fine", "tool": "git", "repo": "example-repo"}) + "\nnot json\n"
        + json.dumps({"id": "no-tool", "repo": "example-repo"}) + "\n")
    put(example_ws, "013-hang.jsonl", {"id": "hang", "tool": "faulty", "repo": "example-repo",
                                       "args": {"operation": "hang"}, "timeout_sec": 1})
    put(example_ws, "014-flaky.jsonl", {"id": "flaky", "tool": "flaky", "repo": "example-repo",
                                        "args": {"fail_times": 1}, "retry": {"max_retries": 3, "backoff_sec": 0}})
    put(example_ws, "015-exit.jsonl", {"id": "exits", "tool": "faulty", "repo": "example-repo",
                                       "args": {"operation": "exit"}, "timeout_sec": 5})
    engine("run", "--drain", cwd=example_ws, check=1, timeout=300)

    lines = old_lines(example_ws / "logs" / "ledger.jsonl")
    seen = by_id(lines)
    for task_id in ("inspect-status", "inspect-log", "inspect-diff", "normalize-readme"):  # the example's
        assert seen[task_id] == [(1, OK, True)]
    assert seen["outside"] == [(1, REJECTED, False)]  # confinement
    assert seen["prod"] == [(1, REJECTED, False)]  # the security policy
    assert seen["012-bad.jsonl:2"] == [(1, BAD_JSON, False)]  # one line per bad line; nothing of the file ran
    assert seen["no-tool"] == [(1, BAD_JSON, False)]
    assert "fine" not in seen
    assert seen["hang"] == [(1, TIMEOUT, False)]
    assert seen["flaky"] == [(1, 1, False), (2, OK, True)]  # the failed attempt, then the one that succeeded
    assert seen["exits"][-1][1] not in (OK, REJECTED, TIMEOUT, BAD_JSON, NOT_FOUND)  # a crash: the other failure
    line = next(x for x in lines if x["id"] == "outside")
    assert line["tool"] == "git" and line["repo"] == "/tmp" and line["ts"].startswith("20")


def test_a_missing_tool_is_127_and_secrets_never_reach_the_old_ledger(example_ws):
    dual_write(example_ws, "old/ledger.jsonl")
    token = "ghp_" + "A1b2C3d4" * 5
    put(example_ws, "020-claude.jsonl", {"id": "ai", "tool": "claude", "repo": "example-repo",
                                         "prompt": "tidy", "files": ["README.md"]})
    put(example_ws, "021-secret.jsonl", {"id": f"leak-{token}", "tool": "git", "repo": "example-repo"})
    env = {"PATH": os.path.dirname(sys.executable) + os.pathsep + "/usr/bin:/bin"}  # git, and no claude
    engine("run", "--drain", cwd=example_ws, env=env, timeout=300)
    path = example_ws / "old" / "ledger.jsonl"
    seen = by_id(old_lines(path))
    assert seen["ai"][-1] == (len(seen["ai"]), NOT_FOUND, False)
    assert token not in path.read_text() and "[REDACTED" in path.read_text()


def test_without_dual_write_there_is_no_old_ledger(example_ws):
    engine("run", "--drain", cwd=example_ws, check=0)
    assert not (example_ws / "logs").exists()


def test_canary_routing_is_a_stable_share_by_task_id(tmp_path):
    folder = tmp_path / "files"
    folder.mkdir()
    for i in range(1000):
        (folder / f"f-{i:04d}.jsonl").write_text(json.dumps({"id": f"task-{i}", "tool": "git"}) + "\n")
    keys = [routing_key(p) for p in sorted(folder.iterdir())]
    assert keys[:2] == ["task-0", "task-1"]
    chosen = [k for k in keys if to_new_kernel(k, 10)]
    assert 80 <= len(chosen) <= 120, len(chosen)
    assert chosen == [k for k in keys if to_new_kernel(k, 10)]  # the same files every time
    assert set(chosen) <= {k for k in keys if to_new_kernel(k, 50)}  # ramping up only adds files
    assert all(to_new_kernel(k, 100) for k in keys) and not any(to_new_kernel(k, 0) for k in keys)
    (folder / "no-id.jsonl").write_text("not json\n")
    assert routing_key(folder / "no-id.jsonl") == "no-id.jsonl"


def test_run_canary_runs_its_share_and_moves_the_rest_to_the_old_inbox(example_ws):
    inbox = example_ws / ".tasks" / "inbox"
    for p in inbox.iterdir():
        p.unlink()
    ids = [f"c-{i:03d}" for i in range(100)]
    for task_id in ids:
        put(example_ws, f"{task_id}.jsonl", {"id": task_id, "tool": "git", "repo": "example-repo"})
    mine = {f"{i}.jsonl" for i in ids if to_new_kernel(i, 10)}
    engine("run", "--canary", "10", "--drain", cwd=example_ws, check=0, timeout=300)
    done = {p.name for p in (example_ws / ".tasks" / "done").glob("*.jsonl")}
    old = {p.name for p in (example_ws / ".tasks" / "legacy-inbox").iterdir()}
    assert done == mine and mine
    assert old == {f"{i}.jsonl" for i in ids} - mine
    assert list(inbox.iterdir()) == []
    records = [json.loads(line)["record"] for line in (example_ws / ".engine" / "ledger" / "ledger.jsonl")
               .read_text().splitlines()]
    routed = {r["task_file"]: r["status"] for r in records if r["kind"] == "queue" and r["status"].startswith("routed")}
    assert routed == {**{n: "routed_new" for n in mine}, **{n: "routed_old" for n in old}}
    engine("ledger", "verify", cwd=example_ws, check=0)


def test_shadow_reports_agreement_and_the_planted_differences(example_ws, tmp_path):
    task_file = tmp_path / "a.jsonl"
    task_file.write_text("".join(json.dumps(t) + "\n" for t in [
        {"id": "same", "tool": "git", "repo": "example-repo"},
        {"id": "now-refused", "tool": "git", "repo": "/tmp"},
        {"id": "after", "tool": "git", "repo": "example-repo"},
        {"id": "new-only", "tool": "git", "repo": "example-repo"}]))
    ledger = tmp_path / "old-ledger.jsonl"
    ledger.write_text("".join(json.dumps(dict(zip(OLD_FIELDS, line, strict=True))) + "\n" for line in [
        ("2026-01-01T00:00:00Z", "same", "git", 1, 0, True, "example-repo"),
        ("2026-01-01T00:00:01Z", "now-refused", "git", 1, 5, False, "example-repo"),
        ("2026-01-01T00:00:02Z", "now-refused", "git", 2, 0, True, "example-repo"),  # the last attempt counts
        ("2026-01-01T00:00:03Z", "after", "git", 1, 0, True, "example-repo"),
        ("2026-01-01T00:00:04Z", "old-only", "git", 1, 1, False, "elsewhere")]))
    before = sorted(p.name for p in (example_ws / ".tasks" / "inbox").iterdir())
    proc = engine("shadow", task_file, "--old-ledger", ledger, "--json", cwd=example_ws, check=1)
    body = assert_document(proc.stdout, "shadow")
    tasks = {t["id"]: t for t in body["tasks"]}
    assert list(tasks) == ["same", "now-refused", "after", "new-only", "old-only"]
    assert tasks["same"]["agree"] and tasks["same"]["new"]["exit"] == OK and body["agree"] == 1
    assert tasks["now-refused"]["new"]["exit"] == REJECTED and tasks["now-refused"]["old"]["attempt"] == 2
    assert [(d["id"], d["kind"]) for d in body["differences"]] == [
        ("now-refused", "old_ok_new_failed"), ("after", "new_not_run"), ("new-only", "missing_old"),
        ("old-only", "missing_new")]
    # nothing was claimed or run
    assert sorted(p.name for p in (example_ws / ".tasks" / "inbox").iterdir()) == before
    assert not list((example_ws / ".tasks" / "done").iterdir())

    task_file.write_text(json.dumps({"id": "same", "tool": "git", "repo": "example-repo"}) + "\n"
                         + json.dumps({"id": "fresh", "tool": "git", "repo": "example-repo"}) + "\n")
    proc = engine("shadow", task_file, "--old-ledger", ledger, cwd=example_ws, check=1)
    assert "agree  same: old ok (exit 0), new done (exit 0)" in proc.stdout
    assert "difference missing_old: fresh" in proc.stdout


def test_stop_headless_stops_a_polling_run_with_work_left(example_ws):
    env = {k: v for k, v in os.environ.items() if k != "ENGINE_WORKSPACE"}
    worker = subprocess.Popen([sys.executable, "-m", "engine", "run", "--poll", "0.1"], cwd=example_ws, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        done = example_ws / ".tasks" / "done"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(list(done.glob("*.jsonl"))) < 2:
            time.sleep(0.05)
        assert len(list(done.glob("*.jsonl"))) == 2
        (example_ws / ".tasks" / "STOP.HEADLESS").write_text("")
        put(example_ws, "030-late.jsonl", {"id": "late", "tool": "git", "repo": "example-repo"})
        stdout, stderr = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGKILL)
            worker.wait()
    assert worker.returncode == 9, stderr
    assert "(stopped: .tasks/STOP.HEADLESS exists)" in stdout
    assert "1 file(s) in inbox/" in stderr
    assert (example_ws / ".tasks" / "inbox" / "030-late.jsonl").exists()
    # with the file still there, a run does not start any work
    proc = engine("run", "--drain", "--json", cwd=example_ws, check=9)
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    assert {"event": "warning", "message": "stopped: .tasks/STOP.HEADLESS exists"}.items() <= events[-2].items()
    assert not any(e["event"] == "file_claimed" for e in events)
    (example_ws / ".tasks" / "STOP.HEADLESS").unlink()
    engine("run", "--drain", cwd=example_ws, check=0)
