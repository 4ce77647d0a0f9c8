"""The AI editor plugins (aider, Claude Code, codex) against real git repositories, through the real loader,
worker pool and dispatch. The tools themselves cannot exist here: a stand-in executable of each name, put
first on the workers' PATH, checks the command line it is given, records the call and edits files the
way the real tool would."""

import json
import os
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import structlog

from engine.bundled import bundled
from engine.errors import PluginError
from engine.plugins.dispatch import Dispatcher
from engine.plugins.loader import Registry
from engine.plugins.pool import WorkerPool
from engine.sdk import Context, run_tool
from tests.conftest import git
from tests.conftest import tree_snapshot as snapshot

REGISTRY = Registry.discover([bundled("plugins")])
PLUGINS = {"aider": "aider-executor", "claude": "claude-executor", "codex": "codex-executor"}
TOOLS = list(PLUGINS)

STAND_IN = r'''
import json, os, re, sys, time
from pathlib import Path

name, args = Path(sys.argv[0]).name, sys.argv[1:]
call = {"tool": name, "argv": args, "cwd": os.getcwd(), "pid": os.getpid()}
if name == "aider":
    for required in ("--no-auto-commits", "--yes-always", "--no-git", "--no-pretty", "--no-stream"):
        assert required in args, f"aider stand-in: {required} missing from {args}"
    call["message_file"] = args[args.index("--message-file") + 1]
    prompt = Path(call["message_file"]).read_text()
    files = args[args.index("--") + 1:]
elif name == "claude":
    assert args[0] == "-p" and args[args.index("--output-format") + 1] == "text", args
    call["mode"] = args[args.index("--permission-mode") + 1]
    assert call["mode"] in ("acceptEdits", "plan"), args
    prompt = sys.stdin.read()
    files = sorted(set(re.findall(r"[\w./-]+\.txt", prompt)))
else:
    assert args[:5] == ["exec", "--sandbox", "workspace-write", "--color", "never"] and args[-1] == "-", args
    prompt = sys.stdin.read()
    files = sorted(set(re.findall(r"[\w./-]+\.txt", prompt)))
call["prompt"] = prompt
with open(Path(__file__).resolve().parent.parent / "calls.jsonl", "a") as log:
    log.write(json.dumps(call) + "\n")
if "sleep" in prompt:
    time.sleep(60)
if "fail" in prompt:
    Path("partial.txt").write_text("half done\n")
    print("working on it")
    print(f"{name}: the model gave up", file=sys.stderr)
    sys.exit(1)
if call.get("mode") == "plan":
    print("1. add a line to notes.txt")
    sys.exit(0)
for f in files:
    if f"delete {f}" in prompt:
        os.remove(f)
        continue
    with open(f, "a") as out:
        out.write(f"{name}: {prompt.splitlines()[0]}\n")
    print(f"Applied edit to {f}")
'''






@pytest.fixture(scope="module")
def tools(tmp_path_factory):
    """A bin/ of stand-ins and a dispatcher whose workers have it first on PATH (workers get the PATH their
    pool was made with)."""
    root = tmp_path_factory.mktemp("tools")
    (root / "bin").mkdir()
    for name in TOOLS:
        script = root / "bin" / name
        script.write_text(f"#!{sys.executable}\n{STAND_IN}")
        script.chmod(0o755)
    pool = WorkerPool(root, environ={**os.environ, "PATH": f"{root / 'bin'}:{os.environ['PATH']}"})
    yield root, Dispatcher(pool)
    pool.close()


@pytest.fixture
def calls(tools):
    log = tools[0] / "calls.jsonl"
    log.unlink(missing_ok=True)
    return lambda: [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture
def repo(tmp_path):
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    (path / "notes.txt").write_text("one\n")
    (path / "old.txt").write_text("old\n")
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "first")
    return path


def call(dispatcher, tool, workdir, task, *, whatif=False, operation=None, task_timeout=None):
    plugin = REGISTRY.get(PLUGINS[tool])
    ctx = Context("run-1", "t1", datetime(2026, 1, 1, tzinfo=UTC), 7, whatif, workdir, structlog.get_logger())
    return dispatcher.call(plugin, operation, ctx, {"task": {"id": "t1", "tool": tool, **task}},
                           task_timeout=task_timeout)


def test_the_plugins_load():
    assert not REGISTRY.errors_of("aider-executor") + REGISTRY.errors_of("claude-executor") + \
        REGISTRY.errors_of("codex-executor")


@pytest.mark.parametrize("tool", TOOLS)
def test_apply_edits_the_files_and_reports_what_changed(tools, calls, repo, tool):
    task = {"prompt": "add a line to notes.txt\nkeep it short", "files": ["notes.txt", "new.txt"],
            "flags": ["--model=gpt-x"]}
    out = call(tools[1], tool, repo, task)
    assert out["applied"]["changes"] == [{"path": "new.txt", "action": "create"},
                                         {"path": "notes.txt", "action": "modify"}]
    assert out["applied"]["diff_lines"] == 2 and out["applied"]["exit_code"] == 0
    assert "Applied edit to notes.txt" in out["applied"]["output"]
    assert (repo / "notes.txt").read_text() == f"one\n{tool}: add a line to notes.txt\n"
    assert out["plan"]["changes"] == [{"path": "notes.txt", "action": "modify"},
                                      {"path": "new.txt", "action": "create"}]
    assert out["plan"]["commands"][0][0] == tool and "--model=gpt-x" in out["plan"]["commands"][0]
    [recorded] = calls()
    assert recorded["cwd"] == str(repo) and "--model=gpt-x" in recorded["argv"]
    assert recorded["prompt"].startswith("add a line to notes.txt\nkeep it short")
    # nothing committed, nothing staged, and no file of the plugin's (the prompt file) left in the repository
    assert git(repo, "rev-list", "--count", "HEAD").strip() == "1"
    assert git(repo, "status", "--porcelain").splitlines() == [" M notes.txt", "?? new.txt"]


def test_aider_gets_the_prompt_in_a_file_outside_the_repository_that_is_removed_after(tools, calls, repo):
    out = call(tools[1], "aider", repo, {"prompt": "add a line", "files": ["notes.txt"]})
    [recorded] = calls()
    message_file = Path(recorded["message_file"])
    assert not message_file.resolve().is_relative_to(repo.resolve()) and not message_file.exists()
    assert recorded["argv"][-2:] == ["--", "notes.txt"]
    assert out["plan"]["commands"][0][:3] == ["aider", "--message-file", "<temporary folder>/prompt.md"]


@pytest.mark.parametrize("tool", TOOLS)
def test_a_failing_tool_is_an_error_with_its_output_and_its_partial_change_stays(tools, calls, repo, tool):
    with pytest.raises(PluginError) as caught:
        call(tools[1], tool, repo, {"prompt": "fail at notes.txt", "files": ["notes.txt"]})
    assert str(caught.value).startswith(f"{tool} exited with code 1: ")
    assert "working on it" in str(caught.value) and f"{tool}: the model gave up" in str(caught.value)
    assert not caught.value.retryable and caught.value.kind == "technical"
    assert (repo / "partial.txt").read_text() == "half done\n"  # the kernel rolls the worktree back, not the plugin


@pytest.mark.parametrize("tool", TOOLS)
def test_whatif_never_starts_the_tool_and_changes_nothing(tools, calls, repo, tool):
    (repo / "notes.txt").write_text("one\nlocal change\n")  # a dirty tree stays as dirty
    before = snapshot(repo)
    out = call(tools[1], tool, repo, {"prompt": "add a line", "files": ["notes.txt", "src/new.txt"]}, whatif=True)
    assert calls() == [] and snapshot(repo) == before
    assert set(out) == {"plan"}
    assert out["plan"]["changes"] == [{"path": "notes.txt", "action": "modify"},
                                      {"path": "src/new.txt", "action": "create"}]
    assert out["plan"]["summary"] == f"would run {tool} on notes.txt, src/new.txt with the task's prompt in {repo}"
    assert out["plan"]["commands"][0][0] == tool


@pytest.mark.parametrize("tool", TOOLS)
def test_a_tool_missing_from_path_is_a_clear_error(tmp_path, repo, tool):
    only_git = tmp_path / "only-git"
    only_git.mkdir()
    (only_git / "git").symlink_to(shutil.which("git"))
    pool = WorkerPool(tmp_path, environ={**os.environ, "PATH": str(only_git)})
    try:
        with pytest.raises(PluginError) as caught:
            call(Dispatcher(pool), tool, repo, {"prompt": "add a line", "files": ["notes.txt"]})
    finally:
        pool.close()
    assert str(caught.value) == f"{tool} not found on PATH; install it or put it on the PATH the engine runs with"
    assert not caught.value.retryable and caught.value.code is None


@pytest.mark.parametrize(("tool", "flag"), [
    ("aider", "--auto-commits"), ("aider", "--read=/etc/passwd"), ("aider", "--model"),
    ("claude", "--dangerously-skip-permissions"), ("claude", "--add-dir=/"),
    ("codex", "--dangerously-bypass-approvals-and-sandbox"), ("codex", "--sandbox=danger-full-access"),
])
def test_a_flag_outside_the_allow_list_is_refused_before_anything_runs(tools, calls, repo, tool, flag):
    for whatif in (True, False):
        with pytest.raises(PluginError) as caught:
            call(tools[1], tool, repo, {"prompt": "add a line", "flags": [flag]}, whatif=whatif)
        assert f"task.flags: {flag!r} is not allowed for {tool}; allowed: --model=VALUE" in str(caught.value)
    assert calls() == []


@pytest.mark.parametrize("tool", TOOLS)
def test_a_task_without_prompt_or_with_a_path_out_of_the_repository_is_refused(tools, calls, repo, tool):
    with pytest.raises(PluginError) as caught:
        call(tools[1], tool, repo, {"files": ["notes.txt"]})
    assert f"{tool}-executor needs task.prompt" in str(caught.value)
    with pytest.raises(PluginError) as caught:
        call(tools[1], tool, repo, {"prompt": "x", "files": ["../outside.txt"]}, whatif=True)
    assert "task.files: '../outside.txt' is not inside the repository" in str(caught.value)
    assert calls() == []


@pytest.mark.parametrize("tool", ["claude", "codex"])
def test_deletions_are_reported(tools, calls, repo, tool):
    out = call(tools[1], tool, repo, {"prompt": "delete old.txt", "files": ["old.txt"]})
    assert out["applied"]["changes"] == [{"path": "old.txt", "action": "delete"}]
    assert out["applied"]["diff_lines"] == 1


def test_claude_propose_reads_only_and_returns_the_proposal(tools, calls, repo):
    before = snapshot(repo)
    planned = call(tools[1], "claude", repo, {"prompt": "what would you change in notes.txt?"}, whatif=True,
                   operation="propose")
    assert calls() == [] and planned["plan"]["changes"] == []
    out = call(tools[1], "claude", repo, {"prompt": "what would you change in notes.txt?"}, operation="propose")
    assert out["proposal"] == "1. add a line to notes.txt" and out["applied"]["changes"] == []
    assert [c["mode"] for c in calls()] == ["plan"]
    assert {k: v for k, v in snapshot(repo).items() if not k.startswith(".git/")} == \
        {k: v for k, v in before.items() if not k.startswith(".git/")}


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_the_kernels_deadline_stops_the_tool_too(tools, calls, repo):
    with pytest.raises(PluginError) as caught:
        call(tools[1], "aider", repo, {"prompt": "sleep on it", "files": ["notes.txt"]}, task_timeout=1.5)
    assert caught.value.code == "engine.timeout"
    [recorded] = calls()
    prompt_folder = Path(recorded["message_file"]).parent
    deadline = time.monotonic() + 5
    while not (_gone(recorded["pid"]) and not prompt_folder.exists()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(recorded["pid"]) and not prompt_folder.exists()  # nor is the prompt left behind


def test_run_tool_timeout_kills_the_tools_process_group(tmp_path):
    ctx = Context("run-1", "t1", datetime(2026, 1, 1, tzinfo=UTC), 7, False, tmp_path, structlog.get_logger())
    spawner = ("import subprocess, sys, time; "
               "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
               "open('child.pid', 'w').write(str(child.pid)); time.sleep(60)")
    with pytest.raises(PluginError) as caught:
        run_tool(ctx, [sys.executable, "-c", spawner], timeout=1)
    assert str(caught.value).startswith(f"{sys.executable} timed out after 1 s and was stopped")
    child = int((tmp_path / "child.pid").read_text())
    deadline = time.monotonic() + 5
    while not _gone(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(child)
