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


def test_nothing_is_written_after_a_tail_the_head_does_not_vouch_for(ledger):
    """A cut tail (the head records more) or a replaced last entry: the next write refuses instead of
    chaining on, which would make the shortened ledger look whole."""
    rows = lines(ledger)
    ledger.path.write_text("\n".join(rows[:-2]) + "\n")
    with pytest.raises(LedgerBroken) as caught:
        fill(ledger, 1)
    assert "tail (entry seq 2) is not what its head (head.json, entry seq 4) records" in str(caught.value)
    assert lines(ledger) == rows[:-2]  # nothing written
    from engine.ledger import _entry

    last = json.loads(rows[-1])  # the last entry replaced, its hashes recomputed so that it chains
    _, line = _entry(last["seq"], last["prev"], {**last["record"], "step": "Task_forged"}, last["envelope"])
    ledger.path.write_text("\n".join(rows[:-1]) + "\n" + line.decode())
    with pytest.raises(LedgerBroken) as caught:
        fill(ledger, 1)
    assert "tail (entry seq 4) is not what its head (head.json, entry seq 4) records" in str(caught.value)


def test_without_its_head_a_ledger_with_entries_neither_verifies_nor_grows(ledger):
    ledger.head.unlink()
    with pytest.raises(LedgerBroken) as caught:
        ledger.verify()
    assert str(caught.value).startswith("no head: head.json is missing, so truncation cannot be ruled out")
    assert ledger.verify(no_head=True).entries == 4
    with pytest.raises(LedgerBroken) as caught:
        fill(ledger, 1)
    assert "head.json is missing while ledger.jsonl holds 4 entries" in str(caught.value)
    fresh = Ledger(ledger.folder.parent / "fresh")
    assert fresh.verify().entries == 0  # a new ledger has no head and no entries: nothing to rule out
    fill(fresh, 1)
    assert fresh.verify().entries == 1


def test_an_anchor_kept_elsewhere_proves_the_ledger_was_not_cut_before_it(ledger):
    kept = ledger.anchor()
    assert kept["seq"] == 4
    fill(ledger, 2)
    assert ledger.verify(anchor=kept["hash"]).entries == 6
    rows = lines(ledger)
    ledger.path.write_text("\n".join(rows[:3]) + "\n")  # cut, and the head rewritten to match:
    third = json.loads(rows[2])
    ledger.head.write_text(json.dumps({"seq": third["seq"], "hash": third["hash"]}))
    assert ledger.verify().entries == 3  # the chain and the head agree ...
    with pytest.raises(LedgerBroken) as caught:  # ... but the anchor is gone
        ledger.verify(anchor=kept["hash"])
    assert f"the anchor {kept['hash']} is no entry of the ledger (it ends at entry seq 3)" in str(caught.value)


def test_a_huge_value_is_stored_cut_with_its_length_and_digest(tmp_path):
    import hashlib

    ledger = Ledger(tmp_path / "ledger")
    message = "boom " * 400_000  # 2 MB
    ledger.append({"kind": "step", "status": "error", "reason": message, "detail": {"also": [message]}},
                  {"run_id": "r", "ts": "2026-01-01T00:00:00+00:00"})
    entry = json.loads(lines(ledger)[0])
    whole = hashlib.sha256(message.encode()).hexdigest()
    assert entry["record"]["reason"] == message[:4096] + f"... [capped: {len(message)} characters, sha256 {whole}]"
    assert entry["record"]["detail"]["also"][0] == entry["record"]["reason"]
    assert ledger.path.stat().st_size < 20_000 and ledger.verify().entries == 1
