"""The worker pool: warm reuse, the concurrency cap, and a replaced worker after a fault."""

import json
import shutil
import threading
from datetime import UTC, datetime

import pytest
import structlog

from engine.errors import PluginError
from engine.plugins.dispatch import Dispatcher
from engine.plugins.loader import load_plugin
from engine.plugins.pool import WorkerPool
from engine.sdk import Context
from tests.conftest import DATA


def plugin_with(tmp_path, concurrency):
    folder = tmp_path / "faulty"
    shutil.copytree(DATA / "plugins" / "faulty", folder)
    spec = json.loads((folder / "plugin.spec.json").read_text())
    spec["concurrency"] = concurrency
    (folder / "plugin.spec.json").write_text(json.dumps(spec))
    return load_plugin(folder)


def ctx(tmp_path):
    return Context("run", "t", datetime(2026, 1, 1, tzinfo=UTC), 1, False, tmp_path, structlog.get_logger())


@pytest.mark.parametrize("concurrency", [1, 2])
def test_concurrent_calls_use_at_most_concurrency_workers(tmp_path, concurrency):
    plugin = plugin_with(tmp_path, concurrency)
    pool = WorkerPool(tmp_path)
    dispatcher = Dispatcher(pool)
    barrier = threading.Barrier(4)
    pids: list[int] = []

    def call():
        barrier.wait()
        for _ in range(3):
            pids.append(dispatcher.call(plugin, "ok", ctx(tmp_path), {}, task_timeout=30)["pid"])

    threads = [threading.Thread(target=call) for _ in range(4)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        pool.close()
    assert len(pids) == 12
    assert len(set(pids)) == pool.started <= concurrency  # warm workers are reused, never more than the cap


def test_a_faulted_worker_is_replaced_and_the_others_stay_warm(tmp_path):
    plugin = plugin_with(tmp_path, 1)
    pool = WorkerPool(tmp_path)
    dispatcher = Dispatcher(pool)
    try:
        first = dispatcher.call(plugin, "ok", ctx(tmp_path), {})["pid"]
        assert dispatcher.call(plugin, "ok", ctx(tmp_path), {})["pid"] == first
        with pytest.raises(PluginError, match="exited with code 1"):
            dispatcher.call(plugin, "exit", ctx(tmp_path), {})
        second = dispatcher.call(plugin, "ok", ctx(tmp_path), {})["pid"]
        assert second != first and pool.started == 2
    finally:
        pool.close()
    assert pool.workers() == {}
