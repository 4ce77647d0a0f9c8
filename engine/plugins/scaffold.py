"""``engine plugin new``: a plugin folder made from a template of its category, and kept in step with its spec.

What the generator owns, and what it never touches:

- ``plugin.spec.json`` is the author's from the start: written once from the category's template, then only
  read. ``manifest.json`` is generated whole (``id``, ``version`` and ``entry_point`` from the spec, the
  ``source_digest`` over the finished folder); its other fields (``dependencies``, ``license``,
  ``replaces`` ...) are kept as the author set them.
- In ``src/<module>.py``, ``tests/test_<module>.py``, ``README_PLUGIN.md`` and ``healthcheck.md`` only the
  region between the fences (``# BEGIN AUTO`` / ``# END AUTO``, in Markdown ``<!-- BEGIN AUTO -->`` /
  ``<!-- END AUTO -->``) is generated; everything outside is the author's and is kept byte for byte. The
  module's fence holds one function per operation that hands the call to ``_<operation>``, written outside
  the fence: an operation added to the spec gets a stub ``_<operation>`` appended once (raising
  ``PluginError`` until written), never rewritten.
- ``conformance/fixtures/<operation>/`` golden fixtures and ``conformance/features/<operation>.feature``
  behaviour scenarios are written once, from the template, for the template's operation; the author adds
  the others.

A folder that exists is updated only when the generator made it (its entry point holds the AUTO fence).
"""

from __future__ import annotations

import ast
import json
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from string import Template
from typing import Any

from engine.contracts import problems
from engine.errors import UsageError
from engine.plugins.loader import MANIFEST_FILE, SPEC_FILE, source_digest

CATEGORIES = ("acquisition", "transformation", "state_change", "validation", "orchestration")
TEMPLATES = Path(__file__).resolve().parent / "templates"
ID_PATTERN = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")  # contracts/plugin.v1.json $defs/plugin_id
PY_FENCE = ("# BEGIN AUTO", "# END AUTO")
MD_FENCE = ("<!-- BEGIN AUTO -->", "<!-- END AUTO -->")
PY_BEGIN = "# BEGIN AUTO (engine plugin new: generated from plugin.spec.json; edits here are overwritten)"


@dataclass
class Scaffold:
    """What ``new_plugin`` did: the folder, and the files it created and rewrote (relative to the folder)."""

    plugin: str
    folder: Path
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"plugin": self.plugin, "folder": str(self.folder), "created": self.created, "updated": self.updated}


def module_name(plugin_id: str) -> str:
    return plugin_id.replace("-", "_")


def _template(name: str) -> Template:
    return Template((TEMPLATES / name).read_text(encoding="utf-8"))


def _operations_block(spec: dict[str, Any]) -> str:
    lines: list[str] = []
    for name, op in spec["operations"].items():
        doc = _docstring(str(op.get("description") or f"The {name} operation."), "    ")
        lines += ["", "", f"def {name}(ctx: Context, data: Mapping[str, Any]) -> dict[str, Any]:", doc,
                  f"    return _{name}(ctx, data)"]
    return "\n".join(lines).strip("\n")


def _wrap(text: str, indent: str) -> str:
    """``text`` on as many lines as keep each, with its indent and quotes, within 120 characters."""
    words = " ".join(text.replace("\\", "\\\\").replace('"""', "'''").split())
    return f"\n{indent}".join(textwrap.wrap(words, width=114 - len(indent)) or [""])


def _docstring(text: str, indent: str) -> str:
    body = _wrap(text, indent)
    return f'{indent}"""{body}"""' if "\n" not in body else f'{indent}"""{body}\n{indent}"""'


def _stub(spec: dict[str, Any], name: str, module: str) -> str:
    return (f"def _{name}(ctx: Context, data: Mapping[str, Any]) -> dict[str, Any]:\n"
            f'    """Write the {name} operation here: plugin.spec.json says what it takes and answers."""\n'
            f'    raise PluginError("{spec["id"]}.{name} is not written yet: write _{name} in src/{module}.py",\n'
            "                      retryable=False)\n")


def _test_block(spec: dict[str, Any], module: str) -> str:
    return "\n".join([f"MODULE = {module!r}", f"ENTRY_POINT = {f'src/{module}.py'!r}",
                      f"OPERATIONS = {list(spec['operations'])!r}"])


def _readme_block(spec: dict[str, Any]) -> str:
    parts = ["## Operations", ""]
    for name, op in spec["operations"].items():
        parts += [f"### `{name}` (topic `{spec['id']}.{name}`)", "", str(op.get("description") or "(no description)"),
                  "", "Input:", "", "```json", json.dumps(op["input_schema"], indent=2), "```", "", "Output:", "",
                  "```json", json.dumps(op["output_schema"], indent=2), "```", ""]
    errors = spec.get("errors") or {}
    parts += ["## Errors", ""]
    parts += [f"- `{code}`: {meaning}" for code, meaning in errors.items()] or ["No business error codes declared."]
    parts += ["", f"Timeout {spec.get('timeout_sec', 60)} s, isolation `{spec.get('isolation', 'process')}`, "
                  f"WhatIf {'supported' if spec.get('whatif') else 'not supported'}, side effects: "
                  f"{', '.join(spec.get('side_effects') or ['none declared'])}."]
    return "\n".join(parts)


def _health_block(spec: dict[str, Any]) -> str:
    pid = spec["id"]
    lines = ["```sh", f"engine plugin check {pid}", f"python -m pytest plugins/{pid}/tests -p no:cacheprovider",
             f"engine conformance {pid}", "```", "", "Topics (camunda:topic of a service task):", ""]
    lines += [f"- `{pid}.{name}`" for name in spec["operations"]]
    return "\n".join(lines)


def _fence(text: str, fence: tuple[str, str], body: str, file: Path) -> str:
    """``text`` with the region between its fence lines replaced by ``body``; UsageError without a fence."""
    lines = text.splitlines(keepends=True)
    begin = next((i for i, line in enumerate(lines) if line.strip().startswith(fence[0])), None)
    end = next((i for i, line in enumerate(lines) if begin is not None and i > begin
                and line.strip().startswith(fence[1])), None)
    if begin is None or end is None:
        raise UsageError(f"{file}: no {fence[0]} ... {fence[1]} region; restore the fences (or delete the file "
                         "to have it made again) and run `engine plugin new` again", file=str(file))
    return "".join([*lines[:begin + 1], body.rstrip("\n") + "\n", *lines[end:]])


def _generated(folder: Path) -> bool:
    """Whether ``folder`` was made by the generator: its entry point holds the AUTO fence."""
    try:
        manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
        entry = folder / str(manifest["entry_point"])
        return PY_BEGIN in entry.read_text(encoding="utf-8")
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _check_id(plugin_id: str) -> None:
    if not ID_PATTERN.match(plugin_id):
        raise UsageError(f"{plugin_id!r} is not a plugin id: lower-case letters and digits in words joined by "
                         "single hyphens, starting with a letter (like 'word-count'; contracts/plugin.v1.json "
                         "$defs/plugin_id)")


def new_plugin(plugin_id: str, category: str | None, plugins_dir: Path) -> Scaffold:
    """Make ``plugins_dir/<plugin_id>`` from the template of ``category``, or bring a folder the generator
    made in step with its ``plugin.spec.json``; see the module docstring for what is kept.

    Raises ``UsageError`` (nothing written) for an id that is not a plugin id, an unknown category, a
    category other than the spec's, an existing folder the generator did not make, and a spec that breaks
    the plugin contract."""
    _check_id(plugin_id)
    if category is not None and category not in CATEGORIES:
        raise UsageError(f"unknown category {category!r}; choose one of {', '.join(CATEGORIES)}")
    folder = plugins_dir / plugin_id
    result = Scaffold(plugin_id, folder.resolve() if folder.exists() else folder.absolute())
    module = module_name(plugin_id)
    spec_path = folder / SPEC_FILE
    if folder.exists():
        if not _generated(folder):
            raise UsageError(f"{folder} exists and was not made by `engine plugin new` (its entry point has no "
                             f"{PY_FENCE[0]} region): choose another id, or move the folder away", file=str(folder))
        spec = _read_spec(spec_path)
        if spec["id"] != plugin_id:
            raise UsageError(f"{spec_path} says id {spec['id']!r}, but its folder is {plugin_id!r}: a plugin's id "
                             "is its folder's name; make them the same", file=str(spec_path))
        if category is not None and category != spec["category"]:
            raise UsageError(f"{spec_path} says category {spec['category']!r}, not {category!r}: change the spec's "
                             "category, or leave --category out to update the plugin", file=str(spec_path))
    else:
        if category is None:
            raise UsageError(f"no plugin folder {folder} yet: say which template to make it from with --category "
                             f"({', '.join(CATEGORIES)})")
        spec = {"id": plugin_id, "version": "0.1.0", "category": category,
                **json.loads(Template((TEMPLATES / category / "spec.json").read_text("utf-8"))
                             .substitute(id=plugin_id))}
        _check_spec(spec, spec_path)
        folder.mkdir(parents=True)
        _write(folder, SPEC_FILE, json.dumps(spec, indent=2) + "\n", result)
    _render(folder, spec, module, result)
    _write_manifest(folder, spec, module, result)
    return result


def _read_spec(path: Path) -> dict[str, Any]:
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UsageError(f"{path}: cannot be read as JSON ({e}); fix it and run `engine plugin new` again",
                         file=str(path)) from e
    _check_spec(spec, path)
    return dict(spec)


def _check_spec(spec: Any, path: Path) -> None:
    found = problems("plugin.v1", spec, file=str(path))
    if found:
        raise UsageError(f"{path} breaks the plugin contract; nothing was generated", file=str(path),
                         problems=found)


def _write(folder: Path, rel: str, text: str, result: Scaffold) -> None:
    path = folder / rel
    if path.is_file():
        if path.read_text(encoding="utf-8") == text:
            return
        result.updated.append(rel)
    else:
        result.created.append(rel)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _render(folder: Path, spec: dict[str, Any], module: str, result: Scaffold) -> None:
    category = spec["category"]
    description = str(spec.get("description") or f"a {category} plugin")
    values = {"id": spec["id"], "category": category, "module": module, "description": description,
              "summary": _wrap(f"{spec['id']}: {description}", "")}
    src = f"src/{module}.py"
    blocks = [(src, PY_FENCE, _operations_block(spec)),
              (f"tests/test_{module}.py", PY_FENCE, _test_block(spec, module)),
              ("README_PLUGIN.md", MD_FENCE, _readme_block(spec)),
              ("healthcheck.md", MD_FENCE, _health_block(spec))]
    for rel, fence, body in blocks:
        path = folder / rel
        if path.is_file():
            text = _fence(path.read_text(encoding="utf-8"), fence, body, path)
        else:
            template = {"src": "module.py.tmpl", "tests": "test.py.tmpl"}.get(rel.split("/")[0], f"{rel}.tmpl")
            impl = _template(f"{category}/impl.py.tmpl").substitute(values).rstrip("\n") if rel == src else ""
            text = _template(template).substitute(values, operations=body, auto=body, implementations=impl)
            if rel == src:  # the operations the template has no implementation of get a stub
                text = _add_stubs(text, spec, module)
        if rel == src and path.is_file():
            text = _add_stubs(text, spec, module)
        _write(folder, rel, text, result)
    if not (folder / "conformance").exists():
        for case in json.loads(_template(f"{category}/fixtures.json").substitute(values)):
            base = f"conformance/fixtures/{case['operation']}/{case['name']}"
            _write(folder, f"{base}.input.json", json.dumps(case["input"], indent=2) + "\n", result)
            _write(folder, f"{base}.output.json", json.dumps(case["output"], indent=2) + "\n", result)
        first = next(iter(spec["operations"]))
        _write(folder, f"conformance/features/{first}.feature", _template(f"{category}/scenarios.feature")
               .substitute(values), result)


def _add_stubs(text: str, spec: dict[str, Any], module: str) -> str:
    """``text`` with a stub ``_<operation>`` appended for every operation that has none at the top level."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return text  # the author's code does not parse: leave it to them (`engine plugin check` says where)
    defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}
    missing = [name for name in spec["operations"] if f"_{name}" not in defined]
    for name in missing:
        text = text.rstrip("\n") + "\n\n\n" + _stub(spec, name, module)
    return text


def _write_manifest(folder: Path, spec: dict[str, Any], module: str, result: Scaffold) -> None:
    path = folder / MANIFEST_FILE
    try:
        kept = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except ValueError:
        kept = {}
    manifest = {"dependencies": [], "license": "Apache-2.0", **(kept if isinstance(kept, dict) else {}),
                "id": spec["id"], "version": spec["version"], "entry_point": f"src/{module}.py",
                "source_digest": source_digest(folder)}
    order = ["id", "version", "entry_point", "dependencies", "license"]
    ordered = {k: manifest[k] for k in order} | {k: v for k, v in manifest.items() if k not in order}
    _write(folder, MANIFEST_FILE, json.dumps(ordered, indent=2) + "\n", result)
