"""The orchestration decisions, exercised through the real process on real repositories: retries, the
quality-gate tier and the gate's checks run at Verify, rollback, and the worktree a state change gets
(checkpoint, commit, publish)."""

import json
import subprocess
from pathlib import Path

import pytest

from engine.bundled import bundled
from tests.conftest import engine, install_test_plugin

# The shipped gate checks are validation plugins of plugins/ (ruff-checker, pytest-runner, ...). A test that
# runs them for real waits until they exist there; the others put stand-ins in their place (stand_in_checks).
needs_validation_plugins = pytest.mark.skipif(
    not (Path(bundled("plugins")) / "ruff-checker" / "plugin.spec.json").exists(),
    reason="the validation plugin ruff-checker is not in plugins/ yet: Verify would fail this task's gate with "
           "'no installed plugin ruff-checker' and roll it back")


@pytest.fixture
def ws(example_ws):
    for name in ("flaky", "scribbler"):  # scribbler is a state change: it gets a worktree (add_selection_rule)
        install_test_plugin(example_ws, name)
    for path in (example_ws / ".tasks" / "inbox").iterdir():  # only the tasks of each test
        path.unlink()
    return example_ws


def run_one(ws, task, expect_exit):
    task = {"repo": "example-repo", **task}
    (ws / ".tasks" / "inbox" / "t.jsonl").write_text(json.dumps(task) + "\n")
    engine("run", "--drain", cwd=ws, check=expect_exit)
    for folder in ("done", "failed", "quarantine"):
        path = ws / ".tasks" / folder / "t.jsonl"
        if path.exists():
            suffix = "error" if folder == "failed" else "result"
            report = json.loads((ws / ".tasks" / folder / f"t.jsonl.{suffix}.json").read_text())
            ledger = (ws / ".engine" / "ledger" / "ledger.jsonl").read_text().splitlines()
            steps = [json.loads(x)["record"] for x in ledger]
            steps = [r for r in steps if r.get("task_id") == task["id"] and r["kind"] == "step"]
            engine("ledger", "verify", cwd=ws, check=0)
            return folder, report, steps
    raise AssertionError("the task file went nowhere")


def decisions(steps, decision_id):
    return [s["decision"] for s in steps if s.get("decision", {}).get("id") == decision_id]


def step_ids(steps):
    return [s["step"] for s in steps]


def outputs(ws, task_id, step):
    """What the plugin of `step` returned (the run's recorded outputs, as replay reads them)."""
    found = []
    for path in (ws / ".engine" / "runs").glob("*/outputs.jsonl"):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if row["task_id"] == task_id and row["step"] == step and "output" in row:
                found.append(row["output"])
    return found


def git(repo, *args):
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def checkout_state(repo):
    """What the user sees of their checkout: status (untracked files too), HEAD, branch."""
    return (git(repo, "status", "--porcelain", "--untracked-files=all"), git(repo, "rev-parse", "HEAD"),
            git(repo, "symbolic-ref", "HEAD"))


STAND_IN = """\
def check(ctx, data):
    findings = ((data["task"].get("args") or {}).get("findings") or {}).get(CHECK, [])
    return {"verdict": {"check": CHECK, "passed": not findings, "skipped": False, "findings": findings,
                        "summary": f"{CHECK}: {len(data.get('files') or [])} file(s), {len(findings)} finding(s)"}}
"""


def stand_in_checks(ws):
    """A modeler's edit of the workspace: the gate checks are stand-ins, lint-stand-in for ruff-checker and
    test-stand-in for pytest-runner. Each passes, or fails with the findings task.args.findings[<its id>]."""
    for check in ("lint-stand-in", "test-stand-in"):
        folder = ws / "plugins" / check
        (folder / "src").mkdir(parents=True)
        (folder / "manifest.json").write_text(json.dumps({"id": check, "version": "1.0.0",
                                                          "entry_point": "src/check.py"}))
        (folder / "plugin.spec.json").write_text(json.dumps({
            "id": check, "version": "1.0.0", "category": "validation",
            "description": "Test stand-in for a validation plugin: a quality-gate check.",
            "operations": {"check": {"input_schema": {"type": "object", "required": ["task"]},
                                     "output_schema": {"type": "object", "required": ["verdict"]}}}}))
        (folder / "src" / "check.py").write_text(f"CHECK = {check!r}\n\n\n" + STAND_IN)
    dmn = ws / "process" / "decisions.dmn"
    text = dmn.read_text()
    assert '"ruff-checker"' in text and '"pytest-runner"' in text
    dmn.write_text(text.replace('"ruff-checker"', '"lint-stand-in"').replace('"pytest-runner"', '"test-stand-in"'))


def test_retry_with_backoff_then_success(ws):
    folder, report, steps = run_one(ws, {"id": "r1", "tool": "flaky", "args": {"fail_times": 2},
                                         "retry": {"max_retries": 3, "backoff_sec": 0.05}}, 0)
    assert folder == "done"
    retries = decisions(steps, "retry_policy")
    assert [r["result"] for r in retries] == [{"action": "retry", "backoff": 0.05}, {"action": "retry", "backoff": 0.1}]
    assert all(r["matched_rules"] for r in retries)
    executes = [s["status"] for s in steps if s["step"] == "Task_execute"]
    assert executes == ["error", "error", "completed"]
    assert step_ids(steps).count("Event_backoff") == 2


def test_retries_exhausted_go_to_quarantine(ws):
    folder, report, steps = run_one(ws, {"id": "r2", "tool": "flaky", "args": {"fail_times": 5},
                                         "retry": {"max_retries": 1, "backoff_sec": 0}}, 1)
    assert folder == "quarantine"
    assert [r["result"]["action"] for r in decisions(steps, "retry_policy")] == ["retry", "quarantine"]
    assert report["tasks"][0]["end_event"] == "EndEvent_retries_exhausted"
    assert "flaky failure 2" in report["reason"]


def test_not_retryable_fails_and_keeps_an_unchanged_tree(ws):
    folder, report, steps = run_one(ws, {"id": "r3", "tool": "flaky", "args": {"fail_times": 1, "retryable": False},
                                         "retry": {"max_retries": 3}}, 1)
    assert folder == "failed"
    assert [r["result"]["action"] for r in decisions(steps, "retry_policy")] == ["fail"]
    assert [r["result"] for r in decisions(steps, "rollback_trigger")] == ["keep"]
    assert report["tasks"][0]["end_event"] == "EndEvent_failed"


def test_no_retry_tag_fails_at_once(ws):
    folder, report, steps = run_one(ws, {"id": "r4", "tool": "flaky", "args": {"fail_times": 1}, "tags": ["no-retry"],
                                         "retry": {"max_retries": 3}}, 1)
    assert folder == "failed" and [r["result"]["action"] for r in decisions(steps, "retry_policy")] == ["fail"]


def test_an_open_circuit_breaker_sends_the_task_to_quarantine(ws):
    policy = "breaker:\n  failures: 2\n  window_sec: 600\n  cooldown_sec: 600\n"
    (ws / "policies" / "performance.yml").write_text(policy)
    folder, report, steps = run_one(ws, {"id": "cb", "tool": "flaky", "args": {"fail_times": 9},
                                         "retry": {"max_retries": 5, "backoff_sec": 0}}, 1)
    retries = decisions(steps, "retry_policy")
    assert [r["result"]["action"] for r in retries] == ["retry", "retry", "quarantine"]
    assert retries[-1]["matched_rules"] == ["retry_policy_breaker_open"]
    assert [s["error"]["code"] for s in steps if s["step"] == "Task_execute"][-1] == "engine.breaker_open"
    assert folder == "quarantine" and report["tasks"][0]["end_event"] == "EndEvent_retries_exhausted"


def test_read_only_task_is_tier_l0_and_done_without_a_worktree(ws):
    folder, report, steps = run_one(ws, {"id": "g0", "tool": "git"}, 0)
    assert folder == "done" and report["tasks"][0]["end_event"] == "EndEvent_done"
    assert [r["result"] for r in decisions(steps, "select_plugin")] == ["git-inspector"]
    assert [r["result"] for r in decisions(steps, "needs_worktree")] == [False]
    assert [r["result"] for r in decisions(steps, "gate_tier")] == ["L0"]
    assert [r["result"] for r in decisions(steps, "gate_checks")] == [[]]  # nothing changed: nothing to check
    [verified] = outputs(ws, "g0", "Task_verify")
    assert verified["gate"]["passed"] is True and verified["gate"]["verdicts"] == []
    assert [r["result"] for r in decisions(steps, "rollback_trigger")] == ["keep"]
    ran = step_ids(steps)
    assert "Task_policy_check" in ran and "Task_verify" in ran
    assert not {"Task_checkpoint", "Task_commit", "Task_publish", "Task_remove_worktree"} & set(ran)
    assert ran[-3:] == ["Gateway_record", "Task_commit_ledger", "EndEvent_done"]
    assert not (ws / ".engine" / "worktrees" / "g0").exists()


@needs_validation_plugins
def test_a_change_happens_in_its_own_worktree_and_its_quality_gate_runs(ws):
    repo = ws / "example-repo"
    before = checkout_state(repo)
    task = {"id": "g1", "tool": "scribbler", "args": {"files": {"a.txt": "1\n2\n3\n", "b.txt": "1\n2\n3\n"}}}
    folder, report, steps = run_one(ws, task, 0)
    assert folder == "done" and report["tasks"][0]["end_event"] == "EndEvent_done"
    assert [r["result"] for r in decisions(steps, "needs_worktree")] == [True]
    [made] = [o["worktree"] for o in outputs(ws, "g1", "Task_checkpoint")]
    assert made["branch"] == "engine/g1" and made["path"].endswith("/.engine/worktrees/g1")
    # measured against the task's first checkpoint: the user's own uncommitted edits are not the task's
    [measured] = [o["diff"] for o in outputs(ws, "g1", "Task_measure")]
    assert measured["base"].endswith(":worktree")
    assert sorted(f["path"] for f in measured["files"]) == [".scribbler-started", "a.txt", "b.txt"]
    # no Python file changed: the basic gate, whose one check is ruff; it runs, and passes
    [tier] = decisions(steps, "gate_tier")
    assert (tier["result"], tier["matched_rules"]) == ("L0", ["gate_tier_changed"])
    assert [r["result"] for r in decisions(steps, "gate_checks")] == [[{"check": "ruff-checker", "required": True}]]
    [verified] = outputs(ws, "g1", "Task_verify")
    assert verified["gate"]["passed"] is True
    assert [v["check"] for v in verified["gate"]["verdicts"]] == ["ruff-checker"]
    # committed on the task's branch, the worktree removed, the user's checkout untouched
    assert git(repo, "show", "engine/g1:a.txt") == "1\n2\n3\n"
    assert not (ws / ".engine" / "worktrees" / "g1").exists()
    assert checkout_state(repo) == before and not (repo / "a.txt").exists()


def test_critical_tag_raises_the_tier_and_with_nothing_changed_the_gate_has_nothing_to_check(ws):
    folder, report, steps = run_one(ws, {"id": "g2", "tool": "git", "tags": ["critical"]}, 0)
    assert [r["result"] for r in decisions(steps, "gate_tier")] == ["L0-L5"]
    assert [r["result"] for r in decisions(steps, "gate_checks")] == [[]]
    assert folder == "done" and report["tasks"][0]["end_event"] == "EndEvent_done"


def test_a_python_change_gets_lint_and_tests_and_when_they_pass_is_committed(ws):
    stand_in_checks(ws)
    repo = ws / "example-repo"
    task = {"id": "p1", "tool": "scribbler", "args": {"files": {"pkg/core.py": "def add(a, b):\n    return a + b\n"}}}
    folder, report, steps = run_one(ws, task, 0)
    assert folder == "done" and report["tasks"][0]["end_event"] == "EndEvent_done"
    [tier] = decisions(steps, "gate_tier")
    assert (tier["result"], tier["matched_rules"]) == ("L0-L3", ["gate_tier_python"])
    assert [r["result"] for r in decisions(steps, "gate_checks")] == [[
        {"check": "lint-stand-in", "required": True}, {"check": "test-stand-in", "required": True}]]
    [verified] = outputs(ws, "p1", "Task_verify")
    assert verified["gate"]["passed"] is True
    assert [v["check"] for v in verified["gate"]["verdicts"]] == ["lint-stand-in", "test-stand-in"]
    assert [r["result"] for r in decisions(steps, "rollback_trigger")] == ["keep"]
    ran = step_ids(steps)
    order = ["Task_execute", "Task_gate_tier", "Task_gate_checks", "Task_verify", "Task_rollback_trigger",
             "Task_commit", "Task_publish", "Task_remove_worktree"]
    assert [s for s in ran if s in order] == order
    assert "pkg/core.py" in git(repo, "show", "--name-only", "--format=", "engine/p1").split()


def test_a_failing_gate_rolls_the_change_back_and_fails_the_task_naming_the_failing_tests(ws):
    stand_in_checks(ws)
    repo = ws / "example-repo"
    before = checkout_state(repo)
    failing = [{"file": "tests/test_core.py", "message": "tests/test_core.py::test_add FAILED"},
               {"file": "tests/test_core.py", "message": "tests/test_core.py::test_sub FAILED"}]
    task = {"id": "p2", "tool": "scribbler", "args": {"files": {"pkg/core.py": "def add(a, b):\n    return a - b\n"},
                                                      "findings": {"test-stand-in": failing}}}
    folder, report, steps = run_one(ws, task, 1)
    assert folder == "failed" and report["tasks"][0]["end_event"] == "EndEvent_rollback"
    [verify] = [s for s in steps if s["step"] == "Task_verify"]
    assert verify["status"] == "error" and verify["error"]["code"] == "GATE_FAILED"
    [rollback] = decisions(steps, "rollback_trigger")
    assert (rollback["result"], rollback["matched_rules"]) == ("rollback", ["rollback_trigger_gates_failed"])
    assert "quality gate failed" in report["reason"] and "test-stand-in" in report["reason"]
    assert "tests/test_core.py::test_add" in report["reason"] and "tests/test_core.py::test_sub" in report["reason"]
    assert "lint-stand-in" not in report["reason"]  # it passed
    ran = step_ids(steps)
    assert "Task_rollback" in ran and not {"Task_commit", "Task_publish"} & set(ran)
    worktree = ws / ".engine" / "worktrees" / "p2"
    assert not (worktree / "pkg" / "core.py").exists()
    assert git(worktree, "status", "--porcelain", "--untracked-files=all") == ""
    assert git(repo, "rev-parse", "engine/p2") == before[1]  # nothing committed on the task's branch
    assert checkout_state(repo) == before


@needs_validation_plugins
def test_a_python_change_with_a_lint_finding_is_rolled_back_by_the_shipped_gate(ws):
    repo = ws / "example-repo"
    before = checkout_state(repo)
    task = {"id": "p3", "tool": "scribbler", "args": {"files": {"pkg/unused.py": "import os\n"}}}
    folder, report, steps = run_one(ws, task, 1)
    assert [r["result"] for r in decisions(steps, "gate_tier")] == ["L0-L3"]
    assert [r["result"] for r in decisions(steps, "gate_checks")] == [[
        {"check": "ruff-checker", "required": True}, {"check": "pytest-runner", "required": True}]]
    assert folder == "failed" and report["tasks"][0]["end_event"] == "EndEvent_rollback"
    assert "quality gate failed" in report["reason"] and "F401" in report["reason"], report["reason"]
    assert checkout_state(repo) == before


def test_large_successful_change_needs_manual_review(ws):
    stand_in_checks(ws)
    task = {"id": "b1", "tool": "scribbler", "args": {"files": {"big.txt": "line\n" * 600}}}
    folder, report, steps = run_one(ws, task, 1)
    [verified] = outputs(ws, "b1", "Task_verify")
    assert verified["gate"]["passed"] is True  # the gate passed: the size alone asks for a person
    assert [r["result"] for r in decisions(steps, "rollback_trigger")] == ["manual"]
    assert folder == "quarantine" and report["tasks"][0]["end_event"] == "EndEvent_review"


def test_failed_change_is_rolled_back_to_the_checkpoint(ws):
    repo = ws / "example-repo"
    before = checkout_state(repo)
    task = {"id": "b2", "tool": "scribbler", "args": {"files": {"half.txt": "1\n2\n3\n4\n5\n"}, "fail": True}}
    folder, report, steps = run_one(ws, task, 1)
    assert [r["result"] for r in decisions(steps, "rollback_trigger")] == ["rollback"]
    assert folder == "failed" and report["tasks"][0]["end_event"] == "EndEvent_rollback"
    assert "scribbler exited with code 1 after writing" in report["reason"]
    [rolled_back] = outputs(ws, "b2", "Task_rollback")
    assert rolled_back["rolled_back"].startswith("refs/engine/checkpoints/")
    worktree = ws / ".engine" / "worktrees" / "b2"
    assert not (worktree / "half.txt").exists() and not (worktree / ".scribbler-started").exists()
    assert git(worktree, "status", "--porcelain", "--untracked-files=all") == ""
    assert checkout_state(repo) == before


def test_an_l0_change_is_committed_on_its_branch_and_the_worktree_removed(ws):
    stand_in_checks(ws)
    repo = ws / "example-repo"
    before = checkout_state(repo)
    task = {"id": "c1", "tool": "scribbler", "tags": ["docs"], "args": {"files": {"docs/guide.md": "# Guide\n"}}}
    folder, report, steps = run_one(ws, task, 0)
    assert folder == "done" and report["tasks"][0]["end_event"] == "EndEvent_done"
    assert [r["result"] for r in decisions(steps, "gate_tier")] == ["L0"]  # no Python file: the basic gate
    assert [r["result"] for r in decisions(steps, "publish_change")] == ["keep"]
    ran = step_ids(steps)
    order = ["Task_checkpoint", "Task_execute", "Task_verify", "Task_commit", "Task_publish", "Task_remove_worktree",
             "Task_commit_ledger"]
    assert [s for s in ran if s in order] == order
    assert git(repo, "log", "-1", "--format=%s", "engine/c1").strip() == "engine: task c1"
    assert "docs/guide.md" in git(repo, "show", "--name-only", "--format=", "engine/c1").split()
    assert git(repo, "rev-parse", "engine/c1~1") == before[1]  # one commit on top of the user's HEAD
    assert not (ws / ".engine" / "worktrees" / "c1").exists()
    assert checkout_state(repo) == before


def test_merge_tag_hands_the_branch_to_a_person(ws):
    stand_in_checks(ws)
    repo = ws / "example-repo"
    before = checkout_state(repo)
    task = {"id": "m1", "tool": "scribbler", "tags": ["docs", "merge"], "args": {"files": {"docs/x.md": "x\n"}}}
    folder, report, steps = run_one(ws, task, 1)
    assert [r["result"] for r in decisions(steps, "publish_change")] == ["merge"]
    assert folder == "quarantine" and report["tasks"][0]["end_event"] == "EndEvent_merge_requested"
    assert "Task_remove_worktree" not in step_ids(steps)
    assert git(repo, "log", "-1", "--format=%s", "engine/m1").strip() == "engine: task m1"
    assert checkout_state(repo) == before  # the base branch is not touched: a person merges engine/m1


def test_a_value_outside_input_values_is_null_and_the_ledger_says_why(ws):
    from lxml import etree

    dmn = ws / "process" / "decisions.dmn"
    tree = etree.parse(str(dmn))
    ns = tree.getroot().nsmap[None]
    clause = tree.find(f".//{{{ns}}}decision[@id='select_plugin']//{{{ns}}}input")
    values = etree.SubElement(clause, f"{{{ns}}}inputValues", id="tools_allowed")
    etree.SubElement(values, f"{{{ns}}}text").text = '"git","parse","normalize","flaky","scribbler"'
    tree.write(str(dmn), xml_declaration=True, encoding="UTF-8")
    folder, report, steps = run_one(ws, {"id": "w1", "tool": "teleport"}, 1)
    assert folder == "failed" and report["tasks"][0]["end_event"] == "EndEvent_no_plugin"
    [selection] = decisions(steps, "select_plugin")
    assert selection["result"] is None and "not among its allowed values" in selection["warnings"][0]


def test_a_plugin_may_not_set_the_kernels_variables(ws):
    install_test_plugin(ws, "meddler")
    folder, report, steps = run_one(ws, {"id": "m1", "tool": "meddler"}, 1)
    assert folder == "failed" and report["tasks"][0]["end_event"] == "EndEvent_failed"
    assert "sets failures, which only the kernel sets" in report["reason"]


def test_a_timer_written_as_the_modelers_timer_tab_writes_it(ws):
    """`PT1S`, an ISO 8601 duration with no expression around it, is a duration, not a FEEL name."""
    bpmn = ws / "process" / "orchestration.bpmn"
    text = bpmn.read_text()
    old = 'duration("PT" + string(retry.backoff) + "S")'
    assert old in text
    bpmn.write_text(text.replace(old, "PT0.2S"))
    folder, report, steps = run_one(ws, {"id": "t1", "tool": "flaky", "args": {"fail_times": 1},
                                         "retry": {"max_retries": 1, "backoff_sec": 0}}, 0)
    assert folder == "done" and step_ids(steps).count("Event_backoff") == 1


def test_input_parameters_of_type_list_and_map_as_the_modeler_writes_them(ws):
    install_test_plugin(ws, "echo")
    bpmn = ws / "process" / "orchestration.bpmn"
    text = bpmn.read_text()
    old = '<camunda:outputParameter name="exit_code">'
    assert text.count(old) == 1
    bpmn.write_text(text.replace(old, (
        '<camunda:inputParameter name="options"><camunda:map>'
        '<camunda:entry key="mode">fast</camunda:entry>'
        '<camunda:entry key="tool">${task.tool}</camunda:entry>'
        '<camunda:entry key="steps"><camunda:list><camunda:value>lint</camunda:value>'
        '<camunda:value>${task.id}</camunda:value></camunda:list></camunda:entry>'
        '</camunda:map></camunda:inputParameter>') + old))
    engine("validate", cwd=ws, check=0)
    folder, report, steps = run_one(ws, {"id": "io1", "tool": "echo"}, 0)
    assert folder == "done"
    outputs = [json.loads(x) for p in (ws / ".engine" / "runs").glob("*/outputs.jsonl")
               for x in p.read_text().splitlines()]
    echoed = [o["output"]["echoed"] for o in outputs if o["plugin"] == "echo"][0]
    assert echoed == {"options": {"mode": "fast", "tool": "echo", "steps": ["lint", "io1"]}}
