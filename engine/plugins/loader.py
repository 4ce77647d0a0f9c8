"""Finding, validating and importing plugins.

A plugin folder is validated before anything in it is imported: ``plugin.spec.json`` against
``contracts/plugin.v1.json``, ``manifest.json`` against its ``$defs/manifest``, the two against each
other, every operation's schemas, the source digest, and the entry point's functions. Every problem of
a folder is reported at once, each naming the file and the field.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from engine.contracts import Manifest, PluginSpec, check_schema, problems
from engine.errors import PluginLoadError, Problem

SPEC_FILE = "plugin.spec.json"
MANIFEST_FILE = "manifest.json"
_DIGEST_SKIP_DIRS = {"__pycache__", "tests", "conformance", ".pytest_cache"}

Operation = Callable[..., Any]


@dataclass(frozen=True)
class LoadedPlugin:
    """A plugin that passed every check. ``digest`` is the plugin version determinism is judged by."""

    spec: PluginSpec
    manifest: Manifest
    folder: Path
    digest: str
    functions: dict[str, Operation]

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def version(self) -> str:
        return self.spec.version


def source_digest(folder: Path) -> str:
    """SHA-256 over the plugin's files (relative path and content): its contract and code, not its
    manifest, documentation (``*.md``), tests or caches."""
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if not path.is_file() or rel.name == MANIFEST_FILE or path.suffix in (".pyc", ".md"):
            continue
        if any(part in _DIGEST_SKIP_DIRS for part in rel.parts):
            continue
        h.update(rel.as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return "sha256:" + h.hexdigest()


def _read_json(path: Path, found: list[Problem]) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        found.append(Problem(f"missing {path.name}", file=str(path)))
    except json.JSONDecodeError as e:
        found.append(Problem(f"not valid JSON: {e.msg} (column {e.colno})", file=str(path), line=e.lineno))
    return None


def _import(folder: Path, manifest: Manifest) -> ModuleType:
    path = (folder / manifest.entry_point).resolve()
    name = "engine_plugin_" + manifest.id.replace("-", "_")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def load_plugin(folder: Path) -> LoadedPlugin:
    """Validate and import the plugin in ``folder``; ``PluginLoadError`` lists every problem."""
    found: list[Problem] = []
    spec_path, manifest_path = folder / SPEC_FILE, folder / MANIFEST_FILE
    raw_spec = _read_json(spec_path, found)
    raw_manifest = _read_json(manifest_path, found)
    if raw_spec is not None:
        found += problems("plugin.v1", raw_spec, file=str(spec_path))
    if raw_manifest is not None:
        found += problems("plugin.v1#/$defs/manifest", raw_manifest, file=str(manifest_path))
    if found:
        raise PluginLoadError(f"plugin {folder.name!r} is invalid", problems=found, plugin=folder.name)

    spec = PluginSpec.model_validate(raw_spec)
    manifest = Manifest.model_validate(raw_manifest)
    for key in ("id", "version"):
        if getattr(spec, key) != getattr(manifest, key):
            found.append(Problem(f"{key} {getattr(manifest, key)!r} differs from {SPEC_FILE}'s "
                                 f"{getattr(spec, key)!r}", file=str(manifest_path), path=f"$.{key}"))
    if spec.id != folder.name:
        found.append(Problem(f"plugin id {spec.id!r} differs from its folder name {folder.name!r}",
                             file=str(spec_path), path="$.id"))
    if spec.default_operation and spec.default_operation not in spec.operations:
        found.append(Problem(f"default_operation {spec.default_operation!r} is not one of the operations",
                             file=str(spec_path), path="$.default_operation"))
    for op_name, op in spec.operations.items():
        for side in ("input_schema", "output_schema"):
            for p in check_schema(getattr(op, side)):
                found.append(Problem(p.message, file=str(spec_path), path=f"$.operations.{op_name}.{side}"))
    digest = source_digest(folder)
    if manifest.source_digest and manifest.source_digest != digest:
        found.append(Problem(f"source_digest does not match the source on disk ({digest}); "
                             "update it if the change is intended", file=str(manifest_path),
                             path="$.source_digest"))
    entry = folder / manifest.entry_point
    if not entry.is_file():
        found.append(Problem(f"entry point {manifest.entry_point!r} does not exist", file=str(manifest_path),
                             path="$.entry_point"))
    if found:
        raise PluginLoadError(f"plugin {folder.name!r} is invalid", problems=found, plugin=spec.id)

    try:
        module = _import(folder, manifest)
    except Exception as e:  # a plugin's import error is the plugin's problem, not the kernel's
        raise PluginLoadError(f"plugin {spec.id!r} failed to import", plugin=spec.id, problems=[
            Problem(f"{type(e).__name__}: {e}", file=str(entry))]) from e
    functions: dict[str, Operation] = {}
    for op_name in spec.operations:
        fn = getattr(module, op_name, None)
        if not callable(fn):
            found.append(Problem(f"operation {op_name!r} has no function {op_name}(ctx, data) in "
                                 f"{manifest.entry_point}", file=str(entry), path=f"$.operations.{op_name}"))
        else:
            functions[op_name] = fn
    if found:
        raise PluginLoadError(f"plugin {spec.id!r} is invalid", problems=found, plugin=spec.id)
    return LoadedPlugin(spec, manifest, folder, digest, functions)


class Registry:
    """The installed plugins, by id. Built from plugin folders in search-path order; first id wins."""

    def __init__(self, plugins: dict[str, LoadedPlugin], errors: list[PluginLoadError]) -> None:
        self.plugins = plugins
        self.errors = errors

    @classmethod
    def discover(cls, search_path: Iterable[Path]) -> Registry:
        plugins: dict[str, LoadedPlugin] = {}
        errors: list[PluginLoadError] = []
        for root in search_path:
            if not root.is_dir():
                continue
            for folder in sorted(p for p in root.iterdir() if p.is_dir() and (p / SPEC_FILE).exists()):
                if folder.name in plugins:
                    continue
                try:
                    plugins[folder.name] = load_plugin(folder)
                except PluginLoadError as e:
                    errors.append(e)
        return cls(plugins, errors)

    def ids(self) -> list[str]:
        return sorted(self.plugins)

    def suggest(self, name: str) -> str | None:
        close = difflib.get_close_matches(name, self.ids(), n=1, cutoff=0.6)
        return close[0] if close else None

    def get(self, plugin_id: str) -> LoadedPlugin | None:
        return self.plugins.get(plugin_id)

    def resolve_topic(self, topic: str) -> tuple[LoadedPlugin, str | None] | None:
        """``<plugin-id>`` or ``<plugin-id>.<operation>`` -> (plugin, operation or None); None if unknown."""
        plugin_id, _, operation = topic.partition(".")
        plugin = self.plugins.get(plugin_id)
        if plugin is None or (operation and operation not in plugin.spec.operations):
            return None
        return plugin, operation or None
