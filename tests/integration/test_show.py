"""`engine show`: the page a person opens to see what a run did, checked in a real headless Chromium.

The page must draw every element of the model the run pinned, highlight exactly the steps the ledger
records, mark exactly the decision rows the ledger says matched, need no network, and keep showing the
run's own models after `process/` is edited."""

import json
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest
from lxml import etree
from lxml import html as lxml_html

from engine.audit.picture import STATUS_COLOURS
from tests.conftest import engine

SVG_NAMESPACE = "http://www.w3.org/2000/svg"
ODD_REPO = '/nowhere/<img src=x onerror="alert(1)"> & </section>'


# --- helpers --------------------------------------------------------------------------------------------


def chromium():
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    assert path, "headless Chromium is needed to test `engine show` (.ci/run installs it: apt-get install chromium)"
    return path


def browse(page, profile, *args):
    """Run headless Chromium on ``page``; returns its stdout (the DOM with --dump-dom)."""
    proc = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--no-first-run", f"--user-data-dir={profile}", *args, Path(page).as_uri()],
                          capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def dom_of(page, profile):
    dom = browse(page, profile, "--dump-dom")
    assert "<svg" in dom, dom[:500]
    return lxml_html.fromstring(dom)


def png_pixels(png):
    """(width, height, rows of RGB triples) of an 8-bit RGB/RGBA, non-interlaced PNG, decoded by hand."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, [], None
    while pos < len(png):
        (length,), kind = struct.unpack(">I", png[pos:pos + 4]), png[pos + 4:pos + 8]
        body = png[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, header
    bpp = 3 if colour == 2 else 4
    stride = width * bpp
    raw = zlib.decompress(b"".join(idat))
    prior, rows = bytearray(stride), []
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        if kind == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif kind == 2:
            line = bytearray((a + b) & 255 for a, b in zip(line, prior, strict=True))
        elif kind == 3:
            for i in range(stride):
                line[i] = (line[i] + ((line[i - bpp] if i >= bpp else 0) + prior[i]) // 2) & 255
        elif kind == 4:
            for i in range(stride):
                a, b, c = line[i - bpp] if i >= bpp else 0, prior[i], prior[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append([bytes(line[i:i + 3]) for i in range(0, stride, bpp)])
        prior = line
    return width, height, rows


def ledger_of(ws, run_id):
    """The run's ledger entries, through `engine ledger export` (jsonl as stored)."""
    proc = engine("-w", ws, "ledger", "export", "--run", run_id, check=0)
    return [json.loads(line) for line in proc.stdout.splitlines()]


def steps_by_task(entries):
    tasks = {}
    for entry in entries:
        record = entry["record"]
        if record.get("kind") == "step":
            tasks.setdefault((record["task_file"], str(record["line"]), record["task_id"]), []).append(entry)
    return tasks


def pinned_models(ws, run_id):
    """The parsed BPMN files and the DMN file the run pinned, found by the hashes in its run.json."""
    models = json.loads((ws / ".engine" / "runs" / run_id / "run.json").read_text())["models"]
    folder = ws / ".engine" / "models" / f"bpmn-{models['bpmn']['sha256']}"
    manifest = json.loads((folder / "pinned.json").read_text())
    bpmn = [etree.parse(str(folder / name)) for name in [manifest["process_file"], *manifest["called_files"]]]
    dmn = etree.parse(str(ws / ".engine" / "models" / f"dmn-{models['dmn']['sha256']}.dmn"))
    return bpmn, dmn


def local(el):
    return etree.QName(el).localname


def di_elements(bpmn):
    return sorted(el.get("bpmnElement") for tree in bpmn for el in tree.iter()
                  if isinstance(el.tag, str) and local(el) in ("BPMNShape", "BPMNEdge"))


def sequence_flows(bpmn):
    return {el.get("id"): (el.get("sourceRef"), el.get("targetRef")) for tree in bpmn for el in tree.iter()
            if isinstance(el.tag, str) and local(el) == "sequenceFlow"}


def rules_of(dmn, decision_id):
    decision = next(el for el in dmn.iter() if isinstance(el.tag, str) and local(el) == "decision"
                    and el.get("id") == decision_id)
    return [el for el in decision.iter() if isinstance(el.tag, str) and local(el) == "rule"]


def run_ids(ws):
    return sorted(p.name for p in (ws / ".engine" / "runs").iterdir())


@pytest.fixture(scope="module")
def shown(tmp_path_factory):
    """The example workspace after one run, plus a task no plugin runs (it fails at an end event) and one
    whose repository, named in HTML, is refused before the process starts."""
    root = tmp_path_factory.mktemp("show")
    ws = root / "ws"
    engine("init", "--example", ws, check=0)
    inbox = ws / ".tasks" / "inbox"
    (inbox / "003-no-plugin.jsonl").write_text(json.dumps({"id": "odd-tool", "tool": "nothing-runs-this"}) + "\n")
    (inbox / "004-odd-repo.jsonl").write_text(json.dumps({"id": "odd-repo", "tool": "git", "repo": ODD_REPO}) + "\n")
    engine("-w", ws, "run", "--drain", check=1)
    ended = {folder: sorted(p.name for p in (ws / ".tasks" / folder).glob("*.jsonl")) for folder in ("done", "failed")}
    assert ended == {"done": ["001-inspect.jsonl", "002-normalize.jsonl"],
                     "failed": ["003-no-plugin.jsonl", "004-odd-repo.jsonl"]}, ended
    (run_id,) = run_ids(ws)
    return ws, run_id


# --- the tests ------------------------------------------------------------------------------------------


def test_the_page_draws_every_element_and_highlights_exactly_the_ledgers_steps(shown, tmp_path):
    ws, run_id = shown
    proc = engine("-w", ws, "show", run_id, cwd=tmp_path, check=0)
    page = tmp_path / f"{run_id}.html"
    assert proc.stdout.strip() == str(page) and page.is_file()

    bpmn, dmn = pinned_models(ws, run_id)
    drawn = di_elements(bpmn)
    flows = sequence_flows(bpmn)
    ledger_steps = steps_by_task(ledger_of(ws, run_id))
    dom = dom_of(page, tmp_path / "profile")
    sections = dom.xpath("//section[@data-task-id]")
    assert len(sections) == len(ledger_steps) == 6
    matched_somewhere = 0
    for section in sections:
        key = (section.get("data-task-file"), section.get("data-line"), section.get("data-task-id"))
        entries = ledger_steps[key]
        groups = section.xpath(".//*[@data-element-id]")
        # every shape and edge of the pinned diagram interchange is drawn, each once
        assert sorted(g.get("data-element-id") for g in groups) == drawn
        visited = {g.get("data-element-id"): g for g in groups if "visited" in g.get("class").split()}
        recorded = [e["record"] for e in entries if e["record"].get("step")]
        # the checks before the process (confinement, policy) are steps, but not elements of the model
        outside = {"confinement"} if key[2] == "odd-repo" else set()
        assert {r["step"] for r in recorded} - set(drawn) == outside
        assert set(visited) == {r["step"] for r in recorded} - outside, key
        last_status = {r["step"]: r["status"] for r in recorded if r["step"] not in outside}
        assert {k: g.get("data-status") for k, g in visited.items()} == last_status
        # the path: every taken flow joins two visited elements, and every visited element but an end
        # event is left by a taken flow
        taken = {g.get("data-element-id") for g in groups if "taken" in g.get("class").split()}
        assert bool(taken) == bool(visited)
        assert all(flows[f][0] in visited and flows[f][1] in visited for f in taken)
        for element, group in visited.items():
            if "endEvent" not in group.get("class").split():
                assert any(flows[f][0] == element for f in taken), (key, element)
        # every decision the task evaluated: its pinned table, the rows the ledger says matched marked
        decided = [e for e in entries if e["record"].get("decision")]
        tables = section.xpath(".//section[@data-decision-id]")
        assert len(tables) == len(decided)
        for entry in decided:
            decision = entry["record"]["decision"]
            (table,) = section.xpath(f".//section[@data-seq='{entry['seq']}']")
            assert table.get("data-decision-id") == decision["id"]
            rows = table.xpath(".//tr[@data-rule-id]")
            assert [r.get("data-rule-id") for r in rows] == [r.get("id") for r in rules_of(dmn, decision["id"])]
            matched = {r.get("data-rule-id") for r in rows if "matched" in r.get("class").split()}
            assert matched == set(decision["matched_rules"])
            matched_somewhere += len(matched)
    assert matched_somewhere >= 10


def test_the_screenshot_is_not_blank_and_shows_the_highlight(shown, tmp_path):
    ws, run_id = shown
    engine("-w", ws, "show", run_id, "--task", "inspect-status", cwd=tmp_path, check=0)
    page = tmp_path / f"{run_id}-inspect-status.html"
    shot = tmp_path / "shot.png"
    browse(page, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1200,800")
    width, height, rows = png_pixels(shot.read_bytes())
    assert (width, height) == (1200, 800)
    colours = {pixel for row in rows for pixel in row}
    assert len(colours) > 200  # text, shapes and anti-aliasing: not a blank or single-colour page
    highlight = bytes.fromhex(STATUS_COLOURS["completed"][1].lstrip("#"))
    assert sum(row.count(highlight) for row in rows) > 20_000  # the visited tasks' fill, several 100x80 boxes


def test_the_page_needs_no_network(shown, tmp_path):
    ws, run_id = shown
    page = tmp_path / "page.html"
    engine("-w", ws, "show", run_id, "-o", page, check=0)
    text = page.read_text(encoding="utf-8")
    dom = lxml_html.fromstring(text)
    tags = {el.tag for el in dom.iter() if isinstance(el.tag, str)}
    assert not tags & {"script", "link", "iframe", "object", "embed", "img", "image", "audio", "video", "source",
                       "foreignobject", "base", "form"}
    attributes = {name for el in dom.iter() for name in el.attrib}
    assert not attributes & {"src", "srcset", "xlink:href", "action", "background"}
    assert all(el.get("href").startswith("#") for el in dom.iter() if el.get("href") is not None)
    (style,) = dom.xpath("//style")
    assert "@import" not in style.text and "@font-face" not in style.text
    assert all(u.startswith("#") for u in re.findall(r"url\(([^)]*)\)", text))
    assert set(re.findall(r"[a-z]+://[^\s\"'<>)]*", text)) <= {SVG_NAMESPACE}
    assert "default-src 'none'" in text  # and the browser is told to fetch nothing


def test_what_a_task_wrote_is_shown_as_text(shown, tmp_path):
    ws, run_id = shown
    page = tmp_path / "odd.html"
    engine("-w", ws, "show", run_id, "--task", "odd-repo", "-o", page, check=0)
    dom = dom_of(page, tmp_path / "profile")
    assert dom.xpath("//img") == [] and len(dom.xpath("//section[@data-task-id]")) == 1
    (section,) = dom.xpath("//section[@data-task-id]")
    assert section.get("data-task-id") == "odd-repo" and "failed" in section.xpath(".//h2")[0].text_content()
    (step,) = section.xpath(".//tr[@data-step]")
    assert step.get("data-step") == "confinement" and step.get("data-status") == "error"
    assert ODD_REPO in step.xpath("./td[@class='reason']")[0].text_content()
    assert not [g for g in section.xpath(".//*[@data-element-id]") if "visited" in g.get("class").split()]


def test_an_earlier_run_keeps_its_own_models_after_process_is_edited(shown, tmp_path):
    ws = tmp_path / "ws"
    shutil.copytree(shown[0], ws, symlinks=True)
    (first,) = run_ids(ws)
    dmn_path, bpmn_path = ws / "process" / "decisions.dmn", ws / "process" / "orchestration.bpmn"
    tree = etree.parse(str(dmn_path))
    (rule,) = [el for el in tree.iter() if isinstance(el.tag, str) and el.get("id") == "select_plugin_git"]
    (description,) = [el for el in rule if local(el) == "description"]
    old_annotation = description.text
    description.text = "EDITED after the first run"
    tree.write(str(dmn_path), xml_declaration=True, encoding="UTF-8")
    bpmn_path.write_text(bpmn_path.read_text().replace('name="Validate task"', 'name="Renamed later"'))

    page = tmp_path / "first.html"
    engine("-w", ws, "show", first, "--task", "inspect-status", "-o", page, check=0)
    dom = dom_of(page, tmp_path / "profile")
    (row,) = dom.xpath("//section[@data-decision-id='select_plugin']//tr[@data-rule-id='select_plugin_git']")
    assert "matched" in row.get("class").split()
    assert row.xpath("./td[@class='annotation']")[0].text_content() == old_annotation
    text = page.read_text()
    assert "EDITED" not in text and "Renamed later" not in text and "Validate task" in text

    # a later run uses the edited models, and its page shows them
    shutil.move(ws / ".tasks" / "done" / "001-inspect.jsonl", ws / ".tasks" / "inbox" / "001-inspect.jsonl")
    engine("-w", ws, "run", "--drain", check=0)
    second = next(r for r in run_ids(ws) if r != first)
    later = tmp_path / "second.html"
    engine("-w", ws, "show", second, "--task", "inspect-status", "-o", later, check=0)
    assert "EDITED after the first run" in later.read_text() and "Renamed later" in later.read_text()


def test_unknown_runs_tasks_and_unpinned_models_are_refused(shown, tmp_path):
    ws, run_id = shown
    proc = engine("-w", ws, "show", "run-nope", cwd=tmp_path, check=2)
    assert "no run 'run-nope'" in proc.stderr and run_id in proc.stderr
    proc = engine("-w", ws, "show", run_id, "--task", "nobody", cwd=tmp_path, check=2)
    assert f"run {run_id} has no task 'nobody'" in proc.stderr and "inspect-status" in proc.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written

    copy = tmp_path / "ws"
    shutil.copytree(ws, copy, symlinks=True)
    (pinned_dmn,) = (copy / ".engine" / "models").glob("dmn-*.dmn")
    pinned_dmn.write_text(pinned_dmn.read_text().replace("is only inspected", "is inspected"))
    proc = engine("-w", copy, "show", run_id, "-o", tmp_path / "x.html", check=3)
    assert f"run {run_id} cannot be shown" in proc.stderr and "changed after they were pinned" in proc.stderr
    shutil.rmtree(copy / ".engine" / "models")
    proc = engine("-w", copy, "show", run_id, "-o", tmp_path / "x.html", check=3)
    assert f"run {run_id} cannot be shown" in proc.stderr and "not pinned" in proc.stderr
    assert not (tmp_path / "x.html").exists()
