"""Access control: the role identities of deploy/nats/nats-server.conf against the real services,
and every kind of NATS credential of CONTRACT §9 against a real nats-server that wants it."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig

from integration.nats_auth import (
    DEPLOY_CONFIG,
    PREFIX,
    ConfiguredNatsServer,
    Identity,
    PlatformIdentity,
    creds_file,
    deploy_env,
    log_marks,
    logged_since,
    make_certificates,
    make_operator,
    new_keypair,
    openssl_binary,
    round_trip,
    service_identity,
    settings_for,
)
from stepout_contract.subjects import Subjects
from stepout_runtime.connection import NatsRefusedError, connect
from stepout_runtime.topology import consumers
from support import NatsServer, ServiceProcess, System, cloud_event, new_prefix, service_env

SUBJECTS = Subjects(PREFIX)
DENIED_S = 0.5  # how long a refused request is waited for: the server never answers it


# --- the role identities, against planner and tracker ---------------------------------------------


@pytest.fixture(scope="module")
def passwords() -> dict[str, str]:
    return {role: f"test-{role}-{secrets.token_hex(8)}" for role in ("tracker", "planner")}


@pytest.fixture(scope="module")
def secured_nats(tmp_path_factory: pytest.TempPathFactory, passwords: dict[str, str]) -> Iterator[ConfiguredNatsServer]:
    here = tmp_path_factory.mktemp("secured-nats")
    server = ConfiguredNatsServer(DEPLOY_CONFIG, here / "nats-server.log", deploy_env(here / "store", passwords))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def secured_system(
    secured_nats: ConfiguredNatsServer, passwords: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[System]:
    """Planner and tracker on the secured server, each logged in as itself, on the default prefix."""
    running = System(secured_nats.url, tmp_path_factory.mktemp("secured-data"), prefix=PREFIX)
    for service in running.services():
        service.env = {
            **service.env,
            "STEPOUT_NATS_USER": service.name,
            "STEPOUT_NATS_PASSWORD": passwords[service.name],
        }
    try:
        running.start()
        yield running
    finally:
        running.stop()


@pytest.fixture
async def platform(secured_system: System, secured_nats: ConfiguredNatsServer) -> AsyncIterator[PlatformIdentity]:
    client = await PlatformIdentity.login(secured_nats.url)
    yield client
    await client.nc.close()


@pytest.fixture
async def tracker_identity(secured_nats: ConfiguredNatsServer, passwords: dict[str, str]) -> AsyncIterator[Identity]:
    identity = await service_identity(secured_nats.url, "tracker", passwords["tracker"])
    yield identity
    await identity.nc.close()


@pytest.fixture
async def planner_identity(secured_nats: ConfiguredNatsServer, passwords: dict[str, str]) -> AsyncIterator[Identity]:
    identity = await service_identity(secured_nats.url, "planner", passwords["planner"])
    yield identity
    await identity.nc.close()


async def stored(identity: Identity, stream: str) -> int:
    """How many messages `stream` holds, asked under a service identity (which may read stream info)."""
    return int((await identity.nc.jetstream().stream_info(stream)).state.messages)


async def test_the_whole_loop_runs_under_the_role_identities(
    platform: PlatformIdentity, secured_system: System, secured_nats: ConfiguredNatsServer
) -> None:
    marks = log_marks(secured_nats.log_path, *(service.log_path for service in secured_system.services()))
    # The platform's own durable push consumer on the outputs is one of the two ways it may read them.
    through_consumer: list[str] = []

    async def on_output(msg: Msg) -> None:
        through_consumer.append(msg.subject)

    await platform.js.subscribe(f"{PREFIX}.>", durable="platform-outputs", stream=SUBJECTS.out_stream, cb=on_output)

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

    expected = [
        f"{PREFIX}.challenge.assigned.u-roles",
        f"{PREFIX}.progress.updated.u-roles",
        f"{PREFIX}.challenge.assigned.u-roles",
    ]
    for _ in range(100):
        if len(through_consumer) >= len(expected):
            break
        await asyncio.sleep(0.05)
    assert through_consumer == expected

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
    # No pulling, not even from a consumer of its own: a pull delivers to any reply subject it names.
    await js.add_consumer(out, ConsumerConfig(durable_name="platform-pull"), timeout=2)
    await platform.nc.publish(f"$JS.API.CONSUMER.MSG.NEXT.{out}.platform-pull", b'{"batch": 1}')
    await platform.identity.violation(f"$JS.API.CONSUMER.MSG.NEXT.{out}.platform-pull")
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
    platform: PlatformIdentity, tracker_identity: Identity, secured_nats: ConfiguredNatsServer
) -> None:
    before = await stored(tracker_identity, SUBJECTS.dlq_stream)
    marks = log_marks(secured_nats.log_path)
    target = f"{PREFIX}.deadletter.planner"
    await platform.nc.publish(f"{PREFIX}.query.progress", b'{"user_id": "nobody"}', reply=target)
    # The tracker answers, and the server refuses the answer: services may answer to inboxes only.
    refused = f'"$G/user:tracker" - Publish Violation - Subject "{target}"'
    for _ in range(100):
        if refused in logged_since(marks):
            break
        await asyncio.sleep(0.05)
    assert refused in logged_since(marks)
    assert await stored(tracker_identity, SUBJECTS.dlq_stream) == before
    # ... and the tracker goes on answering.
    assert (await platform.query("history", {"user_id": "nobody"}))["error"]["code"] == "not_found"


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


async def test_a_wrong_password_is_refused_at_once(secured_nats: ConfiguredNatsServer, tmp_path: Path) -> None:
    with pytest.raises(NatsRefusedError, match="STEPOUT_NATS_USER/STEPOUT_NATS_PASSWORD"):
        await connect(settings_for(secured_nats.url, nats_user="platform", nats_password="wrong"), "test")
    with pytest.raises(NatsRefusedError, match="STEPOUT_NATS_USER"):
        await connect(settings_for(secured_nats.url), "test")

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


# --- each kind of credential on a server that wants it ---------------------------------------------


async def test_a_token_server_accepts_the_token_setting(tmp_path: Path) -> None:
    token = secrets.token_hex(16)
    server = NatsServer(store=tmp_path / "store", extra_args=["--auth", token])
    server.start()
    tracker: ServiceProcess | None = None
    try:
        await round_trip(settings_for(server.url, nats_token=token), "TOKEN_CHECK")
        with pytest.raises(NatsRefusedError, match="STEPOUT_NATS_TOKEN"):
            await connect(settings_for(server.url, nats_token="not-the-token"), "test")
        (tmp_path / "data").mkdir()
        env = service_env(server.url, tmp_path / "data", new_prefix(), STEPOUT_NATS_TOKEN=token)
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
            await connect(settings_for(server.url, nats_tls_ca=certs.ca), "test")
        with pytest.raises(NatsRefusedError, match="STEPOUT_NATS_TLS_CA"):
            await connect(settings_for(server.url, nats_tls_cert=certs.client_cert, nats_tls_key=certs.client_key), "t")
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
            await connect(settings_for(server.url, nats_creds=stranger), "test")
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
