"""The console's accounts: scrypt hashes that match their password only, the `NAME:ROLE:COACH_ID:HASH`
entries of the settings (or a file), the development accounts and session secret made on first start,
and production refusing to start without either."""

from __future__ import annotations

import base64
import stat
from pathlib import Path
from typing import Any

import pytest

from stepout_console.accounts import (
    FIRST_START_FILE,
    Account,
    accounts_of,
    first_start_passwords,
    hash_password,
    parse_accounts,
    password_matches,
    session_secret,
)
from stepout_contract.settings import Settings, SettingsError

# Each scrypt call costs about 50 ms: one hash, made once, serves every entry below.
PASSWORD = "a-long-password-9f2"
HASH = hash_password(PASSWORD)
SECRET = "s" * 40
WHERE = "STEPOUT_CONSOLE_USERS"


def settings(tmp_path: Path, **fields: Any) -> Settings:
    """Settings on `tmp_path` with no console setting taken from the environment."""
    unset: dict[str, Any] = {
        "console_users": None,
        "console_users_file": None,
        "console_secret": None,
        "environment": "development",
    }
    return Settings(data_dir=tmp_path, **{**unset, **fields})


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def with_part(stored: str, index: int, part: str) -> str:
    parts = stored.split("$")
    parts[index] = part
    return "$".join(parts)


# Hashes ---------------------------------------------------------------------------------------------


def test_a_hash_is_scrypts_and_matches_its_password_only() -> None:
    scheme, n, r, p, salt, digest = HASH.split("$")
    assert (scheme, n, r, p) == ("scrypt", str(2**14), "8", "1")
    assert len(base64.b64decode(salt)) == 16 and len(base64.b64decode(digest)) == 32
    assert PASSWORD not in HASH
    assert password_matches(PASSWORD, HASH)
    assert not password_matches(PASSWORD + "x", HASH)


def test_two_hashes_of_one_password_differ_and_both_match() -> None:
    again = hash_password(PASSWORD)
    assert again != HASH
    assert again.split("$")[4] != HASH.split("$")[4]  # a salt of its own
    assert password_matches(PASSWORD, again)


def test_a_tampered_hash_matches_nothing() -> None:
    digest = base64.b64decode(HASH.split("$")[5])
    flipped = base64.b64encode(bytes([digest[0] ^ 1]) + digest[1:]).decode()
    assert not password_matches(PASSWORD, with_part(HASH, 5, flipped))
    assert not password_matches(PASSWORD, with_part(HASH, 4, base64.b64encode(b"another salt 16b").decode()))


@pytest.mark.parametrize(
    "stored",
    [
        "",
        PASSWORD,  # a password kept as it is
        "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW",  # bcrypt's
        "pbkdf2$16384$8$1$c2FsdA==$ZGlnZXN0",
        "scrypt$16384$8$1$c2FsdA==",  # a part short
        "scrypt$16384$8$1$c2FsdA==$ZGlnZXN0$more",  # a part over
        with_part(HASH, 1, "many"),  # N not a number
        with_part(HASH, 1, "1000"),  # N not a power of 2
        with_part(HASH, 1, str(2**24)),  # N beyond scrypt's memory limit
        with_part(HASH, 4, "abc"),  # a salt that is not base64
    ],
)
def test_a_text_not_made_by_hash_password_matches_nothing(stored: str) -> None:
    assert password_matches(PASSWORD, stored) is False


# Entries --------------------------------------------------------------------------------------------


def test_entries_are_separated_by_commas_or_lines_and_hash_signs_start_comments() -> None:
    text = f"""
        # the coaches
        ann:coach:coach-1:{HASH}, bob.b@example.org:coach:coach-2:{HASH}  # two on one line

        zoe_1:auditor::{HASH},
    """
    assert parse_accounts(text, WHERE) == {
        "ann": Account("ann", "coach", "coach-1", HASH),
        "bob.b@example.org": Account("bob.b@example.org", "coach", "coach-2", HASH),
        "zoe_1": Account("zoe_1", "auditor", None, HASH),
    }


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ("bob:coach:coach-2", "entry 2 is not NAME:ROLE:COACH_ID:HASH"),
        (f"bob:coach:coach-2:{HASH}:more", "entry 2 is not NAME:ROLE:COACH_ID:HASH"),
        (f"bob smith:coach:coach-2:{HASH}", "entry 2: a name is 1 to 64 of"),
        (f":coach:coach-2:{HASH}", "entry 2: a name is 1 to 64 of"),
        (f"{'b' * 65}:coach:coach-2:{HASH}", "entry 2: a name is 1 to 64 of"),
        (f"bob:admin:coach-2:{HASH}", "entry 2: the role is coach or auditor, not 'admin'"),
        (f"bob:coach::{HASH}", "entry 2: a coach names a COACH_ID, an auditor none"),
        (f"bob:auditor:coach-2:{HASH}", "entry 2: a coach names a COACH_ID, an auditor none"),
        ("bob:coach:coach-2:a-password", "entry 2: HASH is made by `stepout console hash-password`"),
        ("bob:coach:coach-2:scrypt$16384$8$1$c2FsdA==", "entry 2: HASH is made by"),
        ("bob:coach:coach-2:bcrypt$16384$8$1$c2FsdA==$ZGlnZXN0", "entry 2: HASH is made by"),
    ],
)
def test_an_entry_that_is_not_an_account_is_refused_by_place_and_number(entry: str, says: str) -> None:
    with pytest.raises(SettingsError) as refused:
        parse_accounts(f"ann:coach:coach-1:{HASH}\n{entry}\nzoe:auditor::{HASH}", "THE_PLACE")
    assert str(refused.value).startswith(f"THE_PLACE: {says}")


def test_entries_are_numbered_without_comments_and_blank_lines() -> None:
    text = f"# header, with a comma\n\n  ann:coach:coach-1:{HASH} ,, # note\n\n# more\nzoe:auditor::{HASH}\nbob:coach"
    with pytest.raises(SettingsError, match=r"^THE_PLACE: entry 3 is not"):
        parse_accounts(text, "THE_PLACE")


def test_a_name_appearing_twice_is_refused() -> None:
    with pytest.raises(SettingsError, match=r"^THE_PLACE: entry 3: account 'ann' appears twice$"):
        parse_accounts(f"ann:coach:coach-1:{HASH},zoe:auditor::{HASH}\nann:auditor::{HASH}", "THE_PLACE")


@pytest.mark.parametrize("text", ["", "\n\n", " , ,\n,", "# nobody yet\n  # still nobody"])
def test_no_account_at_all_is_refused(text: str) -> None:
    with pytest.raises(SettingsError, match=r"^THE_PLACE: no account$"):
        parse_accounts(text, "THE_PLACE")


# Where the accounts come from -------------------------------------------------------------------------


def test_accounts_are_read_from_the_setting(tmp_path: Path) -> None:
    given = settings(tmp_path, console_users=f"ann:coach:coach-1:{HASH}", environment="production")
    assert accounts_of(given) == {"ann": Account("ann", "coach", "coach-1", HASH)}
    assert not (tmp_path / FIRST_START_FILE).exists()
    with pytest.raises(SettingsError, match=r"^STEPOUT_CONSOLE_USERS: entry 1 is not"):
        accounts_of(settings(tmp_path, console_users="ann:coach"))


def test_accounts_are_read_from_the_file(tmp_path: Path) -> None:
    users = tmp_path / "users"
    users.write_text(f"# the console's\nann:coach:coach-1:{HASH}\nzoe:auditor::{HASH}\n")
    found = accounts_of(settings(tmp_path, console_users_file=users, environment="production"))
    assert found == {"ann": Account("ann", "coach", "coach-1", HASH), "zoe": Account("zoe", "auditor", None, HASH)}
    assert not (tmp_path / FIRST_START_FILE).exists()
    users.write_text("zoe:auditor:coach-1:" + HASH)
    with pytest.raises(SettingsError, match=r"^STEPOUT_CONSOLE_USERS_FILE: entry 1: a coach names"):
        accounts_of(settings(tmp_path, console_users_file=users))


def test_development_without_accounts_makes_two_once_readable_by_their_owner_only(tmp_path: Path) -> None:
    given = settings(tmp_path / "data")
    found = accounts_of(given)
    kept = tmp_path / "data" / FIRST_START_FILE
    assert mode_of(kept) == 0o600
    text = kept.read_text()
    passwords = first_start_passwords(given)
    assert set(found) == set(passwords) == {"sim-coach", "auditor"}
    assert len(set(passwords.values())) == 2 and all(len(p) >= 16 for p in passwords.values())
    assert (found["sim-coach"].role, found["sim-coach"].coach_id) == ("coach", "sim-coach")
    assert (found["auditor"].role, found["auditor"].coach_id) == ("auditor", None)
    for name, account in found.items():
        assert account.name == name and password_matches(passwords[name], account.password_hash)
        assert passwords[name] not in account.password_hash

    again = accounts_of(given)  # a second start: the same passwords, from the same file
    assert kept.read_text() == text and first_start_passwords(given) == passwords
    assert password_matches(passwords["auditor"], again["auditor"].password_hash)
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [FIRST_START_FILE]  # no draft left


def test_production_without_accounts_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"^STEPOUT_CONSOLE_USERS: required when STEPOUT_ENVIRONMENT=production"):
        accounts_of(settings(tmp_path, environment="production", console_users=""))
    assert not (tmp_path / FIRST_START_FILE).exists()


# The session secret ---------------------------------------------------------------------------------


def test_the_session_secret_is_made_once_and_kept(tmp_path: Path) -> None:
    given = settings(tmp_path / "data")
    secret = session_secret(given)
    assert len(secret) >= 32
    assert mode_of(tmp_path / "data" / "console-secret") == 0o600
    assert session_secret(given) == secret == session_secret(settings(tmp_path / "data"))
    assert session_secret(settings(tmp_path / "elsewhere")) != secret


def test_a_session_secret_given_is_used_as_it_is(tmp_path: Path) -> None:
    assert session_secret(settings(tmp_path, console_secret=SECRET)) == SECRET
    assert session_secret(settings(tmp_path, console_secret=SECRET, environment="production")) == SECRET
    assert not (tmp_path / "console-secret").exists()


def test_production_without_a_session_secret_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"^STEPOUT_CONSOLE_SECRET: required when STEPOUT_ENVIRONMENT=production"):
        session_secret(settings(tmp_path, environment="production"))
    assert not (tmp_path / "console-secret").exists()
