"""The steps of a task, each one function: one input, one typed result.

``run_service`` and ``run_decision`` take the process variables as they are before the step and return a
``StepResult``: the variables the step sets, and the step's own part of its ledger record. They read
nothing else and change nothing: the SpiffWorkflow adapter (``engine.process.runtime``) only merges
``variables`` into the task's data and writes the record, and the plugin boundary is the plain
``PluginCall`` passed in.

A plugin call that fails does not raise: the result sets ``error`` (``message``, ``kind``, ``code``,
``retryable``, ``plugin``, ``operation``) and counts ``failures``, so the process's gateways route on
it. Only ``CallInterrupted`` (the engine is stopping) and a decision or expression that cannot be
evaluated (``EngineError``) end the step by raising.

A decision's record says what it was evaluated on and how (decision 0016): its ``inputs`` (each input
column's name and value; for a decision that is no table, the variables it read), the ``rules`` that made
up the result (id, row number and annotation as the Modeler shows them, outputs), the ``hit_policy``, the
``model`` (the DMN file's hash) and, when re-deriving it needs more than its inputs, the ``context`` values
it also read. ``flows_taken`` names the sequence flows a gateway took.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from SpiffWorkflow.util.task import TaskState

from engine.dmn import DecisionModel
from engine.dmn.compiler import CLOCK as FEEL_CLOCK
from engine.dmn.values import with_floats
from engine.errors import ContractViolation, EngineError, PluginError
from engine.ledger import digest
from engine.plugins.loader import LoadedPlugin, Registry
from engine.process.models import DISPATCH_TOPIC

# Process variables only the kernel writes: a plugin output that sets one breaks its contract.
KERNEL_VARIABLES = frozenset({"error", "failures"})

Mapping_ = list[tuple[str, Any]]  # camunda:inputParameter/outputParameter: (name, text | list | map)
PluginCall = Callable[[LoadedPlugin, str, Mapping[str, Any]], dict[str, Any]]
Parameter = Callable[[Any, Mapping[str, Any]], Any]  # evaluates a parameter value over a scope


@dataclass(frozen=True)
class Step:
    """A BPMN element as a step: its id, name and ``camunda:inputOutput`` parameters."""

    id: str
    name: str | None
    type: str
    inputs: Mapping_ = field(default_factory=list)
    outputs: Mapping_ = field(default_factory=list)


@dataclass(frozen=True)
class StepResult:
    """What a step did: ``variables`` to set, ``record`` for its ledger entry, the plugin's ``output``."""

    variables: dict[str, Any]
    record: dict[str, Any]
    output: dict[str, Any] | None = None
    plugin: str | None = None
    operation: str | None = None

    @property
    def failed(self) -> bool:
        return self.record.get("status") == "error"


def _inputs(step: Step, data: Mapping[str, Any], parameter: Parameter) -> dict[str, Any]:
    return {name: parameter(text, data) for name, text in step.inputs}


def _with_outputs(step: Step, data: Mapping[str, Any], variables: dict[str, Any],
                  parameter: Parameter) -> dict[str, Any]:
    """``variables`` plus the step's output parameters, evaluated over the data as it is after the step."""
    if not step.outputs:
        return variables
    scope = {**data, **variables}
    out = dict(variables)
    for name, text in step.outputs:
        out[name] = parameter(text, scope)
        scope[name] = out[name]
    return out


def _failure(step: Step, data: Mapping[str, Any], parameter: Parameter, record: dict[str, Any], error: EngineError,
             plugin: str | None, operation: str | None) -> StepResult:
    message = "; ".join(error.lines())
    kind = getattr(error, "kind", "technical")
    code = getattr(error, "code", None) or ("engine.contract" if isinstance(error, ContractViolation) else None)
    retryable = bool(getattr(error, "retryable", False))
    typed = {"message": message, "kind": kind, "code": code, "retryable": retryable, "plugin": plugin,
             "operation": operation}
    variables = {"error": typed, "failures": int(data.get("failures") or 0) + 1}
    return StepResult(_with_outputs(step, data, variables, parameter), failed_record(record, error), plugin=plugin,
                      operation=operation)


def call_record(plugin: LoadedPlugin, operation: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """What a step's ledger record says of a plugin call before it returns: which plugin (id, version, source
    digest), which operation, and the digest of what it was given."""
    return {"plugin": {"id": plugin.id, "version": plugin.version, "digest": plugin.digest, "operation": operation},
            "input_digest": digest(payload)}


def completed_record(record: Mapping[str, Any], output: Mapping[str, Any]) -> dict[str, Any]:
    """``record`` of a call that answered ``output``."""
    return {**record, "output_digest": digest(output), "status": "completed"}


def failed_record(record: Mapping[str, Any], error: EngineError) -> dict[str, Any]:
    """``record`` of a call (or step) that failed with ``error``: its message, kind, code, retryable."""
    kind = getattr(error, "kind", "technical")
    code = getattr(error, "code", None) or ("engine.contract" if isinstance(error, ContractViolation) else None)
    return {**record, "status": "error", "reason": "; ".join(error.lines()),
            "error": {"kind": kind, "code": code, "retryable": bool(getattr(error, "retryable", False))}}


def resolve(topic: str, data: Mapping[str, Any], registry: Registry) -> tuple[str | None, str | None]:
    """The plugin id and operation a service task's topic names (``dispatch``: the selected plugin)."""
    if topic == DISPATCH_TOPIC:
        plugin_id = data.get("plugin")
        task = data.get("task")
        args = task.get("args") if isinstance(task, Mapping) else None
        operation = args.get("operation") if isinstance(args, Mapping) else None
        return (str(plugin_id) if plugin_id else None), (str(operation) if operation else None)
    plugin_id, _, operation = topic.partition(".")
    return plugin_id, operation or None


def run_service(step: Step, topic: str, data: Mapping[str, Any], *, registry: Registry, call: PluginCall,
                parameter: Parameter) -> StepResult:
    """Run the plugin a service task names with ``{"task": ..., **inputs}``; merge its output."""
    plugin_id, operation = resolve(topic, data, registry)
    plugin = registry.get(plugin_id) if plugin_id else None
    if plugin is None:
        error = PluginError(f"topic '{topic}': no installed plugin {plugin_id!r}", code="engine.no_plugin")
        return _failure(step, data, parameter, {}, error, plugin_id, operation)
    op = operation or plugin.spec.first_operation
    payload = {"task": data.get("task"), **_inputs(step, data, parameter)}
    record = call_record(plugin, op, payload)
    try:
        output = call(plugin, op, payload)
        taken = sorted(KERNEL_VARIABLES & output.keys())
        if taken:
            raise ContractViolation(f"output of {plugin.id}.{op} sets {', '.join(taken)}, which only the kernel "
                                    "sets", plugin=plugin.id, operation=op, side="output")
    except (PluginError, ContractViolation) as e:
        return _failure(step, data, parameter, record, e, plugin.id, op)
    record = completed_record(record, output)
    variables = {**output, "error": None}
    return StepResult(_with_outputs(step, data, variables, parameter), record, output=output, plugin=plugin.id,
                      operation=op)


_WHERE = re.compile(r"^[^\n]*?\.dmn(?::(\d+))?: ")


def run_decision(step: Step, decision_ref: str, result_variable: str, data: Mapping[str, Any], *,
                 decisions: DecisionModel, parameter: Parameter, clock: Any = None) -> StepResult:
    """Evaluate a decision over the process variables (and the step's inputs); store its result. FEEL's
    ``now()`` and ``today()`` read ``clock`` (the run's: a replay gives them the recorded time)."""
    context = {k: v for k, v in data.items() if not k.startswith("_")}
    context.update(_inputs(step, data, parameter))
    result = decisions.evaluate(decision_ref, context if clock is None else {**context, FEEL_CLOCK: clock})
    outcome = result.as_dict()
    decision: dict[str, Any] = {"id": result.decision_id, "result": outcome["value"],
                                "matched_rules": result.matched_rules, **result.explanation()}
    if decisions.digest:
        decision["model"] = decisions.digest
    evidence = decisions.evidence(result, context)
    if evidence:
        decision["context"] = evidence
    if outcome.get("warnings"):
        # where the model file lies is not part of what happened (a record is the same in every workspace,
        # and for the model's pinned copy): "decisions.dmn:3: decision ..." is kept as "line 3: decision ..."
        decision["warnings"] = [_WHERE.sub(lambda m: f"line {m.group(1)}: " if m.group(1) else "", w)
                                for w in outcome["warnings"]]
    record = {"decision": decision, "status": "completed", "input_digest": digest(context)}
    # process data holds floats, as plugins receive numbers in JSON (the ledger records the same)
    return StepResult(_with_outputs(step, data, {result_variable: with_floats(result.value)}, parameter), record)


def flows_taken(task: Any) -> list[str] | None:
    """The ids of the outgoing sequence flows of a gateway that just completed (exclusive, inclusive,
    parallel, event-based) whose targets will run, sorted; None when ``task`` is not a gateway's.

    Read from the task tree, not worked out again: when a gateway completes, SpiffWorkflow has kept (or
    made) a child for each target it chose and removed the predicted children of the others. The flow
    ids come from the parser (``outgoing_flows`` of the gateway's spec: flow id, target spec name)."""
    flows = getattr(task.task_spec, "outgoing_flows", None)
    if flows is None:
        return None
    targets = {child.task_spec.name for child in task.children if not child.has_state(TaskState.PREDICTED_MASK)}
    return sorted(flow for flow, target in flows if target in targets)
