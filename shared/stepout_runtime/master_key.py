"""The master key, and the keys derived from it for each purpose.

The master key is `STEPOUT_CIPHER_KEY`; a development start without one makes one on first
start (`STEPOUT_DATA_DIR/master.key`, readable by its owner only), and a production start
(`STEPOUT_ENVIRONMENT=production`) refuses to run without one it was given. The master key
encrypts nothing itself: each purpose has its own key-encryption key derived from it with HKDF
(SHA-256), and those only wrap the data keys kept in the key store (`keystore`). So rotating the
master key re-wraps a few keys and rewrites no data.
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

from Crypto.Hash import SHA256
from Crypto.Protocol.KDF import HKDF

from stepout_contract.settings import Settings, SettingsError

from .first_start import made_on_first_start

MASTER_KEY_FILE = "master.key"
_SALT = b"stepout/master-key/v1"


def master_key_file(settings: Settings) -> Path:
    return settings.data_dir / MASTER_KEY_FILE


def decode_master_key(text: str, origin: str) -> bytes:
    """A master key as base64 of 16, 24 or 32 bytes; SettingsError naming `origin` otherwise."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SettingsError(f"{origin}: not base64") from None
    if len(raw) not in (16, 24, 32):
        raise SettingsError(f"{origin}: must decode to 16, 24 or 32 bytes")
    return raw


def new_master_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def master_key(settings: Settings) -> bytes:
    """The master key in force: STEPOUT_CIPHER_KEY, or (development only) the data directory's own."""
    if settings.cipher_key:
        return decode_master_key(settings.cipher_key, "STEPOUT_CIPHER_KEY")
    if settings.environment == "production":
        raise SettingsError("STEPOUT_CIPHER_KEY: required when STEPOUT_ENVIRONMENT=production")
    path = master_key_file(settings)
    text = made_on_first_start(path, new_master_key, "a master key (no STEPOUT_CIPHER_KEY set)")
    return decode_master_key(text, str(path))


def derive(master: bytes, purpose: str) -> bytes:
    """The 32-byte key of one purpose, derived from the master key (HKDF-SHA256)."""
    key = HKDF(master, 32, _SALT, SHA256, context=f"stepout/{purpose}".encode())
    assert isinstance(key, bytes)
    return key


def fingerprint(master: bytes) -> str:
    """A short, non-secret name of a master key (which key wrapped what)."""
    return derive(master, "fingerprint")[:6].hex()
