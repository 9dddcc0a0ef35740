"""The committed AsyncAPI document is the one the code generates (regenerate with `make asyncapi`)."""

from __future__ import annotations

import json
from pathlib import Path

from stepout_contract.asyncapi import document
from stepout_contract.inputs import INPUT_TYPES
from stepout_contract.outputs import OUTPUT_TYPES

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.json"


def test_the_committed_asyncapi_document_is_not_stale() -> None:
    generated = json.loads(json.dumps(document(), sort_keys=True))
    assert json.loads(COMMITTED.read_text()) == generated, "docs/asyncapi.json is stale: run `make asyncapi`"


def test_every_contract_subject_is_documented() -> None:
    channels = document()["channels"]
    for family, name, _ in [*INPUT_TYPES.values(), *OUTPUT_TYPES.values()]:
        assert f"{family}.{name}" in channels
    assert {"query.progress", "query.plan", "query.history"} <= set(channels)
