"""The SpiffWorkflow parser, extended with the engine's bindings.

- ``serviceTask`` with ``camunda:type="external"`` and ``camunda:topic`` becomes an ``ExternalServiceTask``:
  running it asks the script engine's ``call_service`` to dispatch the topic to a plugin.
- ``businessRuleTask`` with ``camunda:decisionRef`` becomes a ``DecisionTask``: running it asks the
  script engine to evaluate that decision with ``engine.dmn`` and stores the result in
  ``camunda:resultVariable`` (or a variable named after the decision id when there is none).

This module and its package are the only importers of SpiffWorkflow.
"""

from __future__ import annotations

import sys
from copy import deepcopy
from typing import Any

from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.parser.event_parsers import EventBasedGatewayParser
from SpiffWorkflow.bpmn.parser.task_parsers import ConditionalGatewayParser, GatewayParser, SubprocessParser
from SpiffWorkflow.bpmn.parser.util import full_tag
from SpiffWorkflow.bpmn.specs.data_spec import TaskDataReference
from SpiffWorkflow.bpmn.specs.defaults import (
    CallActivity,
    EventBasedGateway,
    ExclusiveGateway,
    InclusiveGateway,
    ManualTask,
    ParallelGateway,
    ScriptTask,
    TransactionSubprocess,
)
from SpiffWorkflow.bpmn.specs.defaults import ParallelMultiInstanceTask as SpiffParallelMI
from SpiffWorkflow.bpmn.specs.defaults import SequentialMultiInstanceTask as SpiffSequentialMI
from SpiffWorkflow.bpmn.specs.mixins import BpmnSpecMixin
from SpiffWorkflow.bpmn.specs.mixins.service_task import ServiceTask as ServiceTaskMixin
from SpiffWorkflow.camunda.parser.CamundaParser import CamundaParser
from SpiffWorkflow.camunda.parser.task_spec import (
    CAMUNDA_MODEL_NS,
    CallActivityParser,
    CamundaTaskParser,
    ScriptTaskParser,
    SubWorkflowParser,
)
from SpiffWorkflow.specs.base import TaskSpec
from SpiffWorkflow.util.deep_merge import DeepMerge
from SpiffWorkflow.util.task import TaskState

from engine.errors import EngineError

CAMUNDA = "{" + CAMUNDA_MODEL_NS + "}"


def _unbounded_task_walks() -> None:
    """SpiffWorkflow 3.2 walks its task tree with ``max_depth=1000`` by default: an instance that took more
    steps than that (a loop) has its ready tasks below the limit, finds none, and stops where it is (and
    a join looking for its branches misses them). The engine walks the whole tree instead. The default is
    changed where the walks get it, since a join builds its own iterator (decision 0014)."""
    from SpiffWorkflow.bpmn.util.task import BpmnTaskIterator
    from SpiffWorkflow.util.task import TaskIterator

    for iterator in (TaskIterator, BpmnTaskIterator):
        init: Any = iterator.__init__
        names = init.__code__.co_varnames[1:init.__code__.co_argcount]
        defaults = list(init.__defaults__)
        at = names.index("max_depth") - (len(names) - len(defaults))
        defaults[at] = sys.maxsize
        init.__defaults__ = tuple(defaults)


_unbounded_task_walks()


def _log_extras_only_when_logged() -> None:
    """SpiffWorkflow builds a dict of log details at every state change of every task (about 100 a task)
    for a log record nobody sees unless its logger is enabled: the engine builds it only then. The
    level tested is the lowest SpiffWorkflow logs such a record at (debug)."""
    import logging

    from SpiffWorkflow import task as spiff_task

    build = spiff_task.Task.collect_log_extras
    if getattr(build, "engine_lazy", False):
        return

    def collect_log_extras(self: Any, dct: dict[str, Any] | None = None) -> dict[str, Any]:
        if not spiff_task.logger.isEnabledFor(logging.DEBUG):
            return {}
        extras: dict[str, Any] = build(self, dct)
        return extras

    collect_log_extras.engine_lazy = True  # type: ignore[attr-defined]
    spiff_task.Task.collect_log_extras = collect_log_extras


_log_extras_only_when_logged()
BPMN_MODEL_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"


# A camunda:inputParameter/outputParameter value: text ("${FEEL}" or a literal string), or what the Modeler's
# "List" and "Map" types write (camunda:list of camunda:value, camunda:map of camunda:entry key=...), nested.
Value = str | list[Any] | dict[str, Any]
Mapping = list[tuple[str, Value]]  # (variable name, value)


def parameter_value(node: Any) -> Value:
    """The value of a parameter, list value or map entry element: its text, or its list or map."""
    children = [c for c in node if isinstance(c.tag, str)]
    if not children:
        return (node.text or "").strip()
    inner = children[0]
    local = str(inner.tag).rpartition("}")[2]
    if local == "list":
        return [parameter_value(v) for v in inner if isinstance(v.tag, str)]
    if local == "map":
        return {str(e.get("key", "")): parameter_value(e) for e in inner if isinstance(e.tag, str)}
    return (node.text or "").strip()  # a script value: refused by the model checks


class ExternalServiceTask(ServiceTaskMixin, BpmnSpecMixin):  # type: ignore[misc]
    """A service task bound to a plugin by ``camunda:topic``."""

    def __init__(self, wf_spec: Any, bpmn_id: str, topic: str | None = None, input_parameters: Mapping | None = None,
                 output_parameters: Mapping | None = None, **kwargs: Any) -> None:
        super().__init__(wf_spec, bpmn_id, **kwargs)
        self.topic = topic
        self.input_parameters = input_parameters or []
        self.output_parameters = output_parameters or []

    def _execute(self, task: Any) -> bool | None:
        """True when the step ran here; None when its plugin call runs in the background (the task is then
        STARTED until the runner completes it, and boundary events can interrupt it meanwhile)."""
        return task.workflow.script_engine.call_service(task, topic=self.topic)  # type: ignore[no-any-return]

    def _on_cancel(self, my_task: Any) -> None:
        """Cancelled by the process (an interrupting boundary event, a finished multi-instance): the runner
        stops the plugin call still running for it."""
        super()._on_cancel(my_task)
        cancel = getattr(my_task.workflow.script_engine, "cancel_service", None)
        if cancel is not None:
            cancel(my_task)


class DecisionTask(BpmnSpecMixin, TaskSpec):  # type: ignore[misc]
    """A business rule task bound to a decision of ``decisions.dmn`` by ``camunda:decisionRef``."""

    def __init__(self, wf_spec: Any, bpmn_id: str, decision_ref: str = "", result_variable: str | None = None,
                 input_parameters: Mapping | None = None, output_parameters: Mapping | None = None,
                 **kwargs: Any) -> None:
        super().__init__(wf_spec, bpmn_id, **kwargs)
        self.decision_ref = decision_ref
        self.result_variable = result_variable or decision_ref
        self.input_parameters = input_parameters or []
        self.output_parameters = output_parameters or []

    def _run_hook(self, task: Any) -> bool:
        task.workflow.script_engine.decide(task, self.decision_ref, self.result_variable)
        return True


class AutomaticTask(BpmnSpecMixin, TaskSpec):  # type: ignore[misc]
    """A plain ``bpmn:task``: completes on its own (Spiff treats it as manual, waiting for a person)."""

    def _run_hook(self, task: Any) -> bool:
        return True


def io_mappings(node: Any) -> tuple[Mapping, Mapping]:
    """``camunda:inputOutput`` of an element: its input and output parameters as (name, text) pairs."""
    found: dict[str, Mapping] = {"inputParameter": [], "outputParameter": []}
    for io in node.findall(f"{{{BPMN_MODEL_NS}}}extensionElements/{CAMUNDA}inputOutput"):
        for param in io:
            local = str(param.tag).rpartition("}")[2]
            if local in found:
                found[local].append((str(param.get("name", "")), parameter_value(param)))
    return found["inputParameter"], found["outputParameter"]


# -- multi-instance ---------------------------------------------------------------------------------------

# Variables each instance of a multi-instance activity has of its own (Camunda's names), never merged back.
INSTANCE_VARIABLES = ("loopCounter", "nrOfInstances", "nrOfActiveInstances", "nrOfCompletedInstances")


class Collection(TaskDataReference):  # type: ignore[misc]
    """``camunda:collection``: a variable name, or a ``${expression}`` evaluated over the task's data."""

    def get(self, my_task: Any) -> Any:
        text = self.bpmn_id.strip()
        if text.startswith("${"):
            value = my_task.workflow.script_engine.evaluate(my_task, text)
        else:
            value = my_task.data.get(text)
        what = None if value is None else type(value).__name__
        if value is None or isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
            spec = my_task.task_spec
            raise EngineError(f"camunda:collection '{text}' of multi-instance {spec.bpmn_id}"
                              + (f" '{' '.join(spec.bpmn_name.split())}'" if spec.bpmn_name else "")
                              + f" is {'null' if what is None else 'a ' + what}: it must give a list",
                              step=spec.bpmn_id)
        return value

    def exists(self, my_task: Any) -> bool:
        return True


class _Instances:
    """What the engine's multi-instance activities add to SpiffWorkflow's: Camunda's instance variables
    (``loopCounter``, ``nrOf...``) in each instance and in the completion condition, and the results
    collected in the order of the instances (not of their completion) into ``output_collection``: each
    instance's element is the variables it set. Variables the instances set are merged into the
    activity's data in that order too (the last instance's value wins; ``failures`` add up)."""

    output_collection: str
    element_variable: str | None

    def _all(self, my_task: Any) -> list[Any]:
        instances: Any = getattr(self, "_instances")  # noqa: B009 (SpiffWorkflow's, on the class this mixes into)
        return list(instances(my_task))

    def create_child(self, my_task: Any, item: Any, key_or_index: Any = None) -> None:
        counter = len(self._all(my_task))
        super().create_child(my_task, item, key_or_index)  # type: ignore[misc]
        child = my_task.children[-1]
        child.internal_data["instance"] = counter
        child.data["loopCounter"] = counter

    def merge_child(self, workflow: Any, child: Any) -> None:
        my_task = child.parent
        outputs = my_task.internal_data.setdefault("instance_outputs", {})
        outputs[str(child.internal_data.get("instance"))] = self._set_by(child, my_task)
        my_task.internal_data["merged"].append(str(child.id))
        self._next(my_task)

    def _set_by(self, child: Any, parent: Any) -> dict[str, Any]:
        own = {*INSTANCE_VARIABLES, *([self.element_variable] if self.element_variable else [])}
        keys = child.internal_data.get("set")
        if keys is None:  # not a plugin or decision step: what differs from the activity's data
            keys = [k for k, v in child.data.items() if parent.data.get(k, object()) != v]
        return {k: child.data.get(k) for k in keys if k not in own and not (k == "error" and child.data.get(k) is None)}

    def _next(self, my_task: Any) -> None:
        raise NotImplementedError

    def check_completion_condition(self, my_task: Any) -> bool:
        merged = my_task.internal_data.get("merged", [])
        condition = getattr(self, "condition", None)
        if not merged or condition is None:
            return False
        last = [c for c in my_task.children if str(c.id) == merged[-1]][0]
        created = len(self._all(my_task))
        total = my_task.internal_data.get("cardinality") or created
        if my_task.internal_data.get("remaining") is not None:
            total = created + len(my_task.internal_data["remaining"])
        counts = {"nrOfInstances": total, "nrOfCompletedInstances": len(merged),
                  "nrOfActiveInstances": sum(1 for c in self._all(my_task) if not c.has_state(TaskState.FINISHED_MASK))}
        return bool(my_task.workflow.script_engine.evaluate(last, condition, external_context=counts))

    def _run_hook(self, my_task: Any) -> bool:
        """All instances ended (or the completion condition held): merge, in instance order."""
        found = my_task.internal_data.get("instance_outputs", {})
        count = len(self._all(my_task))
        ordered = [found.get(str(i)) for i in range(count)]
        base = int(my_task.data.get("failures") or 0)
        added = 0
        for element in ordered:
            if element:
                added += max(0, int(element.get("failures") or base) - base)
                my_task.data.update({k: v for k, v in element.items() if k != "failures"})
        if added:
            my_task.data["failures"] = base + added
        my_task.data[self.output_collection] = ordered
        return True


class SequentialInstances(_Instances, SpiffSequentialMI):  # type: ignore[misc]
    def _next(self, my_task: Any) -> None:
        if self.children_complete(my_task) or self.check_completion_condition(my_task):
            my_task._set_state(TaskState.READY)
        else:
            self.add_next_child(my_task)


class ParallelInstances(_Instances, SpiffParallelMI):  # type: ignore[misc]
    def _next(self, my_task: Any) -> None:
        if self.check_completion_condition(my_task):
            for child in self._instances(my_task):
                child.cancel()
            my_task._set_state(TaskState.READY)
        elif self.children_complete(my_task):
            my_task._set_state(TaskState.READY)

    def children_complete(self, my_task: Any) -> bool:
        return all(c.has_state(TaskState.FINISHED_MASK) for c in self._instances(my_task))


def output_collection(node: Any) -> str:
    """Where a multi-instance activity's results go: its ``outputCollection`` property, else ``<id>_outputs``."""
    for prop in node.iterfind(f"{{{BPMN_MODEL_NS}}}extensionElements/{CAMUNDA}properties/{CAMUNDA}property"):
        if prop.get("name") == "outputCollection" and prop.get("value"):
            return str(prop.get("value"))
    return f"{node.get('id')}_outputs"


class _EngineLoops:
    """Multi-instance as the Modeler writes it (``camunda:collection``, ``camunda:elementVariable``,
    ``loopCardinality``, ``completionCondition``, sequential or parallel), for every activity type."""

    def _add_multiinstance_task(self, loop: Any) -> None:
        parser: Any = self
        ns = f"{{{BPMN_MODEL_NS}}}"
        cardinality = loop.find(ns + "loopCardinality")
        condition = loop.find(ns + "completionCondition")
        collection = loop.get(CAMUNDA + "collection")
        element = loop.get(CAMUNDA + "elementVariable")
        if cardinality is None and not collection:
            parser.raise_validation_exception("a multi-instance activity needs camunda:collection or a "
                                              "loopCardinality")
        original = parser.spec.task_specs.pop(parser.task.name)
        params = {
            "task_spec": "",
            "cardinality": None if collection else (cardinality.text or "").strip(),
            "data_input": Collection(collection) if collection else None,
            "input_item": TaskDataReference(element) if element else None,
            "condition": (condition.text or "").strip() if condition is not None and condition.text else None,
        }
        kind = SequentialInstances if loop.get("isSequential") == "true" else ParallelInstances
        parser.task = kind(parser.spec, original.name, **params)
        parser.task.bpmn_name = original.bpmn_name
        parser.task.output_collection = output_collection(parser.node)
        parser.task.element_variable = element
        parser._copy_task_attrs(original, loop)


class ExternalTaskParser(_EngineLoops, CamundaTaskParser):  # type: ignore[misc]
    def create_task(self) -> ExternalServiceTask:
        topic = self.node.get(CAMUNDA + "topic")
        inputs, outputs = io_mappings(self.node)
        return ExternalServiceTask(self.spec, self.bpmn_id, topic=topic, input_parameters=inputs,
                                   output_parameters=outputs,
                                   **self.bpmn_attributes)


class DecisionTaskParser(_EngineLoops, CamundaTaskParser):  # type: ignore[misc]
    def create_task(self) -> DecisionTask:
        inputs, outputs = io_mappings(self.node)
        return DecisionTask(self.spec, self.bpmn_id, decision_ref=self.get_decision_ref(self.node),
                            result_variable=self.node.get(CAMUNDA + "resultVariable"), input_parameters=inputs,
                            output_parameters=outputs, **self.bpmn_attributes)

    @staticmethod
    def get_decision_ref(node: Any) -> str:
        return str(node.get(CAMUNDA + "decisionRef", ""))


class _TaskParser(_EngineLoops, CamundaTaskParser):  # type: ignore[misc]
    pass


class _ScriptParser(_EngineLoops, ScriptTaskParser):  # type: ignore[misc]
    pass


class _SubprocessParser(_EngineLoops, SubWorkflowParser):  # type: ignore[misc]
    pass


# -- call activities ----------------------------------------------------------------------------------------

# What a called process always shares with its caller: the kernel's variables of the task, the task's
# worktree and checkpoint. Everything else goes in and out only by camunda:in / camunda:out.
CARRIED = ("task", "error", "failures", "worktree", "checkpoint")

Passing = list[tuple[str, str, str]]  # ("all", "", "") | ("source", name, target) | ("expression", text, target)


def passing(node: Any, kind: str) -> Passing:
    """The ``camunda:in`` (``kind`` "in") or ``camunda:out`` mappings of a call activity, in order."""
    found: Passing = []
    for item in node.iterfind(f"{{{BPMN_MODEL_NS}}}extensionElements/{CAMUNDA}{kind}"):
        if item.get("variables") == "all":
            found.append(("all", "", ""))
        elif item.get("sourceExpression") is not None:
            found.append(("expression", str(item.get("sourceExpression")), str(item.get("target") or "")))
        elif item.get("source") is not None:
            found.append(("source", str(item.get("source")), str(item.get("target") or item.get("source"))))
    return found


class MappedCallActivity(CallActivity):  # type: ignore[misc]
    """A call activity as Camunda passes variables: the called process starts with the caller's variables
    that ``camunda:in`` names (``variables="all"``: every one), and the caller gets back what
    ``camunda:out`` names; the kernel's variables (``CARRIED``) always go both ways."""

    def __init__(self, wf_spec: Any, bpmn_id: str, subworkflow_spec: Any, ins: Passing | None = None,
                 outs: Passing | None = None, **kwargs: Any) -> None:
        super().__init__(wf_spec, bpmn_id, subworkflow_spec, **kwargs)
        self.ins = ins or []
        self.outs = outs or []

    @staticmethod
    def _mapped(mappings: Passing, source_task: Any, data: dict[str, Any]) -> dict[str, Any]:
        out = {k: deepcopy(data[k]) for k in CARRIED if k in data}
        for kind, source, target in mappings:
            if kind == "all":
                out.update(deepcopy(data))
            elif kind == "source":
                out[target] = deepcopy(data.get(source))
            else:
                out[target] = source_task.workflow.script_engine.evaluate(source_task, source,
                                                                          external_context=data)
        return out

    def copy_data(self, my_task: Any, subworkflow: Any) -> None:
        start = subworkflow.get_next_task(subworkflow.task_tree, skip_subprocesses=True, spec_name="Start")
        start.set_data(**self._mapped(self.ins, my_task, my_task.data))

    def update_data(self, my_task: Any, subworkflow: Any) -> None:
        last = subworkflow.last_task
        my_task.data = {**my_task.data, **self._mapped(self.outs, last, last.data)}


class _CallParser(_EngineLoops, CallActivityParser):  # type: ignore[misc]
    def create_task(self) -> MappedCallActivity:
        called = SubprocessParser.get_call_activity_spec(self)
        return MappedCallActivity(self.spec, self.bpmn_id, subworkflow_spec=called, ins=passing(self.node, "in"),
                                  outs=passing(self.node, "out"), **self.bpmn_attributes)


# -- gateways ------------------------------------------------------------------------------------------------


class _KeepsFlows:
    """A gateway's spec keeps its outgoing sequence flows, ``outgoing_flows``: (flow id, target spec name)
    each, so that the ledger can name the flows it took (``steps.flows_taken``). SpiffWorkflow keeps only
    the targets."""

    def connect_outgoing(self, outgoing_task: Any, sequence_flow_node: Any, is_default: bool) -> None:
        super().connect_outgoing(outgoing_task, sequence_flow_node, is_default)  # type: ignore[misc]
        task: Any = getattr(self, "task")  # noqa: B009 (SpiffWorkflow's, on the parser this mixes into)
        if not hasattr(task, "outgoing_flows"):
            task.outgoing_flows = []
        task.outgoing_flows.append((str(sequence_flow_node.get("id")), outgoing_task.name))


class _ConditionalGatewayParser(_KeepsFlows, ConditionalGatewayParser):  # type: ignore[misc]
    pass


class _GatewayParser(_KeepsFlows, GatewayParser):  # type: ignore[misc]
    pass


class _EventBasedGatewayParser(_KeepsFlows, EventBasedGatewayParser):  # type: ignore[misc]
    pass


def _join_in_flow_order(spec: Any, my_task: Any) -> None:
    """Merge a join's branches' data (a parallel or inclusive gateway) in the order of its incoming flows,
    not in the order the branches arrived. SpiffWorkflow merges by arrival time (each task's
    ``last_state_change``, the wall clock) and lets the last branch to arrive win a variable two branches
    set: with branches running at the same time, that made a run's data, and so its state digests, depend
    on timing, and ``engine replay`` could derive other data than the run recorded. In flow order the
    joined data is the same whatever the timing (the last incoming flow's branch wins a conflict)."""
    arrived = [t for t in my_task.workflow.tasks.values()
               if t.task_spec == spec and (t is my_task or (t.has_state(TaskState.FINISHED_MASK)
                                                            and not my_task.is_descendant_of(t)))]
    order = {input_spec: index for index, input_spec in enumerate(spec.inputs)}
    merged: dict[str, Any] = {}
    for task in sorted(arrived, key=lambda t: (order.get(t.parent.task_spec, len(order)), t.last_state_change)):
        DeepMerge.merge(merged, task.parent.data)
        if task is not my_task and task.has_state(TaskState.COMPLETED):
            task._drop_children(force=True)  # as SpiffWorkflow does: a branch reset must not leave its old tail
    # the values are the flow-ordered merge; the keys keep the order the task's own branch gives them (as
    # SpiffWorkflow's inherited data would), so that the state journal restores the very same dict
    own = my_task.parent.data
    my_task.data = {**{k: merged[k] for k in own if k in merged},
                    **{k: v for k, v in merged.items() if k not in own}}


class EngineParallelGateway(ParallelGateway):  # type: ignore[misc]
    """A parallel gateway that joins in flow order (:func:`_join_in_flow_order`)."""

    def _run_hook(self, my_task: Any) -> bool:
        _join_in_flow_order(self, my_task)
        return True


class EngineInclusiveGateway(InclusiveGateway):  # type: ignore[misc]
    """An inclusive gateway that joins in flow order, then takes its flows as SpiffWorkflow's does."""

    def _run_hook(self, my_task: Any) -> bool:
        _join_in_flow_order(self, my_task)
        matches, defaults = self._get_matching_outputs(my_task)
        if not matches and not defaults:
            raise WorkflowTaskException("No conditions satisfied on gateway", task=my_task)
        my_task._sync_children(matches or defaults, TaskState.FUTURE)
        for child in my_task.children:
            child.task_spec._predict(child, mask=TaskState.FUTURE | TaskState.PREDICTED_MASK)
        return True


class EngineParser(CamundaParser):  # type: ignore[misc]
    """Camunda's parser with the engine's service and business rule tasks, and multi-instance as Camunda."""

    OVERRIDE_PARSER_CLASSES = {
        **CamundaParser.OVERRIDE_PARSER_CLASSES,
        full_tag("serviceTask"): (ExternalTaskParser, ExternalServiceTask),
        full_tag("businessRuleTask"): (DecisionTaskParser, DecisionTask),
        full_tag("task"): (_TaskParser, AutomaticTask),
        full_tag("manualTask"): (_TaskParser, ManualTask),
        full_tag("scriptTask"): (_ScriptParser, ScriptTask),
        full_tag("subProcess"): (_SubprocessParser, CallActivity),
        full_tag("callActivity"): (_CallParser, MappedCallActivity),
        full_tag("transaction"): (_SubprocessParser, TransactionSubprocess),
        full_tag("exclusiveGateway"): (_ConditionalGatewayParser, ExclusiveGateway),
        full_tag("inclusiveGateway"): (_ConditionalGatewayParser, EngineInclusiveGateway),
        full_tag("parallelGateway"): (_GatewayParser, EngineParallelGateway),
        full_tag("eventBasedGateway"): (_EventBasedGatewayParser, EventBasedGateway),
    }
