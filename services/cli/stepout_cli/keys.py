"""`stepout keys rotate [--new-key-file FILE]`: every key of the key store re-wrapped under a new
master key; no event, row or message is rewritten, and everything stored before still reads.

Stop the services first: a running service still holds the old master key and would wrap a new
participant's key with it. With STEPOUT_CIPHER_KEY set, the new key comes from FILE (base64 of
16, 24 or 32 bytes) and the operator sets STEPOUT_CIPHER_KEY to it afterwards; without it (a
development data directory), a new key is made, or taken from FILE, and replaces `master.key`.
The key itself is never printed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from stepout_contract.settings import Settings, SettingsError
from stepout_runtime.keystore import KeyStore, KeyStoreError, keystore_location
from stepout_runtime.master_key import decode_master_key, fingerprint, master_key, master_key_file, new_master_key


def rotate(settings: Settings, new_key_file: Path | None) -> int:
    if new_key_file is None and settings.cipher_key:
        print("stepout: --new-key-file is required when STEPOUT_CIPHER_KEY is set", file=sys.stderr)
        return 2
    try:
        current = master_key(settings)
        text = new_key_file.read_text() if new_key_file is not None else new_master_key()
        new = decode_master_key(text, str(new_key_file) if new_key_file else "the new key")
    except OSError as exc:
        print(f"stepout: cannot read {new_key_file}: {exc.strerror}", file=sys.stderr)
        return 2
    except SettingsError as exc:
        print(f"stepout: {exc}", file=sys.stderr)
        return 2
    if new == current:
        print("stepout: the new master key is the one in force", file=sys.stderr)
        return 2
    own_file = None if settings.cipher_key else master_key_file(settings)
    pending = None
    if own_file is not None:
        # The new key is on disk before any key is re-wrapped under it, and takes the old one's place after.
        pending = own_file.with_name(own_file.name + ".new")
        fd = os.open(pending, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(text.strip() + "\n")
    where = keystore_location(settings)
    keys = KeyStore(where, current)
    try:
        count = keys.rotate(new)
    except KeyStoreError as exc:
        if pending is not None:
            pending.unlink(missing_ok=True)
        print(f"stepout: {exc}; nothing was re-wrapped", file=sys.stderr)
        return 1
    finally:
        keys.close()
    if own_file is not None and pending is not None:
        os.replace(pending, own_file)
        then = f"{own_file} now holds it"
    else:
        then = f"set STEPOUT_CIPHER_KEY to the content of {new_key_file} before starting the services"
    print(
        f"re-wrapped {count} keys under the new master key {fingerprint(new)} (was {fingerprint(current)}); "
        f"{then}. Destroy every copy of the old master key: backups of the key store wrapped under it "
        "then no longer open."
    )
    return 0
