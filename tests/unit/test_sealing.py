"""Sealed values keep their format (nonce + ciphertext + tag, AES-GCM with the place as associated
data): what was sealed before the sealing moved to the `cryptography` package still opens, and
what is sealed now opens with any AES-GCM implementation."""

from __future__ import annotations

import os

import pytest
from Crypto.Cipher import AES

from stepout_runtime.sealing import NONCE_BYTES, TAG_BYTES, SealBroken, open_bytes, seal, seal_bytes, unseal

PLACE = b"participant u-1, event 7"


@pytest.mark.parametrize("key_bytes", [16, 24, 32])
def test_a_value_sealed_by_pycryptodome_opens_and_the_other_way_round(key_bytes: int) -> None:
    key, plaintext = os.urandom(key_bytes), os.urandom(300)
    nonce = os.urandom(NONCE_BYTES)
    cipher = AES.new(key, AES.MODE_GCM, nonce=nonce)
    cipher.update(PLACE)
    ciphertext, tag = cipher.encrypt_and_digest(plaintext)
    assert open_bytes(key, nonce + ciphertext + tag, PLACE) == plaintext

    sealed = seal_bytes(key, plaintext, PLACE)
    assert len(sealed) == NONCE_BYTES + len(plaintext) + TAG_BYTES
    cipher = AES.new(key, AES.MODE_GCM, nonce=sealed[:NONCE_BYTES])
    cipher.update(PLACE)
    assert cipher.decrypt_and_verify(sealed[NONCE_BYTES:-TAG_BYTES], sealed[-TAG_BYTES:]) == plaintext


def test_a_sealed_value_opens_only_with_its_key_in_its_place_unchanged() -> None:
    key = os.urandom(32)
    sealed = seal_bytes(key, b"the barista smirked", PLACE)
    with pytest.raises(SealBroken):
        open_bytes(os.urandom(32), sealed, PLACE)
    with pytest.raises(SealBroken):
        open_bytes(key, sealed, b"participant u-2, event 7")
    changed = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(SealBroken):
        open_bytes(key, changed, PLACE)
    with pytest.raises(SealBroken):
        open_bytes(key, sealed[: NONCE_BYTES + TAG_BYTES - 1], PLACE)
    assert unseal(key, seal(key, "a note ✓", "u-1"), "u-1") == "a note ✓"
