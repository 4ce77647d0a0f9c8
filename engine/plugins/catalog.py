"""What ``engine plugin list`` and ``engine plugin check`` report, computed here and rendered by the CLI.

``list_plugins`` is the plugins a kernel in this workspace would use, where each comes from, and every
plugin that would stop it from starting. ``check_plugin`` is every problem of one plugin: the static
ones of the loader and, for a plugin that runs in workers, what a real worker finds when it imports the
entry point (nothing is called).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import Problem
from engine.plugins.loader import LoadedPlugin, Registry, Replacement
from engine.plugins.pool import probe
from engine.workspace import Workspace


def describe(plugin: LoadedPlugin) -> dict[str, Any]:
    """One plugin as plain data: a row of ``engine plugin list``."""
    return {"id": plugin.id, "version": plugin.version, "category": plugin.spec.category,
            "operations": list(plugin.spec.operations), "origin": plugin.origin,
            "isolation": plugin.spec.isolation, "folder": str(plugin.folder), "replaces": plugin.replaces,
            "conformance_level": plugin.spec.conformance_level}


@dataclass(frozen=True)
class Listing:
    plugins: list[dict[str, Any]]
    replacements: list[Replacement]
    problems: list[Problem]

    def as_dict(self) -> dict[str, Any]:
        return {"plugins": self.plugins, "problems": [p.as_dict() for p in self.problems]}


def list_plugins(ws: Workspace) -> Listing:
    registry = Registry.discover(ws.plugin_sources())
    rows = [describe(p) for p in sorted(registry.plugins.values(), key=lambda p: p.id)]
    found = [p for e in registry.errors for p in (e.problems or [Problem(e.message)])]
    return Listing(rows, registry.replacements, found)


@dataclass(frozen=True)
class CheckReport:
    plugin: str
    problems: list[Problem]
    loaded: LoadedPlugin | None

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"plugin": self.plugin, "ok": self.ok, "problems": [p.as_dict() for p in self.problems]}


def check_plugin(ws: Workspace, plugin_id: str) -> CheckReport:
    """Every problem of the plugin used for ``plugin_id``; [] when it loads, statically and in a worker."""
    registry = Registry.discover(ws.plugin_sources())
    plugin = registry.get(plugin_id)
    found = registry.errors_of(plugin_id) + (registry.errors_of(plugin.id) if plugin and plugin.id != plugin_id
                                             else [])
    if plugin is None and not found:
        hint = registry.suggest(plugin_id)
        tail = f"did you mean {hint!r}?" if hint else f"installed: {', '.join(registry.ids()) or 'none'}"
        found = [Problem(f"no plugin {plugin_id!r} is installed; {tail}")]
    if plugin is not None and not found and plugin.spec.isolation == "process":
        found = probe(plugin, _workdir(ws))
    return CheckReport(plugin_id, found, plugin)


def _workdir(ws: Workspace) -> Path:
    return ws.root if ws.root.is_dir() else Path.cwd()
