"""`engine plugin pack`: a plugin folder as a reproducible archive (the same bytes every time) that another
workspace installs by extracting it into plugins/; a plugin whose manifest does not vouch for its files is
refused."""

import hashlib
import json
import os
import tarfile

import pytest

from tests.conftest import engine
from tests.integration.test_cli_json import assert_document, assert_error

PLUGIN = "word-count"


@pytest.fixture
def authored(example_ws):
    """The example workspace with plugins/word-count made by `engine plugin new`."""
    engine("plugin", "new", PLUGIN, "--category", "transformation", cwd=example_ws, check=0)
    return example_ws


def pack(ws, *args, check=0):
    return assert_document(engine("plugin", "pack", PLUGIN, *args, "--json", cwd=ws, check=check).stdout,
                           "plugin-pack")


def test_packing_twice_gives_the_same_bytes_with_only_the_digested_files_in_them(authored, tmp_path):
    folder = authored / "plugins" / PLUGIN
    first = pack(authored)
    archive = authored / "dist" / f"{PLUGIN}-0.1.0.tar.gz"
    assert first["archive"] == str(archive) and first["version"] == "0.1.0"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert first["source_digest"] == manifest["source_digest"]
    data = archive.read_bytes()
    assert first["sha256"] == hashlib.sha256(data).hexdigest()
    assert (archive.parent / f"{archive.name}.sha256").read_text() == f"{first['sha256']}  {archive.name}\n"

    # what a second pack may not depend on: times, caches, where it is written
    os.utime(folder / "src" / "word_count.py", (1_700_000_000, 1_700_000_000))
    (folder / "src" / "__pycache__").mkdir(exist_ok=True)  # the worker that checked the plugin may have made it
    (folder / "src" / "__pycache__" / "word_count.cpython-311.pyc").write_bytes(b"cache")
    second = pack(authored, "--output", tmp_path / "again")
    assert (tmp_path / "again" / archive.name).read_bytes() == data and second["sha256"] == first["sha256"]

    with tarfile.open(archive) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    on_disk = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                     if p.is_file() and "__pycache__" not in p.parts)
    assert names == [f"{PLUGIN}/{rel}" for rel in on_disk] and first["files"] == len(names)
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, 0, "", "")}
    assert {m.mode for m in members} <= {0o644, 0o755}
    assert data[4:8] == b"\0\0\0\0"  # the gzip header's mtime


def test_the_archive_extracted_into_another_workspace_passes_plugin_check_there(authored, tmp_path):
    body = pack(authored)
    other = tmp_path / "other"
    engine("init", other, check=0)
    engine("plugin", "check", PLUGIN, cwd=other, check=6)  # not there yet
    with tarfile.open(body["archive"]) as tar:
        tar.extractall(other / "plugins", filter="data")
    proc = engine("plugin", "check", PLUGIN, "--json", cwd=other, check=0)
    assert json.loads(proc.stdout) == {"plugin": PLUGIN, "ok": True, "problems": []}
    listed = json.loads(engine("plugin", "list", "--json", cwd=other, check=0).stdout)
    [row] = [row for row in listed["plugins"] if row["id"] == PLUGIN]
    assert row["origin"] == "workspace" and row["folder"] == str(other / "plugins" / PLUGIN)


def test_a_stale_digest_is_refused_naming_the_manifest_and_nothing_is_written(authored):
    source = authored / "plugins" / PLUGIN / "src" / "word_count.py"
    source.write_text(source.read_text() + "\n# edited after the digest\n")
    body = assert_error(engine("plugin", "pack", PLUGIN, "--json", cwd=authored), 6)
    assert any(p.get("file") == str(authored / "plugins" / PLUGIN / "manifest.json")
               and p.get("path") == "$.source_digest" and "does not match" in p["message"] for p in body["problems"])
    assert not (authored / "dist").exists()
    proc = engine("plugin", "pack", PLUGIN, cwd=authored, check=6)
    assert "manifest.json $.source_digest: source_digest does not match" in proc.stderr


def test_a_manifest_without_a_digest_is_refused(authored):
    path = authored / "plugins" / PLUGIN / "manifest.json"
    manifest = json.loads(path.read_text())
    del manifest["source_digest"]
    path.write_text(json.dumps(manifest, indent=2) + "\n")
    engine("plugin", "check", PLUGIN, cwd=authored, check=0)  # it loads: the digest is optional to load
    body = assert_error(engine("plugin", "pack", PLUGIN, "--json", cwd=authored), 6)
    [problem] = body["problems"]
    assert problem["file"] == str(path) and problem["path"] == "$.source_digest"
    assert "has no source_digest" in problem["message"]
    assert not (authored / "dist").exists()


def test_an_unknown_plugin_is_refused(example_ws):
    body = assert_error(engine("plugin", "pack", "word-cuont", "--json", cwd=example_ws), 6)
    assert "no plugin 'word-cuont' is installed" in body["problems"][0]["message"]
    assert not (example_ws / "dist").exists()
