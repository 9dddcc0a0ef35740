"""What the participant page shows, shaped from the contract's replies alone (pure: no I/O, no clock).

- `attempts`: every attempt in the history, with its SUDS readings (never its note: the history
  has none), numbered in the order they happened.
- `levels`: the ladder level and the expectancy after each attempt, from the progress views the
  tracker published; `level_bands` the spans of one level.
- `timeline`: the decisions (assignments, warnings with the attempts that are their evidence,
  pauses, resumes, clearings, notices) and the coaches' reviews, newest first, each with the rule
  set it was decided under.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from stepout_audit.describe import decision_text
from stepout_audit.replay import DECISION_KINDS

ATTEMPT = "stepout.attempt.logged.v1"
PROGRESS = "stepout.progress.updated.v1"
REVIEW = "stepout.participant.reviewed.v1"
KINDS = {**DECISION_KINDS, REVIEW: "review"}
TIMELINE_MAX = 200


@dataclass(frozen=True)
class Entry:
    """One line of the timeline."""

    time: str
    kind: str
    summary: str
    ruleset_version: str | None
    evidence: tuple[dict[str, Any], ...] = field(default=())


def attempts(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every attempt, numbered by its position in the tracker's count (the order it was recorded),
    or, for one the tracker has not counted, after the counted ones in the order they happened."""
    events = list(events)
    position_of = {
        e["data"]["last_attempt"]["attempt_id"]: e["data"]["position"]
        for e in events
        if e["type"] == PROGRESS and e["data"].get("last_attempt")
    }
    found = [dict(e["data"]) for e in events if e["type"] == ATTEMPT]
    found.sort(key=lambda a: (position_of.get(a["attempt_id"], 10**9), moment(a["occurred_at"]), a["attempt_id"]))
    for number, attempt in enumerate(found, start=1):
        attempt["number"] = number
        attempt.pop("note", None)  # never shown (the history leaves it out already)
    return found


def levels(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """(time, level, expectancy, streak) after each attempt, in the order the tracker counted them."""
    found = []
    for event in events:
        if event["type"] != PROGRESS:
            continue
        view = event["data"]
        last = view.get("last_attempt") or {}
        if view.get("level") is None or not last:
            continue
        found.append(
            {
                "time": last.get("occurred_at") or event["time"],
                "position": view["position"],
                "level": view["level"],
                "expectancy": view.get("expectancy_last5"),
                "streak_days": view.get("streak_days"),
            }
        )
    found.sort(key=lambda p: p["position"])
    return found


def level_bands(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs of attempts at one ladder level: the first and last attempt number (position) of each."""
    bands: list[dict[str, Any]] = []
    for point in sorted(points, key=lambda p: p["position"]):
        if bands and bands[-1]["level"] == point["level"]:
            bands[-1]["to"] = point["position"]
        else:
            bands.append({"level": point["level"], "from": point["position"], "to": point["position"]})
    return bands


def timeline(
    events: Iterable[Mapping[str, Any]], rulesets: Mapping[str, str | None], limit: int = TIMELINE_MAX
) -> list[Entry]:
    """The decisions and reviews, newest first. `rulesets`: decision id -> the rule set it was decided
    under (the audit queries'); a decision not among them shows the one its data names, if any."""
    events = list(events)
    by_attempt = {a["attempt_id"]: a for a in attempts(events)}
    found = []
    for event in events:
        kind = KINDS.get(event["type"])
        if kind is None:
            continue
        data = event["data"]
        ruleset = rulesets.get(event["id"]) or data.get("ruleset_version")
        evidence: tuple[dict[str, Any], ...] = ()
        if kind == "warning":
            evidence = tuple(by_attempt.get(a, {"attempt_id": a, "missing": True}) for a in data.get("evidence", []))
        found.append(
            Entry(event["time"], kind, decision_text(kind, data), ruleset if kind != "review" else None, evidence)
        )
    found.sort(key=lambda e: moment(e.time), reverse=True)
    return found[:limit]


def moment(text: str) -> datetime:
    """An RFC 3339 time as a time (text compares wrongly across offsets and fractions)."""
    return datetime.fromisoformat(text)


def rulesets_of(audits: Mapping[str, Mapping[str, Any] | None]) -> dict[str, str | None]:
    """decision id -> rule set, from both services' audit replies."""
    return {d["id"]: d["ruleset_version"] for reply in audits.values() if reply for d in reply["decisions"]}


def chart_data(found: list[dict[str, Any]], points: list[dict[str, Any]]) -> dict[str, Any]:
    """What the page's charts draw (and its tables list): one point per attempt with SUDS readings."""
    return {
        "attempts": [
            {
                "number": a["number"],
                "time": a["occurred_at"],
                "outcome": a["outcome"],
                "level": a.get("level"),
                "before": a.get("suds_before"),
                "peak": a.get("suds_peak"),
                "after": a.get("suds_after"),
                "predicted": a.get("predicted_suds"),
                "came_true": a.get("prediction_came_true"),
            }
            for a in found
            if a.get("suds_peak") is not None
        ],
        "levels": points,
        "bands": level_bands(points),
    }
