"""Timer events on the kernel's clock.

SpiffWorkflow's timer event definitions read the wall clock themselves. The engine's read the run's
``Clock`` (through the script engine's ``now()``), so a test's ``FixedClock`` moves every timer too:
``timeDate`` fires once the clock passes the date, ``timeDuration`` once the duration has passed since
the event was reached, ``timeCycle`` (``R3/PT10M``) fires each period, as many times as it says
(``R/...``: without end). Each text is ISO 8601 as the Modeler's Timer tab writes it, or an expression
(FEEL or ``${...}``) giving one, evaluated when the event is reached.

``on_clock`` swaps the definitions of a parsed process for these; the parser builds Spiff's own.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from SpiffWorkflow.bpmn.specs.event_definitions.timer import (
    CycleTimerEventDefinition,
    DurationTimerEventDefinition,
    TimeDateEventDefinition,
    TimerEventDefinition,
)
from SpiffWorkflow.util.task import TaskState

from engine.errors import EngineError


def _now(task: Any) -> datetime:
    return task.workflow.script_engine.now()  # type: ignore[no-any-return]


def _duration(text: str, start: datetime) -> timedelta:
    parsed = TimerEventDefinition.parse_iso_duration(text)
    period: timedelta = TimerEventDefinition.get_timedelta_from_start(parsed, start)
    return period


def _timer_value(my_task: Any, definition: Any, compute: Any) -> Any:
    """What a timer's text gives when its event is reached (``compute(text)``), or an error naming the
    event and the text when it is no ISO 8601 the timer kind takes: the step fails, saying so."""
    text, expression = None, definition.expression
    try:
        value = my_task.workflow.script_engine.evaluate(my_task, expression)
        text = "null" if value is None else str(value)
        return compute(text)
    except EngineError:
        raise
    except Exception as e:  # Spiff's ISO parsing raises bare Exception ("Invalid duration")
        spec = my_task.task_spec
        name = f" '{' '.join(spec.bpmn_name.split())}'" if spec.bpmn_name else ""
        gave = "" if text is None or text == expression else " gave null" if text == "null" else f" gave {text!r}"
        raise EngineError(f"timer of {spec.bpmn_id}{name}: {expression!r}{gave}, which is no valid ISO 8601 "
                          f"{next(k for c, k in _KINDS.items() if isinstance(definition, c))} ({e})",
                          step=spec.bpmn_id) from e


def _fires_at(my_task: Any, first: Any) -> bool:
    """Whether the clock has passed the instant ``first(task)`` gives (an ISO text), computed once when the
    event is reached and kept in the task."""
    value = my_task._get_internal_data("event_value")
    if value is None:
        value = first(my_task)
        my_task._set_internal_data(event_value=value)
    if TimerEventDefinition.get_datetime(value) <= _now(my_task):
        my_task._set_internal_data(event_fired=True)
    return bool(my_task._get_internal_data("event_fired", False))


class ClockedTimeDate(TimeDateEventDefinition):  # type: ignore[misc]
    def has_fired(self, my_task: Any) -> bool:
        return _fires_at(my_task, lambda t: _timer_value(t, self, lambda text: (
            TimerEventDefinition.get_datetime(text), text)[1]))


class ClockedDuration(DurationTimerEventDefinition):  # type: ignore[misc]
    def has_fired(self, my_task: Any) -> bool:
        def deadline(task: Any) -> str:
            now = _now(task)
            return str(_timer_value(task, self, lambda text: (now + _duration(text, now)).isoformat()))
        return _fires_at(my_task, deadline)


class ClockedCycle(CycleTimerEventDefinition):  # type: ignore[misc]
    def cycle_complete(self, my_task: Any) -> bool:
        value = my_task._get_internal_data("event_value")
        now = _now(my_task)
        if value is None:
            value = _timer_value(my_task, self, lambda text: _first_cycle(text, now))
        ready = False
        if value["cycles"] != 0:
            upcoming = datetime.fromisoformat(value["next"])
            if upcoming <= now:
                value["next"] = (upcoming + timedelta(seconds=value["duration"])).isoformat()
                value["cycles"] -= 1
                ready = True
            my_task._set_internal_data(event_value=value)
        else:
            my_task.internal_data.pop("event_value", None)
            my_task.internal_data["event_fired"] = True
        return ready

    def update_task(self, my_task: Any) -> None:
        if self.cycle_complete(my_task):
            for output in my_task.task_spec.outputs:
                child = my_task._add_child(output, TaskState.FUTURE)
                child.task_spec._predict(child, mask=TaskState.NOT_FINISHED_MASK)
                child.task_spec._update(child)


def _first_cycle(text: str, now: datetime) -> dict[str, Any]:
    """``R<n>/[start/]duration`` or ``R<n>/duration/end``: how many times, when first, how far apart."""
    parts = text.strip().upper().replace("--", "/").removeprefix("R").split("/")
    cycles = int(parts[0]) if parts[0] else -1
    if len(parts) == 3 and not parts[1].startswith("P"):
        start = TimerEventDefinition.get_datetime(parts[1])
        period = _duration(parts[2], start)
    elif len(parts) == 3:
        end = TimerEventDefinition.get_datetime(parts[2])
        period = TimerEventDefinition.get_timedelta_from_end(TimerEventDefinition.parse_iso_duration(parts[1]), end)
        start = end - period
    else:
        period = _duration(parts[1], now)
        start = now + period
    return {"cycles": cycles, "next": start.isoformat(), "duration": period.total_seconds()}


_KINDS = {TimeDateEventDefinition: "date (timeDate)", DurationTimerEventDefinition: "duration (timeDuration)",
          CycleTimerEventDefinition: "cycle (timeCycle)"}

CLOCKED = {TimeDateEventDefinition: ClockedTimeDate, DurationTimerEventDefinition: ClockedDuration,
            CycleTimerEventDefinition: ClockedCycle}


def on_clock(specs: Iterable[Any]) -> None:
    """Make every timer of these process specs read the run's clock."""
    for spec in specs:
        for task_spec in spec.task_specs.values():
            definition = getattr(task_spec, "event_definition", None)
            # an event-based gateway holds the definitions of the events after it
            for each in [definition, *getattr(definition, "event_definitions", [])]:
                clocked = CLOCKED.get(type(each))
                if clocked is not None:
                    each.__class__ = clocked


def waits_on_timer(task_spec: Any) -> bool:
    """Whether a waiting step waits for a timer (alone, or among an event-based gateway's events)."""
    definition = getattr(task_spec, "event_definition", None)
    return any(isinstance(d, TimerEventDefinition)
               for d in [definition, *getattr(definition, "event_definitions", [])])


def due_at(task: Any) -> datetime | None:
    """When a waiting timer event fires next (on the run's clock), once it has been reached; else None."""
    value = task._get_internal_data("event_value")
    if isinstance(value, str):
        return TimerEventDefinition.get_datetime(value)  # type: ignore[no-any-return]
    if isinstance(value, dict) and isinstance(value.get("next"), str) and value.get("cycles") != 0:
        return datetime.fromisoformat(value["next"])
    return None
