"""Least privilege, attacked: each finding of the security trial replayed against a server running the
production configuration (deploy/nats/nats-server.conf) and the services under their own identities.

Nobody but the operator (`admin`, `stepout topology apply`) shapes the topology, so no party can aim a push
consumer at another's pull API, source a stream it may not read, redefine another's consumer, or read the
inputs through a consumer of its own; each party reads its replies under its own inbox prefix only. Each
test attacks, checks the server refused, and checks that what the attack aimed at still happens: a crisis
reported in an attempt is recorded and pauses the plan.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from nats.aio.msg import Msg
from nats.js.api import StreamConfig, StreamSource

from integration.nats_auth import (
    CONSOLE,
    Identity,
    PlatformIdentity,
    login,
)
from project_nats import PREFIX, ProjectNats
from stepout_contract.subjects import Subjects
from stepout_runtime.topology import (
    PLATFORM_CONSUMER,
    StreamLimits,
    TopologyMismatch,
    TopologyMissing,
    check_topology,
    consumers,
    platform_consumer,
    platform_deliveries,
    platform_deliveries_of,
    platform_refusals,
)
from support import ROOT, NatsServer, System, cloud_event, new_prefix, settings_from

SUBJECTS = Subjects(PREFIX)
IN, OUT, DLQ, OUTCOMES = SUBJECTS.in_stream, SUBJECTS.out_stream, SUBJECTS.dlq_stream, SUBJECTS.outcomes_stream
DENIED_S = 0.5  # a refused request is never answered
RUNTIME = ("platform", "tracker", "planner", "auditor", CONSOLE)  # every identity a process runs under
# The consumers whose pull API a thief would aim deliveries at: the tracker's inputs, the planner's
# inputs and its copy of the tracker's outcomes (a crisis warning on its way to the pause).
PULL_APIS = [(IN, "tracker"), (IN, "planner"), (OUT, "planner-outcomes")]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProjectNats]:
    running = ProjectNats(tmp_path_factory.mktemp("least-privilege-nats"))
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def system(server: ProjectNats, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    running = server.system(tmp_path_factory.mktemp("least-privilege-data"))
    try:
        running.start()
        yield running
    finally:
        running.stop()


@pytest.fixture
async def platform(system: System, server: ProjectNats) -> AsyncIterator[PlatformIdentity]:
    client = await PlatformIdentity.login(server.url)
    yield client
    await client.nc.close()


@pytest.fixture
async def operator(server: ProjectNats) -> AsyncIterator[Identity]:
    identity = await login(server, "admin")
    yield identity
    await identity.nc.close()


async def all_refused(identity: Identity, requests: list[tuple[str, dict[str, Any]]]) -> None:
    """None of `requests` is `identity`'s to ask: none answered, each violation reported (asked at once)."""

    async def unanswered(subject: str, body: dict[str, Any]) -> None:
        with pytest.raises(nats.errors.TimeoutError):
            await identity.nc.request(subject, json.dumps(body).encode(), timeout=DENIED_S)

    await asyncio.gather(*(unanswered(subject, body) for subject, body in requests))
    for subject, _ in requests:
        await identity.violation(subject)


async def crisis_recorded(platform: PlatformIdentity, user_id: str) -> None:
    """A participant enrolled, a crisis reported in an attempt: the warning is raised and the plan paused."""
    await platform.enrol(user_id, coach_id="c-least")
    [assigned] = await platform.wait_for("challenge.assigned", user_id)
    await platform.attempt(
        user_id,
        assignment_id=assigned["data"]["assignment_id"],
        challenge_id=assigned["data"]["challenge_id"],
        level=None,
        crisis_reported=True,
    )
    [warning] = await platform.wait_for("overload.warning", user_id)
    assert warning["data"]["severity"] == "crisis"
    [paused] = await platform.wait_for("plan.paused", user_id)
    assert paused["data"]["reason"] == "crisis"
    [progress] = await platform.wait_for("progress.updated", user_id)
    assert progress["data"]["active_warning"]["severity"] == "crisis"


def collect(into: list[bytes]) -> Callable[[Msg], Awaitable[None]]:
    async def received(msg: Msg) -> None:
        into.append(msg.data)

    return received


async def declared_consumers(operator: Identity, stream: str) -> set[str]:
    return {info.name for info in await operator.nc.jetstream().consumers_info(stream)}


@pytest.mark.parametrize("role", RUNTIME)
async def test_no_identity_can_aim_a_push_consumer_at_another_consumers_pull_api(
    role: str, server: ProjectNats, platform: PlatformIdentity, operator: Identity
) -> None:
    """Finding 1 (high, safety): a push consumer delivering to `$JS.API.CONSUMER.MSG.NEXT.<P>_IN.tracker`
    turned each delivery into a pull on the tracker's consumer, and the inputs it was handed went nowhere:
    a crisis never recorded; aimed at `planner-outcomes`, the crisis warning never paused the plan."""
    before = {stream: await declared_consumers(operator, stream) for stream in (IN, OUT, DLQ)}
    thief = await login(server, role)
    try:
        requests = []
        for source in (OUT, IN, DLQ):
            for stream, durable in PULL_APIS:
                target = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
                name = f"thief-{durable}"
                body = {
                    "stream_name": source,
                    "config": {"name": name, "durable_name": name, "deliver_subject": target},
                }
                requests += [
                    (f"$JS.API.CONSUMER.CREATE.{source}.{name}", body),
                    (f"$JS.API.CONSUMER.DURABLE.CREATE.{source}.{name}", body),
                    (f"$JS.API.CONSUMER.CREATE.{source}", body),
                ]
        await all_refused(thief, requests)
    finally:
        await thief.nc.close()
    assert {stream: await declared_consumers(operator, stream) for stream in (IN, OUT, DLQ)} == before
    await crisis_recorded(platform, f"u-theft-{role}")


@pytest.mark.parametrize("role", RUNTIME)
async def test_no_identity_can_source_the_dead_letters_or_the_inputs_into_a_stream(
    role: str, server: ProjectNats, operator: Identity
) -> None:
    """Finding 3: the planner created `<P>_OUTCOMES` sourcing `<P>_DLQ` and read every retained dead
    letter, notes included (erasure's purge never matched those copies)."""
    identity = await login(server, role)
    try:
        requests = []
        for name in (OUTCOMES, "SPY"):
            for source in (DLQ, IN):
                config = StreamConfig(name=name, sources=[StreamSource(name=source)]).as_dict()
                requests += [(f"$JS.API.STREAM.CREATE.{name}", config), (f"$JS.API.STREAM.UPDATE.{name}", config)]
        # Nor reshaping a declared stream so that it takes what is not its own.
        widened = StreamConfig(name=OUT, subjects=[f"{PREFIX}.>"]).as_dict()
        await all_refused(identity, [*requests, (f"$JS.API.STREAM.UPDATE.{OUT}", widened)])
    finally:
        await identity.nc.close()
    js = operator.nc.jetstream()
    reply = await operator.nc.request("$JS.API.STREAM.NAMES", b"{}", timeout=5)
    assert sorted(json.loads(reply.data)["streams"]) == sorted((IN, OUT, DLQ))
    assert sorted((await js.stream_info(OUT)).config.subjects or []) == sorted(SUBJECTS.out_stream_subjects())


@pytest.mark.parametrize("role", RUNTIME)
async def test_no_identity_can_redefine_or_delete_a_declared_consumer(
    role: str, server: ProjectNats, platform: PlatformIdentity, operator: Identity
) -> None:
    """Finding 3: the planner redefined the tracker's consumer, and an attempt sent meanwhile was lost."""
    identity = await login(server, role)
    declared = [*consumers(SUBJECTS).values(), platform_consumer(SUBJECTS), platform_refusals(SUBJECTS)]
    try:
        requests = []
        for consumer in declared:
            emptied = {"durable_name": consumer.durable, "filter_subject": f"{PREFIX}.nothing", "ack_policy": "none"}
            body = {"stream_name": consumer.stream, "config": emptied}
            named = f"{consumer.stream}.{consumer.durable}"
            requests += [
                (f"$JS.API.CONSUMER.DURABLE.CREATE.{named}", body),
                (f"$JS.API.CONSUMER.CREATE.{named}", {**body, "action": "update"}),
                (f"$JS.API.CONSUMER.DELETE.{named}", {}),
            ]
        await all_refused(identity, requests)
    finally:
        await identity.nc.close()
    js = operator.nc.jetstream()
    for consumer in declared:
        stored = (await js.consumer_info(consumer.stream, consumer.durable)).config
        assert sorted(stored.filter_subjects or [stored.filter_subject]) == sorted(consumer.filter_subjects)
    await crisis_recorded(platform, f"u-redefined-{role}")


@pytest.mark.parametrize("role", RUNTIME)
async def test_no_identity_can_read_the_inputs_through_a_consumer_of_its_own(
    role: str, server: ProjectNats, platform: PlatformIdentity
) -> None:
    """Finding 3: the planner read attempt notes through a push consumer on `<P>_IN`."""
    marker = f"note-{secrets.token_hex(8)}"
    spy = await login(server, role)
    seen: list[bytes] = []
    try:
        inbox = spy.nc.new_inbox()
        await spy.nc.subscribe(inbox, cb=collect(seen))
        config = {"durable_name": "spy", "deliver_subject": inbox, "filter_subject": f"{PREFIX}.>"}
        await all_refused(
            spy,
            [
                (f"$JS.API.CONSUMER.{kind}.{stream}.spy", {"stream_name": stream, "config": config})
                for stream in (IN, DLQ, OUTCOMES)
                for kind in ("DURABLE.CREATE", "CREATE")
            ],
        )
        user = f"u-spied-{role}"
        await platform.enrol(user)
        await platform.attempt(user, note=marker)
        await platform.wait_for("progress.updated", user)
        await asyncio.sleep(DENIED_S)
    finally:
        await spy.nc.close()
    assert not [data for data in seen if marker.encode() in data]


# Who may read which inbox prefix: each party its own and no other.
INBOXES = {
    "platform": "_INBOX",
    "auditor": "_INBOX_stepout_auditor",
    CONSOLE: "_INBOX_stepout_console",
    "tracker": "_INBOX_stepout_tracker",
    "planner": "_INBOX_stepout_planner",
    "admin": "_INBOX_stepout_admin",
}


@pytest.mark.parametrize("reader", [*RUNTIME, "admin"])
async def test_each_party_reads_its_replies_under_its_own_inbox_prefix_and_no_other(
    reader: str, server: ProjectNats, system: System
) -> None:
    """Finding 6: the platform read the auditor's audit answers through the shared `_INBOX.>`; a service
    reading another's inbox would read what that one pulls (inputs with their notes)."""
    identity = await login(server, reader)
    try:
        for owner, prefix in INBOXES.items():
            if owner == reader:
                continue
            await identity.nc.subscribe(f"{prefix}.>")
            await identity.violation(f"{prefix}.>")
        # Its own works: a query it may ask (the operator asks none) comes back.
        if reader in ("platform", "auditor", CONSOLE):
            reply = await identity.nc.request(SUBJECTS.query("plan"), b'{"user_id": "u-nobody"}', timeout=5)
            assert json.loads(reply.data)["error"]["code"] == "not_found"
    finally:
        await identity.nc.close()


async def test_the_platform_hears_nothing_of_the_auditors_answers(
    server: ProjectNats, platform: PlatformIdentity
) -> None:
    """The auditor asks the audit of a participant while the platform listens on all it may: nothing."""
    await platform.enrol("u-audited-quietly")
    await platform.wait_for("challenge.assigned", "u-audited-quietly")
    subjects: list[bytes] = []
    await platform.nc.subscribe("_INBOX.>", cb=collect(subjects))
    auditor = await login(server, "auditor")
    try:
        reply = await auditor.nc.request(SUBJECTS.query("audit"), b'{"user_id": "u-audited-quietly"}', timeout=5)
        assert "error" not in json.loads(reply.data)
    finally:
        await auditor.nc.close()
    await asyncio.sleep(DENIED_S)
    assert subjects == []


async def test_the_platform_reads_the_outputs_from_its_own_consumer_and_pulls_none(
    platform: PlatformIdentity, operator: Identity
) -> None:
    """Its consumer delivers to a subject only it reads; a pull request, which names its own reply subject,
    would have JetStream write stored outputs wherever it points, the output stream included."""
    await platform.enrol("u-delivered")
    [assigned] = await platform.wait_for("challenge.assigned", "u-delivered")
    before = (await operator.nc.jetstream().stream_info(OUT)).state.last_seq
    for consumer in (PLATFORM_CONSUMER, "planner-outcomes"):
        forged = SUBJECTS.event("progress", "updated", "u-delivered")
        await platform.nc.publish(f"$JS.API.CONSUMER.MSG.NEXT.{OUT}.{consumer}", b'{"batch": 5}', reply=forged)
        await platform.identity.violation(f"$JS.API.CONSUMER.MSG.NEXT.{OUT}.{consumer}")
    delivered: list[Msg] = []

    async def received(msg: Msg) -> None:
        await msg.ack()
        if msg.subject == SUBJECTS.event("challenge", "assigned", "u-delivered"):
            delivered.append(msg)

    subscription = await platform.nc.subscribe(platform_deliveries(SUBJECTS), queue=PLATFORM_CONSUMER, cb=received)
    for _ in range(200):
        if delivered:
            break
        await asyncio.sleep(0.05)
    await subscription.unsubscribe()
    assert [json.loads(msg.data)["id"] for msg in delivered] == [assigned["id"]]
    assert (await operator.nc.jetstream().stream_info(OUT)).state.last_seq == before
    assert [e for e in platform.identity.errors if "msg.next" not in e.lower()] == []


async def test_the_operator_shapes_the_topology_and_touches_no_message(
    server: ProjectNats, system: System, operator: Identity
) -> None:
    """`admin` declares streams and consumers and does nothing else: no input, no output, no ack, no pull,
    no stored message read, no subscription to what flows."""
    for subject in (SUBJECTS.event("attempt", "logged", "u-op"), SUBJECTS.event("plan", "paused", "u-op")):
        await operator.nc.publish(subject, b"{}")
        await operator.violation(subject)
    reads = (
        f"$JS.API.CONSUMER.MSG.NEXT.{IN}.tracker",
        f"$JS.API.STREAM.MSG.GET.{IN}",
        f"$JS.API.STREAM.MSG.GET.{DLQ}",
        f"$JS.API.DIRECT.GET.{IN}",
        SUBJECTS.query("progress"),
    )
    await all_refused(operator, [(subject, {"seq": 1, "batch": 1}) for subject in reads])
    await operator.nc.publish(f"$JS.ACK.{IN}.tracker.1.1.1.0.0", b"")
    await operator.violation(f"$JS.ACK.{IN}.tracker.1.1.1.0.0")
    for subscription in (f"{PREFIX}.>", f"{PREFIX}.attempt.>"):
        await operator.nc.subscribe(subscription)
        await operator.violation(subscription)


def topology_apply(server: ProjectNats, role: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("STEPOUT_")}
    env.update(server.service_settings(role), STEPOUT_DATA_DIR=str(tmp_path), STEPOUT_LOG_FORMAT="text")
    for limit in ("IN", "OUT", "DLQ"):
        env[f"STEPOUT_{limit}_STREAM_MAX_BYTES"] = str(16 * 1024**2)
    command = [sys.executable, "-m", "stepout_cli.main", "topology", "apply"]
    return subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("role", ["tracker", "platform"])
def test_topology_apply_under_a_runtime_identity_is_refused_in_one_line(
    role: str,
    server: ProjectNats,
    system: System,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import stepout_cli.topology

    # No patience: the first refused request times out and the command says why, in one line.
    monkeypatch.setattr(stepout_cli.topology, "PATIENCE_S", 0.0)
    monkeypatch.setattr(stepout_cli.topology, "REQUEST_S", DENIED_S)
    assert system.tracker is not None
    env = {**system.tracker.env, **server.service_settings(role), "STEPOUT_MAX_DELIVER": "9"}
    assert stepout_cli.topology.apply_command(settings_from(env)) == 1
    [line] = [record.getMessage() for record in caplog.records if record.levelname == "ERROR"]
    assert "refuse this identity the right to declare streams and consumers" in line
    assert f'/user:{role}" - Publish Violation - Subject "$JS.API.' in server.server.log()


def test_topology_apply_as_the_operator_is_idempotent(server: ProjectNats, system: System, tmp_path: Path) -> None:
    for _ in range(2):
        result = topology_apply(server, "admin", tmp_path)
        assert result.returncode == 0, result.stderr
        assert "topology declared" in result.stderr + result.stdout


async def test_a_service_reads_the_declared_topology_and_changes_nothing(server: ProjectNats, system: System) -> None:
    assert system.tracker is not None
    settings = settings_from(system.tracker.env)
    limits = StreamLimits.of(settings)
    tracker = await login(server, "tracker")
    try:
        js = tracker.nc.jetstream()
        await check_topology(js, SUBJECTS, ["tracker"], settings.max_deliver, limits=limits)
        with pytest.raises(TopologyMismatch, match=r"consumer tracker of stream STEPOUT_IN: .* max_deliver"):
            await check_topology(js, SUBJECTS, ["tracker"], settings.max_deliver + 1, limits=limits)
        assert tracker.errors == []
    finally:
        await tracker.nc.close()


async def test_a_service_waits_for_a_topology_nobody_declared_yet(nats_server: NatsServer) -> None:
    subjects = Subjects(new_prefix())
    async with await nats.connect(nats_server.url) as nc:
        with pytest.raises(TopologyMissing, match=f"stream {subjects.in_stream} is not declared"):
            await check_topology(nc.jetstream(), subjects, ["tracker"], max_deliver=20)


@pytest.mark.parametrize("sender", ["console", "platform"])
async def test_a_review_naming_another_coach_never_lifts_a_crisis(
    sender: str, server: ProjectNats, system: System, platform: PlatformIdentity
) -> None:
    """Finding 2: with the console's (or the platform's) credentials, a `participant.reviewed` naming
    `not-a-coach-at-all` cleared another coach's participant's crisis in both services."""
    user = f"u-reviewed-by-{sender}"
    await crisis_recorded(platform, user)
    identity = await login(server, sender)
    try:

        async def review(coach_id: str) -> None:
            event = cloud_event("stepout.participant.reviewed.v1", user, {"user_id": user, "coach_id": coach_id})
            subject = SUBJECTS.event("participant", "reviewed", user)
            await identity.nc.jetstream().publish(
                subject, json.dumps(event).encode(), headers={"Nats-Msg-Id": event["id"]}
            )

        await review("not-a-coach-at-all")
        assert system.planner is not None
        metrics = f"{system.planner.base_url}/metrics"
        refused = 'stepout_dead_letters_total{reason="not_their_coach",service="planner"}'
        for _ in range(100):
            if refused in httpx.get(metrics).text:
                break
            await asyncio.sleep(0.1)
        assert refused in httpx.get(metrics).text
        await asyncio.sleep(0.5)  # the tracker has had its go at it too
        assert (await platform.query("plan", {"user_id": user}))["status"] == "paused"
        assert (await platform.query("progress", {"user_id": user}))["active_warning"]["severity"] == "crisis"
        assert platform.events("overload.cleared", user) == []

        # The participant's own coach clears it.
        await review("c-least")
        await platform.wait_for("overload.cleared", user)
        await platform.wait_for("challenge.assigned", user, count=2)
    finally:
        await identity.nc.close()


@pytest.mark.parametrize("reader", [role for role in [*RUNTIME, "admin"] if role != "platform"])
async def test_only_the_platform_reads_what_its_consumers_deliver(reader: str, server: ProjectNats) -> None:
    """The platform's consumers deliver outputs and dead letters (its inputs as sent, notes included) to
    subjects only the platform may read, and only it may ack them."""
    identity = await login(server, reader)
    try:
        for durable in (PLATFORM_CONSUMER, "platform-refusals"):
            delivered = platform_deliveries_of(SUBJECTS, durable)
            for queue in ("", durable):
                await identity.nc.subscribe(delivered, queue=queue)
                await identity.violation(delivered)
        for ack in (f"$JS.ACK.{DLQ}.platform-refusals.1.1.1.0.0", f"$JS.ACK.{OUT}.platform.1.1.1.0.0"):
            await identity.nc.publish(ack, b"")
            await identity.violation(ack)
    finally:
        await identity.nc.close()


# --- replies the server writes: each outside party asks from an account of its own -----------------
# A reply subject is the sender's to choose and the server checks it against nobody's rights (only a
# `$JS.ACK` reply). In one account, an ack sent with a reply had the consumer answer with an empty
# message there, which on `$JS.API.STREAM.PURGE...` is a purge; publish acks and API answers pointed at
# output subjects filled the output stream until the tracker's crisis warnings were refused. Across
# accounts every request goes through an import, whose reply the server leads back to the asker's own
# account, where there is no JetStream and no stream.

ACK_REPLIES = [
    (f"$JS.ACK.{OUT}.platform.1.999999.999999.0.0", f"$JS.API.CONSUMER.DELETE.{IN}.tracker"),
    (f"$JS.ACK.{OUT}.platform.1.999999.999999.0.0", f"$JS.API.STREAM.DELETE.{OUT}"),
    (f"$JS.ACK.{OUT}.platform.1.999999.999999.0.0", f"$JS.API.STREAM.PURGE.{IN}"),
    (f"$JS.ACK.{DLQ}.platform-refusals.1.999999.999999.0.0", f"$JS.API.CONSUMER.DELETE.{OUT}.planner-outcomes"),
]


@pytest.mark.parametrize(("ack", "victim"), ACK_REPLIES)
async def test_an_ack_the_platform_sends_with_a_reply_never_reaches_the_jetstream_api(
    ack: str, victim: str, platform: PlatformIdentity, operator: Identity
) -> None:
    js = operator.nc.jetstream()
    consumers_before = {s: sorted(i.name for i in await js.consumers_info(s)) for s in (IN, OUT, DLQ)}
    for body in (b"+WPI", b"+ACK", b"-NAK"):  # no delivery needed: a made-up ack subject
        await platform.nc.publish(ack, body, reply=victim)
    await platform.nc.flush()
    await asyncio.sleep(DENIED_S)
    names = json.loads((await operator.nc.request("$JS.API.STREAM.NAMES", b"{}", timeout=5)).data)["streams"]
    assert sorted(names) == sorted((IN, OUT, DLQ))
    assert {s: sorted(i.name for i in await js.consumers_info(s)) for s in (IN, OUT, DLQ)} == consumers_before
    await crisis_recorded(platform, f"u-after-ack-{ACK_REPLIES.index((ack, victim))}")


@pytest.mark.parametrize("role", ["platform", "console", "auditor"])
async def test_no_reply_the_server_writes_for_an_outside_party_lands_in_a_stream(
    role: str, server: ProjectNats, platform: PlatformIdentity, operator: Identity
) -> None:
    """Publish acks of a duplicate input (or review) and stored-output reads, each with a reply subject
    on the output stream, the input stream or the JetStream API: nothing is stored, nothing purged."""
    js = operator.nc.jetstream()
    before = {stream: (await js.stream_info(stream)).state.last_seq for stream in (IN, OUT, DLQ)}
    attacker = platform.identity if role == "platform" else await login(server, role)
    try:
        if role == "auditor":
            subject, body, headers = f"stepout.jsapi.STREAM.MSG.GET.{OUT}", b'{"seq": 1}', None
        else:
            kind = "participant.enrolled" if role == "platform" else "participant.reviewed"
            event = cloud_event(f"stepout.{kind}.v1", "u-dup", {"user_id": "u-dup", "coach_id": "c-least"})
            subject = SUBJECTS.event(*kind.split("."), "u-dup")
            body, headers = json.dumps(event).encode(), {"Nats-Msg-Id": event["id"]}
        await attacker.nc.publish(subject, body, headers=headers)  # stored once: the rest are duplicates
        await asyncio.sleep(DENIED_S)
        stored = {stream: (await js.stream_info(stream)).state.last_seq for stream in (IN, OUT, DLQ)}
        targets = [
            SUBJECTS.event("progress", "updated", "u-junk"),
            SUBJECTS.event("overload", "cleared", "u-junk"),
            SUBJECTS.event("attempt", "logged", "u-junk"),
            SUBJECTS.dead_letter("tracker"),
            f"$JS.API.STREAM.PURGE.{IN}",
            f"$JS.API.STREAM.PURGE.{OUT}",
        ]
        for _ in range(50):
            for target in targets:
                await attacker.nc.publish(subject, body, headers=headers, reply=target)
        await attacker.nc.flush()
        await asyncio.sleep(DENIED_S)
        after = {stream: (await js.stream_info(stream)).state for stream in (IN, OUT, DLQ)}
        assert {stream: state.last_seq for stream, state in after.items()} == stored
        assert all(state.messages > 0 or before[stream] == 0 for stream, state in after.items() if stream != IN)
    finally:
        if attacker is not platform.identity:
            await attacker.nc.close()
