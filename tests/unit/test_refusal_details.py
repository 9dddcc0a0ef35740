"""What a dead letter says about a refused input: the field and what it must be, in plain words,
never the value it had (which may be personal), and a bad user id named as one."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from stepout_contract.inputs import INPUT_TYPES
from stepout_contract.subjects import Subjects
from stepout_runtime.inbound import DeadLetter, decode

SUBJECTS = Subjects("stepout")
NOW = datetime(2026, 11, 26, 20, 15, tzinfo=UTC)
SECRET = "my-secret-words-3f9"


def event(type_: str, user: str, data: dict[str, Any], **envelope: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "urn:test:platform",
        "type": f"stepout.{type_}.v1",
        "subject": user,
        "time": "2026-11-26T20:00:00Z",
        "datacontenttype": "application/json",
        "data": data,
        **envelope,
    }


def attempt(**fields: Any) -> dict[str, Any]:
    data = {
        "attempt_id": str(uuid.uuid4()),
        "user_id": "u-1",
        "challenge_id": "self-chosen",
        "level": 3,
        "outcome": "rejected",
        "suds_before": 30,
        "suds_peak": 50,
        "suds_after": 20,
        "occurred_at": "2026-11-26T20:00:00Z",
    }
    return {**data, **fields}


def refused(body: dict[str, Any] | bytes, subject: str = "stepout.attempt.logged.u-1") -> DeadLetter:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    found = decode(raw, subject, INPUT_TYPES, SUBJECTS, stream_seq=1, delivered=1, received_at=NOW)
    assert isinstance(found, DeadLetter), found
    return found


@pytest.mark.parametrize(
    ("fields", "reason", "says"),
    [
        ({"crisis_reported": "true"}, "invalid_data", "crisis_reported: must be true or false"),
        ({"suds_peak": "40"}, "invalid_data", "suds_peak: must be a whole number"),
        ({"suds_peak": 140}, "invalid_data", "suds_peak: must be at most 100"),
        ({"attempt_id": SECRET}, "invalid_data", "attempt_id: must be a UUID"),
        ({"assignment_id": "1234"}, "invalid_data", "assignment_id: must be a UUID"),
        ({"occurred_at": 1764187200}, "invalid_data", "occurred_at: must be an RFC 3339 time"),
        ({"outcome": SECRET}, "invalid_data", "outcome: must be one of 'rejected', 'accepted'"),
        ({"note": SECRET * 200}, "invalid_data", "note: must be at most 2000 characters"),
        ({"level": 0}, "invalid_data", "level: must be at least 1"),
    ],
)
def test_a_refused_field_is_named_with_what_it_must_be_and_never_its_value(
    fields: dict[str, Any], reason: str, says: str
) -> None:
    letter = refused(event("attempt.logged", "u-1", attempt(**fields)))
    assert letter.reason == reason
    assert says in letter.detail, letter.detail
    assert SECRET not in letter.detail and "1764187200" not in letter.detail
    assert "invalid literal" not in letter.detail and "32 characters" not in letter.detail


@pytest.mark.parametrize("user", ["user.123", "x" * 65, "someone@example.com"])
def test_a_bad_user_id_in_the_subject_is_named_as_such_and_not_quoted(user: str) -> None:
    letter = refused(event("attempt.logged", user, attempt(user_id=user)), subject=f"stepout.attempt.logged.{user}")
    assert letter.reason == "invalid_subject"
    assert "user id in the subject is not valid" in letter.detail
    assert user not in letter.detail and "example" not in letter.detail


def test_a_bad_user_id_in_the_data_is_named_as_such() -> None:
    letter = refused(event("attempt.logged", "u-1", attempt(user_id="someone@example.com")))
    assert letter.detail.startswith("user_id: is not a valid user id"), letter.detail
    assert "example" not in letter.detail


@pytest.mark.parametrize(
    ("envelope", "says"),
    [
        ({"subject": None}, "subject: must be text"),
        ({"datacontenttype": "text/plain"}, "datacontenttype: must be one of 'application/json'"),
        ({"time": "yesterday"}, "time: must be an RFC 3339 time"),
        ({"specversion": 1.0}, "specversion: must be one of '1.0'"),
    ],
)
def test_the_envelope_is_strict_and_says_what_it_must_be(envelope: dict[str, Any], says: str) -> None:
    body = event("attempt.logged", "u-1", attempt())
    body.update(envelope)
    if envelope.get("subject", "") is None:
        del body["subject"]
        says = "subject: is required"
    letter = refused(body)
    assert letter.reason == "invalid_envelope"
    assert says in letter.detail, letter.detail


@pytest.mark.parametrize(
    ("kind", "data", "says"),
    [
        ("participant.withdrawn", {"user_id": "u-1", "erase": "yes"}, "erase: must be true or false"),
        ("participant.withdrawn", {"user_id": "u-1", "erase": 1}, "erase: must be true or false"),
        ("participant.enrolled", {"user_id": "u-1", "daily_limit": "3"}, "daily_limit: must be a whole number"),
        ("participant.enrolled", {"user_id": "u-1", "timezone": "America"}, "timezone: must be an IANA"),
        ("participant.paused", {"user_id": "u-1", "until": 1764187200}, "until: must be an RFC 3339 time"),
    ],
)
def test_participant_inputs_are_strict_too(kind: str, data: dict[str, Any], says: str) -> None:
    letter = refused(event(kind, "u-1", data), subject=f"stepout.{kind}.u-1")
    assert letter.reason == "invalid_data" and says in letter.detail, letter.detail
