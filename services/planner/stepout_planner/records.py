"""Domain commands and plan events as stored JSON: readable by an auditor, exact on replay."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from stepout_domain import plan_commands, plan_events

_COMMANDS = {
    cls.__name__: TypeAdapter(cls)
    for cls in (
        plan_commands.Enrol,
        plan_commands.ObserveProgress,
        plan_commands.ObserveWarning,
        plan_commands.ObserveClearing,
        plan_commands.PauseByParticipant,
        plan_commands.Resume,
        plan_commands.Review,
        plan_commands.Withdraw,
    )
}
_EVENTS = {
    cls.__name__: TypeAdapter(cls)
    for cls in (
        plan_events.Enrolled,
        plan_events.EnrolmentChanged,
        plan_events.ChallengeAssigned,
        plan_events.AssignmentClosed,
        plan_events.AssignmentCancelled,
        plan_events.ProgressObserved,
        plan_events.WarningObserved,
        plan_events.ClearingObserved,
        plan_events.PlanPaused,
        plan_events.PlanResumed,
        plan_events.Reviewed,
        plan_events.Withdrawn,
    )
}


def command_record(command: Any) -> dict[str, Any]:
    name = type(command).__name__
    return {"kind": name, "body": _COMMANDS[name].dump_python(command, mode="json")}


def command_from(record: dict[str, Any]) -> Any:
    return _COMMANDS[record["kind"]].validate_python(record["body"])


def event_record(event: Any) -> dict[str, Any]:
    name = type(event).__name__
    return {"kind": name, "body": _EVENTS[name].dump_python(event, mode="json")}


def event_from(record: dict[str, Any]) -> Any:
    return _EVENTS[record["kind"]].validate_python(record["body"])
