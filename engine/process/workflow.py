"""SpiffWorkflow's workflow, with task walks that start where the work is.

Every ``do_engine_steps`` looks for ready tasks by walking the task tree from its root, and a loop adds
a level to the tree with each step: walks from the root make a step cost grow with the steps taken
before it (quadratic runs). The finished part of the tree above the first branching is a single chain
of finished tasks, each with one child; a walk for unfinished tasks finds nothing there. The engine's
workflows start such walks at the lowest task of that chain (the *frontier*, which only moves down as
tasks finish) and so visit only the part of the tree still in play: the same tasks, in the same order.
Walks that may match finished tasks still start at the root.
"""

from __future__ import annotations

from typing import Any

from SpiffWorkflow.bpmn.util.subworkflow import BpmnSubWorkflow
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.util.task import TaskIterator, TaskState


class _FromTheFrontier:
    task_tree: Any
    completed: bool
    _frontier_task: Any = None

    def _frontier(self) -> Any:
        task = self._frontier_task or self.task_tree
        while task.has_state(TaskState.FINISHED_MASK) and len(task.children) == 1:
            task = task.children[0]
        self._frontier_task = task
        return task

    def get_tasks_iterator(self, first_task: Any = None, **kwargs: Any) -> Any:
        state = kwargs.get("state", TaskState.ANY_MASK)
        if first_task is None and "task_filter" not in kwargs and not state & TaskState.FINISHED_MASK:
            first_task = self._frontier()
        return super().get_tasks_iterator(first_task, **kwargs)  # type: ignore[misc]

    def update_waiting_tasks(self) -> None:
        """Run on every task's completion: only the waiting tasks past the frontier can be waiting."""
        for task in TaskIterator(self._frontier(), state=TaskState.WAITING):
            task.task_spec._update(task)

    def is_completed(self) -> bool:
        if not self.completed:
            try:
                next(TaskIterator(self._frontier(), state=TaskState.NOT_FINISHED_MASK))
            except StopIteration:
                self.completed = True
        return self.completed


class EngineSubWorkflow(_FromTheFrontier, BpmnSubWorkflow):  # type: ignore[misc]
    """A subprocess or called process of an engine workflow."""


class EngineWorkflow(_FromTheFrontier, BpmnWorkflow):  # type: ignore[misc]
    """The workflow of one task: walks from the frontier, in its subprocesses too."""

    def create_subprocess(self, my_task: Any, spec_name: str) -> EngineSubWorkflow:
        subprocess = EngineSubWorkflow(self.subprocess_specs[spec_name], parent_task_id=my_task.id,
                                       top_workflow=self)
        self.subprocesses[my_task.id] = subprocess
        return subprocess
