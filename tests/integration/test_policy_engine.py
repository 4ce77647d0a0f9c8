"""The same decisions from the embedded Rego engine and from an OPA server, and an OPA server that
cannot be used never allows.

No OPA binary can be installed here, so the server is a stand-in: a small HTTP server on 127.0.0.1
(a free port, started and stopped by each test) that implements the part of OPA's REST API the
engine uses (``GET /v1/policies``, ``PUT``/``DELETE /v1/policies/<id>``, ``PUT /v1/data/<path>``,
``POST /v1/data/<path>`` answering ``{"result": ...}``, ``{}`` when undefined) over the real Rego engine
(regorus), the way OPA answers it: policies parsed on PUT (a parse error is a 400 with OPA's error
document), each query evaluated against every policy put so far.
"""

from __future__ import annotations

import copy
import json
import re
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import regorus

from engine.config import PolicyConfig
from engine.errors import DecisionError, ModelError, WorkspaceError
from engine.policy import ENV_OPA_URL, PolicyEngine
from tests.unit.test_policy import CASES, GITHUB, POLICIES, copy_policies, doc, task


class StandInOpa:
    """OPA's data and policy API over regorus, enough for engine.policy (and for opa-python-client)."""

    def __init__(self) -> None:
        self.policies: dict[str, str] = {}
        self.data: dict[str, Any] = {}
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep pytest's output clean
                pass

            def _answer(self, status: int, body: Any = None) -> None:
                raw = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                outer.requests.append(("GET", self.path))
                if self.path.rstrip("/") == "/v1/policies":
                    self._answer(200, {"result": [{"id": i, "raw": r} for i, r in outer.policies.items()]})
                else:
                    self._answer(404, {"code": "resource_not_found", "message": self.path})

            def do_PUT(self) -> None:  # noqa: N802
                outer.requests.append(("PUT", self.path))
                body = self._body()
                if self.path.startswith("/v1/policies/"):
                    policy_id = self.path.removeprefix("/v1/policies/")
                    error = outer.parse(policy_id, body.decode())
                    if error is not None:
                        self._answer(400, error)
                        return
                    with outer.lock:
                        outer.policies[policy_id] = body.decode()
                    self._answer(200, {})
                elif self.path.startswith("/v1/data/"):
                    keys = [k for k in self.path.removeprefix("/v1/data/").split("/") if k]
                    with outer.lock:
                        node = outer.data
                        for key in keys[:-1]:
                            node = node.setdefault(key, {})
                        node[keys[-1]] = json.loads(body)
                    self._answer(204)
                else:
                    self._answer(404, {"code": "resource_not_found", "message": self.path})

            def do_DELETE(self) -> None:  # noqa: N802
                with outer.lock:
                    outer.policies.pop(self.path.removeprefix("/v1/policies/"), None)
                self._answer(200, {})

            def do_POST(self) -> None:  # noqa: N802
                outer.requests.append(("POST", self.path))
                if not self.path.startswith("/v1/data/"):
                    self._answer(404, {"code": "resource_not_found", "message": self.path})
                    return
                ref = "data." + ".".join(k for k in self.path.removeprefix("/v1/data/").split("/") if k)
                self._answer(200, outer.evaluate(ref, json.loads(self._body() or b"{}").get("input")))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def parse(self, policy_id: str, text: str) -> dict[str, Any] | None:
        """None when the module parses; else OPA's 400 body for a parse error."""
        try:
            regorus.Engine().add_policy(policy_id, text)
        except RuntimeError as e:
            where = re.search(r"-->\s*.*?:(\d+):(\d+)", str(e))
            message = next((line.strip()[6:].strip() for line in str(e).splitlines()
                            if line.strip().startswith("error:")), "parse error")
            return {"code": "invalid_parameter", "message": "error(s) occurred while compiling module(s)",
                    "errors": [{"code": "rego_parse_error", "message": message,
                                "location": {"file": policy_id, "row": int(where.group(1)) if where else 0,
                                             "col": int(where.group(2)) if where else 0}}]}
        return None

    def evaluate(self, ref: str, value: Any) -> dict[str, Any]:
        engine = regorus.Engine()
        with self.lock:
            for policy_id, text in self.policies.items():
                engine.add_policy(policy_id, text)
            engine.add_data_json(json.dumps(self.data))
        if value is not None:
            engine.set_input_json(json.dumps(value))
        answer = json.loads(engine.eval_query_as_json(f"x := {ref}"))
        rows = answer.get("result") or []
        return {"result": rows[0]["bindings"]["x"]} if rows else {}  # OPA: undefined is no "result"

    def __enter__(self) -> StandInOpa:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def opa() -> Iterator[StandInOpa]:
    with StandInOpa() as server:
        yield server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def decisions(engine: PolicyEngine, data_case: Any) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    result = engine.check(copy.deepcopy(data_case.input))
    return ([(d.policy, d.rule, d.message) for d in result.denials],
            [(s.path, s.rule, s.value) for s in result.secrets])


def test_the_opa_server_and_the_embedded_engine_decide_the_same(opa):
    by_data: dict[str, list[Any]] = {}
    for case in CASES:
        by_data.setdefault(json.dumps(case.data, sort_keys=True), []).append(case)
    compared = 0
    for key, cases in by_data.items():
        data = json.loads(key)
        embedded = PolicyEngine.load(POLICIES, data=data)
        served = PolicyEngine.load(POLICIES, opa_url=opa.url, data=data)
        assert served.evaluator == f"opa {opa.url}"
        for case in cases:
            assert decisions(served, case) == decisions(embedded, case), case.name
            compared += 1
        served.close()
    assert compared == len(CASES)
    assert ("PUT", "/v1/policies/engine/security.rego") in opa.requests
    assert ("PUT", "/v1/policies/engine/compliance.rego") in opa.requests
    assert ("POST", "/v1/data/engine/security/deny") in opa.requests
    assert ("POST", "/v1/data/engine/compliance/deny") in opa.requests
    assert ("POST", "/v1/data/engine/security/secrets") in opa.requests


def test_the_policy_data_goes_to_the_server_too(opa):
    engine = PolicyEngine.from_settings(POLICIES, PolicyConfig(forbidden_environments=["qa"]),
                                        environ={ENV_OPA_URL: opa.url})
    assert opa.data == {"engine": {"config": {"forbidden_environments": ["qa"]}}}
    assert [d.rule for d in engine.check(doc(task=task(metadata={"environment": "qa"}))).denials] == \
        ["forbidden_environment"]
    assert engine.check(doc(task=task(metadata={"environment": "production"}))).allowed


def test_engine_toml_names_the_server_when_the_environment_does_not(opa):
    engine = PolicyEngine.from_settings(POLICIES, PolicyConfig(opa_url=opa.url), environ={})
    assert engine.evaluator == f"opa {opa.url}"
    assert engine.check(doc(task=task(prompt=GITHUB))).denials[0].rule == "github_token"


def test_an_unreachable_server_is_a_clear_error_at_load():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(WorkspaceError) as caught:
        PolicyEngine.load(POLICIES, opa_url=url, timeout_sec=2)
    assert f"the OPA server at {url} cannot be reached" in caught.value.message
    assert ENV_OPA_URL in caught.value.message and caught.value.url == url


def test_a_malformed_server_address_is_refused():
    with pytest.raises(WorkspaceError, match="http\\(s\\)://host"):
        PolicyEngine.load(POLICIES, opa_url="opa.internal:8181")


def test_a_syntax_error_reported_by_the_server_names_the_file_and_line(opa, tmp_path):
    folder = copy_policies(tmp_path / "policies")
    (folder / "broken.rego").write_text("package engine.extra\n\np if {\n\tx := \n}\n")
    with pytest.raises(ModelError) as caught:
        PolicyEngine.load(folder, opa_url=opa.url)
    [problem] = caught.value.problems
    assert (Path(problem.file).name, problem.line) == ("broken.rego", 4)


def test_a_server_that_goes_away_after_load_never_allows(tmp_path):
    with StandInOpa() as server:
        engine = PolicyEngine.load(POLICIES, opa_url=server.url, timeout_sec=2)
        assert engine.check(doc()).allowed
    with pytest.raises(DecisionError, match="could not evaluate data.engine.security.deny"):
        engine.check(doc())


def test_a_server_that_lost_the_policies_never_allows(opa):
    engine = PolicyEngine.load(POLICIES, opa_url=opa.url)
    opa.policies.clear()
    with pytest.raises(DecisionError, match="has no data.engine.security.deny"):
        engine.check(doc())
