"""Inputs that used to stop the queue for good: a task that kills the engine, a line nested 10,000 deep,
a file name at the file system's limit. Each now costs its own file, never the queue."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from engine.queue import MAX_DEPTH, NAME_MAX
from tests.conftest import engine, install_test_plugin

pytestmark = pytest.mark.usefixtures("check_state")  # every durable point must restore exactly


def files(ws, folder):
    return sorted(p.name for p in (ws / ".tasks" / folder).iterdir())


def task_files(ws, folder):
    return [f for f in files(ws, folder) if f.endswith(".jsonl")]


def ledger_records(ws):
    return [json.loads(x)["record"] for x in (ws / ".engine" / "ledger" / "ledger.jsonl").read_text().splitlines()]


def put(ws, name, *tasks):
    path = ws / ".tasks" / "inbox" / name
    path.write_text("".join((t if isinstance(t, str) else json.dumps(t)) + "\n" for t in tasks))


@pytest.mark.parametrize("max_claims", [3, 1])
def test_a_task_that_kills_the_engine_is_quarantined_after_max_claims_deaths(example_ws, max_claims):
    if max_claims != 3:  # 3 is the default, left as `engine init` wrote it
        (example_ws / "engine.toml").write_text(f"[queue]\nmax_claims = {max_claims}\n")
    install_test_plugin(example_ws, "kernel-killer", tool="kill")
    put(example_ws, "001-poison.jsonl", {"id": "before", "tool": "git", "repo": "example-repo"},
        {"id": "boom", "tool": "kill", "repo": "example-repo"}, {"id": "after", "tool": "git", "repo": "example-repo"})
    put(example_ws, "002-after.jsonl", {"id": "behind", "tool": "git", "repo": "example-repo"})

    codes = []
    while len(codes) < max_claims + 3 and "001-poison.jsonl" not in files(example_ws, "quarantine"):
        codes.append(engine("run", "--drain", cwd=example_ws).returncode)
        if "001-poison.jsonl" not in files(example_ws, "quarantine"):
            assert "001-poison.jsonl" in files(example_ws, "processing")  # died with it, as before
    assert len(codes) == max_claims + 1, codes
    assert all(code not in (0, 70) for code in codes[:-1]), codes  # each of those runs died in the plugin
    assert codes[-1] == 1  # the run that quarantined it finished, reporting the quarantine

    assert files(example_ws, "quarantine") == ["001-poison.jsonl", "001-poison.jsonl.result.json"]
    assert task_files(example_ws, "done") == ["001-inspect.jsonl", "002-after.jsonl", "002-normalize.jsonl"]
    assert files(example_ws, "inbox") == files(example_ws, "processing") == files(example_ws, "failed") == []
    report = json.loads((example_ws / ".tasks" / "quarantine" / "001-poison.jsonl.result.json").read_text())
    times = "once" if max_claims == 1 else f"{max_claims} times"
    assert report["reason"].startswith(f"claimed {times} without finishing: its worker died"), report["reason"]
    assert "line 2 (task boom)" in report["reason"] and "inbox/" in report["reason"]
    assert (report["in_flight"]["line"], report["in_flight"]["task_id"]) == (2, "boom")
    assert [(t["line"], t["task_id"], t["status"]) for t in report["tasks"]] == [(1, "before", "done")]
    assert [("ended" in c) for c in report["claims"]] == [False] * (max_claims + 1)

    engine("ledger", "verify", cwd=example_ws, check=0)
    records = ledger_records(example_ws)
    started = [r["task_id"] for r in records if r["kind"] == "run" and r["status"] == "started"]
    # boom's steps before the call that kills are in its state journal: the next claim resumes it there and
    # writes them, once (each death is the claim after it: recovered, then quarantined with the count)
    assert started.count("before") == 1 and started.count("boom") == 1 and "after" not in started
    boom = [r["step"] for r in records if r["kind"] == "step" and r["task_id"] == "boom"]
    assert len(boom) == len(set(boom)) > 0
    moves = [r for r in records if r["kind"] == "queue" and r["task_file"] == "001-poison.jsonl"]
    assert [m["transition"] for m in moves] == (["inbox->processing"] + ["processing->processing"] * (max_claims - 1)
                                                + ["processing->quarantine"])
    assert moves[-1]["status"] == "quarantine" and moves[-1]["detail"]["crashes"] == max_claims


def test_a_file_given_back_on_sigterm_is_not_counted_as_a_death(example_ws):
    """Only deaths count: a file a worker gives back on SIGTERM may be claimed again any number of times."""
    (example_ws / "engine.toml").write_text("[queue]\nmax_claims = 1\n")
    install_test_plugin(example_ws, "sleeper", tool="sleep")
    put(example_ws, "000-slow.jsonl", *({"id": f"s{i}", "tool": "sleep", "repo": "example-repo",
                                         "args": {"seconds": 0.5}} for i in range(3)))
    claims = example_ws / ".tasks" / "processing" / "000-slow.jsonl.claims.json"
    env = {k: v for k, v in os.environ.items() if k != "ENGINE_WORKSPACE"}
    for run in (1, 2):
        worker = subprocess.Popen([sys.executable, "-m", "engine", "run", "--drain"], cwd=example_ws, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (claims.exists()
                                                   and len(json.loads(claims.read_text())["claims"]) == run):
            time.sleep(0.02)
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=60)
        assert worker.returncode == 9, stderr  # stopped with the file left in processing/
        assert "000-slow.jsonl" in files(example_ws, "processing")
    engine("run", "--drain", cwd=example_ws, check=0)
    report = json.loads((example_ws / ".tasks" / "done" / "000-slow.jsonl.result.json").read_text())
    assert [c.get("ended") for c in report["claims"]] == ["released", "released", None]
    assert [t["status"] for t in report["tasks"]] == ["done"] * 3


def nested(levels):
    """A JSON value whose arrays nest ``levels`` deep."""
    return "[" * levels + "]" * levels


def long_name(size, char="n"):
    body = char * ((size - len(".jsonl")) // len(char.encode()))
    return "x" * (size - len((body + ".jsonl").encode())) + body + ".jsonl"


def test_deep_nesting_and_long_names_cost_their_file_never_the_run(example_ws):
    put(example_ws, "003-deep.jsonl", {"id": "fine", "tool": "git", "repo": "example-repo"},
        '{"id": "deep", "tool": "git", "repo": "example-repo", "metadata": {"x": ' + nested(10_000) + "}}",
        nested(10_000))
    # as deep as a task may be, in every field the process, the plugins and the ledger see
    at_limit = nested(MAX_DEPTH - 2)
    put(example_ws, "004-at-the-limit.jsonl",
        '{"id": "limit", "tool": "Normalize", "repo": "example-repo", "args": {"x": ' + at_limit
        + '}, "metadata": {"x": ' + at_limit + "}}")
    good, bad = long_name(250), long_name(251, "é")
    put(example_ws, good, {"id": "long", "tool": "git", "repo": "example-repo"})
    put(example_ws, bad, "{not json")

    proc = engine("run", "--drain", cwd=example_ws, check=1)
    assert "2 failed" in proc.stdout
    assert task_files(example_ws, "failed") == sorted(["003-deep.jsonl", bad])
    assert task_files(example_ws, "done") == sorted(["001-inspect.jsonl", "002-normalize.jsonl",
                                                     "004-at-the-limit.jsonl", good])
    assert files(example_ws, "processing") == [] and files(example_ws, "inbox") == []

    deep = json.loads((example_ws / ".tasks" / "failed" / "003-deep.jsonl.error.json").read_text())
    assert [(p["line"], p["message"]) for p in deep["problems"]] == [
        (n, f"nested too deeply (more than {MAX_DEPTH} levels of arrays and objects)") for n in (2, 3)]
    reports = {}
    for folder in ("done", "failed"):
        for name in files(example_ws, folder):
            assert len(name.encode()) <= NAME_MAX
            if name.endswith(".json"):
                report = json.loads((example_ws / ".tasks" / folder / name).read_text())
                reports[report["file"]] = (folder, name, report)
    assert reports[good][0] == "done" and reports[good][2]["tasks"][0]["task_id"] == "long"
    assert reports[good][1].endswith(".result.json") and "~" in reports[good][1]
    assert reports[bad][0] == "failed" and reports[bad][1].endswith(".error.json")
    assert "not valid JSON" in reports[bad][2]["problems"][0]["message"]
    engine("ledger", "verify", cwd=example_ws, check=0)
