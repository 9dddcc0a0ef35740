"""The key hierarchy in memory: one derived key per purpose, data keys wrapped and bound to their
names, stored events sealed per participant, erasure for good, and rotation that rewrites no data."""

from __future__ import annotations

import base64
import sqlite3
from pathlib import Path
from uuid import uuid4

import pytest
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import DatetimeAsISO, JSONTranscoder, StoredEvent, UUIDAsHex

from stepout_runtime.keystore import KeyStore, KeyStoreError
from stepout_runtime.master_key import derive, fingerprint
from stepout_runtime.personal_events import SEALED_FOR_OWNER, SEALED_FOR_STORE, ErasedData, PersonalMapper
from stepout_runtime.store import StoreLocation
from stepout_runtime.views import Row, RowSealer, ViewStore

MASTER = bytes(range(32))
OTHER_MASTER = bytes(range(32, 64))
MARKER = "a-note-nobody-may-read-7e1"


class Diary(Aggregate):
    @event("Written")
    def __init__(self, text: str) -> None:
        self.text = text

    class Closed(Aggregate.Event):
        personal = False
        reason: str

    @event(Closed)
    def close(self, reason: str) -> None:
        self.text = ""


def keystore(tmp_path: Path, master: bytes = MASTER) -> KeyStore:
    return KeyStore(StoreLocation("sqlite", sqlite_path=tmp_path / "keys.db"), master)


def mapper(keys: KeyStore) -> PersonalMapper:
    transcoder = JSONTranscoder()
    transcoder.register(UUIDAsHex())
    transcoder.register(DatetimeAsISO())
    return PersonalMapper(transcoder, keys)


def test_each_purpose_has_its_own_key_derived_from_the_master_key() -> None:
    keys = {purpose: derive(MASTER, purpose) for purpose in ("wrap/purpose", "wrap/owner", "events", "jetstream")}
    assert len(set(keys.values())) == len(keys) and all(len(k) == 32 for k in keys.values())
    assert derive(MASTER, "events") == derive(MASTER, "events") != derive(OTHER_MASTER, "events")
    assert fingerprint(MASTER) != fingerprint(OTHER_MASTER)


def test_data_keys_are_stored_wrapped_and_bound_to_their_names(tmp_path: Path) -> None:
    keys = keystore(tmp_path)
    events, reads = keys.purpose_key("events"), keys.purpose_key("read-models")
    alice, bob = keys.owner_keys(["alice", "bob"]).values()
    assert len({events, reads, alice, bob}) == 4
    keys.close()
    raw = (tmp_path / "keys.db").read_bytes()
    for key in (events, reads, alice, bob):
        assert key not in raw and base64.b64encode(key) not in raw  # never in the clear
    with sqlite3.connect(tmp_path / "keys.db") as db:  # a wrapped key moved to another name does not open
        [alice_wrapped] = db.execute("SELECT wrapped FROM owner_keys WHERE owner = 'alice'").fetchone()
        db.execute("UPDATE owner_keys SET wrapped = ? WHERE owner = 'bob'", (alice_wrapped,))
    reopened = keystore(tmp_path)
    assert reopened.owner_key("alice") == alice
    with pytest.raises(KeyStoreError):
        reopened.owner_key("bob")


def test_stored_events_are_sealed_with_their_owners_key_and_unreadable_once_it_is_erased(tmp_path: Path) -> None:
    keys = keystore(tmp_path)
    seal = mapper(keys)
    diary = Diary(text=MARKER)
    diary.close(reason="done")
    written, closed = [seal.to_stored_event(e) for e in diary.collect_events()]
    assert written.state.startswith(SEALED_FOR_OWNER) and MARKER.encode() not in written.state
    assert closed.state.startswith(SEALED_FOR_STORE)  # nothing personal: the store's key
    assert seal.to_domain_event(written).text == MARKER  # type: ignore[attr-defined]

    moved = StoredEvent(written.originator_id, written.originator_version + 5, written.topic, written.state)
    with pytest.raises(Exception):  # noqa: B017 - bound to its place: a sealed event moved does not open
        seal.to_domain_event(moved)

    keys.erase(str(diary.id))
    with pytest.raises(ErasedData):
        seal.to_domain_event(written)
    assert seal.to_domain_event(closed).reason == "done"  # type: ignore[attr-defined]
    assert keys.owner_keys([str(diary.id)]) == {}  # no new key is ever made for an erased owner
    assert keys.is_erased(str(diary.id))


def test_an_erased_key_is_nowhere_in_the_key_store_file(tmp_path: Path) -> None:
    keys = keystore(tmp_path)
    owner = str(uuid4())
    keys.owner_keys([owner, "someone-else"])
    with sqlite3.connect(tmp_path / "keys.db") as db:
        [wrapped] = db.execute("SELECT wrapped FROM owner_keys WHERE owner = ?", (owner,)).fetchone()
    keys.erase(owner)
    keys.close()
    leftovers = [p for p in tmp_path.iterdir() if wrapped.encode() in p.read_bytes()]
    assert leftovers == []  # overwritten in the file, and no journal or log beside it keeps it


def test_read_model_rows_are_sealed_and_marks_count_without_naming(tmp_path: Path) -> None:
    keys = keystore(tmp_path)
    views = ViewStore(StoreLocation("sqlite", sqlite_path=tmp_path / "views.db"), RowSealer(keys))
    rows = {
        ("progress", "u-1"): Row({"user_id": "u-1", "note": MARKER}, "owner-1", frozenset({"overloaded"})),
        ("progress", "u-2"): Row({"user_id": "u-2"}, None, frozenset()),
    }
    views.commit("progress", 1, rows)
    assert views.get("progress", "u-1") == {"user_id": "u-1", "note": MARKER}
    assert views.count_marked("overloaded") == 1
    views.commit("progress", 2, {("progress", "u-1"): Row({"user_id": "u-1"}, "owner-1", frozenset())})
    assert views.count_marked("overloaded") == 0
    views.close()
    assert MARKER.encode() not in (tmp_path / "views.db").read_bytes()
    keys.erase("owner-1")
    again = ViewStore(StoreLocation("sqlite", sqlite_path=tmp_path / "views.db"), RowSealer(keys))
    assert again.get("progress", "u-1") is None and again.get("progress", "u-2") == {"user_id": "u-2"}


def test_rotation_rewraps_every_key_and_old_data_still_reads(tmp_path: Path) -> None:
    keys = keystore(tmp_path)
    seal = mapper(keys)
    diary = Diary(text=MARKER)
    [stored] = [seal.to_stored_event(e) for e in diary.collect_events()]
    before = keys.purpose_key("events"), keys.owner_key(str(diary.id))
    assert keys.rotate(OTHER_MASTER) == 2
    keys.close()

    rotated = keystore(tmp_path, OTHER_MASTER)
    assert (rotated.purpose_key("events"), rotated.owner_key(str(diary.id))) == before  # the same data keys
    assert mapper(rotated).to_domain_event(stored).text == MARKER  # type: ignore[attr-defined]
    with pytest.raises(KeyStoreError):
        keystore(tmp_path, MASTER).purpose_key("events")  # the old master key opens nothing any more
