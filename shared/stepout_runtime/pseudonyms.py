"""How a log line names a participant: by a keyed pseudonym, never by the user id.

The pseudonym is HMAC-SHA256 of a fixed label under the participant's own key in the service (the
key store's owner key, the one erasure destroys), cut to 16 hex characters: one per participant and
service, the same on every line, so that an operator follows a participant through the logs without
learning who they are. Only that key links it to the user id; once erasure destroys the key, nothing
does, and the pseudonyms already written name nobody. A participant with no key (not seen yet, or
erased) is logged without any identifier.
"""

from __future__ import annotations

import hashlib
import hmac

from .keystore import KeyStore

FIELD = "participant"
LABEL = b"stepout/log-pseudonym/v1"
LENGTH = 16


def pseudonym(owner_key: bytes) -> str:
    """The pseudonym of the participant whose key is `owner_key`."""
    return hmac.new(owner_key, LABEL, hashlib.sha256).hexdigest()[:LENGTH]


def naming(keys: KeyStore, owner: str) -> dict[str, str]:
    """The log fields that name the participant `owner` (the owner of their key in `keys`): their
    pseudonym while their key exists, none otherwise."""
    key = keys.owner_key(owner)
    return {} if key is None else {FIELD: pseudonym(key)}
