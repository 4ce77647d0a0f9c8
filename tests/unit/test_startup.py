"""`engine --help`, `engine status` and `engine decide` start fast because they import only what they
use: the heavy libraries are imported by the commands that need them (timings: bench/startup.py)."""

import subprocess
import sys

import pytest

from engine.workspace import init

HEAVY = ("SpiffWorkflow", "jsonschema", "pydantic", "opentelemetry", "git", "lxml", "regorus")


def imported_by(args, cwd):
    """The top-level packages loaded while the engine runs ``args`` in a fresh interpreter."""
    code = ("import sys\nfrom engine.cli import cli\n"
            f"try:\n    cli.main({list(args)!r}, prog_name='engine', standalone_mode=False)\n"
            "except SystemExit:\n    pass\n"
            "print('MODULES', ' '.join(sorted({m.split('.')[0] for m in sys.modules})))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=60)
    line = [x for x in proc.stdout.splitlines() if x.startswith("MODULES ")]
    assert line, proc.stdout + proc.stderr
    return set(line[0].split()[1:])


@pytest.mark.parametrize(("args", "allowed"), [
    (["--help"], set()),
    (["status"], set()),
    (["decide", "retry_policy", "--input", "failures=1"], {"lxml"}),  # the DMN file is XML
])
def test_light_commands_leave_the_heavy_libraries_alone(tmp_path, args, allowed):
    init(tmp_path / "ws", example=True)
    loaded = imported_by(args, tmp_path / "ws")
    assert {h for h in HEAVY if h in loaded} <= allowed
