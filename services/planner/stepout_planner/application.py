"""The planner application: inputs and tracker outcomes -> decider commands -> stored decisions,
the `plan` read model, and stored decisions -> `challenge.assigned` / `plan.paused` outputs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from eventsourcing.persistence import Notification

from stepout_contract import inputs, outputs
from stepout_contract.envelope import SOURCE_PLANNER, make_event, output_id, rfc3339
from stepout_contract.subjects import Subjects
from stepout_domain import planning
from stepout_domain.attempts import Outcome
from stepout_domain.catalog import Catalog
from stepout_domain.overload import Severity
from stepout_domain.plan_events import ChallengeAssigned, PlanPaused
from stepout_domain.ruleset import RuleSet
from stepout_runtime.application import BatchApplication, Rows, Touched
from stepout_runtime.inbound import DeadLetter, Inbound, Retry, Verdict
from stepout_runtime.metrics import PlannerMetrics
from stepout_runtime.outbox import Output
from stepout_runtime.views import ViewStore

from . import plan_view
from .plan import Plan, plan_id
from .records import command_record, event_from, event_record


def command_for(item: Inbound) -> Any:
    """The decider command an input stands for. Times are those recorded with the input:
    when it happened by its own account (capped at its arrival), or for an attempt's
    progress, when the attempt happened."""
    data, at = item.data, item.happened_at
    if isinstance(data, inputs.ParticipantEnrolled):
        return planning.Enrol(
            user_id=data.user_id,
            starting_level=data.starting_level,
            daily_limit=data.daily_limit,
            categories=tuple(data.categories),
            timezone=data.timezone,
            coach_id=data.coach_id,
            at=at,
        )
    if isinstance(data, inputs.ParticipantPaused):
        return planning.PauseByParticipant(until=data.until, at=at)
    if isinstance(data, inputs.ParticipantResumed):
        return planning.Resume(at=at)
    if isinstance(data, inputs.ParticipantReviewed):
        return planning.Review(coach_id=data.coach_id, at=at)
    if isinstance(data, inputs.ParticipantWithdrawn):
        return planning.Withdraw(erase=data.erase, at=at)
    if isinstance(data, outputs.ProgressView):
        last = data.last_attempt
        if last is None or data.level is None:
            return None  # a progress without an attempt (after a review) asks nothing of the plan
        return planning.ObserveProgress(
            position=data.position,
            level=data.level,
            level_ready=data.level_ready,
            last_attempt=planning.LastAttempt(
                attempt_id=last.attempt_id,
                assignment_id=last.assignment_id,
                challenge_id=last.challenge_id,
                level=last.level,
                outcome=Outcome(last.outcome),
                suds_peak=last.suds_peak,
                occurred_at=last.occurred_at,
            ),
            at=last.occurred_at,
        )
    if isinstance(data, outputs.OverloadWarning):
        return planning.ObserveWarning(
            warning_id=data.warning_id,
            severity=Severity(data.severity),
            raised_at=data.raised_at,
            escalate=data.escalate,
        )
    if isinstance(data, outputs.OverloadCleared):
        return planning.ObserveClearing(warning_id=data.warning_id, cleared_at=data.cleared_at, by=data.by)
    raise TypeError(f"no command for {type(data).__name__}")


class PlannerApplication(BatchApplication):
    name = "planner"
    projection = "plans"

    def __init__(
        self,
        env: dict[str, Any],
        *,
        rules: RuleSet,
        catalog: Catalog,
        views: ViewStore,
        subjects: Subjects,
        metrics: PlannerMetrics,
    ) -> None:
        super().__init__(env, rules=rules, catalog=catalog, views=views, subjects=subjects, metrics=metrics)
        self.planner_metrics = metrics
        self._decided: list[Any] = []
        self._topic = f"{Plan.__module__}:Plan.Decided"

    def begin_batch(self) -> None:
        self._decided = []

    def decide(self, item: Inbound, touched: Touched) -> Verdict:
        plan: Plan | None = self.load(plan_id(item.user_id), touched)
        from_platform = item.origin == "platform"
        if plan is not None and from_platform and plan.handled(item.event.id):
            return None  # this very input had its effect already (a redelivery, or sent again)
        command = command_for(item)
        if plan is None:
            if isinstance(command, planning.Enrol):
                plan = Plan(user_id=item.user_id)
            elif not from_platform:
                # The tracker has seen the enrolment; the planner's copy is still on its way.
                return Retry("plan not enrolled yet")
            else:
                return DeadLetter("not_enrolled", "participant is not enrolled")
        if plan.state.status == "withdrawn" and from_platform and not isinstance(command, planning.Withdraw):
            return DeadLetter("withdrawn", "participant has withdrawn")
        if command is None:
            return None
        cause = {**item.attributes(), "user_id": item.user_id}
        # An input no later than the last of its kind is that one again, or an older one: recorded, no effect.
        stale = from_platform and plan.is_stale(cause)
        events = [] if stale else planning.decide(plan.state, command, self.rules, self.catalog)
        touched[plan.id] = plan
        if events or from_platform:
            # A platform input is recorded even when it changes nothing: it is then known as seen,
            # and it shows in the participant's history and audit export.
            plan.decided(
                command=command_record(command),
                events=[event_record(e) for e in events],
                cause=cause,
                ruleset_version=self.rules.version,
            )
            self._decided.extend(events)
            if isinstance(command, planning.Enrol) and any(type(e).__name__ == "Enrolled" for e in events):
                self._decided.append("enrolled")
        return None

    def after_commit(self) -> None:
        metrics = self.planner_metrics
        for event in self._decided:
            if event == "enrolled":
                metrics.enrolled.inc()
            elif isinstance(event, ChallengeAssigned):
                metrics.assigned.labels(event.assignment.reason, str(event.assignment.level)).inc()
            elif isinstance(event, PlanPaused):
                metrics.paused.labels(event.reason).inc()
        self._decided = []

    # Read model -------------------------------------------------------------------------------

    def projection_topics(self) -> Sequence[str]:
        return (self._topic,)

    def rows_for(self, events: Sequence[Any]) -> Rows:
        stored = [e for e in events if isinstance(e, Plan.Decided)]  # type: ignore[attr-defined]
        known = self.views.get_many("plans_by_id", [str(s.originator_id) for s in stored])
        rows: Rows = {}
        views: dict[str, dict[str, Any] | None] = dict(known)
        for s in stored:
            key = str(s.originator_id)
            view = views.get(key)
            for record in s.events:  # type: ignore[attr-defined]
                view = plan_view.apply(view, s.cause["user_id"], event_from(record))  # type: ignore[attr-defined]
            views[key] = view
            if view is not None:
                rows[("plans_by_id", key)] = view
                rows[("plans", view["user_id"])] = view
        return rows

    def plan_of(self, user_id: str, now: datetime) -> dict[str, Any] | None:
        view = self.views.get("plans", user_id)
        if view is None:
            return None
        until = view.get("paused_until")
        if view["status"] == "paused" and until is not None and datetime.fromisoformat(until) <= now:
            view = {**view, "status": "active", "paused_until": None}  # a pause with an end needs no timer
        return view

    # Outbox -----------------------------------------------------------------------------------

    def to_outputs(self, notification: Notification) -> list[Output]:
        if notification.topic != self._topic:
            return []
        return self.effects_of(self.mapper.to_domain_event(notification))

    def effects_of(self, stored: Any) -> list[Output]:
        if not isinstance(stored, Plan.Decided):  # type: ignore[attr-defined]
            return []
        found: list[Output] = []
        user_id: str = stored.cause["user_id"]  # type: ignore[attr-defined]
        for index, record in enumerate(stored.events):  # type: ignore[attr-defined]
            event = event_from(record)
            if isinstance(event, ChallengeAssigned):
                family, name, data = "challenge", "assigned", event.assignment.as_wire()
            elif isinstance(event, PlanPaused):
                family, name = "plan", "paused"
                data = {
                    "user_id": user_id,
                    "reason": event.reason,
                    "until": rfc3339(event.until) if event.until else None,
                    "warning_id": event.warning_id,
                }
            else:
                continue
            cloud_event = make_event(
                event_id=output_id("planner", stored.originator_id, stored.originator_version, index),
                source=SOURCE_PLANNER,
                type_=f"stepout.{family}.{name}.v1",
                user_id=user_id,
                time=stored.timestamp,  # type: ignore[attr-defined]
                data=data,
            )
            found.append(Output(self.subjects.event(family, name, user_id), cloud_event))
        return found
