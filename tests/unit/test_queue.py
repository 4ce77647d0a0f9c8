import json

import pytest

from engine.queue import FOLDERS, TaskQueue


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
    assert json.loads((queue.folder("failed") / "a.jsonl.error.json").read_text()) == {"reason": "boom"}
    assert list(queue.folder("processing").iterdir()) == []


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
