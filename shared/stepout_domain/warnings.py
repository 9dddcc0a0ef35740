"""The warning lifecycle (DOMAIN.md "Overload warnings" and "Clearing"): raise, supersede, clear.

A participant has at most one active warning. The functions here decide, from the
rule hits of the latest history and the time of the triggering event, what happens
to it; they never read a clock, and the ids they give are derived from the
participant and the attempt, so a replay decides the same warnings with the same ids.
`Warning` and `Clearing` are values, never changed once built; not frozen dataclasses for the cost
of building one (`stepout_domain.values`).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from stepout_contract.vocabulary import ClearedBy, Severity
from stepout_domain.figures import hours_of
from stepout_domain.overload import RuleHit, highest
from stepout_domain.ruleset import RuleSet

# Fixed for ever: changing it would change every warning id and break exactly-once publishing.
WARNING_ID_NAMESPACE = uuid.UUID("0f5b7d0e-2c4a-5e8b-9a61-3d2c7b9e4f10")


def warning_id_for(user_id: str, attempt_id: str) -> str:
    """The id of the warning raised by `attempt_id`: the same on every replay."""
    return str(uuid.uuid5(WARNING_ID_NAMESPACE, f"{user_id}/warning/{attempt_id}"))


@dataclass(slots=True)
class Warning:
    """An overload warning: every rule that held when it was raised, and the attempts behind them."""

    warning_id: str
    user_id: str
    severity: Severity
    rules: tuple[RuleHit, ...]
    evidence: tuple[str, ...]
    escalate: bool
    raised_at: datetime
    ruleset_version: str

    @property
    def rule_ids(self) -> frozenset[str]:
        return frozenset(hit.rule for hit in self.rules)


@dataclass(slots=True)
class Clearing:
    """The end of a warning: by its rules lapsing, by a coach's review, or by a newer warning."""

    warning_id: str
    user_id: str
    cleared_at: datetime
    by: ClearedBy


def _raise(
    user_id: str,
    hits: Sequence[RuleHit],
    past_raised_at: Sequence[datetime],
    judged_at: datetime,
    attempt_id: str,
    rules: RuleSet,
    still_escalated: bool,
) -> Warning:
    severity = highest([hit.severity for hit in hits])
    window = timedelta(days=rules.escalate_window_days)
    recent = 1 + sum(1 for raised_at in past_raised_at if judged_at - raised_at <= window)
    escalate = still_escalated or severity is not Severity.CAUTION or recent >= rules.escalate_warnings
    evidence = tuple(dict.fromkeys(attempt_id for hit in hits for attempt_id in hit.evidence))
    return Warning(
        warning_id=warning_id_for(user_id, attempt_id),
        user_id=user_id,
        severity=severity,
        rules=tuple(hits),
        evidence=evidence,
        escalate=escalate,
        raised_at=judged_at,
        ruleset_version=rules.version,
    )


def _clears_by_rules(active: Warning, hits: Sequence[RuleHit], at: datetime, rules: RuleSet) -> bool:
    """A caution or high warning whose rules all lapsed, once its cooldown has passed."""
    if active.severity is Severity.CRISIS:
        return False
    if any(hit.rule in active.rule_ids for hit in hits):
        return False
    hours = rules.clear_after_hours_high if active.severity is Severity.HIGH else rules.clear_after_hours_caution
    return at - active.raised_at >= hours_of(hours)


def raises(active: Warning | None, hits: Sequence[RuleHit]) -> bool:
    """Whether an attempt with these `hits` raises a new warning (`after_attempt`)."""
    if active is None:
        return bool(hits)
    return any(hit.rule not in active.rule_ids for hit in hits)


def after_attempt(
    user_id: str,
    active: Warning | None,
    hits: Sequence[RuleHit],
    past_raised_at: Sequence[datetime],
    judged_at: datetime,
    attempt_id: str,
    rules: RuleSet,
) -> tuple[Clearing | None, Warning | None]:
    """What an attempt does to the warnings: (a clearing, a new warning), either may be None.

    - No active warning and some rule holds: a new warning listing every rule that holds.
    - An active warning and a rule holds that it does not list: the active one is
      cleared `by="superseded"` and a new warning listing every rule that holds replaces it.
    - An active `caution`/`high` none of whose rules holds any more, raised at least
      24 h / 48 h (the rule set's cooldowns) before `judged_at`: cleared `by="rules"`.
      A `crisis` never clears here. An escalated warning clears like any other
      (a `high` is always escalated, and DOMAIN.md lets a `high` clear after 48 h).

    `hits` is `overload.evaluate` of the history ending with `attempt_id`;
    `past_raised_at` the raise time of every earlier warning of the participant,
    the active one included. A new warning escalates when it is a `high` or
    `crisis`, when it makes `escalate_warnings` warnings raised within
    `escalate_window_days` back from `judged_at` (itself included), or when it
    supersedes an escalated warning: only a review ends an escalation.
    """
    if active is None:
        if not raises(active, hits):
            return None, None
        return None, _raise(user_id, hits, past_raised_at, judged_at, attempt_id, rules, still_escalated=False)
    if raises(active, hits):
        cleared = Clearing(active.warning_id, user_id, judged_at, "superseded")
        return cleared, _raise(user_id, hits, past_raised_at, judged_at, attempt_id, rules, active.escalate)
    if _clears_by_rules(active, hits, judged_at, rules):
        return Clearing(active.warning_id, user_id, judged_at, "rules"), None
    return None, None


def after_review(
    user_id: str,
    active: Warning | None,
    hits_now: Sequence[RuleHit],
    reviewed_at: datetime,
    rules: RuleSet,
) -> Clearing | None:
    """What a coach's review (`participant.reviewed`) does to the active warning.

    A `crisis` or an escalated warning clears `by="review"`. Any other warning clears
    `by="rules"` when none of its rules holds in `hits_now` (`tracking.hits_of` the state
    after the review) and its cooldown has passed by `reviewed_at`.
    """
    if active is None:
        return None
    if active.severity is Severity.CRISIS or active.escalate:
        return Clearing(active.warning_id, user_id, reviewed_at, "review")
    if _clears_by_rules(active, hits_now, reviewed_at, rules):
        return Clearing(active.warning_id, user_id, reviewed_at, "rules")
    return None
