"""The SpiffWorkflow parser, extended with the engine's bindings.

- ``serviceTask`` with ``camunda:type="external"`` and ``camunda:topic`` becomes an ``ExternalServiceTask``:
  running it asks the script engine's ``call_service`` to dispatch the topic to a plugin.
- ``businessRuleTask`` with ``camunda:decisionRef`` becomes a ``DecisionTask``: running it asks the
  script engine to evaluate that decision with ``engine.dmn`` and stores the result in
  ``camunda:resultVariable`` (or a variable named after the decision id when there is none).

This module and its package are the only importers of SpiffWorkflow.
"""

from __future__ import annotations

from typing import Any

from SpiffWorkflow.bpmn.parser.util import full_tag
from SpiffWorkflow.bpmn.specs.mixins import BpmnSpecMixin
from SpiffWorkflow.bpmn.specs.mixins.service_task import ServiceTask as ServiceTaskMixin
from SpiffWorkflow.camunda.parser.CamundaParser import CamundaParser
from SpiffWorkflow.camunda.parser.task_spec import CAMUNDA_MODEL_NS, CamundaTaskParser
from SpiffWorkflow.specs.base import TaskSpec

CAMUNDA = "{" + CAMUNDA_MODEL_NS + "}"
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

    def _execute(self, task: Any) -> bool:
        task.workflow.script_engine.call_service(task, topic=self.topic)
        return True


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


class ExternalTaskParser(CamundaTaskParser):  # type: ignore[misc]
    def create_task(self) -> ExternalServiceTask:
        topic = self.node.get(CAMUNDA + "topic")
        inputs, outputs = io_mappings(self.node)
        return ExternalServiceTask(self.spec, self.bpmn_id, topic=topic, input_parameters=inputs,
                                   output_parameters=outputs,
                                   **self.bpmn_attributes)


class DecisionTaskParser(CamundaTaskParser):  # type: ignore[misc]
    def create_task(self) -> DecisionTask:
        inputs, outputs = io_mappings(self.node)
        return DecisionTask(self.spec, self.bpmn_id, decision_ref=self.get_decision_ref(self.node),
                            result_variable=self.node.get(CAMUNDA + "resultVariable"), input_parameters=inputs,
                            output_parameters=outputs, **self.bpmn_attributes)

    @staticmethod
    def get_decision_ref(node: Any) -> str:
        return str(node.get(CAMUNDA + "decisionRef", ""))


class EngineParser(CamundaParser):  # type: ignore[misc]
    """Camunda's parser with the engine's service and business rule tasks."""

    OVERRIDE_PARSER_CLASSES = {
        **CamundaParser.OVERRIDE_PARSER_CLASSES,
        full_tag("serviceTask"): (ExternalTaskParser, ExternalServiceTask),
        full_tag("businessRuleTask"): (DecisionTaskParser, DecisionTask),
        full_tag("task"): (CamundaTaskParser, AutomaticTask),
    }
