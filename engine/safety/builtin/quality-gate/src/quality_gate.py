"""quality-gate: built into the engine; runs a tier's checks through the kernel (``ctx.call``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.config import load_config
from engine.errors import EngineError
from engine.sdk import Context, PluginError

MAX_NAMED = 10  # findings named in the summary (the reason a failed task gives)


def _checks(raw: Any) -> list[tuple[str, bool]]:
    """The gate_checks decision's result as (plugin id, required): COLLECT gives a list of rows (dicts with
    ``check`` and ``required``) or of plain ids; one row alone may come as a dict or a string."""
    rows = raw if isinstance(raw, list) else [] if raw is None else [raw]
    out: list[tuple[str, bool]] = []
    for row in rows:
        if isinstance(row, str):
            out.append((row, True))
        elif isinstance(row, Mapping) and isinstance(row.get("check"), str):
            out.append((row["check"], row.get("required") is not False))
        else:
            raise PluginError(f"quality-gate: a check must be a plugin id or {{check, required}}, not {row!r}")
    return out


def _files(raw: Any) -> list[str] | None:
    if raw is None:
        return None
    return [str(f.get("path")) if isinstance(f, Mapping) else str(f) for f in raw]


def _finding_text(check: str, finding: Mapping[str, Any]) -> str:
    where = ":".join(str(x) for x in (finding.get("file"), finding.get("line")) if x not in (None, ""))
    rule = finding.get("rule")
    return " ".join(x for x in (where, str(rule) if rule else "", str(finding.get("message", ""))) if x).strip()


def run(ctx: Context, data: Mapping[str, Any]) -> dict[str, Any]:
    if ctx.call is None:
        raise PluginError("quality-gate runs only inside the engine (it calls the checks through the kernel)")
    checks, files = _checks(data.get("checks")), _files(data.get("files"))
    settings = load_config(ctx.workspace).policy if ctx.workspace is not None else None
    policy = {"deny_packages": settings.deny_packages, "deny_licenses": settings.deny_licenses} if settings else {}
    verdicts: list[dict[str, Any]] = []
    artifacts: dict[str, Any] = {}  # what a check made besides its verdict (the SBOM): kept with the report
    failed: list[str] = []
    named: list[str] = []
    for check, required in checks:
        try:
            answer = ctx.call(check, "check", {"files": files, "policy": policy})
            verdict = dict(answer["verdict"])
            extra = {k: v for k, v in answer.items() if k != "verdict"}
            if extra:
                artifacts[check] = extra
        except EngineError as e:  # the check itself broke (or broke its contract): the gate cannot pass
            verdict = {"check": check, "passed": False, "skipped": False,
                       "summary": f"{check} failed: {'; '.join(e.lines())}", "findings": []}
        except KeyError:
            verdict = {"check": check, "passed": False, "skipped": False, "findings": [],
                       "summary": f"{check} returned no verdict"}
        verdict["required"] = required
        verdicts.append(verdict)
        ok = bool(verdict.get("passed")) or (bool(verdict.get("skipped")) and not required)
        if not ok:
            failed.append(check)
            findings = verdict.get("findings") or []
            texts = [_finding_text(check, f) for f in findings if isinstance(f, Mapping)]
            named.append(f"{check}: " + ("; ".join(texts[:MAX_NAMED]) + (f" (+{len(texts) - MAX_NAMED} more)"
                                                                           if len(texts) > MAX_NAMED else "")
                                         if texts else str(verdict.get("summary") or "failed")))
    ctx.log.info("quality_gate", passed=not failed, checks=[c for c, _ in checks], failed=failed,
                 verdicts=[{k: v.get(k) for k in ("check", "passed", "skipped", "summary")} for v in verdicts])
    if failed:  # a business error: the process routes on it (rollback), and its message is the task's reason
        raise PluginError("quality gate failed: " + " | ".join(named), code="GATE_FAILED")
    summary = "passed: " + ", ".join(c for c, _ in checks) if checks else "no checks for this tier"
    return {"gate": {"passed": True, "verdicts": verdicts, "failed": [], "summary": summary, "artifacts": artifacts}}
