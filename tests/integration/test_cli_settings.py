"""A bad setting or rule-set file stops a service at start with one line naming it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def run(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STEPOUT_")}
    clean.update({"STEPOUT_DATA_DIR": str(tmp_path), "STEPOUT_NATS_URL": "nats://127.0.0.1:1", **env})
    return subprocess.run(
        [sys.executable, "-m", "stepout_cli.main", "run", "tracker"],
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("STEPOUT_STORE", "mysql"),
        ("STEPOUT_TRACKER_PORT", "99999"),
        ("STEPOUT_CIPHER_KEY", "not-base64!"),
        ("STEPOUT_NATS_URL", "http://example"),
        ("STEPOUT_LOG_FORMAT", "xml"),
        ("STEPOUT_RULESET", "/nonexistent/rules.json"),
    ],
)
def test_a_bad_setting_is_one_line_naming_it(tmp_path: Path, setting: str, value: str) -> None:
    done = run(tmp_path, **{setting: value})
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and setting in lines[0], done.stderr


def test_postgres_without_a_dsn_is_refused(tmp_path: Path) -> None:
    done = run(tmp_path, STEPOUT_STORE="postgres")
    assert done.returncode == 2 and "STEPOUT_POSTGRES_DSN" in done.stderr


def test_a_rule_set_file_with_a_bad_threshold_names_the_file_and_the_field(tmp_path: Path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text('{"version": "local-1", "high_distress_peak": 130}')
    done = run(tmp_path, STEPOUT_RULESET=str(rules))
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert str(rules) in line and "high_distress_peak" in line


def test_a_catalog_that_misses_a_level_is_refused_at_start(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.json"
    catalog.write_text(
        '{"version": "x", "challenges": [{"id": "money-01-a", "title": "Ask", "category": "money", '
        '"level": 1, "expected_suds": 10}]}'
    )
    done = run(tmp_path, STEPOUT_CATALOG=str(catalog))
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "catalog.json" in done.stderr


def test_a_production_start_refuses_to_run_without_a_master_key_it_was_given(tmp_path: Path) -> None:
    done = run(tmp_path, STEPOUT_ENVIRONMENT="production", STEPOUT_API_TOKENS="platform:0123456789abcdef0123")
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert "STEPOUT_CIPHER_KEY" in line and "production" in line
    assert not (tmp_path / "master.key").exists()  # none is made for it


def test_a_production_start_refuses_to_run_without_api_tokens(tmp_path: Path) -> None:
    key = "Y2hlY2stY2hlY2stY2hlY2stY2hlY2stY2hlY2s0MjA="
    done = run(tmp_path, STEPOUT_ENVIRONMENT="production", STEPOUT_CIPHER_KEY=key)
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert "STEPOUT_API_TOKENS" in line
