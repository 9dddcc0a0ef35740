"""The tracker application: decide each input against the participant's history, commit a
batch in one transaction, keep the progress read model, and map stored events to outputs."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from eventsourcing.persistence import Notification

from stepout_contract import wire
from stepout_contract.envelope import SOURCE_TRACKER, make_event, output_id
from stepout_contract.inputs import AttemptLogged, ParticipantEnrolled, ParticipantReviewed, ParticipantWithdrawn
from stepout_contract.subjects import Subjects
from stepout_contract.vocabulary import Outcome
from stepout_domain import progress, tracking
from stepout_domain.attempts import Attempt
from stepout_domain.catalog import Catalog
from stepout_domain.ruleset import RuleSet
from stepout_domain.tracker_commands import Enrol, RecordAttempt, Review, TrackerCommand, Withdraw
from stepout_domain.tracker_events import (
    AttemptRecorded,
    Enrolled,
    ProgressUpdated,
    WarningCleared,
    WarningRaised,
    Withdrawn,
)
from stepout_runtime.application import BatchApplication, Touched
from stepout_runtime.inbound import DeadLetter, Inbound, Verdict
from stepout_runtime.keystore import KeyStore
from stepout_runtime.legacy_keys import destroy_legacy_key
from stepout_runtime.metrics import TrackerMetrics
from stepout_runtime.outbox import Effect, Erase, Output, OutputRegistry
from stepout_runtime.sealing import seal
from stepout_runtime.store import StoreLocation
from stepout_runtime.views import Row, Rows, ViewStore

from .participant import CLEARING, WARNING, Participant, participant_id
from .records import COMMANDS, EVENTS

log = logging.getLogger(__name__)


OVERLOADED = "overloaded"  # the mark of a progress row with an active warning, for the gauge
LEGACY_INDEXED = "attempt-index:legacy"  # a position: the previous release's attempts are in the index


def attempt_content(data: AttemptLogged) -> bytes:
    """What an attempt said, note included, in the one form its digest is taken of."""
    return json.dumps(data.model_dump(mode="json"), sort_keys=True).encode()


def content_digest(key: bytes, content: bytes) -> str:
    """`attempt_content` keyed with its participant's own key: the same `attempt_id` with other
    content differs, and once the key is destroyed the digest tells nothing."""
    return hmac.new(key, content, hashlib.sha256).hexdigest()


def attempt_digest(key: bytes, data: AttemptLogged) -> str:
    return content_digest(key, attempt_content(data))


def attempt_ref(key: bytes, attempt_id: str) -> str:
    """How the attempt index names an `attempt_id`: keyed with its participant's own key, so the
    index holds no attempt id and, once the key is destroyed, links nothing to the participant."""
    return hmac.new(key, b"attempt_id\0" + attempt_id.encode(), hashlib.sha256).hexdigest()


@lru_cache(maxsize=16_384)
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
            for name in (
                "Decided",
                "Erased",
                # Stored by the previous release:
                "WarningRaised",
                "WarningCleared",
                "ProgressUpdated",
                "Enrolled",
                "Withdrawn",
            )
        }

    def cache_weight(self, aggregate: Any) -> int:
        # tracemalloc of TrackerState: ~1.2 KiB a participant, ~0.45 KiB per recent attempt kept.
        return 1280 + 460 * len(aggregate.state.history.recent)

    def begin_batch(self, items: Sequence[Inbound]) -> None:
        self._counted = []
        self._index_rows: list[tuple[str, str, str | None]] = []
        # The attempts of the batch already recorded, found at once (the store's index). A participant
        # with no key yet has recorded nothing.
        attempts = [(owner_of(i.user_id), i.data.attempt_id) for i in items if isinstance(i.data, AttemptLogged)]
        owner_keys = {owner: self.keys.owner_key(owner) for owner in {owner for owner, _ in attempts}}
        keys = [(o, attempt_ref(k, a)) for o, a in attempts if (k := owner_keys[o]) is not None]
        self._known = self.known_attempts(keys) if keys else {}

    def save_extras(self) -> dict[str, Any]:
        return {"attempt_index": self._index_rows}

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
        participant = self.load(participant_id(item.user_id), touched)
        data = item.data
        if participant is not None and not isinstance(data, AttemptLogged) and participant.state.handled(item.event.id):
            return None  # this very input had its effect already (a redelivery, or sent again)
        if isinstance(data, AttemptLogged):
            recorded, verdict = self._recorded(item.user_id, data)
            if recorded:
                return verdict
        if participant is not None and participant.state.erased:
            return DeadLetter("erased", "the participant was erased: nothing more is recorded for them")
        command = self._command(participant, item)
        if isinstance(command, DeadLetter) or command is None:
            return command
        if participant is None:
            participant = Participant(user_id=item.user_id)
        summary = tracking.erasure_summary(participant.state)  # what an erasure leaves: counted before it
        events = tracking.decide(participant.state, command, self.rules)
        if isinstance(events, tracking.Refusal):
            return DeadLetter(events.reason, events.detail)
        if not events:
            return None  # that input again, or an older one of its kind: it changes nothing
        participant.decided(
            command=COMMANDS.record(command),
            events=[EVENTS.record(e) for e in events],
            cause={**item.attributes(), "user_id": item.user_id},
            ruleset_version=self.rules.version,
            sealed_note=self._sealed_note(item),
        )
        self._count(item, events)
        if any(isinstance(e, Withdrawn) and e.erase for e in events):
            participant.erase(
                user_id=item.user_id, summary=summary, stream_seq=item.stream_seq, request_id=item.event.id
            )
        touched[participant.id] = participant
        return None

    def _recorded(self, user_id: str, data: AttemptLogged) -> tuple[bool, Verdict]:
        """Whether the `attempt_id` was recorded before (however long ago), and then what to do: nothing
        for the same attempt again, a dead letter for one with other content."""
        owner = owner_of(user_id)
        owner_key = self.keys.owner_key(owner)
        if owner_key is None:
            return False, None
        key = (owner, attempt_ref(owner_key, data.attempt_id))
        if key not in self._known:
            return False, None
        known = self._known[key]
        if known is not None and known != attempt_digest(owner_key, data):
            return True, DeadLetter("attempt_conflict", "attempt_id was already used for an attempt with other content")
        self._counted.append(("duplicate", None))
        return True, None

    def _command(self, participant: Participant | None, item: Inbound) -> TrackerCommand | DeadLetter | None:
        """What the input asks the decider, or why it cannot be accepted."""
        data, at = item.data, item.happened_at
        if isinstance(data, ParticipantEnrolled):
            if participant is not None and participant.withdrawn:
                return DeadLetter(
                    "withdrawn", "participant has withdrawn: a withdrawal is final, enrolling again is refused"
                )
            return Enrol(data.timezone, at, data.coach_id)
        if participant is None:
            return DeadLetter("not_enrolled", "participant is not enrolled")
        if isinstance(data, ParticipantWithdrawn):
            return Withdraw(data.erase, at)
        if participant.withdrawn:
            return DeadLetter("withdrawn", "participant has withdrawn")
        if isinstance(data, ParticipantReviewed):
            return Review(at, data.coach_id)
        if isinstance(data, AttemptLogged):
            return self._attempt(data, at)
        return None  # paused and resumed concern the planner only

    def _attempt(self, data: AttemptLogged, reported_at: datetime) -> RecordAttempt | DeadLetter:
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
        return RecordAttempt(attempt, reported_at)

    def _sealed_note(self, item: Inbound) -> str | None:
        data = item.data
        if not isinstance(data, AttemptLogged):
            return None
        owner = owner_of(item.user_id)
        key = self.keys.owner_keys([owner])[owner]
        digest, ref = attempt_digest(key, data), attempt_ref(key, data.attempt_id)
        self._index_rows.append((owner, ref, digest))
        self._known[(owner, ref)] = digest  # a second copy in this batch is a repeat (or a conflict)
        # Sealed on its own as well: reading the attempt back (history, audit) never opens the note.
        return seal(key, data.note, item.user_id) if data.note else None

    def _count(self, item: Inbound, events: Sequence[Any]) -> None:
        for e in events:
            if isinstance(e, AttemptRecorded):
                self._counted.append(("attempt", e.attempt.outcome.value))
            elif isinstance(e, WarningRaised):
                self._counted.append(("warning", e.warning))

    # --- Read model --------------------------------------------------------------------------

    def projection_topics(self) -> Sequence[str]:
        # The store skips the rest for us.
        names = ("Decided", "ProgressUpdated", "Erased", "Enrolled", "Withdrawn")
        return tuple(self._topics[name] for name in names)

    def rows_for(self, events: Sequence[Any]) -> Rows:
        rows: dict[tuple[str, str], Row] = {}
        withdrawn = [e.data["user_id"] for e in events if isinstance(e, Participant.Withdrawn)]  # type: ignore[attr-defined]
        withdrawn += [e.cause["user_id"] for e in events if isinstance(e, Participant.Decided) and _withdraws(e)]
        known = self.views.get_many("progress", withdrawn) if withdrawn else {}
        for event in events:
            if isinstance(event, Participant.Decided):
                user_id = event.cause["user_id"]
                for record in event.events:
                    decided = EVENTS.read(record)
                    if isinstance(decided, ProgressUpdated):
                        rows[("progress", user_id)] = progress_row(decided.view)
                    elif isinstance(decided, Enrolled):
                        rows[("progress", user_id)] = progress_row(progress.empty_view(user_id, self.rules))
                    elif isinstance(decided, Withdrawn) and not decided.erase:
                        before = rows.get(("progress", user_id))
                        view = before.body if before is not None else known.get(user_id)
                        if view is not None:
                            rows[("progress", user_id)] = progress_row({**view, "withdrawn": True})
            elif isinstance(event, Participant.ProgressUpdated):  # type: ignore[attr-defined]
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
        if name == "Erased":
            return [Erase(stored.user_id, stored.stream_seq)]
        if name == "Decided":
            user_id = stored.cause["user_id"]
            effects: list[Effect] = []
            for index, record in enumerate(stored.events):
                found = OUTPUTS.of(EVENTS.read(record), user_id)
                if found is not None:
                    effects.append(self._output(stored, user_id, *found, index))
            return effects
        # Stored by the previous release: one output each, identified by the stored event alone.
        if name == "WarningRaised":
            kind, data = ("overload", "warning"), wire.warning(WARNING.validate_python(stored.warning))
        elif name == "WarningCleared":
            kind, data = ("overload", "cleared"), wire.clearing(CLEARING.validate_python(stored.clearing))
        elif name == "ProgressUpdated":
            kind, data = ("progress", "updated"), stored.view
        else:
            return []
        return [self._output(stored, data["user_id"], kind, data, None)]

    def _output(
        self, stored: Any, user_id: str, kind: tuple[str, str], data: dict[str, Any], index: int | None
    ) -> Output:
        family, event_name = kind
        parts = (stored.originator_id, stored.originator_version) + (() if index is None else (index,))
        event = make_event(
            event_id=output_id("tracker", *parts),
            source=SOURCE_TRACKER,
            type_=f"stepout.{family}.{event_name}.v1",
            user_id=user_id,
            time=stored.timestamp,
            data=data,
        )
        return Output(self.subjects.event(family, event_name, user_id), event)

    def index_legacy_attempts(self) -> int:
        """Put the attempts a release without the attempt index stored into it, once: an attempt of
        theirs sent again is then found like any other. How many were indexed."""
        if self.views.position(LEGACY_INDEXED) > 0:
            return 0
        topic = f"{Participant.__module__}:Participant.AttemptRecorded"
        start, count = 1, 0
        while page := self.recorder.select_notifications(start, 1000, topics=[topic]):
            found = [stored for n in page if (stored := self.decoded(n)) is not None]
            keys = self.keys.owner_keys({str(stored.originator_id) for stored in found})  # none for the erased
            rows = [
                (owner, attempt_ref(keys[owner], stored.attempt["attempt_id"]), None)
                for stored in found
                if (owner := str(stored.originator_id)) in keys
            ]
            self.recorder.index_attempts(rows)  # type: ignore[attr-defined]
            count += len(rows)
            start = page[-1].id + 1
        self.views.commit(LEGACY_INDEXED, 1, {})
        return count

    def owner(self, user_id: str) -> str:
        return owner_of(user_id)

    def erase(self, user_id: str) -> None:
        """Destroy the participant's key, once the snapshot they load from without it is stored:
        everything personal the tracker kept of them is unreadable for good."""
        self.snapshot_erased(participant_id(user_id))
        self.keys.erase(owner_of(user_id))
        if self.store_location is not None:
            destroy_legacy_key(self.store_location, user_id)


def _withdraws(decided: Any) -> bool:
    return any(record["kind"] == "Withdrawn" for record in decided.events)


# The tracker's decided events that are published, and as what (the contract's models write the data).
OUTPUTS = OutputRegistry(
    {
        WarningCleared: (("overload", "cleared"), lambda e, _: wire.clearing(e.clearing)),
        WarningRaised: (("overload", "warning"), lambda e, _: wire.warning(e.warning)),
        ProgressUpdated: (("progress", "updated"), lambda e, _: e.view),
    }
)
