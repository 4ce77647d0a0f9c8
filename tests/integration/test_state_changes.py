"""State changes end to end through the shipped process: worktrees, checkpoints, rollback, recovery after a
kill, WhatIf, circuit breakers and confinement. Real git, the real `engine` command (or the in-process
kernel where a test needs its clock), a stand-in `aider` on PATH."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from lxml import etree

from engine.clock import FixedClock
from engine.safety.checkpoints import fingerprint
from engine.testing import KernelHarness
from tests.conftest import DATA, copy_plugin, engine, git
from tests.integration.test_run import files, ledger_entries, put

AIDER = r'''#!/usr/bin/env python3
"""Stand-in for aider: edits the files it is given as the prompt asks; "fail" in the prompt: exit 1."""
import sys
from pathlib import Path

args = sys.argv[1:]
Path(__file__).with_name("aider-started").write_text("yes")
prompt = Path(args[args.index("--message-file") + 1]).read_text()
for name in args[args.index("--") + 1:]:
    path = Path(name)
    if "subtract" in prompt:  # a plausible edit that breaks the code's tests
        path.write_text(path.read_text().replace("a + b", "a - b"))
    else:
        path.write_text((path.read_text() if path.exists() else "") + f"# {prompt.strip()}\n")
if "fail" in prompt:
    Path("litter.tmp").write_text("half done\n")
    sys.exit(1)
'''




def whole(repo: Path) -> dict[str, str]:
    """Every file under the repository, .git included: byte-identical means this is equal."""
    import hashlib

    return {str(p.relative_to(repo)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(repo.rglob("*")) if p.is_file() and not p.is_symlink()}


def user_view(repo: Path):
    return (git(repo, "status", "--porcelain", "--ignored"), fingerprint(repo), git(repo, "rev-parse", "HEAD"),
            git(repo, "symbolic-ref", "HEAD"))


def stand_in(tmp_path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    tool = bin_dir / "aider"
    tool.write_text(AIDER)
    tool.chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}"}


def add_rule(dmn: Path, decision: str, entries: list[str], output: str) -> None:
    """Append a rule to a decision table of the workspace's DMN (one entry per input column)."""
    tree = etree.parse(str(dmn))
    ns = {"d": tree.getroot().nsmap[None]}
    table = tree.find(f".//d:decision[@id='{decision}']/d:decisionTable", ns)
    n = len(table.findall("d:input", ns))
    rule = etree.Element(f"{{{ns['d']}}}rule", id=f"test_{decision}_{len(table)}")
    for i, text in enumerate((entries + ["-"] * n)[:n]):
        entry = etree.SubElement(rule, f"{{{ns['d']}}}inputEntry", id=f"test_{decision}_{len(table)}_in{i}")
        etree.SubElement(entry, f"{{{ns['d']}}}text").text = text
    out = etree.SubElement(rule, f"{{{ns['d']}}}outputEntry", id=f"test_{decision}_{len(table)}_out")
    etree.SubElement(out, f"{{{ns['d']}}}text").text = output
    rules = table.findall("d:rule", ns)
    rules[0].addprevious(rule)  # first, so it wins under FIRST and does not overlap under UNIQUE
    tree.write(str(dmn), xml_declaration=True, encoding="UTF-8")


def install_scribbler(ws: Path) -> None:
    copy_plugin("scribbler", ws)
    dmn = ws / "process" / "decisions.dmn"
    add_rule(dmn, "select_plugin", ['"scribble"'], '"scribbler"')
    add_rule(dmn, "needs_worktree", ['"scribbler"'], "true")


def kill_mid_apply(ws: Path, task_id: str) -> Path:
    """Start `engine run --drain`, SIGKILL it once the scribbler of ``task_id`` has written and hangs;
    returns the task's worktree."""
    worktree = ws / ".engine" / "worktrees" / task_id
    env = {k: v for k, v in os.environ.items() if k not in ("ENGINE_WORKSPACE", "ENGINE_PLUGIN_PATH")}
    kernel = subprocess.Popen([sys.executable, "-m", "engine", "run", "--drain"], cwd=ws, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (worktree / ".scribbler-started").exists():
        time.sleep(0.05)
    assert (worktree / ".scribbler-started").exists(), "the apply never started"
    os.kill(kernel.pid, signal.SIGKILL)
    kernel.wait()
    return worktree


def python_repo(ws: Path) -> Path:
    repo = ws / "py-repo"
    (repo / "pkg").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / "pkg" / "__init__.py").write_text("")
    (repo / "pkg" / "core.py").write_text("def add(a, b):\n    return a + b\n")
    (repo / "tests").mkdir()
    (repo / "tests" / "test_core.py").write_text("from pkg.core import add\n\n\ndef test_add():\n"
                                                 "    assert add(2, 3) == 5\n")
    (repo / ".gitignore").write_text("__pycache__/\n")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "start")
    (repo / "notes.txt").write_text("the user's own uncommitted notes\n")
    return repo


def test_an_ai_edit_is_committed_on_the_task_branch_and_the_users_checkout_stays_clean(example_ws, tmp_path):
    repo = python_repo(example_ws)
    before = user_view(repo)
    put(example_ws, "100-edit.jsonl", {"id": "edit-1", "tool": "aider", "repo": "py-repo", "files": ["pkg/core.py"],
                                       "prompt": "add a docstring"})
    engine("run", "--drain", cwd=example_ws, env=stand_in(tmp_path), check=0)
    # a .py change: tier L0-L3, ruff and pytest ran on the worktree and passed; then it was committed
    report = json.loads((example_ws / ".tasks" / "done" / "100-edit.jsonl.result.json").read_text())
    assert report["tasks"][0]["end_event"] == "EndEvent_done"
    assert not (example_ws / ".engine" / "worktrees" / "edit-1").exists()
    assert user_view(repo) == before  # the user's files, index, HEAD and branch are as they were
    assert git(repo, "log", "-1", "--format=%s", "engine/edit-1").strip() == "engine: task edit-1"
    assert "# add a docstring" in git(repo, "show", "engine/edit-1:pkg/core.py")
    assert git(repo, "diff", "--name-only", "main", "engine/edit-1").split() == ["pkg/core.py"]
    steps = [e["record"].get("step") for e in ledger_entries(example_ws) if e["record"].get("task_id") == "edit-1"]
    assert steps.index("Task_checkpoint") < steps.index("Task_execute") < steps.index("Task_verify") \
        < steps.index("Task_commit")
    engine("ledger", "verify", cwd=example_ws, check=0)


def test_a_tool_that_fails_midway_is_rolled_back_exactly(example_ws, tmp_path):
    repo = python_repo(example_ws)
    before = user_view(repo)
    put(example_ws, "100-fail.jsonl", {"id": "edit-2", "tool": "aider", "repo": "py-repo", "files": ["pkg/core.py"],
                                       "prompt": "fail halfway"})
    engine("run", "--drain", cwd=example_ws, env=stand_in(tmp_path), check=1)
    report = json.loads((example_ws / ".tasks" / "failed" / "100-fail.jsonl.error.json").read_text())
    assert report["tasks"][0]["end_event"] == "EndEvent_rollback", report
    worktree = example_ws / ".engine" / "worktrees" / "edit-2"
    assert worktree.is_dir()  # kept for inspection, restored to where the task started
    assert git(worktree, "status", "--porcelain", "--ignored") == ""
    assert fingerprint(worktree) == {p: h for p, h in fingerprint(repo).items() if p != "notes.txt"}
    assert user_view(repo) == before
    status = json.loads(engine("status", "--json", cwd=example_ws, check=0).stdout)
    assert [w["task_id"] for w in status["worktrees"]] == ["edit-2"]
    engine("worktrees", "prune", "--older-than", "0", cwd=example_ws, check=0)
    assert not worktree.exists()


def test_whatif_plans_everything_and_changes_nothing(example_ws, tmp_path):
    repo = python_repo(example_ws)
    put(example_ws, "100-edit.jsonl", {"id": "edit-3", "tool": "aider", "repo": "py-repo", "files": ["pkg/core.py"],
                                       "prompt": "add a docstring"})
    put(example_ws, "101-commit.jsonl", {"id": "commit-1", "tool": "git", "repo": "py-repo",
                                         "args": {"operation": "commit", "message": "notes"}})
    inbox = sorted(files(example_ws, "inbox"))
    before = whole(repo)
    env = stand_in(tmp_path)
    proc = engine("run", "--drain", "--whatif", cwd=example_ws, env=env, check=0)
    assert whole(repo) == before  # byte-identical, .git included: no worktree, ref or object
    assert not (tmp_path / "bin" / "aider-started").exists()  # the AI tool never started
    assert sorted(files(example_ws, "inbox")) == inbox and files(example_ws, "processing") == []
    assert "would run aider" in proc.stdout and "modify  pkg/core.py" in proc.stdout
    assert "would make the worktree" in proc.stdout
    assert not (example_ws / ".engine" / "ledger" / "ledger.jsonl").exists()  # plans are not the real ledger
    assert list((example_ws / ".engine" / "whatif").glob("*/plans.jsonl"))

    # the real run then does what the plan said
    engine("run", "--drain", cwd=example_ws, env=env, check=0)
    planned = [json.loads(x) for x in next((example_ws / ".engine" / "whatif").glob("*/plans.jsonl")).read_text()
               .splitlines()]
    edit_plan = [p["output"]["plan"] for p in planned if p["plugin"] == "aider-executor"][0]
    applied = git(repo, "diff", "--name-only", "main", "engine/edit-3").split()
    assert [c["path"] for c in edit_plan["changes"]] == applied


def test_a_kernel_killed_mid_apply_rolls_the_worktree_back_before_new_work(example_ws):
    install_scribbler(example_ws)
    put(example_ws, "100-hang.jsonl", {"id": "hang-1", "tool": "scribble", "repo": "example-repo",
                                       "args": {"files": {"app.py": "clobbered\n", "new.txt": "x\n"}, "hang": 60}})
    worktree = kill_mid_apply(example_ws, "hang-1")
    assert (worktree / "new.txt").exists()  # the half-done change is there

    # the next start settles it first; the file then runs again (the scribbler hangs only once), and its
    # change fails the quality gate (app.py is no longer valid Python), so it ends rolled back
    engine("run", "--drain", cwd=example_ws, check=1, timeout=120)
    entries = ledger_entries(example_ws)
    safety = [i for i, e in enumerate(entries) if e["record"]["kind"] == "safety"]
    assert len(safety) == 1 and entries[safety[0]]["record"]["status"] == "rolled_back"
    restart = [i for i, e in enumerate(entries) if e["record"].get("status") == "recovered"]
    assert safety[0] < restart[0]  # rolled back before the file was taken up again
    engine("ledger", "verify", cwd=example_ws, check=0)


def test_a_failing_plugin_opens_its_breaker_which_survives_a_restart_and_closes_after_a_probe(tmp_path):
    clock = FixedClock()
    harness = KernelHarness(tmp_path / "ws", clock=clock)
    (harness.root / "policies" / "performance.yml").write_text(
        "breaker:\n  failures: 2\n  window_sec: 100000\n  cooldown_sec: 3600\n")
    harness.add_plugin(DATA / "plugins" / "flaky")
    add_rule(harness.root / "process" / "decisions.dmn", "select_plugin", ['"flaky"'], '"flaky"')
    for i in range(3):
        harness.put(f"10{i}-flaky.jsonl", {"id": f"f{i}", "tool": "flaky", "repo": "example-repo",
                                           "args": {"fail_times": 2, "retryable": False}})
    harness.run()
    assert harness.files("failed") == ["100-flaky.jsonl", "101-flaky.jsonl"]
    assert harness.files("quarantine") == ["102-flaky.jsonl"]  # the breaker opened: the plugin was not called
    assert "circuit breaker of plugin flaky is open" in harness.report("quarantine", "102-flaky.jsonl")["reason"]
    assert json.loads((harness.root / ".engine" / "state" / "breakers.json").read_text())["flaky"]["state"] == "open"
    status = json.loads(engine("status", "--json", cwd=harness.root, check=0).stdout)
    assert "flaky" in status["breakers"]  # (status reads the wall clock: by it, the cool-down is long over)

    clock.advance(3601)  # past the cool-down; every harness.run() is a new kernel reading the persisted state
    harness.put("103-flaky.jsonl", {"id": "f3", "tool": "flaky", "repo": "example-repo"})
    harness.run()
    assert "103-flaky.jsonl" in harness.files("done")  # the half-open probe succeeded
    assert json.loads((harness.root / ".engine" / "state" / "breakers.json").read_text())["flaky"]["state"] == "closed"


def test_path_escapes_fail_before_any_plugin_runs(example_ws, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim.txt"
    victim.write_text("keep me\n")
    (example_ws / "link").symlink_to(outside)
    put(example_ws, "100-abs.jsonl", {"id": "e1", "tool": "git", "repo": str(outside)})
    put(example_ws, "101-up.jsonl", {"id": "e2", "tool": "git", "repo": "../outside"})
    put(example_ws, "102-link.jsonl", {"id": "e3", "tool": "git", "repo": "link"})
    put(example_ws, "103-file-abs.jsonl", {"id": "e4", "tool": "git", "repo": "example-repo", "files": [str(victim)]})
    put(example_ws, "104-file-up.jsonl", {"id": "e5", "tool": "git", "repo": "example-repo",
                                          "files": ["../../outside/victim.txt"]})
    put(example_ws, "105-option.jsonl", {"id": "e6", "tool": "git", "repo": "example-repo",
                                         "args": {"operation": "diff", "base": f"--output={victim}"}})
    engine("run", "--drain", cwd=example_ws, check=1)
    reasons = {name: json.loads((example_ws / ".tasks" / "failed" / f"{name}.error.json").read_text())["reason"]
               for name in ("100-abs.jsonl", "101-up.jsonl", "102-link.jsonl", "103-file-abs.jsonl",
                            "104-file-up.jsonl", "105-option.jsonl")}
    for name in ("100-abs.jsonl", "101-up.jsonl", "102-link.jsonl"):
        assert "task field repo" in reasons[name] and "outside the workspace" in reasons[name]
    for name in ("103-file-abs.jsonl", "104-file-up.jsonl"):
        assert "task field files[0]" in reasons[name] and "outside the task's repository" in reasons[name]
    assert "$.task.args.base" in reasons["105-option.jsonl"] and "does not match '^[^-]'" in reasons["105-option.jsonl"]
    option = [e["record"] for e in ledger_entries(example_ws)
              if e["record"].get("task_id") == "e6" and e["record"].get("step") == "Task_execute"][0]
    assert option["error"]["code"] == "engine.contract"  # refused by the kernel's input check: the plugin never ran
    assert victim.read_text() == "keep me\n"
    plugin_steps = [e["record"] for e in ledger_entries(example_ws)
                    if e["record"].get("task_id") in ("e1", "e2", "e3", "e4", "e5") and e["record"].get("plugin")]
    assert plugin_steps == []


def test_after_a_kill_a_manual_decision_quarantines_the_task_and_leaves_the_worktree(example_ws):
    install_scribbler(example_ws)
    dmn = example_ws / "process" / "decisions.dmn"
    tree = etree.parse(str(dmn))
    ns = {"d": tree.getroot().nsmap[None]}
    for text in tree.findall(".//d:decision[@id='rollback_trigger']//d:outputEntry/d:text", ns):
        if text.text == '"rollback"':
            text.text = '"manual"'  # this workspace's modeler wants a person to look at failed changes
    tree.write(str(dmn), xml_declaration=True, encoding="UTF-8")
    put(example_ws, "100-hang.jsonl", {"id": "hang-2", "tool": "scribble", "repo": "example-repo",
                                       "args": {"files": {"new.txt": "x\n"}, "hang": 60}})
    worktree = kill_mid_apply(example_ws, "hang-2")
    engine("run", "--drain", cwd=example_ws, check=1, timeout=120)
    report = json.loads((example_ws / ".tasks" / "quarantine" / "100-hang.jsonl.result.json").read_text())
    assert "cut off by a crash" not in report["reason"] and "'manual'" in report["reason"], report["reason"]
    assert (worktree / "new.txt").exists()  # left as the crash left it, for the person to look at
    safety = [e["record"] for e in ledger_entries(example_ws) if e["record"]["kind"] == "safety"]
    assert [s["status"] for s in safety] == ["quarantined"]
    engine("ledger", "verify", cwd=example_ws, check=0)


def test_the_circuit_breaker_plugin_tells_the_process_a_breakers_state(tmp_path):
    from datetime import UTC, datetime

    import structlog

    from engine.errors import PluginError
    from engine.plugins.dispatch import dispatch
    from engine.sdk import Context
    from engine.workspace import Workspace

    harness = KernelHarness(tmp_path / "ws")
    state = harness.root / ".engine" / "state" / "breakers.json"
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps({"aider-executor": {"state": "open", "failures": ["x"] * 5, "reason": "boom",
                                                    "opened_at": datetime.now(UTC).isoformat()}}))
    from engine.kernel import load_registry

    plugin = load_registry(Workspace(harness.root)).get("circuit-breaker")
    assert plugin is not None and plugin.origin == "builtin"
    ctx = Context("run", "t", datetime(2026, 1, 1, tzinfo=UTC), 1, False, harness.root, structlog.get_logger(),
                  workspace=harness.root)
    task = {"id": "t", "tool": "x"}
    assert dispatch(plugin, "state", ctx, {"task": task, "plugin": "aider-executor"})["breaker"] == {
        "plugin": "aider-executor", "state": "open", "failures": 5}
    assert dispatch(plugin, "state", ctx, {"task": task, "plugin": "git-executor"})["breaker"]["state"] == "closed"
    try:
        dispatch(plugin, "state", ctx, {"task": task})
    except PluginError as e:
        assert "needs the input 'plugin'" in e.message
    else:
        raise AssertionError("a call without a plugin must fail")


def test_a_change_tagged_merge_is_merged_into_a_clean_base_and_refused_over_a_dirty_one(example_ws, tmp_path):
    install_scribbler(example_ws)
    add_rule(example_ws / "process" / "decisions.dmn", "gate_tier", [], '"L0"')  # this modeler needs no gates
    repo = example_ws / "example-repo"
    git(repo, "stash", "-q")  # the example's uncommitted edit put aside: main is clean
    put(example_ws, "100-merge.jsonl", {"id": "m1", "tool": "scribble", "repo": "example-repo", "tags": ["merge"],
                                        "args": {"files": {"added.txt": "from the task\n"}}})
    engine("run", "--drain", cwd=example_ws, check=0)
    assert git(repo, "status", "--porcelain") == "" and (repo / "added.txt").read_text() == "from the task\n"
    assert git(repo, "log", "-1", "--format=%s", "main").strip() == "engine: task m1"
    assert not (example_ws / ".engine" / "worktrees" / "m1").exists()

    git(repo, "stash", "pop", "-q")  # the user's uncommitted edit is back: no merge under it
    before = user_view(repo)
    put(example_ws, "101-merge.jsonl", {"id": "m2", "tool": "scribble", "repo": "example-repo", "tags": ["merge"],
                                        "args": {"files": {"second.txt": "x\n"}}})
    engine("run", "--drain", cwd=example_ws, check=1)
    report = json.loads((example_ws / ".tasks" / "quarantine" / "101-merge.jsonl.result.json").read_text())
    assert report["tasks"][0]["end_event"] == "EndEvent_merge_requested"
    assert "uncommitted changes" in report["reason"]
    assert user_view(repo) == before and "second.txt" in git(repo, "show", "--name-only", "engine/m2")


def test_whatif_foretells_a_missing_tool(example_ws):
    python_repo(example_ws)
    put(example_ws, "100-edit.jsonl", {"id": "edit-9", "tool": "aider", "repo": "py-repo", "files": ["pkg/core.py"],
                                       "prompt": "add a docstring"})
    path = ":".join(p for p in os.environ["PATH"].split(":") if not (Path(p) / "aider").exists())
    proc = engine("run", "--whatif", cwd=example_ws, env={"PATH": path}, check=0)
    assert "would be failed     100-edit.jsonl" in proc.stdout
    steps = [json.loads(x)["record"] for x in next((example_ws / ".engine" / "whatif").glob("*/ledger.jsonl"))
             .read_text().splitlines()]
    execute = [s for s in steps if s.get("step") == "Task_execute" and s["task_id"] == "edit-9"][0]
    assert "aider not found on PATH" in execute["reason"]


def test_an_ai_edit_that_breaks_a_test_fails_naming_it_and_is_never_committed(example_ws, tmp_path):
    repo = python_repo(example_ws)
    before = user_view(repo)
    put(example_ws, "100-break.jsonl", {"id": "edit-5", "tool": "aider", "repo": "py-repo",
                                        "files": ["pkg/core.py"], "prompt": "subtract instead"})
    engine("run", "--drain", cwd=example_ws, env=stand_in(tmp_path), check=1)
    report = json.loads((example_ws / ".tasks" / "failed" / "100-break.jsonl.error.json").read_text())
    assert report["tasks"][0]["end_event"] == "EndEvent_rollback"
    assert "quality gate failed" in report["reason"] and "tests/test_core.py::test_add" in report["reason"]
    assert git(repo, "rev-parse", "engine/edit-5").strip() == git(repo, "rev-parse", "main").strip()  # no commit
    assert git(repo, "branch", "--contains", git(repo, "rev-parse", "main").strip()).count("\n") >= 1
    worktree = example_ws / ".engine" / "worktrees" / "edit-5"
    assert git(worktree, "status", "--porcelain") == ""  # rolled back
    assert user_view(repo) == before


def test_a_change_that_writes_a_secret_is_denied_by_policy_and_rolled_back(example_ws):
    install_scribbler(example_ws)
    token = "ghp_" + "Z9y8X7w6" * 5
    # the token is nowhere in the task: the plugin joins the parts when it writes the file
    put(example_ws, "100-leak.jsonl", {"id": "leak-1", "tool": "scribble", "repo": "example-repo",
                                       "args": {"files": {"config.txt": ["token: ", token[:4], token[4:], "\n"]}}})
    engine("run", "--drain", cwd=example_ws, check=1)
    report = json.loads((example_ws / ".tasks" / "failed" / "100-leak.jsonl.error.json").read_text())
    assert "denied by policy" in report["reason"] and "security" in report["reason"]
    assert report["tasks"][0]["end_event"] == "EndEvent_rollback"
    worktree = example_ws / ".engine" / "worktrees" / "leak-1"
    assert not (worktree / "config.txt").exists()  # the change was rolled back
    for folder in (example_ws / ".engine", example_ws / ".tasks" / "failed"):
        for file in folder.rglob("*"):
            if file.is_file() and file.name != "100-leak.jsonl" and ".git" not in file.parts:
                assert token not in file.read_text(errors="replace"), file


def test_the_sbom_check_of_the_gate_denies_a_package_the_workspace_policy_forbids(example_ws):
    repo = python_repo(example_ws)
    (repo / "requirements.txt").write_text("requests==2.31.0\nleftpad==1.0\n")
    git(repo, "add", "requirements.txt")
    git(repo, "commit", "-q", "-m", "deps")
    (example_ws / "engine.toml").write_text('[policy]\ndeny_packages = ["leftpad"]\n')
    add_rule(example_ws / "process" / "decisions.dmn", "gate_tier", [], '"L0-L5"')  # every check, SBOM included
    put(example_ws, "100-write.jsonl", {"id": "w1", "tool": "write", "repo": "py-repo", "args": {"files": [
        {"path": "pkg/core.py", "content": "def add(a, b):\n    return a + b  # same behaviour\n"}]}})
    engine("run", "--drain", cwd=example_ws, check=1)
    report = json.loads((example_ws / ".tasks" / "failed" / "100-write.jsonl.error.json").read_text())
    assert "sbom-generator" in report["reason"] and "leftpad" in report["reason"]
    assert report["tasks"][0]["end_event"] == "EndEvent_rollback"
    assert git(repo, "rev-parse", "engine/w1").strip() == git(repo, "rev-parse", "main").strip()  # not committed


def test_a_clean_change_passes_every_tier_and_is_committed(example_ws):
    repo = python_repo(example_ws)
    add_rule(example_ws / "process" / "decisions.dmn", "gate_tier", [], '"L0-L5"')
    put(example_ws, "100-write.jsonl", {"id": "w2", "tool": "write", "repo": "py-repo", "args": {"files": [
        {"path": "pkg/core.py", "content": "def add(a, b):\n    return a + b  # same behaviour\n"}]}})
    engine("run", "--drain", cwd=example_ws, check=0)
    verify = [e for e in ledger_entries(example_ws) if e["record"].get("task_id") == "w2"
              and e["record"].get("step") == "Task_gate_checks"][0]
    assert [c["check"] for c in verify["record"]["decision"]["result"]] == [
        "ruff-checker", "pytest-runner", "pester-runner", "sbom-generator"]
    assert "same behaviour" in git(repo, "show", "engine/w2:pkg/core.py")
    gate = json.loads((example_ws / ".tasks" / "done" / "100-write.jsonl.result.json").read_text())["tasks"][0]["gate"]
    assert gate["passed"] and [v["check"] for v in gate["verdicts"]] == [
        "ruff-checker", "pytest-runner", "pester-runner", "sbom-generator"]
    pester = gate["verdicts"][2]
    assert pester["skipped"] and not pester["required"]  # no pwsh here: skipped, which this tier allows
    assert gate["artifacts"]["sbom-generator"]["sbom"]["bomFormat"] == "CycloneDX"  # kept with the report


def test_a_ledger_that_does_not_verify_stops_the_run_before_anything_is_claimed(example_ws):
    engine("run", "--drain", cwd=example_ws, check=0)
    ledger = example_ws / ".engine" / "ledger" / "ledger.jsonl"
    rows = ledger.read_text().splitlines()
    entry = json.loads(rows[3])
    entry["record"]["status"] = "forged"
    rows[3] = json.dumps(entry)
    ledger.write_text("\n".join(rows) + "\n")
    put(example_ws, "200-next.jsonl", {"id": "n1", "tool": "git", "repo": "example-repo"})
    proc = engine("run", "--drain", cwd=example_ws, check=8)
    assert "the ledger does not verify" in proc.stderr and "compliance" in proc.stderr
    assert files(example_ws, "inbox") == ["200-next.jsonl"]
