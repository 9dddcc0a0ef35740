"""Where a service may answer a query: an asker's inbox, never a subject it could otherwise publish."""

from __future__ import annotations

import pytest

from stepout_runtime.connection import answerable


@pytest.mark.parametrize(
    "reply",
    ["_INBOX.abc.def", "_INBOX_stepout_auditor.x.y", "_INBOX_stepout_console.x", "_INBOX_other_client.x", "_R_.ab.cd"],
)
def test_an_outside_askers_inbox_or_an_imported_reply_is_answered(reply: str) -> None:
    assert answerable(reply, None)


@pytest.mark.parametrize(
    "reply",
    [
        None,
        "",
        "_INBOX",
        "stepout.progress.updated.u-1",
        "stepout.deadletter.planner",
        "$JS.API.STREAM.PURGE.STEPOUT_IN",
        "$JS.ACK.STEPOUT_IN.tracker.1.2.3.4.0",
        "_INBOX_stepout_tracker.x",
        "_INBOX_stepout_planner.x",
        "_INBOX_stepout_admin.x",
        "x_INBOX.y",
    ],
)
def test_anything_else_is_left_unanswered(reply: str | None) -> None:
    assert not answerable(reply, None)


def test_the_planners_part_of_a_history_is_answered_to_the_tracker_only() -> None:
    assert answerable("_INBOX_stepout_tracker.a.b", "tracker")
    for reply in ("_INBOX.a", "_R_.a", "_INBOX_stepout_console.a", "_INBOX_stepout_planner.a"):
        assert not answerable(reply, "tracker")
