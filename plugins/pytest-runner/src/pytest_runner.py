"""pytest-runner: the repository's tests, run by pytest in a subprocess, answered as a quality-gate verdict.

The tests run with the repository's own interpreter when it has a virtual environment inside it
(``.venv`` or ``venv``; for the task's worktree, the one of the checkout it was made from), else with the
worker's (the engine's) ``sys.executable``, as
``python -m pytest -q -p no:cacheprovider --junitxml=<temporary folder>/junit.xml -o junit_family=xunit1``
in ``ctx.workdir``. The result comes from the JUnit XML, never from pytest's console output.

Nothing of the run lands in the repository: the cache plugin is off, ``PYTHONDONTWRITEBYTECODE=1``
keeps ``__pycache__`` away, the JUnit report and coverage's data file (``COVERAGE_FILE``) go to a
temporary folder outside the repository, removed afterwards. What the tests themselves write is theirs.
"""

from __future__ import annotations

import sys
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.sdk import Context, PluginError, run_tool, verdict

CHECK = "pytest-runner"
TOOL = "pytest"
DEFAULT_TIMEOUT = 600.0
VENVS = (".venv/bin/python", "venv/bin/python", ".venv/Scripts/python.exe", "venv/Scripts/python.exe")
# pytest's exit codes: 0 passed, 1 tests failed, 2 interrupted (collection errors), 3 internal error,
# 4 usage error, 5 no tests collected.
REPORTED = (0, 1, 2)
NO_TESTS = 5


def _args(data: Mapping[str, Any]) -> Mapping[str, Any]:
    task = data.get("task")
    args = task.get("args") if isinstance(task, Mapping) else None
    return args if isinstance(args, Mapping) else {}


def _main_checkout(workdir: Path) -> Path | None:
    """The main working tree of the repository when ``workdir`` is a linked worktree of it (the task's
    worktree: its ``.git`` is a file naming ``<main>/.git/worktrees/<name>``), else None."""
    dotgit = workdir / ".git"
    try:
        text = dotgit.read_text(encoding="utf-8").strip() if dotgit.is_file() else ""
        if not text.startswith("gitdir:"):
            return None
        gitdir = (workdir / text[len("gitdir:"):].strip()).resolve()
        common = (gitdir / (gitdir / "commondir").read_text(encoding="utf-8").strip()).resolve()
    except OSError:
        return None
    return common.parent if common.name == ".git" else None


def _python(workdir: Path) -> str:
    """The interpreter of the repository's virtual environment (in the worktree, else in the checkout the
    worktree was made from: a .venv is not committed, so a fresh worktree has none), else the worker's."""
    for root in (workdir, _main_checkout(workdir)):
        if root is None:
            continue
        for candidate in VENVS:
            path = root / candidate
            if path.is_file():
                return str(path)
    return sys.executable


def _selection(args: Mapping[str, Any]) -> list[str]:
    tests = args.get("tests")
    if tests is None:
        return []
    if isinstance(tests, str):
        tests = [tests]
    if not isinstance(tests, list) or not all(isinstance(t, str) and t for t in tests):
        raise PluginError("task.args.tests must be a list of test paths or ids (tests/test_x.py::test_name)",
                          retryable=False)
    for test in tests:
        if test.startswith("-"):
            raise PluginError(f"task.args.tests: {test!r} is not a test: it may not start with '-' (pytest would "
                              "read it as an option)", retryable=False)
        parts = test.split("::")[0].replace("\\", "/").split("/")
        if test.startswith("/") or ".." in parts:
            raise PluginError(f"task.args.tests: {test!r} is not inside the repository; name tests relative to it",
                              retryable=False)
    return list(tests)


def _node_id(case: ET.Element) -> tuple[str | None, str]:
    """(file, pytest node id) of a JUnit test case written with ``junit_family=xunit1``."""
    file = case.get("file") or None
    classname, name = case.get("classname", ""), case.get("name", "")
    if file is None:
        return None, "::".join(p for p in (classname, name) if p)
    if not classname:  # a collection error: the module is the test case
        return file, file
    module = file[:-3] if file.endswith(".py") else file
    dotted = module.replace("/", ".")
    inner = classname[len(dotted) + 1:] if classname.startswith(dotted + ".") else ""
    return file, "::".join([file, *[p for p in inner.split(".") if p], name])


def _line(case: ET.Element) -> int | None:
    raw = case.get("line")
    return int(raw) + 1 if raw is not None and raw.isdigit() else None  # pytest writes it 0-based


def _report(path: Path) -> tuple[dict[str, int], list[dict[str, Any]]]:
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as e:
        raise PluginError(f"pytest's JUnit report cannot be read: {e}", retryable=False) from e
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for suite in suites:
        for key in counts:
            value = suite.get(key, "0")
            counts[key] += int(value) if value.isdigit() else 0
    counts["passed"] = max(0, counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"])
    findings: list[dict[str, Any]] = []
    for case in root.iter("testcase"):
        for outcome in ("failure", "error"):
            element = case.find(outcome)
            if element is None:
                continue
            file, node = _node_id(case)
            text = element.get("message") or next(reversed((element.text or "").strip().splitlines()), "")
            findings.append({"tool": TOOL, "file": file, "line": _line(case), "rule": node,
                             "message": f"{outcome}: {text}".rstrip(": ")[:1000]})
    return counts, findings


def _verdict(passed: bool, summary: str, findings: list[dict[str, Any]], counts: dict[str, int], *,
             skipped: bool = False) -> dict[str, Any]:
    return {"verdict": verdict(CHECK, passed, summary, findings, counts, skipped=skipped)}


def check(ctx: Context, data: Mapping[str, Any]) -> dict[str, Any]:
    """Run the repository's tests (or ``task.args.tests``); ``data.files`` does not narrow them: which
    tests a change can break is not knowable from its paths."""
    args = _args(data)
    tests = _selection(args)
    timeout = float(args.get("timeout_sec") or DEFAULT_TIMEOUT)
    workdir = Path(ctx.workdir)
    python = _python(workdir)
    with tempfile.TemporaryDirectory(prefix="engine-pytest-") as temp:
        if Path(temp).resolve().is_relative_to(workdir.resolve()):
            raise PluginError(f"the temporary folder {temp} is inside the repository {workdir}; set TMPDIR "
                              "elsewhere", retryable=False)
        junit = Path(temp) / "junit.xml"
        argv = [python, "-m", TOOL, "-q", "-p", "no:cacheprovider", f"--junitxml={junit}",
                "-o", "junit_family=xunit1", *tests]
        result = run_tool(ctx, argv, timeout=timeout,
                          env={"PYTHONDONTWRITEBYTECODE": "1", "COVERAGE_FILE": str(Path(temp) / ".coverage")})
        ctx.log.info("pytest_exited", exit_code=result.returncode, python=python)
        if not junit.is_file():
            if result.returncode == 1 and "No module named pytest" in result.stderr:
                return _verdict(False, f"skipped: pytest not installed for {python}", [], {"tests": 0},
                                skipped=True)
            raise PluginError(f"pytest exited with code {result.returncode} and wrote no report: "
                              f"{result.tail(2000)}", retryable=False)
        counts, findings = _report(junit)
    if result.returncode == NO_TESTS:
        return _verdict(True, "no tests", [], counts)
    if result.returncode not in REPORTED:
        raise PluginError(f"pytest exited with code {result.returncode}: {result.tail(2000)}", retryable=False)
    if result.returncode == 0:
        return _verdict(True, f"pytest: {counts['passed']} passed, {counts['skipped']} skipped", [], counts)
    if not findings:  # interrupted with nothing in the report (a conftest that fails, for one)
        raise PluginError(f"pytest exited with code {result.returncode}: {result.tail(2000)}", retryable=False)
    names = ", ".join(f["rule"] or "?" for f in findings[:5]) + (", ..." if len(findings) > 5 else "")
    return _verdict(False, f"pytest: {counts['failures']} failed, {counts['errors']} error(s), {counts['passed']} "
                           f"passed: {names}", findings, counts)
