"""The planner application: inputs and tracker outcomes -> decider commands -> stored decisions,
the `plan` read model, and stored decisions -> `challenge.assigned` / `plan.paused` outputs."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from eventsourcing.persistence import Notification

from stepout_contract import inputs, outputs, wire
from stepout_contract.envelope import SOURCE_PLANNER, make_event, output_id
from stepout_contract.subjects import Subjects
from stepout_contract.vocabulary import Outcome, Severity
from stepout_domain import planning
from stepout_domain.catalog import Catalog
from stepout_domain.plan_events import ChallengeAssigned, PlanPaused, PlanResumed, Withdrawn
from stepout_domain.plan_notices import notice_for
from stepout_domain.plan_state import PlanState
from stepout_domain.ruleset import RuleSet
from stepout_runtime.application import BatchApplication, Touched
from stepout_runtime.inbound import DeadLetter, Inbound, Retry, Verdict
from stepout_runtime.ingest import deliveries_spanning
from stepout_runtime.keystore import KeyStore
from stepout_runtime.metrics import PlannerMetrics
from stepout_runtime.outbox import Effect, Erase, Output, OutputRegistry
from stepout_runtime.views import Row, Rows, ViewStore

from . import plan_view
from .plan import Plan, from_platform, plan_id
from .records import command_record, event_from, event_record

log = logging.getLogger(__name__)

# From this delivery on, an output of the tracker that skips one not yet observed is decided anyway:
# the one it follows comes back after the consumer's ack wait (30 s by default) when a connection
# lost it, so waiting twice that long means it is gone (an OUT stream's limits dropped it).
DEFAULT_PATIENCE = deliveries_spanning(2 * 30.0 + 1.0, 20)
# Most severe first in the escalations.
SEVERITY_RANK = {str(Severity.CRISIS): 3, str(Severity.HIGH): 2, str(Severity.CAUTION): 1}


def owner_of(user_id: str) -> str:
    """Whose key seals what the planner keeps of `user_id`: their plan's id."""
    return str(plan_id(user_id))


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
                after_break=last.after_break,
            ),
            at=last.occurred_at,
        )
    if isinstance(data, outputs.OverloadWarning):
        return planning.ObserveWarning(
            warning_id=data.warning_id,
            severity=Severity(data.severity),
            raised_at=data.raised_at,
            escalate=data.escalate,
            rules=tuple(planning.WarningRule(r.rule, r.observed, r.threshold) for r in data.rules),
            evidence=tuple(data.evidence),
            ruleset_version=data.ruleset_version,
        )
    if isinstance(data, outputs.OverloadCleared):
        return planning.ObserveClearing(warning_id=data.warning_id, cleared_at=data.cleared_at, by=data.by)
    raise TypeError(f"no command for {type(data).__name__}")


class PlannerApplication(BatchApplication):
    name = "planner"
    projection = "plans"
    projection_views = ("plans", "plans_by_id", "escalations")
    # 2: sealed rows, empty views at enrolment, erased views, the named level fields.
    # 3: the coach, the pause reason and the active warning in the plan; the escalations rows.
    projection_version = 3
    snapshot_types = (PlanState,)

    def __init__(
        self,
        env: dict[str, Any],
        *,
        rules: RuleSet,
        catalog: Catalog,
        views: ViewStore,
        subjects: Subjects,
        metrics: PlannerMetrics,
        keys: KeyStore,
        legacy_cipher_key: str | None = None,
        patience: int = DEFAULT_PATIENCE,
    ) -> None:
        self.patience = patience
        super().__init__(
            env,
            rules=rules,
            catalog=catalog,
            views=views,
            subjects=subjects,
            metrics=metrics,
            keys=keys,
            legacy_cipher_key=legacy_cipher_key,
        )
        self.planner_metrics = metrics
        self._decided: list[Any] = []
        self._topic = f"{Plan.__module__}:Plan.Decided"
        self._erased_topic = f"{Plan.__module__}:Plan.Erased"

    def begin_batch(self, items: Sequence[Inbound]) -> None:
        self._decided = []

    def decide(self, item: Inbound, touched: Touched) -> Verdict:
        plan: Plan | None = self.load(plan_id(item.user_id), touched)
        from_platform = item.origin == "platform"
        if plan is not None and from_platform and plan.handled(item.event.id):
            return None  # this very input had its effect already (a redelivery, or sent again)
        if plan is not None and plan.state.erased:
            if not from_platform:
                return None  # the tracker's last outputs of an erased participant: nothing to plan
            return DeadLetter("erased", "the participant was erased: nothing more is recorded for them")
        command = command_for(item)
        if plan is None:
            if isinstance(command, planning.Enrol):
                plan = Plan(user_id=item.user_id)
            elif not from_platform:
                # The tracker has seen the enrolment; the planner's copy is still on its way.
                return Retry("plan not enrolled yet")
            else:
                return DeadLetter("not_enrolled", "participant is not enrolled")
        if not from_platform and command is not None and (waiting := self._awaited(plan, command, item)):
            return waiting
        if plan.state.status == "withdrawn" and from_platform and not isinstance(command, planning.Withdraw):
            if isinstance(command, planning.Enrol):
                return DeadLetter(
                    "withdrawn", "participant has withdrawn: a withdrawal is final, enrolling again is refused"
                )
            return DeadLetter("withdrawn", "participant has withdrawn")
        if command is None:
            return None
        cause = {**item.attributes(), "user_id": item.user_id}
        before = plan.state
        decided = planning.decide(before, command, self.rules, self.catalog)
        if isinstance(decided, planning.Refusal):
            return DeadLetter(decided.reason, decided.detail)  # refused, however old: nothing is recorded
        # An input no later than the last of its kind is that one again, or an older one: recorded, no effect.
        stale = from_platform and plan.is_stale(cause, command)
        events = [] if stale else decided
        touched[plan.id] = plan
        if events or from_platform:
            # A platform input is recorded even when it changes nothing: it is then known as seen,
            # and it shows in the participant's history and audit export, with a notice saying why.
            notice = notice_for(before, command, events, stale)
            plan.decided(
                command=command_record(command),
                events=[event_record(e) for e in events],
                cause=cause,
                ruleset_version=self.rules.version,
                notice=None if notice is None else {"reason": notice.reason, "detail": notice.detail},
            )
            self._decided.extend(events)
            if isinstance(command, planning.Enrol) and any(type(e).__name__ == "Enrolled" for e in events):
                self._decided.append("enrolled")
        if any(isinstance(e, Withdrawn) and e.erase for e in events):
            plan.erase(
                user_id=item.user_id, summary=dict(plan.decisions), stream_seq=item.stream_seq, request_id=item.event.id
            )
        return None

    def _awaited(self, plan: Plan, command: Any, item: Inbound) -> Retry | None:
        """A retry while the tracker's output this one follows has not been observed, until `patience`."""
        missing = planning.awaited(plan.state, command)
        if missing is None:
            return None
        if item.delivered < self.patience:
            return Retry(f"waiting for {missing} of this participant")
        log.warning(
            "deciding past an output that never came",
            extra={"missing": missing, "stream_seq": item.stream_seq, "delivered": item.delivered},
        )
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
        return (self._topic, self._erased_topic)

    def rows_for(self, events: Sequence[Any]) -> Rows:
        stored = [e for e in events if isinstance(e, Plan.Decided | Plan.Erased)]
        known = self.views.get_many("plans_by_id", [str(s.originator_id) for s in stored])
        rows: dict[tuple[str, str], Row] = {}
        views: dict[str, dict[str, Any] | None] = dict(known)
        for s in stored:
            key = str(s.originator_id)
            before = views.get(key)
            if isinstance(s, Plan.Erased):
                view: dict[str, Any] | None = plan_view.erased(views.get(key), s.user_id)
                owner = None  # nothing personal is left: sealed with the store's key
            else:
                view = views.get(key)
                for record in s.events:
                    view = plan_view.apply(view, s.cause["user_id"], event_from(record))
                owner = key
            views[key] = view
            if view is not None:
                rows[("plans_by_id", key)] = Row(view, owner)
                rows[("plans", view["user_id"])] = Row(view, owner)
                # A participant has an escalations row from their first warning on (its end included).
                if view.get("active_warning") is not None or (before or {}).get("active_warning") is not None:
                    rows[("escalations", view["user_id"])] = Row(plan_view.escalation(view), owner)
        return rows

    def escalations(self, now: datetime, coach_id: str | None) -> list[dict[str, Any]]:
        """The participants with an active warning (of `coach_id`'s when given), most severe and
        oldest first; a withdrawn participant is no longer anyone's to act on."""
        found = []
        for _, row in self.views.all("escalations"):
            if row["warning"] is None or row["status"] == "withdrawn":
                continue
            if coach_id is not None and row["coach_id"] != coach_id:
                continue
            until = row.get("paused_until")
            if row["status"] == "paused" and until is not None and datetime.fromisoformat(until) <= now:
                row = {**row, "status": "active", "paused_until": None, "pause_reason": None}
            found.append(row)
        found.sort(
            key=lambda r: (
                -SEVERITY_RANK[r["warning"]["severity"]],
                datetime.fromisoformat(r["warning"]["raised_at"]),
                r["user_id"],
            )
        )
        return found

    def plan_of(self, user_id: str, now: datetime) -> dict[str, Any] | None:
        view = self.views.get("plans", user_id)
        if view is None:
            return None
        until = view.get("paused_until")
        if view["status"] == "paused" and until is not None and datetime.fromisoformat(until) <= now:
            view = {**view, "status": "active", "paused_until": None, "pause_reason": None}  # no timer needed
        return view

    # Outbox -----------------------------------------------------------------------------------

    def to_outputs(self, notification: Notification) -> list[Effect]:
        if notification.topic not in (self._topic, self._erased_topic):
            return []
        stored = self.decoded(notification)
        return [] if stored is None else self.effects_of(stored)

    def effects_of(self, stored: Any) -> list[Effect]:
        if isinstance(stored, Plan.Erased):
            return [Erase(stored.user_id, stored.stream_seq)]
        if not isinstance(stored, Plan.Decided):
            return []
        found: list[Effect] = []
        user_id: str = stored.cause["user_id"]

        def output(index: object, family: str, name: str, data: dict[str, Any]) -> Output:
            cloud_event = make_event(
                event_id=output_id("planner", stored.originator_id, stored.originator_version, index),
                source=SOURCE_PLANNER,
                type_=f"stepout.{family}.{name}.v1",
                user_id=user_id,
                time=stored.timestamp,
                data=data,
            )
            return Output(self.subjects.event(family, name, user_id), cloud_event)

        for index, record in enumerate(stored.events):
            published = OUTPUTS.of(event_from(record), user_id)
            if published is not None:
                (family, name), data = published
                found.append(output(index, family, name, data))
        if stored.notice is not None:
            found.append(output("notice", "plan", "notice", self._notice_wire(stored, user_id)))
        return found

    @staticmethod
    def _notice_wire(stored: Any, user_id: str) -> dict[str, Any]:
        """The `plan.notice` data: which input, and why it changed nothing (or less than it asked)."""
        command = stored.command
        attempt = command["body"]["last_attempt"] if command["kind"] == "ObserveProgress" else None
        platform = from_platform(stored.cause)
        return wire.notice(
            user_id,
            input_type=stored.cause["type"] if platform else "stepout.attempt.logged.v1",
            input_id=stored.cause["id"] if platform else None,
            attempt_id=attempt["attempt_id"] if attempt is not None else None,
            reason=stored.notice["reason"],
            detail=stored.notice["detail"],
        )

    def owner(self, user_id: str) -> str:
        return owner_of(user_id)

    def erase(self, user_id: str) -> None:
        """Destroy the participant's planner key, once the snapshot they load from without it is stored."""
        self.snapshot_erased(plan_id(user_id))
        self.keys.erase(owner_of(user_id))


# The plan events that are published, and as what (the contract's models write the data).
OUTPUTS = OutputRegistry(
    {
        ChallengeAssigned: (("challenge", "assigned"), lambda e, _: wire.assignment(e.assignment)),
        PlanPaused: (("plan", "paused"), lambda e, user_id: wire.pause(user_id, e.reason, e.until, e.warning_id)),
        PlanResumed: (("plan", "resumed"), lambda e, user_id: wire.resumed(user_id, e.reason, e.at)),
    }
)
