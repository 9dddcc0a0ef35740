"""How logs name a participant: a pseudonym keyed with the participant's own key, the same on every
line, different for every participant, and gone with the key at erasure."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from stepout_runtime.keystore import KeyStore
from stepout_runtime.pseudonyms import FIELD, LABEL, naming, pseudonym
from stepout_runtime.store import StoreLocation

MASTER = bytes(range(32))


def keystore(tmp_path: Path) -> KeyStore:
    return KeyStore(StoreLocation("sqlite", sqlite_path=tmp_path / "keys.db"), MASTER)


def test_a_pseudonym_is_16_hex_characters_of_an_hmac_under_the_participants_key() -> None:
    key = bytes(range(32))
    made = pseudonym(key)
    assert made == hmac.new(key, LABEL, hashlib.sha256).hexdigest()[:16]
    assert len(made) == 16 and int(made, 16) >= 0
    assert pseudonym(key) == made  # the same on every line
    assert pseudonym(bytes(range(1, 33))) != made  # another participant, another pseudonym


def test_a_participant_is_named_by_pseudonym_while_their_key_exists_and_by_nothing_after_erasure(
    tmp_path: Path,
) -> None:
    keys = keystore(tmp_path)
    try:
        assert naming(keys, "owner-never-seen") == {}  # no key yet: no identifier at all
        key = keys.owner_keys(["owner-a"])["owner-a"]
        named = naming(keys, "owner-a")
        assert named == {FIELD: pseudonym(key)}
        assert "owner-a" not in named[FIELD]
        keys.erase("owner-a")
        assert naming(keys, "owner-a") == {}  # nobody can make it again
    finally:
        keys.close()
