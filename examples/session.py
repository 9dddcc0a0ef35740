"""A short session with stepout through `stepout-client`: enrol a participant, take their
assignment, log an attempt, get the next assignment, read their progress.

Safe to run again and again: every action's id is derived from what it acts on, so a second run
re-sends the enrolment (stepout changes nothing) and logs one attempt on whatever assignment is
open then. With `make run` going: `.venv/bin/python examples/session.py [USER_ID]`. It connects as
the `STEPOUT_NATS_*` settings say (`STEPOUT_NATS_URL`, `STEPOUT_NATS_USER`, `STEPOUT_NATS_PASSWORD`,
`STEPOUT_SUBJECT_PREFIX`), by default to nats://127.0.0.1:4222.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from datetime import UTC, datetime

from stepout_client import ChallengeAssigned, StepoutClient


async def main(user_id: str) -> int:
    async with await StepoutClient.from_env(source="urn:example:platform") as stepout:
        await stepout.enrol(user_id=user_id, starting_level=3, platform_id=f"enrolment-of-{user_id}")
        assigned = await stepout.next_assignment(user_id)
        if not isinstance(assigned, ChallengeAssigned):
            print("no assignment:", assigned)
            return 0
        print("assigned:", assigned.title, "level", assigned.level)

        # The attempt's id is the idempotency key: one per assignment, so a rerun logs it once.
        attempt_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:example:attempt:{assigned.assignment_id}"))
        await stepout.log_attempt(
            attempt_id=attempt_id,
            user_id=user_id,
            assignment_id=assigned.assignment_id,
            challenge_id=assigned.challenge_id,
            outcome="rejected",
            suds_before=40,
            suds_peak=60,
            suds_after=25,
            occurred_at=datetime.now(UTC),
        )
        following = await stepout.next_assignment(user_id, after=assigned.assignment_id)
        if isinstance(following, ChallengeAssigned):
            print("next:", following.title, "level", following.level, "because", following.reason)
        else:
            print("no next assignment:", following)
        progress = await stepout.progress(user_id)
        print("progress:", {str(outcome): n for outcome, n in progress.attempts.items()}, "position", progress.position)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "u-123")))
