"""Access control: the role identities of deploy/nats/nats-server.conf against the real services
(with one partition and partitioned, on one server and on the cluster docker-compose.yml runs),
the store that configuration encrypts, and every kind of NATS credential of CONTRACT §9 against a
real nats-server that wants it."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig
from nats.js.errors import APIError, NotFoundError

from integration.nats_auth import (
    CONSOLE,
    CONSOLE_INBOX_PREFIX,
    PLATFORM_INBOX_PREFIX,
    ComposeCluster,
    Identity,
    PlatformIdentity,
    creds_file,
    log_marks,
    logged_since,
    login,
    make_certificates,
    make_operator,
    new_keypair,
    openssl_binary,
    round_trip,
    service_identity,
    settings_for,
)
from project_nats import PREFIX, ROLES, ConfiguredNatsServer, ProjectNats, files_containing
from stepout_contract.queries import QUERIES
from stepout_contract.subjects import Subjects
from stepout_runtime.connection import NatsRefusedError, connect
from stepout_runtime.topology import (
    PLATFORM_CONSUMER,
    PLATFORM_REFUSALS,
    SINGLE_PLANNER,
    apply_topology,
    consumers,
    platform_consumer,
    platform_deliveries,
    platform_refusals,
)
from support import (
    NatsServer,
    ServiceProcess,
    System,
    cloud_event,
    declare_topology,
    free_port,
    nats_server_binary,
    new_prefix,
    service_env,
)

SUBJECTS = Subjects(PREFIX)
IN, OUT, DLQ = SUBJECTS.in_stream, SUBJECTS.out_stream, SUBJECTS.dlq_stream
OUTCOMES = SUBJECTS.outcomes_stream  # the planner's copy of the tracker's outcomes, with partitions only
PARTITIONS = 2  # STEPOUT_TRACKER_PARTITIONS of the partitioned system: both services split
JS_API = "stepout.jsapi"  # where the outside accounts reach the JetStream API of STEPOUT's they import
DENIED_S = 0.5  # how long a refused request is waited for: the server never answers it
PULL_ONE = json.dumps({"batch": 1, "no_wait": True}).encode()  # a pull request, answered at once when allowed
SERVICES = ("tracker", "planner")
IDENTITIES = tuple(dict.fromkeys((*ROLES, CONSOLE)))  # every identity of the configuration
RUNTIME_IDENTITIES = tuple(role for role in IDENTITIES if role != "admin")  # all but the operator's


# --- the role identities, against planner and tracker ---------------------------------------------


def running_nats(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[ProjectNats]:
    """The deploy configuration's server in a fresh directory, for a module's tests."""
    server = ProjectNats(tmp_path_factory.mktemp(name))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def secured_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProjectNats]:
    yield from running_nats(tmp_path_factory, "secured-nats")


@pytest.fixture(scope="module")
def secured_system(secured_nats: ProjectNats, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """Planner and tracker on the secured server, each logged in as itself, on the default prefix."""
    running = secured_nats.system(tmp_path_factory.mktemp("secured-data"))
    try:
        running.start()
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def partitioned_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProjectNats]:
    yield from running_nats(tmp_path_factory, "partitioned-nats")


@pytest.fixture(scope="module")
async def partitioned_system(
    partitioned_nats: ProjectNats, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[System]:
    """Planner and tracker with STEPOUT_TRACKER_PARTITIONS=2, each logged in as itself, started over the
    topology a single planner left: the operator's `topology apply` deletes its two consumers."""
    admin = await login(partitioned_nats, "admin")
    try:
        await apply_topology(admin.nc.jetstream(), SUBJECTS, max_deliver=5)
        assert admin.errors == []
    finally:
        await admin.nc.close()
    running = partitioned_nats.system(
        tmp_path_factory.mktemp("partitioned-data"), STEPOUT_TRACKER_PARTITIONS=str(PARTITIONS)
    )
    try:
        running.start()
        yield running
    finally:
        running.stop()


@pytest.fixture(params=[1, PARTITIONS], ids=["one-partition", "partitioned"])
def deployed(request: pytest.FixtureRequest) -> tuple[ProjectNats, System, int]:
    """The server and the running services, with one partition or with PARTITIONS."""
    which = "secured" if request.param == 1 else "partitioned"
    return request.getfixturevalue(f"{which}_nats"), request.getfixturevalue(f"{which}_system"), request.param


@pytest.fixture
async def platform(secured_system: System, secured_nats: ProjectNats) -> AsyncIterator[PlatformIdentity]:
    client = await PlatformIdentity.login(secured_nats.url)
    yield client
    await client.nc.close()


@pytest.fixture
async def tracker_identity(secured_nats: ProjectNats) -> AsyncIterator[Identity]:
    identity = await login(secured_nats, "tracker")
    yield identity
    await identity.nc.close()


@pytest.fixture
async def planner_identity(secured_nats: ProjectNats) -> AsyncIterator[Identity]:
    identity = await login(secured_nats, "planner")
    yield identity
    await identity.nc.close()


@pytest.fixture
async def operator(secured_nats: ProjectNats) -> AsyncIterator[Identity]:
    """The operator's identity, `admin`: the only one that may read every consumer's definition."""
    identity = await login(secured_nats, "admin")
    yield identity
    await identity.nc.close()


@pytest.fixture
async def auditor(secured_system: System, secured_nats: ProjectNats) -> AsyncIterator[Identity]:
    identity = await login(secured_nats, "auditor")
    yield identity
    await identity.nc.close()


@pytest.fixture
async def console(secured_system: System, secured_nats: ProjectNats) -> AsyncIterator[Identity]:
    identity = await login(secured_nats, CONSOLE)
    yield identity
    await identity.nc.close()


async def stored(identity: Identity, stream: str) -> int:
    """How many messages `stream` holds, asked under a service identity (which may read stream info)."""
    return int((await identity.nc.jetstream().stream_info(stream)).state.messages)


async def last_seq(identity: Identity, stream: str) -> int:
    """The sequence of the last message `stream` ever took: it moves even when the message is consumed at once."""
    return int((await identity.nc.jetstream().stream_info(stream)).state.last_seq)


async def answered(identity: Identity, subject: str, body: bytes, timeout: float = DENIED_S) -> dict[str, Any] | None:
    """The answer to a request, or None when none came (a refused request is never answered)."""
    try:
        reply = await identity.nc.request(subject, body, timeout=timeout)
    except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
        return None
    return json.loads(reply.data)  # type: ignore[no-any-return]


async def refused(identity: Identity, subject: str, body: bytes = b"{}") -> None:
    """`subject` is not `identity`'s to publish: no answer, and the server reports the violation."""
    assert await answered(identity, subject, body) is None, f"{subject} was answered"
    await identity.violation(subject)


async def test_the_whole_loop_runs_under_the_role_identities(deployed: tuple[ProjectNats, System, int]) -> None:
    server, system, _ = deployed
    platform = await PlatformIdentity.login(server.url)
    try:
        await whole_loop(platform, server, system)
    finally:
        await platform.nc.close()


async def whole_loop(platform: PlatformIdentity, server: ProjectNats, system: System) -> None:
    marks = log_marks(server.log_path, *(service.log_path for service in system.services()))
    await platform.enrol("u-roles")
    [first] = await platform.wait_for("challenge.assigned", "u-roles")
    challenge = first["data"]
    await platform.attempt(
        "u-roles", assignment_id=challenge["assignment_id"], challenge_id=challenge["challenge_id"], level=None
    )
    [progress] = await platform.wait_for("progress.updated", "u-roles")
    assert progress["data"]["position"] == 1
    await platform.wait_for("challenge.assigned", "u-roles", count=2)

    # Queries are answered by each service's queue group, to the platform's inbox.
    assert await platform.query("progress", {"user_id": "u-roles"}) == progress["data"]
    assert (await platform.query("plan", {"user_id": "u-roles"}))["status"] == "active"
    history = await platform.query("history", {"user_id": "u-roles", "limit": 10})
    assert history["events"][0]["type"] == "stepout.participant.enrolled.v1"
    # the tracker may ask the planner for its part, and the planner may answer it
    assert "partial" not in history
    assert "stepout.challenge.assigned.v1" in [event["type"] for event in history["events"]]

    # The other way the platform reads outputs: the durable consumer declared for it, with acks.
    expected = [
        f"{PREFIX}.challenge.assigned.u-roles",
        f"{PREFIX}.progress.updated.u-roles",
        f"{PREFIX}.challenge.assigned.u-roles",
    ]
    assert [msg.subject for msg in await pulled_by_platform(platform, "u-roles", len(expected))] == expected

    # Withdrawal with erasure: the tracker purges the participant's queued inputs from the stream.
    await platform.publish("participant.withdrawn", "u-roles", {"user_id": "u-roles", "erase": True})
    [paused] = await platform.wait_for("plan.paused", "u-roles")
    assert paused["data"]["reason"] == "withdrawn"
    for _ in range(100):
        if "participant erased" in logged_since(marks):
            break
        await asyncio.sleep(0.05)
    assert "participant erased" in logged_since(marks)

    # Nobody was refused anything along the way.
    assert platform.identity.errors == []
    assert "violation" not in logged_since(marks).lower()


async def pulled_by_platform(platform: PlatformIdentity, user_id: str, count: int) -> list[Msg]:
    """`count` outputs of `user_id` delivered by the platform's consumer, each acked, the others' acked too."""
    mine: list[Msg] = []

    async def delivered(msg: Msg) -> None:
        await msg.ack()
        if msg.subject.endswith(f".{user_id}"):
            mine.append(msg)

    subscription = await platform.nc.subscribe(platform_deliveries(SUBJECTS), queue=PLATFORM_CONSUMER, cb=delivered)
    for _ in range(200):
        if len(mine) >= count:
            break
        await asyncio.sleep(0.05)
    await subscription.unsubscribe()
    return mine


async def test_partitioned_services_read_only_their_own_consumers(
    partitioned_system: System, partitioned_nats: ProjectNats
) -> None:
    tracker, planner = await login(partitioned_nats, "tracker"), await login(partitioned_nats, "planner")
    try:
        # A single planner's consumers are gone: the operator's `topology apply` deleted them.
        for stream, durable in zip((IN, OUT), SINGLE_PLANNER, strict=True):
            with pytest.raises(NotFoundError):
                await planner.nc.jetstream().consumer_info(stream, durable)
        partitioned = consumers(SUBJECTS, PARTITIONS).values()
        assert {c.stream for c in partitioned if c.durable.startswith("planner-outcomes-")} == {OUTCOMES}
        # What each may not read: the other's consumers (a single planner's and tracker's names included,
        # as a service with one partition would have them), and a platform's consumer of the outputs.
        others = {
            "tracker": [
                *[(c.stream, c.durable) for c in partitioned if c.durable.startswith("planner")],
                *zip((IN, OUT), SINGLE_PLANNER, strict=True),
                (OUT, PLATFORM_CONSUMER),
            ],
            "planner": [
                *[(c.stream, c.durable) for c in partitioned if c.durable.startswith("tracker")],
                (IN, "tracker"),
                (OUT, PLATFORM_CONSUMER),
            ],
        }
        assert len(others["tracker"]) == 2 * PARTITIONS + 3 and len(others["planner"]) == PARTITIONS + 2
        for identity, name in ((tracker, "tracker"), (planner, "planner")):
            for stream, durable in others[name]:
                await refused(identity, f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}", PULL_ONE)
                await refused(identity, f"$JS.API.CONSUMER.INFO.{stream}.{durable}")
                ack = f"$JS.ACK.{stream}.{durable}.1.1.1.0.0"
                await identity.nc.publish(ack, b"")
                await identity.violation(ack)
        # The way a service pulls, bound to the other's first partition: nothing comes.
        for identity, stream, durable in ((tracker, IN, "planner-p0"), (tracker, OUTCOMES, "planner-outcomes-p0"),
                                          (planner, IN, "tracker-p0")):  # fmt: skip
            pulling = await identity.nc.jetstream().pull_subscribe_bind(durable, stream=stream)
            with pytest.raises(nats.errors.TimeoutError):
                await pulling.fetch(1, timeout=DENIED_S)
            await identity.violation(f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}")
    finally:
        await tracker.nc.close()
        await planner.nc.close()
    await topology_intact(partitioned_nats, PARTITIONS)


@pytest.mark.parametrize("family", ["challenge.assigned", "progress.updated", "overload.warning"])
async def test_the_platform_cannot_publish_an_output(
    family: str, platform: PlatformIdentity, tracker_identity: Identity
) -> None:
    before = await stored(tracker_identity, SUBJECTS.out_stream)
    subject = f"{PREFIX}.{family}.u-forged"
    forged = cloud_event(f"stepout.{family}.v1", "u-forged", {"user_id": "u-forged"})
    with pytest.raises(nats.errors.TimeoutError):
        await platform.js.publish(
            subject, json.dumps(forged).encode(), headers={"Nats-Msg-Id": forged["id"]}, timeout=DENIED_S
        )
    await platform.identity.violation(subject)
    assert await stored(tracker_identity, SUBJECTS.out_stream) == before


async def test_the_platform_can_neither_take_over_the_planners_consumer_nor_read_inputs(
    platform: PlatformIdentity, planner_identity: Identity
) -> None:
    out, in_, dlq = SUBJECTS.out_stream, SUBJECTS.in_stream, SUBJECTS.dlq_stream
    planners = consumers(SUBJECTS)["planner-outcomes"]
    js = platform.js
    hijack = {"stream_name": out, "config": {"name": "planner-outcomes", "filter_subject": f"{PREFIX}.plan.>"}}
    # The create request without a name in its subject would redefine any consumer named in its body.
    with pytest.raises(nats.errors.TimeoutError):
        await platform.nc.request(f"$JS.API.CONSUMER.CREATE.{out}", json.dumps(hijack).encode(), timeout=DENIED_S)
    await platform.identity.violation(f"$JS.API.CONSUMER.CREATE.{out}")
    with pytest.raises(nats.errors.TimeoutError):
        await js.add_consumer(out, ConsumerConfig(durable_name="planner-outcomes"), timeout=DENIED_S)
    with pytest.raises(nats.errors.TimeoutError):
        await platform.nc.request(f"$JS.API.CONSUMER.DELETE.{out}.planner-outcomes", b"", timeout=DENIED_S)
    # Not even a consumer of its own: it pulls from the one declared for it, and from no other.
    with pytest.raises(nats.errors.TimeoutError):
        await js.add_consumer(out, ConsumerConfig(durable_name="platform-pull"), timeout=DENIED_S)
    for stolen in (f"{out}.planner-outcomes", f"{in_}.tracker", f"{in_}.planner"):
        await platform.nc.publish(f"$JS.API.CONSUMER.MSG.NEXT.{stolen}", PULL_ONE)
        await platform.identity.violation(f"$JS.API.CONSUMER.MSG.NEXT.{stolen}")
    # Inputs (notes inside) and dead letters are not the platform's to read back.
    for stream in (in_, dlq):
        with pytest.raises(nats.errors.TimeoutError):
            await js.add_consumer(stream, ConsumerConfig(durable_name="platform-spy"), timeout=DENIED_S)
    await platform.nc.subscribe(f"{PREFIX}.attempt.>")
    await platform.identity.violation(f"{PREFIX}.attempt.>")

    kept = await planner_identity.nc.jetstream().consumer_info(out, "planner-outcomes")
    assert tuple(kept.config.filter_subjects or ()) == planners.filter_subjects
    assert planner_identity.errors == []


async def test_a_query_answer_cannot_be_redirected_into_a_stream(
    platform: PlatformIdentity, tracker_identity: Identity
) -> None:
    """A reply subject is the asker's to choose and the server checks it against nobody's rights. The
    platform asks from an account of its own, through imports: whatever reply subject it writes, the
    answer comes back into its own account (where no stream is), never onto an output subject, the
    JetStream API or a service's inbox of stepout's account."""
    before = {stream: await last_seq(tracker_identity, stream) for stream in (IN, OUT, DLQ)}
    targets = [
        (SUBJECTS.query("progress"), SUBJECTS.event("progress", "updated", "u-victim")),
        (SUBJECTS.query("progress"), SUBJECTS.event("overload", "cleared", "u-victim")),
        (SUBJECTS.query("plan"), SUBJECTS.event("challenge", "assigned", "u-victim")),
        (SUBJECTS.query("plan"), f"$JS.API.STREAM.PURGE.{IN}"),
        (SUBJECTS.query("progress"), f"$JS.API.STREAM.PURGE.{OUT}"),
        (SUBJECTS.query("progress"), "_INBOX_stepout_tracker.taken"),
        (SUBJECTS.query("plan"), "_INBOX_stepout_planner.taken"),
    ]
    for query, target in targets:
        await platform.nc.publish(query, b'{"user_id": "u-victim"}', reply=target)
    # The answers pointed at output subjects came back to the platform's own subscriptions, as answers.
    for subject in (
        SUBJECTS.event("progress", "updated", "u-victim"),
        SUBJECTS.event("challenge", "assigned", "u-victim"),
    ):
        for _ in range(100):
            if any(msg.subject == subject for msg in platform.received):
                break
            await asyncio.sleep(0.05)
        answers = [json.loads(msg.data) for msg in platform.received if msg.subject == subject]
        assert answers and all(answer["error"]["code"] == "not_found" for answer in answers)
    assert {stream: await last_seq(tracker_identity, stream) for stream in (IN, OUT, DLQ)} == before
    # ... and both go on answering the platform, into its own inbox.
    assert (await platform.query("history", {"user_id": "nobody"}))["error"]["code"] == "not_found"
    assert (await platform.query("plan", {"user_id": "nobody"}))["error"]["code"] == "not_found"


async def test_each_service_may_publish_only_its_own_outputs(
    tracker_identity: Identity, planner_identity: Identity
) -> None:
    for identity, subject in [
        (tracker_identity, f"{PREFIX}.challenge.assigned.u-forged"),
        (tracker_identity, f"{PREFIX}.deadletter.planner"),
        (planner_identity, f"{PREFIX}.progress.updated.u-forged"),
        (planner_identity, f"{PREFIX}.attempt.logged.u-forged"),
    ]:
        with pytest.raises(nats.errors.TimeoutError):
            await identity.nc.jetstream().publish(subject, b"{}", timeout=DENIED_S)
        await identity.violation(subject)


# What each role may ask of the query subjects and of JetStream, each asked so that it changes
# nothing when allowed: a purge of a subject nobody uses, the deletion or reading of a sequence
# no stream reaches. Allowed, the server (or a service) answers; refused, nothing answers and the
# server reports a permission violation. Deleting a stream or a consumer is allowed to nobody.
FAR = 2**62
ERASERS = ("tracker", "planner")
NOBODY: tuple[str, ...] = ()
# Who may ask each query of the contract, and a request that changes nothing. The planner's part of a
# history is the tracker's to ask; the audits are the auditor's and the console's, not a platform's.
ASKERS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "progress": (("platform", "auditor", CONSOLE), {"user_id": "u-nobody"}),
    "plan": (("platform", "auditor", CONSOLE), {"user_id": "u-nobody"}),
    "history": (("platform", "auditor", CONSOLE), {"user_id": "u-nobody", "limit": 1}),
    "escalations": (("platform", "auditor", CONSOLE), {"limit": 1}),
    "audit": (("auditor", CONSOLE), {"user_id": "u-nobody"}),
    "audit-planner": (("auditor", CONSOLE), {"user_id": "u-nobody"}),
    "history-planner": (("tracker",), {"user_id": "u-nobody", "limit": 1}),
}
Probe = tuple[str, dict[str, Any], tuple[str, ...]]


def probes(partitions: int) -> list[Probe]:
    """(subject, request, who may) for the topology of `partitions`."""
    streams = (IN, OUT, DLQ) if partitions == 1 else (IN, OUT, DLQ, OUTCOMES)
    found: list[Probe] = [
        *[(SUBJECTS.query(name), request, askers) for name, (askers, request) in ASKERS.items()],
        # Erasure: purging an erased participant's inputs and outputs, deleting single dead letters.
        (f"$JS.API.STREAM.PURGE.{IN}", {"filter": f"{PREFIX}.attempt.logged.u-nobody"}, ERASERS),
        (f"$JS.API.STREAM.PURGE.{OUT}", {"filter": f"{PREFIX}.plan.paused.u-nobody"}, ERASERS),
        (f"$JS.API.STREAM.PURGE.{DLQ}", {"filter": f"{PREFIX}.deadletter.nobody"}, NOBODY),
        (f"$JS.API.STREAM.MSG.DELETE.{DLQ}", {"seq": FAR}, ERASERS),
        (f"$JS.API.STREAM.MSG.DELETE.{IN}", {"seq": FAR}, NOBODY),
        (f"$JS.API.STREAM.MSG.DELETE.{OUT}", {"seq": FAR}, NOBODY),
        # Reading stored messages one by one: the auditor's way to read stored outputs, nobody else's.
        (f"$JS.API.STREAM.MSG.GET.{OUT}", {"seq": FAR}, NOBODY),
        # ... under the prefix its account imports the JetStream API of STEPOUT's with.
        (f"{JS_API}.STREAM.MSG.GET.{OUT}", {"seq": FAR}, ("auditor",)),
        (f"$JS.API.STREAM.MSG.GET.{IN}", {"seq": FAR}, NOBODY),
        (f"$JS.API.STREAM.MSG.GET.{DLQ}", {"seq": FAR}, NOBODY),
        (f"$JS.API.DIRECT.GET.{OUT}", {"seq": FAR}, NOBODY),
        # The topology is the operator's: no identity a process runs under may create, update or delete a
        # stream or a consumer (`admin`, probed apart, declares them), each asked so that it would do harm.
        *[(f"$JS.API.STREAM.DELETE.{stream}", {}, NOBODY) for stream in streams],
        *[
            (f"$JS.API.STREAM.UPDATE.{stream}", {"name": stream, "subjects": [f"{PREFIX}.>"]}, NOBODY)
            for stream in streams
        ],
        (f"$JS.API.STREAM.CREATE.{OUTCOMES}", {"name": OUTCOMES, "sources": [{"name": DLQ}]}, NOBODY),
        ("$JS.API.STREAM.CREATE.SPY", {"name": "SPY", "sources": [{"name": IN}]}, NOBODY),
        *[(f"$JS.API.CONSUMER.CREATE.{stream}", {"stream_name": stream, "config": {}}, NOBODY) for stream in streams],
        *[
            (
                f"$JS.API.CONSUMER.DURABLE.CREATE.{c.stream}.{c.durable}",
                {"stream_name": c.stream, "config": {"durable_name": c.durable, "filter_subject": f"{PREFIX}.none"}},
                NOBODY,
            )
            for c in [
                *consumers(SUBJECTS, partitions).values(),
                platform_consumer(SUBJECTS),
                platform_refusals(SUBJECTS),
            ]
        ],
        (
            f"$JS.API.CONSUMER.CREATE.{OUT}.thief",
            {
                "stream_name": OUT,
                "config": {"name": "thief", "deliver_subject": f"$JS.API.CONSUMER.MSG.NEXT.{IN}.tracker"},
            },
            NOBODY,
        ),
        *[
            (f"$JS.API.CONSUMER.DELETE.{c.stream}.{c.durable}", {}, NOBODY)
            for c in [
                *consumers(SUBJECTS, partitions).values(),
                platform_consumer(SUBJECTS),
                platform_refusals(SUBJECTS),
            ]
        ],
        # Reading what the operator declared: each service its streams and its own consumers, the platform
        # its own consumer.
        *[(f"$JS.API.STREAM.INFO.{stream}", {}, ERASERS) for stream in streams],
        *[
            (f"$JS.API.CONSUMER.INFO.{c.stream}.{c.durable}", {}, (c.durable.split("-")[0],))
            for c in consumers(SUBJECTS, partitions).values()
        ],
        (f"$JS.API.CONSUMER.INFO.{OUT}.{PLATFORM_CONSUMER}", {}, NOBODY),
        (f"{JS_API}.CONSUMER.INFO.{OUT}.{PLATFORM_CONSUMER}", {}, ("platform",)),
        (f"{JS_API}.CONSUMER.INFO.{DLQ}.{PLATFORM_REFUSALS}", {}, ("platform",)),
    ]
    if partitions > 1:
        found += [
            # The planner's copies of the tracker's outcomes: purged on erasure like the outputs, else untouched.
            (f"$JS.API.STREAM.PURGE.{OUTCOMES}", {"filter": f"{PREFIX}.*.*.*.u-nobody"}, ERASERS),
            (f"$JS.API.STREAM.MSG.DELETE.{OUTCOMES}", {"seq": FAR}, NOBODY),
            (f"$JS.API.STREAM.MSG.GET.{OUTCOMES}", {"seq": FAR}, NOBODY),
            (f"$JS.API.DIRECT.GET.{OUTCOMES}", {"seq": FAR}, NOBODY),
        ]
    return found


def test_every_query_of_the_contract_is_probed() -> None:
    assert sorted(ASKERS) == sorted(query.name for query in QUERIES)


@pytest.mark.parametrize("role", RUNTIME_IDENTITIES)
async def test_each_role_may_ask_only_its_own_queries_and_stream_operations(
    role: str, deployed: tuple[ProjectNats, System, int]
) -> None:
    server, _, partitions = deployed
    asked = probes(partitions)
    identity = await login(server, role)
    try:
        answers = await asyncio.gather(
            *(
                answered(identity, subject, json.dumps(body).encode(), timeout=5.0 if role in may else DENIED_S)
                for subject, body, may in asked
            )
        )
        wrong = [
            f"{subject}: {'refused' if answer is None else 'answered'}"
            for (subject, _, may), answer in zip(asked, answers, strict=True)
            if (answer is not None) != (role in may)
        ]
        assert wrong == []
        for subject, _, may in asked:
            if role not in may:
                await identity.violation(subject)
    finally:
        await identity.nc.close()
    await topology_intact(server, partitions)


async def topology_intact(server: ProjectNats, partitions: int) -> None:
    """Every stream and durable consumer is still there as declared, each asked by a service that may."""
    tracker, planner = await login(server, "tracker"), await login(server, "planner")
    try:
        for stream in (IN, OUT, DLQ) if partitions == 1 else (IN, OUT, DLQ, OUTCOMES):
            assert (await tracker.nc.jetstream().stream_info(stream)).config.name == stream
        for consumer in consumers(SUBJECTS, partitions).values():
            owner = planner if consumer.durable.startswith("planner") else tracker
            info = await owner.nc.jetstream().consumer_info(consumer.stream, consumer.durable)
            stored = info.config.filter_subjects or [info.config.filter_subject]
            assert sorted(stored) == sorted(consumer.filter_subjects), consumer.durable
        assert tracker.errors == planner.errors == []
    finally:
        await tracker.nc.close()
        await planner.nc.close()


async def test_the_auditor_gets_the_platforms_answer_to_each_public_query(
    platform: PlatformIdentity, auditor: Identity
) -> None:
    await platform.enrol("u-audited")
    [challenge] = await platform.wait_for("challenge.assigned", "u-audited")
    await platform.attempt(
        "u-audited",
        assignment_id=challenge["data"]["assignment_id"],
        challenge_id=challenge["data"]["challenge_id"],
        level=None,
    )
    await platform.wait_for("progress.updated", "u-audited")
    await platform.wait_for("challenge.assigned", "u-audited", count=2)  # settled: the answers no longer move
    for name, request in [
        ("progress", {"user_id": "u-audited"}),
        ("plan", {"user_id": "u-audited"}),
        ("history", {"user_id": "u-audited", "limit": 10}),
        ("progress", {"user_id": "u-never-enrolled"}),
    ]:
        answer = await answered(auditor, SUBJECTS.query(name), json.dumps(request).encode(), timeout=5.0)
        assert answer is not None and answer == await platform.query(name, request), name
    assert "error" not in await platform.query("history", {"user_id": "u-audited", "limit": 10})
    assert auditor.errors == []


async def test_the_auditor_reads_outputs_as_they_come_and_as_stored(
    platform: PlatformIdentity, auditor: Identity
) -> None:
    arrived: list[str] = []

    async def on_output(msg: Msg) -> None:
        arrived.append(msg.subject)

    await auditor.nc.subscribe(f"{PREFIX}.challenge.>", cb=on_output)
    await auditor.nc.flush()
    await platform.enrol("u-audit-read")
    [assigned] = await platform.wait_for("challenge.assigned", "u-audit-read")
    mine = f"{PREFIX}.challenge.assigned.u-audit-read"
    for _ in range(100):
        if mine in arrived:
            break
        await asyncio.sleep(0.05)
    assert mine in arrived

    # Stored outputs, one at a time and without a consumer (README: how an auditor connects).
    js = auditor.nc.jetstream(prefix=JS_API)
    found: list[dict[str, Any]] = []
    seq = 1
    while True:
        try:
            msg = await js.get_msg(OUT, seq=seq, subject=f"{PREFIX}.*.*.u-audit-read", next=True)
        except NotFoundError:
            break
        found.append(json.loads(msg.data or b"{}"))
        seq = (msg.seq or seq) + 1
    assert [event["id"] for event in found] == [assigned["id"]]
    assert auditor.errors == []


@pytest.mark.parametrize(
    ("subject", "stream"),
    [
        (f"{PREFIX}.participant.enrolled.u-forged", IN),
        (f"{PREFIX}.attempt.logged.u-forged", IN),
        (f"{PREFIX}.challenge.assigned.u-forged", OUT),
        (f"{PREFIX}.progress.updated.u-forged", OUT),
        (f"{PREFIX}.deadletter.tracker", DLQ),
    ],
)
async def test_the_auditor_cannot_publish_an_input_an_output_or_a_dead_letter(
    subject: str, stream: str, auditor: Identity, tracker_identity: Identity
) -> None:
    before = await last_seq(tracker_identity, stream)
    forged = cloud_event("stepout.participant.enrolled.v1", "u-forged", {"user_id": "u-forged"})
    with pytest.raises(nats.errors.TimeoutError):
        await auditor.nc.jetstream().publish(
            subject, json.dumps(forged).encode(), headers={"Nats-Msg-Id": forged["id"]}, timeout=DENIED_S
        )
    await auditor.violation(subject)
    assert await last_seq(tracker_identity, stream) == before


async def test_the_auditor_can_neither_create_a_consumer_nor_ack_for_one(
    auditor: Identity, operator: Identity, planner_identity: Identity
) -> None:
    js = auditor.nc.jetstream(timeout=DENIED_S)
    # A durable consumer, asked for the legacy way and by name (the server takes a body's durable name).
    with pytest.raises(nats.errors.TimeoutError):
        await js.add_consumer(OUT, ConsumerConfig(durable_name="auditor-durable"))
    await auditor.violation(f"$JS.API.CONSUMER.DURABLE.CREATE.{OUT}.auditor-durable")
    with pytest.raises(nats.errors.TimeoutError):
        await js.add_consumer(OUT, ConsumerConfig(name="auditor-named", durable_name="auditor-named"))
    await auditor.violation(f"$JS.API.CONSUMER.CREATE.{OUT}.auditor-named")
    # Nor an ordered one: that request would redefine any consumer its body names.
    with pytest.raises(nats.errors.TimeoutError):
        await js.subscribe(f"{PREFIX}.>", stream=OUT, ordered_consumer=True)
    await auditor.violation(f"$JS.API.CONSUMER.CREATE.{OUT}")
    for stream in (IN, DLQ):
        with pytest.raises(nats.errors.TimeoutError):
            await js.add_consumer(stream, ConsumerConfig(durable_name="auditor-spy"))
        await auditor.violation(f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.auditor-spy")
    # Acks are the services' own: one of the auditor's would settle an input for them.
    for ack in (f"$JS.ACK.{IN}.tracker.1.1.1.0.0", f"$JS.ACK.{OUT}.planner-outcomes.1.1.1.0.0"):
        await auditor.nc.publish(ack, b"")
        await auditor.violation(ack)

    for name in ("auditor-durable", "auditor-named"):
        with pytest.raises(NotFoundError):
            await operator.nc.jetstream().consumer_info(OUT, name)
    kept = await planner_identity.nc.jetstream().consumer_info(OUT, "planner-outcomes")
    assert tuple(kept.config.filter_subjects or ()) == consumers(SUBJECTS)["planner-outcomes"].filter_subjects
    for subscription in (
        "stepout.attempt.>",
        "stepout.deadletter.>",
        "stepout.query.progress",
        "_INBOX_stepout_tracker.>",
        "_INBOX_stepout_planner.>",
        f"{CONSOLE_INBOX_PREFIX}.>",
        "_INBOX.>",  # the platform's replies
    ):
        await auditor.nc.subscribe(subscription)
        await auditor.violation(subscription)


@pytest.mark.parametrize("eraser", ERASERS)
async def test_only_the_services_may_erase_an_output_and_a_dead_letter(
    eraser: str, secured_nats: ProjectNats, planner_identity: Identity, platform: PlatformIdentity, auditor: Identity
) -> None:
    user = f"u-erased-by-{eraser}"
    output = SUBJECTS.event("challenge", "assigned", user)
    await planner_identity.nc.jetstream().publish(output, b"{}")
    service = await login(secured_nats, eraser)
    try:
        dead_letter = await service.nc.jetstream().publish(SUBJECTS.dead_letter(eraser), b"{}")
        purge = (f"$JS.API.STREAM.PURGE.{OUT}", json.dumps({"filter": f"{PREFIX}.*.*.{user}"}).encode())
        delete = (f"$JS.API.STREAM.MSG.DELETE.{DLQ}", json.dumps({"seq": dead_letter.seq}).encode())
        for outsider in (platform.identity, auditor):
            for subject, body in (purge, delete):
                await refused(outsider, subject, body)

        # Both were still there: the service purges exactly one output and deletes the dead letter, once.
        assert await answered(service, *purge, timeout=5.0) == {
            "type": "io.nats.jetstream.api.v1.stream_purge_response",
            "success": True,
            "purged": 1,
        }
        js = service.nc.jetstream()
        assert await js.delete_msg(DLQ, dead_letter.seq) is True
        with pytest.raises(APIError):
            await js.delete_msg(DLQ, dead_letter.seq)
        assert service.errors == []
    finally:
        await service.nc.close()


# --- the console's identity ------------------------------------------------------------------------------

COACH = "c-console"


async def settled(platform: PlatformIdentity, user_id: str) -> None:
    """`user_id` enrolled with COACH, one attempt logged, and every decision about it published."""
    await platform.enrol(user_id, coach_id=COACH)
    [challenge] = await platform.wait_for("challenge.assigned", user_id)
    await platform.attempt(
        user_id,
        assignment_id=challenge["data"]["assignment_id"],
        challenge_id=challenge["data"]["challenge_id"],
        level=None,
    )
    await platform.wait_for("progress.updated", user_id)
    await platform.wait_for("challenge.assigned", user_id, count=2)


async def test_the_console_gets_the_auditors_answer_to_each_of_its_queries(
    platform: PlatformIdentity, console: Identity, auditor: Identity
) -> None:
    await settled(platform, "u-console")
    as_of = datetime.now(UTC).isoformat()  # the audits answer "now" otherwise: two asks, two answers
    requests: dict[str, dict[str, Any]] = {
        "progress": {"user_id": "u-console"},
        "plan": {"user_id": "u-console"},
        "history": {"user_id": "u-console", "limit": 10},
        "escalations": {"coach_id": COACH, "limit": 10},
        "audit": {"user_id": "u-console", "as_of": as_of},
        "audit-planner": {"user_id": "u-console", "as_of": as_of},
    }
    assert sorted(requests) == sorted(name for name, (askers, _) in ASKERS.items() if CONSOLE in askers)
    for name, request in requests.items():
        body = json.dumps(request).encode()
        answer = await answered(console, SUBJECTS.query(name), body, timeout=5.0)
        assert answer is not None and "error" not in answer, (name, answer)
        assert answer == await answered(auditor, SUBJECTS.query(name), body, timeout=5.0), name
    history = await answered(console, SUBJECTS.query("history"), json.dumps(requests["history"]).encode(), 5.0)
    assert history is not None and "partial" not in history  # the tracker asked the planner for its part
    assert console.errors == []


async def test_the_console_hears_a_warning_sees_the_escalation_and_clears_it_with_a_review(
    platform: PlatformIdentity, console: Identity
) -> None:
    user = "u-console-review"
    heard: list[str] = []

    async def hears(kind: str) -> None:
        for _ in range(100):
            if SUBJECTS.event("overload", kind, user) in heard:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"the console did not hear overload.{kind} for {user}: {heard}")

    async def on_warning(msg: Msg) -> None:
        heard.append(msg.subject)

    for kind in ("warning", "cleared"):
        await console.nc.subscribe(SUBJECTS.all_of("overload", kind), cb=on_warning)
    await console.nc.flush()
    await platform.enrol(user, coach_id=COACH)
    await platform.wait_for("challenge.assigned", user)
    await platform.attempt(user, outcome="rejected", suds_peak=90, suds_after=60, crisis_reported=True)
    await platform.wait_for("overload.warning", user)
    await hears("warning")
    listed: list[str] = []
    for _ in range(100):
        escalations = await answered(
            console, SUBJECTS.query("escalations"), json.dumps({"coach_id": COACH}).encode(), 5.0
        )
        assert escalations is not None
        listed = [row["user_id"] for row in escalations["escalations"]]
        if user in listed:
            break
        await asyncio.sleep(0.1)
    assert user in listed

    # The review is a JetStream publish: the server's ack comes back to the console's own inbox.
    review = cloud_event("stepout.participant.reviewed.v1", user, {"user_id": user, "coach_id": COACH})
    js = console.nc.jetstream()
    subject, body = SUBJECTS.event("participant", "reviewed", user), json.dumps(review).encode()
    ack = await js.publish(subject, body, headers={"Nats-Msg-Id": review["id"]}, timeout=5.0)
    assert ack.stream == IN and not ack.duplicate
    again = await js.publish(subject, body, headers={"Nats-Msg-Id": review["id"]}, timeout=5.0)
    assert again.duplicate and again.seq == ack.seq  # the same form sent twice is one review
    [cleared] = await platform.wait_for("overload.cleared", user)
    assert cleared["data"]["by"] == "review"
    await hears("cleared")
    history = await platform.history(user)
    assert [e["id"] for e in history["events"] if e["type"] == "stepout.participant.reviewed.v1"] == [review["id"]]
    assert console.errors == []


@pytest.mark.parametrize(
    ("subject", "stream"),
    [
        (f"{PREFIX}.attempt.logged.u-forged", IN),
        (f"{PREFIX}.participant.enrolled.u-forged", IN),
        (f"{PREFIX}.participant.withdrawn.u-forged", IN),
        (f"{PREFIX}.participant.reviewed.u-forged.0", IN),  # no partition token of its own choosing
        (f"{PREFIX}.challenge.assigned.x", OUT),
        (f"{PREFIX}.overload.cleared.u-forged", OUT),
        (f"{PREFIX}.deadletter.tracker", DLQ),
    ],
)
async def test_the_console_cannot_publish_anything_but_a_review(
    subject: str, stream: str, console: Identity, tracker_identity: Identity
) -> None:
    before = await last_seq(tracker_identity, stream)
    forged = cloud_event("stepout.participant.enrolled.v1", "u-forged", {"user_id": "u-forged"})
    with pytest.raises(nats.errors.TimeoutError):
        await console.nc.jetstream().publish(
            subject, json.dumps(forged).encode(), headers={"Nats-Msg-Id": forged["id"]}, timeout=DENIED_S
        )
    await console.violation(subject)
    assert await last_seq(tracker_identity, stream) == before


async def test_the_console_can_neither_create_a_consumer_nor_read_more_than_its_replies_and_the_warnings(
    console: Identity, operator: Identity
) -> None:
    js = console.nc.jetstream(timeout=DENIED_S)
    for stream in (IN, OUT, DLQ):
        with pytest.raises(nats.errors.TimeoutError):
            await js.add_consumer(stream, ConsumerConfig(durable_name="console-spy"))
        await console.violation(f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.console-spy")
    with pytest.raises(nats.errors.TimeoutError):
        await js.subscribe(f"{PREFIX}.>", stream=OUT, ordered_consumer=True)
    await console.violation(f"$JS.API.CONSUMER.CREATE.{OUT}")
    with pytest.raises(NotFoundError):
        await operator.nc.jetstream().consumer_info(OUT, "console-spy")
    for subscription in (
        f"{PREFIX}.progress.>",
        f"{PREFIX}.overload.>",
        f"{PREFIX}.attempt.>",
        f"{PREFIX}.>",
        SUBJECTS.query("progress"),  # answering a query in a service's place
        "_INBOX.>",  # the platform's replies
        "_INBOX_stepout_auditor.>",  # the auditor's
        "_INBOX_stepout_tracker.>",  # the services' replies: what they pull, notes included
        "_INBOX_stepout_planner.>",
    ):
        await console.nc.subscribe(subscription)
        await console.violation(subscription)
    # What it reads: the warnings raised and cleared (and its own replies, as every test here shows).
    allowed = (SUBJECTS.all_of("overload", "warning"), SUBJECTS.all_of("overload", "cleared"))
    for subscription in allowed:
        await console.nc.subscribe(subscription)
    await console.nc.flush()
    await asyncio.sleep(DENIED_S)
    assert [error for error in console.errors if any(f'"{s}"' in error.lower() for s in allowed)] == []


async def test_the_platform_cannot_read_the_consoles_replies(platform: PlatformIdentity) -> None:
    subscription = f"{CONSOLE_INBOX_PREFIX}.>"
    await platform.nc.subscribe(subscription)
    await platform.identity.violation(subscription)


def console_env(server: ProjectNats, data_dir: Path, users: str) -> dict[str, str]:
    """`stepout run console` on `server` under the console's identity, with these accounts."""
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = {**server.service_settings(CONSOLE), "STEPOUT_CONSOLE_PORT": str(free_port())}
    return service_env(
        server.url, data_dir, PREFIX, **settings, STEPOUT_CONSOLE_USERS=users, STEPOUT_CONSOLE_SECRET="s" * 48
    )


async def test_the_console_itself_runs_under_its_identity(
    platform: PlatformIdentity, secured_nats: ProjectNats, tmp_path: Path
) -> None:
    from stepout_console.accounts import hash_password

    user, password = "u-console-pages", "console-coach-test-password"
    await settled(platform, user)
    marks = log_marks(secured_nats.log_path)
    env = console_env(secured_nats, tmp_path / "console", f"coach:coach:{COACH}:{hash_password(password)}")
    process = ServiceProcess(CONSOLE, env, tmp_path / "console.log")
    process.start(wait=False)
    try:
        async with httpx.AsyncClient(base_url=process.base_url, timeout=10.0) as http:
            for _ in range(300):
                assert process.process is not None and process.process.poll() is None, process.log_path.read_text()
                try:
                    if (await http.get("/healthz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
            signed = await http.post("/signin", data={"name": "coach", "password": password})
            assert signed.status_code == 303
            # The escalations board, and a participant page: plan, progress, history and both audits.
            assert (await http.get("/")).status_code == 200
            page = await http.get(f"/participants/{user}")
            assert page.status_code == 200, f"{page.status_code}: {page.text[-1500:]}"
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
            assert csrf is not None
            # A review: a JetStream publish, acknowledged to the console's inbox.
            reviewed = await http.post(
                f"/participants/{user}/review", data={"csrf": csrf.group(1), "review_id": str(uuid.uuid4())}
            )
            assert reviewed.status_code == 303 and reviewed.headers["location"].endswith("?reviewed=1")
    finally:
        process.stop()
    assert "violation" not in logged_since(marks).lower()


async def test_a_wrong_password_is_refused_at_once(secured_nats: ProjectNats, tmp_path: Path) -> None:
    with pytest.raises(NatsRefusedError, match="STEPOUT_NATS_USER/STEPOUT_NATS_PASSWORD"):
        await connect(
            settings_for(secured_nats.url, nats_user="platform", nats_password="wrong"), "test", PLATFORM_INBOX_PREFIX
        )
    with pytest.raises(NatsRefusedError, match="STEPOUT_NATS_USER"):
        await connect(settings_for(secured_nats.url), "test", PLATFORM_INBOX_PREFIX)

    # A service with a wrong password stops with the setting named instead of retrying for ever.
    env = service_env(
        secured_nats.url, tmp_path, PREFIX, STEPOUT_NATS_USER="tracker", STEPOUT_NATS_PASSWORD="not-the-password"
    )
    tracker = ServiceProcess("tracker", env, tmp_path / "tracker.log")
    tracker.start(wait=False)
    try:
        assert tracker.process is not None
        assert tracker.process.wait(timeout=15) != 0
    finally:
        tracker.stop()
    assert "STEPOUT_NATS_USER/STEPOUT_NATS_PASSWORD" in tracker.log_path.read_text()


# --- the cluster of docker-compose.yml ---------------------------------------------------------------


async def test_the_services_run_under_their_identities_on_the_compose_cluster(tmp_path: Path) -> None:
    """JetStream clustering asks nothing more of the identities, and no server joins without the route password."""
    cluster = ComposeCluster(tmp_path / "cluster")
    assert [node.name for node in cluster.nodes] == ["nats-1", "nats-2", "nats-3"]
    system = cluster.system(
        tmp_path / "data", STEPOUT_TRACKER_PARTITIONS=str(PARTITIONS), STEPOUT_STREAM_REPLICAS=str(len(cluster.nodes))
    )
    rogue: subprocess.Popen[bytes] | None = None
    try:
        cluster.start()
        system.start()
        # A server that knows the cluster's name and a route port, but not the password, stays outside.
        rogue_port = free_port()
        rogue_route = f"nats://127.0.0.1:{cluster.route_ports[0]}"
        rogue_command = ["-a", "127.0.0.1", "-p", str(rogue_port), "--cluster_name", "stepout",
                         "--cluster", f"nats://127.0.0.1:{free_port()}", "--routes", rogue_route]  # fmt: skip
        with (tmp_path / "rogue.log").open("ab") as log:
            rogue = subprocess.Popen([nats_server_binary(), *rogue_command], stdout=log, stderr=log)
        await asyncio.sleep(1.0)
        overheard: list[str] = []

        async def overhear(msg: Msg) -> None:
            overheard.append(msg.subject)

        eavesdropper = await nats.connect(f"nats://127.0.0.1:{rogue_port}")
        await eavesdropper.subscribe(">", cb=overhear)
        await eavesdropper.flush()

        # The whole loop, the platform on another node than some of the services.
        platform = await PlatformIdentity.login(cluster.nodes[-1].url)
        try:
            await settled(platform, "u-cluster")
        finally:
            await platform.nc.close()
        tracker = await service_identity(cluster.nodes[1].url, "tracker", cluster.passwords["tracker"])
        try:
            for stream in (IN, OUT, DLQ, OUTCOMES):
                info = await tracker.nc.jetstream().stream_info(stream)
                assert info.config.num_replicas == len(cluster.nodes), stream
                assert info.cluster is not None and len(info.cluster.replicas or []) == len(cluster.nodes) - 1, stream
            assert tracker.errors == []
        finally:
            await tracker.nc.close()
        await eavesdropper.close()
        assert overheard == []
        assert "Authorization Violation" in (tmp_path / "rogue.log").read_text()
    finally:
        if rogue is not None:
            rogue.terminate()
            rogue.wait(timeout=10)
        system.stop()
        cluster.stop()
    assert "violation" not in (cluster.logs() + system.logs()).lower()


# --- the store at rest -----------------------------------------------------------------------------


async def test_the_store_keeps_nothing_readable_neither_what_was_erased_nor_what_is_kept(tmp_path: Path) -> None:
    server = ProjectNats(tmp_path / "nats")
    server.start()
    try:
        admin = await login(server, "admin")
        await apply_topology(admin.nc.jetstream(), SUBJECTS, max_deliver=5)
        await admin.nc.close()
        tracker = await login(server, "tracker")
        marker = {what: f"marker-{what}-{secrets.token_hex(8)}" for what in ("acked", "purged", "kept")}
        platform = await PlatformIdentity.login(server.url)
        for what in ("acked", "purged", "kept"):  # in this order, in one block: the kept one keeps it alive
            await platform.attempt(f"u-{what}", note=marker[what])
        await platform.close()
        js = tracker.nc.jetstream()
        inputs = await js.pull_subscribe_bind("tracker", stream=IN)
        [first] = await inputs.fetch(1, timeout=5)
        assert json.loads(first.data)["data"]["note"] == marker["acked"]
        await first.ack_sync()
        assert await js.purge_stream(IN, subject=SUBJECTS.event("attempt", "logged", "u-purged"))
        # An output and a dead letter stay stored too, in the other two streams.
        await js.publish(SUBJECTS.event("progress", "updated", "u-kept"), marker["kept"].encode())
        await js.publish(SUBJECTS.dead_letter("tracker"), marker["kept"].encode())
        assert [await stored(tracker, stream) for stream in (IN, OUT, DLQ)] == [1, 1, 1]
        await tracker.nc.close()
        for text in marker.values():
            assert files_containing(server.store_dir, text) == []
    finally:
        server.stop()

    assert list(server.store_dir.rglob("*.blk")), "no message block to look into"
    for text in marker.values():
        assert files_containing(server.store_dir, text) == []

    # Encrypted, not lost: with the same key, the kept input is read back after a restart.
    server.start()
    try:
        tracker = await login(server, "tracker")
        inputs = await tracker.nc.jetstream().pull_subscribe_bind("tracker", stream=IN)
        [kept] = await inputs.fetch(1, timeout=5)
        assert json.loads(kept.data)["data"]["note"] == marker["kept"]
        await tracker.nc.close()
    finally:
        server.stop()


# --- each kind of credential on a server that wants it ---------------------------------------------


async def test_a_token_server_accepts_the_token_setting(tmp_path: Path) -> None:
    token = secrets.token_hex(16)
    server = NatsServer(store=tmp_path / "store", extra_args=["--auth", token])
    server.start()
    tracker: ServiceProcess | None = None
    try:
        await round_trip(settings_for(server.url, nats_token=token), "TOKEN_CHECK")
        with pytest.raises(NatsRefusedError, match="STEPOUT_NATS_TOKEN"):
            await connect(settings_for(server.url, nats_token="not-the-token"), "test", PLATFORM_INBOX_PREFIX)
        (tmp_path / "data").mkdir()
        env = service_env(server.url, tmp_path / "data", new_prefix(), STEPOUT_NATS_TOKEN=token)
        declare_topology(env)
        tracker = ServiceProcess("tracker", env, tmp_path / "tracker.log")
        tracker.start()  # ready: both its connections (nats-py and FastStream) logged in with the token
    finally:
        if tracker is not None:
            tracker.stop()
        server.stop()


@pytest.mark.skipif(openssl_binary() is None, reason="needs the openssl command to make certificates")
async def test_tls_with_client_certificates_uses_the_tls_settings(tmp_path: Path) -> None:
    certs = make_certificates(tmp_path / "certs")
    server = NatsServer(store=tmp_path / "store", extra_args=certs.server_args())
    server.start()
    try:
        full = {"nats_tls_ca": certs.ca, "nats_tls_cert": certs.client_cert, "nats_tls_key": certs.client_key}
        await round_trip(settings_for(server.url, **full), "TLS_CHECK")
        with pytest.raises(NatsRefusedError, match="STEPOUT_NATS_TLS_CERT"):
            await connect(settings_for(server.url, nats_tls_ca=certs.ca), "test", PLATFORM_INBOX_PREFIX)
        with pytest.raises(NatsRefusedError, match="STEPOUT_NATS_TLS_CA"):
            await connect(
                settings_for(server.url, nats_tls_cert=certs.client_cert, nats_tls_key=certs.client_key),
                "t",
                PLATFORM_INBOX_PREFIX,
            )
    finally:
        server.stop()


async def test_an_operator_mode_server_accepts_the_creds_setting(tmp_path: Path) -> None:
    import nkeys

    operator = make_operator(tmp_path / "operator", tmp_path / "store")
    server = ConfiguredNatsServer(operator.config, tmp_path / "nats-server.log")
    server.start()
    try:
        creds = creds_file(tmp_path / "tracker.creds", operator.account, "tracker")
        await round_trip(settings_for(server.url, nats_creds=creds), "CREDS_CHECK")
        stranger = creds_file(tmp_path / "stranger.creds", new_keypair(nkeys.PREFIX_BYTE_ACCOUNT), "stranger")
        with pytest.raises(NatsRefusedError, match="STEPOUT_NATS_CREDS"):
            await connect(settings_for(server.url, nats_creds=stranger), "test", PLATFORM_INBOX_PREFIX)
    finally:
        server.stop()


async def test_the_platform_cannot_publish_an_input_with_a_partition_token_of_its_own(
    platform: PlatformIdentity,
) -> None:
    # With STEPOUT_TRACKER_PARTITIONS > 1 the stream appends the partition; the platform may not.
    for subject in (f"{PREFIX}.attempt.logged.u-steer.3", f"{PREFIX}.participant.reviewed.u-steer.0"):
        with pytest.raises(nats.errors.TimeoutError):
            await platform.nc.jetstream().publish(subject, b"{}", timeout=DENIED_S)
        await platform.identity.violation(subject)
