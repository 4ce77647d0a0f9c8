"""The exception tree and the exit codes. This module imports nothing from ``engine``.

::

    EngineError                      base of everything the engine raises on purpose
    ├── UsageError                   a command was called wrongly
    ├── WorkspaceError               no workspace, or a workspace that is not usable
    ├── ModelError                   a .bpmn/.dmn model is invalid (carries every Problem)
    ├── DecisionError                a decision failed while evaluating (UNIQUE with two hits, ...)
    ├── ContractViolation            data does not match a contract (carries every Problem)
    ├── PluginLoadError              a plugin folder or manifest is invalid (carries every Problem)
    ├── PluginError                  a plugin call failed: ``kind`` business (a declared ``code``) or
    │                                technical; ``retryable`` says whether a retry may help
    ├── LedgerBroken                 the ledger chain or an entry is bad (names the entry)
    ├── PolicyDenied                 a policy in policies/ denied a run (carries every message)
    └── TaskFailed                   a task ended on the process's failure path

Verdicts are named as verdicts (``ContractViolation``, ``LedgerBroken``); crashes end in ``Error``.
Every error carries its subject as attributes, and ``problems`` when there can be several.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class ExitCode(enum.IntEnum):
    """Exit codes of the ``engine`` command. Documented in README.md; scripts may rely on them."""

    OK = 0
    TASKS_FAILED = 1  # the run finished, but at least one task file went to failed/ or quarantine/
    USAGE = 2  # bad command line
    MODEL_INVALID = 3  # a model (.bpmn/.dmn) or a decision is invalid; nothing was claimed
    LEDGER_BROKEN = 4  # `engine ledger verify` found a bad entry
    WORKSPACE = 5  # no workspace, or it cannot be used
    PLUGIN_INVALID = 6  # a plugin failed to load
    DECISION_FAILED = 7  # `engine decide` could not produce a result
    POLICY_DENIED = 8  # a policy denied the run before anything was claimed
    INTERRUPTED = 9  # `engine run` was stopped (a signal) with work left: files in inbox/ or processing/
    INTERNAL = 70  # an unexpected error; the traceback is in the workspace log
    ABORTED = 130  # stopped at once: a second SIGINT/SIGTERM during `engine run`, or Ctrl-C elsewhere


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input, located as precisely as we can.

    ``file``, ``line`` and ``element`` locate it in a model or task file; ``path`` is a JSON path
    for contract problems.
    """

    message: str
    file: str | None = None
    line: int | None = None
    element: str | None = None
    path: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file + (f":{self.line}" if self.line else "")
        parts = [p for p in (where, self.element, self.path) if p]
        prefix = " ".join(parts)
        return f"{prefix}: {self.message}" if prefix else self.message

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"message": self.message}
        for key in ("file", "line", "element", "path"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        out.update(self.extra)
        return out


class EngineError(Exception):
    """Base of every error the engine raises on purpose."""

    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str, *, problems: list[Problem] | None = None, **subject: Any) -> None:
        super().__init__(message)
        self.message = message
        self.problems: list[Problem] = list(problems or [])
        self.subject = subject
        for key, value in subject.items():
            setattr(self, key, value)

    def __str__(self) -> str:
        return self.message

    def lines(self) -> list[str]:
        """The message followed by one line per problem: what the CLI prints."""
        return [self.message, *(f"  {p}" for p in self.problems)]


class UsageError(EngineError):
    exit_code = ExitCode.USAGE


class WorkspaceError(EngineError):
    exit_code = ExitCode.WORKSPACE


class ModelError(EngineError):
    """A model is invalid. ``problems`` lists every problem found, each with file, line, element."""

    exit_code = ExitCode.MODEL_INVALID


class DecisionError(EngineError):
    """A decision could not be evaluated (for example UNIQUE with two matching rules)."""

    exit_code = ExitCode.DECISION_FAILED


class ContractViolation(EngineError):
    """Data did not match its contract. ``problems`` carry the JSON path of every violation."""

    exit_code = ExitCode.MODEL_INVALID


class PluginLoadError(EngineError):
    exit_code = ExitCode.PLUGIN_INVALID


class PluginError(EngineError):
    """A plugin call failed. Raised by a plugin, or by the kernel on its behalf.

    A plugin raises ``PluginError(message, code="MERGE_CONFLICT")`` for a *business* error, with a code
    its ``plugin.spec.json`` declares under ``errors``, and ``PluginError(message, retryable=...)`` for a
    *technical* failure. The kernel's own findings about a call (timeout, crashed worker, contract
    violation) are technical errors whose code starts with ``engine.``. ``kind``, ``code`` and
    ``retryable`` reach the process data as ``error.kind``, ``error.code`` and ``error.retryable``.
    """

    def __init__(self, message: str, *, retryable: bool = False, code: str | None = None,
                 kind: str | None = None, **subject: Any) -> None:
        super().__init__(message, **subject)
        self.retryable = retryable
        self.code = code
        self.kind = kind or ("business" if code and not code.startswith("engine.") else "technical")


class LedgerBroken(EngineError):
    """The ledger failed verification; ``file`` and ``line`` name the first bad entry."""

    exit_code = ExitCode.LEDGER_BROKEN


class PolicyDenied(EngineError):
    """A Rego policy denied what was asked; ``problems`` hold every denial, each naming its policy."""

    exit_code = ExitCode.POLICY_DENIED


class TaskFailed(EngineError):
    """A task ended on the failure path of the process; ``reason`` says why."""

    exit_code = ExitCode.TASKS_FAILED
