"""Ledger segments: a full current file is sealed as ledger-000001.jsonl, ledger-000002.jsonl, ... and the
chain (seq, prev) runs on across the files; readers and verify take the segments in order, then the
current file; every tamper with a segment is named by file and line; a crash between the rename and the
first write leaves a ledger that chains on; concurrent writers rotating leave every entry once."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.errors import LedgerBroken
from engine.ledger import GENESIS, Ledger, _entry, segment_name
from tests.conftest import engine

SMALL = 1000  # bytes: three or four entries of fill() per segment


def fill(ledger, n=1, task="t1"):
    for i in range(n):
        ledger.append({"kind": "step", "status": "completed", "step": f"Task_{i}", "task_id": task},
                      {"run_id": "run-1", "ts": "2026-01-01T00:00:00+00:00"})


def rows(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


@pytest.fixture
def ledger(tmp_path):
    """A ledger of 20 entries in several sealed segments and a current file."""
    led = Ledger(tmp_path / "ledger", segment_bytes=SMALL)
    fill(led, 20)
    assert len(led.segments()) >= 4 and led.path.exists()
    return led


def test_a_full_file_is_sealed_and_the_chain_runs_on_across_files(tmp_path):
    ledger = Ledger(tmp_path / "ledger", segment_bytes=SMALL)
    fill(ledger, 3)
    assert ledger.segments() == []  # not full yet
    sealed_bytes = {}
    for _ in range(12):
        with ledger.group():
            fill(ledger, 3)
        for path in ledger.segments():
            sealed_bytes.setdefault(path.name, path.read_bytes())
    names = [p.name for p in ledger.segments()]
    assert names == [segment_name(n) for n in range(1, len(names) + 1)] and len(names) >= 8
    assert names[0] == "ledger-000001.jsonl"
    for path in ledger.segments():
        assert path.read_bytes() == sealed_bytes[path.name]  # a sealed segment is never written again
        size = path.stat().st_size
        assert SMALL <= size < SMALL + 3 * 400  # sealed at the first commit that found it full
    entries = [e for path in ledger.files() for e in rows(path)]
    assert [e["seq"] for e in entries] == list(range(1, 40))
    assert entries[0]["prev"] == GENESIS
    assert all(b["prev"] == a["hash"] for a, b in zip(entries, entries[1:], strict=False))
    for before, after in zip(ledger.files(), ledger.files()[1:], strict=False):
        assert rows(after)[0]["prev"] == rows(before)[-1]["hash"]  # each file chains to the one before
    assert json.loads(ledger.head.read_text()) == {"seq": 39, "hash": entries[-1]["hash"]}
    report = ledger.verify()
    assert (report.entries, report.files, report.last_hash) == (39, len(names) + 1, entries[-1]["hash"])
    assert list(ledger.entries()) == entries
    assert ledger.anchor() == {"seq": 39, "hash": entries[-1]["hash"]}


def test_a_segment_size_of_one_byte_seals_every_commit(tmp_path):
    ledger = Ledger(tmp_path / "ledger", segment_bytes=1)
    fill(ledger, 4)
    assert [p.name for p in ledger.files()] == [segment_name(1), segment_name(2), segment_name(3), "ledger.jsonl"]
    assert ledger.verify().entries == 4
    with pytest.raises(ValueError):
        Ledger(tmp_path / "other", segment_bytes=0)


def _edit(path, index):
    lines = path.read_text().splitlines()
    entry = json.loads(lines[index])
    entry["record"]["status"] = "failed"
    lines[index] = json.dumps(entry)
    path.write_text("\n".join(lines) + "\n")


def _missing_middle(folder, last):
    (folder / segment_name(2)).unlink()
    end = rows(folder / segment_name(1))[-1]["seq"]
    return segment_name(3), 1, (f"follows seq {end}, the last entry of {segment_name(1)}: a segment between them "
                                f"is missing ({segment_name(2)} missing)")


def _missing_first(folder, last):
    (folder / segment_name(1)).unlink()
    return segment_name(2), 1, ("follows seq 0 (the ledger's start): the entries before it were removed (a whole "
                                f"segment ({segment_name(1)} missing) or lines)")


def _edited(folder, last):
    _edit(folder / segment_name(2), 1)
    return segment_name(2), 2, "was edited (record hash differs)"


def _replaced(folder, last):
    """Segment 2 rewritten with one record changed and every hash in it recomputed, chained from segment 1:
    whole in itself, but the next file no longer chains to it."""
    path, out = folder / segment_name(2), []
    prev = rows(folder / segment_name(1))[-1]["hash"]
    for i, old in enumerate(rows(path)):
        entry, line = _entry(old["seq"], prev, {**old["record"], "status": "forged"} if i == 0 else old["record"],
                             old["envelope"])
        prev = entry["hash"]
        out.append(line)
    path.write_bytes(b"".join(out))
    return segment_name(3), 1, (f"does not chain to the entry before it ({segment_name(2)}:{len(out)}; prev hash "
                                "differs): that segment was replaced")


def _out_of_order(folder, last):
    one, two = folder / segment_name(1), folder / segment_name(2)
    one.rename(folder / "swap")
    two.rename(one)
    (folder / "swap").rename(two)
    return segment_name(1), 1, "follows seq 0 (the ledger's start)"


def _emptied(folder, last):
    (folder / segment_name(2)).write_text("")
    return segment_name(2), None, f"{segment_name(2)}: a sealed segment holds no entry: it was emptied"


def _removed_last(folder, last):
    (folder / segment_name(last)).unlink()
    end = rows(folder / segment_name(last - 1))[-1]["seq"]
    return "ledger.jsonl", 1, (f"follows seq {end}, the last entry of {segment_name(last - 1)}: a segment between "
                               f"them is missing, or the segments are out of order")


def _removed_last_and_current(folder, last):
    (folder / segment_name(last)).unlink()
    (folder / "ledger.jsonl").unlink()
    kept = rows(folder / segment_name(last - 1))
    return "head.json", None, (f"the ledger ends at entry seq {kept[-1]['seq']} ({segment_name(last - 1)}:"
                               f"{len(kept)}) but its head (head.json) records entry seq 20: entries after seq "
                               f"{kept[-1]['seq']} were removed (lines at its end, or a whole segment)")


@pytest.mark.parametrize("tamper", [_missing_middle, _missing_first, _edited, _replaced, _out_of_order, _emptied,
                                    _removed_last, _removed_last_and_current])
def test_a_tampered_segment_is_named_by_file_and_line(ledger, tamper):
    file, line, says = tamper(ledger.folder, len(ledger.segments()))
    with pytest.raises(LedgerBroken) as caught:
        ledger.verify()
    assert Path(caught.value.file).name == file and getattr(caught.value, "line", None) == line
    assert says in str(caught.value)
    if line is not None:
        assert str(caught.value).startswith(f"{file}:{line}: ")


def test_a_cut_at_a_segment_stops_the_next_write(ledger):
    """The last segment and the current file removed: the tail is an earlier segment's, which the head
    does not vouch for, so nothing is chained on."""
    sealed = ledger.segments()
    sealed[-1].unlink()
    ledger.path.unlink()
    with pytest.raises(LedgerBroken) as caught:
        fill(ledger, 1)
    assert "is not what its head (head.json, entry seq 20) records" in str(caught.value)
    assert ledger.path.read_bytes() == b""  # nothing written
    ledger.head.unlink()
    with pytest.raises(LedgerBroken) as caught:
        fill(ledger, 1)
    assert f"head.json is missing while the ledger ({len(sealed) - 1} sealed segment(s) and ledger.jsonl)" \
        in str(caught.value)


@pytest.mark.parametrize("left", ["no current file", "an empty current file", "a torn line"])
def test_a_crash_between_the_rename_and_the_first_write_chains_on(tmp_path, monkeypatch, left):
    """The rotation's rename is done, then the writer dies before any entry reaches the fresh file: the
    ledger verifies as it is, and the next commit chains on to the sealed segment's last entry."""
    fill(Ledger(tmp_path / "ledger"), 4)
    ledger = Ledger(tmp_path / "ledger", segment_bytes=SMALL)  # 4 entries: the next commit seals them
    before = rows(ledger.path)

    def killed(fd, data):
        raise SystemExit("killed")

    monkeypatch.setattr(os, "write", killed)
    with pytest.raises(SystemExit):
        fill(ledger, 1)
    monkeypatch.undo()
    assert rows(ledger.folder / segment_name(1)) == before
    assert ledger.path.read_bytes() == b""  # the fresh file, nothing in it
    if left == "no current file":
        ledger.path.unlink()
    elif left == "a torn line":
        ledger.path.write_bytes(b'{"v": 1, "seq": 5, "pre')
    if left != "a torn line":  # (a torn line fails verify until the next commit moves it aside, as before)
        assert ledger.verify().entries == 4
    fill(Ledger(ledger.folder, segment_bytes=SMALL), 2)  # a new writer, as after a restart
    current = rows(ledger.path)
    assert [e["seq"] for e in current] == [5, 6] and current[0]["prev"] == before[-1]["hash"]
    assert ledger.segments() == [ledger.folder / segment_name(1)]  # the empty file was not sealed
    report = ledger.verify()
    assert (report.entries, report.files) == (6, 2)
    if left == "a torn line":
        assert (ledger.folder / "ledger.jsonl.torn").read_bytes() == b'{"v": 1, "seq": 5, "pre\n'


def _workspace(tmp_path, segment_mb=None):
    ws = tmp_path / "ws"
    engine("init", "--example", ws, check=0)
    if segment_mb is not None:
        toml = ws / "engine.toml"
        text = toml.read_text()
        assert "segment_mb = 64" in text
        toml.write_text(text.replace("segment_mb = 64", f"segment_mb = {segment_mb}"))
    return ws


def test_the_ledger_commands_read_every_segment(tmp_path):
    ws = _workspace(tmp_path)
    ledger = Ledger(ws / ".engine" / "ledger", segment_bytes=SMALL)
    for task in ("t1", "t2", "t3"):
        fill(ledger, 5, task=task)
    assert len(ledger.segments()) >= 3
    files = len(ledger.files())
    proc = engine("ledger", "verify", cwd=ws, check=0)
    assert f"ledger ok: 15 entries in {files} file(s)" in proc.stdout
    exported = [json.loads(x) for x in engine("ledger", "export", cwd=ws, check=0).stdout.splitlines()]
    assert [e["seq"] for e in exported] == list(range(1, 16))
    assert exported == list(ledger.entries())
    csv = engine("ledger", "export", "--format", "csv", "--task", "t2", cwd=ws, check=0).stdout.splitlines()
    assert [row.split(",")[0] for row in csv] == ["seq", "6", "7", "8", "9", "10"]
    shown = engine("ledger", "show", "--task", "t3", cwd=ws, check=0).stdout.splitlines()
    assert [int(row.split()[0]) for row in shown] == [11, 12, 13, 14, 15]
    anchor = engine("ledger", "anchor", cwd=ws, check=0).stdout.split()[0]
    assert anchor == exported[-1]["hash"]
    (ws / ".engine" / "ledger" / segment_name(2)).unlink()
    proc = engine("ledger", "verify", cwd=ws, check=4)
    assert f"{segment_name(3)}:1: entry seq" in proc.stderr and f"{segment_name(2)} missing" in proc.stderr


def test_a_run_seals_the_ledger_at_the_workspace_segment_size(tmp_path):
    """`[ledger] segment_mb` in engine.toml: a run that finds the ledger at that size seals it, and its
    own entries chain on in a fresh file."""
    ws = _workspace(tmp_path, segment_mb=1)
    folder = ws / ".engine" / "ledger"
    ledger = Ledger(folder)  # the default size: nothing sealed while filling
    while not ledger.path.exists() or ledger.path.stat().st_size < 1 << 20:
        ledger.append({"kind": "safety", "status": "ok", "reason": "x" * 4000},
                      {"run_id": "run-0", "ts": "2026-01-01T00:00:00+00:00"})
    filled = rows(ledger.path)
    engine("run", "--drain", cwd=ws, check=0)
    assert rows(folder / segment_name(1)) == filled
    ran = rows(ledger.path)
    assert ran[0]["seq"] == filled[-1]["seq"] + 1 and ran[0]["prev"] == filled[-1]["hash"]
    proc = engine("ledger", "verify", cwd=ws, check=0)
    assert f"ledger ok: {len(filled) + len(ran)} entries in 2 file(s)" in proc.stdout


WRITER = """
import sys
from pathlib import Path
from engine.ledger import Ledger

folder, name, groups = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
ledger = Ledger(folder, segment_bytes=1500)
(folder.parent / f"ready-{name}").touch()
while not (folder.parent / "go").exists():  # both writers start together
    pass
for g in range(groups):
    with ledger.group():
        for i in range(3):
            ledger.append({"kind": "step", "status": "completed", "task_id": name, "step": f"{g}-{i}"},
                          {"run_id": name, "ts": "2026-01-01T00:00:00+00:00"})
"""


def test_concurrent_writers_rotating_leave_every_entry_once_and_readers_see_no_half_rotation(tmp_path):
    """Two processes commit groups into one ledger with a tiny segment size while this one verifies it
    again and again: every verify passes (no rotation is seen half done), and in the end every entry of
    both writers is in the ledger once, in one chain across the segments."""
    folder = tmp_path / "ledger"
    groups = 60
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(folder), name, str(groups)], env=env)
               for name in ("a", "b")]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready-{name}").exists() for name in ("a", "b")) and time.monotonic() < deadline:
        time.sleep(0.01)
    (tmp_path / "go").touch()
    reader, checks = Ledger(folder), 0
    while any(w.poll() is None for w in writers) and time.monotonic() < deadline:
        reader.verify()  # raises on a half-rotated ledger
        checks += 1
    assert [w.wait(timeout=60) for w in writers] == [0, 0]
    report = reader.verify()
    assert report.entries == 2 * groups * 3 and len(reader.segments()) >= 10 and checks > 0
    entries = list(reader.entries())
    assert [e["seq"] for e in entries] == list(range(1, 2 * groups * 3 + 1))
    seen = [(e["record"]["task_id"], e["record"]["step"]) for e in entries]
    expected = {(name, f"{g}-{i}") for name in ("a", "b") for g in range(groups) for i in range(3)}
    assert len(seen) == len(set(seen)) and set(seen) == expected
    assert sum(a[0] != b[0] for a, b in zip(seen, seen[1:], strict=False)) > 1  # the writers did interleave
    for name in ("a", "b"):  # each writer's groups are whole and in its order
        mine = [step for who, step in seen if who == name]
        assert mine == [f"{g}-{i}" for g in range(groups) for i in range(3)]


def test_the_segment_size_setting_is_checked(tmp_path):
    from engine.config import Config, load_config
    from engine.errors import WorkspaceError

    assert Config().ledger.segment_mb == 64
    (tmp_path / "engine.toml").write_text("[ledger]\nsegment_mb = 8\n")
    assert load_config(tmp_path).ledger.segment_mb == 8
    (tmp_path / "engine.toml").write_text("[ledger]\nsegment_mb = 0\n")
    with pytest.raises(WorkspaceError) as caught:
        load_config(tmp_path)
    assert [p.path for p in caught.value.problems] == ["ledger.segment_mb"]
