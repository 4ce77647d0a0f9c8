"""`engine run` end to end: real queue, real SpiffWorkflow, real plugins, real git."""

import json
import os
import signal
import subprocess
import sys
import time

from tests.conftest import engine, install_test_plugin


def files(ws, folder):
    return sorted(p.name for p in (ws / ".tasks" / folder).iterdir())


def ledger_entries(ws):
    return [json.loads(x) for x in (ws / ".engine" / "ledger" / "ledger.jsonl").read_text().splitlines()]


def put(ws, name, *tasks):
    path = ws / ".tasks" / "inbox" / name
    path.write_text("".join((t if isinstance(t, str) else json.dumps(t)) + "\n" for t in tasks))


def test_example_workspace_drains_and_the_ledger_verifies(example_ws):
    proc = engine("run", "--drain", cwd=example_ws, check=0)
    assert "2 file(s) done, 0 failed" in proc.stdout
    assert files(example_ws, "done") == ["001-inspect.jsonl", "001-inspect.jsonl.result.json",
                                         "002-normalize.jsonl", "002-normalize.jsonl.result.json"]
    for folder in ("inbox", "processing", "failed", "quarantine"):
        assert files(example_ws, folder) == []
    engine("ledger", "verify", cwd=example_ws, check=0)

    entries = ledger_entries(example_ws)
    executes = {e["record"]["task_id"]: e["record"] for e in entries if e["record"].get("step") == "Task_execute"}
    assert executes["inspect-log"]["plugin"]["id"] == "git-inspector"
    assert executes["inspect-log"]["plugin"]["operation"] == "log"
    assert executes["inspect-diff"]["plugin"]["operation"] == "diff"
    assert executes["normalize-readme"]["plugin"]["id"] == "task-parser"
    selections = [e["record"] for e in entries if e["record"].get("step") == "Task_select_plugin"]
    assert {s["decision"]["result"] for s in selections} == {"git-inspector", "task-parser"}
    assert all(s["decision"]["matched_rules"] for s in selections)
    models = {json.dumps(e["record"]["models"]) for e in entries if "models" in e["record"]}
    assert len(models) == 1  # every entry names the same BPMN and DMN hashes
    assert {e["envelope"]["run_id"] for e in entries} and all(e["envelope"]["run_id"] for e in entries)
    queue = [e["record"]["transition"] for e in entries if e["record"]["kind"] == "queue"]
    assert queue.count("inbox->processing") == 2 and queue.count("processing->done") == 2


def test_status_shows_counts_and_runs(example_ws):
    engine("run", "--drain", cwd=example_ws, check=0)
    proc = engine("status", "--json", cwd=example_ws, check=0)
    body = json.loads(proc.stdout)
    assert body["queue"]["done"] == 2 and body["queue"]["inbox"] == 0
    assert body["runs"][-1]["state"] == "finished"


def test_malformed_line_sends_its_file_to_failed_and_the_rest_drains(example_ws):
    put(example_ws, "003-bad.jsonl", {"id": "ok-1", "tool": "git", "repo": "example-repo"}, "{oops",
        {"id": "no-tool", "repo": "example-repo"})
    before = len(files(example_ws, "inbox"))
    proc = engine("run", "--drain", cwd=example_ws, check=1)
    assert "1 failed" in proc.stdout
    assert files(example_ws, "failed") == ["003-bad.jsonl", "003-bad.jsonl.error.json"]
    report = json.loads((example_ws / ".tasks" / "failed" / "003-bad.jsonl.error.json").read_text())
    assert [(p["line"], p.get("path")) for p in report["problems"]] == [(2, None), (3, "$")]
    assert "tool" in report["problems"][1]["message"]
    assert len([f for f in files(example_ws, "done") if f.endswith(".jsonl")]) == before - 1
    # nothing was run from the bad file, and nothing was lost
    assert (example_ws / ".tasks" / "failed" / "003-bad.jsonl").read_text().count("\n") == 3
    entries = ledger_entries(example_ws)
    assert not [e for e in entries if e["record"].get("task_id") == "ok-1"]
    engine("ledger", "verify", cwd=example_ws, check=0)


def test_a_failing_task_stops_its_file_with_the_reason(example_ws):
    put(example_ws, "004-missing-repo.jsonl", {"id": "good", "tool": "git", "repo": "example-repo"},
        {"id": "bad", "tool": "git", "repo": "no-such-repo"}, {"id": "after", "tool": "git", "repo": "example-repo"})
    engine("run", "--drain", cwd=example_ws, check=1)
    report = json.loads((example_ws / ".tasks" / "failed" / "004-missing-repo.jsonl.error.json").read_text())
    assert [t["status"] for t in report["tasks"]] == ["done", "failed"]
    assert report["tasks"][1]["end_event"] == "EndEvent_no_repo"
    assert "no-such-repo" in report["reason"] and "does not exist" in report["reason"]
    assert report["not_run_lines"] == [3]


def test_unknown_tool_ends_on_the_no_plugin_path(example_ws):
    put(example_ws, "005-unknown.jsonl", {"id": "x", "tool": "teleport", "repo": "example-repo"})
    engine("run", "--drain", cwd=example_ws, check=1)
    report = json.loads((example_ws / ".tasks" / "failed" / "005-unknown.jsonl.error.json").read_text())
    assert report["tasks"][0]["end_event"] == "EndEvent_no_plugin"
    assert "No plugin for tool" in report["reason"]


def test_editing_the_decision_table_changes_the_dispatch(example_ws):
    dmn = example_ws / "process" / "decisions.dmn"
    text = dmn.read_text()
    assert text.count('"git-inspector"') == 1
    dmn.write_text(text.replace('"git-inspector"', '"task-parser"'))
    put(example_ws, "000-first.jsonl", {"id": "routed", "tool": "git", "repo": "example-repo"})
    engine("run", "--drain", cwd=example_ws)
    executes = [e["record"] for e in ledger_entries(example_ws)
                if e["record"].get("step") == "Task_execute" and e["record"]["task_id"] == "routed"]
    assert executes[0]["plugin"]["id"] == "task-parser"
    assert executes[0]["status"] == "completed"


def test_a_bad_model_is_refused_before_any_task_is_claimed(example_ws):
    bpmn = example_ws / "process" / "orchestration.bpmn"
    bpmn.write_text(bpmn.read_text().replace('camunda:topic="dispatch"', 'camunda:topic="dispach"'))
    proc = engine("run", "--drain", cwd=example_ws, check=3)
    assert "dispach" in proc.stderr
    assert files(example_ws, "processing") == [] and len(files(example_ws, "inbox")) == 2
    assert not (example_ws / ".engine" / "ledger" / "ledger.jsonl").exists()


def tamper(ws, how):
    path = ws / ".engine" / "ledger" / "ledger.jsonl"
    rows = path.read_text().splitlines()
    if how == "edit":
        entry = json.loads(rows[4])
        entry["record"]["status"] = "forged"
        rows[4] = json.dumps(entry, separators=(",", ":"), sort_keys=True)
    elif how == "delete":
        del rows[4]
    else:
        rows[4], rows[5] = rows[5], rows[4]
    path.write_text("\n".join(rows) + "\n")


def test_tampered_ledger_fails_verify_naming_the_entry(example_ws, tmp_path):
    engine("run", "--drain", cwd=example_ws, check=0)
    original = (example_ws / ".engine" / "ledger" / "ledger.jsonl").read_text()
    for how in ("edit", "delete", "swap"):
        (example_ws / ".engine" / "ledger" / "ledger.jsonl").write_text(original)
        tamper(example_ws, how)
        proc = engine("ledger", "verify", cwd=example_ws, check=4)
        assert "ledger.jsonl:5: entry seq" in proc.stderr, (how, proc.stderr)


def test_a_cut_ledger_tail_stops_runs_and_a_kept_anchor_proves_it(example_ws):
    """Cut the tail: verify fails and a run refuses (nothing is chained onto the shortened ledger); delete
    head.json: verify fails unless --no-head; an anchor kept from `engine ledger anchor` proves the cut
    even when the head was rewritten to match."""
    engine("run", "--drain", cwd=example_ws, check=0)
    anchor = engine("ledger", "anchor", cwd=example_ws, check=0).stdout.split()[0]
    assert len(anchor) == 64
    ledger_file = example_ws / ".engine" / "ledger" / "ledger.jsonl"
    head_file = example_ws / ".engine" / "ledger" / "head.json"
    rows = ledger_file.read_text().splitlines()
    ledger_file.write_text("\n".join(rows[:-3]) + "\n")
    engine("ledger", "verify", cwd=example_ws, check=4)
    put(example_ws, "003-after-cut.jsonl", {"id": "cut", "tool": "git", "repo": "example-repo"})
    engine("run", "--drain", cwd=example_ws, check=8)
    assert ledger_file.read_text().splitlines() == rows[:-3]  # nothing chained on
    assert "003-after-cut.jsonl" in files(example_ws, "inbox")  # nothing claimed
    head_file.unlink()
    proc = engine("ledger", "verify", cwd=example_ws, check=4)
    assert "no head: head.json is missing, so truncation cannot be ruled out" in proc.stderr
    engine("ledger", "verify", "--no-head", cwd=example_ws, check=0)
    proc = engine("ledger", "verify", "--no-head", "--anchor", anchor, cwd=example_ws, check=4)
    assert f"the anchor {anchor} is no entry of the ledger" in proc.stderr


def test_workspace_option_and_env(example_ws, tmp_path):
    engine("--workspace", example_ws, "status", cwd=tmp_path, check=0)
    engine("status", cwd=tmp_path, env={"ENGINE_WORKSPACE": str(example_ws)}, check=0)
    proc = engine("status", cwd=tmp_path, check=5)
    assert "not an engine workspace" in proc.stderr and "engine init" in proc.stderr


def test_sigkill_mid_run_then_restart_loses_nothing(example_ws):
    install_test_plugin(example_ws, "sleeper", tool="sleep")
    names = []
    for i in range(6):
        name = f"1{i:02d}-slow.jsonl"
        names.append(name)
        put(example_ws, name, *({"id": f"s{i}-{j}", "tool": "sleep", "repo": "example-repo",
                                 "args": {"seconds": 0.15}} for j in range(3)))
    env = {k: v for k, v in os.environ.items() if k != "ENGINE_WORKSPACE"}
    worker = subprocess.Popen([sys.executable, "-m", "engine", "run", "--drain"], cwd=example_ws, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    processing = example_ws / ".tasks" / "processing"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # kill once a file is half done
        progress = list(processing.glob("1*-slow.jsonl.progress.jsonl"))
        if progress and progress[0].read_text().count("\n") >= 1:
            break
        time.sleep(0.02)
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait()
    assert [p.name for p in processing.glob("*.jsonl") if not p.name.endswith("progress.jsonl")], \
        "the worker was not killed mid-file"
    status = json.loads(engine("status", "--json", cwd=example_ws, check=0).stdout)
    assert status["workers"] == [] and status["queue"]["processing"] == 1  # the dead worker is not listed
    assert status["runs"][-1]["state"] == "died"

    engine("run", "--drain", cwd=example_ws, check=0)
    ended = {f for folder in ("done", "failed", "quarantine") for f in files(example_ws, folder)
             if f.endswith(".jsonl")}
    assert set(names) | {"001-inspect.jsonl", "002-normalize.jsonl"} == ended
    assert [f for f in files(example_ws, "processing") if not f.endswith(".lease")] == []
    assert files(example_ws, "inbox") == []
    engine("ledger", "verify", cwd=example_ws, check=0)
    recovered = [e for e in ledger_entries(example_ws) if e["record"].get("status") == "recovered"]
    assert len(recovered) == 1
    # the recovered file resumed after its last finished line: every task finished, and only the one
    # in flight at the kill may have run twice (at-least-once)
    finished = [e["record"]["task_id"] for e in ledger_entries(example_ws)
                if e["record"]["kind"] == "run" and e["record"]["status"] == "done"]
    assert len(set(finished)) == 6 * 3 + 4
    assert len(finished) - len(set(finished)) <= 1


def test_polling_worker_picks_up_new_files_and_stops_cleanly_on_sigterm(example_ws):
    env = {k: v for k, v in os.environ.items() if k != "ENGINE_WORKSPACE"}
    worker = subprocess.Popen([sys.executable, "-m", "engine", "run", "--poll", "0.1"], cwd=example_ws, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    done = example_ws / ".tasks" / "done"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(done.glob("*.jsonl"))) < 2:
        time.sleep(0.05)
    put(example_ws, "009-late.jsonl", {"id": "late", "tool": "git", "repo": "example-repo"})
    while time.monotonic() < deadline and not (done / "009-late.jsonl").exists():
        time.sleep(0.05)
    assert (done / "009-late.jsonl").exists(), "the polling worker did not pick up a new file"
    live = json.loads(engine("status", "--json", cwd=example_ws, check=0).stdout)["workers"]
    assert [w["pid"] for w in live] == [worker.pid]
    worker.send_signal(signal.SIGTERM)
    stdout, stderr = worker.communicate(timeout=30)
    assert worker.returncode == 0, stderr
    assert "SIGTERM: finishing the current task, then stopping" in stderr
    assert "3 file(s) done" in stdout and "(stopped by signal)" in stdout
    body = json.loads(engine("status", "--json", cwd=example_ws, check=0).stdout)
    assert body["runs"][-1]["state"] == "interrupted" and body["workers"] == []


def test_bad_input_files_go_to_failed_with_reasons(example_ws):
    inbox = example_ws / ".tasks" / "inbox"
    (inbox / "010-binary.jsonl").write_bytes(b"\xff\xfe\x00garbage\n")
    (inbox / "011-array.jsonl").write_text('["id", "tool"]\n')
    (inbox / "012-empty.jsonl").write_text("\n\n")
    (inbox / "013-dir.jsonl").mkdir()  # not a file: left alone
    engine("run", "--drain", cwd=example_ws, check=1)
    reports = {name: json.loads((example_ws / ".tasks" / "failed" / f"{name}.error.json").read_text())
               for name in ("010-binary.jsonl", "011-array.jsonl", "012-empty.jsonl")}
    assert "not UTF-8" in reports["010-binary.jsonl"]["problems"][0]["message"]
    assert reports["011-array.jsonl"]["problems"][0]["line"] == 1
    assert "is not of type 'object'" in reports["011-array.jsonl"]["problems"][0]["message"]
    assert reports["012-empty.jsonl"]["problems"][0]["message"] == "file holds no task"
    assert (inbox / "013-dir.jsonl").is_dir()
    assert (example_ws / ".tasks" / "failed" / "010-binary.jsonl").read_bytes() == b"\xff\xfe\x00garbage\n"


def test_a_broken_plugin_is_refused_before_any_task_is_claimed(example_ws):
    broken = example_ws / "plugins" / "broken"
    broken.mkdir(parents=True)
    (broken / "plugin.spec.json").write_text('{"id": "broken", "version": "x", "category": "nope", "operations": {}}')
    (broken / "manifest.json").write_text('{"id": "broken"}')
    proc = engine("run", "--drain", cwd=example_ws, check=6)
    assert "plugin.spec.json" in proc.stderr and "$.category" in proc.stderr and "$.entry_point" not in proc.stderr
    assert "manifest.json" in proc.stderr
    assert len(files(example_ws, "inbox")) == 2 and files(example_ws, "processing") == []


def test_a_model_written_in_camunda_modeler_style_runs(example_ws, data_dir):
    """A pool with a lane, JUEL conditions, Modeler-generated ids: the workspace's own model runs."""
    import shutil

    shutil.copy(data_dir / "process" / "camunda7_pool_juel.bpmn", example_ws / "process" / "orchestration.bpmn")
    put(example_ws, "020-unknown.jsonl", {"id": "u1", "tool": "nope", "repo": "example-repo"})
    engine("validate", cwd=example_ws, check=0)
    engine("run", "--drain", cwd=example_ws, check=1)
    assert "001-inspect.jsonl" in files(example_ws, "done")
    report = json.loads((example_ws / ".tasks" / "failed" / "020-unknown.jsonl.error.json").read_text())
    assert report["tasks"][0]["end_event"] == "Event_1none"
    steps = [e["record"]["step"] for e in ledger_entries(example_ws)
             if e["record"].get("task_id") == "inspect-log" and e["record"]["kind"] == "step"]
    assert steps == ["StartEvent_1", "Activity_0status", "Activity_1select", "Gateway_0found", "Activity_2run",
                     "Event_0done"]
    engine("ledger", "verify", cwd=example_ws, check=0)


def test_two_workers_share_a_queue_without_claiming_a_file_twice(example_ws):
    install_test_plugin(example_ws, "sleeper", tool="sleep")
    names = [f"2{i:02d}-shared.jsonl" for i in range(8)]
    for i, name in enumerate(names):
        put(example_ws, name, {"id": f"p{i}", "tool": "sleep", "repo": "example-repo", "args": {"seconds": 0.1}})
    env = {k: v for k, v in os.environ.items() if k != "ENGINE_WORKSPACE"}
    workers = [subprocess.Popen([sys.executable, "-m", "engine", "run", "--drain"], cwd=example_ws, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) for _ in range(2)]
    outputs = [w.communicate(timeout=120)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0]
    handled = [line.split()[1] for out in outputs for line in out.splitlines() if line.startswith("done ")]
    assert sorted(handled) == sorted(names + ["001-inspect.jsonl", "002-normalize.jsonl"])  # each exactly once
    engine("ledger", "verify", cwd=example_ws, check=0)
    claims = [e["record"]["task_file"] for e in ledger_entries(example_ws) if e["record"].get("status") == "claimed"]
    assert sorted(claims) == sorted(set(claims))


def test_a_task_naming_a_repository_outside_the_workspace_fails_before_any_step(example_ws, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (example_ws / "escape").symlink_to(outside)
    put(example_ws, "030-escape.jsonl", {"id": "up", "tool": "git", "repo": "../outside"})
    put(example_ws, "031-abs.jsonl", {"id": "abs", "tool": "git", "repo": str(outside)})
    put(example_ws, "032-link.jsonl", {"id": "link", "tool": "git", "repo": "escape"})
    engine("run", "--drain", cwd=example_ws, check=1)
    for name in ("030-escape.jsonl", "031-abs.jsonl", "032-link.jsonl"):
        report = json.loads((example_ws / ".tasks" / "failed" / f"{name}.error.json").read_text())
        assert "outside the workspace" in report["reason"], report
    assert not [e for e in ledger_entries(example_ws)
                if e["record"].get("task_id") in ("up", "abs", "link") and e["record"].get("plugin")]
    (example_ws / "engine.toml").write_text(f'[repos]\nroots = ["{outside}"]\n')
    (example_ws / ".tasks" / "failed" / "031-abs.jsonl").rename(example_ws / ".tasks" / "inbox" / "031-abs.jsonl")
    engine("run", "--drain", cwd=example_ws, check=1)  # allowed now; it is not a git repository
    report = json.loads((example_ws / ".tasks" / "failed" / "031-abs.1.jsonl.error.json").read_text())
    assert "outside the workspace" not in report["reason"] and "not a git repository" in report["reason"]


def test_when_several_ends_are_reached_the_most_severe_outcome_wins(example_ws, data_dir):
    import shutil

    shutil.copy(data_dir / "process" / "parallel_ends.bpmn", example_ws / "process" / "orchestration.bpmn")
    for name in files(example_ws, "inbox"):
        (example_ws / ".tasks" / "inbox" / name).unlink()
    put(example_ws, "001-two-ends.jsonl", {"id": "e1", "tool": "git", "repo": "example-repo"})
    engine("run", "--drain", cwd=example_ws, check=1)
    report = json.loads((example_ws / ".tasks" / "quarantine" / "001-two-ends.jsonl.result.json").read_text())
    assert report["tasks"][0]["end_event"] == "End_quarantine"  # though the done branch finished last
    ends = [e["record"]["step"] for e in ledger_entries(example_ws) if e["record"].get("step", "").startswith("End_")]
    assert sorted(ends) == ["End_done", "End_quarantine"]  # the ledger records each end reached


def test_a_plugins_business_error_is_caught_by_an_error_boundary_event(example_ws, data_dir):
    """A declared error code is thrown as a BPMN error: the boundary event with that errorCode catches it,
    its code and message variables are set, and the normal flow is not taken. A technical failure is not
    thrown: it stays the `error` variable."""
    import shutil

    install_test_plugin(example_ws, "faulty")
    shutil.copy(data_dir / "process" / "error_boundary.bpmn", example_ws / "process" / "orchestration.bpmn")
    for name in files(example_ws, "inbox"):
        (example_ws / ".tasks" / "inbox" / name).unlink()
    put(example_ws, "001-business.jsonl", {"id": "b1", "tool": "faulty", "repo": "example-repo",
                                           "args": {"operation": "business"}})
    put(example_ws, "002-technical.jsonl", {"id": "b2", "tool": "faulty", "repo": "example-repo",
                                            "args": {"operation": "sysexit"}})
    engine("validate", cwd=example_ws, check=0)
    engine("run", "--drain", cwd=example_ws, check=1)
    report = json.loads((example_ws / ".tasks" / "quarantine" / "001-business.jsonl.result.json").read_text())
    assert report["tasks"][0]["end_event"] == "End_conflict"  # caught, variables set, routed on them
    steps = [e["record"]["step"] for e in ledger_entries(example_ws) if e["record"].get("task_id") == "b1"
             and e["record"]["kind"] == "step"]
    assert "Boundary_conflict" in steps and "End_ok" not in steps
    technical = [e["record"]["step"] for e in ledger_entries(example_ws) if e["record"].get("task_id") == "b2"
                 and e["record"]["kind"] == "step"]
    assert "Boundary_conflict" not in technical and "End_ok" in technical


def test_ledger_export_and_show_filter_by_run_task_and_step(example_ws):
    import csv
    import io

    engine("run", "--drain", cwd=example_ws, check=0)
    stored = (example_ws / ".engine" / "ledger" / "ledger.jsonl").read_text().splitlines()
    mine = [line for line in stored if json.loads(line)["record"].get("task_id") == "inspect-status"]
    exported = engine("ledger", "export", "--task", "inspect-status", cwd=example_ws, check=0).stdout.splitlines()
    assert exported == mine  # the entries as stored, byte for byte, in order
    run_id = json.loads(stored[0])["envelope"]["run_id"]
    assert engine("ledger", "export", "--run", run_id, cwd=example_ws, check=0).stdout.splitlines() == stored
    rows = list(csv.DictReader(io.StringIO(engine("ledger", "export", "--format", "csv", "--task", "inspect-status",
                                                  cwd=example_ws, check=0).stdout)))
    assert [r["seq"] for r in rows] == [str(json.loads(line)["seq"]) for line in mine]
    acquire = [r for r in rows if r["step"] == "Task_acquire"]
    assert acquire and acquire[0]["plugin"] == "git-inspector" and acquire[0]["operation"] == "status"
    shown = engine("ledger", "show", "--task", "inspect-status", "--step", "Task_select_plugin", cwd=example_ws,
                   check=0).stdout.splitlines()
    assert len(shown) == 1 and 'select_plugin -> "git-inspector"' in shown[0]
    assert engine("ledger", "show", "--task", "nobody", cwd=example_ws, check=0).stdout.strip() == \
        "no ledger entries match"


def test_each_file_that_does_not_end_done_prints_its_reason_and_the_summary_counts_every_outcome(example_ws):
    put(example_ws, "050-unknown.jsonl", {"id": "u1", "tool": "no-such-tool", "repo": "example-repo"})
    put(example_ws, "051-bad.jsonl", '{"id": "b1", "tool": ', {"id": "b2", "tool": "git"})
    proc = engine("run", "--drain", cwd=example_ws, check=1)
    lines = {line.split()[1].rstrip(":"): line for line in proc.stdout.splitlines()
             if line.split()[0] in ("done", "failed")}
    assert lines["001-inspect.jsonl"] == "done       001-inspect.jsonl"
    assert lines["050-unknown.jsonl"].startswith(
        "failed     050-unknown.jsonl: line 1 (task u1, tool 'no-such-tool'): ")
    assert "No plugin for tool" in lines["050-unknown.jsonl"]
    assert lines["051-bad.jsonl"].startswith("failed     051-bad.jsonl: the file holds invalid task lines; no task")
    assert ":1" in lines["051-bad.jsonl"] and "not valid JSON" in lines["051-bad.jsonl"]
    assert "2 file(s) done, 2 failed, 0 quarantined; tasks: 4 done, 1 failed, 0 quarantined" in proc.stdout


def test_a_run_stopped_with_files_left_exits_9_and_says_what_is_left(example_ws):
    install_test_plugin(example_ws, "sleeper", tool="sleep")
    for i in range(6):
        put(example_ws, f"3{i:02d}-slow.jsonl", {"id": f"z{i}", "tool": "sleep", "repo": "example-repo",
                                                 "args": {"seconds": 0.3}})
    env = {k: v for k, v in os.environ.items() if k != "ENGINE_WORKSPACE"}
    worker = subprocess.Popen([sys.executable, "-m", "engine", "run", "--drain"], cwd=example_ws, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    done = example_ws / ".tasks" / "done"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list(done.glob("3*-slow.jsonl")):
        time.sleep(0.05)
    worker.send_signal(signal.SIGINT)
    stdout, stderr = worker.communicate(timeout=60)
    assert worker.returncode == 9, (stdout, stderr)
    assert "(stopped by signal)" in stdout and "stopped with work left:" in stderr
    assert files(example_ws, "inbox")  # work was left, and kept


def test_an_error_of_a_command_asked_for_json_is_a_json_document(tmp_path, example_ws):
    proc = engine("status", "--json", cwd=tmp_path, check=5)
    body = json.loads(proc.stdout)
    assert body["exit_code"] == 5 and "is not an engine workspace" in body["error"]
    assert "is not an engine workspace" in proc.stderr  # and the message where people read it
    body = json.loads(engine("replay", "run-nope", "--json", cwd=example_ws, check=2).stdout)
    assert body["exit_code"] == 2 and "no run 'run-nope'" in body["error"]
    body = json.loads(engine("explain", "nobody", "--json", cwd=example_ws, check=2).stdout)
    assert body["exit_code"] == 2 and body["error"]


def test_status_lists_the_last_failures_with_their_reasons(example_ws):
    put(example_ws, "060-unknown.jsonl", {"id": "u2", "tool": "no-such-tool", "repo": "example-repo"})
    engine("run", "--drain", cwd=example_ws, check=1)
    body = json.loads(engine("status", "--json", cwd=example_ws, check=0).stdout)
    [failure] = body["failures"]
    assert failure["folder"] == "failed" and failure["file"] == "060-unknown.jsonl"
    assert failure["reason"].startswith("line 1 (task u2, tool 'no-such-tool'): the process ended at")
    assert "failed: 060-unknown.jsonl: line 1 (task u2" in engine("status", cwd=example_ws, check=0).stdout


def test_what_the_inbox_holds_that_is_no_task_file_is_reported_not_silently_left(example_ws):
    inbox = example_ws / ".tasks" / "inbox"
    (inbox / "a-folder").mkdir()
    os.mkfifo(inbox / "a-fifo.jsonl")
    (inbox / "notes.txt").write_text("hello\n")
    (inbox / "old.progress.jsonl").write_text("{}\n")
    (inbox / "coming.jsonl.tmp").write_text("")
    proc = engine("run", "--drain", cwd=example_ws, check=0)
    assert "warning: inbox/a-folder is ignored: a folder" in proc.stderr
    assert "warning: inbox/a-fifo.jsonl is ignored: not a regular file" in proc.stderr
    assert "warning: inbox/notes.txt is ignored: not a *.jsonl file" in proc.stderr
    assert "warning: inbox/old.progress.jsonl is ignored: a *.progress.jsonl file" in proc.stderr
    assert "warning: inbox/coming.jsonl.tmp is ignored: being written?" in proc.stderr
    assert "2 file(s) done" in proc.stdout  # the task files ran
    body = json.loads(engine("status", "--json", cwd=example_ws, check=0).stdout)
    assert [s["name"] for s in body["ignored"]] == ["a-fifo.jsonl", "a-folder", "coming.jsonl.tmp", "notes.txt",
                                                    "old.progress.jsonl"]
    assert "ignored in inbox/: notes.txt: not a *.jsonl file" in engine("status", cwd=example_ws, check=0).stdout


def test_a_file_changed_after_its_claim_fails_saying_so_instead_of_dropping_the_new_lines(example_ws):
    install_test_plugin(example_ws, "sleeper", tool="sleep")
    for path in (example_ws / ".tasks" / "inbox").iterdir():
        path.unlink()
    put(example_ws, "070-grows.jsonl", {"id": "g1", "tool": "sleep", "repo": "example-repo", "args": {"seconds": 1}})
    env = {k: v for k, v in os.environ.items() if k != "ENGINE_WORKSPACE"}
    worker = subprocess.Popen([sys.executable, "-m", "engine", "run", "--drain"], cwd=example_ws, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    claimed = example_ws / ".tasks" / "processing" / "070-grows.jsonl"
    running = claimed.with_name("070-grows.jsonl.line-1.state")  # its first task is under way: the file was read
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not running.exists():
        time.sleep(0.02)
    with claimed.open("a") as handle:  # a writer that appends after the engine took the file
        handle.write(json.dumps({"id": "g2", "tool": "git", "repo": "example-repo"}) + "\n")
    stdout, stderr = worker.communicate(timeout=60)
    assert worker.returncode == 1, stderr
    assert "failed     070-grows.jsonl: the file was changed after it was claimed" in stdout
    report = json.loads((example_ws / ".tasks" / "failed" / "070-grows.jsonl.error.json").read_text())
    assert [(t["task_id"], t["status"]) for t in report["tasks"]] == [("g1", "done")]  # what ran is kept
    assert (example_ws / ".tasks" / "failed" / "070-grows.jsonl").read_text().count("\n") == 2  # nothing lost


def test_submit_puts_a_checked_task_file_into_the_inbox_and_refuses_a_bad_one(example_ws, tmp_path):
    good = tmp_path / "080-good.jsonl"
    good.write_text(json.dumps({"id": "s1", "tool": "git", "repo": "example-repo"}) + "\n")
    body = json.loads(engine("submit", good, "--json", cwd=example_ws, check=0).stdout)
    assert body["tasks"] == 1 and (example_ws / ".tasks" / "inbox" / "080-good.jsonl").read_bytes() == good.read_bytes()
    proc = engine("submit", good, cwd=example_ws, check=2)  # the same name again: refused, nothing replaced
    assert "exists" in proc.stderr
    bad = tmp_path / "081-bad.jsonl"
    bad.write_text('{"id": "s2", "tool": "git"}\n{"id": "s3"}\nnot json\n')
    proc = engine("submit", bad, cwd=example_ws, check=2)
    assert "081-bad.jsonl was not submitted: 2 problem(s)" in proc.stderr
    assert "081-bad.jsonl:2" in proc.stderr and "081-bad.jsonl:3" in proc.stderr
    assert not (example_ws / ".tasks" / "inbox" / "081-bad.jsonl").exists()
    piped = subprocess.run([sys.executable, "-m", "engine", "submit", "-", "--name", "082-piped.jsonl"], cwd=example_ws,
                           input=good.read_text(), capture_output=True, text=True,
                           env={k: v for k, v in os.environ.items() if k != "ENGINE_WORKSPACE"})
    assert piped.returncode == 0, piped.stderr
    engine("run", "--drain", cwd=example_ws, check=0)
    assert {"080-good.jsonl", "082-piped.jsonl"} <= set(files(example_ws, "done"))


def test_requeue_moves_a_failed_file_back_keeping_its_report_as_history(example_ws):
    put(example_ws, "090-unknown.jsonl", {"id": "r1", "tool": "no-such-tool", "repo": "example-repo"})
    engine("run", "--drain", cwd=example_ws, check=1)
    proc = engine("requeue", "090-unknown.jsonl", cwd=example_ws, check=0)
    assert "requeued 090-unknown.jsonl from failed/" in proc.stdout
    assert (example_ws / ".tasks" / "inbox" / "090-unknown.jsonl").exists()
    assert (example_ws / ".tasks" / "failed" / "090-unknown.jsonl.error.json").exists()  # the history stays
    engine("run", "--drain", cwd=example_ws, check=1)  # fails again: a second report beside the first
    reports = sorted(p.name for p in (example_ws / ".tasks" / "failed").glob("*.error.json"))
    assert reports == ["090-unknown.1.jsonl.error.json", "090-unknown.jsonl.error.json"]
    moves = [e["record"] for e in ledger_entries(example_ws) if e["record"].get("status") == "requeued"]
    assert moves == [{"kind": "queue", "task_file": "090-unknown.jsonl", "transition": "failed->inbox",
                      "status": "requeued"}]
    engine("ledger", "verify", cwd=example_ws, check=0)
    proc = engine("requeue", "nope.jsonl", cwd=example_ws, check=2)
    assert "no file 'nope.jsonl' in failed/ or quarantine/" in proc.stderr
