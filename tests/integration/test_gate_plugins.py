"""The validation plugins of the quality gate (ruff-checker, pytest-runner, pester-runner,
contract-validator, sbom-generator) against real git repositories with real Python code, through the real
loader, worker pool and dispatch: real ruff, real pytest, real cyclonedx-python-lib. PowerShell cannot
exist here: a stand-in ``pwsh`` put first on the workers' PATH answers the way the plugin's Pester script
would, and the plugin's verdict when ``pwsh`` is missing is tested too."""

import json
import os
import shutil
import site
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import structlog

from engine.bundled import bundled
from engine.errors import PluginError
from engine.plugins.dispatch import Dispatcher
from engine.plugins.loader import Registry
from engine.plugins.pool import WorkerPool
from engine.sdk import Context
from tests.conftest import git
from tests.conftest import tree_snapshot as fingerprint

REGISTRY = Registry.discover([bundled("plugins")])
CHECKS = ["ruff-checker", "pytest-runner", "pester-runner", "contract-validator", "sbom-generator"]

PWSH = r'''
import json, os, re, sys
from pathlib import Path

args = sys.argv[1:]
for required in ("-NoLogo", "-NoProfile", "-NonInteractive", "-Command"):
    assert required in args, f"pwsh stand-in: {required} missing from {args}"
script = args[args.index("-Command") + 1]
for part in ("Invoke-Pester", "$config.Run.PassThru = $true", "$config.Output.Verbosity = 'None'",
             "$config.TestResult.Enabled = $false", "ConvertFrom-Json $env:ENGINE_PESTER_PATHS"):
    assert part in script, f"pwsh stand-in: {part!r} missing from the script"
paths = json.loads(os.environ["ENGINE_PESTER_PATHS"])
with open(Path(__file__).resolve().parent.parent / "pwsh-calls.jsonl", "a") as log:
    log.write(json.dumps({"cwd": os.getcwd(), "paths": paths,
                          "telemetry": os.environ.get("POWERSHELL_TELEMETRY_OPTOUT")}) + "\n")
if Path("NO_PESTER").exists():
    print("ENGINE-PESTER-MISSING")
    sys.exit(0)
tests = []
for name in paths:
    path = Path(name)
    for file in [path] if path.is_file() else sorted(path.rglob("*.Tests.ps1")):
        text = file.read_text()
        if "CRASH" in text:
            print("Invoke-Pester: Could not find Command New-PesterConfiguration", file=sys.stderr)
            sys.exit(1)
        describe = re.search(r"Describe '([^']+)'", text).group(1)
        for number, line in enumerate(text.splitlines(), start=1):
            it = re.search(r"It '([^']+)'", line)
            if it:
                tests.append({"name": f"{describe}.{it.group(1)}", "file": str(file.resolve()), "line": number,
                              "failed": "Should -Be 4" in line})
failures = [{"kind": "test", "name": t["name"], "file": t["file"], "line": t["line"],
             "message": "Expected 4, but got 3."} for t in tests if t["failed"]]
print("what a test wrote with Write-Host")
print("ENGINE-PESTER " + json.dumps({
    "result": "Failed" if failures else "Passed", "total": len(tests), "passed": len(tests) - len(failures),
    "failed": len(failures), "skipped": 0, "not_run": 0, "failed_blocks": 0, "failed_containers": 0,
    "failures": failures}))
'''






def status(repo):
    return git(repo, "--no-optional-locks", "status", "--porcelain", "--untracked-files=all", "--ignored")


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def make_repo(root: Path, files: dict[str, str]) -> Path:
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    write(root, files)
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "first")
    return root


@pytest.fixture(scope="module")
def tools(tmp_path_factory):
    """A bin/ with the stand-in pwsh, and a dispatcher whose workers have it first on PATH, then the
    engine's own scripts (its ruff: the plugin takes ruff from PATH first)."""
    root = tmp_path_factory.mktemp("tools")
    (root / "bin").mkdir()
    script = root / "bin" / "pwsh"
    script.write_text(f"#!{sys.executable}\n{PWSH}")
    script.chmod(0o755)
    path = f"{root / 'bin'}:{Path(sys.executable).parent}:{os.environ['PATH']}"
    pool = WorkerPool(root, environ={**os.environ, "PATH": path})
    yield root, Dispatcher(pool)
    pool.close()


@pytest.fixture(scope="module")
def bare(tmp_path_factory):
    """A dispatcher whose workers' PATH has git only: no ruff, no pwsh."""
    root = tmp_path_factory.mktemp("bare")
    (root / "bin").mkdir()
    (root / "bin" / "git").symlink_to(shutil.which("git"))
    pool = WorkerPool(root, environ={**os.environ, "PATH": str(root / "bin")})
    yield Dispatcher(pool)
    pool.close()


def check(dispatcher, plugin, workdir, *, files=None, args=None, whatif=False, policy=None):
    ctx = Context("run-1", "t1", datetime(2026, 1, 1, tzinfo=UTC), 7, whatif, workdir, structlog.get_logger())
    task = {"id": "t1", "tool": "gate", "args": args or {}}
    data = {"task": task, "files": files, **({"policy": policy} if policy is not None else {})}
    return dispatcher.call(REGISTRY.get(plugin), "check", ctx, data)


def test_the_plugins_load_as_validation_plugins_that_run_under_whatif():
    for plugin in CHECKS:
        assert not REGISTRY.errors_of(plugin), plugin
        spec = REGISTRY.get(plugin).spec
        assert (spec.category, spec.whatif, spec.isolation, spec.first_operation) == \
            ("validation", True, "process", "check")


# -- ruff-checker -------------------------------------------------------------------------------------

PYPROJECT_RUFF = """[project]
name = "calc"
version = "1.0"

[tool.ruff]
line-length = 100
extend-exclude = ["generated"]

[tool.ruff.lint]
select = ["E", "F"]
ignore = ["E711"]
"""
CLEAN = '"""Adding."""\n\n\ndef add(a, b):\n    return a + b\n'
UNUSED = '"""Subtracting."""\n\nimport os\n\n\ndef sub(a, b):\n    return a - b\n'
IGNORED = '"""Comparing."""\n\n\ndef is_none(x):\n    return x == None\n'


@pytest.fixture
def lint_repo(tmp_path):
    return make_repo(tmp_path / "repo", {"pyproject.toml": PYPROJECT_RUFF, "calc/add.py": CLEAN,
                                         "calc/compare.py": IGNORED, "generated/junk.py": "import sys\n",
                                         "README.md": "# calc\n"})


def test_ruff_a_clean_file_passes(tools, lint_repo):
    verdict = check(tools[1], "ruff-checker", lint_repo, files=["calc/add.py"])["verdict"]
    assert verdict == {"check": "ruff-checker", "passed": True, "skipped": False,
                       "summary": "ruff: no findings in 1 file(s)", "findings": [],
                       "counts": {"findings": 0, "fixable": 0, "files_with_findings": 0, "files": 1}}


def test_ruff_an_unused_import_fails_with_F401_at_its_line(tools, lint_repo):
    (lint_repo / "calc" / "sub.py").write_text(UNUSED)  # untracked, as a change an AI editor just made
    verdict = check(tools[1], "ruff-checker", lint_repo, files=["calc/add.py", "calc/sub.py"])["verdict"]
    assert check(tools[1], "ruff-checker", lint_repo, files=["calc/add.py", "calc/sub.py"], whatif=True)["verdict"] \
        == verdict  # a check changes nothing: WhatIf runs it as it is
    assert not verdict["passed"] and not verdict["skipped"]
    assert verdict["findings"] == [{"tool": "ruff", "file": "calc/sub.py", "line": 3, "rule": "F401",
                                    "message": "`os` imported but unused"}]
    assert verdict["counts"] == {"findings": 1, "fixable": 1, "files_with_findings": 1, "files": 2}
    assert verdict["summary"] == "ruff: 1 finding(s) in 2 file(s) (F401)"


def test_ruff_honours_the_repositorys_own_settings_and_writes_nothing(tools, lint_repo):
    """E711 is ignored by the repository's pyproject.toml and generated/ is excluded there: neither is
    reported, on the whole repository or when the files are named; no .ruff_cache appears."""
    before, state = fingerprint(lint_repo), status(lint_repo)
    whole = check(tools[1], "ruff-checker", lint_repo)["verdict"]
    named = check(tools[1], "ruff-checker", lint_repo, files=["calc/compare.py", "generated/junk.py"])["verdict"]
    assert whole["passed"] and whole["summary"] == "ruff: no findings in the repository"
    assert named["passed"] and named["counts"]["files"] == 1  # generated/junk.py is the repository's exclude
    (lint_repo / "ruff.toml").write_text("[lint]\nselect = [\"E711\"]\n")  # ruff.toml wins over pyproject.toml
    strict = check(tools[1], "ruff-checker", lint_repo, files=["calc/compare.py"])["verdict"]
    assert [(f["rule"], f["file"], f["line"]) for f in strict["findings"]] == [("E711", "calc/compare.py", 5)]
    (lint_repo / "ruff.toml").unlink()
    assert fingerprint(lint_repo) == before and status(lint_repo) == state


def test_ruff_skips_changed_files_that_are_not_python_or_are_gone(tools, lint_repo):
    verdict = check(tools[1], "ruff-checker", lint_repo, files=["README.md", "calc/deleted.py"])["verdict"]
    assert verdict["passed"] and verdict["summary"] == "no Python files among the 2 changed file(s)"


def test_ruff_comes_from_the_engines_environment_when_path_has_none(bare, lint_repo):
    (lint_repo / "calc" / "sub.py").write_text(UNUSED)
    verdict = check(bare, "ruff-checker", lint_repo)["verdict"]
    assert [(f["rule"], f["file"]) for f in verdict["findings"]] == [("F401", "calc/sub.py")]


def test_ruff_a_broken_configuration_is_an_error_not_a_verdict(tools, lint_repo):
    (lint_repo / "ruff.toml").write_text("[lint\n")
    with pytest.raises(PluginError) as caught:
        check(tools[1], "ruff-checker", lint_repo)
    assert str(caught.value).startswith("ruff exited with code 2: ") and not caught.value.retryable


def test_ruff_refuses_a_path_outside_the_repository(tools, lint_repo):
    with pytest.raises(PluginError, match=r"files: '\.\./x\.py' is not inside the repository"):
        check(tools[1], "ruff-checker", lint_repo, files=["../x.py"])


# -- pytest-runner ------------------------------------------------------------------------------------

CALC = '"""A calculator."""\n\n\ndef add(a, b):\n    return a + b\n'
TESTS = """from calc import add


def test_add():
    assert add(1, 2) == 3


def test_add_negative():
    assert add(-1, -2) == -3
"""
FAILING = """from calc import add


class TestWrong:
    def test_add_wrong(self):
        assert add(2, 2) == 5, "two and two"
"""


@pytest.fixture
def test_repo(tmp_path):
    return make_repo(tmp_path / "repo", {"calc/__init__.py": CALC, "tests/__init__.py": "",
                                         "tests/conftest.py": "import calc  # noqa: F401\n",
                                         "tests/test_calc.py": TESTS, ".gitignore": ".venv/\n"})


def make_venv(repo: Path, *, with_pytest: bool) -> Path:
    """A real virtual environment in ``repo/.venv``; with pytest, through a .pth to the engine's packages."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(repo / ".venv")], check=True)
    if with_pytest:
        [packages] = (repo / ".venv" / "lib").glob("python*/site-packages")
        (packages / "engine_packages.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return repo / ".venv"


def test_pytest_a_passing_suite_passes_with_its_counts(tools, test_repo):
    verdict = check(tools[1], "pytest-runner", test_repo, files=["calc/__init__.py"])["verdict"]
    assert verdict == {"check": "pytest-runner", "passed": True, "skipped": False,
                       "summary": "pytest: 2 passed, 0 skipped", "findings": [],
                       "counts": {"tests": 2, "failures": 0, "errors": 0, "skipped": 0, "passed": 2}}


def test_pytest_a_failing_test_fails_with_its_id_and_nothing_is_written_into_the_repository(tools, test_repo):
    write(test_repo, {"tests/test_wrong.py": FAILING, "scratch.txt": "untracked\n"})
    before, state = fingerprint(test_repo), status(test_repo)
    verdict = check(tools[1], "pytest-runner", test_repo)["verdict"]
    assert not verdict["passed"] and not verdict["skipped"]
    assert verdict["findings"] == [{"tool": "pytest", "file": "tests/test_wrong.py", "line": 5,
                                    "rule": "tests/test_wrong.py::TestWrong::test_add_wrong",
                                    "message": "failure: AssertionError: two and two\nassert 4 == 5\n "
                                               "+  where 4 = add(2, 2)"}]
    assert verdict["counts"] == {"tests": 3, "failures": 1, "errors": 0, "skipped": 0, "passed": 2}
    assert verdict["summary"] == \
        "pytest: 1 failed, 0 error(s), 2 passed: tests/test_wrong.py::TestWrong::test_add_wrong"
    # no __pycache__, no .pytest_cache, no report: every file as it was, git sees the same
    assert fingerprint(test_repo) == before and status(test_repo) == state


def test_pytest_runs_the_selected_tests_only(tools, test_repo):
    write(test_repo, {"tests/test_wrong.py": FAILING})
    verdict = check(tools[1], "pytest-runner", test_repo, args={"tests": ["tests/test_calc.py::test_add"]})["verdict"]
    assert verdict["passed"] and verdict["counts"]["tests"] == 1
    with pytest.raises(PluginError, match="may not start with '-'"):
        check(tools[1], "pytest-runner", test_repo, args={"tests": ["--co"]})


def test_pytest_uses_the_repositorys_virtual_environment_also_from_the_tasks_worktree(tools, test_repo, tmp_path):
    """The repository's own test writes down the interpreter it runs under (outside the repository)."""
    where = tmp_path / "prefix.txt"
    write(test_repo, {"tests/test_where.py": f"import sys\n\n\ndef test_where():\n"
                                             f"    open({str(where)!r}, 'w').write(sys.prefix)\n"})
    git(test_repo, "add", "tests/test_where.py")
    git(test_repo, "commit", "-q", "-m", "where")
    venv = make_venv(test_repo, with_pytest=True)
    before = fingerprint(test_repo)
    verdict = check(tools[1], "pytest-runner", test_repo)["verdict"]
    assert verdict["passed"] and verdict["counts"]["tests"] == 3, verdict
    assert Path(where.read_text()) == venv and fingerprint(test_repo) == before
    # the task's worktree has no .venv (it is not committed): the checkout's is used
    worktree = tmp_path / "worktrees" / "t1"
    git(test_repo, "worktree", "add", "-q", "-b", "engine/t1", str(worktree))
    where.unlink()
    verdict = check(tools[1], "pytest-runner", worktree)["verdict"]
    assert verdict["passed"] and Path(where.read_text()) == venv


def test_pytest_missing_from_the_repositorys_environment_is_a_skipped_verdict(tools, test_repo):
    venv = make_venv(test_repo, with_pytest=False)
    verdict = check(tools[1], "pytest-runner", test_repo)["verdict"]
    assert (verdict["passed"], verdict["skipped"]) == (False, True)
    assert verdict["summary"] == f"skipped: pytest not installed for {venv / 'bin' / 'python'}"


def test_pytest_no_tests_collected_passes_as_no_tests(tools, tmp_path):
    repo = make_repo(tmp_path / "repo", {"calc/__init__.py": CALC})
    verdict = check(tools[1], "pytest-runner", repo)["verdict"]
    assert (verdict["passed"], verdict["summary"], verdict["counts"]["tests"]) == (True, "no tests", 0)


def test_pytest_a_collection_error_fails_naming_the_module(tools, test_repo):
    write(test_repo, {"tests/test_broken.py": "import not_a_module\n"})
    verdict = check(tools[1], "pytest-runner", test_repo)["verdict"]
    assert not verdict["passed"]
    [finding] = verdict["findings"]
    assert (finding["rule"], finding["file"]) == ("tests/test_broken.py", "tests/test_broken.py")
    assert finding["message"] == "error: collection failure"


# -- pester-runner ------------------------------------------------------------------------------------

PESTER_OK = "Describe 'Calc' {\n    It 'adds' { 1 + 1 | Should -Be 2 }\n" \
            "    It 'subtracts' { 3 - 1 | Should -Be 2 }\n}\n"
PESTER_FAIL = "Describe 'Calc' {\n    It 'adds' { 1 + 1 | Should -Be 2 }\n" \
              "    It 'adds wrong' { 1 + 2 | Should -Be 4 }\n}\n"


@pytest.fixture
def pwsh_calls(tools):
    log = tools[0] / "pwsh-calls.jsonl"
    log.unlink(missing_ok=True)
    return lambda: [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_pester_a_passing_suite_passes(tools, pwsh_calls, tmp_path):
    repo = make_repo(tmp_path / "repo", {"tests/Calc.Tests.ps1": PESTER_OK, "Calc.ps1": "function Add {}\n"})
    verdict = check(tools[1], "pester-runner", repo)["verdict"]
    assert verdict == {"check": "pester-runner", "passed": True, "skipped": False,
                       "summary": "pester: 2 passed, 0 skipped", "findings": [],
                       "counts": {"total": 2, "passed": 2, "failed": 0, "skipped": 0, "not_run": 0,
                                  "failed_blocks": 0, "failed_containers": 0}}
    assert pwsh_calls() == [{"cwd": str(repo), "paths": ["."], "telemetry": "1"}]


def test_pester_a_failing_test_fails_with_its_name_file_and_line(tools, pwsh_calls, tmp_path):
    repo = make_repo(tmp_path / "repo", {"tests/Calc.Tests.ps1": PESTER_FAIL, "other/Skip.Tests.ps1": PESTER_FAIL})
    verdict = check(tools[1], "pester-runner", repo, args={"paths": ["tests"]})["verdict"]
    assert not verdict["passed"] and not verdict["skipped"]
    assert verdict["findings"] == [{"tool": "pester", "file": "tests/Calc.Tests.ps1", "line": 3,
                                    "rule": "Calc.adds wrong", "message": "test failed: Expected 4, but got 3."}]
    assert verdict["summary"] == "pester: 1 failed, 1 passed: Calc.adds wrong"
    assert pwsh_calls()[0]["paths"] == ["tests"]


def test_pester_without_pwsh_or_without_pester_is_a_skipped_verdict(bare, tools, tmp_path):
    repo = make_repo(tmp_path / "repo", {"tests/Calc.Tests.ps1": PESTER_OK})
    verdict = check(bare, "pester-runner", repo)["verdict"]
    assert verdict == {"check": "pester-runner", "passed": False, "skipped": True,
                       "summary": "skipped: pwsh not found", "findings": [], "counts": {"total": 0}}
    (repo / "NO_PESTER").write_text("")
    verdict = check(tools[1], "pester-runner", repo)["verdict"]
    assert (verdict["passed"], verdict["skipped"], verdict["summary"]) == \
        (False, True, "skipped: Pester 5 not installed for pwsh")


def test_pester_a_pwsh_that_fails_is_an_error(tools, tmp_path):
    repo = make_repo(tmp_path / "repo", {"tests/Calc.Tests.ps1": PESTER_OK + "# CRASH\n"})
    with pytest.raises(PluginError) as caught:
        check(tools[1], "pester-runner", repo)
    assert str(caught.value).startswith("pwsh exited with code 1 without Pester's result: ")
    assert "Could not find Command New-PesterConfiguration" in str(caught.value)


# -- contract-validator -------------------------------------------------------------------------------

VALID_TASK = {"id": "t-1", "tool": "ruff", "args": {"operation": "check"}, "tags": ["lint"]}
INVALID_TASK = '{\n  "id": "bad id!",\n  "tool": "ruff",\n  "retry": {\n    "max_retries": -1\n  },\n' \
               '  "colour": "red"\n}\n'


@pytest.fixture
def contract_repo(tmp_path):
    return make_repo(tmp_path / "repo", {
        "tasks/good.json": json.dumps(VALID_TASK, indent=2), "tasks/bad.json": INVALID_TASK,
        "tasks/inbox.jsonl": json.dumps(VALID_TASK) + "\n\n" + json.dumps({"id": "t-2"}) + "\n",
        "tasks/bad.yaml": "id: t-3\ntool: ruff\ntimeout_sec: 0\n", "README.md": "# tasks\n"})


def test_contract_a_valid_task_file_passes(tools, contract_repo):
    verdict = check(tools[1], "contract-validator", contract_repo, files=["tasks/good.json", "README.md"],
                    args={"contract": "task.v1"})["verdict"]
    assert verdict == {"check": "contract-validator", "passed": True, "skipped": False,
                       "summary": "task.v1: 1 document(s) conform", "findings": [],
                       "counts": {"files": 1, "documents": 1, "invalid": 0, "missing": 0, "problems": 0}}


def test_contract_an_invalid_task_file_fails_with_every_problem_by_json_path_and_line(tools, contract_repo):
    verdict = check(tools[1], "contract-validator", contract_repo, files=["tasks/bad.json"],
                    args={"contract": "task.v1"})["verdict"]
    assert not verdict["passed"]
    assert [(f["file"], f["line"], f["path"], f["rule"]) for f in verdict["findings"]] == [
        ("tasks/bad.json", 1, "$", "task.v1"),  # "colour" is not a task.v1 field
        ("tasks/bad.json", 2, "$.id", "task.v1"),
        ("tasks/bad.json", 5, "$.retry.max_retries", "task.v1")]
    assert verdict["findings"][2]["message"] == "$.retry.max_retries: -1 is less than the minimum of 0"
    assert "'colour' was unexpected" in verdict["findings"][0]["message"]
    assert verdict["summary"] == "task.v1: 3 problem(s) in 1 of 1 document(s)"


def test_contract_json_lines_and_yaml_name_their_lines_and_patterns_select_files(tools, contract_repo):
    verdict = check(tools[1], "contract-validator", contract_repo,
                    args={"contract": "task.v1", "files": ["tasks/*.jsonl", "tasks/bad.yaml", "tasks/gone.json"]})
    findings = verdict["verdict"]["findings"]
    assert [(f["file"], f["line"], f["path"], f["rule"]) for f in findings] == [
        ("tasks/gone.json", None, None, "missing"),
        ("tasks/bad.yaml", 3, "$.timeout_sec", "task.v1"),
        ("tasks/inbox.jsonl", 3, "$", "task.v1")]
    assert findings[2]["message"] == "$: 'tool' is a required property"
    assert verdict["verdict"]["counts"] == {"files": 2, "documents": 3, "invalid": 2, "missing": 1, "problems": 3}


def test_contract_other_contracts_inline_data_and_a_task_without_contract(tools, contract_repo):
    manifest = json.loads((bundled("plugins") / "ruff-checker" / "manifest.json").read_text())
    ok = check(tools[1], "contract-validator", contract_repo,
               args={"contract": "plugin.v1#/$defs/manifest", "data": manifest})["verdict"]
    assert ok["passed"]
    bad = check(tools[1], "contract-validator", contract_repo,
                args={"contract": "ledger.v1", "data": {"v": 2, "seq": 0}})["verdict"]
    assert not bad["passed"] and {"$.v", "$.seq", "$"} <= {f["path"] for f in bad["findings"]}
    none = check(tools[1], "contract-validator", contract_repo, files=["tasks/bad.json"])["verdict"]
    assert (none["passed"], none["skipped"]) == (False, True)
    with pytest.raises(PluginError, match="task.args.contract 'task.v9' names no contract; known: cli.v1, "
                                          "ledger.v1, plugin.v1, task.v1"):
        check(tools[1], "contract-validator", contract_repo, args={"contract": "task.v9", "files": ["x.json"]})


# -- sbom-generator -----------------------------------------------------------------------------------

REQUIREMENTS = "# runtime\nrequests==2.31.0\nclick>=8.1  # the CLI\n-r requirements/extra.txt\n"
EXTRA = "urllib3==1.26.18 \\\n    --hash=sha256:0000\n"
PYPROJECT_DEPS = '[project]\nname = "calc"\nversion = "1.2.0"\ndependencies = ["PyYAML>=6"]\n\n' \
                 '[project.optional-dependencies]\ndocs = ["mkdocs==1.6.0"]\n'


@pytest.fixture
def sbom_repo(tmp_path):
    return make_repo(tmp_path / "repo", {"requirements.txt": REQUIREMENTS, "requirements/extra.txt": EXTRA,
                                         "pyproject.toml": PYPROJECT_DEPS, "calc/__init__.py": CALC})


def test_sbom_a_cyclonedx_document_of_the_declared_dependencies(tools, sbom_repo):
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    before = fingerprint(sbom_repo)
    out = check(tools[1], "sbom-generator", sbom_repo)
    sbom, verdict = out["sbom"], out["verdict"]
    assert (sbom["bomFormat"], sbom["specVersion"]) == ("CycloneDX", "1.6")
    assert JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(sbom)) is None
    components = {c["name"]: c for c in sbom["components"]}
    assert sorted(components) == ["PyYAML", "click", "mkdocs", "requests", "urllib3"]
    assert components["requests"]["version"] == "2.31.0"
    assert components["requests"]["purl"] == "pkg:pypi/requests@2.31.0"
    assert components["mkdocs"]["scope"] == "optional" and "version" not in components["click"]
    assert {"name": "engine:declared-in", "value": "requirements.txt:2"} in components["requests"]["properties"]
    assert sbom["metadata"]["component"]["name"] == "calc" and sbom["metadata"]["timestamp"].startswith("2026-01-01")
    assert verdict["passed"] and verdict["counts"]["components"] == 5 and verdict["counts"]["direct"] == 5
    assert check(tools[1], "sbom-generator", sbom_repo)["sbom"] == sbom  # the run gives it: same again
    assert fingerprint(sbom_repo) == before


def test_sbom_a_denied_package_fails_naming_it(tools, sbom_repo):
    verdict = check(tools[1], "sbom-generator", sbom_repo, args={"deny_packages": ["urllib3<2", "leftpad"]})["verdict"]
    assert not verdict["passed"]
    assert verdict["findings"] == [{"tool": "sbom-generator", "file": "requirements/extra.txt", "line": 1,
                                    "rule": "denied-package",
                                    "message": "urllib3 1.26.18 is denied (deny_packages: urllib3<2)"}]
    assert verdict["summary"].startswith("sbom: denied: urllib3 ")
    allowed = check(tools[1], "sbom-generator", sbom_repo, args={"deny_packages": ["urllib3>=2"]})["verdict"]
    assert allowed["passed"]


def test_sbom_licences_come_from_the_repositorys_environment_and_a_lock_file_gives_versions(tools, sbom_repo):
    write(sbom_repo, {
        "uv.lock": 'version = 1\n\n[[package]]\nname = "click"\nversion = "8.1.7"\n\n[[package]]\n'
                   'name = "colorama"\nversion = "0.4.6"\n\n[[package]]\nname = "calc"\nversion = "1.2.0"\n'
                   'source = { editable = "." }\n',
        ".venv/lib/python3.11/site-packages/click-8.1.7.dist-info/METADATA":
            "Metadata-Version: 2.4\nName: click\nVersion: 8.1.7\nLicense-Expression: GPL-3.0-only\n",
        ".venv/lib/python3.11/site-packages/PyYAML-6.0.1.dist-info/METADATA":
            "Metadata-Version: 2.1\nName: PyYAML\nVersion: 6.0.1\nClassifier: License :: OSI Approved :: MIT License\n",
    })
    out = check(tools[1], "sbom-generator", sbom_repo, args={"deny_licenses": ["gpl-3.0-only"]})
    components = {c["name"]: c for c in out["sbom"]["components"]}
    assert components["click"]["version"] == "8.1.7" and components["colorama"]["version"] == "0.4.6"
    assert components["click"]["licenses"] == [{"license": {"id": "GPL-3.0-only"}}]
    assert components["PyYAML"]["licenses"] == [{"license": {"name": "MIT License"}}]
    assert components["PyYAML"]["version"] == "6.0.1" and "calc" not in components
    assert [(f["rule"], f["message"]) for f in out["verdict"]["findings"]] == [
        ("denied-license", "click 8.1.7 is licensed GPL-3.0-only: denied (deny_licenses)")]
    (sbom_repo / ".venv/lib/python3.11/site-packages/click-8.1.7.dist-info/METADATA").write_text(
        "Metadata-Version: 2.4\nName: click\nVersion: 8.1.7\nLicense-Expression: GPL-3.0-only OR MIT\n")
    assert check(tools[1], "sbom-generator", sbom_repo, args={"deny_licenses": ["GPL-3.0-only"]})["verdict"]["passed"]


def test_sbom_of_a_repository_without_dependencies_is_a_valid_empty_bom(tools, tmp_path):
    repo = make_repo(tmp_path / "bare", {"calc/__init__.py": CALC})
    out = check(tools[1], "sbom-generator", repo)
    assert out["verdict"]["passed"] and out["sbom"]["components"] == []


def test_sbom_denies_what_the_workspace_policy_lists(tools, sbom_repo):
    # the quality gate passes engine.toml's [policy] lists as the input "policy"
    out = check(tools[1], "sbom-generator", sbom_repo, policy={"deny_packages": ["click"], "deny_licenses": []})
    assert not out["verdict"]["passed"] and "click" in out["verdict"]["summary"]
