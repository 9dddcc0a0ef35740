"""A participant with 5,000 attempts loads from a snapshot, not from their whole history.

The tracker's application on a real SQLite file (the store `make run` uses) records a participant's
enrolment and 5,000 attempts through `handle_batch`, in batches as the ingest hands them over. A
fresh application on the same file (a tracker restarted cold) then decides one more attempt: the
stored events it reads to load the participant are counted at the recorder, and must stay within
the snapshot interval whatever the history; what it decides must match what the warm one decides.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from stepout_contract.envelope import encode
from stepout_contract.inputs import INPUT_TYPES
from stepout_contract.settings import Settings
from stepout_contract.subjects import Subjects
from stepout_runtime.application import SNAPSHOT_EVERY
from stepout_runtime.inbound import Inbound, decode
from stepout_tracker.application import TrackerApplication
from stepout_tracker.main import build
from stepout_tracker.participant import participant_id

USER = "u-long"
ATTEMPTS = 5_000
BATCH = 250
START = datetime(2025, 1, 1, 8, 0, tzinfo=UTC)


def message(settings: Settings, seq: int, kind: str, data: dict[str, Any], at: datetime) -> Inbound:
    event = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "urn:test:platform",
        "type": f"stepout.{kind}.v1",
        "subject": USER,
        "datacontenttype": "application/json",
        "time": at.isoformat(),
        "data": data,
    }
    subjects = Subjects(settings.subject_prefix)
    item = decode(
        encode(event),
        subjects.event(*kind.split("."), USER),
        INPUT_TYPES,
        subjects,
        stream_seq=seq,
        delivered=1,
        received_at=at,
    )
    assert isinstance(item, Inbound), item
    return item


def attempt(settings: Settings, n: int) -> Inbound:
    at = START + n * timedelta(hours=2)
    data = {
        "attempt_id": str(uuid.UUID(int=n + 1)),
        "user_id": USER,
        "assignment_id": None,
        "challenge_id": "money-01-ask-the-time",
        "level": 1 + (n // 400) % 8,
        "outcome": ("accepted", "rejected", "escaped", "rejected", "hostile")[n % 5],
        "suds_before": 30,
        "suds_peak": 40 + n % 40,
        "suds_after": 20,
        "occurred_at": at.isoformat(),
        "note": f"a note about attempt {n}",
    }
    return message(settings, n + 2, "attempt.logged", data, at)


class Counted:
    """Stored events the recorders returned while loading, snapshots apart."""

    def __init__(self, app: TrackerApplication, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events = 0
        self.snapshots = 0
        recorder: Any = app.recorder
        snapshots: Any = app.snapshots
        assert snapshots is not None, "the tracker keeps snapshots"
        self._count(monkeypatch, recorder, "events")
        self._count(monkeypatch, snapshots.recorder, "snapshots")

    def _count(self, monkeypatch: pytest.MonkeyPatch, recorder: Any, field: str) -> None:
        select = recorder.select_events

        def counted(*args: Any, **kwargs: Any) -> Any:
            found = list(select(*args, **kwargs))
            setattr(self, field, getattr(self, field) + len(found))
            return found

        monkeypatch.setattr(recorder, "select_events", counted)


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    yield Settings(data_dir=tmp_path / "data", store="sqlite", subject_prefix="coldload")


def test_a_cold_load_reads_a_bounded_number_of_events(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    _, app = build(settings)
    enrol = {"user_id": USER, "timezone": "Europe/Berlin"}
    assert app.handle_batch([message(settings, 1, "participant.enrolled", enrol, START - timedelta(days=1))]) == [None]
    items = [attempt(settings, n) for n in range(ATTEMPTS)]
    for first in range(0, ATTEMPTS, BATCH):
        assert app.handle_batch(items[first : first + BATCH]) == [None] * len(items[first : first + BATCH])
    warm = app.repository.get(participant_id(USER))
    assert warm.version > ATTEMPTS, "every attempt is stored"
    app.close()

    _, cold = build(settings)
    counted = Counted(cold, monkeypatch)
    loaded = cold.repository.get(participant_id(USER))
    assert counted.snapshots == 1, "the load starts from the newest snapshot"
    assert counted.events < SNAPSHOT_EVERY, f"{counted.events} stored events read to load {warm.version}"
    assert loaded.version == warm.version
    assert loaded.state == warm.state, "the snapshot and the events after it give the state the warm tracker had"
    assert cold.handle_batch([attempt(settings, ATTEMPTS)]) == [None], "and the cold tracker decides on from it"
    assert cold.repository.get(participant_id(USER)).state.history.position == ATTEMPTS + 1
    cold.close()
