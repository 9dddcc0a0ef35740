"""The tracker application: decide each input against the participant's history, commit a
batch in one transaction, keep the progress read model, and map stored events to outputs."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from eventsourcing.persistence import Notification

from stepout_contract.envelope import SOURCE_TRACKER, make_event, output_id
from stepout_contract.inputs import AttemptLogged, ParticipantEnrolled, ParticipantReviewed, ParticipantWithdrawn
from stepout_contract.subjects import Subjects
from stepout_contract.vocabulary import Outcome
from stepout_domain import progress, tracking
from stepout_domain.attempts import Attempt
from stepout_domain.catalog import Catalog
from stepout_domain.ruleset import RuleSet
from stepout_runtime.application import BatchApplication, Touched
from stepout_runtime.inbound import DeadLetter, Inbound, Verdict
from stepout_runtime.keystore import KeyStore
from stepout_runtime.legacy_keys import destroy_legacy_key
from stepout_runtime.metrics import TrackerMetrics
from stepout_runtime.outbox import Effect, Erase, Output
from stepout_runtime.sealing import seal
from stepout_runtime.store import StoreLocation
from stepout_runtime.views import Row, Rows, ViewStore

from .participant import Participant, attempt_record, clearing_record, participant_id, warning_record

log = logging.getLogger(__name__)


OVERLOADED = "overloaded"  # the mark of a progress row with an active warning, for the gauge


def attempt_digest(data: AttemptLogged) -> str:
    """What an attempt said, note included, as a digest: the same `attempt_id` with other content differs."""
    return hashlib.sha256(json.dumps(data.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


def owner_of(user_id: str) -> str:
    """Whose key seals what the tracker keeps of `user_id`: their aggregate's id."""
    return str(participant_id(user_id))


def progress_row(view: dict[str, Any]) -> Row:
    overloaded = view.get("active_warning") is not None and not view.get("withdrawn")
    return Row(view, owner_of(view["user_id"]), frozenset({OVERLOADED}) if overloaded else frozenset())


class TrackerApplication(BatchApplication):
    name = "tracker"
    projection = "progress"
    projection_views = ("progress",)
    # 2: sealed rows, empty views at enrolment, erased views, the named level fields.
    projection_version = 2
    snapshot_types = (tracking.TrackerState,)

    def __init__(
        self,
        env: dict[str, Any],
        *,
        rules: RuleSet,
        catalog: Catalog,
        views: ViewStore,
        subjects: Subjects,
        metrics: TrackerMetrics,
        keys: KeyStore,
        legacy_cipher_key: str | None = None,
        store_location: StoreLocation | None = None,
    ) -> None:
        self.store_location = store_location  # where the previous release kept participant keys
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
        self.tracker_metrics = metrics
        self._counted: list[tuple[str, Any]] = []
        self._topics = {
            name: f"{Participant.__module__}:Participant.{name}"
            for name in ("WarningRaised", "WarningCleared", "ProgressUpdated", "Erased", "Enrolled", "Withdrawn")
        }

    def cache_weight(self, aggregate: Any) -> int:
        # tracemalloc of TrackerState: ~0.2 KiB a participant, ~0.44 KiB per attempt kept, ~0.1 KiB per input id.
        state = aggregate.state
        return 1024 + 512 * len(state.attempts) + 128 * len(state.input_ids)

    def begin_batch(self) -> None:
        self._counted = []

    def after_commit(self) -> None:
        metrics = self.tracker_metrics
        for what, value in self._counted:
            if what == "attempt":
                metrics.attempts_logged.labels(value).inc()
            elif what == "duplicate":
                metrics.attempts_duplicate.inc()
            elif what == "warning":
                metrics.warnings.labels(value.severity.value).inc()
                for hit in value.rules:
                    metrics.rule_hits.labels(hit.rule).inc()
        self._counted = []

    def decide(self, item: Inbound, touched: Touched) -> Verdict:
        return self._decide(item, touched, self._counted)

    def _decide(self, item: Inbound, touched: Touched, counted: list[tuple[str, Any]]) -> Verdict:
        participant = self.load(participant_id(item.user_id), touched)
        data = item.data
        envelope = item.attributes()
        raw = data.model_dump(mode="json", exclude={"note"})
        if participant is not None and not isinstance(data, AttemptLogged) and participant.state.handled(item.event.id):
            return None  # this very input had its effect already (a redelivery, or sent again)
        if participant is not None and participant.state.erased:
            if isinstance(data, AttemptLogged) and data.attempt_id in participant.state.attempt_ids:
                counted.append(("duplicate", None))
                return None
            return DeadLetter("erased", "the participant was erased: nothing more is recorded for them")
        if isinstance(data, ParticipantEnrolled):
            if participant is None:
                participant = Participant(user_id=item.user_id, timezone=data.timezone, envelope=envelope, data=raw)
            elif participant.withdrawn:
                return DeadLetter(
                    "withdrawn", "participant has withdrawn: a withdrawal is final, enrolling again is refused"
                )
            elif participant.state.enrolment_is_stale(item.happened_at):
                return None  # that enrolment again, or an older one: the one in force stays
            else:
                participant.change_enrolment(timezone=data.timezone, envelope=envelope, data=raw)
            touched[participant.id] = participant
            return None
        if participant is None:
            return DeadLetter("not_enrolled", "participant is not enrolled")
        if isinstance(data, AttemptLogged):
            digest = attempt_digest(data)
            if participant.state.conflicts(data.attempt_id, digest):
                return DeadLetter("attempt_conflict", "attempt_id was already used for an attempt with other content")
            if data.attempt_id in participant.state.attempt_ids:
                counted.append(("duplicate", None))
                return None
            if participant.withdrawn:
                return DeadLetter("withdrawn", "participant has withdrawn")
            verdict = self._record_attempt(participant, data, digest, item.happened_at, envelope, counted)
        elif isinstance(data, ParticipantWithdrawn):
            if not self._withdraw(participant, data, item, envelope, raw):
                return None  # withdrawn already, and nothing to erase: the planner records it
            verdict = None
        elif participant.withdrawn:
            return DeadLetter("withdrawn", "participant has withdrawn")
        elif isinstance(data, ParticipantReviewed):
            if participant.state.review_is_stale(item.happened_at):
                return None  # that review again, or an older one: it covers nothing new
            self._review(participant, item.happened_at, envelope, raw)
            verdict = None
        else:
            return None  # paused/resumed concern the planner only
        touched[participant.id] = participant
        return verdict

    def _withdraw(
        self,
        participant: Participant,
        data: ParticipantWithdrawn,
        item: Inbound,
        envelope: dict[str, Any],
        raw: dict[str, Any],
    ) -> bool:
        """Withdraw (and erase, when asked, also after an earlier plain withdrawal); False: no effect."""
        if participant.withdrawn and not data.erase:
            return False
        summary = tracking.erasure_summary(participant.state)  # what erasure leaves: counted before it
        if not participant.withdrawn:
            participant.withdraw(erase=data.erase, stream_seq=item.stream_seq, envelope=envelope, data=raw)
        if data.erase:
            participant.erase(
                user_id=participant.user_id,
                summary=summary,
                stream_seq=item.stream_seq,
                request_id=item.event.id,
            )
        return True

    def _record_attempt(
        self,
        participant: Participant,
        data: AttemptLogged,
        digest: str,
        reported_at: datetime,
        envelope: dict[str, Any],
        counted: list[tuple[str, Any]],
    ) -> Verdict:
        challenge = self.catalog.get(data.challenge_id)
        if challenge is not None and data.level is not None and data.level != challenge.level:
            return DeadLetter(
                "invalid_data", f"level: must be left out or be {challenge.level}, the catalog level of challenge_id"
            )
        level = challenge.level if challenge is not None else data.level
        if level is None:
            return DeadLetter("invalid_data", "level: required for a challenge_id that is not in the catalog")
        attempt = Attempt(
            attempt_id=data.attempt_id,
            occurred_at=data.occurred_at,
            level=level,
            outcome=Outcome(data.outcome),
            challenge_id=data.challenge_id,
            assignment_id=data.assignment_id,
            suds_before=data.suds_before,
            suds_peak=data.suds_peak,
            suds_after=data.suds_after,
            predicted_suds=data.predicted_suds,
            prediction_came_true=data.prediction_came_true,
            crisis_reported=data.crisis_reported,
        )
        decision = tracking.decide_attempt(participant.state, attempt, reported_at, self.rules)
        sealed = None
        if data.note:
            # Sealed on its own as well: reading the attempt back (history, audit) never opens the note.
            owner = owner_of(participant.user_id)
            sealed = seal(self.keys.owner_keys([owner])[owner], data.note, participant.user_id)
        participant.record_attempt(
            attempt=attempt_record(attempt), sealed_note=sealed, envelope=envelope, digest=digest
        )
        self._apply_warning_decision(participant, decision, counted)
        counted.append(("attempt", attempt.outcome.value))
        participant.update_progress(view=tracking.progress_view(participant.state, self.rules, arrived=attempt))
        return None

    def _review(self, participant: Participant, at: datetime, envelope: dict[str, Any], raw: dict[str, Any]) -> None:
        # The review's time is when it says it happened (capped at its arrival): rules read time from events.
        cleared = tracking.decide_review(participant.state, at, self.rules)
        participant.review(reviewed_at=at, envelope=envelope, data=raw)
        self._apply_warning_decision(participant, tracking.WarningDecision(cleared=cleared), [])
        if cleared is not None:
            participant.update_progress(view=tracking.progress_view(participant.state, self.rules))

    def _apply_warning_decision(
        self, participant: Participant, decision: tracking.WarningDecision, counted: list[tuple[str, Any]]
    ) -> None:
        if decision.cleared is not None:
            participant.clear_warning(clearing=clearing_record(decision.cleared))
        if decision.raised is not None:
            participant.raise_warning(warning=warning_record(decision.raised))
            counted.append(("warning", decision.raised))

    # --- Read model --------------------------------------------------------------------------

    def projection_topics(self) -> Sequence[str]:
        # The store skips the rest for us.
        names = ("ProgressUpdated", "Erased", "Enrolled", "Withdrawn")
        return tuple(self._topics[name] for name in names)

    def rows_for(self, events: Sequence[Any]) -> Rows:
        rows: dict[tuple[str, str], Row] = {}
        withdrawn = [e.data["user_id"] for e in events if isinstance(e, Participant.Withdrawn)]  # type: ignore[attr-defined]
        known = self.views.get_many("progress", withdrawn) if withdrawn else {}
        for event in events:
            if isinstance(event, Participant.ProgressUpdated):  # type: ignore[attr-defined]
                rows[("progress", event.view["user_id"])] = progress_row(event.view)
            elif isinstance(event, Participant.Enrolled):  # type: ignore[attr-defined]
                rows[("progress", event.user_id)] = progress_row(progress.empty_view(event.user_id, self.rules))
            elif isinstance(event, Participant.Withdrawn):  # type: ignore[attr-defined]
                user_id = event.data["user_id"]
                before = rows.get(("progress", user_id))
                view = before.body if before is not None else known.get(user_id)
                if view is None:
                    continue
                if event.erase:  # followed by `Erased`, or (previous release) the erasure itself
                    counts = {name: view[name] for name in ("attempts", "completed", "position")}
                    erased = progress.erased_view(user_id, {**counts, "warnings": {}, "rules": {}}, self.rules.version)
                    rows[("progress", user_id)] = Row(erased, None, frozenset())
                else:
                    rows[("progress", user_id)] = progress_row({**view, "withdrawn": True})
            elif isinstance(event, Participant.Erased):
                view = progress.erased_view(event.user_id, event.summary, self.rules.version)
                rows[("progress", event.user_id)] = Row(view, None, frozenset())
        return rows

    def progress_of(self, user_id: str, now: datetime) -> dict[str, Any] | None:
        """The participant's progress view as it reads at `now`; None for a participant never enrolled."""
        view = self.views.get("progress", user_id)
        return None if view is None else progress.as_of(view, now)

    # --- Outbox ------------------------------------------------------------------------------

    def to_outputs(self, notification: Notification) -> list[Effect]:
        """The outputs a stored event stands for; ids derive from its place in the store."""
        if notification.topic not in self._topics.values():
            return []
        stored = self.decoded(notification)
        return [] if stored is None else self.effects_of(stored)

    def effects_of(self, stored: Any) -> list[Effect]:
        name = type(stored).__name__
        if name not in self._topics or name in ("Enrolled", "Withdrawn"):
            return []
        if name == "Erased":
            return [Erase(stored.user_id, stored.stream_seq)]
        if name == "WarningRaised":
            data = self._warning_wire(stored.warning)  # type: ignore[attr-defined]
            family, event_name = "overload", "warning"
        elif name == "WarningCleared":
            data = self._clearing_wire(stored.clearing)  # type: ignore[attr-defined]
            family, event_name = "overload", "cleared"
        else:
            data = stored.view  # type: ignore[attr-defined]
            family, event_name = "progress", "updated"
        user_id = data["user_id"]
        event = make_event(
            event_id=output_id("tracker", stored.originator_id, stored.originator_version),
            source=SOURCE_TRACKER,
            type_=f"stepout.{family}.{event_name}.v1",
            user_id=user_id,
            time=stored.timestamp,  # type: ignore[attr-defined]
            data=data,
        )
        return [Output(self.subjects.event(family, event_name, user_id), event)]

    def erase(self, user_id: str) -> None:
        """Destroy the participant's key, once the snapshot they load from without it is stored:
        everything personal the tracker kept of them is unreadable for good."""
        self.snapshot_erased(participant_id(user_id))
        self.keys.erase(owner_of(user_id))
        if self.store_location is not None:
            destroy_legacy_key(self.store_location, user_id)

    @staticmethod
    def _warning_wire(record: dict[str, Any]) -> dict[str, Any]:
        from .participant import WARNING

        return WARNING.validate_python(record).as_wire()

    @staticmethod
    def _clearing_wire(record: dict[str, Any]) -> dict[str, Any]:
        from .participant import CLEARING

        return CLEARING.validate_python(record).as_wire()
