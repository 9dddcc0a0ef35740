"""What the console's participant page shows, shaped from history CloudEvents alone: attempts numbered
as the tracker counted them, notes never shown, the ladder levels and their bands, the decisions
newest first with their rule sets and evidence, the charts' points; and the times the console reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from stepout_console import moments, participant_page
from stepout_console.participant_page import Entry
from stepout_contract.vocabulary import rfc3339

USER = "u-page"
T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)

ATTEMPT = "stepout.attempt.logged.v1"
PROGRESS = "stepout.progress.updated.v1"
ASSIGNED = "stepout.challenge.assigned.v1"
WARNING = "stepout.overload.warning.v1"
CLEARED = "stepout.overload.cleared.v1"
PAUSED = "stepout.plan.paused.v1"
RESUMED = "stepout.plan.resumed.v1"
REVIEWED = "stepout.participant.reviewed.v1"


def at(hours: float) -> str:
    return rfc3339(T0 + timedelta(hours=hours))


def event(event_id: str, type_: str, time: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"id": event_id, "type": type_, "time": time, "data": data}


def attempt(
    attempt_id: str, hours: float, *, outcome: str = "rejected", peak: int | None = 60, note: str | None = None
) -> dict[str, Any]:
    readings = {"suds_before": 30, "suds_peak": peak, "suds_after": 20} if peak is not None else {}
    data = {
        "attempt_id": attempt_id,
        "user_id": USER,
        "assignment_id": None,
        "challenge_id": "ask-directions",
        "level": 3,
        "outcome": outcome,
        "predicted_suds": 70 if peak is not None else None,
        "prediction_came_true": 40 if peak is not None else None,
        "crisis_reported": False,
        "occurred_at": at(hours),
        **readings,
    }
    if note is not None:
        data["note"] = note
    return event(f"in-{attempt_id}", ATTEMPT, at(hours), data)


def progress(
    position: int,
    attempt_id: str,
    hours: float,
    *,
    level: int | None = 3,
    expectancy: float | None = 0.5,
    streak: int = 1,
    recorded: float | None = None,
) -> dict[str, Any]:
    data = {
        "user_id": USER,
        "position": position,
        "level": level,
        "expectancy_last5": expectancy,
        "streak_days": streak,
        "last_attempt": {"attempt_id": attempt_id, "occurred_at": at(hours)},
        "ruleset_version": "rs-1",
    }
    return event(f"progress-{position}", PROGRESS, at(hours if recorded is None else recorded), data)


def assigned(event_id: str, hours: float, *, level: int = 3, ruleset: str = "rs-data") -> dict[str, Any]:
    data = {
        "assignment_id": f"as-{event_id}",
        "user_id": USER,
        "challenge_id": "ask-directions",
        "title": "Ask a stranger for directions",
        "category": "social",
        "level": level,
        "reason": "step_up",
        "not_before": at(hours + 1),
        "ruleset_version": ruleset,
    }
    return event(event_id, ASSIGNED, at(hours), data)


def warning(event_id: str, hours: float, evidence: list[str], *, ruleset: str = "rs-data") -> dict[str, Any]:
    data = {
        "warning_id": "w-1",
        "user_id": USER,
        "severity": "high",
        "rules": [{"rule": "hostile_rejections", "observed": 2, "threshold": 2}],
        "evidence": evidence,
        "escalate": True,
        "raised_at": at(hours),
        "ruleset_version": ruleset,
    }
    return event(event_id, WARNING, at(hours), data)


def paused(event_id: str, hours: float) -> dict[str, Any]:
    data = {"user_id": USER, "reason": "overload", "until": at(hours + 48), "warning_id": "w-1"}
    return event(event_id, PAUSED, at(hours), data)


def cleared(event_id: str, hours: float) -> dict[str, Any]:
    data = {"warning_id": "w-1", "user_id": USER, "cleared_at": at(hours), "by": "review"}
    return event(event_id, CLEARED, at(hours), data)


def resumed(event_id: str, hours: float) -> dict[str, Any]:
    return event(event_id, RESUMED, at(hours), {"user_id": USER, "reason": "review", "resumed_at": at(hours)})


def reviewed(event_id: str, hours: float) -> dict[str, Any]:
    return event(event_id, REVIEWED, at(hours), {"user_id": USER, "coach_id": "coach-1"})


def numbers(found: list[dict[str, Any]]) -> dict[str, int]:
    return {a["attempt_id"]: a["number"] for a in found}


# A history as the `history` query returns it, in the order it was recorded: `a-late` happened
# before the others but reached the tracker third, so the tracker counted it third.
HISTORY = [
    attempt("a-1", 1, note="a private note"),
    progress(1, "a-1", 1),
    attempt("a-2", 2, outcome="hostile", peak=80),
    progress(2, "a-2", 2),
    attempt("a-late", 0.5, outcome="escaped", peak=90, note="another note"),
    progress(3, "a-late", 0.5, recorded=3),
    attempt("a-4", 4, outcome="skipped", peak=None),
    progress(4, "a-4", 4, level=2),
]


# Attempts -------------------------------------------------------------------------------------------


def test_attempts_are_numbered_as_the_tracker_counted_them() -> None:
    found = participant_page.attempts(HISTORY)
    assert [a["attempt_id"] for a in found] == ["a-1", "a-2", "a-late", "a-4"]
    assert numbers(found) == {"a-1": 1, "a-2": 2, "a-late": 3, "a-4": 4}  # recorded late: numbered late
    assert found[2]["occurred_at"] == at(0.5) and found[2]["outcome"] == "escaped"


def test_attempts_the_tracker_has_not_counted_come_after_the_counted_ones_in_the_order_they_happened() -> None:
    history = [*HISTORY, attempt("b-2", -2), attempt("b-1", -3)]  # both before any counted attempt
    found = participant_page.attempts(history)
    assert [(a["attempt_id"], a["number"]) for a in found[4:]] == [("b-1", 5), ("b-2", 6)]
    assert numbers(found[:4]) == {"a-1": 1, "a-2": 2, "a-late": 3, "a-4": 4}


def test_attempts_the_tracker_has_not_counted_are_ordered_as_times_not_as_text() -> None:
    first, second = attempt("b-1", 5), attempt("b-2", 5)
    second["data"]["occurred_at"] = "2026-05-04T14:00:00.500000Z"  # half a second after b-1 (14:00:00Z)
    third = attempt("b-3", 5)
    third["data"]["occurred_at"] = "2026-05-04T16:30:00+02:00"  # 14:30Z
    fourth = attempt("b-4", 5)
    fourth["data"]["occurred_at"] = "2026-05-04T15:00:00Z"
    found = participant_page.attempts([fourth, third, second, first])
    assert [a["attempt_id"] for a in found] == ["b-1", "b-2", "b-3", "b-4"]


def test_a_note_is_never_in_the_attempts_and_the_history_is_left_as_it_was() -> None:
    found = participant_page.attempts(HISTORY)
    assert all("note" not in a for a in found)
    assert "a private note" not in repr(found) and "another note" not in repr(found)
    assert HISTORY[0]["data"]["note"] == "a private note" and "number" not in HISTORY[0]["data"]


def test_no_attempts_in_an_empty_history_or_one_of_decisions_only() -> None:
    assert participant_page.attempts([]) == []
    assert participant_page.attempts([assigned("d-1", 0), reviewed("r-1", 1)]) == []


# Levels ---------------------------------------------------------------------------------------------


def test_levels_are_the_trackers_view_after_each_attempt() -> None:
    history = [
        progress(1, "a-1", 1, level=3, expectancy=None, streak=1),
        attempt("a-2", 2),
        progress(2, "a-2", 2, level=4, expectancy=0.25, streak=2),
        event("progress-0", PROGRESS, at(3), {"user_id": USER, "position": 0, "level": 3, "last_attempt": None}),
        progress(3, "a-3", 3, level=None),  # no level yet: nothing to draw
        assigned("d-1", 3),
    ]
    assert participant_page.levels(history) == [
        {"time": at(1), "position": 1, "level": 3, "expectancy": None, "streak_days": 1},
        {"time": at(2), "position": 2, "level": 4, "expectancy": 0.25, "streak_days": 2},
    ]


def test_level_bands_are_the_runs_of_one_level_by_position() -> None:
    points = [
        {"position": p, "level": level, "time": at(p)} for p, level in [(1, 3), (2, 3), (3, 4), (4, 4), (5, 3), (6, 5)]
    ]
    shuffled = [points[i] for i in (4, 0, 5, 2, 1, 3)]
    assert participant_page.level_bands(shuffled) == [
        {"level": 3, "from": 1, "to": 2},
        {"level": 4, "from": 3, "to": 4},
        {"level": 3, "from": 5, "to": 5},
        {"level": 5, "from": 6, "to": 6},
    ]
    assert participant_page.level_bands([]) == []


# The timeline ---------------------------------------------------------------------------------------

DECISIONS = [
    assigned("d-assign", 0.5),
    *HISTORY[:4],
    warning("d-warn", 2.5, ["a-1", "a-2", "a-gone"]),
    paused("d-pause", 2.5),
    *HISTORY[4:],
    reviewed("r-1", 5),
    cleared("d-clear", 5),
    resumed("d-resume", 5.5),
]


def test_the_timeline_has_the_decisions_and_reviews_newest_first_each_with_its_rule_set() -> None:
    audits = {
        "planner": {"decisions": [{"id": "d-assign", "ruleset_version": "rs-audit"}]},
        "tracker": {"decisions": [{"id": "d-warn", "ruleset_version": None}, {"id": "r-1", "ruleset_version": "x"}]},
        "elsewhere": None,
    }
    rulesets = participant_page.rulesets_of(audits)
    assert rulesets == {"d-assign": "rs-audit", "d-warn": None, "r-1": "x"}
    entries = participant_page.timeline(DECISIONS, rulesets)
    assert [(e.time, e.kind, e.ruleset_version) for e in entries] == [
        (at(5.5), "resume", None),
        (at(5), "review", None),  # a review is no decision: no rule set, whatever the mapping says
        (at(5), "clearing", None),
        (at(2.5), "warning", "rs-data"),  # not known to the audit: the one its data names
        (at(2.5), "pause", None),
        (at(0.5), "assignment", "rs-audit"),  # the audit's, over the one its data names
    ]
    summaries = {e.kind: e.summary for e in entries}
    assert summaries == {
        "resume": f"resumed (review) at {at(5.5)}",
        "review": "reviewed by coach coach-1",
        "clearing": "cleared w-1 by review",
        "warning": f"high (hostile_rejections, escalated) raised {at(2.5)}, id w-1",
        "pause": f"overload until {at(50.5)}",
        "assignment": f"step_up level 3: Ask a stranger for directions (not before {at(1.5)})",
    }
    assert all(e.evidence == () for e in entries if e.kind != "warning")


def test_a_warnings_evidence_is_its_attempts_and_an_unknown_one_is_marked_missing() -> None:
    [entry] = [e for e in participant_page.timeline(DECISIONS, {}) if e.kind == "warning"]
    first, second, gone = entry.evidence
    assert (first["attempt_id"], first["number"], first["suds_peak"]) == ("a-1", 1, 60)
    assert (second["attempt_id"], second["number"], second["outcome"]) == ("a-2", 2, "hostile")
    assert "note" not in first
    assert gone == {"attempt_id": "a-gone", "missing": True}


def test_the_timeline_keeps_the_newest_entries_up_to_its_limit() -> None:
    history = [assigned(f"d-{n}", n) for n in range(12)]
    entries = participant_page.timeline(history, {}, limit=3)
    assert [e.time for e in entries] == [at(11), at(10), at(9)]
    assert len(participant_page.timeline(history * 20, {})) == participant_page.TIMELINE_MAX == 200
    assert participant_page.timeline(HISTORY, {}) == []


def test_the_timeline_orders_entries_of_one_second_as_times() -> None:
    older, newer = resumed("d-1", 0), resumed("d-2", 0)
    older["time"] = "2026-05-04T10:00:51Z"
    newer["time"] = "2026-05-04T10:00:51.500000Z"
    assert [e.time for e in participant_page.timeline([older, newer], {})] == [newer["time"], older["time"]]


def test_a_timeline_entry_is_a_frozen_record() -> None:
    entry = Entry(at(0), "review", "reviewed by coach coach-1", None)
    assert entry.evidence == ()
    with pytest.raises(AttributeError):
        entry.kind = "warning"  # type: ignore[misc]


# The charts -----------------------------------------------------------------------------------------


def test_chart_data_has_one_point_per_attempt_with_a_suds_peak() -> None:
    skipped_with_readings = attempt("a-5", 5, outcome="skipped", peak=40)
    history = [*HISTORY, skipped_with_readings, progress(5, "a-5", 5, level=2)]
    found = participant_page.attempts(history)
    points = participant_page.levels(history)
    chart = participant_page.chart_data(found, points)
    assert [p["number"] for p in chart["attempts"]] == [1, 2, 3, 5]  # a-4 was skipped with no readings
    assert chart["attempts"][0] == {
        "number": 1,
        "time": at(1),
        "outcome": "rejected",
        "level": 3,
        "before": 30,
        "peak": 60,
        "after": 20,
        "predicted": 70,
        "came_true": 40,
    }
    assert chart["attempts"][3]["outcome"] == "skipped"
    assert chart["levels"] == points and len(points) == 5
    assert chart["bands"] == [{"level": 3, "from": 1, "to": 3}, {"level": 2, "from": 4, "to": 5}]


def test_chart_data_of_nothing_is_empty() -> None:
    assert participant_page.chart_data([], []) == {"attempts": [], "levels": [], "bands": []}


# Moments --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [None, "", "   "])
def test_an_empty_as_of_is_none(text: str | None) -> None:
    assert moments.as_of_param(text) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-05-04T10:15", datetime(2026, 5, 4, 10, 15, tzinfo=UTC)),  # a form's value: read as UTC
        (" 2026-05-04T10:15:30 ", datetime(2026, 5, 4, 10, 15, 30, tzinfo=UTC)),
        ("2026-05-04T10:15:30Z", datetime(2026, 5, 4, 10, 15, 30, tzinfo=UTC)),
        ("2026-05-04T10:15:30.250000Z", datetime(2026, 5, 4, 10, 15, 30, 250000, tzinfo=UTC)),
        ("2026-05-04T12:15:30+02:00", datetime(2026, 5, 4, 10, 15, 30, tzinfo=UTC)),  # shown in UTC
    ],
)
def test_as_of_is_a_form_value_in_utc_or_rfc_3339_with_its_offset(text: str, expected: datetime) -> None:
    value = moments.as_of_param(text)
    assert value == expected and value is not None and value.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01T10:00", "04/05/2026 10:00", "2026-05-04T10:15:30+25:00"])
def test_an_as_of_that_is_not_a_time_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"^as_of is not a time \(YYYY-MM-DDTHH:MM, UTC, or RFC 3339\)"):
        moments.as_of_param(text)


def test_the_refusal_quotes_at_most_40_characters_of_the_value() -> None:
    with pytest.raises(ValueError) as refused:
        moments.as_of_param("x" * 100)
    assert "x" * 40 in str(refused.value) and "x" * 41 not in str(refused.value)


@pytest.mark.parametrize(
    ("ago", "says"),
    [
        (timedelta(0), "under a minute"),
        (timedelta(seconds=59), "under a minute"),
        (timedelta(seconds=60), "1 min"),
        (timedelta(minutes=59, seconds=59), "59 min"),
        (timedelta(hours=1), "1 h 0 min"),
        (timedelta(hours=5, minutes=7), "5 h 7 min"),
        (timedelta(days=1), "1 d 0 h"),
        (timedelta(days=2, hours=3, minutes=59), "2 d 3 h"),
        (timedelta(days=40, hours=23), "40 d 23 h"),
    ],
)
def test_age_is_the_two_largest_units(ago: timedelta, says: str) -> None:
    now = T0 + timedelta(days=90)
    assert moments.age(rfc3339(now - ago), now) == says


def test_age_reads_offsets_and_is_empty_without_a_time() -> None:
    now = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
    assert moments.age("2026-05-04T12:30:00+02:00", now) == "1 h 30 min"
    assert moments.age(None, now) == moments.age("", now) == ""
