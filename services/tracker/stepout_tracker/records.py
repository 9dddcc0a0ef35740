"""The tracker's commands and events as stored JSON."""

from __future__ import annotations

from stepout_domain import tracker_commands, tracker_events
from stepout_runtime.records import Records

COMMANDS = Records(
    tracker_commands.Enrol, tracker_commands.RecordAttempt, tracker_commands.Review, tracker_commands.Withdraw
)
EVENTS = Records(
    tracker_events.Enrolled,
    tracker_events.EnrolmentChanged,
    tracker_events.AttemptRecorded,
    tracker_events.WarningRaised,
    tracker_events.WarningCleared,
    tracker_events.ProgressUpdated,
    tracker_events.Reviewed,
    tracker_events.Withdrawn,
)
