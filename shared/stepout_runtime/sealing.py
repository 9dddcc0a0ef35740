"""AES-GCM sealing: every encrypted value stepout keeps is sealed here, bound to where it belongs.

A sealed value is nonce (12 bytes) + ciphertext + tag (16 bytes); the associated data names the
value's place (a participant, a stored event's position, a read-model row), so a sealed value
moved elsewhere no longer opens.
"""

from __future__ import annotations

import base64
import os

from Crypto.Cipher import AES

NONCE_BYTES = 12
TAG_BYTES = 16


class SealBroken(ValueError):
    """A sealed value that does not open with this key and place (wrong key, moved, or changed)."""


def seal_bytes(key: bytes, plaintext: bytes, place: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    cipher = AES.new(key, AES.MODE_GCM, nonce=nonce)
    cipher.update(place)
    sealed, tag = cipher.encrypt_and_digest(plaintext)
    return nonce + sealed + tag


def open_bytes(key: bytes, sealed: bytes, place: bytes) -> bytes:
    if len(sealed) < NONCE_BYTES + TAG_BYTES:
        raise SealBroken("too short to be sealed")
    cipher = AES.new(key, AES.MODE_GCM, nonce=sealed[:NONCE_BYTES])
    cipher.update(place)
    try:
        return cipher.decrypt_and_verify(sealed[NONCE_BYTES:-TAG_BYTES], sealed[-TAG_BYTES:])
    except ValueError:
        raise SealBroken("does not open with this key here") from None


def seal(key: bytes, text: str, context: str) -> str:
    """`text` sealed for `context` (the participant), as base64 text."""
    return base64.b64encode(seal_bytes(key, text.encode("utf-8"), context.encode())).decode()


def unseal(key: bytes, token: str, context: str) -> str:
    return open_bytes(key, base64.b64decode(token), context.encode()).decode("utf-8")
