"""Rule sets: every clinical threshold as named data with a version.

The default is `2026.1` (DOMAIN.md). A file named by `STEPOUT_RULESET` overrides
it; every decision is stamped with the version that made it, and every version
ever shipped stays registered so that past decisions can be re-derived.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class RuleSet(BaseModel):
    """Thresholds of the ladder, readiness, step-down, overload and planner rules."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str = Field(
        min_length=1, max_length=32, description="the rule set's name, stamped on every decision it makes"
    )

    # Ladder
    max_step_up: int = Field(1, ge=1, le=9, description="most levels a step up may climb above the current level")

    # Ready to step up from level L
    ready_min_completed: int = Field(
        3,
        ge=1,
        description="completed attempts at the level, within the readiness window, needed to be ready to step up",
    )
    ready_min_days: int = Field(2, ge=1, description="different local days those completed attempts must fall on")
    ready_window_days: int = Field(
        14, ge=1, description="days back from the latest attempt within which readiness counts completed attempts"
    )
    ready_no_avoidance_last: int = Field(
        2, ge=0, description="latest attempts at the level none of which may be escaped or skipped to be ready"
    )
    ready_peak_ratio: float = Field(
        0.5,
        gt=0,
        le=1,
        description="ready when the lower of the last 2 peaks at the level is at most this fraction of its first peak",
    )
    ready_after_max: int = Field(
        20, ge=0, le=100, description="or ready when the last suds_after at the level is at most this (SUDS)"
    )
    bored_last_completed: int = Field(
        2,
        ge=1,
        description="latest completed attempts at the level that, all peaking low, make a participant ready (bored)",
    )
    bored_peak_max: int = Field(20, ge=0, le=100, description="peak SUDS at or below which those attempts count as low")

    # Step down to L-1
    step_down_peak: int = Field(
        90, ge=0, le=100, description="an attempt peaking at or above this (SUDS) brings a step down"
    )
    step_down_escape_peak: int = Field(
        70, ge=0, le=100, description="an escaped attempt peaking at or above this (SUDS) brings a step down"
    )
    step_down_skipped_assignments: int = Field(
        2, ge=1, description="assignments skipped in a row at the level that bring a step down"
    )

    # Overload rules
    high_distress_peak: int = Field(
        85, ge=0, le=100, description="peak SUDS at or above which an attempt counts for high_distress"
    )
    high_distress_count: int = Field(
        2, ge=1, description="such attempts among the last high_distress_last that raise high_distress"
    )
    high_distress_last: int = Field(3, ge=1, description="latest attempts with a peak that high_distress looks at")
    high_distress_window_days: int = Field(
        7, ge=1, description="days back from the judged attempt within which high_distress counts them"
    )
    no_habituation_min_attempts: int = Field(
        4, ge=2, description="attempts with a peak at the current level before no_habituation can hold"
    )
    escapes_count: int = Field(2, ge=1, description="escaped attempts among the last escapes_last that raise escapes")
    escapes_last: int = Field(5, ge=1, description="latest attempts, of any outcome, that escapes looks at")
    rejection_streak_length: int = Field(
        5, ge=2, description="consecutive completed attempts ending in rejected or hostile that raise rejection_streak"
    )
    rejection_streak_window_hours: int = Field(
        24, ge=1, description="hours back from the judged attempt within which the streak counts"
    )
    hostile_count: int = Field(2, ge=1, description="hostile outcomes that raise hostile_rejections")
    hostile_window_days: int = Field(
        7, ge=1, description="days back from the judged attempt within which hostile_rejections counts them"
    )

    # Warnings
    escalate_warnings: int = Field(
        3,
        ge=1,
        description="warnings within escalate_window_days, the new one included, that flag the participant for a coach",
    )
    escalate_window_days: int = Field(
        30, ge=1, description="days back from a new warning within which escalation counts warnings"
    )
    clear_after_hours_caution: int = Field(
        24, ge=0, description="hours a caution stays at least, even when its rules no longer hold"
    )
    clear_after_hours_high: int = Field(
        48, ge=0, description="hours a high warning stays at least, even when its rules no longer hold"
    )

    # Planner response
    ease_off_days: int = Field(
        2, ge=0, description="local days after a caution during which assignments are eased off one level lower"
    )
    high_pause_hours: int = Field(48, ge=1, description="hours the plan pauses after a high warning")
    daily_limit_counts: Literal["assignments", "attempts"] = Field(
        "assignments",
        description=(
            "what a participant's daily_limit counts per local day: assignments issued, or attempts completed "
            "(by the day each attempt occurred)"
        ),
    )

    # Coming back after a break
    return_after_days: int | None = Field(
        None,
        ge=1,
        description=(
            "days without a completed attempt after which the baseline at the level restarts and the next "
            "assignment is one level lower (returning)"
        ),
    )

    @model_validator(mode="after")
    def _windows_hold_their_counts(self) -> RuleSet:
        if self.high_distress_count > self.high_distress_last:
            raise ValueError("high_distress_count cannot exceed high_distress_last")
        if self.escapes_count > self.escapes_last:
            raise ValueError("escapes_count cannot exceed escapes_last")
        return self


# The base thresholds (every field's default): rule set 2026.1, built in.
DEFAULT_VERSION = "2026.1"
DEFAULT_RULESET = RuleSet(version=DEFAULT_VERSION)
# The rule set in force when STEPOUT_RULESET names none (shipped in data/rulesets/).
CURRENT_VERSION = "2026.3"

_REGISTRY: dict[str, RuleSet] = {DEFAULT_VERSION: DEFAULT_RULESET}


class RuleSetError(ValueError):
    """A rule-set file that cannot be used; the message names the file and the field."""


def register(rules: RuleSet) -> RuleSet:
    """Make a rule set findable by version. A version, once registered, never changes meaning."""
    known = _REGISTRY.get(rules.version)
    if known is not None and known != rules:
        raise RuleSetError(f"rule set version {rules.version!r} is already registered with other thresholds")
    _REGISTRY[rules.version] = rules
    return rules


def by_version(version: str) -> RuleSet:
    """The rule set that made a past decision."""
    try:
        return _REGISTRY[version]
    except KeyError:
        raise RuleSetError(f"unknown rule set version {version!r}") from None


def parse_ruleset(data: dict[str, Any], origin: str = "rule set") -> RuleSet:
    """Validate a mapping of thresholds; unset thresholds keep the 2026.1 defaults."""
    try:
        return RuleSet.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise RuleSetError(f"{origin}: {where}: {first['msg']}") from None


def load_ruleset(path: str | Path | None) -> RuleSet:
    """The rule set in force: CURRENT_VERSION, or the JSON file at `path`, registered by its version."""
    if path is None or str(path) == "":
        return by_version(CURRENT_VERSION)
    file = Path(path)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RuleSetError(f"{file}: cannot read: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise RuleSetError(f"{file}: not valid JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(data, dict):
        raise RuleSetError(f"{file}: expected a JSON object of thresholds")
    return register(parse_ruleset(data, origin=str(file)))


SHIPPED_DIR = Path(__file__).parent / "data" / "rulesets"


def _register_shipped() -> None:
    """Every version ever shipped (`data/rulesets/*.json`) is known, whatever STEPOUT_RULESET says now."""
    for file in sorted(SHIPPED_DIR.glob("*.json")):
        load_ruleset(file)


_register_shipped()
