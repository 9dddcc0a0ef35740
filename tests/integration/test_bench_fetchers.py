"""The fetcher comparison of `bench/fetchers.py` runs end to end on a real nats-server, at a tiny size.

Each way must drain every preloaded message with nothing left unacked (the bench raises otherwise)
and hand every lone message over; the numbers themselves are `make bench`'s to judge. The fetch
timeout is short so that the way which waits for it (FastStream's batch subscriber) keeps this quick,
and long enough that waiting for it cannot be mistaken for a slow hand-over. The preload is a whole
number of batches: FastStream's subscriber may drop a partial batch until its redelivery (see
bench/fetchers.py), which would only make the drain slow.
"""

from __future__ import annotations

from pathlib import Path

from bench.fetchers import WAYS, rows, run_fetchers

TIMEOUT_S = 0.5


async def test_every_way_drains_and_hands_over_lone_messages_or_says_why_not(tmp_path: Path) -> None:
    result = await run_fetchers(tmp_path, 1_000, lone=4, rounds=1, timeout=TIMEOUT_S)

    measured = {name: r for name, r in result.items() if name in WAYS and "not_measured" not in r}
    assert {"nats_py_fetch", "public_prompt_fetch", "faststream_pull_sub"} <= measured.keys()
    for r in measured.values():
        assert float(r["drain_msgs_per_s"]) > 0
        assert 0 < float(r["lone_p50_ms"]) <= float(r["lone_p99_ms"]) <= float(r["lone_max_ms"])
        assert 0 <= float(r["lone_redelivered"]) <= 4
    assert "nats-core" in str(result["nats_jetstream"]["not_measured"])

    # FastStream's batch subscriber hands a partial batch over when its timeout expires.
    assert float(measured["faststream_pull_sub"]["lone_p50_ms"]) > TIMEOUT_S * 1000 / 2
    assert float(measured["public_prompt_fetch"]["lone_p50_ms"]) < TIMEOUT_S * 1000 / 2

    table = rows(result)
    assert [measure for measure, _, _ in table] == [f"pull: {label}" for label in WAYS.values()] + ["pull: setup"]
    assert all(target == "" for _, _, target in table)
