"""What both services' event-sourced applications share: batches decided and committed in one
transaction, an aggregate cache, and a read-model projection with its tracking position."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.cipher import AESCipher
from eventsourcing.domain import Aggregate, Snapshot
from eventsourcing.persistence import IntegrityError, JSONTranscoder, Mapper, Notification
from eventsourcing.popo import POPOApplicationRecorder
from eventsourcing.utils import Environment

from stepout_contract.subjects import Subjects
from stepout_domain.catalog import Catalog
from stepout_domain.ruleset import RuleSet

from . import pseudonyms
from .inbound import Inbound, Retry, Verdict
from .keystore import KeyStore
from .metrics import CommonMetrics
from .personal_events import ErasedData, PersonalMapper
from .recorders import IndexedMemoryRecorder
from .store import TRANSIENT_ERRORS
from .transcodings import DataclassAsJSON
from .views import PositionConflict, Rows, ViewStore

log = logging.getLogger(__name__)

# The aggregate cache is bounded by the memory its aggregates take (as `cache_weight` estimates it).
CACHE_BYTES = 128 * 1024 * 1024
# Every this many stored events of a participant, a snapshot: loading reads at most this many events.
SNAPSHOT_EVERY = 50
PAGE = 1000


class Touched(dict[UUID, Aggregate]):
    """The aggregates a batch changed; they are saved together."""


class ErasedSnapshot(Snapshot):
    """The snapshot taken when a participant is erased: it holds nothing personal (the aggregate
    kept only what erasure leaves), so it is sealed with the store's key and the participant still
    loads once their own key is destroyed."""

    personal = False


class BatchApplication(Application[UUID]):
    """An eventsourcing application that decides whole batches of inputs.

    Subclasses implement `decide` (one input -> events on aggregates in `touched`),
    `project_page` (stored events -> read-model rows) and name their `projection`.
    """

    projection = "view"
    # The views the projection writes, and the version of what it writes in them: read models written
    # by another version are rebuilt from the log at start (`upgrade_read_models`).
    projection_views: Sequence[str] = ()
    projection_version = 1
    # An erased participant is loaded from the snapshot taken at erasure.
    is_snapshotting_enabled = True
    # Domain state objects an aggregate keeps, stored in its snapshots.
    snapshot_types: Sequence[type] = ()

    def __init__(
        self,
        env: dict[str, Any],
        *,
        rules: RuleSet,
        catalog: Catalog,
        views: ViewStore,
        subjects: Subjects,
        metrics: CommonMetrics,
        keys: KeyStore,
        legacy_cipher_key: str | None = None,
    ) -> None:
        # The mapper is made by the library's constructor and needs these.
        self.keys = keys
        self._legacy_cipher_key = legacy_cipher_key
        super().__init__(env)
        self.rules = rules
        self.catalog = catalog
        self.views = views
        self.subjects = subjects
        self.metrics = metrics
        self._cache: OrderedDict[UUID, tuple[Aggregate, int]] = OrderedDict()
        self._cache_bytes = 0
        # What just-committed batches mean for the outbox, handed over from memory so the relay
        # need not read and decode them again: (first notification id, last id, effects).
        self.outbox_feed: deque[tuple[int, int, list[Any]]] = deque(maxlen=64)

    def owner(self, user_id: str) -> str:
        """Whose key seals what this service keeps of `user_id`: the key erasure destroys."""
        raise NotImplementedError

    def naming(self, user_id: str) -> dict[str, str]:
        """The log fields that name `user_id`: their pseudonym while their key exists (`pseudonyms`),
        never the user id."""
        return pseudonyms.naming(self.keys, self.owner(user_id))

    def construct_recorder(self) -> Any:
        recorder = super().construct_recorder()
        # In memory (tests of one service's deciding), the same attempt index as the stores' recorders.
        return IndexedMemoryRecorder() if type(recorder) is POPOApplicationRecorder else recorder

    def known_attempts(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str | None]:
        """Which (aggregate id, attempt_id) were recorded already, with the digest of what each said."""
        return self.recorder.known_attempts(keys)  # type: ignore[attr-defined,no-any-return]

    def construct_mapper(self) -> Mapper[UUID]:
        # Events stored by the previous release were encrypted, if at all, with STEPOUT_CIPHER_KEY itself.
        legacy = self._legacy_cipher_key
        cipher = AESCipher(Environment(self.name, {AESCipher.CIPHER_KEY: legacy})) if legacy else None
        return PersonalMapper(self.construct_transcoder(), self.keys, cipher)

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        for cls in self.snapshot_types:
            transcoder.register(DataclassAsJSON(cls))

    def decoded(self, notification: Notification) -> Any | None:
        """The stored event a notification records; None when it belongs to an erased participant."""
        try:
            return self.mapper.to_domain_event(notification)
        except ErasedData:
            return None

    def erased(self, key: UUID) -> bool:
        """Whether the aggregate `key` is of an erased participant (as stored now)."""
        try:
            aggregate: Any = self.repository.get(key)
        except AggregateNotFoundError:
            return False
        return bool(aggregate.state.erased)

    def snapshot_erased(self, key: UUID) -> None:
        """Store the snapshot an erased participant is loaded from once their key is destroyed (when
        the batch that erased them could not: a crash between its commit and its snapshot)."""
        aggregate: Any = self.repository.get(key)
        assert self.snapshots is not None
        try:
            self.snapshots.put([ErasedSnapshot.take(aggregate)])
        except IntegrityError:
            pass  # taken already, right after the erasure was stored

    def _snapshot(self, touched: Touched, stored_before: dict[UUID, int]) -> None:
        """Snapshots of what the batch stored: each aggregate whose events crossed a multiple of
        `SNAPSHOT_EVERY` (so a load reads at most that many events), and each one erased now (it is
        loaded from that snapshot once its key is destroyed). Taken from memory, not reloaded; a
        snapshot is only ever a shortcut, so one lost to a crash costs nothing but a longer load."""
        assert self.snapshots is not None
        taken: list[Snapshot] = []
        for key, aggregate in touched.items():
            state = getattr(aggregate, "state", None)
            if getattr(state, "erased", False):
                taken.append(ErasedSnapshot.take(aggregate))
            elif aggregate.version // SNAPSHOT_EVERY > stored_before[key] // SNAPSHOT_EVERY:
                taken.append(aggregate.Snapshot.take(aggregate))
        if taken:
            try:
                self.snapshots.put(taken)
            except IntegrityError:
                for snapshot in taken:  # one of them was taken already (a batch decided again)
                    try:
                        self.snapshots.put([snapshot])
                    except IntegrityError:
                        pass

    # Subclass hooks ---------------------------------------------------------------------------

    def decide(self, item: Inbound, touched: Touched) -> Verdict:
        raise NotImplementedError

    def effects_of(self, stored: Any) -> list[Any]:
        """The outbox effects (outputs, erasures) of one stored domain event."""
        raise NotImplementedError

    def rows_for(self, events: Sequence[Any]) -> Rows:
        """The read-model rows these stored domain events (in log order) change."""
        raise NotImplementedError

    def projection_topics(self) -> Sequence[str]:
        """The stored event topics the read model is made of (empty: all)."""
        return ()

    def project_page(self, page: Sequence[Notification]) -> Rows:
        return self.rows_for([e for n in page if (e := self.decoded(n)) is not None])

    def after_commit(self) -> None:
        """Runs after a batch is committed (count metrics decided in the batch)."""

    # Aggregates -------------------------------------------------------------------------------

    def cache_weight(self, aggregate: Any) -> int:
        """About how many bytes of memory `aggregate` takes, for bounding the cache."""
        return 2048

    def load(self, key: UUID, touched: Touched) -> Any:
        """The aggregate as this batch left it, else as stored; None when it does not exist."""
        if key in touched:
            return touched[key]
        found = self._cache.get(key)
        if found is not None:
            self._cache.move_to_end(key)
            return found[0]
        try:
            return self.repository.get(key)
        except AggregateNotFoundError:
            return None

    def _remember(self, touched: Touched) -> None:
        for key, aggregate in touched.items():
            self.forget([key])
            weight = self.cache_weight(aggregate)
            self._cache[key] = (aggregate, weight)
            self._cache_bytes += weight
        while self._cache_bytes > CACHE_BYTES and self._cache:
            _, (_, weight) = self._cache.popitem(last=False)
            self._cache_bytes -= weight

    def forget(self, keys: Sequence[UUID] | Touched) -> None:
        for key in keys:
            found = self._cache.pop(key, None)
            if found is not None:
                self._cache_bytes -= found[1]

    # Batches ----------------------------------------------------------------------------------

    def handle_batch(self, items: Sequence[Inbound]) -> list[Verdict]:
        """Decide every input of a batch and commit all their events in one transaction.

        An input that fails with a bug is retried later on its own; the batch is decided
        again without it, so one bad input never costs the good ones.
        """
        failed: dict[int, Verdict] = {}
        while True:
            touched = Touched()
            verdicts: list[Verdict] = []
            waiting: set[str] = set()  # participants with an input to be redelivered
            self.begin_batch(items)
            try:
                for i, item in enumerate(items):
                    if i in failed:
                        verdicts.append(failed[i])
                        waiting.add(item.user_id)
                        continue
                    if item.user_id in waiting:
                        # Keep each participant's inputs in order: wait for the earlier one.
                        verdicts.append(Retry("an earlier input of this participant is being retried"))
                        continue
                    try:
                        verdict = self.decide(item, touched)
                        if isinstance(verdict, Retry):
                            waiting.add(item.user_id)
                        verdicts.append(verdict)
                    except TRANSIENT_ERRORS:
                        raise
                    except Exception:
                        # Once per input, not once per delivery: its redeliveries fail the same way.
                        if item.delivered == 1:
                            log.exception(
                                "input could not be decided",
                                extra={"event_id": item.event.id, **self.naming(item.user_id)},
                            )
                        failed[i] = Retry("internal error while deciding")
                        raise _Redo from None
            except _Redo:
                self.forget(touched)
                continue
            except BaseException:
                self.forget(touched)
                raise
            break
        recordings: list[Any] = []
        if touched:
            started = time.perf_counter()
            stored_before = {key: a.version - len(a.pending_events) for key, a in touched.items()}
            try:
                recordings = self.save(*touched.values(), **self.save_extras())
            except BaseException:
                self.forget(touched)
                raise
            self.metrics.store_append_seconds.observe(time.perf_counter() - started)
            self._remember(touched)
            self._snapshot(touched, stored_before)
        self.after_commit()
        if not self._project_recorded(recordings):
            self.project()
        return verdicts

    def _project_recorded(self, recordings: Sequence[Any]) -> bool:
        """Apply a just-committed batch to the read model straight from memory, when it is the
        very next stretch of the log (one writer, nothing missed); otherwise read the log."""
        if not recordings:
            return False
        ids = [r.notification.id for r in recordings]
        if ids != list(range(ids[0], ids[0] + len(ids))):
            return False
        effects = [effect for r in recordings for effect in self.effects_of(r.domain_event)]
        self.outbox_feed.append((ids[0], ids[-1], effects))
        try:
            self.views.commit(
                self.projection, ids[-1], self.rows_for([r.domain_event for r in recordings]), expected=ids[0] - 1
            )
        except PositionConflict:
            return False
        self.metrics.projection_lag.labels(self.projection).set(0)
        return True

    def begin_batch(self, items: Sequence[Inbound]) -> None:
        """Runs before (each attempt at) deciding the batch `items`."""

    def save_extras(self) -> dict[str, Any]:
        """What else the batch's transaction writes (passed to the recorder with the events)."""
        return {}

    # Read model -------------------------------------------------------------------------------

    def upgrade_read_models(self) -> bool:
        """Forget read models written by another version of the projection, so that `project`
        rebuilds them from the log; True when it did."""
        if self.views.version(self.projection) == self.projection_version:
            return False
        if self.views.position(self.projection) == 0:  # nothing projected yet: a new store
            self.views.reset(self.projection, self.projection_views, self.projection_version)
            return False
        log.warning(
            "read models written by another version: rebuilding them from the event store",
            extra={"projection": self.projection, "version": self.projection_version},
        )
        self.views.reset(self.projection, self.projection_views, self.projection_version)
        return True

    def project(self, progress: Callable[[int], None] | None = None) -> int:
        """Bring the read model up to date; its rows and position commit together."""
        newest = self.recorder.max_notification_id() or 0
        position = self.views.position(self.projection)
        done = 0
        while True:
            page = self.recorder.select_notifications(position + 1, PAGE, stop=newest, topics=self.projection_topics())
            if not page:
                if position < newest:
                    # The rest of the log up to `newest` holds nothing for this read model.
                    try:
                        self.views.commit(self.projection, newest, {}, expected=position)
                    except PositionConflict:
                        pass
                break
            rows = self.project_page(page)
            try:
                self.views.commit(self.projection, page[-1].id, rows, expected=position)
            except PositionConflict:
                # Another tracker projected these first: go on from where it got to.
                position = self.views.position(self.projection)
                continue
            position = page[-1].id
            done += len(page)
            if progress is not None:
                progress(position)
        self.metrics.projection_lag.labels(self.projection).set(0)
        return done


class _Redo(Exception):
    """Internal: decide the batch again without the input that failed."""
