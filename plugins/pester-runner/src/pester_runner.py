"""pester-runner: the repository's PowerShell tests, run by Pester 5 through ``pwsh``, answered as a
quality-gate verdict.

``pwsh -NoLogo -NoProfile -NonInteractive -Command <SCRIPT>`` runs in ``ctx.workdir``. The script
(``SCRIPT`` below) imports the newest Pester 5 or later, runs it with a configuration that writes no
report file and prints nothing of its own (``Output.Verbosity = 'None'``, ``TestResult`` and
``CodeCoverage`` off, ``Run.Exit`` off, ``Run.PassThru`` on), and prints one line,
``ENGINE-PESTER <json>``, made from the result object: counts and every failed test, block and container.
The paths to run come in the environment variable ``ENGINE_PESTER_PATHS`` (a JSON list), never inside the
script, so no path is ever parsed as PowerShell.

No ``pwsh`` on the worker's ``PATH``, or no Pester 5 for it: the verdict is ``skipped``, for the tier
table to judge. A ``pwsh`` that prints no result line (the script threw: pwsh exits 1) or outlives its
time is a ``PluginError``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.sdk import Context, PluginError, run_tool, verdict

CHECK = "pester-runner"
TOOL = "pwsh"
MARK = "ENGINE-PESTER "
MISSING = "ENGINE-PESTER-MISSING"
DEFAULT_TIMEOUT = 600.0
# No telemetry, no update check: the run reaches no network of its own.
QUIET = {"POWERSHELL_TELEMETRY_OPTOUT": "1", "POWERSHELL_UPDATECHECK": "Off"}

SCRIPT = r"""
$module = Get-Module -ListAvailable -Name Pester | Where-Object { $_.Version.Major -ge 5 } |
    Sort-Object Version -Descending | Select-Object -First 1
if ($null -eq $module) { Write-Output 'ENGINE-PESTER-MISSING'; exit 0 }
Import-Module $module -Force -ErrorAction Stop
$config = New-PesterConfiguration
$config.Run.Path = [string[]](ConvertFrom-Json $env:ENGINE_PESTER_PATHS)
$config.Run.PassThru = $true
$config.Run.Exit = $false
$config.Output.Verbosity = 'None'
$config.TestResult.Enabled = $false
$config.CodeCoverage.Enabled = $false
$run = Invoke-Pester -Configuration $config
function Get-Messages($records) { (@($records | ForEach-Object { $_.Exception.Message }) -join '; ') }
$failures = [System.Collections.Generic.List[object]]::new()
foreach ($t in $run.Failed) {
    $failures.Add([ordered]@{ kind = 'test'; name = [string]$t.ExpandedPath; file = $t.ScriptBlock.File;
        line = $t.ScriptBlock.StartPosition.StartLine; message = (Get-Messages $t.ErrorRecord) })
}
foreach ($b in $run.FailedBlocks) {
    $failures.Add([ordered]@{ kind = 'block'; name = (@($b.Path) -join '.'); file = $b.ScriptBlock.File;
        line = $b.ScriptBlock.StartPosition.StartLine; message = (Get-Messages $b.ErrorRecord) })
}
foreach ($c in $run.FailedContainers) {
    $item = if ($c.Item -is [System.IO.FileInfo]) { $c.Item.FullName } else { [string]$c.Item }
    $failures.Add([ordered]@{ kind = 'container'; name = $item; file = $item; line = $null;
        message = (Get-Messages $c.ErrorRecord) })
}
$report = [ordered]@{ result = [string]$run.Result; total = $run.TotalCount; passed = $run.PassedCount;
    failed = $run.FailedCount; skipped = $run.SkippedCount; not_run = $run.NotRunCount;
    failed_blocks = $run.FailedBlocksCount; failed_containers = $run.FailedContainersCount;
    failures = $failures.ToArray() }
Write-Output ('ENGINE-PESTER ' + (ConvertTo-Json -InputObject $report -Depth 5 -Compress))
"""
COUNTS = ("total", "passed", "failed", "skipped", "not_run", "failed_blocks", "failed_containers")


def _args(data: Mapping[str, Any]) -> Mapping[str, Any]:
    task = data.get("task")
    args = task.get("args") if isinstance(task, Mapping) else None
    return args if isinstance(args, Mapping) else {}


def _argv() -> list[str]:
    """The command the check runs (the paths travel in ``ENGINE_PESTER_PATHS``)."""
    return [TOOL, "-NoLogo", "-NoProfile", "-NonInteractive", "-Command", SCRIPT]


def _paths(args: Mapping[str, Any]) -> list[str]:
    paths = args.get("paths", ["."])
    if isinstance(paths, str):
        paths = [paths]
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) and p for p in paths):
        raise PluginError("task.args.paths must be a list of test files or folders in the repository",
                          retryable=False)
    for path in paths:
        parts = path.replace("\\", "/").split("/")
        if path.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
            raise PluginError(f"task.args.paths: {path!r} is not inside the repository; name paths relative to it",
                              retryable=False)
    return list(paths)


def _relative(workdir: Path, name: Any) -> str | None:
    if not isinstance(name, str) or not name:
        return None
    path = Path(name)
    for root in (workdir, workdir.resolve()):
        if path.is_relative_to(root):
            return path.relative_to(root).as_posix()
    return name


def _count(report: Mapping[str, Any], key: str) -> int:
    value = report.get(key)
    return value if isinstance(value, int) and value >= 0 else 0


def _verdict(passed: bool, summary: str, findings: list[dict[str, Any]], counts: dict[str, int], *,
             skipped: bool = False) -> dict[str, Any]:
    return {"verdict": verdict(CHECK, passed, summary, findings, counts, skipped=skipped)}


def check(ctx: Context, data: Mapping[str, Any]) -> dict[str, Any]:
    """Run Pester on ``task.args.paths`` (default: the whole repository); ``data.files`` does not narrow it."""
    args = _args(data)
    paths = _paths(args)
    timeout = float(args.get("timeout_sec") or DEFAULT_TIMEOUT)
    if shutil.which(TOOL) is None:
        return _verdict(False, "skipped: pwsh not found", [], {"total": 0}, skipped=True)
    result = run_tool(ctx, _argv(), timeout=timeout, env={**QUIET, "ENGINE_PESTER_PATHS": json.dumps(paths)})
    ctx.log.info("pwsh_exited", exit_code=result.returncode)
    lines = [line.strip() for line in result.stdout.splitlines()]
    if result.returncode == 0 and MISSING in lines:
        return _verdict(False, "skipped: Pester 5 not installed for pwsh", [], {"total": 0}, skipped=True)
    marked = [line[len(MARK):] for line in lines if line.startswith(MARK)]
    if not marked:  # the script threw before its last line (pwsh then exits 1)
        raise PluginError(f"pwsh exited with code {result.returncode} without Pester's result: {result.tail(2000)}",
                          retryable=False)
    try:
        report = json.loads(marked[-1])
    except json.JSONDecodeError as e:
        raise PluginError(f"Pester's result is not JSON: {marked[-1][:500]!r}", retryable=False) from e
    if not isinstance(report, Mapping):
        raise PluginError("Pester's result is not a JSON object", retryable=False)
    counts = {key: _count(report, key) for key in COUNTS}
    raw = report.get("failures") or []
    failures = raw if isinstance(raw, list) else [raw]  # ConvertTo-Json writes a one-item array as the item
    workdir = Path(ctx.workdir)
    findings = [{"tool": "pester", "file": _relative(workdir, f.get("file")),
                 "line": f["line"] if isinstance(f.get("line"), int) and f["line"] > 0 else None,
                 "rule": str(f.get("name") or "") or None,
                 "message": f"{f.get('kind', 'test')} failed: {f.get('message') or ''}".rstrip(": ")[:1000]}
                for f in failures if isinstance(f, Mapping)]
    failed = counts["failed"] + counts["failed_blocks"] + counts["failed_containers"]
    if report.get("result") == "Passed" and failed == 0 and not findings:
        summary = "no tests" if counts["total"] == 0 else \
            f"pester: {counts['passed']} passed, {counts['skipped']} skipped"
        return _verdict(True, summary, [], counts)
    names = ", ".join(f["rule"] or "?" for f in findings[:5]) + (", ..." if len(findings) > 5 else "")
    return _verdict(False, f"pester: {counts['failed']} failed, {counts['passed']} passed: {names}", findings,
                    counts)
