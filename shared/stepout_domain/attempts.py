"""An attempt as the domain sees it: the facts a participant reported, minus the note."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from stepout_contract.vocabulary import Outcome

COMPLETED_OUTCOMES = frozenset({Outcome.REJECTED, Outcome.ACCEPTED, Outcome.HOSTILE})
REJECTION_OUTCOMES = frozenset({Outcome.REJECTED, Outcome.HOSTILE})
AVOIDANCE_OUTCOMES = frozenset({Outcome.ESCAPED, Outcome.SKIPPED})


@dataclass(frozen=True, slots=True)
class Attempt:
    """One recorded attempt. `occurred_at` is timezone-aware; `level` is always resolved."""

    attempt_id: str
    occurred_at: datetime
    level: int
    outcome: Outcome
    challenge_id: str
    assignment_id: str | None = None
    suds_before: int | None = None
    suds_peak: int | None = None
    suds_after: int | None = None
    predicted_suds: int | None = None
    prediction_came_true: int | None = None
    crisis_reported: bool = False

    @property
    def completed(self) -> bool:
        return self.outcome in COMPLETED_OUTCOMES

    @property
    def avoided(self) -> bool:
        return self.outcome in AVOIDANCE_OUTCOMES
