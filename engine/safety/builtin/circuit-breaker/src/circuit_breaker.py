"""circuit-breaker: built into the engine; reads the breakers the kernel keeps (``engine/safety``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.safety.breaker import breakers_of
from engine.sdk import Context, PluginError


def state(ctx: Context, data: Mapping[str, Any]) -> dict[str, Any]:
    if ctx.workspace is None:
        raise PluginError("circuit-breaker runs only inside the engine (no workspace in its context)")
    plugin = data.get("plugin")
    if not plugin:
        raise PluginError("circuit-breaker.state needs the input 'plugin' (map it with an input parameter, "
                          "e.g. plugin = ${plugin})")
    entry = breakers_of(ctx.workspace).state(str(plugin))
    return {"breaker": {"plugin": str(plugin), "state": entry["state"], "failures": len(entry.get("failures") or [])}}
