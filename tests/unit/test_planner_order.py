"""The planner decides the tracker's outputs of a participant in the order they were published,
even when a delivery lost with a connection comes back behind later ones."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from test_decision_state_machine import CATALOG, START, SUBJECTS, Pair, platform_message

from stepout_contract.envelope import encode
from stepout_contract.inputs import INPUT_TYPES
from stepout_planner.main import OUTCOME_TYPES
from stepout_runtime.inbound import Inbound, Retry, decode
from stepout_runtime.outbox import Output

USER = "u-order"


@pytest.fixture
def pair() -> Any:
    running = Pair()
    running.deliver([platform_message("participant.enrolled", USER, {"user_id": USER}, "enrol-1", START)], START)
    yield running
    running.close()


def progress_of(pair: Pair, attempts: int) -> list[Output]:
    """The tracker's `progress.updated` for `attempts` calm attempts, kept from the planner."""
    found: list[Output] = []
    for n in range(1, attempts + 1):
        at = START + n * timedelta(hours=3)
        data = {
            "attempt_id": str(uuid.UUID(int=n)),
            "user_id": USER,
            "assignment_id": None,
            "challenge_id": CATALOG.at_level(3)[0].id,
            "level": 3,
            "outcome": "accepted",
            "suds_before": 20,
            "suds_peak": 25,
            "suds_after": 10,
            "occurred_at": at.isoformat(),
        }
        message = platform_message("attempt.logged", USER, data, str(uuid.UUID(int=1000 + n)), at)
        item = decode(message.body, message.subject, INPUT_TYPES, SUBJECTS, stream_seq=n, delivered=1, received_at=at)
        assert isinstance(item, Inbound)
        assert pair.tracker.handle_batch([item]) == [None]
        outputs = pair._new_outputs("tracker")[1]
        found.extend(o for o in outputs if o.event["type"] == "stepout.progress.updated.v1")
    assert [o.event["data"]["position"] for o in found] == list(range(1, attempts + 1))
    return found


def observed(pair: Pair, output: Output, delivered: int = 1) -> Inbound:
    item = decode(
        encode(output.event),
        output.subject,
        OUTCOME_TYPES,
        SUBJECTS,
        origin="stepout",
        stream_seq=output.event["data"]["position"],
        delivered=delivered,
        received_at=START,
    )
    assert isinstance(item, Inbound)
    return item


def assignments(pair: Pair) -> int:
    """The assignments the planner decided since the last call."""
    return sum(1 for o in pair._new_outputs("planner")[1] if o.event["type"] == "stepout.challenge.assigned.v1")


def test_a_progress_delivered_before_the_one_it_follows_waits_for_it(pair: Pair) -> None:
    first, second, third = progress_of(pair, 3)
    assert pair.planner.handle_batch([observed(pair, first)]) == [None]
    assert assignments(pair) == 1
    waiting = pair.planner.handle_batch([observed(pair, third)])
    assert waiting == [Retry("waiting for the progress at position 2 of this participant")]
    assert assignments(pair) == 0  # nothing decided for the third before the second
    # The lost delivery comes back, then the waiting one: each answered by its own assignment.
    assert pair.planner.handle_batch([observed(pair, second), observed(pair, third, delivered=2)]) == [None, None]
    assert assignments(pair) == 2
    assert pair.plan_state(USER).last_position == 3


def test_past_its_patience_a_progress_is_decided_without_the_one_it_skips(pair: Pair) -> None:
    first, _, third = progress_of(pair, 3)
    pair.planner.handle_batch([observed(pair, first)])
    assert isinstance(pair.planner.handle_batch([observed(pair, third, delivered=pair.planner.patience - 1)])[0], Retry)
    assert pair.planner.handle_batch([observed(pair, third, delivered=pair.planner.patience)]) == [None]
    assert pair.plan_state(USER).last_position == 3
