"""What erasing a participant removes from NATS: the dead letters that name them and the outputs
still kept of them (both services), and their inputs still queued (the tracker). Run by the outbox
relay in the place of the erasure among the decisions, and safe to run again."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from nats.js import JetStreamContext
from nats.js.errors import APIError, NotFoundError

from stepout_contract.envelope import make_event, output_id
from stepout_contract.outputs import ERASED_TYPE
from stepout_contract.subjects import Subjects

from .dead_letter_index import DeadLetterIndex

log = logging.getLogger(__name__)
NO_MESSAGE = 10057  # JetStream's "no message found"


async def remove_dead_letters(js: JetStreamContext, subjects: Subjects, index: DeadLetterIndex, user_id: str) -> int:
    """Delete (overwriting them in the store) the dead letters this service recorded as naming `user_id`."""
    removed = 0
    for seq in await asyncio.to_thread(index.of, user_id):
        try:
            await js.delete_msg(subjects.dlq_stream, seq)
            removed += 1
        except APIError as exc:
            # Gone already: aged out, dropped when the stream was full, or removed by an earlier run.
            if not isinstance(exc, NotFoundError) and exc.err_code != NO_MESSAGE:
                raise
    await asyncio.to_thread(index.forget, user_id)
    return removed


async def purge_outputs(js: JetStreamContext, subjects: Subjects, user_id: str) -> None:
    """Remove every output of `user_id` the output stream still keeps (`P.<family>.<event>.<user_id>`),
    and the planner's copies not yet read (the outcomes stream of a partitioned planner)."""
    await js.purge_stream(subjects.out_stream, subject=f"{subjects.prefix}.*.*.{user_id}")
    try:
        await js.purge_stream(subjects.outcomes_stream, subject=f"{subjects.prefix}.*.*.*.{user_id}")
    except NotFoundError:
        pass  # one partition: no outcomes stream


async def purge_inputs(
    js: JetStreamContext, subjects: Subjects, user_id: str, before_seq: int, partitions: int
) -> None:
    """Remove the inputs of `user_id` still queued before the erasing withdrawal (stream sequence `before_seq`)."""
    head = subjects.prefix if partitions == 1 else f"{subjects.prefix}.*"  # P.<k> with partitions
    await js.purge_stream(subjects.in_stream, seq=before_seq, subject=f"{head}.*.*.{user_id}")


def erased_record(service: str, erased: Any) -> dict[str, Any]:
    """The `participant.erased` record a service's stored erasure shows as in history and exports:
    which request erased the participant, and what erasure left (counts, kinds, rule ids)."""
    return make_event(
        event_id=output_id(service, erased.originator_id, erased.originator_version, "erased"),
        source=f"urn:stepout:{service}",
        type_=ERASED_TYPE,
        user_id=erased.user_id,
        time=erased.timestamp,
        data={"user_id": erased.user_id, "request_id": erased.request_id, "summary": erased.summary},
    )
