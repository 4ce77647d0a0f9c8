"""A workspace's settings: ``engine.toml`` (the operator's) and ``policies/performance.yml`` (timeouts).

Both are optional; what a file leaves out takes the default shown in ``DEFAULT_TOML``. A file that is
not valid TOML/YAML, or a key that is unknown or of the wrong type, is a ``WorkspaceError`` naming the
file, the line where there is one, and the key: the engine refuses to start rather than run with
settings it did not understand.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, ValidationError

from engine.errors import Problem, WorkspaceError

CONFIG_FILE = "engine.toml"
PERFORMANCE_FILE = "performance.yml"
CATEGORIES = ("acquisition", "transformation", "state_change", "validation", "orchestration")

DEFAULT_TOML = """\
# engine.toml: this workspace's settings. Every key is optional; the values shown are the defaults.

[queue]
# A task file claimed this many times without finishing (its worker died each time) goes to
# quarantine/ instead of being run again.
max_claims = 3
# A task waiting this many seconds or more for a timer (a retry's back-off, a timer event) is parked: its
# file stays in processing/, the worker takes other files meanwhile, and the task goes on when it is due.
park_after_sec = 2.0

[repos]
# A task's repo must lie inside the workspace or under one of these folders (absolute, or relative to
# the workspace), symlinks followed; a task naming a repository elsewhere fails before any step runs.
roots = []

[ledger]
# The audit ledger's current file is sealed as a numbered segment once it reaches this many MiB.
segment_mb = 64
# During a migration from the old worker: also append each task attempt, in the old worker's format
# ({ts, id, tool, attempt, exit, ok, repo}, its exit codes), to dual_write_path (relative to the workspace).
dual_write = false
dual_write_path = "logs/ledger.jsonl"

[plugins]
# On SIGTERM/SIGINT, how long a plugin call in flight may go on before its worker is stopped and the
# task is left to resume on the next start.
stop_grace_sec = 3.0
# A worker that timed out gets SIGTERM, then SIGKILL after this many seconds.
kill_grace_sec = 1.0
# The executables a task of tool "command" may run (command-runner): names found on PATH, or paths
# relative to the task's repository, exactly as tasks write them. Empty: no task runs any executable.
command_runner_allow = []

[telemetry]
# OpenTelemetry export of the run's spans: "none", "console" (to the log file) or "otlp" (HTTP).
export = "none"
otlp_endpoint = "http://localhost:4318/v1/traces"
# How long one export to the OTLP endpoint may take; a collector that is down never stops a run.
otlp_timeout_sec = 5.0

[policy]
# The Rego policies in policies/*.rego are evaluated in process. To have an OPA server evaluate them
# instead, give its address here (or in the ENGINE_OPA_URL environment variable, which wins): the engine
# loads the same .rego files into it on start and refuses to start when it cannot be reached.
# opa_url = "http://localhost:8181"
# How long one request to the OPA server may take.
opa_timeout_sec = 5.0
# Environments (a task's metadata.environment) that the security policy refuses, unless the task is
# tagged allow-<environment>.
forbidden_environments = ["production"]
# The SBOM check of the quality gate (sbom-generator) fails a repository that depends on one of these
# packages (names or requirements, "urllib3<2") or licences (SPDX ids or names).
deny_packages = []
deny_licenses = []

[legacy]
# A task from the old worker whose tool has no plugin runs the way the old worker ran it (its executable,
# its flags and its prompt file) through command-runner's legacy operation, marked legacy in the ledger.
# The executable must still be in [plugins] command_runner_allow.
executor = false
# `engine run --canary PERCENT` moves the task files it leaves to the old worker into this folder (relative
# to the workspace, or absolute): the folder the old worker reads.
old_inbox = ".tasks/legacy-inbox"
# How task lines in the old worker's format are read: "auto" converts a line task.v1 refuses when it has
# the old worker's shape (an argv array in args, top-level retry fields, no id, ...); "always" reads every
# line as the old worker's; "off" reads task.v1 only. A converted task records the conversion in its
# metadata.legacy and in the ledger.
adapter = "auto"
# The repository of an old worker's line that names none (the old worker's own repository).
repo = "."
"""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class QueueConfig(_Section):
    max_claims: int = Field(3, ge=1, le=1000)
    park_after_sec: float = Field(2.0, ge=0.1, le=86400 * 366)


class ReposConfig(_Section):
    roots: list[str] = Field(default_factory=list)


class LedgerConfig(_Section):
    segment_mb: int = Field(64, ge=1, le=1 << 20)  # MiB a ledger file holds before it is sealed as a segment
    dual_write: bool = False  # also the old worker's ledger lines (engine.audit.legacy_ledger)
    dual_write_path: str = Field("logs/ledger.jsonl", min_length=1)  # relative to the workspace, or absolute


class PluginsConfig(_Section):
    stop_grace_sec: float = Field(3.0, ge=0, le=3600)
    kill_grace_sec: float = Field(1.0, ge=0, le=60)
    command_runner_allow: list[str] = Field(default_factory=list)  # read by command-runner from engine.toml


class TelemetryConfig(_Section):
    export: Literal["none", "console", "otlp"] = "none"
    otlp_endpoint: str = "http://localhost:4318/v1/traces"
    otlp_timeout_sec: float = Field(5.0, gt=0, le=120)


class PolicyConfig(_Section):
    """``[policy]``: where the Rego policies are evaluated, and the data they read (``data.engine.config``)."""

    opa_url: str | None = None
    opa_timeout_sec: float = Field(5.0, gt=0, le=120)
    forbidden_environments: list[str] = Field(default_factory=lambda: ["production"])
    deny_packages: list[str] = Field(default_factory=list)  # for the SBOM check: names or requirements
    deny_licenses: list[str] = Field(default_factory=list)  # for the SBOM check: SPDX ids or names


class LegacyConfig(_Section):
    """``[legacy]``: old-worker tasks. ``executor``: a tool with no plugin runs through command-runner."""

    executor: bool = False  # read by command-runner from engine.toml
    adapter: Literal["auto", "always", "off"] = "auto"  # engine.legacy.TaskAdapter: how task lines are read
    repo: str = Field(".", min_length=1)  # the repository of a legacy line that names none
    old_inbox: str = Field(".tasks/legacy-inbox", min_length=1)  # where `engine run --canary` leaves old work


class Config(_Section):
    queue: QueueConfig = QueueConfig()
    repos: ReposConfig = ReposConfig()
    ledger: LedgerConfig = LedgerConfig()
    plugins: PluginsConfig = PluginsConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
    policy: PolicyConfig = PolicyConfig()
    legacy: LegacyConfig = LegacyConfig()


class BreakerPolicy(_Section):
    """When a plugin's circuit breaker opens (``failures`` within ``window_sec``) and for how long."""

    failures: int = Field(5, ge=1, le=1000)
    window_sec: float = Field(600.0, gt=0)
    cooldown_sec: float = Field(300.0, gt=0)


class Performance(_Section):
    """``policies/performance.yml``: the longest a call of a plugin of each category may take, and the
    circuit breakers' thresholds."""

    breaker: BreakerPolicy = BreakerPolicy()

    timeouts: dict[str, PositiveFloat] = Field(default_factory=lambda: {
        "acquisition": 300.0, "transformation": 60.0, "state_change": 1800.0, "validation": 3600.0,
        "orchestration": 600.0})

    # the P95 latency of one call a plugin of each category may have in ``engine conformance`` (level L4)
    latency_p95_ms: dict[str, PositiveFloat] = Field(default_factory=lambda: {
        "acquisition": 2000.0, "transformation": 250.0, "state_change": 10000.0, "validation": 60000.0,
        "orchestration": 1000.0})

    def bound(self, category: str) -> float | None:
        return self.timeouts.get(category)


def _problems(error: ValidationError, file: Path) -> list[Problem]:
    out = []
    for e in error.errors():
        key = ".".join(str(p) for p in e["loc"])
        out.append(Problem(e["msg"], file=str(file), path=key or None))
    return out


def load_config(root: Path) -> Config:
    """The workspace's ``engine.toml``, or the defaults when it has none."""
    path = root / CONFIG_FILE
    if not path.exists():
        return Config()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise WorkspaceError(f"{path}: not valid TOML: {e}", problems=[Problem(str(e), file=str(path))],
                             file=str(path)) from e
    try:
        return Config.model_validate(raw)
    except ValidationError as e:
        raise WorkspaceError(f"{path}: invalid settings", problems=_problems(e, path), file=str(path)) from e


def load_performance(path: Path) -> Performance:
    """``policies/performance.yml``: per-category timeout bounds (defaults for categories it omits)."""
    if not path.exists():
        return Performance()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise WorkspaceError(f"{path}: not valid YAML: {getattr(e, 'problem', None) or e}",
                             problems=[Problem(str(e), file=str(path), line=line)], file=str(path)) from e
    raw = raw or {}
    if not isinstance(raw, dict):
        raise WorkspaceError(f"{path}: must be a mapping with a 'timeouts' key", file=str(path))
    found = [Problem(f"unknown plugin category {name!r}; categories: {', '.join(CATEGORIES)}", file=str(path),
                     path=f"{section}.{name}")
             for section in ("timeouts", "latency_p95_ms") for name in (raw.get(section) or {})
             if name not in CATEGORIES]
    if found:
        raise WorkspaceError(f"{path}: invalid performance policy", problems=found, file=str(path))
    try:
        defaults = Performance()
        return Performance.model_validate({**raw, "timeouts": {**defaults.timeouts, **(raw.get("timeouts") or {})},
                                           "latency_p95_ms": {**defaults.latency_p95_ms,
                                                              **(raw.get("latency_p95_ms") or {})}})
    except ValidationError as e:
        raise WorkspaceError(f"{path}: invalid performance policy", problems=_problems(e, path),
                             file=str(path)) from e
