"""stepout-client against a real system: every method, retries that double nothing, the output
reader resuming after a restart, typed refusals, the production permissions, and the built wheels
running the example session twice."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nats.errors
import pytest

from project_nats import PLATFORM_PASSWORD, project_nats
from stepout_client import (
    Backoff,
    ChallengeAssigned,
    ChallengeAssignedEvent,
    Erased,
    InvalidData,
    InvalidRequest,
    NotEnrolled,
    ParticipantEnrolled,
    PlanNotice,
    PlanPaused,
    ProgressUpdatedEvent,
    StepoutClient,
    Timeout,
    Unauthorized,
    Withdrawn,
)
from stepout_client.errors import BY_REASON, Refused, refusal
from stepout_client.over_http import HttpReads
from stepout_contract.dead_letters import REASON_CODES
from support import PLATFORM_TOKEN, ROOT, NatsServer, Platform, System

FAST = Backoff(attempts=4, first=0.05, most=0.2)


@pytest.fixture(scope="module")
def client_system(nats_server: NatsServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """One system for the module (each test its own participants), unacked outputs redelivered after 1 s."""
    data = tmp_path_factory.mktemp("client") / "data"
    running = System(nats_server.url, data, overrides={"STEPOUT_STORE": "sqlite", "STEPOUT_ACK_WAIT_SECONDS": "1"})
    data.mkdir()
    running.start()
    yield running
    running.stop()


@pytest.fixture
async def client(client_system: System, nats_server: NatsServer) -> AsyncIterator[StepoutClient]:
    stepout = await StepoutClient.connect(nats_server.url, prefix=client_system.prefix, backoff=FAST)
    yield stepout
    await stepout.close()


def user() -> str:
    return f"u-{uuid.uuid4().hex[:8]}"


def attempt_on(assigned: ChallengeAssigned, **fields: Any) -> dict[str, Any]:
    return {
        "attempt_id": str(uuid.uuid4()),
        "user_id": assigned.user_id,
        "assignment_id": assigned.assignment_id,
        "challenge_id": assigned.challenge_id,
        "outcome": "rejected",
        "suds_before": 30,
        "suds_peak": 50,
        "suds_after": 20,
        "occurred_at": datetime.now(UTC),
        **fields,
    }


async def test_every_input_and_query_answers_with_the_contracts_models(client: StepoutClient) -> None:
    u = user()
    ack = await client.enrol(ParticipantEnrolled(user_id=u, starting_level=3, coach_id="coach-1"), platform_id="e1")
    assert ack.seq is not None and not ack.duplicate
    first = await client.next_assignment(u)
    assert isinstance(first, ChallengeAssigned) and first.reason == "start" and first.level == 3
    assert await client.next_assignment(u) == first  # already open: answered from the plan query

    await client.log_attempt(**attempt_on(first))
    second = await client.next_assignment(u, after=first.assignment_id)
    assert isinstance(second, ChallengeAssigned) and second.assignment_id != first.assignment_id

    progress = await client.progress(u)
    assert progress.position == 1 and progress.attempts["rejected"] == 1
    plan = await client.plan(u)
    assert plan.status == "active" and plan.open_assignment == second and plan.coach_id == "coach-1"
    page = await client.history(u, limit=1)
    assert len(page.events) == 1 and page.next_cursor is not None
    types = [event.type async for event in client.whole_history(u, page=2)]
    assert types.count("stepout.participant.enrolled.v1") == 1 and "stepout.attempt.logged.v1" in types
    assert (await client.escalations(coach_id="coach-1")).total == 0

    await client.pause(user_id=u, platform_id="p1")
    paused = await client.next_assignment(u, after=second.assignment_id)
    assert isinstance(paused, PlanPaused) and paused.reason == "participant"
    await client.resume(user_id=u, platform_id="r1")
    resumed = await client.next_assignment(u, after=second.assignment_id)
    assert isinstance(resumed, ChallengeAssigned) and resumed.reason == "resume"
    await client.review(user_id=u, coach_id="coach-1", platform_id="v1")

    await client.withdraw(user_id=u, platform_id="w1")
    with pytest.raises(Withdrawn) as withdrawn:
        await client.next_assignment(u, after=resumed.assignment_id)
    assert withdrawn.value.code == "withdrawn"


async def test_a_second_enrolment_that_changes_nothing_answers_with_its_notice(client: StepoutClient) -> None:
    u = user()
    await client.enrol(user_id=u, platform_id="first")
    first = await client.next_assignment(u)
    assert isinstance(first, ChallengeAssigned)
    # Waiting for an assignment other than the open one while another enrolment, with the same settings, is sent.
    waiting = asyncio.create_task(client.next_assignment(u, after=first.assignment_id, timeout=10))
    await asyncio.sleep(0.5)  # its subscriptions and plan query are in
    await client.enrol(user_id=u, platform_id="second")
    why = await waiting
    assert isinstance(why, PlanNotice) and why.reason == "no_change"
    assert await client.next_assignment(u) == first  # the open assignment stands


async def test_a_retry_after_a_lost_ack_or_a_crash_doubles_nothing(
    client: StepoutClient, client_system: System, nats_server: NatsServer
) -> None:
    u = user()
    publish = client._js.publish
    calls = 0

    async def ack_lost_once(*args: Any, **kwargs: Any) -> Any:
        # The first send reaches the server but its ack is lost, as when the connection drops.
        nonlocal calls
        calls += 1
        ack = await publish(*args, **kwargs)
        if calls == 1:
            raise nats.errors.TimeoutError
        return ack

    client._js.publish = ack_lost_once  # type: ignore[method-assign]
    ack = await client.enrol(user_id=u, platform_id="enrolment-7")
    assert calls == 2 and ack.duplicate
    # The platform crashed before recording that it sent it: on restart it sends the same action again.
    async with await StepoutClient.connect(nats_server.url, prefix=client_system.prefix) as restarted:
        assert (await restarted.enrol(user_id=u, platform_id="enrolment-7")).duplicate
    assigned = await client.next_assignment(u)
    assert isinstance(assigned, ChallengeAssigned)
    attempt = attempt_on(assigned)
    await client.log_attempt(**attempt)
    assert (await client.log_attempt(**attempt)).duplicate
    await client.next_assignment(u, after=assigned.assignment_id)

    types = [event.type async for event in client.whole_history(u)]
    assert types.count("stepout.participant.enrolled.v1") == 1
    assert types.count("stepout.attempt.logged.v1") == 1
    assert (await client.progress(u)).position == 1


async def test_the_output_reader_resumes_after_a_restart_without_loss(
    client_system: System, nats_server: NatsServer
) -> None:
    core = await Platform.connect(nats_server.url, client_system.prefix)
    first = await StepoutClient.connect(nats_server.url, prefix=client_system.prefix)
    try:
        a, b = user(), user()
        await first.enrol(user_id=a, platform_id="e")
        await first.enrol(user_id=b, platform_id="e")
        assigned = await first.next_assignment(a)
        assert isinstance(assigned, ChallengeAssigned)
        await first.log_attempt(**attempt_on(assigned))
        await core.wait_for("challenge.assigned", a, count=2)
        await core.wait_for("progress.updated", a)
        await core.wait_for("challenge.assigned", b)
        published = {message["id"] for message in core.events("challenge", a) + core.events("challenge", b)}
        published |= {message["id"] for message in core.events("progress", a)}

        seen: list[str] = []
        async for event in first.events():
            seen.append(event.id)
            if len(seen) == 2:
                break  # a crash in the middle of the second: it was never acked
        await first.close()

        again: set[str] = set()
        async with await StepoutClient.connect(nats_server.url, prefix=client_system.prefix) as restarted:
            async with asyncio.timeout(15):
                async for event in restarted.events():
                    again.add(event.id)
                    if seen[1] in again and (published - {seen[0]}) <= again:
                        break
        assert seen[0] not in again  # acked once handled
        assert published <= again | {seen[0]}
    finally:
        await first.close()
        await core.close()


async def test_events_filtered_by_participant_and_kind_are_typed(client: StepoutClient) -> None:
    u = user()
    await client.enrol(user_id=u, platform_id="e")
    assigned = await client.next_assignment(u)
    assert isinstance(assigned, ChallengeAssigned)
    await client.log_attempt(**attempt_on(assigned))
    got: list[Any] = []
    async with asyncio.timeout(15):
        async for event in client.events(user_id=u, kinds={"progress.updated", "challenge.assigned"}):
            got.append(event)
            if isinstance(event, ProgressUpdatedEvent):
                break
    assert all(event.user_id == u for event in got)
    assert (
        isinstance(got[0], ChallengeAssignedEvent) and got[0].data == assigned and got[0].kind == "challenge.assigned"
    )
    assert got[-1].data.position == 1
    with pytest.raises(ValueError, match="unknown kinds"):
        async for _ in client.events(kinds={"challenge.nope"}):  # type: ignore[arg-type]
            pass


async def test_refusals_are_typed_with_the_contracts_reason_codes(client: StepoutClient, client_system: System) -> None:
    with pytest.raises(NotEnrolled) as unknown:
        await client.progress(user())
    assert unknown.value.code == "not_enrolled"
    with pytest.raises(InvalidRequest):
        await client.plan("not a user id")
    u = user()
    await client.enrol(user_id=u, platform_id="e")
    open_one = await client.next_assignment(u)
    assert isinstance(open_one, ChallengeAssigned)
    with pytest.raises(InvalidRequest):
        await client.history(u, cursor="not-a-cursor")
    with pytest.raises(InvalidData, match="suds"):
        await client.log_attempt(
            attempt_id=str(uuid.uuid4()),
            user_id=u,
            challenge_id="c",
            outcome="rejected",
            note="private words",
            occurred_at=datetime.now(UTC),
        )
    with pytest.raises(Timeout):
        await client.next_assignment(user(), timeout=0.5)
    await client.withdraw(user_id=u, erase=True, platform_id="w")
    with pytest.raises((Erased, Withdrawn)):
        await client.next_assignment(u, after=open_one.assignment_id, timeout=10)

    # Every dead-letter reason of the contract has its exception, carrying its code.
    for code in REASON_CODES:
        refused = refusal(code, "why")
        assert type(refused) is BY_REASON[code] and refused.code == code and isinstance(refused, Refused)

    assert client_system.planner is not None and client_system.tracker is not None
    urls = {"planner_url": client_system.planner.base_url, "tracker_url": client_system.tracker.base_url}
    v = user()
    await client.enrol(user_id=v, platform_id="e")
    await client.next_assignment(v)
    async with HttpReads(token=PLATFORM_TOKEN, **urls) as http:
        assert (await http.plan(v)).status == "active" and (await http.progress(v)).position == 0
        with pytest.raises(NotEnrolled):
            await http.plan(user())
    async with HttpReads(token=None, **urls) as http:
        with pytest.raises(Unauthorized) as missing:
            await http.progress(v)
    assert missing.value.token_missing and "required" in missing.value.message
    async with HttpReads(token=PLATFORM_TOKEN + "x", **urls) as http:
        with pytest.raises(Unauthorized) as wrong:
            await http.plan(v)
    assert not wrong.value.token_missing and "not recognised" in wrong.value.message


async def test_the_platform_identity_of_the_production_configuration_drives_a_participant(tmp_path: Path) -> None:
    with project_nats(tmp_path / "nats") as server:
        system = server.system(tmp_path / "data", STEPOUT_STORE="sqlite")
        system.start()
        try:
            stepout = await StepoutClient.connect(server.url, user="platform", password=PLATFORM_PASSWORD)
            async with stepout:
                u = user()
                await stepout.enrol(user_id=u, platform_id="e")
                assigned = await stepout.next_assignment(u)
                assert isinstance(assigned, ChallengeAssigned)
                await stepout.log_attempt(**attempt_on(assigned))
                following = await stepout.next_assignment(u, after=assigned.assignment_id)
                assert isinstance(following, ChallengeAssigned)
                assert (await stepout.progress(u)).position == 1
                assert [e async for e in stepout.whole_history(u)]
                assert (await stepout.escalations()).total == 0
                async with asyncio.timeout(15):
                    async for event in stepout.events(user_id=u, kinds={"challenge.assigned"}):
                        if event.data.assignment_id == following.assignment_id:
                            break
                info = await stepout.nc.jetstream(prefix="stepout.jsapi").consumer_info("STEPOUT_OUT", "platform")
                # Everything delivered; all acked but the one whose loop body was left by `break`.
                assert info.num_pending == 0 and info.num_ack_pending <= 1

                # An attempt for a participant never enrolled: refused, and the platform reads why
                # through the consumer of the dead letters declared for it, its note as it sent it.
                stranger, attempt_id = user(), str(uuid.uuid4())
                await stepout.log_attempt(**{**attempt_on(assigned), "user_id": stranger, "attempt_id": attempt_id})
                async with asyncio.timeout(15):
                    refused = await anext(aiter(stepout.refusals(user_id=stranger)))
                assert (refused.service, refused.reason, refused.original_subject) == (
                    "tracker",
                    "not_enrolled",
                    f"stepout.attempt.logged.{stranger}",
                )
                assert isinstance(refused.error, NotEnrolled) and refused.event is not None
                assert refused.event["data"]["attempt_id"] == attempt_id
                assert stranger not in refused.detail
        finally:
            system.stop()


def test_the_built_wheels_run_the_example_session_twice(client_system: System, tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    built = subprocess.run(["make", "client", f"CLIENT_DIST={dist}"], cwd=ROOT, capture_output=True, text=True)
    assert built.returncode == 0, built.stdout + built.stderr
    wheels = sorted(str(path) for path in dist.glob("stepout_c*-1.0.0-py3-none-any.whl"))
    assert len(wheels) == 2
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    # The wheels' own dependencies (pydantic, nats-py, tzdata) come from the package index, or pip's cache.
    installed = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--find-links", str(dist), *wheels], capture_output=True, text=True
    )
    assert installed.returncode == 0, installed.stderr
    env = {
        "PATH": "/usr/bin:/bin",
        "STEPOUT_NATS_URL": client_system.nats_url,
        "STEPOUT_SUBJECT_PREFIX": client_system.prefix,
    }
    u = user()
    for run in (1, 2):
        done = subprocess.run(
            [python, str(ROOT / "examples" / "session.py"), u],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert "assigned:" in done.stdout and "next:" in done.stdout, done.stdout
        assert f"position {run}" in done.stdout, done.stdout
