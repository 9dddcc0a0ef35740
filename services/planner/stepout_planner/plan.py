"""The planner's aggregate: one participant's plan, as the decisions made for it."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import replace
from datetime import datetime
from typing import Any

from eventsourcing.domain import Aggregate, event

from stepout_contract.envelope import SOURCE_TRACKER
from stepout_domain.planning import PlanState, Withdraw, evolve, initial_state
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
        self.decisions: dict[str, int] = {}  # plan events decided, by kind: what erasure leaves

    def handled(self, input_id: str) -> bool:
        """True when the platform input with this CloudEvent id already had its effect."""
        return input_id in self.input_ids

    def is_stale(self, cause: dict[str, Any], command: Any) -> bool:
        """True for a platform input (its recorded attributes) no later than the last one of its
        kind recorded (INPUT_KINDS): the service and the audit both ask this before deciding. A
        request to erase is never stale: erasure may be asked for at any time after enrolment."""
        if isinstance(command, Withdraw) and command.erase:
            return False
        latest = self.input_times.get(INPUT_KINDS.get(cause["type"], cause["type"]))
        return latest is not None and happened_at(cause) <= latest

    class Decided(Aggregate.Event):
        """A command decided: the command, its cause (the input's CloudEvent attributes), the rule
        set, the plan events it caused and, when the input changed nothing (or less than it asked),
        the notice told back (None in decisions recorded before notices were)."""

        command: dict[str, Any]
        events: list[dict[str, Any]]
        cause: dict[str, Any]
        ruleset_version: str
        notice: dict[str, str] | None = None

    @event(Decided)
    def decided(
        self,
        command: dict[str, Any],
        events: list[dict[str, Any]],
        cause: dict[str, Any],
        ruleset_version: str,
        notice: dict[str, str] | None = None,
    ) -> None:
        state = self.state
        for record in events:
            state = evolve(state, event_from(record))
        self.state = state
        counts = Counter(self.decisions)
        counts.update(record["kind"] for record in events)
        self.decisions = dict(counts)
        if from_platform(cause):
            if cause["id"] not in self.input_ids:
                self.input_ids = (*self.input_ids, cause["id"])[-INPUT_IDS_KEPT:]
            kind, at = INPUT_KINDS.get(cause["type"], cause["type"]), happened_at(cause)
            self.input_times[kind] = max(at, self.input_times.get(kind, at))

    class Erased(Aggregate.Event):
        """A participant's erasure in the planner: what it leaves (the plan events decided, by kind)
        and nothing personal, so it still reads once the participant's key is destroyed."""

        personal = False
        user_id: str
        summary: dict[str, Any]
        stream_seq: int
        request_id: str

    @event(Erased)
    def erase(self, user_id: str, summary: dict[str, Any], stream_seq: int, request_id: str) -> None:
        self.state = erased_state(self.state)
        if request_id not in self.input_ids:
            self.input_ids = (*self.input_ids, request_id)[-INPUT_IDS_KEPT:]


def erased_state(state: PlanState) -> PlanState:
    """What the planner keeps of an erased participant: withdrawn and erased, their level, nothing personal."""
    return replace(
        initial_state(state.user_id),
        enrolled=True,
        status="withdrawn",
        level=state.level,
        erased=True,
        last_position=state.last_position,
        clock=state.clock,
    )
