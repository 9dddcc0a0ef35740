"""AES-GCM sealing: every encrypted value stepout keeps is sealed here, bound to where it belongs.

A sealed value is nonce (12 bytes) + ciphertext + tag (16 bytes); the associated data names the
value's place (a participant, a stored event's position, a read-model row), so a sealed value
moved elsewhere no longer opens.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12
TAG_BYTES = 16


class SealBroken(ValueError):
    """A sealed value that does not open with this key and place (wrong key, moved, or changed)."""


def seal_bytes(key: bytes, plaintext: bytes, place: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, place)  # ciphertext + tag


def open_bytes(key: bytes, sealed: bytes, place: bytes) -> bytes:
    if len(sealed) < NONCE_BYTES + TAG_BYTES:
        raise SealBroken("too short to be sealed")
    try:
        return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], place)
    except InvalidTag:
        raise SealBroken("does not open with this key here") from None


def seal(key: bytes, text: str, context: str) -> str:
    """`text` sealed for `context` (the participant), as base64 text."""
    return base64.b64encode(seal_bytes(key, text.encode("utf-8"), context.encode())).decode()


def unseal(key: bytes, token: str, context: str) -> str:
    return open_bytes(key, base64.b64decode(token), context.encode()).decode("utf-8")
