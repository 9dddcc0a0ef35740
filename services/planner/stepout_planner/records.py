"""The planner's commands and plan events as stored JSON."""

from __future__ import annotations

from typing import Any

from stepout_domain import plan_commands, plan_events
from stepout_runtime.records import Records

COMMANDS = Records(
    plan_commands.Enrol,
    plan_commands.ObserveProgress,
    plan_commands.ObserveWarning,
    plan_commands.ObserveClearing,
    plan_commands.PauseByParticipant,
    plan_commands.Resume,
    plan_commands.Review,
    plan_commands.Withdraw,
)
EVENTS = Records(
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


def command_record(command: Any) -> dict[str, Any]:
    return COMMANDS.record(command)


def command_from(record: dict[str, Any]) -> Any:
    return COMMANDS.read(record)


def event_record(event: Any) -> dict[str, Any]:
    return EVENTS.record(event)


def event_from(record: dict[str, Any]) -> Any:
    return EVENTS.read(record)
