import json
import os

import pytest

from engine.queue import FOLDERS, MAX_DEPTH, NAME_MAX, TaskQueue, nesting_depth, side_name


@pytest.fixture
def queue(tmp_path):
    q = TaskQueue(tmp_path / ".tasks", worker="w1")
    q.ensure()
    return q


def put(queue, name, *lines):
    path = queue.folder("inbox") / name
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def test_claim_moves_the_file_into_processing(queue):
    put(queue, "b.jsonl", {"id": "t2", "tool": "git"})
    put(queue, "a.jsonl", {"id": "t1", "tool": "git"})
    claim = queue.claim_next()
    assert claim.name == "a.jsonl" and not claim.recovered
    assert (queue.folder("processing") / "a.jsonl").exists()
    assert not (queue.folder("inbox") / "a.jsonl").exists()


def test_files_that_are_not_jsonl_are_left_alone(queue):
    (queue.folder("inbox") / "half-written.jsonl.tmp").write_text("{")
    assert queue.claim_next() is None


def test_a_live_claim_is_never_taken_twice(queue):
    put(queue, "a.jsonl", {"id": "t1", "tool": "git"})
    first = queue.claim_next()
    other = TaskQueue(queue.root, worker="w2")
    assert other.claim_next() is None  # the lease is held
    queue.release(first)  # the holder dies: its lock goes with it
    again = other.claim_next()
    assert again.name == "a.jsonl" and again.recovered


def test_recovered_claim_knows_which_lines_finished(queue):
    put(queue, "a.jsonl", {"id": "t1", "tool": "git"}, {"id": "t2", "tool": "git"})
    claim = queue.claim_next()
    queue.record(claim, 1, {"task_id": "t1", "status": "done"})
    queue.release(claim)
    again = TaskQueue(queue.root, worker="w2").claim_next()
    assert sorted(again.done_lines) == [1]


def test_parse_reports_every_bad_line_with_its_number(queue):
    put(queue, "a.jsonl", {"id": "t1", "tool": "git"}, "{not json", "", {"id": "t3"}, {"id": "t1", "tool": "x"})
    parsed = queue.parse(queue.claim_next())
    assert [(p.line, p.path) for p in parsed.problems] == [(2, None), (4, "$"), (5, "$.id")]
    assert "not valid JSON" in parsed.problems[0].message
    assert "'tool' is a required property" in parsed.problems[1].message
    assert "repeats the one on line 1" in parsed.problems[2].message
    assert all(p.file.endswith("processing/a.jsonl") for p in parsed.problems)


def test_empty_file_is_a_problem(queue):
    put(queue, "a.jsonl", "")
    assert [p.message for p in queue.parse(queue.claim_next()).problems] == ["file holds no task"]


def test_finish_keeps_the_file_and_writes_the_report(queue):
    put(queue, "a.jsonl", {"id": "t1", "tool": "git"})
    claim = queue.claim_next()
    target = queue.finish(claim, "failed", {"reason": "boom"})
    assert target == queue.folder("failed") / "a.jsonl"
    report = json.loads((queue.folder("failed") / "a.jsonl.error.json").read_text())
    assert report["reason"] == "boom" and report["file"] == "a.jsonl"
    assert [c["claim"] for c in report["claims"]] == [1]  # the claims file's content, now in the report
    assert list(queue.folder("processing").iterdir()) == []  # lease, claims and progress files are gone


def test_finish_never_overwrites_an_earlier_file_of_the_same_name(queue):
    for status in ("first", "second"):
        put(queue, "a.jsonl", {"id": "t1", "tool": "git"})
        queue.finish(queue.claim_next(), "done", {"status": status})
    assert sorted(p.name for p in queue.folder("done").iterdir()) == [
        "a.1.jsonl", "a.1.jsonl.result.json", "a.jsonl", "a.jsonl.result.json"]
    assert queue.counts() == {name: (2 if name == "done" else 0) for name in FOLDERS}


def test_a_byte_order_mark_and_crlf_line_ends_are_accepted(queue):
    body = b'\xef\xbb\xbf{"id": "t1", "tool": "git"}\r\n{"id": "t2", "tool": "git"}\r\n'
    (queue.folder("inbox") / "a.jsonl").write_bytes(body)
    parsed = queue.parse(queue.claim_next())
    assert parsed.problems == [] and [t.task.id for t in parsed.tasks] == ["t1", "t2"]


def test_a_stale_progress_file_does_not_leak_into_a_new_file_of_the_same_name(queue):
    (queue.folder("processing") / "a.jsonl.progress.jsonl").write_text('{"line": 1, "status": "done"}\n')
    put(queue, "a.jsonl", {"id": "t1", "tool": "git"})
    claim = queue.claim_next()
    queue.release(claim)
    again = TaskQueue(queue.root, worker="w2").claim_next()
    assert again.recovered and again.done_lines == {}


# -- counting claims: a file that keeps killing its worker is noticed -------------------------------------


def die(claim):
    """What the operating system does when a worker dies: the lease lock goes, nothing else happens."""
    os.close(claim.lease_fd)


def claims_on_disk(queue, name):
    return json.loads((queue.folder("processing") / f"{name}.claims.json").read_text())["claims"]


def test_every_claim_is_counted_on_disk_before_it_is_handed_out(queue):
    put(queue, "a.jsonl", {"id": "t1", "tool": "git"})
    claim = queue.claim_next()
    assert [c["claim"] for c in claims_on_disk(queue, "a.jsonl")] == [1]
    assert claim.crashes == 0 and claims_on_disk(queue, "a.jsonl")[0]["from"] == "inbox"


def test_a_claim_whose_worker_died_counts_as_a_crash(queue):
    put(queue, "a.jsonl", {"id": "t1", "tool": "git"})
    die(queue.claim_next())
    second = TaskQueue(queue.root, worker="w2").claim_next()
    assert second.recovered and len(second.claims) == 2 and second.crashes == 1
    assert [c["claim"] for c in claims_on_disk(queue, "a.jsonl")] == [1, 2]
    die(second)
    third = TaskQueue(queue.root, worker="w3").claim_next()
    assert third.crashes == 2 and [c["worker"] for c in third.claims] == ["w1", "w2", "w3"]


def test_a_clean_release_is_not_a_crash(queue):
    put(queue, "a.jsonl", {"id": "t1", "tool": "git"})
    queue.release(queue.claim_next())
    assert claims_on_disk(queue, "a.jsonl")[0]["ended"] == "released"
    again = TaskQueue(queue.root, worker="w2").claim_next()
    assert len(again.claims) == 2 and again.crashes == 0
    die(again)
    assert TaskQueue(queue.root, worker="w3").claim_next().crashes == 1  # only the death counts


def test_a_fresh_claim_from_the_inbox_starts_from_zero(queue):
    stale = {"file": "a.jsonl", "claims": [{"claim": n} for n in (1, 2, 3)]}
    (queue.folder("processing") / "a.jsonl.claims.json").write_text(json.dumps(stale))
    put(queue, "a.jsonl", {"id": "t1", "tool": "git"})
    claim = queue.claim_next()
    assert [c["claim"] for c in claim.claims] == [1] and claim.crashes == 0
    assert [c["claim"] for c in claims_on_disk(queue, "a.jsonl")] == [1]


def test_in_flight_is_the_first_line_not_recorded(queue):
    put(queue, "a.jsonl", {"id": "t1", "tool": "git"}, "", {"id": "t2", "tool": "kill"}, {"id": "t3", "tool": "git"})
    claim = queue.claim_next()
    queue.record(claim, 1, {"task_id": "t1", "status": "done"})
    die(claim)
    again = queue.claim_next()
    flight = queue.in_flight(again)
    assert (flight["line"], flight["task_id"]) == (3, "t2") and '"kill"' in flight["text"]


# -- inputs that used to crash every run ------------------------------------------------------------------


def deep(levels):
    return "[" * levels + "]" * levels


def test_a_line_nested_too_deeply_is_a_problem_of_that_line(queue):
    put(queue, "a.jsonl", {"id": "t1", "tool": "git"}, deep(10_000),
        '{"id": "t3", "tool": "git", "metadata": {"x": ' + deep(10_000) + "}}",
        '{"id": "t4", "tool": "git", "args": {"x": ' + '{"a": ' * 5000 + "1" + "}" * 5000 + "}}")
    parsed = queue.parse(queue.claim_next())
    assert [p.line for p in parsed.problems] == [2, 3, 4]
    assert all(p.message == f"nested too deeply (more than {MAX_DEPTH} levels of arrays and objects)"
               for p in parsed.problems)


def test_nesting_up_to_the_limit_parses_and_brackets_in_strings_do_not_count(queue):
    at_limit = '{"id": "t1", "tool": "git", "metadata": {"x": ' + deep(MAX_DEPTH - 2) + "}}"
    in_string = json.dumps({"id": "t2", "tool": "git", "prompt": deep(10_000) + '\\"[{'})
    assert nesting_depth(at_limit) == MAX_DEPTH and nesting_depth(in_string) == 1
    put(queue, "a.jsonl", at_limit, in_string)
    parsed = queue.parse(queue.claim_next())
    assert parsed.problems == [] and [t.task.id for t in parsed.tasks] == ["t1", "t2"]


def long_name(size, char="n"):
    """A task file name of exactly ``size`` bytes of UTF-8."""
    body = char * ((size - len(".jsonl")) // len(char.encode()))
    return "x" * (size - len((body + ".jsonl").encode())) + body + ".jsonl"


def test_side_names_fit_the_file_name_limit_in_bytes():
    assert side_name("a.jsonl", ".lease") == "a.jsonl.lease"
    for name in (long_name(250), long_name(255), long_name(251, "é"), long_name(253, "日")):
        assert len(name.encode()) in (250, 251, 253, 255)
        for suffix in (".lease", ".progress.jsonl", ".claims.json", ".result.json", ".error.json.tmp"):
            short = side_name(name, suffix)
            assert len(short.encode()) <= NAME_MAX and short.endswith(suffix)
            short.encode().decode()  # never a split character
    assert side_name(long_name(250), ".lease") != side_name(long_name(250, "m"), ".lease")


@pytest.mark.parametrize("char", ["n", "é"])
def test_a_250_byte_name_goes_through_claim_record_and_finish(queue, char):
    name = long_name(250, char)
    for dest in ("failed", "done", "done"):
        put(queue, name, {"id": "t1", "tool": "git"}, {"id": "t2", "tool": "git"})
        claim = queue.claim_next()
        assert claim.name == name
        queue.record(claim, 1, {"task_id": "t1", "status": "done"})
        die(claim)  # and the recovery finds its progress and its claims
        claim = queue.claim_next()
        assert sorted(claim.done_lines) == [1] and claim.crashes == 1
        queue.finish(claim, dest, {"status": dest})
    assert list(queue.folder("processing").iterdir()) == []
    for dest, count in (("failed", 1), ("done", 2)):
        names = sorted(p.name for p in queue.folder(dest).iterdir())
        assert all(len(n.encode()) <= NAME_MAX for n in names)
        assert len([n for n in names if n.endswith(".jsonl")]) == count
        reports = [json.loads((queue.folder(dest) / n).read_text()) for n in names if n.endswith(".json")]
        assert [r["file"] for r in reports] == [name] * count  # the full name, whatever the report is called
        assert all(r["status"] == dest and len(r["claims"]) == 2 for r in reports)
    assert name in os.listdir(queue.folder("done"))


def test_line_separators_inside_json_strings_do_not_split_a_task(queue):
    put(queue, "a.jsonl", '{"id": "t1", "tool": "git", "prompt": "one\u2028two\u0085three"}',
        {"id": "t2", "tool": "git"})
    claim = queue.claim_next()
    parsed = queue.parse(claim)
    assert parsed.problems == []
    assert [t.line for t in parsed.tasks] == [1, 2] and parsed.tasks[0].task.prompt == "one\u2028two\u0085three"


def test_a_file_run_again_keeps_the_report_of_its_earlier_run(queue):
    put(queue, "a.jsonl", {"id": "t1", "tool": "git"})
    queue.finish(queue.claim_next(), "failed", {"reason": "first run"})
    (queue.folder("failed") / "a.jsonl").rename(queue.folder("inbox") / "a.jsonl")  # the operator retries it
    queue.finish(queue.claim_next(), "failed", {"reason": "second run"})
    failed = queue.folder("failed")
    assert sorted(p.name for p in failed.iterdir()) == ["a.1.jsonl", "a.1.jsonl.error.json", "a.jsonl.error.json"]
    assert json.loads((failed / "a.jsonl.error.json").read_text())["reason"] == "first run"
    assert json.loads((failed / "a.1.jsonl.error.json").read_text())["reason"] == "second run"


def test_claiming_a_batch_reads_the_inbox_once_and_keeps_name_order(queue, monkeypatch):
    """Claiming N files must not list the inbox N times (quadratic in the files); the order is the name
    order, and a file that arrives meanwhile is claimed once the batch read before it runs out."""
    for i in range(50):
        put(queue, f"{i:03d}.jsonl", {"id": f"t{i}", "tool": "git"})
    inbox = str(queue.folder("inbox"))
    reads = []
    real = os.scandir
    monkeypatch.setattr(os, "scandir", lambda path=".": (reads.append(str(path)), real(path))[1])
    names = []
    for _ in range(25):
        claim = queue.claim_next()
        names.append(claim.name)
        queue.finish(claim, "done", {})
    put(queue, "000-late.jsonl", {"id": "late", "tool": "git"})
    while (claim := queue.claim_next()) is not None:
        names.append(claim.name)
        queue.finish(claim, "done", {})
    assert names == [f"{i:03d}.jsonl" for i in range(50)] + ["000-late.jsonl"]
    assert reads.count(inbox) <= 3


def test_a_file_that_arrives_after_the_canarys_routing_pass_is_routed_before_it_is_claimed(queue, tmp_path):
    from engine.canary import CanaryRouter, to_new_kernel

    records = []
    router = CanaryRouter(10, tmp_path / "old-inbox", records.append)
    router.route(queue.inbox_files())  # the pass before the claim: the inbox is empty then
    queue.admit = router.admit
    ids = [f"late-{i:03d}" for i in range(60)]
    for task_id in ids:  # renamed into the inbox between the pass and the claim
        put(queue, f"{task_id}.jsonl", {"id": task_id, "tool": "git"})
    claimed = []
    while (claim := queue.claim_next()) is not None:
        claimed.append(claim.name)
        queue.finish(claim, "done", {"status": "done"})
    mine = [f"{i}.jsonl" for i in ids if to_new_kernel(i, 10)]
    assert claimed == mine and mine
    assert sorted(p.name for p in (tmp_path / "old-inbox").iterdir()) == sorted(
        f"{i}.jsonl" for i in ids if not to_new_kernel(i, 10))
    assert {r["task_file"]: r["status"] for r in records} == {
        f"{i}.jsonl": "routed_new" if to_new_kernel(i, 10) else "routed_old" for i in ids}
