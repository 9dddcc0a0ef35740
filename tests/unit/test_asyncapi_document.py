"""The committed AsyncAPI document is the one the code generates (regenerate with `make asyncapi`), and
it names every subject, reply, dead-letter reason and header the services use."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from stepout_contract import dead_letters
from stepout_contract.asyncapi import document
from stepout_contract.inputs import INPUT_TYPES
from stepout_contract.outputs import OUTPUT_TYPES
from stepout_contract.queries import HISTORY_LIMIT_DEFAULT, HISTORY_LIMIT_MAX, QUERIES, HistoryQuery
from stepout_runtime.history_pages import PAGE_DEFAULT, PAGE_MAX
from stepout_runtime.inbound import MAX_MESSAGE_BYTES

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "docs" / "asyncapi.json"
CONTRACT_MODULES = {ROOT / "shared" / "stepout_contract" / "dead_letters.py"}


def source_files() -> list[Path]:
    """The services' and the shared packages' code, where the wire is written."""
    return [
        p for top in ("shared", "services") for p in sorted((ROOT / top).rglob("*.py")) if p not in CONTRACT_MODULES
    ]


def resolve(doc: dict[str, Any], ref: str) -> Any:
    found: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        found = found[part]
    return found


def message_of(doc: dict[str, Any], channel: str) -> dict[str, Any]:
    [ref] = doc["channels"][channel]["messages"].values()
    message: dict[str, Any] = resolve(doc, ref["$ref"])
    return message


def test_the_committed_asyncapi_document_is_not_stale() -> None:
    generated = json.loads(json.dumps(document(), sort_keys=True))
    assert json.loads(COMMITTED.read_text()) == generated, "docs/asyncapi.json is stale: run `make asyncapi`"


def test_every_contract_subject_is_documented() -> None:
    channels = document()["channels"]
    for family, name, _ in [*INPUT_TYPES.values(), *OUTPUT_TYPES.values()]:
        assert f"{family}.{name}" in channels
    assert {f"query.{query.name}" for query in QUERIES} <= set(channels)
    assert {"query.progress", "query.plan", "query.history", "query.history-planner"} <= set(channels)
    assert channels["deadletter.tracker"]["address"] == "stepout.deadletter.tracker"
    assert channels["deadletter.planner"]["address"] == "stepout.deadletter.planner"


def test_the_document_follows_the_prefix() -> None:
    addresses = [c["address"] for c in document("acme_1")["channels"].values() if c["address"] is not None]
    assert addresses and all(address.startswith("acme_1.") for address in addresses)


def test_every_query_replies_with_its_model_or_the_error_reply() -> None:
    doc = document()
    for query in QUERIES:
        reply = doc["operations"][f"query.{query.name}"]["reply"]
        [message_ref] = reply["messages"]
        payload = resolve(doc, resolve(doc, message_ref["$ref"])["$ref"])["payload"]
        assert payload == {
            "oneOf": [
                {"$ref": f"#/components/schemas/{query.reply.__name__}"},
                {"$ref": "#/components/schemas/ErrorReply"},
            ]
        }
        assert resolve(doc, reply["channel"]["$ref"])["address"] is None  # the request's reply subject
    error = doc["components"]["schemas"]["ErrorDetail"]["properties"]["code"]
    assert set(error["enum"]) == {"not_found", "invalid_request"}


def test_dead_letters_document_their_headers_and_every_reason() -> None:
    doc = document()
    for service in dead_letters.SERVICES:
        headers = resolve(doc, message_of(doc, f"deadletter.{service}")["headers"]["$ref"])
        assert headers["properties"][dead_letters.REASON]["enum"] == list(dead_letters.REASON_CODES)
        assert set(headers["required"]) == {
            dead_letters.MSG_ID,
            dead_letters.REASON,
            dead_letters.DETAIL,
            dead_letters.ORIGINAL_SUBJECT,
        }
        assert {dead_letters.BODY_SHA256, dead_letters.BODY_SIZE} <= set(headers["properties"])
    assert all(reason.meaning for reason in dead_letters.REASONS)
    assert len(set(dead_letters.REASON_CODES)) == len(dead_letters.REASONS)


def test_every_dead_letter_reason_the_code_gives_is_documented() -> None:
    given = {
        reason
        for path in source_files()
        for reason in re.findall(r"\bDeadLetter\(\s*(?:reason\s*=\s*)?[\"']([^\"']+)[\"']", path.read_text())
    }
    assert {"invalid_json", "too_large", "retries_exhausted", "not_enrolled"} <= given  # the scan finds them
    assert given - set(dead_letters.REASON_CODES) == set(), "add the new reason to stepout_contract.dead_letters"


def test_every_stepout_header_the_code_writes_is_documented() -> None:
    written = {
        name for path in source_files() for name in re.findall(r"[\"'](Stepout-[A-Za-z0-9-]+)[\"']", path.read_text())
    }
    documented = {
        dead_letters.REASON,
        dead_letters.DETAIL,
        dead_letters.ORIGINAL_SUBJECT,
        dead_letters.BODY_SHA256,
        dead_letters.BODY_SIZE,
    }
    assert dead_letters.REASON in written
    assert written - documented == set()


def test_every_query_the_services_answer_is_documented() -> None:
    answered = set()
    for main in sorted((ROOT / "services").glob("*/stepout_*/main.py")):
        for block in re.findall(r"\bqueries=\{([^}]*)\}", main.read_text()):
            answered |= set(re.findall(r"[\"']([\w-]+)[\"']\s*:", block))
    assert {"progress", "plan", "history", "history-planner"} <= answered
    assert answered == {query.name for query in QUERIES}


def test_documented_bounds_are_the_ones_the_services_apply() -> None:
    assert (HISTORY_LIMIT_DEFAULT, HISTORY_LIMIT_MAX) == (PAGE_DEFAULT, PAGE_MAX)
    assert HistoryQuery.model_fields["limit"].default == PAGE_DEFAULT
    assert dead_letters.KEPT_BODY_MAX_BYTES == MAX_MESSAGE_BYTES
