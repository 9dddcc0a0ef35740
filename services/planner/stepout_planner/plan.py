"""The planner's aggregate: one participant's plan, as the decisions made for it."""

from __future__ import annotations

import uuid
from typing import Any

from eventsourcing.domain import Aggregate, event

from stepout_domain.planning import evolve, initial_state

from .records import event_from

PLAN_NAMESPACE = uuid.UUID("8e4c2a1b-6f3d-5e7a-9b8c-0d1e2f3a4b5c")


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

    @event("Decided")
    def decided(
        self, command: dict[str, Any], events: list[dict[str, Any]], cause: dict[str, Any], ruleset_version: str
    ) -> None:
        state = self.state
        for record in events:
            state = evolve(state, event_from(record))
        self.state = state
