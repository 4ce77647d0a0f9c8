"""The SpiffWorkflow adapter: parser subclass, model checks, and the task runner."""

from engine.process.models import Models, check_decisions, check_models, load_models
from engine.process.runtime import Outcome, RunContext, TaskRunner

__all__ = ["Models", "Outcome", "RunContext", "TaskRunner", "check_decisions", "check_models", "load_models"]
