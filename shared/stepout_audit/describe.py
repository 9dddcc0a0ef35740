"""One line of text for a published decision or a review, as `stepout replay` and the console show it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# What ends a pause that has no end time, by its reason.
_OPEN_ENDED = {
    "crisis": "until a coach's review",
    "withdrawn": "for good",
    "participant": "until the participant resumes",
}


def warning_text(warning: Mapping[str, Any]) -> str:
    rules = ", ".join(r["rule"] for r in warning["rules"])
    escalate = ", escalated" if warning.get("escalate") else ""
    return f"{warning['severity']} ({rules}{escalate}) raised {warning['raised_at']}, id {warning['warning_id']}"


def decision_text(kind: str, data: Mapping[str, Any]) -> str:
    """`kind` is a `replay.DECISION_KINDS` value, or "review" for a coach's review."""
    if kind == "assignment":
        return f"{data['reason']} level {data['level']}: {data['title']} (not before {data['not_before']})"
    if kind == "pause":
        return f"{data['reason']} {pause_end(data)}"
    if kind == "resume":
        return f"resumed ({data['reason'] or 'reason not recorded'}) at {data['resumed_at']}"
    if kind == "notice":
        return f"{data['reason']}: {data['detail']}"
    if kind == "warning":
        return warning_text(data)
    if kind == "review":
        return f"reviewed by coach {data['coach_id']}"
    return f"cleared {data['warning_id']} by {data['by']}"


def pause_end(data: Mapping[str, Any]) -> str:
    if data["until"]:
        return f"until {data['until']}"
    return _OPEN_ENDED.get(data["reason"], "with no end set")
