"""Coming back after a break (rule sets with `return_after_days`).

Fear returns after time away from exposure (return of fear, spontaneous recovery), so a
participant back after a long pause is not judged against what they achieved before it:
after `return_after_days` days without a completed attempt, the baseline at the level
restarts (readiness, habituation and the progress view's figures count from the attempt
that ended the break) and the planner's next assignment is one level lower (`returning`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from stepout_domain.attempts import Attempt


def since_break(history: Sequence[Attempt], days: int | None) -> Sequence[Attempt]:
    """The attempts since the last break of at least `days` days without a completed attempt
    (`history` in `occurred_at` order); all of them when there was none, or `days` is None."""
    if days is None:
        return history
    gap = timedelta(days=days)
    start, last_completed = 0, None
    for i, attempt in enumerate(history):
        if last_completed is not None and attempt.occurred_at - last_completed >= gap:
            start = i
        if attempt.completed:
            last_completed = attempt.occurred_at
    return history[start:]


def ends_a_break(history: Sequence[Attempt], attempt: Attempt, days: int | None) -> bool:
    """Whether `attempt` (one of `history`) is the first after a break: at least `days` days after the
    completed attempt before it. A first attempt ever ends no break."""
    if days is None:
        return False
    previous = None
    for earlier in history:
        if earlier.attempt_id == attempt.attempt_id:
            break
        if earlier.completed:
            previous = earlier.occurred_at
    return previous is not None and attempt.occurred_at - previous >= timedelta(days=days)
