"""docs/RULES.md: the domain model and every rule, with the thresholds of every shipped rule set.

The text names thresholds, never their numbers: `{name}` in the templates below is a field of
`RuleSet`, written as the name followed by its value in the rule set in force, and the table at
the end holds every field of every shipped version (`data/rulesets/*.json` besides the built-in
default), read from the model and the files. A new field or a new shipped file shows up with no
change here, and a test fails when the committed document differs from what this module writes.
Regenerate with `make rules-doc` (`python -m stepout_domain.rules_doc > docs/RULES.md`).
"""

from __future__ import annotations

import re
import sys
import textwrap
from collections.abc import Iterable, Sequence
from typing import Any

from annotated_types import Ge, Gt, Le, Lt
from pydantic.fields import FieldInfo

from stepout_contract.inputs import ParticipantEnrolled
from stepout_domain.catalog import MAX_LEVEL, MIN_LEVEL
from stepout_domain.history import EXPECTANCY_LAST
from stepout_domain.overload import RULE_IDS
from stepout_domain.ruleset import CURRENT_VERSION, DEFAULT_RULESET, SHIPPED_DIR, RuleSet, by_version, load_ruleset

WIDTH = 100  # of a line of prose in the document

# Numbers the text needs that no rule set holds: the ladder's ends, the progress view's window, and
# the enrolment defaults a platform gets when it leaves them out (CONTRACT §3).
_STARTING_LEVEL: int = ParticipantEnrolled.model_fields["starting_level"].default
FACTS: dict[str, object] = {
    "level_min": MIN_LEVEL,
    "level_max": MAX_LEVEL,
    "expectancy_last": EXPECTANCY_LAST,
    "starting_level_default": _STARTING_LEVEL,
    "starting_suds": 10 * _STARTING_LEVEL,
    "daily_limit_default": ParticipantEnrolled.model_fields["daily_limit"].default,
    "default_version": DEFAULT_RULESET.version,
    "current_version": CURRENT_VERSION,
}

# The words of the domain, used in the code, the contract, the metrics and the document.
WORDS: tuple[tuple[str, str], ...] = (
    ("participant", "a person the platform enrolled, known to stepout only by an opaque `user_id`"),
    (
        "ladder, level",
        "the exposure hierarchy, from level {level_min} (trivial) to {level_max} (hardest); a level's "
        "expected distress is about ten times its number in SUDS",
    ),
    ("challenge", "an item of the catalog: id, title, category, level, expected SUDS"),
    (
        "category",
        "`money` (discounts, freebies), `favours` (access, help), `social` (approach, compliment, ask for a "
        "number), `play` (games, dares), `performance` (sing, speak up), `career` (pitch, ask for feedback)",
    ),
    ("assignment", "one challenge the planner gives one participant, not to be done before its `not_before` time"),
    ("attempt", "what the participant did with an assignment, or with a challenge of their own choice"),
    (
        "SUDS",
        "subjective units of distress, 0 to 100 (25 mild, 50 significant, 75 high, 100 extreme), reported "
        "before, at the peak and after an attempt",
    ),
    (
        "outcome",
        "`rejected` (a plain no: in this game, a success), `accepted` (a yes), `hostile` (a harsh or personal "
        "rejection), `escaped` (started, left before asking), `skipped` (not tried)",
    ),
    ("completed", "an attempt whose outcome is `rejected`, `accepted` or `hostile`"),
    (
        "prediction",
        "before an attempt, `predicted_suds`; after it, `prediction_came_true` from 0 to 100: a low value means "
        "the feared outcome did not happen (expectancy violation, what makes exposure work)",
    ),
    ("habituation", "the peak SUDS falling over repeats of the same level"),
    ("warning", "an overload signal with a severity: `caution`, `high` or `crisis`"),
)

# The overload rules, in `RULE_IDS` order: (condition, severity).
OVERLOAD_RULES: dict[str, tuple[str, str]] = {
    "high_distress": (
        "among the last {high_distress_last} attempts that have a peak, at least {high_distress_count} "
        "peaked at {high_distress_peak} or more, within {high_distress_window_days} days of the judged attempt",
        "caution",
    ),
    "no_habituation": (
        "at least {no_habituation_min_attempts} attempts with a peak at the current level (since the "
        "participant last arrived there), and the latest peak is not below the first",
        "caution",
    ),
    "escapes": ("at least {escapes_count} `escaped` among the last {escapes_last} attempts", "caution"),
    "rejection_streak": (
        "{rejection_streak_length} or more consecutive completed attempts ending in `rejected` or `hostile`, "
        "all within {rejection_streak_window_hours} hours of the judged attempt (`accepted` breaks the run; "
        "`escaped` and `skipped` neither count nor break it)",
        "caution",
    ),
    "hostile_rejections": (
        "at least {hostile_count} `hostile` outcomes within {hostile_window_days} days of the judged attempt",
        "high",
    ),
    "crisis_reported": (
        "an attempt reported `crisis_reported: true` that no coach's review has covered yet, however late it arrived",
        "crisis",
    ),
}

HEAD = """\
# The domain: rules and thresholds

<!-- Generated by `make rules-doc` from shared/stepout_domain/ruleset.py and
shared/stepout_domain/data/rulesets/*.json; edit those, not this file. -->

Rejection therapy asks a person to look for small social "no"s on purpose until rejection loses
its sting. It is a self-help form of the graded exposure that cognitive-behavioural therapy (CBT)
uses for social anxiety: meet a feared situation again and again, in small steps, until the
distress it brings fades. Too fast or too often, it backfires: a run of rejections is exhausting,
and people who climb too fast give up. stepout paces it. This document is the model behind every
decision stepout publishes ([CONTRACT.md](CONTRACT.md) is the wire contract).

## Words

These words are used in the code, the contract, the metrics and here.

{words_table}

## Rule sets

Every threshold below is a field of a rule set, and every rule set has a `version`. The rule set
in force is {current_version}; `STEPOUT_RULESET` names a file of thresholds that replaces it (a
field left out keeps its base value, the built-in {default_version}). Each decision is stamped with
the version that made it, and every version ever shipped stays known, so an audit (`stepout audit
decisions`) re-derives a past decision with the thresholds that made it. In the text, a threshold
is written as its name followed by its value in the rule set in force, such as
{ready_min_completed}; [Thresholds](#thresholds) lists every threshold of every shipped version. A
threshold shown as "off" turns its rule off.

"Days" are the participant's local calendar days, in the `timezone` given at enrolment.

## Time

A rule reads time from events, never from the clock at the moment it runs: an attempt's
`occurred_at`, and for any other decision the time its triggering event happened (its CloudEvent
`time`, never later than when it arrived). Attempts are judged in `occurred_at` order, whatever
order they arrive in ([LATE-DATA.md](LATE-DATA.md)). A window ("within N days") counts back from
the attempt being judged and includes its edge. So a replay of the same history always makes the
same decisions.

## Start

The first assignment is at the enrolment's `starting_level` (default {starting_level_default}, so
about SUDS {starting_suds}).

## Step size

An assignment is never more than {max_step_up} level(s) above the participant's current level. A
step up also needs the last assignment to have been at the plan's level, so after easing off the
participant is back at the level for one assignment first.

## Ready to step up

From level L, over the attempts since the participant last arrived at L (self-chosen attempts at
other levels do not break that run), a participant is ready when all of these hold:

- at least {ready_min_completed} completed attempts at L within the last {ready_window_days}
  days, on at least {ready_min_days} different days;
- none of the last {ready_no_avoidance_last} attempts at L was `escaped` or `skipped`;
- the lower of the last 2 peaks at L is at most {ready_peak_ratio} times the first peak at L, or
  the last `suds_after` at L is at most {ready_after_max}.

A participant is also ready when the last {bored_last_completed} completed attempts at L all
peaked at {bored_peak_max} or below ("if you're bored, you aren't scared"); this needs no window
and ignores avoidance. Readiness is judged at the newest attempt and shown as `level_ready`.

## Step down

The next assignment is one level lower (`step_down`, never below level {level_min}) when the last
attempt peaked at {step_down_peak} or more, or was `escaped` with a peak of
{step_down_escape_peak} or more, or when the last {step_down_skipped_assignments} assignments at
the level were all `skipped`: the step is too big.

## Coming back after a break

Fear returns after time away from exposure (return of fear, spontaneous recovery), so a participant
back after a long pause is not judged against what they achieved before it. After
{return_after_days} days without a completed attempt, the next attempt ends a break: the baseline
at the level restarts (readiness, `no_habituation` and the progress view's `at_level` count from
that attempt on, not from the first peak before the break), its `last_attempt.after_break` is true,
and the planner's next assignment is one level lower, with reason `returning`. Rest days shorter
than that carry no penalty.

## Overload warnings

After every attempt the tracker checks the {rule_count} overload rules on the participant's
history, judged at the newest attempt; every rule that holds is reported in one warning, each with
what was observed, the threshold it met and the attempts behind it.

{rules_table}

## Severity and escalation

A warning's severity is the highest of its rules'. A participant has at most one active warning.
When, after an attempt, a rule holds that the active warning does not list, a new warning listing
every rule that holds replaces it, and the old one is cleared with `by: superseded`.

A warning is escalated (`escalate: true`: a human coach should look at the participant) when it
is `high` or `crisis`, when it makes {escalate_warnings} warnings raised within
{escalate_window_days} days (itself included), or when it supersedes an escalated warning. Only a
coach's review ends an escalation.

## Clearing

A `caution` or `high` warning clears (`by: rules`) when none of its rules holds any more on the
latest history and at least {clear_after_hours_caution} hours (`caution`) or
{clear_after_hours_high} hours (`high`) have passed since it was raised; this is checked on the
next attempt or review. A `crisis` clears only when a coach reviews the participant
(`participant.reviewed`, `by: review`); a review also clears an escalated warning, whatever its
rules. Only the participant's coach reviews them: the `coach_id` of the enrolment in force (a
later enrolment may change it), or any coach for a participant enrolled without one. Another
coach's review is refused (dead letter `not_their_coach`) and changes nothing.

## Planner response

- One open assignment per participant at a time. An attempt that names it (or any attempt, when
  none is named) closes it, and the next one is issued: a step down, a step up or a repeat.
- The daily limit (`daily_limit`, an enrolment setting, default {daily_limit_default}) counts what
  {daily_limit_counts} says. With `attempts`: once the participant has completed `daily_limit`
  attempts on a local day (counted on the day each attempt occurred, so an attempt synced late
  counts for its own day, and an assignment replaced before it was tried counts for nothing), the
  next assignment carries `not_before` = the next local midnight. With `assignments` (the base
  rule set): at most `daily_limit` live assignments per local day, a cancelled one giving its
  slot back. Rest days carry no penalty.
- `caution`: ease-off. For {ease_off_days} local days from when the warning was raised, repeats,
  steps up and resumes become `ease_off` assignments one level below the plan's level, and the
  level does not rise. The open assignment stays: the attempt that raised the warning is about to
  close it, so the very next assignment is already eased off.
- `high`: the open assignment is cancelled, the level goes one lower, and the plan pauses for
  {high_pause_hours} hours from when the warning was raised (`plan.paused`, reason `overload`).
  The `resume` assignment is issued at once with `not_before` = the end of the pause, so no timer
  is needed. A participant's own pause can lengthen this hold, never shorten it.
- `crisis`: the open assignment is cancelled, the level goes one lower, and the plan pauses with
  no end (reason `crisis`) until the tracker clears the crisis with `by: review`; then a `resume`
  assignment follows.
- A participant's pause (`participant.paused`, with or without `until`) and resume
  (`participant.resumed`) pause and resume the plan (`plan.paused`, `plan.resumed`); a withdrawal
  stops it for good, and enrolling again after it is refused. An input that changes nothing (a
  resume during a crisis pause, a pause whose `until` has passed, the same settings again) is
  recorded and told back as a `plan.notice` saying why.
- Variety: never the same challenge twice in a row when the level has another one.

## Progress

What people are shown (`progress.updated`, and the `progress` query): the level they practise at
(`practice_level`, the level of their latest attempt at an assigned challenge), whether they are
ready to step up, attempts by outcome, habituation at that level (the first and the latest peak
since arriving there, or since a break), the mean `prediction_came_true` of the last
{expectancy_last} attempts that report one, the streak of local days with a completed attempt
(true when asked: a streak nobody kept up reads 0 once `streak_until` has passed), the newest
attempt's time, the active warning, and the rule-set version. The plan's own level (`plan_level`
of the `plan` query) is the level the planner works at, and an assignment has its own `level`
(one below the plan's while easing off or returning).

## Thresholds

Every field of the rule set, in each shipped version. A bold value differs from the base
{default_version}; "allowed" is what a rule-set file may set.

{thresholds_table}

## Sources

Facts, not quotes:

- SUDS anchors, and ladder steps 5 to 15 SUDS apart: the exposure-hierarchy worksheet of
  therapyresource.net; Wikipedia, "Exposure hierarchy".
- Start at SUDS 30 to 40 and stay until distress halves: the exposure tracking log of
  therapistaid.com; DBT self-help pages.
- Repeat a step 3 to 5 times over several days, and move on when distress is about 20 or less:
  mymindmywellness.com; Anxiety Canada, "plan exposure exercises" ("if you're bored, you aren't
  scared").
- Step down at 9 or 10 out of 10; repeated avoidance means the step is too big: cbt4panic.org
  (troubleshooting); mymindmywellness.com.
- Fear that does not fall within and between sessions predicts a poor response: exposure
  treatment manuals; Norton (2011) on first-exposure distress and dropout.
- Expectancy violation (inhibitory learning): Craske et al. (2014).
- Fear returns after a break in exposure (spontaneous recovery, the return of fear): Rachman
  (1989), "The return of fear: review and prospect", Clinical Psychology Review 9; Vervliet,
  Craske and Hermans (2013), "Fear extinction and relapse", Annual Review of Clinical Psychology 9.
- Rejection therapy: Jason Comely's game (one rejection a day; a "no" is a success); Jia Jiang's
  100 days of rejection (a plain "no" as against a hostile, personal rejection).
- Length of supported self-help, and referral: NICE guideline CG159.
- Thresholds tied to no source (the streak within a day, the warnings that escalate, the
  cooldowns) are design choices, exposed as rule-set fields for a clinician to review.
"""


def shipped_rulesets() -> list[RuleSet]:
    """The default rule set, then every rule set shipped as a file, oldest version first."""
    shipped = [load_ruleset(file) for file in SHIPPED_DIR.glob("*.json")]
    return [DEFAULT_RULESET, *sorted(shipped, key=lambda rules: _version_key(rules.version))]


def _version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    # "2026.10" comes after "2026.9".
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"[.\-]", version))


def thresholds() -> dict[str, FieldInfo]:
    """Every field of `RuleSet` but its `version`, in the order the model declares them."""
    return {name: field for name, field in RuleSet.model_fields.items() if name != "version"}


def value_text(value: Any) -> str:
    """A threshold as the document shows it; None (a rule turned off) is "off"."""
    if value is None:
        return "off"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def allowed_text(field: FieldInfo) -> str:
    """The bounds a rule-set file must respect, from the field's constraints."""
    parts = []
    for bound in field.metadata:
        if isinstance(bound, Ge):
            parts.append(f">= {bound.ge}")
        elif isinstance(bound, Gt):
            parts.append(f"> {bound.gt}")
        elif isinstance(bound, Le):
            parts.append(f"<= {bound.le}")
        elif isinstance(bound, Lt):
            parts.append(f"< {bound.lt}")
    return ", ".join(parts) or "any"


class _Names(dict[str, str]):
    """`{name}` in a template: a threshold as `name` (default value), or one of `FACTS`; an unknown
    name fails, so a renamed field cannot leave the text behind."""

    def __missing__(self, name: str) -> str:
        if name in FACTS:
            return str(FACTS[name])
        if name in thresholds():
            return f"`{name}` ({value_text(getattr(by_version(CURRENT_VERSION), name))})"
        raise KeyError(f"the rules document names {name!r}, which is neither a rule-set field nor a fact")


def _table(head: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    lines.extend("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows)
    return "\n".join(lines)


def _words_table(names: _Names) -> str:
    return _table(("word", "meaning"), ((word, meaning.format_map(names)) for word, meaning in WORDS))


def _rules_table(names: _Names) -> str:
    if list(OVERLOAD_RULES) != list(RULE_IDS):
        raise ValueError(f"OVERLOAD_RULES must describe exactly the overload rules {RULE_IDS}, in order")
    rows = (
        (f"`{rule}`", condition.format_map(names), severity) for rule, (condition, severity) in OVERLOAD_RULES.items()
    )
    return _table(("rule", "holds when", "severity"), rows)


def _thresholds_table(versions: list[RuleSet]) -> str:
    default = versions[0]
    head = ["threshold", "meaning", "allowed", f"{default.version} (base)", *(r.version for r in versions[1:])]
    rows = []
    for name, field in thresholds().items():
        values = [getattr(rules, name) for rules in versions]
        cells = [value_text(v) if v == values[0] else f"**{value_text(v)}**" for v in values]
        rows.append([f"`{name}`", field.description or "", allowed_text(field), *cells])
    return _table(head, rows)


def _fill(text: str, indent: str = "") -> str:
    words = " ".join(text.split())
    return textwrap.fill(words, WIDTH, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False)


def _reflow(text: str) -> str:
    """Paragraphs and list items wrapped at `WIDTH`; headings, tables and comments left as they are."""
    blocks = []
    for block in text.strip("\n").split("\n\n"):
        if block.startswith(("#", "|", "<!--")):
            blocks.append(block)
        elif block.startswith("- "):
            blocks.append("\n".join(_fill(item, indent="  ") for item in re.split(r"\n(?=- )", block)))
        else:
            blocks.append(_fill(block))
    return "\n\n".join(blocks) + "\n"


def render() -> str:
    """The whole of docs/RULES.md."""
    names = _Names(rule_count=str(len(RULE_IDS)))
    names["words_table"] = _words_table(names)
    names["rules_table"] = _rules_table(names)
    names["thresholds_table"] = _thresholds_table(shipped_rulesets())
    return _reflow(HEAD.format_map(names))


if __name__ == "__main__":
    sys.stdout.write(render())
