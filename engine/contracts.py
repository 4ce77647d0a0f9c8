"""Contracts: JSON Schema validation of ``contracts/*.json`` and typed access to what they describe.

Validation returns every problem at once, each with its JSON path (``$.retry.max_retries``). This is
the only module that imports jsonschema.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from typing import Any

import jsonschema
from pydantic import BaseModel, ConfigDict, Field
from referencing import Registry, Resource

from engine.bundled import bundled
from engine.errors import ContractViolation, Problem

CONTRACTS = ("task.v1", "plugin.v1", "ledger.v1", "cli.v1")


@cache
def schema(name: str) -> dict[str, Any]:
    """The JSON Schema called ``name`` (``task.v1``, ``plugin.v1``, ``ledger.v1``)."""
    if name not in CONTRACTS:
        raise KeyError(f"no contract {name!r}; known: {', '.join(CONTRACTS)}")
    path = bundled("contracts") / f"{name}.json"
    with path.open(encoding="utf-8") as handle:
        loaded: dict[str, Any] = json.load(handle)
    return loaded


@cache
def _registry() -> Registry:
    resources = [(schema(n)["$id"], Resource.from_contents(schema(n))) for n in CONTRACTS]
    return Registry().with_resources(resources)


@cache
def _validator(ref: str) -> jsonschema.protocols.Validator:
    """A validator for ``ref``: a contract name, or ``name#/$defs/part``."""
    name, _, fragment = ref.partition("#")
    root = schema(name)
    target = root if not fragment else {"$ref": f"{root['$id']}#{fragment}"}
    cls = jsonschema.validators.validator_for(root)
    return cls(target, registry=_registry(), format_checker=cls.FORMAT_CHECKER)


def json_path(parts: Any) -> str:
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def problems(ref: str, data: Any, *, file: str | None = None, line: int | None = None) -> list[Problem]:
    """Every way ``data`` breaks the contract ``ref``, sorted by JSON path; [] when it conforms."""
    errors = sorted(_validator(ref).iter_errors(data), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    return [Problem(e.message, file=file, line=line, path=json_path(e.absolute_path)) for e in errors]


def check_schema(candidate: Any) -> list[Problem]:
    """Problems with a JSON Schema a plugin declares (its input or output schema)."""
    try:
        cls = jsonschema.validators.validator_for(candidate, default=jsonschema.Draft202012Validator)
        cls.check_schema(candidate)
    except jsonschema.SchemaError as e:
        return [Problem(f"not a valid JSON Schema: {e.message}", path=json_path(e.absolute_path))]
    return []


_plugin_validators: dict[int, tuple[Mapping[str, Any], jsonschema.protocols.Validator]] = {}


def problems_against(candidate_schema: Mapping[str, Any], data: Any) -> list[Problem]:
    """Every way ``data`` breaks an arbitrary JSON Schema (a plugin operation's input or output).

    The validator of each schema object is built once (a loaded plugin's schemas do not change)."""
    cached = _plugin_validators.get(id(candidate_schema))
    if cached is not None and cached[0] is candidate_schema:
        validator = cached[1]
    else:
        cls = jsonschema.validators.validator_for(candidate_schema, default=jsonschema.Draft202012Validator)
        validator = cls(candidate_schema)
        if len(_plugin_validators) > 1024:
            _plugin_validators.clear()
        _plugin_validators[id(candidate_schema)] = (candidate_schema, validator)
    errors = sorted(validator.iter_errors(data), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    return [Problem(e.message, path=json_path(e.absolute_path)) for e in errors]


def require(ref: str, data: Any, *, what: str, file: str | None = None) -> None:
    """Raise ``ContractViolation`` listing every problem when ``data`` breaks the contract ``ref``."""
    found = problems(ref, data, file=file)
    if found:
        raise ContractViolation(f"{what} does not match contract {ref}", problems=found)


# -- typed access -----------------------------------------------------------------------------------


class Retry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    max_retries: int = 0
    backoff_sec: float = 0


class Task(BaseModel):
    """A validated task.v1. Build it with ``Task.from_json`` so the JSON Schema is checked first."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str
    tool: str
    repo: str = "."
    args: dict[str, Any] = Field(default_factory=dict)
    files: list[str] = Field(default_factory=list)
    prompt: str | None = None
    flags: list[str] = Field(default_factory=list)
    timeout_sec: float = 600
    retry: Retry = Field(default_factory=Retry)
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Any, *, file: str | None = None, line: int | None = None) -> Task:
        found = problems("task.v1", data, file=file, line=line)
        if found:
            raise ContractViolation("task does not match contract task.v1", problems=found)
        body = {k: v for k, v in data.items() if k != "schema"}
        return cls.model_validate(body)

    def as_data(self) -> dict[str, Any]:
        """The normalised task as plain JSON data, every field present."""
        return self.model_dump(mode="json")


class Operation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    description: str = ""
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    timeout_sec: float | None = None


class PluginSpec(BaseModel):
    """plugin.spec.json, after it passed ``contracts/plugin.v1.json``."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    id: str
    version: str
    category: str
    description: str = ""
    default_operation: str | None = None
    operations: dict[str, Operation]
    whatif: bool = False
    timeout_sec: float = 60
    isolation: str = "process"
    concurrency: int = 1
    env: list[str] = Field(default_factory=list)
    errors: dict[str, str] = Field(default_factory=dict)
    side_effects: list[str] = Field(default_factory=list)
    requires_tools: list[str] = Field(default_factory=list)
    sdk_versions: list[str] | None = None
    conformance_level: str | None = None

    @property
    def first_operation(self) -> str:
        return self.default_operation or next(iter(self.operations))


class Manifest(BaseModel):
    """manifest.json, after it passed ``plugin.v1#/$defs/manifest``."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    id: str
    version: str
    entry_point: str
    dependencies: list[str] = Field(default_factory=list)
    source_digest: str | None = None
    replaces: str | None = None
