"""Finding and validating plugins; importing only those that run in the engine's process.

Plugins are looked for, in this order: the workspace's ``plugins/``, the folders of
``ENGINE_PLUGIN_PATH``, the ``engine.plugins`` entry points of installed distributions, the bundled
plugins. Two plugins with one id are refused unless the first one's manifest says
``"replaces": "<id>"``; a plugin whose manifest replaces another id takes that id's place.

A plugin folder is validated before anything in it runs, and every problem of it is reported at once,
each naming the file and the field: the folder and every file in it stay inside where they were found
(no symlink out, no entry point out); ``plugin.spec.json`` against ``contracts/plugin.v1.json``,
``manifest.json`` against its ``$defs/manifest``, the two against each other; every operation's
schemas; the source digest; and the entry point, parsed (not run), defines every operation at its top
level.

The kernel imports only ``isolation: "inprocess"`` plugins. A plugin that runs in worker processes
(``isolation: "process"``, the default) is imported there and never here, so nothing it does at import
time (``os._exit``, a hang, a stray thread) reaches the kernel.
"""

from __future__ import annotations

import ast
import difflib
import hashlib
import importlib.machinery
import importlib.metadata
import importlib.util
import json
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from engine.bundled import bundled
from engine.contracts import Manifest, PluginSpec, check_schema, problems
from engine.errors import PluginLoadError, Problem
from engine.sdk import SUPPORTED_SDK_VERSIONS

SPEC_FILE = "plugin.spec.json"
MANIFEST_FILE = "manifest.json"
ENTRY_POINT_GROUP = "engine.plugins"
# Where a plugin was found (``LoadedPlugin.origin``), and how messages name it.
ORIGINS = {"workspace": "workspace", "path": "ENGINE_PLUGIN_PATH", "entry-point": "entry-point",
           "bundled": "bundled", "builtin": "built-in"}
_DIGEST_SKIP_DIRS = {"__pycache__"}

Operation = Callable[..., Any]
# Where plugins are looked for: (origin, folder of plugin folders), with None for the entry points.
Source = tuple[str, Path | None]


@dataclass(frozen=True)
class LoadedPlugin:
    """A plugin that passed every check. ``digest`` is the plugin version determinism is judged by.

    ``functions`` holds the operations of an ``inprocess`` plugin; it is empty for a plugin that runs in
    workers, whose code the kernel never imports. ``origin`` says where it was found (one of
    ``ORIGINS``); ``replaces`` is the id its manifest says it takes the place of.
    """

    spec: PluginSpec
    manifest: Manifest
    folder: Path
    digest: str
    functions: dict[str, Operation]
    origin: str = "path"
    replaces: str | None = None

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def version(self) -> str:
        return self.spec.version


def _walk(folder: Path, *, caches: bool = False) -> list[Path]:
    """Every file and symlink in ``folder`` (Python caches only if ``caches``); symlinked folders are
    listed, not entered."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath)
        if not caches:
            dirnames[:] = [d for d in dirnames if d not in _DIGEST_SKIP_DIRS]
            filenames = [name for name in filenames if not name.endswith(".pyc")]
        found += [here / name for name in dirnames if (here / name).is_symlink()]
        found += [here / name for name in filenames]
    return sorted(found)


def source_files(folder: Path) -> list[Path]:
    """The files (and symlinks) ``source_digest`` covers, sorted: every one but ``manifest.json`` and
    Python caches."""
    return [path for path in _walk(folder) if path.relative_to(folder).as_posix() != MANIFEST_FILE]


def source_digest(folder: Path) -> str:
    """SHA-256 over every file of the plugin (relative path and content) but ``manifest.json``, which
    holds the digest, and Python caches (``__pycache__``, ``*.pyc``). A symlink counts as where it
    points (its target, inside the folder, counts by its content)."""
    h = hashlib.sha256()
    for path in source_files(folder):
        rel = path.relative_to(folder).as_posix()
        body = b"link:" + os.readlink(path).encode() if path.is_symlink() else b"file:" + path.read_bytes()
        h.update(rel.encode() + b"\0" + body + b"\0")
    return "sha256:" + h.hexdigest()


def legacy_source_digest(folder: Path) -> str:
    """The digest engine 0.1 wrote: the plugin's files but ``manifest.json``, documentation (``*.md``),
    ``tests/``, ``conformance/`` and caches. Still accepted in a manifest, so plugin folders made then
    keep loading unchanged; the plugin's version in the ledger is always ``source_digest``."""
    h = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if not path.is_file() or rel.name == MANIFEST_FILE or path.suffix in (".pyc", ".md"):
            continue
        if any(part in {"__pycache__", "tests", "conformance", ".pytest_cache"} for part in rel.parts):
            continue
        h.update(rel.as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return "sha256:" + h.hexdigest()


def _inside(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root.resolve())


def _links_out(folder: Path) -> list[Problem]:
    """Every symlink in ``folder`` that resolves outside it."""
    return [Problem(f"is a symlink to {path.resolve()}, outside the plugin folder {folder}; a plugin's "
                    "files must be inside its folder", file=str(path))
            for path in _walk(folder, caches=True)  # Python runs a cached .pyc instead of its source
            if path.is_symlink() and not _inside(path, folder)]


def _top_level_names(body: list[ast.stmt]) -> set[str] | None:
    """The names a module binds at its top level (also inside top-level if/try/with blocks);
    None when it has ``from x import *``, whose names cannot be known without running it."""
    names: set[str] = set()
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            if any(alias.name == "*" for alias in node.names):
                return None
            names.update(alias.asname or alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t)
                         if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store))
        else:
            nested = [s for part in ("body", "orelse", "finalbody") for s in getattr(node, part, [])]
            nested += [s for handler in getattr(node, "handlers", []) for s in handler.body]
            inner = _top_level_names(nested)
            if inner is None:
                return None
            names |= inner
    return names


def _static_check(entry: Path, entry_point: str, spec: PluginSpec) -> list[Problem]:
    """Parse (never run) the entry point: a syntax error, or an operation with no top-level name."""
    try:
        tree = ast.parse(entry.read_bytes(), filename=str(entry))
    except SyntaxError as e:
        column = f" (column {e.offset})" if e.offset else ""
        return [Problem(f"syntax error: {e.msg}{column}", file=str(entry), line=e.lineno)]
    except ValueError as e:  # null bytes
        return [Problem(f"not Python source: {e}", file=str(entry))]
    names = _top_level_names(tree.body)
    if names is None:
        return []
    return [Problem(f"operation {op!r} has no function {op}(ctx, data) at the top level of {entry_point}",
                    file=str(entry), path=f"$.operations.{op}") for op in spec.operations if op not in names]


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


def load_plugin(folder: Path, *, origin: str = "path", root: Path | None = None,
                name: str | None = None, verify_digest: bool = True) -> LoadedPlugin:
    """Validate the plugin in ``folder``, and import it only if it is ``inprocess``.

    ``root`` is the folder it was found in, which it must not leave; ``name`` the id it was found under
    (its folder's name, or its entry point's name). ``PluginLoadError`` lists every problem.
    ``verify_digest`` false: a manifest's ``source_digest`` that no longer matches the folder is let pass
    (an author's own tests while the code changes; the kernel, ``plugin check`` and ``conformance`` check it).
    """
    name = name or folder.name
    if root is not None and not _inside(folder, root):
        raise PluginLoadError(f"plugin {name!r} is refused: its folder leaves {root}", plugin=name, problems=[
            Problem(f"resolves to {folder.resolve()}, outside {root}; a plugin folder must be inside the folder "
                    "it is found in (copy it there instead of linking it)", file=str(folder))])
    found: list[Problem] = []
    spec_path, manifest_path = folder / SPEC_FILE, folder / MANIFEST_FILE
    raw_spec = _read_json(spec_path, found)
    raw_manifest = _read_json(manifest_path, found)
    if raw_spec is not None:
        found += problems("plugin.v1", raw_spec, file=str(spec_path))
    if raw_manifest is not None:
        found += problems("plugin.v1#/$defs/manifest", raw_manifest, file=str(manifest_path))
    found += _links_out(folder)
    if found:
        raise PluginLoadError(f"plugin {name!r} is invalid", problems=found, plugin=name)

    spec = PluginSpec.model_validate(raw_spec)
    manifest = Manifest.model_validate(raw_manifest)
    for key in ("id", "version"):
        if getattr(spec, key) != getattr(manifest, key):
            found.append(Problem(f"{key} {getattr(manifest, key)!r} differs from {SPEC_FILE}'s "
                                 f"{getattr(spec, key)!r}", file=str(manifest_path), path=f"$.{key}"))
    if spec.id != name:
        what = "entry point's name" if origin == "entry-point" else "folder name"
        found.append(Problem(f"plugin id {spec.id!r} differs from its {what} {name!r}", file=str(spec_path),
                             path="$.id"))
    if spec.category == "state_change" and not spec.whatif:
        found.append(Problem('a state_change plugin must support WhatIf: set "whatif": true and plan (change '
                             "nothing) whenever ctx.whatif is true", file=str(spec_path), path="$.whatif"))
    if spec.sdk_versions and not set(spec.sdk_versions) & set(SUPPORTED_SDK_VERSIONS):
        found.append(Problem(f"written for plugin SDK {', '.join(spec.sdk_versions)}; this engine provides SDK "
                             f"{', '.join(SUPPORTED_SDK_VERSIONS)}: use an engine that provides it, or port the "
                             "plugin and add the version to sdk_versions", file=str(spec_path), path="$.sdk_versions"))
    if spec.default_operation and spec.default_operation not in spec.operations:
        found.append(Problem(f"default_operation {spec.default_operation!r} is not one of the operations",
                             file=str(spec_path), path="$.default_operation"))
    digest = source_digest(folder)
    # A plugin shipped with the engine, unchanged since (its digest is the one it shipped with), had its
    # schemas checked by the engine's own tests: checking them against the JSON Schema metaschema again
    # (about 2 ms each) would be most of every command's start.
    shipped = origin in ("bundled", "builtin") and manifest.source_digest == digest
    for op_name, op in spec.operations.items() if not shipped else ():
        for side in ("input_schema", "output_schema"):
            for p in check_schema(getattr(op, side)):
                found.append(Problem(p.message, file=str(spec_path), path=f"$.operations.{op_name}.{side}"))
    if verify_digest and manifest.source_digest and manifest.source_digest not in (digest,
                                                                                    legacy_source_digest(folder)):
        found.append(Problem(f"source_digest does not match the source on disk ({digest}); "
                             "update it if the change is intended", file=str(manifest_path),
                             path="$.source_digest"))
    entry = folder / manifest.entry_point
    if not _inside(entry, folder):
        found.append(Problem(f"entry point {manifest.entry_point!r} resolves to {entry.resolve()}, outside the "
                             "plugin folder; name a file inside it", file=str(manifest_path), path="$.entry_point"))
    elif not entry.is_file():
        found.append(Problem(f"entry point {manifest.entry_point!r} does not exist", file=str(manifest_path),
                             path="$.entry_point"))
    else:
        found += _static_check(entry, manifest.entry_point, spec)
    if found:
        raise PluginLoadError(f"plugin {name!r} is invalid", problems=found, plugin=name)

    functions: dict[str, Operation] = {}
    if spec.isolation == "inprocess":
        functions = _functions(spec, manifest, folder, entry)
    return LoadedPlugin(spec, manifest, folder, digest, functions, origin=origin, replaces=manifest.replaces)


def _functions(spec: PluginSpec, manifest: Manifest, folder: Path, entry: Path) -> dict[str, Operation]:
    """Import an ``inprocess`` plugin and take one function per operation."""
    try:
        module = _import(folder, manifest)
    except Exception as e:  # a plugin's import error is the plugin's problem, not the kernel's
        raise PluginLoadError(f"plugin {spec.id!r} failed to import", plugin=spec.id, problems=[
            Problem(f"{type(e).__name__}: {e}", file=str(entry))]) from e
    functions: dict[str, Operation] = {}
    found: list[Problem] = []
    for op_name in spec.operations:
        fn = getattr(module, op_name, None)
        if callable(fn):
            functions[op_name] = fn
        else:
            found.append(Problem(f"operation {op_name!r} has no function {op_name}(ctx, data) in "
                                 f"{manifest.entry_point}", file=str(entry), path=f"$.operations.{op_name}"))
    if found:
        raise PluginLoadError(f"plugin {spec.id!r} is invalid", problems=found, plugin=spec.id)
    return functions


# -- discovery ----------------------------------------------------------------------------------------


def package_folder(module: str) -> Path:
    """The folder of the installed package ``module`` that holds ``plugin.spec.json``, found without
    running the package or its parents; ``LookupError`` saying why when there is none."""
    top, *rest = module.split(".")
    try:
        spec = importlib.util.find_spec(top)  # a top-level name is found, not executed
    except (ImportError, ValueError) as e:
        raise LookupError(f"cannot look up {top!r}: {e}") from e
    for part in rest:
        locations = list(spec.submodule_search_locations or []) if spec else []
        spec = importlib.machinery.PathFinder.find_spec(f"{spec.name}.{part}", locations) if spec else None
    if spec is None:
        raise LookupError(f"no package {module!r} is installed")
    if not spec.submodule_search_locations:
        raise LookupError(f"{module!r} is a module, not a package: a plugin is a package folder holding "
                          f"{SPEC_FILE}, {MANIFEST_FILE} and its entry point")
    for location in spec.submodule_search_locations:
        if (Path(location) / SPEC_FILE).is_file():
            return Path(location)
    raise LookupError(f"package {module!r} ({', '.join(spec.submodule_search_locations)}) has no {SPEC_FILE}")


@dataclass(frozen=True)
class Found:
    """A plugin folder on the search path, not yet validated."""

    name: str  # the id it is found under: its folder's name, or its entry point's name
    folder: Path
    origin: str
    root: Path | None  # the folder it must stay inside; None for an entry point's package

    def declared_replaces(self) -> str | None:
        """The manifest's ``replaces``, read without validating (the load reports a bad manifest)."""
        try:
            value = json.loads((self.folder / MANIFEST_FILE).read_text(encoding="utf-8")).get("replaces")
        except (OSError, ValueError, AttributeError):
            return None
        return value if isinstance(value, str) else None


def _entry_point_plugins() -> tuple[list[Found], list[PluginLoadError]]:
    found: list[Found] = []
    errors: list[PluginLoadError] = []
    for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: (e.name, e.value)):
        dist = ep.dist.name if ep.dist is not None else "an unknown distribution"
        where = f"entry point {ep.name} = {ep.value} in group {ENTRY_POINT_GROUP} of {dist}"
        try:
            found.append(Found(ep.name, package_folder(ep.module), "entry-point", None))
        except LookupError as e:
            errors.append(PluginLoadError(f"plugin {ep.name!r} cannot be found", plugin=ep.name,
                                          problems=[Problem(f"{where}: {e}")]))
    return found, errors


def _search(sources: Iterable[Path | Source]) -> tuple[list[Found], list[PluginLoadError]]:
    found: list[Found] = []
    errors: list[PluginLoadError] = []
    for source in sources:
        if isinstance(source, Path):  # a bare folder: the bundled one, or one of ENGINE_PLUGIN_PATH's
            source = ("bundled" if source.resolve() == bundled("plugins").resolve() else "path", source)
        origin, root = source
        if root is None:
            more, bad = _entry_point_plugins()
            found += more
            errors += bad
        elif root.is_dir():
            found += [Found(p.name, p, origin, root) for p in sorted(root.iterdir())
                      if p.is_dir() and (p / SPEC_FILE).exists()]
    return found, errors


def _show(folder: Path, base: Path | None) -> str:
    return str(folder.relative_to(base)) if base is not None and folder.is_relative_to(base) else str(folder)


@dataclass(frozen=True)
class Replacement:
    """A plugin set aside on purpose: ``by`` is used for the id ``replaced`` instead of the one found at
    ``folder`` (from ``origin``)."""

    replaced: str
    by: LoadedPlugin
    origin: str
    folder: Path

    def describe(self, base: Path | None = None) -> str:
        """``plugin git-inspector: using workspace plugins/git-inspector (replaces the bundled one)``;
        folders inside ``base`` are shown relative to it."""
        which = "" if self.by.id == self.replaced else f"{self.by.id} from "
        used, set_aside = (ORIGINS.get(o, o) for o in (self.by.origin, self.origin))
        return (f"plugin {self.replaced}: using {which}{used} {_show(self.by.folder, base)} "
                f"(replaces the {set_aside} one)")


def _refusal(found: Found, message: str) -> PluginLoadError:
    return PluginLoadError(f"plugin {found.name!r} is refused", plugin=found.name, problems=[
        Problem(message, file=str(found.folder / MANIFEST_FILE), path="$.replaces")])


def _replacements(first: dict[str, Found], later: dict[str, list[Found]], wants: dict[str, str | None],
                  errors: list[PluginLoadError]) -> tuple[dict[str, str], set[str]]:
    """Who replaces whom (replaced id -> id of the plugin replacing it) and which ids are refused; every
    shadowing that no manifest asks for, and every ``replaces`` naming no plugin, goes to ``errors``."""
    replaced_by: dict[str, str] = {}
    refused: set[str] = set()
    for name, target in wants.items():
        if target is None or target == name:
            continue
        if target not in first:
            errors.append(_refusal(first[name], f"replaces {target!r}, but no plugin {target!r} is found; "
                                                "remove \"replaces\" or install the plugin it replaces"))
            refused.add(name)
        elif target in replaced_by:
            errors.append(_refusal(first[name], f"replaces {target!r}, which {replaced_by[target]!r} "
                                                "replaces too; keep one of them"))
            refused.add(name)
        else:
            replaced_by[target] = name
    for name, f in first.items():
        if name in later and wants[name] != name and name not in replaced_by:
            other = later[name][0]
            errors.append(PluginLoadError(
                f"two plugins have the id {name!r}: {f.folder} ({f.origin}) and {other.folder} ({other.origin})",
                plugin=name, problems=[Problem(
                    f"plugin {name!r} is also found in {other.folder} ({other.origin}); add "
                    f"\"replaces\": \"{name}\" to this manifest if this one is meant to take its place, "
                    "else rename one of them", file=str(f.folder / MANIFEST_FILE), path="$.replaces")]))
            refused.add(name)
        elif wants[name] == name and name not in later:
            errors.append(_refusal(f, f"replaces {name!r}, but no other plugin {name!r} is found later in "
                                      "the search path; remove \"replaces\""))
            refused.add(name)
    return replaced_by, refused


@dataclass
class Registry:
    """The installed plugins, by id, built from the search path (``discover``).

    ``aliases`` maps an id that another plugin replaces to that plugin's id: ``get`` and
    ``resolve_topic`` answer for it with the replacing plugin. ``errors`` holds every plugin that was
    refused or failed to load; ``replacements`` every plugin set aside on purpose.
    """

    plugins: dict[str, LoadedPlugin]
    errors: list[PluginLoadError]
    aliases: dict[str, str] = field(default_factory=dict)
    replacements: list[Replacement] = field(default_factory=list)

    @classmethod
    def discover(cls, sources: Iterable[Path | Source]) -> Registry:
        """Find, check and load the plugins of ``sources``, in search order: ``(origin, folder)`` pairs, the
        folder None for the ``engine.plugins`` entry points (``Workspace.plugin_sources()``), or bare
        folders of plugin folders."""
        candidates, errors = _search(sources)
        first: dict[str, Found] = {}
        later: dict[str, list[Found]] = {}
        for candidate in candidates:
            if candidate.name in first:
                later.setdefault(candidate.name, []).append(candidate)
            else:
                first[candidate.name] = candidate
        wants = {name: f.declared_replaces() for name, f in first.items()}
        replaced_by, refused = _replacements(first, later, wants, errors)

        plugins: dict[str, LoadedPlugin] = {}
        for name, f in first.items():
            if name in replaced_by:
                continue  # set aside on purpose: not even validated
            try:
                plugin = load_plugin(f.folder, origin=f.origin, root=f.root, name=name)
            except PluginLoadError as e:
                errors.append(e)
                continue
            if name not in refused:
                plugins[name] = plugin

        aliases: dict[str, str] = {}
        replacements = [Replacement(name, plugins[name], later[name][0].origin, later[name][0].folder)
                        for name in plugins if name in later and wants[name] == name]
        for target in replaced_by:
            chain, user = [target], replaced_by[target]
            while user in replaced_by and user not in chain:  # A replaces B, which replaces C: A is used for C
                chain.append(user)
                user = replaced_by[user]
            if user in chain:
                if target != min(chain):
                    continue  # one error per cycle
                errors.append(PluginLoadError(f"plugins {', '.join(map(repr, chain))} replace each other",
                                              plugin=target, problems=[Problem(
                                                  "a plugin cannot replace one that replaces it; remove one "
                                                  "\"replaces\"", file=str(first[target].folder / MANIFEST_FILE),
                                                  path="$.replaces")]))
            elif user in plugins:
                aliases[target] = user
                replacements.append(Replacement(target, plugins[user], first[target].origin, first[target].folder))
        return cls(plugins, errors, aliases, replacements)

    def ids(self) -> list[str]:
        return sorted(self.plugins)

    def suggest(self, name: str) -> str | None:
        close = difflib.get_close_matches(name, [*self.plugins, *self.aliases], n=1, cutoff=0.6)
        return close[0] if close else None

    def get(self, plugin_id: str) -> LoadedPlugin | None:
        """The plugin used for ``plugin_id``: its own, or the one that replaces it."""
        return self.plugins.get(self.aliases.get(plugin_id, plugin_id))

    def resolve_topic(self, topic: str) -> tuple[LoadedPlugin, str | None] | None:
        """``<plugin-id>`` or ``<plugin-id>.<operation>`` -> (plugin, operation or None); None if unknown."""
        plugin_id, _, operation = topic.partition(".")
        plugin = self.get(plugin_id)
        if plugin is None or (operation and operation not in plugin.spec.operations):
            return None
        return plugin, operation or None

    def errors_of(self, plugin_id: str) -> list[Problem]:
        """Every problem found with the plugin ``plugin_id`` (refused, or failed to load)."""
        return [p for e in self.errors if e.subject.get("plugin") == plugin_id
                for p in (e.problems or [Problem(e.message)])]
