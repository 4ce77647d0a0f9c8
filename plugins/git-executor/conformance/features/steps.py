"""git-executor's own steps (engine conformance L2 loads them beside engine.plugins.scenarios): the
engine's steps make a fixture repository with one clean commit; these change it before the call (a file
changed, a branch with a commit of its own) and look at its refs and working tree after it."""

import os
import subprocess
from pathlib import Path

from pytest_bdd import given, parsers, then, when

_STAMP = "2026-01-01T00:00:00+00:00"
_ENV = {"PATH": os.environ.get("PATH", ""), "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "engine fixture",
        "GIT_AUTHOR_EMAIL": "fixture@engine.invalid", "GIT_COMMITTER_NAME": "engine fixture",
        "GIT_COMMITTER_EMAIL": "fixture@engine.invalid", "GIT_AUTHOR_DATE": _STAMP, "GIT_COMMITTER_DATE": _STAMP}


def _git(workdir, *args):
    result = subprocess.run(["git", "-c", "commit.gpgsign=false", *args], cwd=workdir, capture_output=True,
                            text=True, check=False, env={**_ENV, "HOME": str(workdir)})
    assert result.returncode == 0, f"git {' '.join(args)}: {result.stderr.strip()}"
    return result.stdout


def _setup(scenario):
    if not hasattr(scenario, "setup"):
        scenario.setup = []
    return scenario.setup


@given(parsers.parse('the file "{path}" is then changed to:'))
def _then_changed(plugin_scenario, path, docstring):
    _setup(plugin_scenario).append(("write", path, docstring + "\n"))


@given(parsers.parse('a branch "{name}" whose commit adds the file "{path}" containing:'))
def _branch_commit(plugin_scenario, name, path, docstring):
    _setup(plugin_scenario).append(("branch", name, path, docstring + "\n"))


@given(parsers.parse('a commit on main changes the file "{path}" to:'))
def _main_commit(plugin_scenario, path, docstring):
    _setup(plugin_scenario).append(("branch", "main", path, docstring + "\n"))


@given(parsers.parse('the branch "{name}" is checked out'))
def _checkout(plugin_scenario, name):
    _setup(plugin_scenario).append(("checkout", name))


@when(parsers.parse('the operation "{operation}" is called on that repository'))
def _called_on_setup(plugin_scenario, operation):
    scenario = plugin_scenario
    workdir = scenario.runner.workdir(scenario.repo or {})
    for step in _setup(scenario):
        if step[0] == "write":
            target = Path(workdir) / step[1]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(step[2], encoding="utf-8")
        elif step[0] == "checkout":
            _git(workdir, "checkout", "-q", step[1])
        else:
            _, name, path, text = step
            _git(workdir, "checkout", "-q", *([] if name == "main" else ["-b"]), name)
            (Path(workdir) / path).write_text(text, encoding="utf-8")
            _git(workdir, "add", "--", path)
            _git(workdir, "commit", "-q", "-m", f"add {path} on {name}")
            _git(workdir, "checkout", "-q", "main")
    scenario.before = {"status": _git(workdir, "status", "--porcelain", "--untracked-files=all"),
                       "refs": _git(workdir, "for-each-ref", "--format=%(refname) %(objectname)")}
    scenario.result = scenario.runner.call(scenario.folder, operation, scenario.data, workdir=workdir,
                                           whatif=scenario.whatif, task_id=scenario.task_id, run_id="scenario")


@then("the working tree and the refs are as they were before the call")
def _as_before(plugin_scenario):
    workdir = plugin_scenario.call.workdir
    assert _git(workdir, "status", "--porcelain", "--untracked-files=all") == plugin_scenario.before["status"], \
        "the working tree or the index changed"
    assert _git(workdir, "for-each-ref", "--format=%(refname) %(objectname)") == plugin_scenario.before["refs"], \
        "a ref changed"


@then("the working tree is clean")
def _clean(plugin_scenario):
    status = _git(plugin_scenario.call.workdir, "status", "--porcelain", "--untracked-files=all")
    assert status == "", f"the working tree has changes: {status.strip()}"


@then(parsers.parse('HEAD\'s commit message is "{message}"'))
def _head_message(plugin_scenario, message):
    got = _git(plugin_scenario.call.workdir, "log", "-1", "--format=%s").strip()
    assert got == message, f"HEAD's message is {got!r}, not {message!r}"


@then(parsers.parse('the branch "{name}" exists'))
def _branch_exists(plugin_scenario, name):
    refs = _git(plugin_scenario.call.workdir, "for-each-ref", "--format=%(refname)", f"refs/heads/{name}")
    assert refs.strip() == f"refs/heads/{name}", f"there is no branch {name}"


@then(parsers.parse('the branch "{name}" does not exist'))
def _branch_absent(plugin_scenario, name):
    refs = _git(plugin_scenario.call.workdir, "for-each-ref", "--format=%(refname)", f"refs/heads/{name}")
    assert refs.strip() == "", f"the branch {name} exists"
