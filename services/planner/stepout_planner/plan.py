"""The planner's aggregate: one participant's plan, as the decisions made for it."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate, event

from stepout_contract.envelope import SOURCE_TRACKER
from stepout_domain.planning import evolve, initial_state
from stepout_runtime.inbound import happened_at

from .records import event_from

PLAN_NAMESPACE = uuid.UUID("8e4c2a1b-6f3d-5e7a-9b8c-0d1e2f3a4b5c")
# How many platform inputs' CloudEvent ids a plan remembers, so that none has its effect twice.
INPUT_IDS_KEPT = 256


# Platform inputs by what they change: an input no later than the last one of its kind recorded is
# that one again (however late it is sent) or an older one, and changes nothing. A pause and a resume
# are one kind: the participant's latest wish stands.
INPUT_KINDS = {
    "stepout.participant.enrolled.v1": "enrolment",
    "stepout.participant.paused.v1": "wish",
    "stepout.participant.resumed.v1": "wish",
    "stepout.participant.reviewed.v1": "review",
    "stepout.participant.withdrawn.v1": "withdrawal",
}


def from_platform(cause: dict[str, Any]) -> bool:
    """Whether a decision's cause is a platform input (not one of the tracker's outputs); known by
    the stream that delivered it, for decisions stored before that was recorded by its source."""
    if "origin" in cause:
        return bool(cause["origin"] == "platform")
    return cause.get("source") != SOURCE_TRACKER


def plan_id(user_id: str) -> uuid.UUID:
    return uuid.uuid5(PLAN_NAMESPACE, user_id)


class Plan(Aggregate):
    """Each stored `Decided` keeps the command (what came in, with its CloudEvent
    attributes as `cause`), the rule-set version used, and the plan events it caused:
    an audit re-runs the pure decider on the command and compares."""

    @staticmethod
    def create_id(user_id: str) -> uuid.UUID:
        return plan_id(user_id)

    @event("Opened")
    def __init__(self, user_id: str) -> None:
        self.user_id = user_id
        self.state = initial_state(user_id)
        self.input_ids: tuple[str, ...] = ()
        self.input_times: dict[str, datetime] = {}  # input kind -> when the latest recorded one happened

    def handled(self, input_id: str) -> bool:
        """True when the platform input with this CloudEvent id already had its effect."""
        return input_id in self.input_ids

    def is_stale(self, cause: dict[str, Any]) -> bool:
        """True for a platform input (its recorded attributes) no later than the last one of its
        kind recorded (INPUT_KINDS): the service and the audit both ask this before deciding."""
        latest = self.input_times.get(INPUT_KINDS.get(cause["type"], cause["type"]))
        return latest is not None and happened_at(cause) <= latest

    @event("Decided")
    def decided(
        self, command: dict[str, Any], events: list[dict[str, Any]], cause: dict[str, Any], ruleset_version: str
    ) -> None:
        state = self.state
        for record in events:
            state = evolve(state, event_from(record))
        self.state = state
        if from_platform(cause):
            if cause["id"] not in self.input_ids:
                self.input_ids = (*self.input_ids, cause["id"])[-INPUT_IDS_KEPT:]
            kind, at = INPUT_KINDS.get(cause["type"], cause["type"]), happened_at(cause)
            self.input_times[kind] = max(at, self.input_times.get(kind, at))
