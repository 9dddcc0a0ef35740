"""The summary of `stepout simulate`: what the cohort did, what stepout answered, and how many of
the injected overload episodes it caught."""

from __future__ import annotations

import statistics
from collections import Counter
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from .personas import DELIBERATE_DEAD_LETTERS, PERSONAS, STEADY

if TYPE_CHECKING:
    from .cohort import Participant, Simulation


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def summarise(sim: Simulation, *, participants: int, days: int, seed: int, wall: float) -> dict[str, Any]:
    """What the run did and what stepout answered, as JSON-ready data."""
    cohort = list(sim.cohort.values())
    personas: dict[str, dict[str, Any]] = {}
    for persona in PERSONAS:
        name, group = persona.name, [p for p in cohort if p.script.persona is persona]
        if not group:
            continue
        ends = [p.script.attempts[-1].level if p.script.attempts else p.script.starting_level for p in group]
        personas[name] = {
            "participants": len(group),
            "attempts": sum(len(p.script.attempts) for p in group),
            "level_start_mean": round(statistics.mean(p.script.starting_level for p in group), 2),
            "level_end_mean": round(statistics.mean(ends), 2),
            "level_max": max(max((a.level for a in p.script.attempts), default=p.script.starting_level) for p in group),
            "warned": sum(1 for p in group if p.warnings),
            "warnings_by_rule": _counts(r["rule"] for p in group for w in p.warnings for r in w["rules"]),
            "stalls": sum(1 for p in group if p.stalled),
        }
    warnings = [w for p in cohort for w in p.warnings]
    episodes = [(p, p.script.episode) for p in cohort if p.script.episode is not None]
    caught = [(p, e) for p, e in episodes if _caught(p)]
    steady = [p for p in cohort if p.script.persona.name == STEADY]
    steady_warned = [p for p in steady if p.warnings]
    leads = [p.lead for p in cohort if p.lead > timedelta(hours=1)]
    attempts = sum(len(p.script.attempts) for p in cohort)
    return {
        "participants": participants,
        "days": days,
        "seed": seed,
        "personas": personas,
        "attempts": attempts,
        "attempts_by_outcome": _counts(a.outcome for p in cohort for a in p.script.attempts),
        "assignments_by_reason": _counts(a["reason"] for p in cohort for a in p.assignments),
        "warnings": {
            "total": len(warnings),
            "by_severity": _counts(w["severity"] for w in warnings),
            "by_rule": _counts(r["rule"] for w in warnings for r in w["rules"]),
        },
        "escalations": sum(1 for w in warnings if w["escalate"]),
        "participants_escalated": sum(1 for p in cohort if any(w["escalate"] for w in p.warnings)),
        "clearings": dict(sorted(sim.clearings.items())),
        "pauses_by_reason": _counts(pause["reason"] for p in cohort for pause in p.pauses),
        "reviews_sent": sum(p.reviews for p in cohort),
        "dead_letters": _dead_letters(sim.dead_letters),
        "stalls": sum(1 for p in cohort if p.stalled),
        "stalled": [f"{p.script.user_id} ({p.stalled})" for p in cohort if p.stalled][:10],
        "episodes": {
            "injected": len(episodes),
            "caught": len(caught),
            "rate": _rate(len(caught), len(episodes)),
            "by_rule": {
                rule: {
                    "injected": sum(1 for _, e in episodes if e.rule == rule),
                    "caught": sum(1 for _, e in caught if e.rule == rule),
                }
                for rule in sorted({e.rule for _, e in episodes})
            },
            "missed": [p.script.user_id for p, _ in episodes if not _caught(p)][:10],
        },
        "steady_warned": {
            "warned": len(steady_warned),
            "participants": len(steady),
            "rate": _rate(len(steady_warned), len(steady)),
        },
        "planner_clock_lead": {
            "participants": len(leads),
            "median_hours": round(statistics.median(d.total_seconds() for d in leads) / 3600, 1) if leads else 0.0,
        },
        "wall_seconds": round(wall, 1),
        "attempts_per_second": round(attempts / wall, 1) if wall > 0 else 0.0,
    }


def _dead_letters(found: Counter[tuple[str, str]]) -> dict[str, Any]:
    """The cohort's dead letters by reason and by service; `unexpected` are those of a reason no
    persona sends on purpose: stepout refused inputs the simulator sent as valid."""
    by_service: dict[str, dict[str, int]] = {}
    by_reason: Counter[str] = Counter()
    for (service, reason), count in sorted(found.items()):
        by_service.setdefault(service, {})[reason] = count
        by_reason[reason] += count
    return {
        "total": sum(found.values()),
        "by_reason": dict(sorted(by_reason.items())),
        "by_service": by_service,
        "unexpected": {r: n for r, n in sorted(by_reason.items()) if r not in DELIBERATE_DEAD_LETTERS},
    }


def refused_valid_inputs(summary: dict[str, Any]) -> str | None:
    """One line when the run saw dead letters no persona sends on purpose, else None."""
    letters = summary["dead_letters"]
    if not letters["unexpected"]:
        return None
    where = "; ".join(
        f"{service} {', '.join(f'{reason} {n}' for reason, n in reasons.items() if reason in letters['unexpected'])}"
        for service, reasons in letters["by_service"].items()
        if set(reasons) & set(letters["unexpected"])
    )
    count = sum(letters["unexpected"].values())
    return f"stepout refused {count} valid input(s) as dead letters ({where})"


def _caught(p: Participant) -> bool:
    """A warning whose evidence names the onset attempt, or raised by the onset attempt or the next one."""
    episode = p.script.episode
    if episode is None:
        return False
    following = p.script.attempt_after(episode.onset_index)
    raisers = {episode.onset_at} | ({following.at} if following else set())
    return any(episode.onset_id in w["evidence"] or _time(w["raised_at"]) in raisers for w in p.warnings)


def _counts(values: Any) -> dict[str, int]:
    return dict(sorted(Counter(values).items()))


def _rate(part: int, whole: int) -> float:
    return round(100 * part / whole, 1) if whole else 0.0


def render(summary: dict[str, Any]) -> None:
    """The summary as `rich` tables and the detection figures."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    s = summary
    cohort = Table(title=f"stepout simulate: {s['participants']} participants, {s['days']} days, seed {s['seed']}")
    for column in ("persona", "people", "attempts", "level start -> end", "max level", "warned", "stalls"):
        cohort.add_column(column, justify="left" if column == "persona" else "right")
    for name, row in s["personas"].items():
        cohort.add_row(
            name,
            str(row["participants"]),
            str(row["attempts"]),
            f"{row['level_start_mean']:.1f} -> {row['level_end_mean']:.1f}",
            str(row["level_max"]),
            str(row["warned"]),
            str(row["stalls"]),
        )
    console.print(cohort)

    answers = Table(title="what stepout answered", show_header=False)
    answers.add_column("what")
    answers.add_column("counts")

    def line(values: dict[str, int]) -> str:
        return ", ".join(f"{k} {v}" for k, v in values.items()) or "none"

    answers.add_row("attempts by outcome", line(s["attempts_by_outcome"]))
    answers.add_row("assignments by reason", line(s["assignments_by_reason"]))
    answers.add_row("warnings by severity", f"{s['warnings']['total']}: {line(s['warnings']['by_severity'])}")
    answers.add_row("warnings by rule", line(s["warnings"]["by_rule"]))
    answers.add_row("escalations", f"{s['escalations']} warnings, {s['participants_escalated']} participants")
    answers.add_row("warnings cleared by", line(s["clearings"]))
    answers.add_row("pauses by reason", line(s["pauses_by_reason"]))
    answers.add_row("reviews sent", str(s["reviews_sent"]))
    letters = s["dead_letters"]
    answers.add_row(
        "dead letters",
        f"{letters['total']}"
        + "".join(f"; {service}: {line(reasons)}" for service, reasons in letters["by_service"].items())
        + (f" (unexpected: {line(letters['unexpected'])})" if letters["unexpected"] else ""),
    )
    answers.add_row("stalls", f"{s['stalls']}" + (f": {', '.join(s['stalled'])}" if s["stalled"] else ""))
    console.print(answers)

    e, w = s["episodes"], s["steady_warned"]
    console.print(f"episodes caught within one attempt of onset: {e['caught']}/{e['injected']} ({e['rate']}%)")
    for rule, row in e["by_rule"].items():
        console.print(f"  {rule}: {row['caught']}/{row['injected']}")
    if e["missed"]:
        console.print(f"  missed: {', '.join(e['missed'])}")
    console.print(f"steady participants ever warned: {w['warned']}/{w['participants']} ({w['rate']}%)")
    lead = s["planner_clock_lead"]
    if lead["participants"]:
        console.print(
            f"note: for {lead['participants']} participants the planner's clock ran ahead of simulated time "
            f"(median {lead['median_hours']} h): it dated their enrolment when it received it"
        )
    console.print(f"wall time: {s['wall_seconds']} s ({s['attempts_per_second']} attempts/s)")
