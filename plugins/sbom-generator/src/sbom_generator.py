"""sbom-generator: a CycloneDX 1.6 SBOM (JSON) of the repository's Python dependencies, made with
cyclonedx-python-lib, returned inline, and checked against the task's package and licence policy.

What it reads, in ``ctx.workdir`` and nowhere else (it writes nothing, so WhatIf runs it as it is):

- ``requirements*.txt`` at the top and ``requirements/*.txt`` (``-r`` includes followed inside the
  repository; other pip options, URLs and local paths are skipped and counted as ``unparsed``);
- ``pyproject.toml``: ``[project] dependencies`` (scope ``required``) and ``optional-dependencies``
  (scope ``optional``), and the project's name and version for the SBOM's subject;
- a lock file, when there is one (``uv.lock``, ``poetry.lock``, ``pdm.lock``, ``Pipfile.lock``): the
  versions of the declared packages and the packages they pull in;
- the repository's own virtual environment (``.venv`` or ``venv``), when there is one: the licence of each
  package from its installed metadata (``License-Expression``, else a short ``License`` field, else its
  ``License ::`` classifiers), and the version of a package nothing else pins.

A licence is known only where that metadata is: a lock file carries none. The SBOM's serial number and
timestamp come from the run (``ctx``), so the same repository in the same run gives the same document.
"""

from __future__ import annotations

import json
import re
import tomllib
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.sdk import Context, PluginError, verdict

CHECK = "sbom-generator"
VERSION = "0.1.0"
# The policy when the task says nothing: no package and no licence is denied.
DEFAULT_DENY_PACKAGES: tuple[str, ...] = ()
DEFAULT_DENY_LICENSES: tuple[str, ...] = ()
LOCKS = ("uv.lock", "poetry.lock", "pdm.lock", "Pipfile.lock")
VENVS = (".venv", "venv")
MAX_LICENSE_FIELD = 100  # a longer License field is a licence text, not a name


@dataclass
class _Package:
    name: str  # as first declared
    key: str  # normalised (PEP 503)
    version: str | None = None
    version_from: str | None = None
    requirement: str | None = None  # the declared requirement, when it pins nothing
    scope: str | None = None  # "required" | "optional" | None (pulled in by another package)
    declared_in: list[tuple[str, int | None]] = field(default_factory=list)
    licenses: list[str] = field(default_factory=list)  # one expression, or classifier names (a choice)


def _args(data: Mapping[str, Any]) -> Mapping[str, Any]:
    task = data.get("task")
    args = task.get("args") if isinstance(task, Mapping) else None
    return args if isinstance(args, Mapping) else {}


def _key(name: str) -> str:
    from packaging.utils import canonicalize_name

    return str(canonicalize_name(name))


def _strings(args: Mapping[str, Any], name: str, default: tuple[str, ...]) -> list[str]:
    value = args.get(name)
    if value is None:
        return list(default)
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise PluginError(f"task.args.{name} must be a list of strings", retryable=False)
    return [*default, *value]


# -- reading what the repository declares -----------------------------------------------------------


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """pip's view of a requirements file: continuation lines joined, comments removed."""
    start, buffer = 0, ""
    for number, raw in enumerate(text.splitlines(), start=1):
        if not buffer:
            start = number
        if raw.endswith("\\"):
            buffer += raw[:-1] + " "
            continue
        line = re.sub(r"(^|\s+)#.*$", "", buffer + raw).strip()
        buffer = ""
        if line:
            yield start, line


class _Reader:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.root = workdir.resolve()
        self.packages: dict[str, _Package] = {}
        self.direct: set[str] = set()
        self.unparsed: list[tuple[str, int | None, str]] = []
        self.sources: list[str] = []

    def _rel(self, path: Path) -> str:
        return path.relative_to(self.workdir).as_posix()

    def add(self, spec: str, where: str, line: int | None, scope: str) -> None:
        from packaging.requirements import InvalidRequirement, Requirement

        try:
            requirement = Requirement(spec)
        except InvalidRequirement:
            self.unparsed.append((where, line, spec))
            return
        key = _key(requirement.name)
        package = self.packages.setdefault(key, _Package(requirement.name, key))
        package.declared_in.append((where, line))
        if package.scope != "required":
            package.scope = scope
        self.direct.add(key)
        pins = [s.version for s in requirement.specifier if s.operator in ("==", "===") and "*" not in s.version]
        if len(pins) == 1 and package.version is None:
            package.version, package.version_from = pins[0], where
        elif not pins and str(requirement.specifier) and package.requirement is None:
            package.requirement = str(requirement)

    def requirements(self, path: Path, seen: set[Path]) -> None:
        resolved = path.resolve()
        if resolved in seen or not resolved.is_relative_to(self.root) or not resolved.is_file():
            return
        seen.add(resolved)
        where = self._rel(path)
        self.sources.append(where)
        for number, line in _logical_lines(path.read_text(encoding="utf-8", errors="replace")):
            include = re.match(r"^(?:-r|--requirement)(?:\s*=?\s*)(\S+)$", line)
            if include:
                self.requirements(path.parent / include.group(1), seen)
            elif line.startswith("-"):  # -c, -e, -i, --index-url ...: not a package of this repository
                if line.startswith(("-e", "--editable")):
                    self.unparsed.append((where, number, line))
            else:
                self.add(re.split(r"\s--(?=[a-z])", line)[0].strip(), where, number, "required")

    def pyproject(self) -> tuple[str | None, str | None]:
        path = self.workdir / "pyproject.toml"
        if not path.is_file():
            return None, None
        try:
            project = tomllib.loads(path.read_text(encoding="utf-8")).get("project") or {}
        except tomllib.TOMLDecodeError as e:
            raise PluginError(f"pyproject.toml is not valid TOML: {e}", retryable=False) from e
        self.sources.append("pyproject.toml")
        for spec in project.get("dependencies") or []:
            self.add(str(spec), "pyproject.toml", None, "required")
        for specs in (project.get("optional-dependencies") or {}).values():
            for spec in specs or []:
                self.add(str(spec), "pyproject.toml", None, "optional")
        name, version = project.get("name"), project.get("version")
        return (str(name) if name else None), (str(version) if version else None)

    def lock(self, project: str | None) -> None:
        for name in LOCKS:
            path = self.workdir / name
            if not path.is_file():
                continue
            self.sources.append(name)
            try:
                if name == "Pipfile.lock":
                    data = json.loads(path.read_text(encoding="utf-8"))
                    entries = [(n, str(v.get("version", "")).lstrip("=")) for group in ("default", "develop")
                               for n, v in (data.get(group) or {}).items() if isinstance(v, Mapping)]
                else:
                    data = tomllib.loads(path.read_text(encoding="utf-8"))
                    entries = [(str(p.get("name", "")), str(p.get("version", ""))) for p in data.get("package") or []
                               if isinstance(p, Mapping) and not _is_the_project(p)]
            except (json.JSONDecodeError, tomllib.TOMLDecodeError, AttributeError) as e:
                raise PluginError(f"{name} cannot be read: {e}", retryable=False) from e
            for package_name, version in entries:
                if not package_name or (project and _key(package_name) == _key(project)):
                    continue
                key = _key(package_name)
                package = self.packages.setdefault(key, _Package(package_name, key))
                if version and package.version is None:
                    package.version, package.version_from = version, name
            return  # one lock file is the resolution

    def installed(self) -> None:
        """Licences (and versions nothing else gave) from the repository's virtual environment."""
        import importlib.metadata

        for venv in VENVS:
            sites = [p for pattern in ("lib/python*/site-packages", "Lib/site-packages")
                     for p in (self.workdir / venv).glob(pattern) if p.is_dir()]
            if not sites:
                continue
            for dist in importlib.metadata.distributions(path=[str(s) for s in sites]):
                names = dist.metadata.get_all("Name")  # the first, as Message.get gives
                name = names[0] if names else None
                package = self.packages.get(_key(name)) if name else None
                if package is None:
                    continue
                if package.version is None and dist.version:
                    package.version, package.version_from = dist.version, venv
                if not package.licenses:
                    package.licenses = _licenses(dist.metadata)
            return


def _is_the_project(entry: Mapping[str, Any]) -> bool:
    source = entry.get("source")
    return isinstance(source, Mapping) and any(k in source for k in ("editable", "virtual"))


def _licenses(metadata: Any) -> list[str]:
    expression = metadata.get("License-Expression")
    if expression:
        return [str(expression).strip()]
    text = str(metadata.get("License") or "").strip()
    if text and "\n" not in text and len(text) <= MAX_LICENSE_FIELD and text.upper() != "UNKNOWN":
        return [text]
    return [c.split("::")[-1].strip() for c in metadata.get_all("Classifier") or [] if c.startswith("License ::")
            and c.split("::")[-1].strip() != "OSI Approved"]


# -- policy -------------------------------------------------------------------------------------------


def _expression_denied(expression: str, denied: set[str]) -> bool:
    """Whether an SPDX expression leaves no licence that is allowed: AND needs every part, OR one part,
    ``X WITH exception`` is X, ``X+`` is X; a name that is not an expression is compared whole."""
    if expression.lower() in denied:
        return True
    tokens = re.findall(r"\(|\)|[^\s()]+", expression)
    position = 0

    def atom() -> bool:
        nonlocal position
        token = tokens[position]
        position += 1
        if token == "(":
            value = either()
            position += 1  # ")"
        else:
            value = token.lower() in denied or token.lower().rstrip("+") in denied
        if position < len(tokens) and tokens[position].upper() == "WITH":
            position += 2
        return value

    def both() -> bool:
        nonlocal position
        values = [atom()]
        while position < len(tokens) and tokens[position].upper() == "AND":
            position += 1
            values.append(atom())
        return any(values)

    def either() -> bool:
        nonlocal position
        values = [both()]
        while position < len(tokens) and tokens[position].upper() == "OR":
            position += 1
            values.append(both())
        return all(values)

    try:
        return either()
    except IndexError:  # not an expression after all: any denied word counts
        return any(t.lower() in denied for t in tokens)


def _licence_denied(package: _Package, denied: set[str]) -> bool:
    if not package.licenses or not denied:
        return False
    return all(_expression_denied(text, denied) for text in package.licenses)  # classifiers: a choice


def _package_rule(rule: str) -> Any:
    from packaging.requirements import InvalidRequirement, Requirement

    try:
        return Requirement(rule)
    except InvalidRequirement as e:
        raise PluginError(f"task.args.deny_packages: {rule!r} is not a package name or requirement: {e}",
                          retryable=False) from e


def _label(package: _Package) -> str:
    return f"{package.name} {package.version}" if package.version else package.name


def _package_denied(package: _Package, rule: Any) -> str | None:
    """Why ``rule`` (a requirement) denies the package, or None."""
    from packaging.version import InvalidVersion, Version

    if _key(rule.name) != package.key:
        return None
    if not str(rule.specifier):
        return f"{_label(package)} is denied (deny_packages: {rule})"
    if package.version is None:
        return f"{package.name} is denied: its version is unknown and deny_packages denies {rule}"
    try:
        hit = rule.specifier.contains(Version(package.version), prereleases=True)
    except InvalidVersion:
        hit = True
    return f"{_label(package)} is denied (deny_packages: {rule})" if hit else None


# -- the SBOM -----------------------------------------------------------------------------------------


def _bom(ctx: Context, reader: _Reader, project: str, version: str | None) -> dict[str, Any]:
    from cyclonedx.model import Property
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentScope, ComponentType
    from cyclonedx.output.json import JsonV1Dot6
    from packageurl import PackageURL

    try:
        from cyclonedx.contrib.license.factories import LicenseFactory
    except ImportError:  # cyclonedx-python-lib before 11.1
        from cyclonedx.factory.license import LicenseFactory

    factory = LicenseFactory()
    serial = uuid.uuid5(uuid.NAMESPACE_URL, f"urn:engine:sbom:{ctx.run_id}:{ctx.task_id}:{ctx.seed}")
    bom = Bom(serial_number=serial)
    bom.metadata.timestamp = ctx.now
    bom.metadata.tools.components.add(Component(name=CHECK, version=VERSION, type=ComponentType.APPLICATION,
                                                bom_ref=f"engine-{CHECK}"))
    root = Component(name=project, version=version, type=ComponentType.APPLICATION, bom_ref="repository")
    bom.metadata.component = root
    direct = []
    for package in sorted(reader.packages.values(), key=lambda p: p.key):
        purl = PackageURL(type="pypi", name=package.key, version=package.version)
        properties = [Property(name="engine:declared-in", value=f"{w}:{n}" if n else w)
                      for w, n in package.declared_in]
        if package.version_from:
            properties.append(Property(name="engine:version-from", value=package.version_from))
        if package.requirement:
            properties.append(Property(name="engine:requirement", value=package.requirement))
        component = Component(
            name=package.name, version=package.version, type=ComponentType.LIBRARY, purl=purl,
            bom_ref=purl.to_string(),
            scope={"required": ComponentScope.REQUIRED, "optional": ComponentScope.OPTIONAL}.get(package.scope or ""),
            licenses=[factory.make_from_string(text) for text in package.licenses], properties=properties)
        bom.components.add(component)
        if package.key in reader.direct:
            direct.append(component)
    bom.register_dependency(root, direct)
    document: dict[str, Any] = json.loads(JsonV1Dot6(bom).output_as_string())
    return document


def _verdict(passed: bool, summary: str, findings: list[dict[str, Any]], counts: dict[str, int]) -> dict[str, Any]:
    return verdict(CHECK, passed, summary, findings, counts)


def _where(package: _Package) -> tuple[str | None, int | None]:
    if package.declared_in:
        return package.declared_in[0]
    return package.version_from, None


def check(ctx: Context, data: Mapping[str, Any]) -> dict[str, Any]:
    """The SBOM of the whole repository (``data.files`` does not narrow it) and its policy verdict."""
    args = _args(data)
    raw_policy = data.get("policy")
    policy: Mapping[str, Any] = raw_policy if isinstance(raw_policy, Mapping) else {}
    # the workspace's policy (engine.toml [policy], passed by the quality gate) and the task's own lists
    deny_packages = [_package_rule(r) for r in _strings(policy, "deny_packages", DEFAULT_DENY_PACKAGES)
                     + _strings(args, "deny_packages", ())]
    deny_licenses = {s.strip().lower() for s in _strings(policy, "deny_licenses", DEFAULT_DENY_LICENSES)
                     + _strings(args, "deny_licenses", ())}
    workdir = Path(ctx.workdir)
    if not workdir.is_dir():
        raise PluginError(f"repository {workdir} does not exist", retryable=False)
    reader = _Reader(workdir)
    seen: set[Path] = set()
    for path in [*sorted(workdir.glob("requirements*.txt")), *sorted(workdir.glob("requirements/*.txt"))]:
        reader.requirements(path, seen)
    project, version = reader.pyproject()
    reader.lock(project)
    reader.installed()
    sbom = _bom(ctx, reader, project or workdir.resolve().name, version)
    findings: list[dict[str, Any]] = []
    for package in sorted(reader.packages.values(), key=lambda p: p.key):
        file, line = _where(package)
        for rule in deny_packages:
            why = _package_denied(package, rule)
            if why:
                findings.append({"tool": CHECK, "file": file, "line": line, "rule": "denied-package",
                                 "message": why})
        if _licence_denied(package, deny_licenses):
            findings.append({"tool": CHECK, "file": file, "line": line, "rule": "denied-license",
                             "message": f"{_label(package)} is licensed {' OR '.join(package.licenses)}: "
                                        "denied (deny_licenses)"})
    packages = reader.packages.values()
    counts = {"components": len(reader.packages), "direct": len(reader.direct),
              "with_version": sum(1 for p in packages if p.version),
              "with_license": sum(1 for p in packages if p.licenses),
              "denied_packages": sum(1 for f in findings if f["rule"] == "denied-package"),
              "denied_licenses": sum(1 for f in findings if f["rule"] == "denied-license"),
              "unparsed": len(reader.unparsed)}
    ctx.log.info("sbom_made", sources=",".join(reader.sources), **counts)
    for where, line, text in reader.unparsed:  # URLs, local paths, editables: no package name to put in the SBOM
        ctx.log.info("sbom_requirement_skipped", file=where, line=line, requirement=text)
    read = ", ".join(reader.sources) or "no dependency file"
    if findings:
        names = sorted({f["message"].split(" ")[0] for f in findings})
        summary = f"sbom: denied: {', '.join(names)} ({len(findings)} finding(s); read {read})"
    elif not reader.packages:
        summary = f"sbom: no Python dependencies declared ({read})"
    else:
        summary = f"sbom: {len(reader.packages)} component(s), none denied (read {read})"
    sbom.setdefault("components", [])  # the library leaves the list out when it is empty; the SBOM still has one
    return {"verdict": _verdict(not findings, summary, findings, counts), "sbom": sbom}
