"""A tracker store of many participants, written fast and as the tracker would have written it.

One participant (the template) is enrolled and records `attempts_each` attempts through the
tracker's own `handle_batch`: real decisions, events, snapshots, attempt index and read model.
Every other participant is that template under their own ids: each stored event and snapshot of
the template is opened, its ids are replaced (the user id, and the attempt and input ids, which
carry the copy's number), and it is sealed again with *that participant's own key* for its own
place, then stored through the recorder (so the hash chain and the attempt index are written as
for any batch). The store therefore opens, loads, rebuilds and erases per participant like one
the service filled, at a fraction of the time of deciding every attempt again.

Outputs of the copies are not relayed and their read-model rows are not written: the relay's and
the projection's positions are moved past them (a rebuild, or a tracker deciding on, writes rows).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from eventsourcing.persistence import StoredEvent

from stepout_contract.envelope import encode
from stepout_contract.inputs import INPUT_TYPES, AttemptLogged
from stepout_contract.settings import Settings
from stepout_contract.subjects import Subjects
from stepout_runtime.inbound import Inbound, decode
from stepout_runtime.outbox import POSITION_NAME
from stepout_tracker.application import TrackerApplication, attempt_content, attempt_ref, content_digest
from stepout_tracker.main import build
from stepout_tracker.participant import participant_id

TEMPLATE = "pop-template"  # 12 characters, as every copy's user id
MARK = "-8000-ffffffffffff"  # the tail of every id of the template; a copy's number replaces it
START = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
SPACING = timedelta(hours=3)
OUTCOMES = ("accepted", "rejected", "rejected", "skipped", "hostile")
CHUNK = 250  # participants stored per transaction


def user_of(copy: int) -> str:
    return f"p-{copy:010d}"


def template_id(n: int, kind: int) -> str:
    return f"{n:08x}-{kind:04x}-4000{MARK}"


def mark_of(copy: int) -> str:
    return f"-8000-{copy:012x}"


def _inbound(subjects: Subjects, seq: int, kind: str, data: dict[str, Any], at: datetime, event_id: str) -> Inbound:
    event = {
        "specversion": "1.0",
        "id": event_id,
        "source": "urn:bench:platform",
        "type": f"stepout.{kind}.v1",
        "subject": TEMPLATE,
        "datacontenttype": "application/json",
        "time": at.isoformat(),
        "data": data,
    }
    item = decode(
        encode(event),
        subjects.event(*kind.split("."), TEMPLATE),
        INPUT_TYPES,
        subjects,
        stream_seq=seq,
        delivered=1,
        received_at=at,
    )
    assert isinstance(item, Inbound), item
    return item


def _template_inputs(subjects: Subjects, attempts: int) -> list[Inbound]:
    items = [
        _inbound(
            subjects,
            1,
            "participant.enrolled",
            {"user_id": TEMPLATE, "timezone": "Europe/Berlin"},
            START - timedelta(days=1),
            template_id(0, 1),
        )
    ]
    for n in range(attempts):
        at = START + n * SPACING
        peak = 30 + (n * 7) % 40
        data = {
            "attempt_id": template_id(n, 2),
            "user_id": TEMPLATE,
            "assignment_id": None,
            "challenge_id": "self-chosen-bench",  # not in the catalog: the level is the participant's
            "level": 1 + (n // 20) % 3,
            "outcome": OUTCOMES[n % len(OUTCOMES)],
            "suds_before": peak - 10,
            "suds_peak": peak,
            "suds_after": peak - 20,
            "occurred_at": at.isoformat(),
            "note": f"what happened at attempt {n}",
        }
        items.append(_inbound(subjects, n + 2, "attempt.logged", data, at, template_id(n, 3)))
    return items


@dataclass
class Template:
    events: list[StoredEvent]  # opened: the library's bytes
    snapshots: list[StoredEvent]
    attempts: list[tuple[str, bytes]]  # (attempt_id, canonical JSON of what it said) of each attempt


def _template(app: TrackerApplication, subjects: Subjects, attempts: int) -> Template:
    items = _template_inputs(subjects, attempts)
    for first in range(0, len(items), 100):
        verdicts = app.handle_batch(items[first : first + 100])
        if any(v is not None for v in verdicts):
            raise RuntimeError(f"the template was not recorded: {verdicts}")
    key = participant_id(TEMPLATE)
    snapshots = app.snapshots
    assert snapshots is not None
    opened = [replace(s, state=app.mapper.opened(s)) for s in app.recorder.select_events(key)]
    shots = [replace(s, state=app.mapper.opened(s)) for s in snapshots.recorder.select_events(key)]
    if any(str(key).encode() in s.state for s in [*opened, *shots]):
        raise RuntimeError("a stored event names its own aggregate id: copies cannot be made by replacing user ids")
    said = [(i.data.attempt_id, attempt_content(i.data)) for i in items if isinstance(i.data, AttemptLogged)]
    return Template(opened, shots, said)


def _copied(stored: StoredEvent, copy: int, new_id: uuid.UUID) -> StoredEvent:
    state = stored.state.replace(TEMPLATE.encode(), user_of(copy).encode()).replace(
        MARK.encode(), mark_of(copy).encode()
    )
    return StoredEvent(new_id, stored.originator_version, stored.topic, state)


def populate(data_dir: Path, prefix: str, participants: int, attempts_each: int = 50) -> dict[str, int]:
    """Fill the tracker store in `data_dir` with `participants` participants (`user_of(0..)`) of
    `attempts_each` attempts each; the stored events and snapshots written."""
    settings = Settings(data_dir=data_dir, store="sqlite", subject_prefix=prefix)
    _, app = build(settings)
    try:
        # As the service's first start does: a new store has no previous release's attempts, and its
        # read model is of this version.
        app.index_legacy_attempts()
        app.upgrade_read_models()
        template = _template(app, Subjects(prefix), attempts_each)
        snapshots = app.snapshots
        assert snapshots is not None
        events = shots = 0
        for first in range(0, participants, CHUNK):
            copies = range(first, min(first + CHUNK, participants))
            ids = {copy: participant_id(user_of(copy)) for copy in copies}
            keys = app.keys.owner_keys(str(i) for i in ids.values())
            batch: list[StoredEvent] = []
            shot_batch: list[StoredEvent] = []
            index: list[tuple[str, str, str | None]] = []
            for copy, new_id in ids.items():
                owner, key, mark = str(new_id), keys[str(new_id)], mark_of(copy)
                for stored in template.events:
                    copied = _copied(stored, copy, new_id)
                    batch.append(replace(copied, state=app.mapper.sealed(copied, personal=True)))
                for stored in template.snapshots:
                    copied = _copied(stored, copy, new_id)
                    shot_batch.append(replace(copied, state=app.mapper.sealed(copied, personal=True)))
                for attempt_id, said in template.attempts:
                    content = said.replace(TEMPLATE.encode(), user_of(copy).encode()).replace(
                        MARK.encode(), mark.encode()
                    )
                    ref = attempt_ref(key, attempt_id.replace(MARK, mark))
                    index.append((owner, ref, content_digest(key, content)))
            app.recorder.insert_events(batch, attempt_index=index)
            snapshots.recorder.insert_events(shot_batch)
            events += len(batch)
            shots += len(shot_batch)
        newest = app.recorder.max_notification_id() or 0
        for name in (app.projection, POSITION_NAME):
            app.views.commit(name, newest, {}, expected=app.views.position(name))
        return {"participants": participants, "events": events, "snapshots": shots}
    finally:
        app.close()
