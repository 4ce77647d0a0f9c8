"""The dependency rules of STYLE.md, checked on the source rather than remembered."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ROOT / "engine"


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def modules(folder: Path):
    return [p for p in folder.rglob("*.py") if "__pycache__" not in p.parts]


def importers(prefix: str, folder: Path = ENGINE) -> set[str]:
    return {p.relative_to(ROOT).as_posix() for p in modules(folder)
            if any(m == prefix or m.startswith(prefix + ".") for m in imports(p))}


@pytest.mark.parametrize(("library", "allowed"), [
    ("SpiffWorkflow", "engine/process/"),
    ("jsonschema", "engine/contracts.py"),
    ("git", "engine/safety/"),
])
def test_outside_engines_have_one_importer(library, allowed):
    assert {p for p in importers(library) if not p.startswith(allowed)} == set()


def test_plugins_import_only_the_sdk_from_engine():
    for path in modules(ROOT / "plugins"):
        used = {m for m in imports(path) if m == "engine" or m.startswith("engine.")}
        assert used <= {"engine.sdk"}, path


def test_errors_import_nothing_from_engine():
    assert {m for m in imports(ENGINE / "errors.py") if m.startswith("engine")} == set()


def test_only_the_cli_prints():
    offenders = []
    for path in modules(ENGINE):
        if path.name == "cli.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        offenders += [f"{path.relative_to(ROOT)}:{n.lineno}" for n in ast.walk(tree)
                      if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in ("print", "exit")]
    assert offenders == []


def test_the_kernel_never_imports_a_plugin():
    assert importers("engine_plugin") == set() and importers("git_inspector") == set()


CLOCK_READS = {("time", "time"), ("time", "time_ns"), ("time", "monotonic"), ("time", "perf_counter"),
               ("time", "sleep"), ("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today"),
               ("date", "today"), ("uuid", "uuid1"), ("uuid", "uuid4"), ("os", "urandom"), ("random", "random"),
               ("random", "randint"), ("random", "choice"), ("secrets", "token_hex")}
# The worker side of the plugin boundary runs in the plugin's process: its tracing envelope and its
# parent watch are not kernel reads, and never reach a plugin or a ledger record.
WORKER_SIDE = {"engine/plugins/worker.py", "engine/plugins/tracing.py"}


def test_only_the_clock_reads_the_time_or_draws_randomness():
    offenders = []
    for path in modules(ENGINE):
        rel = path.relative_to(ROOT).as_posix()
        if rel == "engine/clock.py" or rel in WORKER_SIDE:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                owner = node.func.value
                name = owner.id if isinstance(owner, ast.Name) else owner.attr if isinstance(owner, ast.Attribute) \
                    else None
                if (name, node.func.attr) in CLOCK_READS:
                    offenders.append(f"{rel}:{node.lineno} {name}.{node.func.attr}")
    assert offenders == []
