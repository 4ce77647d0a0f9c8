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


class ExternalServiceTask(ServiceTaskMixin, BpmnSpecMixin):  # type: ignore[misc]
    """A service task bound to a plugin by ``camunda:topic``."""

    def __init__(self, wf_spec: Any, bpmn_id: str, topic: str | None = None, **kwargs: Any) -> None:
        super().__init__(wf_spec, bpmn_id, **kwargs)
        self.topic = topic

    def _execute(self, task: Any) -> bool:
        task.workflow.script_engine.call_service(task, topic=self.topic)
        return True


class DecisionTask(BpmnSpecMixin, TaskSpec):  # type: ignore[misc]
    """A business rule task bound to a decision of ``decisions.dmn`` by ``camunda:decisionRef``."""

    def __init__(self, wf_spec: Any, bpmn_id: str, decision_ref: str = "", result_variable: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(wf_spec, bpmn_id, **kwargs)
        self.decision_ref = decision_ref
        self.result_variable = result_variable or decision_ref

    def _run_hook(self, task: Any) -> bool:
        task.data[self.result_variable] = task.workflow.script_engine.decide(task, self.decision_ref)
        return True


class ExternalTaskParser(CamundaTaskParser):  # type: ignore[misc]
    def create_task(self) -> ExternalServiceTask:
        topic = self.node.get(CAMUNDA + "topic")
        return ExternalServiceTask(self.spec, self.bpmn_id, topic=topic, **self.bpmn_attributes)


class DecisionTaskParser(CamundaTaskParser):  # type: ignore[misc]
    def create_task(self) -> DecisionTask:
        return DecisionTask(self.spec, self.bpmn_id, decision_ref=self.get_decision_ref(self.node),
                            result_variable=self.node.get(CAMUNDA + "resultVariable"), **self.bpmn_attributes)

    @staticmethod
    def get_decision_ref(node: Any) -> str:
        return str(node.get(CAMUNDA + "decisionRef", ""))


class EngineParser(CamundaParser):  # type: ignore[misc]
    """Camunda's parser with the engine's service and business rule tasks."""

    OVERRIDE_PARSER_CLASSES = {
        **CamundaParser.OVERRIDE_PARSER_CLASSES,
        full_tag("serviceTask"): (ExternalTaskParser, ExternalServiceTask),
        full_tag("businessRuleTask"): (DecisionTaskParser, DecisionTask),
    }
