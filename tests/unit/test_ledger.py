import json

import pytest

from engine.errors import LedgerBroken
from engine.ledger import GENESIS, Ledger, digest


def fill(ledger, n=4):
    for i in range(n):
        ledger.append({"kind": "step", "status": "completed", "step": f"Task_{i}", "task_id": "t1"},
                      {"run_id": "run-1", "ts": "2026-01-01T00:00:00+00:00"})


@pytest.fixture
def ledger(tmp_path):
    led = Ledger(tmp_path / "ledger")
    fill(led)
    return led


def lines(ledger):
    return ledger.path.read_text().splitlines()


def test_entries_chain_and_verify(ledger):
    entries = [json.loads(x) for x in lines(ledger)]
    assert [e["seq"] for e in entries] == [1, 2, 3, 4]
    assert entries[0]["prev"] == GENESIS
    assert all(b["prev"] == a["hash"] for a, b in zip(entries, entries[1:], strict=False))
    assert entries[0]["record_hash"] == digest(entries[0]["record"])
    report = ledger.verify()
    assert report.entries == 4 and report.last_hash == entries[-1]["hash"]


def test_edited_entry_is_named(ledger):
    rows = lines(ledger)
    entry = json.loads(rows[2])
    entry["record"]["status"] = "failed"
    rows[2] = json.dumps(entry)
    ledger.path.write_text("\n".join(rows) + "\n")
    with pytest.raises(LedgerBroken) as caught:
        ledger.verify()
    assert "ledger.jsonl:3" in str(caught.value) and "seq 3" in str(caught.value)
    assert caught.value.line == 3


def test_edit_with_recomputed_hashes_still_breaks_the_chain(ledger):
    rows = lines(ledger)
    entry = json.loads(rows[1])
    entry["record"]["status"] = "failed"
    entry["record_hash"] = digest(entry["record"])
    entry["hash"] = digest({k: v for k, v in entry.items() if k != "hash"})
    rows[1] = json.dumps(entry)
    ledger.path.write_text("\n".join(rows) + "\n")
    with pytest.raises(LedgerBroken) as caught:
        ledger.verify()
    assert caught.value.line == 3  # entry 3 no longer chains to the rewritten entry 2


def test_deleted_entry_is_named(ledger):
    rows = lines(ledger)
    del rows[1]
    ledger.path.write_text("\n".join(rows) + "\n")
    with pytest.raises(LedgerBroken) as caught:
        ledger.verify()
    assert caught.value.line == 2 and "seq 3 follows seq 1" in str(caught.value)


def test_deleted_last_entry_is_noticed(ledger):
    rows = lines(ledger)
    ledger.path.write_text("\n".join(rows[:-1]) + "\n")
    with pytest.raises(LedgerBroken) as caught:
        ledger.verify()
    assert "removed" in str(caught.value)


def test_swapped_entries_are_named(ledger):
    rows = lines(ledger)
    rows[1], rows[2] = rows[2], rows[1]
    ledger.path.write_text("\n".join(rows) + "\n")
    with pytest.raises(LedgerBroken) as caught:
        ledger.verify()
    assert caught.value.line == 2


def test_entry_breaking_the_contract_is_named(ledger):
    rows = lines(ledger)
    entry = json.loads(rows[0])
    del entry["envelope"]
    rows[0] = json.dumps(entry)
    ledger.path.write_text("\n".join(rows) + "\n")
    with pytest.raises(LedgerBroken) as caught:
        ledger.verify()
    assert caught.value.line == 1
    assert any("envelope" in p.message for p in caught.value.problems)


def test_torn_last_line_is_kept_aside_and_the_chain_continues(ledger):
    with ledger.path.open("a") as handle:
        handle.write('{"v": 1, "seq": 5, "pre')  # a worker killed mid-write
    fill(ledger, 1)
    assert ledger.verify().entries == 5
    assert (ledger.folder / "ledger.jsonl.torn").read_text().startswith('{"v": 1, "seq": 5')


def test_head_may_lag_one_entry_after_a_kill(ledger):
    head = json.loads(ledger.head.read_text())
    rows = lines(ledger)
    prev = json.loads(rows[-2])
    ledger.head.write_text(json.dumps({"seq": prev["seq"], "hash": prev["hash"]}))
    assert ledger.verify().entries == 4
    assert head["seq"] == 4


def test_garbled_head_is_reported_not_crashed(ledger):
    ledger.head.write_text("{oops")
    with pytest.raises(LedgerBroken) as caught:
        ledger.verify()
    assert "head.json" in str(caught.value)


def test_digest_of_data_with_keys_of_mixed_types():
    assert digest({1: "a", "b": 2}) == digest({"1": "a", "b": 2})


def test_a_group_is_one_write_and_one_fsync_and_chains_like_single_appends(tmp_path, monkeypatch):
    import os

    grouped, single = Ledger(tmp_path / "grouped"), Ledger(tmp_path / "single")
    fill(single, 3)
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.readlink(f"/proc/self/fd/{fd}")),
                                                 real_fsync(fd))[1])
    with grouped.group():
        fill(grouped, 3)
        assert not grouped.path.exists()  # nothing written until the commit
    assert synced == [str(grouped.path)] and grouped.commits == 1
    assert lines(grouped) == lines(single)  # the same entries, the same chain
    assert json.loads(grouped.head.read_text())["seq"] == 3
    assert grouped.verify().entries == 3


def test_commit_writes_what_the_group_holds_so_far(ledger):
    with ledger.group():
        fill(ledger, 2)
        ledger.commit()
        assert len(lines(ledger)) == 6
        fill(ledger, 1)
        assert len(lines(ledger)) == 6
    assert len(lines(ledger)) == 7 and ledger.verify().entries == 7


def test_a_group_is_committed_when_its_block_raises(ledger):
    with pytest.raises(RuntimeError), ledger.group():
        fill(ledger, 2)
        raise RuntimeError("the task crashed")
    assert ledger.verify().entries == 6


def test_a_torn_group_keeps_its_whole_entries_and_the_chain_continues(tmp_path):
    """A worker killed in the middle of a group's one write: the whole lines it got out are entries like
    any other; the torn one is moved aside; the head lags; the next commit chains on."""
    donor, ledger = Ledger(tmp_path / "donor"), Ledger(tmp_path / "ledger")
    fill(ledger, 2)
    donor.path.parent.mkdir(parents=True)
    donor.path.write_bytes(ledger.path.read_bytes())
    donor.head.write_bytes(ledger.head.read_bytes())
    with donor.group():
        fill(donor, 3)
    group = donor.path.read_bytes()[len(ledger.path.read_bytes()):]
    cut = group.index(b"\n", group.index(b"\n") + 1) + 20  # two whole entries and part of the third
    with ledger.path.open("ab") as handle:
        handle.write(group[:cut])
    assert json.loads(ledger.head.read_text())["seq"] == 2  # the killed commit never got to the head
    with ledger.group():
        fill(ledger, 1)
    assert ledger.verify().entries == 5  # 2, the 2 whole entries of the torn group, 1
    torn = group[group.index(b"\n", group.index(b"\n") + 1) + 1:cut]
    assert (ledger.folder / "ledger.jsonl.torn").read_bytes() == torn + b"\n"


@pytest.mark.parametrize("record", [
    {"kind": "step", "status": "completed", "step": "Task_1"},
    {"kind": "step", "status": "ok", "detail": {"é ü": [1, 2.5, None, True, {"b": "\"quoted\"\n"}]}},
    {"kind": "run", "status": "done", "detail": {1: "a", "b": 2}},  # keys of mixed types
])
def test_a_written_line_is_the_canonical_json_of_its_entry(tmp_path, record):
    """Lines are composed from the record's and envelope's canonical JSON: they must be exactly the
    canonical JSON of the whole entry, whose hashes verify recomputes from scratch."""
    ledger = Ledger(tmp_path / "ledger")
    ledger.append(record, {"run_id": "r", "ts": "2026-01-01T00:00:00+00:00"})
    ledger.append(record, {"run_id": "r", "ts": "2026-01-01T00:00:01+00:00"})
    from engine.ledger import canonical

    for raw in lines(ledger):
        assert raw.encode() == canonical(json.loads(raw))
    assert ledger.verify().entries == 2
