"""The `plan` view folded from plan events (its coach, why it is paused, the warning it is responding
to), its `escalations` row, its erasure, and the escalations list: the participants whose warning is
still active, most severe and oldest first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from stepout_contract.vocabulary import Severity
from stepout_domain.plan_events import (
    ClearingObserved,
    Enrolled,
    EnrolmentChanged,
    PlanEvent,
    PlanPaused,
    PlanResumed,
    WarningObserved,
    WarningRule,
    Withdrawn,
)
from stepout_planner import plan_view
from stepout_planner.application import PlannerApplication

USER = "u-esc"
T0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
ENROLLED = Enrolled(USER, 3, 5, ("social", "money"), "Europe/Berlin", "coach-1", T0)


def observed(warning_id: str = "w-1", severity: Severity = Severity.HIGH, at: datetime = T0 + HOUR) -> WarningObserved:
    return WarningObserved(
        warning_id=warning_id,
        severity=severity,
        raised_at=at,
        escalate=True,
        level=2,
        ease_off_until=None,
        at=at,
        rules=(WarningRule("hostile_rejections", 2, 2), WarningRule("expectancy_low", 0.2, 0.25)),
        evidence=("a-4", "a-6"),
        ruleset_version="rs-7",
    )


def fold(*events: PlanEvent) -> dict[str, Any] | None:
    view = None
    for event in events:
        view = plan_view.apply(view, USER, event)
    return view


def view_of(*events: PlanEvent) -> dict[str, Any]:
    view = fold(ENROLLED, *events)
    assert view is not None
    return view


# The plan view --------------------------------------------------------------------------------------


def test_nothing_is_shown_before_the_enrolment() -> None:
    assert fold(observed(), PlanPaused("overload", T0 + 48 * HOUR, "w-1", T0)) is None


def test_an_enrolment_starts_an_active_plan_with_its_coach() -> None:
    assert view_of() == {
        "user_id": USER,
        "status": "active",
        "level": 3,
        "plan_level": 3,
        "open_assignment": None,
        "paused_until": None,
        "pause_reason": None,
        "coach_id": "coach-1",
        "active_warning": None,
        "erased": False,
    }
    assert view_of(Enrolled(USER, 3, 5, ("social",), "UTC", None, T0))["coach_id"] is None


def test_a_changed_enrolment_changes_the_coach() -> None:
    changed = EnrolmentChanged(9, ("play",), "UTC", "coach-2", T0 + HOUR)
    assert view_of(changed)["coach_id"] == "coach-2"
    assert view_of(changed, EnrolmentChanged(9, ("play",), "UTC", None, T0 + 2 * HOUR))["coach_id"] is None


def test_an_observed_warning_is_the_active_one_as_the_tracker_published_it() -> None:
    raised = datetime(2026, 6, 1, 12, 30, 15, 250000, tzinfo=timezone(timedelta(hours=2)))
    view = view_of(observed(at=raised))
    assert view["active_warning"] == {
        "warning_id": "w-1",
        "severity": "high",
        "escalate": True,
        "raised_at": "2026-06-01T10:30:15.250000Z",
        "rules": [
            {"rule": "hostile_rejections", "observed": 2, "threshold": 2},
            {"rule": "expectancy_low", "observed": 0.2, "threshold": 0.25},
        ],
        "evidence": ["a-4", "a-6"],
        "ruleset_version": "rs-7",
    }
    assert view["level"] == view["plan_level"] == 2


def test_a_warning_observed_before_its_rules_were_kept_shows_none() -> None:
    bare = WarningObserved("w-0", Severity.CAUTION, T0, False, 3, T0 + 24 * HOUR, T0)
    warning = view_of(bare)["active_warning"]
    assert (warning["rules"], warning["evidence"], warning["ruleset_version"]) == ([], [], None)


def test_a_later_warning_replaces_the_active_one() -> None:
    view = view_of(observed("w-1"), observed("w-2", Severity.CRISIS, T0 + 2 * HOUR))
    assert (view["active_warning"]["warning_id"], view["active_warning"]["severity"]) == ("w-2", "crisis")


def test_a_clearing_removes_its_own_warning_only() -> None:
    other = ClearingObserved("w-0", T0 + 2 * HOUR, "superseded", T0 + 2 * HOUR)
    assert view_of(observed("w-1"), other)["active_warning"]["warning_id"] == "w-1"
    own = ClearingObserved("w-1", T0 + 3 * HOUR, "review", T0 + 3 * HOUR)
    assert view_of(observed("w-1"), other, own)["active_warning"] is None
    assert view_of(own)["active_warning"] is None  # a clearing with no warning changes nothing


def test_applying_an_event_leaves_the_view_before_it_as_it_was() -> None:
    before = view_of(observed("w-1"))
    kept = {**before, "active_warning": dict(before["active_warning"])}
    after = plan_view.apply(before, USER, ClearingObserved("w-1", T0 + 2 * HOUR, "rules", T0 + 2 * HOUR))
    assert after is not None and after["active_warning"] is None
    assert before == kept


def test_a_pause_says_why_and_until_when_and_a_resume_ends_it() -> None:
    until = datetime(2026, 6, 3, 11, 0, tzinfo=timezone(timedelta(hours=2)))
    paused = view_of(observed(), PlanPaused("overload", until, "w-1", T0 + HOUR))
    assert (paused["status"], paused["pause_reason"], paused["paused_until"]) == (
        "paused",
        "overload",
        "2026-06-03T09:00:00Z",
    )
    crisis = view_of(PlanPaused("crisis", None, "w-1", T0 + HOUR))
    assert (crisis["status"], crisis["pause_reason"], crisis["paused_until"]) == ("paused", "crisis", None)
    resumed = view_of(PlanPaused("crisis", None, "w-1", T0 + HOUR), PlanResumed(T0 + 2 * HOUR, "review"))
    assert (resumed["status"], resumed["pause_reason"], resumed["paused_until"]) == ("active", None, None)


def test_a_withdrawal_is_for_good() -> None:
    withdrawn = view_of(PlanPaused("participant", None, None, T0 + HOUR), Withdrawn(False, T0 + 2 * HOUR))
    assert (withdrawn["status"], withdrawn["pause_reason"], withdrawn["paused_until"]) == (
        "withdrawn",
        "withdrawn",
        None,
    )
    assert view_of(PlanPaused("withdrawn", None, None, T0 + HOUR))["status"] == "withdrawn"
    after = view_of(Withdrawn(False, T0 + HOUR), PlanPaused("overload", T0 + 9 * HOUR, "w-1", T0 + 2 * HOUR))
    assert after["status"] == "withdrawn"
    assert view_of(Withdrawn(False, T0 + HOUR), PlanResumed(T0 + 2 * HOUR))["status"] == "withdrawn"


def test_an_escalation_row_is_who_whose_coach_the_plans_state_and_its_warning() -> None:
    view = view_of(observed(), PlanPaused("overload", T0 + 49 * HOUR, "w-1", T0 + HOUR))
    assert plan_view.escalation(view) == {
        "user_id": USER,
        "coach_id": "coach-1",
        "status": "paused",
        "pause_reason": "overload",
        "paused_until": "2026-06-03T10:00:00Z",
        "warning": view["active_warning"],
    }
    assert plan_view.escalation(view_of())["warning"] is None


def test_an_erased_plan_keeps_its_level_and_nothing_else() -> None:
    view = view_of(observed(), PlanPaused("crisis", None, "w-1", T0 + HOUR))
    assert plan_view.erased(view, USER) == {
        "user_id": USER,
        "status": "withdrawn",
        "level": 2,
        "plan_level": 2,
        "open_assignment": None,
        "paused_until": None,
        "pause_reason": None,
        "coach_id": None,
        "active_warning": None,
        "erased": True,
    }
    never = plan_view.erased(None, "u-never")
    assert (never["user_id"], never["level"], never["plan_level"], never["erased"]) == ("u-never", None, None, True)


# The escalations list -------------------------------------------------------------------------------

NOW = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)


class Views:
    """All the planner's `escalations` reads: the rows of one view."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows

    def all(self, name: str) -> list[tuple[str, dict[str, Any]]]:
        assert name == "escalations"
        return [(row["user_id"], row) for row in self.rows]


class Planner:
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.views = Views(rows)


def row(
    user_id: str,
    severity: str | None,
    raised_at: str = "2026-06-09T08:00:00Z",
    *,
    coach_id: str | None = "coach-1",
    status: str = "active",
    pause_reason: str | None = None,
    paused_until: str | None = None,
) -> dict[str, Any]:
    warning = None
    if severity is not None:
        warning = {
            "warning_id": f"w-{user_id}",
            "severity": severity,
            "escalate": severity != "caution",
            "raised_at": raised_at,
            "rules": [],
            "evidence": [],
            "ruleset_version": "rs-7",
        }
    return {
        "user_id": user_id,
        "coach_id": coach_id,
        "status": status,
        "pause_reason": pause_reason,
        "paused_until": paused_until,
        "warning": warning,
    }


def escalations(rows: list[dict[str, Any]], coach_id: str | None = None, now: datetime = NOW) -> list[dict[str, Any]]:
    return PlannerApplication.escalations(Planner(rows), now, coach_id)  # type: ignore[arg-type]


def users(found: list[dict[str, Any]]) -> list[str]:
    return [r["user_id"] for r in found]


def test_the_most_severe_come_first_then_the_oldest() -> None:
    rows = [
        row("caution-old", "caution", "2026-06-01T08:00:00Z"),
        row("high-new", "high", "2026-06-09T08:00:00Z"),
        row("crisis-new", "crisis", "2026-06-09T09:00:00Z"),
        row("high-old", "high", "2026-06-02T08:00:00Z"),
        row("crisis-old", "crisis", "2026-06-08T09:00:00Z"),
    ]
    assert users(escalations(rows)) == ["crisis-old", "crisis-new", "high-old", "high-new", "caution-old"]


def test_raised_at_is_compared_as_a_time_not_as_text() -> None:
    rows = [
        row("a-half-second-later", "high", "2026-06-09T08:00:51.500000Z"),
        row("b-on-the-second", "high", "2026-06-09T08:00:51Z"),
        row("c-later-in-berlin", "high", "2026-06-09T10:00:52+02:00"),
    ]
    assert users(escalations(rows)) == ["b-on-the-second", "a-half-second-later", "c-later-in-berlin"]


def test_a_tie_is_broken_by_user_id() -> None:
    rows = [row("u-b", "high"), row("u-c", "high"), row("u-a", "high")]
    assert users(escalations(rows)) == ["u-a", "u-b", "u-c"]


def test_a_coach_sees_their_own_participants_only() -> None:
    rows = [
        row("mine-1", "high", coach_id="coach-1"),
        row("theirs", "crisis", coach_id="coach-2"),
        row("no-coach", "crisis", coach_id=None),
        row("mine-2", "caution", coach_id="coach-1"),
    ]
    assert users(escalations(rows, "coach-1")) == ["mine-1", "mine-2"]
    assert users(escalations(rows, "coach-2")) == ["theirs"]
    assert users(escalations(rows, "coach-9")) == []
    assert users(escalations(rows)) == ["no-coach", "theirs", "mine-1", "mine-2"]


def test_the_withdrawn_and_those_without_an_active_warning_are_left_out() -> None:
    rows = [
        row("cleared", None),
        row("withdrawn", "crisis", status="withdrawn", pause_reason="withdrawn"),
        row("cleared-and-paused", None, status="paused", pause_reason="participant"),
        row("active", "caution"),
    ]
    assert users(escalations(rows)) == ["active"]
    assert escalations([]) == []


def test_a_pause_whose_end_has_passed_is_shown_as_active() -> None:
    rows = [
        row("ended", "high", "2026-06-01T08:00:00Z", status="paused", pause_reason="overload",
            paused_until="2026-06-10T11:59:59Z"),
        row("ends-now", "high", "2026-06-02T08:00:00Z", status="paused", pause_reason="overload",
            paused_until="2026-06-10T14:00:00+02:00"),
        row("ends-later", "high", "2026-06-03T08:00:00Z", status="paused", pause_reason="overload",
            paused_until="2026-06-10T12:00:00.000001Z"),
        row("crisis", "crisis", status="paused", pause_reason="crisis"),
    ]  # fmt: skip
    stored = [dict(r) for r in rows]
    found = {r["user_id"]: r for r in escalations(rows)}
    shown = {user: (r["status"], r["pause_reason"], r["paused_until"]) for user, r in found.items()}
    assert shown == {
        "ended": ("active", None, None),
        "ends-now": ("active", None, None),
        "ends-later": ("paused", "overload", "2026-06-10T12:00:00.000001Z"),
        "crisis": ("paused", "crisis", None),  # no end: until a coach's review
    }
    assert found["ended"]["warning"] == rows[0]["warning"]
    assert rows == stored  # the stored rows are left as they were


@pytest.mark.parametrize("coach_id", [None, "coach-1"])
def test_an_ended_pause_is_active_for_every_reader(coach_id: str | None) -> None:
    rows = [row("ended", "high", status="paused", pause_reason="overload", paused_until="2026-06-10T11:00:00Z")]
    [found] = escalations(rows, coach_id)
    assert found["status"] == "active"
    assert escalations(rows, coach_id, now=datetime(2026, 6, 10, 10, 0, tzinfo=UTC))[0]["status"] == "paused"
