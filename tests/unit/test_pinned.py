"""Pinned models: kept once per hash, whole, by as many kernels as pin at once; refused once edited."""

import threading

import pytest

from engine.errors import ModelError
from engine.kernel import load_registry
from engine.process.models import load_models
from engine.process.pinned import load_pinned, pin, pinned, read_pinned
from engine.workspace import init


@pytest.fixture
def workspace(tmp_path):
    ws, _ = init(tmp_path / "ws", example=False)
    return ws


@pytest.fixture
def models(workspace):
    return load_models(workspace.bpmn, workspace.dmn, load_registry(workspace))


def test_kernels_pinning_at_once_keep_one_whole_copy(tmp_path, models, workspace):
    store = tmp_path / "models"
    errors = []

    def one():
        try:
            pin(models, store)
        except Exception as e:  # noqa: BLE001 (any failure fails the test below)
            errors.append(e)

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(p.name for p in store.iterdir()) == [f"bpmn-{models.bpmn_hash}", f"dmn-{models.dmn_hash}.dmn"]
    assert load_pinned(store, models.hashes, load_registry(workspace)).hashes == models.hashes


def test_a_pinned_model_edited_afterwards_is_refused(tmp_path, models):
    store = tmp_path / "models"
    pin(models, store)
    bpmn, dmn = pinned(store, models.hashes)
    dmn.write_text(dmn.read_text().replace("</definitions>", "<!-- edited --></definitions>"))
    with pytest.raises(ModelError, match="changed after they were pinned"):
        read_pinned(store, models.hashes)
    with pytest.raises(ModelError, match="are not pinned"):
        read_pinned(store, {"bpmn": "0" * 64, "dmn": models.dmn_hash})
