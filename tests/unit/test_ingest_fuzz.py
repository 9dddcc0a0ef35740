"""Fuzzing the ingest edge: any bytes end as a validated input or a named dead letter, never a crash."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from stepout_contract.inputs import INPUT_TYPES
from stepout_contract.subjects import Subjects
from stepout_runtime.inbound import DeadLetter, Inbound, decode

SUBJECTS = Subjects("stepout")
NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)
KNOWN_REASONS = {"too_large", "invalid_json", "invalid_envelope", "unknown_type", "invalid_subject", "invalid_data"}

VALID: dict[str, Any] = {
    "specversion": "1.0",
    "id": "e-1",
    "source": "urn:example:platform",
    "type": "stepout.attempt.logged.v1",
    "subject": "u-1",
    "time": "2026-11-26T11:00:00Z",
    "data": {
        "attempt_id": "3f1c0e4e-5b7a-4c1e-9d0a-2b1f6f0f9a11",
        "user_id": "u-1",
        "assignment_id": None,
        "challenge_id": "money-03-ask-for-coffee-discount",
        "outcome": "rejected",
        "suds_before": 30,
        "suds_peak": 60,
        "suds_after": 20,
        "occurred_at": "2026-11-26T11:00:00Z",
        "note": "private",
    },
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


def check(body: bytes, subject: str = "stepout.attempt.logged.u-1") -> Inbound | DeadLetter:
    result = decode(body, subject, INPUT_TYPES, SUBJECTS, stream_seq=1, delivered=1, received_at=NOW)
    assert isinstance(result, (Inbound, DeadLetter))
    if isinstance(result, DeadLetter):
        assert result.reason in KNOWN_REASONS and result.detail
        assert "private" not in result.detail
    return result


def test_the_unfuzzed_attempt_is_accepted() -> None:
    assert isinstance(check(json.dumps(VALID).encode()), Inbound)


@settings(max_examples=300)
@given(st.binary(max_size=2048))
def test_random_bytes_never_crash_the_ingest_edge(body: bytes) -> None:
    check(body)


@settings(max_examples=400)
@given(
    path=st.sampled_from([(k,) for k in VALID if k != "data"] + [("data", k) for k in VALID["data"]]),
    value=json_values,
    drop=st.booleans(),
)
def test_near_valid_attempts_are_accepted_or_dead_lettered_with_a_reason(
    path: tuple[str, ...], value: Any, drop: bool
) -> None:
    event = json.loads(json.dumps(VALID))
    target = event
    for key in path[:-1]:
        target = target[key]
    if drop:
        target.pop(path[-1], None)
    else:
        target[path[-1]] = value
    check(json.dumps(event).encode())


@settings(max_examples=200)
@given(st.text(alphabet=st.characters(codec="utf-8"), min_size=0, max_size=80))
def test_any_subject_token_is_either_a_user_id_or_invalid_subject(token: str) -> None:
    result = check(json.dumps(VALID).encode(), subject=f"stepout.attempt.logged.{token}")
    if isinstance(result, Inbound):
        assert token == "u-1"
