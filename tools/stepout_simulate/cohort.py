"""The run of `stepout simulate`: drive a synthetic cohort through a running system over NATS, as a platform would.

Each participant (`personas.Script`) enrols, then walks its days from `--days`
ago up to now: every attempt answers the latest `challenge.assigned` it received, and
the next attempt waits for the planner's next assignment. Simulated time only moves
forward and never passes the moment the run started, so no `occurred_at` is ever in
the future. Outputs are read with a core NATS subscription opened before anything is
published. At the end the run compares the warnings stepout raised with the overload
episodes the simulator injected, and prints a summary.

`not_before` is honoured relative to the planner's clock for the participant. The planner
decides an enrolment at the time its CloudEvent says it happened, so that clock follows the
simulated one; should it still run ahead (an older planner, or clocks apart), the difference
(`lead`) is taken off every `not_before` before comparing it with simulated time, and the
summary says so.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError

from stepout_cli import natsd
from stepout_contract import dead_letters
from stepout_contract.envelope import CONTENT_TYPE, encode, make_event, rfc3339
from stepout_contract.settings import Settings
from stepout_contract.subjects import OUTPUT_FAMILIES, Subjects
from stepout_runtime.connection import connect_options
from stepout_runtime.server_version import FLOOR_TEXT, is_supported, too_old_line, version_of, where_of

from .personas import COACH_ID, Script, assign_personas
from .summary import refused_valid_inputs, render, summarise

SOURCE = "urn:example:stepout-simulate"  # a platform's source: `urn:stepout:` is for stepout's own outputs
CONNECT_S = 10.0
FIRST_ANSWER_S = 15.0
REPLY_TIMEOUT_S = 30.0
CONCURRENCY = 100
SETTLE_S = 1.0  # after the last participant, for outputs still on their way


class NoAnswer(Exception):
    """The system cannot be simulated against; the message is one line."""


class _CrisisPause:
    """The plan paused with no end: only a coach's review resumes it."""


CRISIS_PAUSE = _CrisisPause()


@dataclass
class Participant:
    """A script and everything the run saw of its participant."""

    script: Script
    inbox: asyncio.Queue[tuple[str, dict[str, Any]]] = field(default_factory=asyncio.Queue)
    assignments: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    pauses: list[dict[str, Any]] = field(default_factory=list)
    paused_until: datetime | None = None
    lead: timedelta = timedelta(0)
    reviews: int = 0
    stalled: str | None = None  # what the participant waited for in vain


@dataclass
class SimulationResult:
    summary: dict[str, Any]
    published: list[tuple[str, str, str, str | None]]  # (type, user_id, event id, attempt_id)


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class Simulation:
    def __init__(self, nc: Client, subjects: Subjects, scripts: list[Script], end: datetime, reply_timeout: float):
        self.nc = nc
        self.js = nc.jetstream()
        self.subjects = subjects
        self.end = end
        self.reply_timeout = reply_timeout
        self.cohort = {s.user_id: Participant(s) for s in scripts}
        self.published: list[tuple[str, str, str, str | None]] = []
        self.clearings: Counter[str] = Counter()
        self.dead_letters: Counter[tuple[str, str]] = Counter()  # (service, reason)

    async def subscribe(self) -> None:
        """One subscription for every output and dead letter, open before anything is published.

        One, not one per subject: nats-py hands each subscription's messages to its own task,
        so across subscriptions a `challenge.assigned` could overtake the `plan.paused` the
        planner published just before it. The connection is made with `no_echo`, so the
        inputs this run publishes do not come back.
        """
        await self.nc.subscribe(f"{self.subjects.prefix}.>", cb=self._on_message)
        await self.nc.flush()

    async def _on_message(self, msg: Msg) -> None:
        family = msg.subject[len(self.subjects.prefix) + 1 :].split(".", 1)[0]
        if family == "deadletter":
            await self._on_dead_letter(msg)
        elif family in OUTPUT_FAMILIES:
            await self._on_output(msg)

    async def _on_output(self, msg: Msg) -> None:
        participant = self.cohort.get(self.subjects.user_of(msg.subject) or "")
        if participant is None:
            return  # someone else's participant
        try:
            data = json.loads(msg.data)["data"]
        except (ValueError, KeyError, TypeError):
            return  # not a CloudEvent: nothing a platform could act on
        kind = msg.subject[len(self.subjects.prefix) + 1 :].rsplit(".", 1)[0]
        if kind == "overload.warning":
            participant.warnings.append(data)
        elif kind == "overload.cleared":
            self.clearings[data["by"]] += 1
        elif kind == "challenge.assigned":
            participant.assignments.append(data)
            participant.inbox.put_nowait(("assigned", data))
        elif kind == "plan.paused":
            participant.pauses.append(data)
            participant.inbox.put_nowait(("paused", data))

    async def _on_dead_letter(self, msg: Msg) -> None:
        headers = msg.headers or {}
        if self.subjects.user_of(headers.get(dead_letters.ORIGINAL_SUBJECT, "")) in self.cohort:
            service = msg.subject.rsplit(".", 1)[-1]  # P.deadletter.<service>
            self.dead_letters[service, headers.get(dead_letters.REASON, "unknown")] += 1

    async def publish(self, kind: str, script: Script, data: dict[str, Any], at: datetime) -> None:
        family, name = kind.split(".")
        event_id = script.new_id()
        wire = {k: rfc3339(v) if isinstance(v, datetime) else v for k, v in data.items()}
        event = make_event(
            event_id=event_id, source=SOURCE, type_=f"stepout.{kind}.v1", user_id=script.user_id, time=at, data=wire
        )
        headers = {"Nats-Msg-Id": event_id, "Content-Type": CONTENT_TYPE}
        for attempt in range(3):  # the same Nats-Msg-Id: a retry after a lost ack is not a second message
            try:
                await self.js.publish(self.subjects.event(family, name, script.user_id), encode(event), headers=headers)
                break
            except (NatsError, TimeoutError):
                if attempt == 2:
                    raise
                await asyncio.sleep(1.0)
        self.published.append((kind, script.user_id, event_id, wire.get("attempt_id")))

    async def next_assignment(self, p: Participant, timeout: float) -> dict[str, Any] | _CrisisPause | None:
        """The next assignment not seen before, or a crisis pause; None when nothing came in time."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                kind, data = await asyncio.wait_for(p.inbox.get(), timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                return None
            if kind == "assigned":
                return data
            if data["until"] is None:
                return CRISIS_PAUSE
            until = _time(data["until"])
            p.paused_until = until if p.paused_until is None else max(p.paused_until, until)

    async def drive(self, p: Participant, first: asyncio.Future[bool] | None = None) -> None:
        """Enrol, then attempt whatever is assigned until simulated time reaches the end of the run."""
        s = p.script
        await self.publish("participant.enrolled", s, s.enrolment(), s.enrolled_at)
        reply = await self.next_assignment(p, FIRST_ANSWER_S if first else self.reply_timeout)
        if first is not None:
            first.set_result(isinstance(reply, dict))
        if not isinstance(reply, dict):
            p.stalled = "first assignment"
            return
        assignment = reply
        p.lead = max(timedelta(0), _time(assignment["not_before"]) - s.enrolled_at)
        clock = s.enrolled_at
        while True:
            earliest = max(clock + timedelta(minutes=1), _time(assignment["not_before"]) - p.lead)
            if p.paused_until is not None:
                earliest = max(earliest, p.paused_until)
            planned = s.next_attempt(earliest) if earliest <= self.end else None
            if planned is None or planned.at > self.end:
                return
            await self.publish("attempt.logged", s, s.attempt(planned, assignment), planned.at)
            clock = planned.at
            reply = await self.next_assignment(p, self.reply_timeout)
            if reply is CRISIS_PAUSE:
                clock += s.review_delay()
                if clock > self.end:
                    return
                await self.publish("participant.reviewed", s, {"user_id": s.user_id, "coach_id": COACH_ID}, clock)
                p.reviews += 1
                reply = await self.next_assignment(p, self.reply_timeout)
            if not isinstance(reply, dict):
                p.stalled = "next assignment"
                return
            assignment = reply


async def run_simulation(
    settings: Settings,
    participants: int,
    days: int,
    seed: int,
    *,
    now: datetime | None = None,
    concurrency: int = CONCURRENCY,
    reply_timeout: float = REPLY_TIMEOUT_S,
) -> SimulationResult:
    """Run the whole simulation; raises `NoAnswer` when the system does not answer at all."""
    started = time.monotonic()
    end = (now or datetime.now(UTC)).replace(microsecond=0)
    personas = assign_personas(participants, random.Random(seed))
    scripts = [Script(i, seed, persona, days, end) for i, persona in enumerate(personas)]
    subjects = Subjects(settings.subject_prefix)
    nc = await _connect(settings)
    try:
        sim = Simulation(nc, subjects, scripts, end, reply_timeout)
        await sim.subscribe()
        await _check_fresh(nc, subjects, scripts[0], seed)
        gate = asyncio.Semaphore(concurrency)

        async def one(p: Participant, first: asyncio.Future[bool] | None = None) -> None:
            async with gate:
                try:
                    await sim.drive(p, first)
                except (NatsError, TimeoutError) as exc:  # NATS went away for longer than the retries
                    p.stalled = f"publish failed: {type(exc).__name__}"
                finally:
                    if first is not None and not first.done():
                        first.set_result(False)

        everyone = list(sim.cohort.values())
        first: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        tasks = [asyncio.create_task(one(everyone[0], first))]
        if not await first:
            await asyncio.gather(*tasks)
            raise NoAnswer(f"no challenge.assigned for the first enrolment within {FIRST_ANSWER_S:.0f} s")
        tasks += [asyncio.create_task(one(p)) for p in everyone[1:]]
        await asyncio.gather(*tasks)
        await asyncio.sleep(SETTLE_S)
    finally:
        await nc.close()
    summary = summarise(sim, participants=participants, days=days, seed=seed, wall=time.monotonic() - started)
    return SimulationResult(summary, sim.published)


async def _connect(settings: Settings) -> Client:
    """A connection to a server stepout runs on. With STEPOUT_NATS_URL not set and an older server at the
    default address, the one `stepout run all` then starts beside it (`natsd.FALLBACK_PORT`) is used."""
    options: dict[str, Any] = {
        **connect_options(settings, "stepout-simulate"),
        "error_cb": _quiet,
        "disconnected_cb": _quiet,
        "no_echo": True,
    }
    try:
        nc = await asyncio.wait_for(nats.connect(**options), timeout=CONNECT_S)
    except (NatsError, OSError, TimeoutError):
        raise NoAnswer(f"cannot connect to NATS at {settings.nats_url} within {CONNECT_S:.0f} s") from None
    version, where = version_of(nc), where_of(nc)
    if is_supported(version):
        return nc
    await nc.close()
    if "nats_url" not in settings.model_fields_set:
        own = natsd.fallback_url(options["servers"][0])
        if is_supported(await natsd.probe(own, options) or ""):
            print(
                f"stepout simulate: nats-server {version} at {where} is older than {FLOOR_TEXT}: "
                f"using {natsd.where(own)}, where `stepout run all` then runs its own",
                file=sys.stderr,
            )
            return await asyncio.wait_for(nats.connect(**{**options, "servers": [own]}), timeout=CONNECT_S)
    raise NoAnswer(f"{too_old_line(version, where)}; set STEPOUT_NATS_URL to the server stepout runs on")


async def _quiet(*_: object) -> None:
    """A command prints one line when NATS cannot be reached, not one per reconnect attempt."""


async def _check_fresh(nc: Client, subjects: Subjects, script: Script, seed: int) -> None:
    """The planner answers, and does not know this seed's participants yet (their ids would be replays)."""
    request = json.dumps({"user_id": script.user_id}).encode()
    try:
        reply = json.loads((await nc.request(subjects.query("plan"), request, timeout=5)).data)
    except (NatsError, TimeoutError):
        raise NoAnswer(f"no planner answered {subjects.query('plan')} within 5 s") from None
    if "error" not in reply:
        raise NoAnswer(f"participant {script.user_id} already exists: seed {seed} ran here before; use another seed")


def simulate(settings: Settings, participants: int, days: int, seed: int, *, as_json: bool = False) -> int:
    """The `stepout simulate` command: 0 done, 1 the system did not answer or refused valid inputs
    (dead letters no persona sends on purpose), 2 usage error."""
    if participants < 1 or days < 1:
        print("stepout simulate: --participants and --days must be at least 1", file=sys.stderr)
        return 2
    try:
        result = asyncio.run(run_simulation(settings, participants, days, seed))
    except NoAnswer as exc:
        print(f"stepout simulate: {exc}", file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps(result.summary, indent=2))
    else:
        render(result.summary)
    refused = refused_valid_inputs(result.summary)
    if refused is not None:
        print(f"stepout simulate: {refused}", file=sys.stderr)
        return 1
    return 0
