"""The end-to-end and scaling benchmarks count what they time.

`bench/endtoend.py` times attempts until one `challenge.assigned` per attempt is stored, and
`bench/scaling.py` times trackers sharing partitions until every partition is drained; a run that
stopped its clock on the wrong count would time something else. Each runs here at a tiny size
(each starts its own nats-server); the times are not checked, only that everything arrived.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from bench.endtoend import run_end_to_end
from bench.scaling import PARTITIONS, run_trackers

ATTEMPTS = 200
PARTICIPANTS = 20


async def test_end_to_end_bench_sees_one_assignment_per_attempt(tmp_path: Path) -> None:
    result = await run_end_to_end(tmp_path, ATTEMPTS, participants=PARTICIPANTS)

    assert result["attempts"] == ATTEMPTS
    assert result["assigned"] == ATTEMPTS, "exactly one challenge.assigned for each attempt, none more"
    assert result["attempts_per_s"] > 0 and result["assigned_per_s"] > 0 and result["baseline_msgs_per_s"] > 0


@pytest.mark.postgres
@pytest.mark.parametrize("trackers", [1, 2])
async def test_scaling_bench_drains_every_partition_with_each_tracker_in_its_share(
    tmp_path: Path, postgres_dsn: str, trackers: int
) -> None:
    result = await run_trackers(tmp_path, ATTEMPTS, trackers, postgres_dsn, participants=PARTICIPANTS)

    assert result["attempts"] == ATTEMPTS and result["attempts_per_s"] > 0
    assert result["trackers_consuming"] == trackers, "every tracker took partitions"
    assert result["most_partitions_on_one_tracker"] == PARTITIONS // trackers, "none took more than its share"
    assert result["redelivery_waits"] == 0
