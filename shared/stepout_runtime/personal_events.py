"""Stored events sealed per participant: the one adapter between eventsourcing's mapper and the keys.

Every stored event (and snapshot) of a participant's aggregate is sealed (AES-GCM) with that
participant's own key in the key store, bound to its position (aggregate id, version, topic).
Destroying the key (erasure) makes all of them unreadable for good while the rows, their
topics and the hash chains over their bytes stay. The few events that hold nothing personal
(the record of an erasure, the snapshot taken at it: their class says `personal = False`) are
sealed with the store's `events` key instead, so an erased participant still loads.

Events written by the previous release carry no seal: they are read as they were written
(plain JSON, or encrypted with STEPOUT_CIPHER_KEY by the library's own cipher).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Cipher, Mapper, StoredEvent, Transcoder

from .keystore import KeyStore
from .sealing import SealBroken, open_bytes, seal_bytes

# What a sealed state starts with: which key sealed it.
SEALED_FOR_OWNER = b"\x00sp1"
SEALED_FOR_STORE = b"\x00ss1"


class ErasedData(Exception):
    """A stored event sealed with a participant key that was destroyed: its content is gone for good."""

    def __init__(self, stored: StoredEvent) -> None:
        super().__init__(f"event {stored.originator_id} version {stored.originator_version} belongs to an erasure")
        self.originator_id = stored.originator_id
        self.originator_version = stored.originator_version
        self.topic = stored.topic


class PersonalDataAfterErasure(RuntimeError):
    """A personal event for a participant whose key was destroyed: a bug, never stored."""


def is_personal(domain_event: Any) -> bool:
    return bool(getattr(type(domain_event), "personal", True))


def _place(stored: StoredEvent) -> bytes:
    return f"{stored.originator_id}/{stored.originator_version}/{stored.topic}".encode()


class PersonalMapper(Mapper[UUID]):
    """The library's mapper (topics, transcoding, upcasting) with sealing around its bytes."""

    def __init__(self, transcoder: Transcoder, keys: KeyStore, legacy_cipher: Cipher | None = None) -> None:
        super().__init__(transcoder)
        self.keys = keys
        self.store_key = keys.purpose_key("events")
        self.legacy_cipher = legacy_cipher

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        stored = super().to_stored_event(domain_event)
        return replace(stored, state=self.sealed(stored, is_personal(domain_event)))

    def sealed(self, stored: StoredEvent, personal: bool) -> bytes:
        """The library's bytes of `stored` sealed for its place: with its owner's key when `personal`."""
        if not personal:
            return SEALED_FOR_STORE + seal_bytes(self.store_key, stored.state, _place(stored))
        owner = str(stored.originator_id)
        key = self.keys.owner_key(owner) or self.keys.owner_keys([owner]).get(owner)
        if key is None:
            raise PersonalDataAfterErasure(f"{stored.topic} for erased aggregate {owner}")
        return SEALED_FOR_OWNER + seal_bytes(key, stored.state, _place(stored))

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        return super().to_domain_event(replace(stored_event, state=self.opened(stored_event)))

    def opened(self, stored: StoredEvent) -> bytes:
        """The stored event's bytes as the library wrote them; ErasedData once its owner's key is gone."""
        state = stored.state
        head, body = state[:4], state[4:]
        try:
            if head == SEALED_FOR_OWNER:
                key = self.keys.owner_key(str(stored.originator_id))
                if key is None:
                    raise ErasedData(stored)
                return open_bytes(key, body, _place(stored))
            if head == SEALED_FOR_STORE:
                return open_bytes(self.store_key, body, _place(stored))
        except SealBroken:
            pass  # an unsealed event of the previous release that happens to start alike
        if self.legacy_cipher is not None and not state.startswith(b"{"):
            return self.legacy_cipher.decrypt(state)
        return state
