"""The benchmark's store of many participants is a store the tracker reads as its own.

`bench/population.py` writes copies of one participant instead of deciding every attempt again; a
copy that cannot be opened (as when rows were copied under new ids) would make the rebuild and
memory rows of `make bench` measure key-store misses. Each copy must load with its own key, decide
on, verify its hash chain, rebuild into the read model, and be erased alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench.population import MARK, START, mark_of, populate, template_id, user_of

from stepout_contract.inputs import AttemptLogged
from stepout_contract.settings import Settings
from stepout_runtime.chain import verify_chain
from stepout_runtime.personal_events import ErasedData
from stepout_tracker.application import attempt_digest, attempt_ref, owner_of
from stepout_tracker.main import build
from stepout_tracker.participant import participant_id

ATTEMPTS = 5


def test_each_copy_is_a_participant_of_its_own(tmp_path: Path) -> None:
    stored = populate(tmp_path, "pop", participants=3, attempts_each=ATTEMPTS)
    assert stored["participants"] == 3 and stored["events"] >= 3 * (ATTEMPTS + 1)

    _, app = build(Settings(data_dir=tmp_path, store="sqlite", subject_prefix="pop"))
    try:
        for copy in range(3):
            key = participant_id(user_of(copy))
            participant = app.repository.get(key)
            assert participant.user_id == user_of(copy)
            assert participant.state.history.position == ATTEMPTS
            assert verify_chain(app.recorder, key) is None
        ids = {
            a.attempt_id
            for copy in range(3)
            for a in app.repository.get(participant_id(user_of(copy))).state.history.recent
        }
        assert len(ids) == 3 * ATTEMPTS, "each copy's attempts have ids of their own"

        # The attempt index holds each copy's attempts as the tracker would have indexed them.
        said = AttemptLogged.model_validate_json(
            json.dumps(
                {
                    "attempt_id": template_id(0, 2).replace(MARK, mark_of(1)),
                    "user_id": user_of(1),
                    "assignment_id": None,
                    "challenge_id": "self-chosen-bench",
                    "level": 1,
                    "outcome": "accepted",
                    "suds_before": 20,
                    "suds_peak": 30,
                    "suds_after": 10,
                    "occurred_at": START.isoformat(),
                    "note": "what happened at attempt 0",
                }
            )
        )
        key = app.keys.owner_key(owner_of(user_of(1)))
        assert key is not None
        indexed = (owner_of(user_of(1)), attempt_ref(key, said.attempt_id))
        assert app.known_attempts([indexed]) == {indexed: attempt_digest(key, said)}

        assert app.upgrade_read_models() is False, "the store's read model is of this version"
        app.views.reset(app.projection, app.projection_views, app.projection_version)
        app.project()
        for copy in range(3):
            view = app.views.get("progress", user_of(copy))
            assert view is not None and view["position"] == ATTEMPTS, "the rebuild read every copy's events"

        app.keys.erase(owner_of(user_of(1)))
        first = app.recorder.select_events(participant_id(user_of(1)), limit=1)[0]
        with pytest.raises(ErasedData):
            app.mapper.to_domain_event(first)
        assert app.repository.get(participant_id(user_of(2))).state.history.position == ATTEMPTS
    finally:
        app.close()
