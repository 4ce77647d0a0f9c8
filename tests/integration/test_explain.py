"""`engine explain TASK`: one task's story from the ledger, its decisions re-derived from the model its run
pinned (never the workspace's edited one)."""

import copy
import json
import shutil

import pytest

from engine.audit.explain import AGREES, CANNOT, DIFFERS, story
from tests.conftest import engine, install_test_plugin
from tests.integration.test_run import ledger_entries, put
from tests.unit.test_process_steps import modeler_rows


def explain_json(ws, *args, check=0):
    return json.loads(engine("explain", *args, "--json", cwd=ws, check=check).stdout)


def task_records(ws, task_id):
    return [e for e in ledger_entries(ws) if e["record"].get("task_id") == task_id]


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """The example workspace after `engine run --drain` (shared: the tests here only read it, or copy it)."""
    ws = tmp_path_factory.mktemp("explain") / "ws"
    engine("init", "--example", ws, check=0)
    engine("run", "--drain", cwd=ws, check=0)
    return ws


def test_the_story_is_the_tasks_ledger_entries_with_plugins_decisions_and_rows(ran):
    told = explain_json(ran, "inspect-status")
    records = task_records(ran, "inspect-status")
    steps = [e for e in records if e["record"]["kind"] == "step"]
    assert told["task_file"] == "001-inspect.jsonl" and told["line"] == 1
    assert told["runs"] == [records[0]["envelope"]["run_id"]]
    assert told["outcome"] == {"status": "done", "reason": None}
    assert [(s["seq"], s["step"], s["status"]) for s in told["steps"]] == [
        (e["seq"], e["record"]["step"], e["record"]["status"]) for e in steps]
    assert [s["duration_ms"] for s in told["steps"]] == [e["envelope"].get("duration_ms") for e in steps]
    assert {(p["id"], p["version"]) for p in told["plugins"]} == {
        (e["record"]["plugin"]["id"], e["record"]["plugin"]["version"]) for e in steps if "plugin" in e["record"]}
    git = [p for p in told["plugins"] if p["id"] == "git-inspector"][0]
    assert git["operations"] == ["status", "diff"]  # acquire and execute (status), measure (diff)

    decisions = [s for s in told["steps"] if "decision" in s]
    recorded = [e["record"]["decision"] for e in steps if "decision" in e["record"]]
    assert [d["decision"]["id"] for d in decisions] == [r["id"] for r in recorded] == [
        "select_plugin", "needs_worktree", "gate_tier", "gate_checks", "rollback_trigger"]
    for shown, kept in zip(decisions, recorded, strict=True):
        assert shown["decision"]["rules"] == kept["rules"] and shown["decision"]["result"] == kept["result"]
        assert shown["decision"]["inputs"] == kept["inputs"]
        assert shown["decision"]["rederived"] == {"verdict": AGREES, "reason": None}
        rows = modeler_rows(ran / "process" / "decisions.dmn", kept["id"])
        assert [(r["row"], r["annotation"]) for r in kept["rules"]] == [rows[r["id"]] for r in kept["rules"]]
    select = decisions[0]["decision"]
    assert select["inputs"] == {"Tool": "git", "Operation": None} and list(select["inputs"]) == ["Tool", "Operation"]
    assert select["rules"][0]["row"] == 2 and select["rules"][0]["outputs"] == {"plugin": "git-inspector"}
    assert told["rederivation"] == {AGREES: 5, DIFFERS: 0, CANNOT: 0} and told["differences"] == []

    text = engine("explain", "inspect-status", cwd=ran, check=0).stdout
    assert "task inspect-status: line 1 of 001-inspect.jsonl" in text and "outcome: done" in text
    assert "Task_execute 'Execute' (serviceTask) completed" in text and "git-inspector@0.1.0 status" in text
    annotation = rows_of(ran, "select_plugin", "select_plugin_git")[1]
    assert f'row 2 (select_plugin_git): {annotation} -> plugin = "git-inspector"' in text
    assert 'inputs: Tool = "git", Operation = null' in text
    assert "re-derived from the pinned model: agrees" in text
    assert "decisions re-derived from the pinned model: 5 agree, 0 differ, 0 cannot be re-derived" in text


def rows_of(ws, decision_id, rule_id):
    return modeler_rows(ws / "process" / "decisions.dmn", decision_id)[rule_id]


def test_an_unknown_task_is_refused_with_a_did_you_mean(ran):
    proc = engine("explain", "inspect-statu", cwd=ran, check=2)
    assert "no ledger entries for task 'inspect-statu'. Did you mean 'inspect-status'?" in proc.stderr


def test_after_decisions_dmn_is_edited_the_run_is_explained_and_re_derived_on_the_model_it_used(ran, tmp_path):
    ws = tmp_path / "ws"
    shutil.copytree(ran, ws, symlinks=True)
    dmn = ws / "process" / "decisions.dmn"
    annotation = rows_of(ws, "select_plugin", "select_plugin_git")[1]
    edited = dmn.read_text().replace(annotation, "edited after the run").replace('"git-inspector"', '"git-edited"')
    assert edited != dmn.read_text()
    dmn.write_text(edited)
    # the edited model gives another plugin: a re-derivation on it would differ
    decided = engine("decide", "select_plugin", "--input", "Tool=git", "--json", cwd=ws, check=0)
    assert json.loads(decided.stdout)["result"] == "git-edited"

    told = explain_json(ws, "inspect-status")
    select = [s["decision"] for s in told["steps"] if s.get("decision", {}).get("id") == "select_plugin"][0]
    assert select["result"] == "git-inspector" and select["rules"][0]["annotation"] == annotation
    assert select["rederived"] == {"verdict": AGREES, "reason": None}
    assert told["rederivation"][AGREES] == 5 and told["rederivation"][DIFFERS] == 0
    pinned = ws / ".engine" / "models" / f"dmn-{select['model']}.dmn"
    assert pinned.is_file() and annotation in pinned.read_text()
    text = engine("explain", "inspect-status", cwd=ws, check=0).stdout
    assert annotation in text and "edited after the run" not in text and "git-edited" not in text


def test_a_tampered_decision_result_is_reported_as_differing_naming_the_step(ran):
    entries = copy.deepcopy(ledger_entries(ran))
    target = [e for e in entries if e["record"].get("task_id") == "inspect-log"
              and e["record"].get("step") == "Task_select_plugin"][0]
    target["record"]["decision"]["result"] = "git-executor"
    told = story(entries, "inspect-log", ran / ".engine" / "models")
    assert told.rederivation == {AGREES: 4, DIFFERS: 1, CANNOT: 0}
    [difference] = told.differences
    assert difference["step"] == "Task_select_plugin" and difference["seq"] == target["seq"]
    assert difference["decision"] == "select_plugin"
    assert 'result recorded "git-executor", derived "git-inspector"' in difference["reason"]
    line = [x for x in told.lines() if "differs: step Task_select_plugin" in x]
    assert line and "'Select plugin'" in line[0] and "git-executor" in line[0]
    # the ledger itself is untouched: the CLI still finds every decision agreeing
    assert explain_json(ran, "inspect-log")["rederivation"][DIFFERS] == 0


def test_records_from_before_inputs_were_recorded_still_explain_without_rows(ran):
    entries = copy.deepcopy(ledger_entries(ran))
    for entry in entries:
        decision = entry["record"].get("decision")
        if decision is not None:
            for key in ("inputs", "rules", "hit_policy", "model", "context"):
                decision.pop(key, None)
    told = story(entries, "inspect-diff", ran / ".engine" / "models")
    assert told.rederivation == {AGREES: 0, DIFFERS: 0, CANNOT: 5}
    decisions = [s for s in told.steps if s.decision is not None]
    assert all("before decisions recorded their inputs" in s.rederived.reason for s in decisions)
    text = "\n".join(told.lines())
    assert "matched rules: select_plugin_git (recorded before rows were)" in text and "row " not in text


def test_a_task_id_in_two_files_is_refused_listing_both_then_picked_with_file(example_ws):
    for path in (example_ws / ".tasks" / "inbox").iterdir():
        path.unlink()
    task = {"id": "twice", "tool": "normalize", "repo": "example-repo"}
    put(example_ws, "100-a.jsonl", task)
    put(example_ws, "200-b.jsonl", {"id": "first", "tool": "normalize", "repo": "example-repo"}, task)
    engine("run", "--drain", cwd=example_ws, check=0)

    proc = engine("explain", "twice", cwd=example_ws, check=2)
    assert "task 'twice' ran 2 times; pick one with --file FILE" in proc.stderr
    assert "100-a.jsonl:1: run " in proc.stderr and "200-b.jsonl:2: run " in proc.stderr
    assert "engine explain twice --run run-" in proc.stderr and "--file 200-b.jsonl" in proc.stderr
    told = explain_json(example_ws, "twice", "--file", "200-b.jsonl")
    assert (told["task_file"], told["line"]) == ("200-b.jsonl", 2)
    assert [s["seq"] for s in told["steps"]] == [e["seq"] for e in task_records(example_ws, "twice")
                                                 if e["record"]["task_file"] == "200-b.jsonl"
                                                 and e["record"]["kind"] == "step"]

    # the same file run again (moved back into the inbox): one file, two runs, picked with --run
    done = example_ws / ".tasks" / "done" / "100-a.jsonl"
    done.rename(example_ws / ".tasks" / "inbox" / "100-a.jsonl")
    engine("run", "--drain", cwd=example_ws, check=0)
    proc = engine("explain", "twice", "--file", "100-a.jsonl", cwd=example_ws, check=2)
    assert "task 'twice' ran 2 times in file 100-a.jsonl; pick one with --run RUN" in proc.stderr
    runs = sorted({e["envelope"]["run_id"] for e in task_records(example_ws, "twice")
                   if e["record"]["task_file"] == "100-a.jsonl"})
    assert len(runs) == 2
    told = explain_json(example_ws, "twice", "--file", "100-a.jsonl", "--run", runs[1])
    assert told["runs"] == [runs[1]] and told["outcome"]["status"] == "done"
    engine("explain", "twice", "--run", "no-such-run", cwd=example_ws, check=2)


def test_retries_are_attempts_with_the_error_that_caused_them(example_ws):
    install_test_plugin(example_ws, "flaky")
    for path in (example_ws / ".tasks" / "inbox").iterdir():
        path.unlink()
    put(example_ws, "300-flaky.jsonl", {"id": "wobbly", "tool": "flaky", "repo": "example-repo",
                                        "args": {"fail_times": 1}, "retry": {"max_retries": 2, "backoff_sec": 0.05}})
    engine("run", "--drain", cwd=example_ws, check=0)
    told = explain_json(example_ws, "wobbly")
    executes = [s for s in told["steps"] if s["step"] == "Task_execute"]
    assert [(s["status"], s["attempt"]) for s in executes] == [("error", 1), ("completed", 2)]
    assert executes[0]["reason"] == "flaky failure 1" and executes[1]["after"] == "flaky failure 1"
    assert [(r["step"], r["attempt"], r["after"]) for r in told["retries"]] == [
        ("Task_execute", 2, "flaky failure 1")]
    retry = [s["decision"] for s in told["steps"] if s.get("decision", {}).get("id") == "retry_policy"][0]
    assert retry["result"] == {"action": "retry", "backoff": 0.05} and retry["rederived"]["verdict"] == AGREES
    assert retry["context"] == {"task.retry.backoff_sec": 0.05, "task.retry.max_retries": 2}
    text = engine("explain", "wobbly", cwd=example_ws, check=0).stdout
    assert "Task_execute 'Execute' (serviceTask) completed, attempt 2" in text
    assert "after: flaky failure 1" in text and "retry: Task_execute attempt 2, after: flaky failure 1" in text
    assert "flaky@" in text
