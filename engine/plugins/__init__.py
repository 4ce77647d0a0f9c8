"""Plugins: manifest and spec validation, discovery, warm workers and dispatch.

Submodules are imported on first use: a plugin worker imports ``engine.plugins.worker`` and must not
pay for the kernel's side (JSON Schema, pydantic) on start. The one-call helper ``dispatch`` is
imported from ``engine.plugins.dispatch`` (here that name is the submodule).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "LoadedPlugin": "engine.plugins.loader", "Registry": "engine.plugins.loader",
    "load_plugin": "engine.plugins.loader", "source_digest": "engine.plugins.loader",
    "Dispatcher": "engine.plugins.dispatch",
    "WorkerPool": "engine.plugins.pool",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'engine.plugins' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
