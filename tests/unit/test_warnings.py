"""The warning lifecycle: raise, supersede, clear by rules after a cooldown, clear a crisis by review."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from stepout_contract import wire
from stepout_contract.outputs import OverloadCleared, OverloadWarning
from stepout_domain.attempts import Attempt, Outcome
from stepout_domain.history import History
from stepout_domain.overload import RuleHit, Severity, evaluate
from stepout_domain.ruleset import DEFAULT_RULESET
from stepout_domain.warnings import (
    Clearing,
    Warning,
    after_attempt,
    after_review,
    warning_id_for,
)

RULES = DEFAULT_RULESET
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)

ESCAPES = RuleHit("escapes", 2, 2, Severity.CAUTION, ("a1", "a3"))
STREAK = RuleHit("rejection_streak", 5, 5, Severity.CAUTION, ("a2", "a3", "a4", "a5", "a6"))
HOSTILE = RuleHit("hostile_rejections", 2, 2, Severity.HIGH, ("a4", "a6"))
CRISIS = RuleHit("crisis_reported", 1, 1, Severity.CRISIS, ("a6",))


def raise_(
    hits: list[RuleHit], at: datetime = T0, attempt_id: str = "a6", past: list[datetime] | None = None
) -> Warning:
    cleared, warning = after_attempt("u-1", None, hits, past or [], at, attempt_id, RULES)
    assert cleared is None and warning is not None
    return warning


def test_fifth_rejection_in_a_day_raises_caution() -> None:
    history = [
        Attempt(f"a{i}", T0 + i * 5 * HOUR, 3, Outcome.REJECTED, "c-1", f"as{i}", 30, 40 - i, 20) for i in range(5)
    ]
    hits = evaluate(History.of(history), RULES)
    warning = raise_(hits, at=history[-1].occurred_at, attempt_id="a4")
    assert warning.severity is Severity.CAUTION
    assert [h.rule for h in warning.rules] == ["rejection_streak"]
    assert warning.evidence == ("a0", "a1", "a2", "a3", "a4")
    assert warning.escalate is False


def test_a_raised_warning_has_a_deterministic_id_and_is_stamped() -> None:
    warning = raise_([ESCAPES, STREAK])
    assert warning.warning_id == warning_id_for("u-1", "a6") == warning_id_for("u-1", "a6")
    assert uuid.UUID(warning.warning_id).version == 5
    assert warning_id_for("u-1", "a7") != warning.warning_id != warning_id_for("u-2", "a6")
    assert warning.raised_at == T0 and warning.ruleset_version == "2026.1"


def test_evidence_is_the_union_of_the_rules_evidence_in_order() -> None:
    assert raise_([ESCAPES, STREAK]).evidence == ("a1", "a3", "a2", "a4", "a5", "a6")


def test_severity_is_the_highest_of_the_rules() -> None:
    assert raise_([ESCAPES, STREAK]).severity is Severity.CAUTION
    assert raise_([ESCAPES, HOSTILE]).severity is Severity.HIGH
    assert raise_([ESCAPES, HOSTILE, CRISIS]).severity is Severity.CRISIS


def test_no_rule_holding_and_no_warning_does_nothing() -> None:
    assert after_attempt("u-1", None, [], [], T0, "a6", RULES) == (None, None)


def test_a_new_rule_supersedes_the_active_warning_with_one_listing_every_rule() -> None:
    active = raise_([ESCAPES])
    cleared, warning = after_attempt("u-1", active, [ESCAPES, HOSTILE], [T0], T0 + HOUR, "a7", RULES)
    assert cleared == Clearing(active.warning_id, "u-1", T0 + HOUR, "superseded")
    assert warning is not None and [h.rule for h in warning.rules] == ["escapes", "hostile_rejections"]
    assert warning.severity is Severity.HIGH and warning.warning_id == warning_id_for("u-1", "a7")


def test_rules_already_listed_do_not_raise_again() -> None:
    active = raise_([ESCAPES, STREAK])
    assert after_attempt("u-1", active, [STREAK], [T0], T0 + HOUR, "a7", RULES) == (None, None)


def test_caution_clears_by_rules_after_24_hours() -> None:
    active = raise_([ESCAPES])
    cleared, warning = after_attempt("u-1", active, [], [T0], T0 + 24 * HOUR, "a9", RULES)
    assert cleared == Clearing(active.warning_id, "u-1", T0 + 24 * HOUR, "rules") and warning is None


def test_caution_does_not_clear_before_24_hours() -> None:
    active = raise_([ESCAPES])
    assert after_attempt("u-1", active, [], [T0], T0 + 24 * HOUR - SECOND, "a9", RULES) == (None, None)


def test_caution_does_not_clear_while_its_rule_holds() -> None:
    active = raise_([ESCAPES, STREAK])
    assert after_attempt("u-1", active, [ESCAPES], [T0], T0 + 30 * DAY, "a9", RULES) == (None, None)


def test_high_clears_by_rules_after_48_hours_not_before() -> None:
    active = raise_([HOSTILE])
    assert after_attempt("u-1", active, [], [T0], T0 + 48 * HOUR - SECOND, "a9", RULES) == (None, None)
    cleared, _ = after_attempt("u-1", active, [], [T0], T0 + 48 * HOUR, "a9", RULES)
    assert cleared is not None and cleared.by == "rules"


def test_crisis_never_clears_by_rules() -> None:
    active = raise_([CRISIS])
    assert after_attempt("u-1", active, [], [T0], T0 + 365 * DAY, "a9", RULES) == (None, None)
    assert after_review("u-1", active, [CRISIS], T0 + 365 * DAY, RULES) is not None


def test_a_review_clears_a_crisis() -> None:
    active = raise_([CRISIS])
    assert after_review("u-1", active, [], T0 + HOUR, RULES) == Clearing(active.warning_id, "u-1", T0 + HOUR, "review")


def test_a_review_clears_an_escalated_caution() -> None:
    active = raise_([ESCAPES], past=[T0 - 2 * DAY, T0 - DAY])
    assert active.escalate
    cleared = after_review("u-1", active, [ESCAPES], T0 + HOUR, RULES)
    assert cleared is not None and cleared.by == "review"


def test_a_review_clears_a_plain_caution_only_by_its_rules_and_cooldown() -> None:
    active = raise_([ESCAPES])
    assert after_review("u-1", active, [], T0 + HOUR, RULES) is None
    assert after_review("u-1", active, [ESCAPES], T0 + 2 * DAY, RULES) is None
    cleared = after_review("u-1", active, [], T0 + 2 * DAY, RULES)
    assert cleared is not None and cleared.by == "rules"
    assert after_review("u-1", None, [], T0, RULES) is None


def test_third_warning_within_30_days_escalates() -> None:
    assert raise_([ESCAPES], past=[T0 - 30 * DAY, T0 - DAY]).escalate


def test_a_warning_30_days_and_a_second_back_does_not_count_for_escalation() -> None:
    assert not raise_([ESCAPES], past=[T0 - 30 * DAY - SECOND, T0 - DAY]).escalate
    assert not raise_([ESCAPES], past=[T0 - DAY]).escalate


def test_high_and_crisis_always_escalate() -> None:
    assert raise_([HOSTILE]).escalate
    assert raise_([CRISIS]).escalate


def test_superseding_an_escalated_warning_keeps_the_escalation() -> None:
    active = raise_([ESCAPES], past=[T0 - 2 * DAY, T0 - DAY])
    _, warning = after_attempt("u-1", active, [ESCAPES, STREAK], [], T0 + 40 * DAY, "a9", RULES)
    assert warning is not None and warning.escalate


def test_wire_forms_match_the_contract() -> None:
    warning = raise_([ESCAPES, HOSTILE], at=datetime(2026, 11, 26, 21, 15, tzinfo=UTC) + timedelta(hours=-1))
    data = wire.warning(warning)
    assert json.loads(json.dumps(data)) == data
    assert data["raised_at"] == "2026-11-26T20:15:00Z"
    assert data["rules"] == [
        {"rule": "escapes", "observed": 2, "threshold": 2},
        {"rule": "hostile_rejections", "observed": 2, "threshold": 2},
    ]
    assert OverloadWarning.model_validate(data).severity == "high"
    cleared = wire.clearing(Clearing(warning.warning_id, "u-1", T0, "superseded"))
    assert OverloadCleared.model_validate(cleared).by == "superseded"
    assert cleared["cleared_at"] == "2026-11-02T09:00:00Z"
    assert wire.active_warning(warning) == {
        "warning_id": warning.warning_id,
        "severity": "high",
        "rules": data["rules"],
    }
