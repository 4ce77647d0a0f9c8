"""Rego policies: ``policies/*.rego`` evaluated in process, or by the operator's OPA server.

What the kernel can count on:

- ``PolicyEngine.load`` reads every ``*.rego`` of the policies folder and refuses, with a ``ModelError``
  naming every file and line that does not parse or compile, before any task is claimed. The folder
  must define the packages ``engine.security`` and ``engine.compliance``.
- With an OPA server (``ENGINE_OPA_URL``, else ``[policy] opa_url``), ``load`` puts the same files into
  it (``PUT /v1/policies/engine/<file>``) and ``data.engine.config`` beside them; a server that cannot
  be reached is a ``WorkspaceError`` at load, never a silent allow.
- ``check(input)`` evaluates ``data.engine.security.deny``, ``data.engine.compliance.deny`` and
  ``data.engine.security.secrets`` and returns every denial and every secret found. A check that cannot
  be evaluated raises ``DecisionError``: a policy that fails never allows.

This is the only module that imports the embedded Rego engine (``regorus``, from the ``celine-regorus``
distribution; decision 0012) and ``opa_client`` (``opa-python-client``). ``policies/performance.yml``
is read through ``engine.config`` only. The input document is described in ``policies/README.md``.
"""

from __future__ import annotations

import json
import os
import queue
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from engine.config import PERFORMANCE_FILE, Performance, PolicyConfig, load_performance
from engine.errors import DecisionError, ModelError, Problem, WorkspaceError

ENV_OPA_URL = "ENGINE_OPA_URL"
POLICIES = ("security", "compliance")  # the packages engine.<name>, in the order denials are reported
SECRETS_RULE = "data.engine.security.secrets"
OPA_POLICY_PREFIX = "engine/"  # a policy's id on an OPA server: engine/<file name>

_RULE_IN_MESSAGE = re.compile(r"\(rule ([A-Za-z0-9_.:-]+)\)\s*$")
_PACKAGE = re.compile(r"^\s*package\s+([A-Za-z0-9_.]+)", re.MULTILINE)
_LOCATION = re.compile(r"-->\s*(?P<file>[^\n]+?):(?P<line>\d+):(?P<col>\d+)")
# regorus's internals that follow some messages: "(path [...], scopes [...])'could not schedule ..."
_ENGINE_NOISE = re.compile(r"\s*\(path \[.*$|'could not schedule.*$")


@dataclass(frozen=True)
class Denial:
    """One message of a policy's ``deny`` set. ``rule`` is the id the message names as ``(rule <id>)``
    at its end (or the ``rule`` field of an object message), else ``"deny"``."""

    policy: str
    rule: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"policy": self.policy, "rule": self.rule, "message": self.message}


@dataclass(frozen=True)
class Secret:
    """A secret the security policy found: where (``task.prompt``, ``env.NAME``, ``diff``), which rule,
    and the value itself, for the redaction layer. The value is left out of ``repr`` and ``as_dict``."""

    path: str
    rule: str
    value: str = field(repr=False)

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "rule": self.rule}


@dataclass(frozen=True)
class PolicyResult:
    """The verdict on one input: every denial (security first, then compliance, each sorted) and every
    secret found. ``allowed`` is true when nothing denies."""

    denials: tuple[Denial, ...] = ()
    secrets: tuple[Secret, ...] = ()
    evaluator: str = "embedded"

    @property
    def allowed(self) -> bool:
        return not self.denials

    def messages(self) -> list[str]:
        return [d.message for d in self.denials]

    def as_dict(self) -> dict[str, Any]:
        """Plain data for the ledger, a report or ``--json``: the denials, and where secrets were found
        (never their values)."""
        return {"allowed": self.allowed, "evaluator": self.evaluator,
                "denials": [d.as_dict() for d in self.denials], "secrets": [s.as_dict() for s in self.secrets]}


class _Evaluator(Protocol):
    name: str

    def evaluate(self, document: str) -> tuple[Any, Any, Any]:
        """(security deny, compliance deny, secrets) for the input given as JSON text."""


class PolicyEngine:
    """The loaded policies and where they are evaluated. Build it with ``load``; ``check`` is thread-safe."""

    def __init__(self, evaluator: _Evaluator, files: tuple[Path, ...], performance: Performance) -> None:
        self._evaluator = evaluator
        self.files = files
        self.performance = performance

    @property
    def evaluator(self) -> str:
        """``"embedded"`` or ``"opa <url>"``."""
        return self._evaluator.name

    @classmethod
    def load(cls, policies_dir: Path, *, opa_url: str | None = None, data: Mapping[str, Any] | None = None,
             timeout_sec: float = 5.0) -> PolicyEngine:
        """Load every ``*.rego`` of ``policies_dir`` (and its ``performance.yml``, through engine.config).

        ``opa_url``: evaluate on that OPA server instead of in process. ``data``: the document the
        policies read as ``data.engine.config`` (see ``PolicyConfig``). Raises ``ModelError`` for a
        policy that does not parse or compile, ``WorkspaceError`` for an OPA server that cannot be used.
        """
        files = tuple(sorted(policies_dir.glob("*.rego")))
        performance = load_performance(policies_dir / PERFORMANCE_FILE)
        sources = _read_sources(policies_dir, files)
        config = {"engine": {"config": dict(data or {})}}
        evaluator: _Evaluator = (_OpaServer(opa_url, sources, config, timeout_sec) if opa_url
                                 else _Embedded(sources, config))
        return cls(evaluator, files, performance)

    @classmethod
    def from_settings(cls, policies_dir: Path, settings: PolicyConfig,
                      environ: Mapping[str, str] | None = None) -> PolicyEngine:
        """``load`` as a workspace's settings say: ``ENGINE_OPA_URL`` (else ``[policy] opa_url``) picks the
        OPA server, ``[policy]`` gives ``data.engine.config`` and the server's timeout."""
        return cls.load(policies_dir, opa_url=opa_url(settings, environ),
                        data={"forbidden_environments": list(settings.forbidden_environments)},
                        timeout_sec=settings.opa_timeout_sec)

    def check(self, input: Mapping[str, Any]) -> PolicyResult:
        """Every denial of both policies for ``input`` (policies/README.md describes it), and the secrets
        found in it: the caller hands those to the redaction layer (``engine.redact.remember``) before
        anything about the task is written.

        ``input`` must be JSON data (paths, dates, tuples and sets are written as strings and lists).
        Raises ``DecisionError`` when the policies cannot be evaluated: a failed check never allows."""
        try:
            document = json.dumps(input, default=_json_default, sort_keys=True)
        except (TypeError, ValueError) as e:
            raise DecisionError(f"the policy input is not JSON data: {e}", policy="engine") from e
        security, compliance, secrets = self._evaluator.evaluate(document)
        denials = [*_denials("security", security), *_denials("compliance", compliance)]
        return PolicyResult(tuple(denials), tuple(_secrets(secrets)), self._evaluator.name.split(" ")[0])

    def close(self) -> None:
        close = getattr(self._evaluator, "close", None)
        if close is not None:
            close()


def opa_url(settings: PolicyConfig, environ: Mapping[str, str] | None = None) -> str | None:
    """The OPA server to use: ``ENGINE_OPA_URL`` when set (even to ``""``, which means in process), else
    ``[policy] opa_url``, else none."""
    env = os.environ if environ is None else environ
    if ENV_OPA_URL in env:
        return env[ENV_OPA_URL].strip() or None
    return settings.opa_url or None


# -- reading the results ------------------------------------------------------------------------------

def _denials(policy: str, value: Any) -> list[Denial]:
    if value is None:
        raise DecisionError(f"data.engine.{policy}.deny is undefined: the {policy} policy must define a "
                            "`deny` set (it may be empty)", policy=policy)
    if not isinstance(value, list | set | frozenset):
        raise DecisionError(f"data.engine.{policy}.deny is not a set of messages", policy=policy)
    out = []
    for item in value:
        if isinstance(item, Mapping):  # conftest's form: {"msg": ..., "rule": ...}
            message = str(item.get("msg", item.get("message", json.dumps(item, sort_keys=True))))
            rule = str(item.get("rule") or _rule_of(message))
        else:
            message = item if isinstance(item, str) else json.dumps(item, sort_keys=True)
            rule = _rule_of(message)
        out.append(Denial(policy, rule, message))
    return sorted(out, key=lambda d: (d.rule, d.message))


def _rule_of(message: str) -> str:
    match = _RULE_IN_MESSAGE.search(message)
    return match.group(1) if match else "deny"


def _secrets(value: Any) -> list[Secret]:
    out = {Secret(str(item.get("path", "")), str(item.get("rule", "secret")), item["value"])
           for item in (value or []) if isinstance(item, Mapping) and isinstance(item.get("value"), str)}
    return sorted(out, key=lambda s: (s.path, s.rule, s.value))


def _json_default(value: Any) -> Any:
    if isinstance(value, Path | datetime | date):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON data")


# -- loading ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Source:
    path: Path
    text: str
    package: str | None


def _read_sources(policies_dir: Path, files: tuple[Path, ...]) -> list[_Source]:
    if not files:
        raise ModelError(f"{policies_dir}: no policy (*.rego) files; run `engine init` in the workspace to add "
                         "the default ones (files already there are kept)", file=str(policies_dir))
    sources, problems = [], []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            problems.append(Problem(f"cannot be read: {e}", file=str(path)))
            continue
        match = _PACKAGE.search(text)
        sources.append(_Source(path, text, match.group(1) if match else None))
    packages = {s.package for s in sources}
    for name in POLICIES:
        if f"engine.{name}" not in packages:
            problems.append(Problem(f"no policy file declares `package engine.{name}` (the {name} policy); "
                                    "an empty `deny` set switches a policy off", file=str(policies_dir)))
    if problems:
        raise ModelError(f"{policies_dir}: {len(problems)} policy problem(s)", problems=problems,
                         file=str(policies_dir))
    return sources


def _problem_from(message: str, sources: list[_Source]) -> Problem:
    """A Rego engine's error (with its ``--> file:line:col`` and caret drawing) as one Problem."""
    lines = [line.strip() for line in message.split("Stack backtrace")[0].splitlines() if line.strip()]
    what = next((line.removeprefix("error:").strip() for line in lines if line.startswith("error:")),
                lines[0] if lines else "invalid policy")
    what = _ENGINE_NOISE.sub("", what).strip() or "invalid policy"
    match = _LOCATION.search(message)
    if match is None:
        return Problem(what)
    name = match.group("file").strip()
    path = next((str(s.path) for s in sources if s.path.name == name or str(s.path) == name), name)
    return Problem(f"{what} (column {match.group('col')})", file=path, line=int(match.group("line")))


# -- the embedded engine ------------------------------------------------------------------------------

_QUERY = "s := data.engine.security.deny; c := data.engine.compliance.deny; k := data.engine.security.secrets"


class _Embedded:
    """regorus in this process: the policies are parsed once, each check sets the input and runs one
    query (the secrets found and the denials share their work). A regorus engine may only be used, and
    freed, by the thread that made it, and the steps of parallel branches check from their own threads:
    the engine lives in a (daemon) thread of its own, which runs every evaluation."""

    name = "embedded"

    def __init__(self, sources: list[_Source], data: dict[str, Any]) -> None:
        self._requests: queue.Queue[tuple[str, queue.Queue[Any]] | None] = queue.Queue()
        loaded: queue.Queue[Any] = queue.Queue()
        threading.Thread(target=self._serve, args=(sources, data, loaded), name="engine-rego", daemon=True).start()
        problems = loaded.get()
        if problems:
            self.close()
            where = sources[0].path.parent
            raise ModelError(f"{where}: {len(problems)} policy file(s) do not load", problems=problems,
                             file=str(where))

    def _serve(self, sources: list[_Source], data: dict[str, Any], loaded: queue.Queue[Any]) -> None:
        """The engine's thread: load the policies, then answer evaluations until closed."""
        import regorus

        engine = regorus.Engine()
        engine.set_rego_v0(False)
        problems = []
        for source in sources:
            try:
                engine.add_policy(source.path.name, source.text)
            except RuntimeError as e:
                problems.append(_problem_from(str(e), sources))
        if not problems:
            engine.add_data_json(json.dumps(data))
            try:  # compile errors (unsafe variables, unknown functions) surface on a first evaluation
                _evaluate(engine, "{}")
            except DecisionError as e:
                problems.append(_problem_from(str(e.subject.get("detail", e.message)), sources))
        loaded.put(problems)
        while not problems:
            request = self._requests.get()
            if request is None:
                break
            document, reply = request
            try:
                reply.put((True, _evaluate(engine, document)))
            except BaseException as e:  # raised in the caller's thread
                reply.put((False, e))

    def evaluate(self, document: str) -> tuple[Any, Any, Any]:
        reply: queue.Queue[Any] = queue.Queue(maxsize=1)
        self._requests.put((document, reply))
        ok, answer = reply.get()
        if not ok:
            raise answer
        return answer  # type: ignore[no-any-return]

    def close(self) -> None:
        self._requests.put(None)


def _evaluate(engine: Any, document: str) -> tuple[Any, Any, Any]:
    try:
        engine.set_input_json(document)
        answer = json.loads(engine.eval_query_as_json(_QUERY))
    except RuntimeError as e:
        detail = str(e).split("Stack backtrace")[0].strip()
        raise DecisionError(f"the policies could not be evaluated: {_problem_from(detail, [])}",
                            policy="engine", detail=detail) from e
    rows = answer.get("result") or []
    if not rows:
        raise DecisionError("the policies gave no result: data.engine.security.deny, "
                            "data.engine.compliance.deny and data.engine.security.secrets must be defined",
                            policy="engine")
    bindings = rows[0].get("bindings", {})
    return bindings.get("s"), bindings.get("c"), bindings.get("k")


# -- an OPA server ------------------------------------------------------------------------------------

class _OpaServer:
    """The operator's OPA server, through opa-python-client: the policies are put into it at load, and
    each check posts the input to the three rules."""

    def __init__(self, url: str, sources: list[_Source], data: dict[str, Any], timeout_sec: float) -> None:
        from opa_client import OpaClient
        from opa_client.errors import ConnectionsError, RegoParseError

        self.url = url.rstrip("/")
        self.name = f"opa {self.url}"
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
            raise WorkspaceError(f"OPA server address {url!r} is not of the form http(s)://host[:port] "
                                 f"(from {ENV_OPA_URL} or [policy] opa_url)", url=url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        self._client = OpaClient(host=parts.hostname, port=port, ssl=parts.scheme == "https",
                                 timeout=timeout_sec, retries=0)
        try:
            self._client.check_connection()
        except ConnectionsError as e:
            raise WorkspaceError(
                f"the OPA server at {self.url} cannot be reached ({_cause(e)}): start it, or unset "
                f"{ENV_OPA_URL} and [policy] opa_url to evaluate the policies in process", url=self.url) from e
        problems = []
        for source in sources:
            policy_id = OPA_POLICY_PREFIX + source.path.name
            try:
                self._client.update_policy_from_string(source.text, policy_id, rego_compat=False)
            except RegoParseError as e:
                problems.extend(_opa_problems(e, source))
            except Exception as e:  # the client raises bare requests errors too
                raise WorkspaceError(f"the OPA server at {self.url} refused policy {policy_id}: {_cause(e)}",
                                     url=self.url) from e
        if problems:
            where = sources[0].path.parent
            raise ModelError(f"{where}: {len(problems)} policy problem(s) reported by the OPA server at {self.url}",
                             problems=problems, file=str(where))
        try:
            self._client.update_or_create_data(data["engine"]["config"], "engine/config")
        except Exception as e:
            raise WorkspaceError(f"the OPA server at {self.url} refused data.engine.config: {_cause(e)}",
                                 url=self.url) from e

    def _rule(self, package: str, rule: str, document: dict[str, Any]) -> Any:
        try:
            answer = self._client.query_rule(document, package, rule)
        except Exception as e:  # connection, timeout or HTTP status: all fail closed
            raise DecisionError(f"the OPA server at {self.url} could not evaluate data.{package}.{rule}: "
                                f"{_cause(e)}", policy=package, url=self.url) from e
        if not isinstance(answer, dict) or "result" not in answer:
            raise DecisionError(f"the OPA server at {self.url} has no data.{package}.{rule}: were the policies "
                                "removed from it? Restart the engine to load them again", policy=package, url=self.url)
        return answer["result"]

    def evaluate(self, document: str) -> tuple[Any, Any, Any]:
        value = json.loads(document)
        return (self._rule("engine.security", "deny", value), self._rule("engine.compliance", "deny", value),
                self._rule("engine.security", "secrets", value))

    def close(self) -> None:
        self._client.close_connection()


def _opa_problems(error: Any, source: _Source) -> list[Problem]:
    found = []
    for item in getattr(error, "errors", None) or []:
        if not isinstance(item, Mapping):
            continue
        location = item.get("location") or {}
        row = location.get("row")
        found.append(Problem(str(item.get("message", "invalid policy")), file=str(source.path),
                             line=row if isinstance(row, int) else None))
    return found or [Problem(str(getattr(error, "message", error)), file=str(source.path))]


def _cause(error: BaseException) -> str:
    """The innermost reason of a client error, in one line."""
    while error.__cause__ is not None:
        error = error.__cause__
    text = str(getattr(error, "message", "") or error) or type(error).__name__
    return text.splitlines()[0][:300]
