"""The plugin developer kit: the only ``engine`` module a plugin may import.

A plugin is a folder with ``plugin.spec.json`` (its contract), ``manifest.json`` (identity and entry
point) and a Python file that defines one function per operation::

    def status(ctx: Context, data: Mapping[str, Any]) -> dict[str, Any]: ...

Every call takes ``(ctx, data)``. ``data`` has been checked against the operation's ``input_schema``
and the returned dict is checked against its ``output_schema``. A plugin must not read the wall clock
(use ``ctx.now``) or draw unseeded randomness (use ``ctx.seed``). It signals a business error by raising
``PluginError(message, code="CODE")`` with a code its ``plugin.spec.json`` declares under ``errors``, and a
technical failure by raising ``PluginError(message, retryable=...)``. Anything else it raises, and
anything it prints, exits or crashes with, costs its own call only: the kernel reports it as a
technical error of that call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import PluginError

if TYPE_CHECKING:  # a worker starts without structlog; its ctx.log has the same methods
    import structlog

__all__ = ["Context", "PluginError", "task_problems"]


@dataclass(frozen=True)
class Context:
    """What the kernel tells a plugin about the call. New needs become new fields, never new parameters."""

    run_id: str
    task_id: str
    now: datetime  # from the kernel clock: plugins never read the wall clock
    seed: int  # for any randomness
    whatif: bool  # plan only: change nothing
    workdir: Path  # the task's repository (or worktree)
    log: structlog.typing.FilteringBoundLogger  # already bound to run, task and plugin: bind, debug ... error


def task_problems(data: Mapping[str, Any] | Any) -> list[str]:
    """Every way ``data`` breaks the task.v1 contract, one line each with its JSON path; [] if none."""
    from engine.contracts import problems as _problems  # on first use: workers start without it

    return [f"{p.path}: {p.message}" for p in _problems("task.v1", data)]
