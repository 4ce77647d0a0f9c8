"""Dispatch: the one function through which the kernel calls a plugin.

Input is checked against the operation's ``input_schema`` before the call and output against its
``output_schema`` after; a violation is a ``ContractViolation`` naming the plugin, operation and every
JSON path. A plugin's own ``PluginError`` passes through; anything else it raises becomes a
non-retryable ``PluginError``. Plugins run in process for now: isolation will sit behind this function.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from engine.contracts import problems_against
from engine.errors import ContractViolation, PluginError
from engine.plugins.loader import LoadedPlugin
from engine.sdk import Context


def dispatch(plugin: LoadedPlugin, operation: str | None, ctx: Context, data: Mapping[str, Any]) -> dict[str, Any]:
    op_name = operation or plugin.spec.first_operation
    op = plugin.spec.operations.get(op_name)
    subject: dict[str, Any] = {"plugin": plugin.id, "operation": op_name}
    if op is None:
        raise PluginError(f"plugin {plugin.id!r} has no operation {op_name!r}; it has: "
                          f"{', '.join(plugin.spec.operations)}", **subject)
    found = problems_against(op.input_schema, dict(data))
    if found:
        raise ContractViolation(f"input of {plugin.id}.{op_name} violates its input_schema",
                                problems=found, side="input", **subject)
    try:
        result = plugin.functions[op_name](ctx, data)
    except PluginError as e:
        e.subject.update(subject)
        raise
    except Exception as e:
        raise PluginError(f"plugin {plugin.id}.{op_name} raised {type(e).__name__}: {e}",
                          retryable=False, **subject) from e
    if not isinstance(result, Mapping):
        raise ContractViolation(f"{plugin.id}.{op_name} returned {type(result).__name__}, not an object",
                                side="output", **subject)
    try:  # the output goes to the ledger and the run record: it must be plain JSON
        output: dict[str, Any] = json.loads(json.dumps(dict(result), allow_nan=False))
    except (TypeError, ValueError) as e:
        raise ContractViolation(f"output of {plugin.id}.{op_name} is not plain JSON: {e}", side="output",
                                **subject) from e
    found = problems_against(op.output_schema, output)
    if found:
        raise ContractViolation(f"output of {plugin.id}.{op_name} violates its output_schema",
                                problems=found, side="output", **subject)
    return output
