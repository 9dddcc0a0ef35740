"""Rule sets: every clinical threshold as named data with a version.

The default is `2026.1` (DOMAIN.md). A file named by `STEPOUT_RULESET` overrides
it; every decision is stamped with the version that made it, and every version
ever shipped stays registered so that past decisions can be re-derived.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class RuleSet(BaseModel):
    """Thresholds of the ladder, readiness, step-down, overload and planner rules."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: str = Field(min_length=1, max_length=32)

    # Ladder
    max_step_up: int = Field(1, ge=1, le=9)

    # Ready to step up from level L
    ready_min_completed: int = Field(3, ge=1)
    ready_min_days: int = Field(2, ge=1)
    ready_window_days: int = Field(14, ge=1)
    ready_no_avoidance_last: int = Field(2, ge=0)
    ready_peak_ratio: float = Field(0.5, gt=0, le=1)
    ready_after_max: int = Field(20, ge=0, le=100)
    bored_last_completed: int = Field(2, ge=1)
    bored_peak_max: int = Field(20, ge=0, le=100)

    # Step down to L-1
    step_down_peak: int = Field(90, ge=0, le=100)
    step_down_escape_peak: int = Field(70, ge=0, le=100)
    step_down_skipped_assignments: int = Field(2, ge=1)

    # Overload rules
    high_distress_peak: int = Field(85, ge=0, le=100)
    high_distress_count: int = Field(2, ge=1)
    high_distress_last: int = Field(3, ge=1)
    high_distress_window_days: int = Field(7, ge=1)
    no_habituation_min_attempts: int = Field(4, ge=2)
    escapes_count: int = Field(2, ge=1)
    escapes_last: int = Field(5, ge=1)
    rejection_streak_length: int = Field(5, ge=2)
    rejection_streak_window_hours: int = Field(24, ge=1)
    hostile_count: int = Field(2, ge=1)
    hostile_window_days: int = Field(7, ge=1)

    # Warnings
    escalate_warnings: int = Field(3, ge=1)
    escalate_window_days: int = Field(30, ge=1)
    clear_after_hours_caution: int = Field(24, ge=0)
    clear_after_hours_high: int = Field(48, ge=0)

    # Planner response
    ease_off_days: int = Field(2, ge=0)
    high_pause_hours: int = Field(48, ge=1)

    @model_validator(mode="after")
    def _windows_hold_their_counts(self) -> RuleSet:
        if self.high_distress_count > self.high_distress_last:
            raise ValueError("high_distress_count cannot exceed high_distress_last")
        if self.escapes_count > self.escapes_last:
            raise ValueError("escapes_count cannot exceed escapes_last")
        return self


DEFAULT_VERSION = "2026.1"
DEFAULT_RULESET = RuleSet(version=DEFAULT_VERSION)

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
    """The rule set in force: the default, or the JSON file at `path`, registered by its version."""
    if path is None or str(path) == "":
        return DEFAULT_RULESET
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
