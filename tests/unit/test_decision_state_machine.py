"""Both services' decision layers in memory, driven as the real system drives them: platform inputs
as CloudEvent bytes through the real edge (`decode`), batches through `handle_batch`, and the
tracker's stored events handed to the planner as the outputs it publishes. Random participants,
late-synced attempts, crises, reviews, pauses and redeliveries; the invariants are checked after
every input, and the whole run is replayed on fresh applications to check it decides the same."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, precondition, rule
from prometheus_client import CollectorRegistry

from stepout_contract.envelope import encode
from stepout_contract.inputs import INPUT_TYPES, OUTCOMES
from stepout_contract.subjects import Subjects
from stepout_domain.catalog import load_catalog
from stepout_domain.refusals import NOT_THEIR_COACH
from stepout_domain.ruleset import load_ruleset
from stepout_planner.application import PlannerApplication
from stepout_planner.main import OUTCOME_TYPES, PARTICIPANT_TYPES
from stepout_planner.plan import plan_id
from stepout_runtime.inbound import DeadLetter, Inbound, Retry, Verdict, decode
from stepout_runtime.keystore import KeyStore
from stepout_runtime.metrics import PlannerMetrics, TrackerMetrics
from stepout_runtime.outbox import Erase, Output
from stepout_runtime.store import StoreLocation
from stepout_runtime.views import ViewStore
from stepout_tracker.application import TrackerApplication

SUBJECTS = Subjects("stepout")
RULES = load_ruleset(None)
CATALOG = load_catalog()
# In-memory event stores; the read models and keys on in-memory SQLite, one database per connection.
POPO_ENV = {"PERSISTENCE_MODULE": "eventsourcing.popo", "ORIGINATOR_ID_TYPE": "uuid"}
IN_MEMORY = StoreLocation("sqlite", sqlite_path=Path(":memory:"))
MASTER_KEY = bytes(range(32))
USERS = ("u-a", "u-b", "u-c")
ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Pacific/Chatham")
START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
TICK = timedelta(seconds=30)  # the clock moves on by this much with every delivery
FLOOD = 300  # more inputs of one participant than either service remembers the ids of
UNKNOWN_CHALLENGE = "self-chosen-talk-to-a-stranger"
# Runs of alike attempts: (outcome, peak SUDS, SUDS after).
PROFILES = {
    "calm": ("accepted", 15, 5),
    "distressed": ("rejected", 90, 60),
    "escaping": ("escaped", 75, 60),
    "rejected": ("rejected", 45, 20),
    "hostile": ("hostile", 70, 40),
}


def without_time(event: dict[str, Any]) -> dict[str, Any]:
    # An output's envelope `time` is when it was stored (a wall clock), not a decision.
    return {k: v for k, v in event.items() if k != "time"}


@dataclass(frozen=True)
class Message:
    """One message on the input stream; `stream_seq` None: a new one (published anew)."""

    body: bytes
    subject: str
    stream_seq: int | None = None
    delivered: int = 1


def platform_message(kind: str, user_id: str, data: dict[str, Any], event_id: str, time: datetime | None) -> Message:
    """A platform input as the bytes it publishes (the CloudEvent `time` left out when None)."""
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": event_id,
        "source": "urn:test:platform",
        "type": f"stepout.{kind}.v1",
        "subject": user_id,
        "datacontenttype": "application/json",
        "data": data,
    }
    if time is not None:
        event["time"] = time.isoformat()
    return Message(json.dumps(event).encode(), SUBJECTS.event(*kind.split("."), user_id))


NOT_READ = DeadLetter("not_read", "the planner does not read this subject")


@dataclass
class Delivery:
    """What one batch of platform inputs did, in both services."""

    tracker: list[Verdict | DeadLetter]
    planner: list[Verdict | DeadLetter]  # NOT_READ where the planner does not read the subject
    tracker_events: int
    planner_events: int
    tracker_outputs: list[Output]
    planner_outputs: list[Output]

    def outputs(self) -> list[Output]:
        return [*self.tracker_outputs, *self.planner_outputs]


class Pair:
    """A tracker and a planner on in-memory stores, wired as the running system wires them."""

    def __init__(self, *, once: bool = True) -> None:
        self.once = once  # whether storing an effect of an input a second time fails at once
        self.keys = KeyStore(IN_MEMORY, MASTER_KEY)
        common: dict[str, Any] = {"rules": RULES, "catalog": CATALOG, "subjects": SUBJECTS, "keys": self.keys}
        self.tracker = TrackerApplication(
            POPO_ENV, views=ViewStore(IN_MEMORY), metrics=TrackerMetrics(CollectorRegistry()), **common
        )
        self.planner = PlannerApplication(
            POPO_ENV, views=ViewStore(IN_MEMORY), metrics=PlannerMetrics(CollectorRegistry()), **common
        )
        self._relayed = {"tracker": 0, "planner": 0}
        # Every platform input each service stored an effect of, by CloudEvent id: at most once each.
        self._caused: dict[str, set[str]] = {"tracker": set(), "planner": set()}
        self.in_seq = 0
        self.out_seq = 0

    def close(self) -> None:
        for app in (self.tracker, self.planner):
            app.close()
            app.views.close()
        self.keys.close()

    def _new_outputs(self, service: str) -> tuple[int, list[Output]]:
        """What the service's outbox relay would publish now: every stored event since the last call."""
        app: Any = self.tracker if service == "tracker" else self.planner
        start = self._relayed[service]
        notifications = app.recorder.select_notifications(start + 1, 10_000)
        outputs: list[Output] = []
        for notification in notifications:
            stored = app.mapper.to_domain_event(notification)
            cause = getattr(stored, "cause", None) or getattr(stored, "envelope", None)
            # The planner records a repeated or older platform input with no plan events: seen, no effect.
            no_effect = getattr(stored, "events", None) == []
            if self.once and cause is not None and cause.get("origin", "platform") == "platform" and not no_effect:
                assert cause["id"] not in self._caused[service], (
                    f"the {service} stored {type(stored).__name__} for input {cause['id']} a second time"
                )
                self._caused[service].add(cause["id"])
            for effect in app.to_outputs(notification):
                if isinstance(effect, Erase):
                    app.erase(effect.user_id)
                else:
                    outputs.append(effect)
        if notifications:
            self._relayed[service] = notifications[-1].id
        return len(notifications), outputs

    def deliver(self, messages: list[Message], at: datetime) -> Delivery:
        """One batch from the input stream: the planner reads participant subjects, the tracker all;
        the tracker's progress and warnings then reach the planner over the output stream."""
        numbered = []
        for message in messages:
            if message.stream_seq is None:
                self.in_seq += 1
                message = Message(message.body, message.subject, self.in_seq, message.delivered)
            numbered.append(message)
        planner_verdicts = self._handle(self.planner, numbered, PARTICIPANT_TYPES, at)
        tracker_verdicts = self._handle(self.tracker, numbered, INPUT_TYPES, at)
        tracker_events, tracker_outputs = self._new_outputs("tracker")
        outcomes: list[Inbound] = []
        for output in tracker_outputs:
            if output.event["type"] not in OUTCOME_TYPES:
                continue
            self.out_seq += 1
            item = decode(
                encode(output.event),
                output.subject,
                OUTCOME_TYPES,
                SUBJECTS,
                origin="stepout",
                stream_seq=self.out_seq,
                delivered=1,
                received_at=at,
            )
            assert isinstance(item, Inbound), f"the planner cannot read the tracker's {output.event['type']}: {item}"
            outcomes.append(item)
        if outcomes:
            verdicts = self.planner.handle_batch(outcomes)
            assert verdicts == [None] * len(outcomes), f"the planner refused tracker outputs: {verdicts}"
        planner_events, planner_outputs = self._new_outputs("planner")
        return Delivery(
            tracker_verdicts, planner_verdicts, tracker_events, planner_events, tracker_outputs, planner_outputs
        )

    @staticmethod
    def _handle(app: Any, messages: list[Message], types: Any, at: datetime) -> list[Verdict | DeadLetter]:
        verdicts: list[Verdict | DeadLetter] = []
        items: list[tuple[int, Inbound]] = []
        for i, message in enumerate(messages):
            if types is PARTICIPANT_TYPES and not message.subject.startswith(f"{SUBJECTS.prefix}.participant."):
                verdicts.append(NOT_READ)
                continue
            item = decode(
                message.body,
                message.subject,
                types,
                SUBJECTS,
                stream_seq=message.stream_seq or 0,
                delivered=message.delivered,
                received_at=at,
            )
            verdicts.append(item if isinstance(item, DeadLetter) else None)
            if isinstance(item, Inbound):
                items.append((i, item))
        if items:
            for (i, item), verdict in zip(items, app.handle_batch([item for _, item in items]), strict=True):
                assert not isinstance(verdict, Retry), f"{app.name} failed deciding {item.kind}: {verdict}"
                verdicts[i] = verdict
        return verdicts

    def plan_state(self, user_id: str) -> Any:
        found = self.planner.load(plan_id(user_id), {})  # type: ignore[arg-type]
        return None if found is None else found.state


@dataclass
class Sent:
    """One input as the platform sent it, and what became of it the first time."""

    step: int
    kind: str
    user_id: str
    event_id: str
    subject: str
    body: bytes
    data: dict[str, Any]
    stream_seq: int
    accepted_by: set[str] = field(default_factory=set)


# What an attempt rule draws; late-synced attempts occurred minutes to days before they arrive.
ATTEMPT_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "user": st.sampled_from(USERS),
    "outcome": st.sampled_from(OUTCOMES),
    "peak": st.sampled_from([5, 15, 20, 35, 50, 60, 72, 85, 90, 99]) | st.integers(0, 100),
    "before": st.integers(0, 100),
    "after": st.integers(0, 100),
    "crisis": st.sampled_from([False] * 7 + [True]),
    "backdate": st.sampled_from([timedelta(0)] * 4 + [timedelta(minutes=20), timedelta(hours=5)])
    | st.sampled_from([timedelta(days=1), timedelta(days=3), timedelta(days=9)]),
    "time_kind": st.sampled_from(["now", "now", "occurred", "occurred", "ahead", "none"]),
    "level": st.integers(1, 10),
}


@dataclass
class WarningSeen:
    warning_id: str
    severity: str
    evidence: list[str]
    step: int  # when the input that raised it was delivered
    since: datetime  # when that input happened (its `time`, capped at its arrival)


class DecisionMachine(RuleBasedStateMachine):
    """A platform with a few participants, checked after every input:

    - no assignment is issued, or left open, while a crisis pause holds, and the tracker holding
      a crisis warning means the plan is crisis-paused;
    - a warning is cleared by review only by a review sent after it was raised (never a copy of an
      earlier one) that says it happened after the input that raised it, by the participant's coach
      (any coach for a participant enrolled without one); a crisis pause ends only so;
    - a review by another coach than the participant's is dead-lettered `not_their_coach` by both
      services and has no effect, however often and in whatever order it comes;
    - every accepted crisis report leaves a crisis warning active, one raised now listing it;
    - no assignment is more than one level above the one before;
    - an input's effect is stored at most once, whatever copies of it come later;
    - the same inputs on fresh applications decide the same (checked at teardown).
    """

    floods_allowed = 0  # see LongLivedParticipants

    def __init__(self) -> None:
        super().__init__()
        self.pair = Pair()
        self.clock = START
        self.step = 0
        self.counter = 0
        self.sent: list[Sent] = []
        self.replay_log: list[tuple[list[Message], datetime]] = []
        self.enrolments: dict[str, dict[str, Any]] = {}
        self.coach: dict[str, str | None] = {}  # the coach of each participant's enrolment in force
        self.floods = 0
        self.broken = False
        self.outputs: list[dict[str, Any]] = []
        self.attempt_ids: set[str] = set()
        self.active: dict[str, WarningSeen | None] = dict.fromkeys(USERS)
        self.last_level: dict[str, int] = {}
        self.withdrawals = 0
        self.crisis_paused_at: dict[str, int] = {}

    # --- the platform ----------------------------------------------------------------------------

    def _next_id(self, what: str) -> str:
        self.counter += 1
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"stepout-test/{what}/{self.counter}"))

    def _send(self, kind: str, user_id: str, data: dict[str, Any], time: datetime | None) -> Delivery:
        event_id = self._next_id("event")
        message = platform_message(kind, user_id, data, event_id, time)
        sent = Sent(self.step + 1, kind, user_id, event_id, message.subject, message.body, data, self.pair.in_seq + 1)
        self.sent.append(sent)
        return self._deliver(sent, message)

    def _deliver(self, sent: Sent, *messages: Message) -> Delivery:
        """A batch of copies of one input (usually one); the invariants are checked after it."""
        self.step += 1
        self.clock += TICK
        plan_before = self.pair.plan_state(sent.user_id)
        self.replay_log.append((list(messages), self.clock))
        self.broken = True  # until the invariants hold: a failed run is not replayed
        delivery = self.pair.deliver(list(messages), self.clock)
        self.outputs.extend(without_time(o.event) for o in delivery.outputs())
        first = messages[0].stream_seq is None and sent.step == self.step
        self._check(sent, delivery, plan_before, first=first)
        self.broken = False
        if delivery.tracker[0] is None:
            sent.accepted_by.add("tracker")
        if delivery.planner[0] is None:
            sent.accepted_by.add("planner")
        return delivery

    def _time_of(self, how: str, occurred_at: datetime) -> datetime | None:
        return {"now": self.clock, "occurred": occurred_at, "ahead": self.clock + timedelta(minutes=2)}.get(how)

    # --- rules -----------------------------------------------------------------------------------

    @initialize(zone=st.sampled_from(ZONES), level=st.integers(1, 10), coach=st.sampled_from([None, "c-1", "c-1"]))
    def first_enrolments(self, zone: str, level: int, coach: str | None) -> None:
        for user in USERS[:2]:
            data = {"user_id": user, "timezone": zone, "starting_level": level}
            if coach is not None:
                data["coach_id"] = coach
            self._send("participant.enrolled", user, data, self.clock)
            self.enrolments[user] = data
            self.coach[user] = coach

    @rule(
        user=st.sampled_from(USERS),
        level=st.integers(1, 10),
        limit=st.integers(1, 4),
        zone=st.sampled_from(ZONES),
        coach=st.sampled_from(["c-1", "c-1", "c-2", None]),
    )
    def enrol(self, user: str, level: int, limit: int, zone: str, coach: str | None) -> None:
        data = {"user_id": user, "starting_level": level, "daily_limit": limit, "timezone": zone, "coach_id": coach}
        if self._send("participant.enrolled", user, data, self.clock).tracker[0] is None:
            self.enrolments[user] = data
            self.coach[user] = coach

    def _attempt(
        self,
        user: str,
        aim: str,
        outcome: str,
        peak: int,
        before: int,
        after: int,
        crisis: bool,
        backdate: timedelta,
        time_kind: str,
        level: int,
    ) -> None:
        occurred_at = self.clock - backdate
        plan = self.pair.planner.plan_of(user, self.clock)
        open_assignment = plan["open_assignment"] if plan else None
        assignment_id: str | None = None
        if aim == "open" and open_assignment is not None:
            assignment_id, challenge_id = open_assignment["assignment_id"], open_assignment["challenge_id"]
        elif aim == "stale":
            assignment_id, challenge_id = self._next_id("assignment"), UNKNOWN_CHALLENGE
        else:
            challenge_id = CATALOG.at_level(level)[0].id
        data: dict[str, Any] = {
            "attempt_id": self._next_id("attempt"),
            "user_id": user,
            "assignment_id": assignment_id,
            "challenge_id": challenge_id,
            "level": level,
            "outcome": outcome,
            "crisis_reported": crisis,
            "occurred_at": occurred_at.isoformat(),
        }
        if outcome != "skipped" or peak % 2:
            data.update(suds_before=min(before, peak), suds_peak=peak, suds_after=min(after, peak))
        if peak % 3 == 0:
            data.update(predicted_suds=before, prediction_came_true=after)
        self._send("attempt.logged", user, data, self._time_of(time_kind, occurred_at))

    @rule(aim=st.sampled_from(["open", "open", "open", "none", "stale"]), **ATTEMPT_FIELDS)
    def attempt(self, aim: str, **fields: Any) -> None:
        self._attempt(aim=aim, **fields)

    @rule(**ATTEMPT_FIELDS)
    def attempt_at_the_open_assignment(self, **fields: Any) -> None:
        self._attempt(aim="open", **fields)

    @rule(
        user=st.sampled_from(USERS),
        count=st.integers(2, 6),
        profile=st.sampled_from(sorted(PROFILES)),
        spacing=st.sampled_from([timedelta(minutes=10), timedelta(hours=5), timedelta(days=1)]),
        crisis_at=st.sampled_from([-1, -1, -1, 0, 1, 3]),
    )
    def a_run_of_attempts(self, user: str, count: int, profile: str, spacing: timedelta, crisis_at: int) -> None:
        """A few attempts in a row at the open assignment, alike: calm ones step up, distressed,
        escaping or rejected ones raise warnings."""
        outcome, peak, after = PROFILES[profile]
        for i in range(count):
            self.clock += spacing
            self._attempt(
                user=user,
                aim="open",
                outcome=outcome,
                peak=peak,
                before=peak // 2,
                after=after,
                crisis=i == crisis_at,
                backdate=timedelta(0),
                time_kind="now",
                level=3,
            )

    @precondition(lambda self: any(s.kind == "attempt.logged" for s in self.sent))
    @rule(pick=st.integers(0, 10_000), time_kind=st.sampled_from(["now", "occurred", "none"]))
    def same_attempt_with_a_new_event_id(self, pick: int, time_kind: str) -> None:
        attempts = [s for s in self.sent if s.kind == "attempt.logged"]
        sent = attempts[pick % len(attempts)]
        occurred_at = datetime.fromisoformat(sent.data["occurred_at"])
        self._send("attempt.logged", sent.user_id, sent.data, self._time_of(time_kind, occurred_at))

    @rule(
        user=st.sampled_from(USERS),
        warned_first=st.booleans(),
        backdate=st.sampled_from([timedelta(0), timedelta(0), timedelta(minutes=1), timedelta(minutes=10)])
        | st.just(timedelta(days=2)),
        with_time=st.sampled_from([True, True, True, False]),
        coach=st.sampled_from(["c-1", "c-1", "c-2"]),
    )
    def review(self, user: str, warned_first: bool, backdate: timedelta, with_time: bool, coach: str) -> None:
        """A coach's review, usually of a participant with a warning; sometimes it says it
        happened a while before it is sent, and sometimes it is another coach's."""
        warned = [u for u in USERS if self.active[u] is not None]
        if warned_first and warned:
            user = warned[USERS.index(user) % len(warned)]
        data = {"user_id": user, "coach_id": coach}
        self._send("participant.reviewed", user, data, self.clock - backdate if with_time else None)

    @rule(
        user=st.sampled_from(USERS),
        until=st.sampled_from([None, timedelta(hours=-1), timedelta(hours=2), timedelta(days=1), timedelta(days=3)]),
    )
    def pause(self, user: str, until: timedelta | None) -> None:
        data: dict[str, Any] = {"user_id": user}
        if until is not None:
            data["until"] = (self.clock + until).isoformat()
        self._send("participant.paused", user, data, self.clock)

    @rule(user=st.sampled_from(USERS))
    def resume(self, user: str) -> None:
        self._send("participant.resumed", user, {"user_id": user}, self.clock)

    @precondition(lambda self: self.withdrawals < 1)
    @rule(user=st.sampled_from(USERS[1:]), erase=st.booleans())
    def withdraw(self, user: str, erase: bool) -> None:
        self.withdrawals += 1
        self._send("participant.withdrawn", user, {"user_id": user, "erase": erase}, self.clock)

    @precondition(lambda self: bool(self.sent))
    @rule(
        pick=st.integers(0, 10_000),
        how=st.sampled_from(["redelivered", "published anew", "twice in a batch"]),
        attempts_too=st.booleans(),
    )
    def the_same_input_again(self, pick: int, how: str, attempts_too: bool) -> None:
        """The very same message again (same bytes, same CloudEvent id), long after JetStream's
        duplicate window: redelivered from the stream, published anew by the platform, or twice
        in one batch (a platform that sets no `Nats-Msg-Id`)."""
        candidates = [s for s in self.sent if attempts_too or s.kind != "attempt.logged"] or self.sent
        sent = candidates[pick % len(candidates)]
        if how == "redelivered":
            self._deliver(sent, Message(sent.body, sent.subject, sent.stream_seq, delivered=2))
        elif how == "published anew":
            self._deliver(sent, Message(sent.body, sent.subject))
        else:
            self._send_copy_twice(sent)

    def _send_copy_twice(self, sent: Sent) -> None:
        twin = Sent(self.step + 1, sent.kind, sent.user_id, sent.event_id, sent.subject, sent.body, sent.data, 0)
        twin.accepted_by = set(sent.accepted_by)
        self._deliver(twin, Message(sent.body, sent.subject), Message(sent.body, sent.subject))

    @precondition(lambda self: self.floods < self.floods_allowed and bool(self.sent) and bool(self.enrolments))
    @rule()
    def many_inputs_later(self) -> None:
        """A long-lived participant: hundreds more inputs (repeated enrolments, same settings) in
        one batch, so that a later copy of an earlier input comes after hundreds of others."""
        self.floods += 1
        user = sorted(self.enrolments)[0]
        messages = [
            platform_message("participant.enrolled", user, self.enrolments[user], self._next_id("event"), self.clock)
            for _ in range(FLOOD)
        ]
        self.step += 1
        self.clock += TICK
        self.replay_log.append((messages, self.clock))
        self.broken = True
        delivery = self.pair.deliver(messages, self.clock)
        # Each is recorded and told back as changing nothing; none changes the plan.
        said = [(o.type, o.event["data"]["reason"]) for o in delivery.outputs()]
        assert {kind for kind, _ in said} <= {"stepout.plan.notice.v1"}, (
            f"enrolling again with the same settings caused {said}"
        )
        assert {reason for _, reason in said} <= {"no_change", "stale"}, said
        self.outputs.extend(without_time(o.event) for o in delivery.outputs())
        self.broken = False

    @rule(by=st.sampled_from([timedelta(minutes=5), timedelta(hours=1), timedelta(hours=7), timedelta(days=1)]))
    def time_passes(self, by: timedelta) -> None:
        self.clock += by

    # --- invariants --------------------------------------------------------------------------------

    def _check(self, sent: Sent, delivery: Delivery, plan_before: Any, *, first: bool) -> None:
        user = sent.user_id
        assert not any(isinstance(v, Retry) for v in [*delivery.tracker, *delivery.planner])
        again = "first" if first else "repeated"

        # Every input's effect at most once: the same CloudEvent id again changes nothing.
        if not first:
            if "tracker" in sent.accepted_by:
                assert delivery.tracker_events == 0, f"{sent.kind} {sent.event_id} had its effect again in the tracker"
            if "planner" in sent.accepted_by:
                assert delivery.planner_events == 0, f"{sent.kind} {sent.event_id} had its effect again in the planner"
            if sent.accepted_by == {"tracker", "planner"} or (
                sent.kind == "attempt.logged" and "tracker" in sent.accepted_by
            ):
                assert not delivery.outputs(), f"repeated {sent.kind} caused {[o.type for o in delivery.outputs()]}"
        recorded_attempt = False
        if sent.kind == "attempt.logged":
            attempt_id = sent.data["attempt_id"]
            if attempt_id in self.attempt_ids:
                assert delivery.tracker_events == 0, "an attempt_id had its effect twice"
                assert not delivery.outputs(), "an attempt_id had its effect twice"
            elif delivery.tracker[0] is None and delivery.tracker_events:
                recorded_attempt = True
                self.attempt_ids.add(attempt_id)

        event_time = json.loads(sent.body).get("time")
        # A review by another coach than the participant's: refused by both, and no effect at all.
        if sent.kind == "participant.reviewed" and not self._by_their_coach(sent):
            assert delivery.tracker_events == 0 and delivery.planner_events == 0 and not delivery.outputs(), (
                f"another coach's review, {again} delivery, caused {[o.type for o in delivery.outputs()]}"
            )
            # Dead-lettered unless that CloudEvent id had its effect already (a copy of a review accepted
            # before the coach changed), or the input is refused for something else: an invalid
            # envelope (no `time`), a participant not enrolled or withdrawn.
            new = first and not sent.accepted_by and event_time is not None
            if new and plan_before is not None and plan_before.status != "withdrawn":
                assert plan_before.coach_id == self.coach[user], "the planner holds another coach"
                refused = DeadLetter("not_their_coach", NOT_THEIR_COACH.detail)
                assert (delivery.tracker[0], delivery.planner[0]) == (refused, refused), (
                    f"another coach's review: tracker {delivery.tracker[0]}, planner {delivery.planner[0]}"
                )

        happened = min(datetime.fromisoformat(event_time), self.clock) if event_time else self.clock
        raised_now: list[WarningSeen] = []
        for output in delivery.tracker_outputs:
            data = output.event["data"]
            if output.event["type"] == "stepout.overload.warning.v1":
                seen = WarningSeen(data["warning_id"], data["severity"], data["evidence"], self.step, happened)
                self.active[data["user_id"]] = seen
                raised_now.append(seen)
            elif output.event["type"] == "stepout.overload.cleared.v1":
                active = self.active[data["user_id"]]
                assert active is not None and active.warning_id == data["warning_id"], "cleared a warning not active"
                if data["by"] == "review":
                    # Only a review sent after the warning was raised clears it, never one sent before,
                    # and only one that says it happened after the input that raised the warning.
                    assert sent.kind == "participant.reviewed" and sent.step > active.step, (
                        f"a {active.severity} warning raised at step {active.step} was cleared by review on the "
                        f"{again} delivery of a {sent.kind} sent at step {sent.step}"
                    )
                    assert happened >= active.since, (
                        f"a review of {happened.isoformat()} cleared a {active.severity} warning raised by an input "
                        f"of {active.since.isoformat()}"
                    )
                    assert self._by_their_coach(sent), "another coach's review cleared a warning"
                self.active[data["user_id"]] = None

        # Any accepted crisis report raises, or stays under, a crisis warning listing it.
        if recorded_attempt and sent.data["crisis_reported"]:
            active = self.active[user]
            assert active is not None and active.severity == "crisis", (
                f"crisis reported (occurred {sent.data['occurred_at']}, arrived {self.clock.isoformat()}) "
                f"but the active warning is {active}"
            )
            if raised_now:
                assert sent.data["attempt_id"] in raised_now[-1].evidence, "the crisis warning does not list the report"

        # No assignment while a crisis pause holds; a crisis pause ends only by a review sent after it began.
        plan_after = self.pair.plan_state(user)
        crisis_active = self.active[user] is not None and self.active[user].severity == "crisis"  # type: ignore[union-attr]
        if plan_after is None or plan_after.status == "withdrawn":
            return
        if crisis_active:
            assert plan_after.status == "paused" and plan_after.pause_reason == "crisis", (
                f"the tracker holds a crisis warning but the plan is {plan_after.status}/{plan_after.pause_reason}"
            )
        was_crisis_paused = plan_before is not None and plan_before.pause_reason == "crisis"
        kinds = [o.event["type"] for o in delivery.planner_outputs]
        assigned = [i for i, k in enumerate(kinds) if k == "stepout.challenge.assigned.v1"]
        if plan_after.pause_reason == "crisis":
            assert plan_after.open_assignment is None, "an assignment is open during a crisis pause"
            if was_crisis_paused:
                assert not assigned, f"challenge.assigned while a crisis pause holds: {kinds}"
            else:
                self.crisis_paused_at[user] = self.step
                pauses = [
                    i
                    for i, o in enumerate(delivery.planner_outputs)
                    if o.event["type"] == "stepout.plan.paused.v1" and o.event["data"]["reason"] == "crisis"
                ]
                assert pauses and all(i < pauses[0] for i in assigned), (
                    f"challenge.assigned after a crisis pause began: {kinds}"
                )
        elif was_crisis_paused:
            began = self.crisis_paused_at.get(user, 0)
            assert sent.kind == "participant.reviewed" and sent.step > began, (
                f"a crisis pause begun at step {began} ended on the {again} delivery of a {sent.kind} "
                f"sent at step {sent.step}"
            )
            assert self._by_their_coach(sent), "a crisis pause ended on another coach's review"

        # Step size: never more than one level above the previous assignment.
        for output in delivery.planner_outputs:
            if output.event["type"] == "stepout.challenge.assigned.v1":
                data = output.event["data"]
                previous = self.last_level.get(data["user_id"])
                if previous is not None:
                    assert data["level"] <= previous + 1, (
                        f"assignment at level {data['level']} ({data['reason']}) after one at level {previous}"
                    )
                self.last_level[data["user_id"]] = data["level"]

    def _by_their_coach(self, sent: Sent) -> bool:
        """Whether a review names the coach of the enrolment in force (any coach when enrolled without
        one); a review of someone not enrolled is refused for that, not for its coach."""
        coach = self.coach.get(sent.user_id)
        return coach is None or sent.data["coach_id"] == coach

    def teardown(self) -> None:
        try:
            if self.replay_log and not self.broken:
                # Determinism: the same inputs in the same order, on fresh applications, decide the same.
                fresh = Pair()
                try:
                    again: list[dict[str, Any]] = []
                    for messages, at in self.replay_log:
                        delivery = fresh.deliver(messages, at)
                        again.extend(without_time(o.event) for o in delivery.outputs())
                    assert again == self.outputs, "the same inputs on fresh applications decided differently"
                finally:
                    fresh.close()
        finally:
            self.pair.close()


class LongLivedParticipants(DecisionMachine):
    """The same, with hundreds of inputs of one participant in between: copies of early inputs
    then come long after both JetStream's duplicate window and any short memory of recent ids."""

    floods_allowed = 1


MACHINE_SETTINGS = settings(
    max_examples=80,
    stateful_step_count=35,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
DecisionMachine.TestCase.settings = MACHINE_SETTINGS
LongLivedParticipants.TestCase.settings = settings(MACHINE_SETTINGS, max_examples=25, stateful_step_count=15)
test_both_services_decide_safely_once_and_the_same_on_replay = DecisionMachine.TestCase
test_an_input_has_its_effect_once_however_many_inputs_came_between = LongLivedParticipants.TestCase


def attempt_data(user_id: str, n: int, occurred_at: datetime, **fields: Any) -> dict[str, Any]:
    data = {
        "attempt_id": str(uuid.UUID(int=n)),
        "user_id": user_id,
        "assignment_id": None,
        "challenge_id": CATALOG.at_level(3)[0].id,
        "outcome": "rejected",
        "suds_before": 20,
        "suds_peak": 40,
        "suds_after": 10,
        "occurred_at": occurred_at.isoformat(),
    }
    return {**data, **fields}


def test_the_harness_carries_an_attempt_through_progress_to_the_next_assignment() -> None:
    pair = Pair()
    try:
        first = pair.deliver([platform_message("participant.enrolled", "u-a", {"user_id": "u-a"}, "e-1", START)], START)
        [assigned] = [o.event["data"] for o in first.planner_outputs]
        at = START + TICK
        data = attempt_data(
            "u-a", 1, at, assignment_id=assigned["assignment_id"], challenge_id=assigned["challenge_id"]
        )
        second = pair.deliver([platform_message("attempt.logged", "u-a", data, "e-2", at)], at)
        assert [o.type for o in second.outputs()] == ["stepout.progress.updated.v1", "stepout.challenge.assigned.v1"]
    finally:
        pair.close()


def test_an_old_review_sent_again_after_hundreds_of_inputs_neither_clears_a_late_crisis_nor_resumes() -> None:
    """A review, then a crisis synced late (it says it happened before the review), then a long
    life of other inputs: the old review coming again must not count as a review of the crisis."""
    pair = Pair(once=False)
    try:
        at = START
        pair.deliver([platform_message("participant.enrolled", "u-a", {"user_id": "u-a"}, "e-enrol", at)], at)
        at += timedelta(days=1)
        review = platform_message("participant.reviewed", "u-a", {"user_id": "u-a", "coach_id": "c-1"}, "e-rev", at)
        pair.deliver([review], at)
        at += timedelta(days=1)
        occurred = at - timedelta(days=3)
        crisis = attempt_data("u-a", 1, occurred, crisis_reported=True)
        raised = pair.deliver([platform_message("attempt.logged", "u-a", crisis, "e-crisis", occurred)], at)
        assert "stepout.plan.paused.v1" in [o.type for o in raised.outputs()]
        at += TICK
        enrolments = [
            platform_message("participant.enrolled", "u-a", {"user_id": "u-a"}, f"e-again-{i}", at)
            for i in range(FLOOD)
        ]
        pair.deliver(enrolments, at)
        at += timedelta(hours=1)
        again = pair.deliver([review], at)
        outputs = [(o.type, o.event["data"].get("by") or o.event["data"].get("reason")) for o in again.outputs()]
        # Recorded as the older input it is, told back as changing nothing, and nothing else.
        assert outputs == [("stepout.plan.notice.v1", "stale")], f"the old review, sent again, caused {outputs}"
        assert pair.plan_state("u-a").pause_reason == "crisis"
        assert again.tracker_events == 0 and again.planner_events <= 1  # at most the record that it came
    finally:
        pair.close()
