"""Inputs a decider refuses: they change nothing, and the services tell them back as dead letters
(CONTRACT §5) with the refusal's reason and detail. Both deciders (`planning.decide`,
`tracking.decide`) refuse through here, so the two services and the audit never disagree.

A refusal's `detail` is plain words with no personal data: no user id, no coach id.
"""

from __future__ import annotations

from dataclasses import dataclass

from stepout_contract.vocabulary import RefusalReason


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a decider refuses a command: `reason` is the dead-letter reason, `detail` says it in words."""

    reason: RefusalReason
    detail: str


NOT_THEIR_COACH = Refusal(
    "not_their_coach",
    "coach_id: a review must come from the coach the participant is enrolled with; this one names another",
)


def review_refusal(enrolled_coach: str | None, reviewing_coach: str | None) -> Refusal | None:
    """A review is bound to the participant's coach (CONTRACT §3 `participant.reviewed`): the
    `coach_id` of the enrolment in force. A participant enrolled without a coach takes a review
    naming any coach. `reviewing_coach` None is a review recorded before reviews kept their coach:
    replayed as it was decided then."""
    if enrolled_coach is None or reviewing_coach is None or reviewing_coach == enrolled_coach:
        return None
    return NOT_THEIR_COACH
