"""Thousands of inputs generated from the contract's own input models, then mutated (nesting,
numbers, calendar edges, zone names, sizes, unicode, shapes, sources, subjects, types), through
JetStream to the running services: each ends accepted or dead-lettered on its first delivery and
within seconds, nothing is retried, both services stay up and ready, and a good input after them
is still decided."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import nats
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig
from test_fuzz_ingest import mutate as near_valid_mutation

from stepout_contract.inputs import CATEGORIES, INPUT_TYPES, OUTCOMES
from stepout_contract.subjects import Subjects
from stepout_domain.catalog import load_catalog
from stepout_planner.main import PARTICIPANT_TYPES
from stepout_runtime.inbound import DeadLetter, decode, named_users, original_subject
from support import Platform, System, cloud_event

pytestmark = pytest.mark.faults

CASES = 4000
BATCH = 400
USERS = 200  # enrolled before the fuzz run; the cases share them, so later ones meet earlier effects
SETTLE_S = 5.0  # every case of a batch accepted or dead-lettered within this, after its last publish
CATALOG = load_catalog()
ENVELOPE_KEYS = ("specversion", "id", "source", "type", "subject", "time", "datacontenttype", "data")

# --- what a case is made of ------------------------------------------------------------------------


@dataclass(frozen=True)
class Raw:
    """A JSON token put into the body as it is (numbers JSON can write but Python cannot hold)."""

    text: str


@dataclass(frozen=True)
class Ago:
    """A time this long before the moment the case is published (negative: ahead of it)."""

    seconds: float


@dataclass(frozen=True)
class Nested:
    """A value nested `depth` lists or objects deep."""

    depth: int
    opener: str


def weighted(choices: list[tuple[int, st.SearchStrategy[Any]]]) -> st.SearchStrategy[Any]:
    """One of `choices`, each drawn about as often as its weight says."""
    picks = [i for i, (weight, _) in enumerate(choices) for _ in range(weight)]
    return st.sampled_from(picks).flatmap(lambda i: choices[i][1])


USER = "<user>"  # placeholder for the case's participant
ATTEMPT_ID = "<attempt-id>"  # placeholder for the case's own attempt id

RAW_NUMBERS = [
    "NaN",
    "Infinity",
    "-Infinity",
    "1e400",
    "-1e400",
    "1e-400",
    "9" * 5000,
    "-" + "9" * 5000,
    "0." + "0" * 5000 + "1",
    "1E+99999",
    "-0",
    "3.0",
]
CALENDAR_EDGES = [
    "9999-12-31T23:59:59-01:00",
    "9999-12-31T23:59:59-12:00",
    "9999-12-31T23:59:59+14:00",
    "0001-01-01T00:30:00+01:00",
    "0001-01-01T00:00:00Z",
    "2026-06-30T23:59:60Z",
    "2016-12-31T23:59:60+00:00",
    "2026-03-01T12:00:00+23:59",
    "2026-03-01T12:00:00-23:59",
    "2026-03-01T12:00:00+24:00",
    "2026-02-30T12:00:00Z",
    "2026-03-01T12:00:00",
    "2026-03-01",
    "12:00:00Z",
    "1999-12-31T23:59:59Z",
    "2100-01-01T00:00:00Z",
    "2026-03-01T25:00:00Z",
    "+2026-03-01T12:00:00Z",
    "2026-03-01T12:00:00.1234567890123Z",
    "2026-03-01 12:00:00Z",
]
ODD_ZONES = [
    "America",
    "America/",
    "../etc/passwd",
    "/etc/localtime",
    "Europe/" + "x" * 293,
    "UTC\x00",
    "Etc/GMT+14",
    "",
    " UTC",
    "utc",
    "Europe/Berlin\n",
    "Etc/GMT-14",  # real zones at the edges of the calendar: accepted
    "Pacific/Kiritimati",
    "Pacific/Chatham",
    "Asia/Kathmandu",
    "America/St_Johns",
    "Antarctica/Troll",
    "Factory",
]
ODD_TEXT = [
    "",
    "x" * 65,
    "x" * 300,
    "\ud800",
    "a\udfffb",
    "\u202eevil\u202c",
    "שלום-مرحبا",
    "😀" * 16,
    "😀" * 40,
    "\x00",
    "\ufeffBOM",
    "١٢٣",
    "3",
    "true",
    "null",
    "money",
    "00000000-0000-0000-0000-000000000000",
    "{3F1C0E4E-5B7A-4C1E-9D0A-2B1F6F0F9A11}",
    "urn:uuid:3f1c0e4e-5b7a-4c1e-9d0a-2b1f6f0f9a11",
    "3f1c0e4e5b7a4c1e9d0a2b1f6f0f9a11",
    "3f1c0e4e-5b7a-4c1e-9d0a-2b1f6f0f9a1\u0661",
    "urn:stepout:tracker",
    "stepout.attempt.logged.v1",
]
raw_numbers = st.sampled_from(RAW_NUMBERS).map(Raw)
nested = st.builds(Nested, st.sampled_from([3, 200, 990, 5_000, 12_000]), st.sampled_from(["[", "{"]))
nasty_values = weighted(
    [
        (1, st.none()),
        (1, st.booleans()),
        (1, st.integers(-(2**70), 2**70)),
        (1, st.sampled_from([0, -1, 11, 101, 2**31, 2**63, -(2**63) - 1])),
        (1, st.floats(allow_nan=True, allow_infinity=True)),
        (3, st.sampled_from(RAW_NUMBERS).map(Raw)),
        (2, st.sampled_from(CALENDAR_EDGES)),
        (1, st.sampled_from(ODD_ZONES)),
        (3, st.sampled_from(ODD_TEXT)),
        (1, st.text(max_size=40)),
        (1, st.lists(st.sampled_from([*CATEGORIES, "MONEY", 1, None]), max_size=8)),
        (2, st.sampled_from([[], {}, [{}], {"a": 1}, [[]], {"user_id": USER}])),
        (2, st.builds(Nested, st.sampled_from([3, 200, 990, 5_000, 12_000]), st.sampled_from(["[", "{"]))),
    ]
)

valid_times_ago = st.sampled_from([0.0, 1.0, 60.0, 3600.0, 86_400.0, 9 * 86_400.0, -120.0]).map(Ago)
VALID_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "starting_level": st.integers(1, 10),
    "daily_limit": st.integers(1, 10),
    "categories": st.lists(st.sampled_from(CATEGORIES), min_size=1, max_size=6, unique=True),
    "timezone": st.sampled_from(["UTC", "Europe/Berlin", "Asia/Kolkata", "Pacific/Chatham", "America/Santiago"]),
    "coach_id": st.sampled_from(["coach-1", "Dr. Ünal", "مدرب", "👩‍⚕️", "c" * 64]),
    "until": st.sampled_from([-3600.0, -86_400.0, -300 * 86_400.0, 600.0]).map(Ago),
    "erase": st.booleans(),
    "attempt_id": st.just(ATTEMPT_ID),
    "assignment_id": st.sampled_from([None, "7d8e2b1a-9c3f-4a4e-8b6d-1f0e2c3a4b5d"]),
    "challenge_id": st.sampled_from([c.id for c in CATALOG.challenges[::7]] + ["self-chosen"]),
    "level": st.integers(1, 10),
    "outcome": st.sampled_from(OUTCOMES),
    "suds_before": st.integers(0, 100),
    "suds_peak": st.integers(0, 100),
    "suds_after": st.integers(0, 100),
    "predicted_suds": st.integers(0, 100),
    "prediction_came_true": st.integers(0, 100),
    "crisis_reported": st.sampled_from([False, False, False, True]),
    "occurred_at": valid_times_ago,
    "note": st.sampled_from(["went fine", "🙂 " * 20, "x" * 2000]),
}
# Attempts most, withdrawals seldom (each ends a participant's plan for the cases after it).
TYPE_WEIGHTS = {
    "stepout.attempt.logged.v1": 10,
    "stepout.participant.enrolled.v1": 3,
    "stepout.participant.paused.v1": 2,
    "stepout.participant.resumed.v1": 2,
    "stepout.participant.reviewed.v1": 2,
    "stepout.participant.withdrawn.v1": 1,
}
SUBJECT_MUTATIONS = [
    "extra_token_3",
    "extra_token_0",
    "extra_token_99",
    "extra_token_word",
    "other_user",
    "bad_user",
    "unicode_user",
    "long_user",
    "wrong_family",
    "no_user",
    "fresh_user",
    "fresh_user",
]


@dataclass
class Spec:
    """A case before it has a participant and ids: a type, its data, and what to spoil."""

    type_: str
    data: dict[str, Any]
    mutations: list[tuple[Any, ...]] = field(default_factory=list)


def mutations_of(model: Any) -> st.SearchStrategy[tuple[Any, ...]]:
    """The ways to spoil an input of `model`; a wrong value in some field most often."""
    fields = [("data", name) for name in model.model_fields] + [(key,) for key in ENVELOPE_KEYS]
    fields += [("data", "extra"), ("data", "Note"), ("ext",)]
    ways: list[tuple[int, st.SearchStrategy[tuple[Any, ...]]]] = [
        (8, st.tuples(st.just("set"), st.sampled_from(fields), nasty_values)),
        (2, st.tuples(st.just("drop"), st.sampled_from(fields))),
        (2, st.tuples(st.just("set"), st.sampled_from(TIME_FIELDS_PATHS), st.sampled_from(CALENDAR_EDGES))),
        (1, st.tuples(st.just("set"), st.just(("data", "timezone")), st.sampled_from(ODD_ZONES))),
        (2, st.tuples(st.just("set"), st.sampled_from(IDENTITY_PATHS), st.sampled_from(ODD_TEXT))),
        (1, st.tuples(st.just("set"), st.just(("source",)), st.sampled_from(STEPOUT_SOURCES))),
        (1, st.tuples(st.just("set"), st.just(("type",)), st.sampled_from(ODD_TYPES))),
        (1, st.tuples(st.just("subject"), st.sampled_from(SUBJECT_MUTATIONS))),
        (1, st.tuples(st.just("shape"), st.sampled_from(SHAPES))),
        (1, st.tuples(st.just("oversize"), st.sampled_from(OVERSIZE))),
        (1, st.tuples(st.just("bytes"), st.sampled_from(BYTES), st.integers(0, 2**32))),
        (1, st.tuples(st.just("near_valid"), st.integers(0, 2**32))),
    ]
    return weighted(ways)


TIME_FIELDS_PATHS = [("data", "occurred_at"), ("data", "until"), ("time",)]
IDENTITY_PATHS = [("id",), ("subject",), ("data", "user_id"), ("data", "attempt_id"), ("data", "coach_id")]
STEPOUT_SOURCES = ["urn:stepout:tracker", "urn:stepout:planner", "urn:stepout:"]
ODD_TYPES = [
    "stepout.attempt.logged.v2",
    "stepout.attempt.logged",
    "stepout.progress.updated.v1",
    "stepout.participant.enrolled.v1",
    "stepout.attempt.logged.v1",
    "STEPOUT.ATTEMPT.LOGGED.V1",
]
SHAPES = ["data_list", "data_string", "body_list", "body_number", "body_string", "body_null", "duplicate_keys"]
OVERSIZE = ["note_2001", "note_70k", "padding_70k", "id_257", "source_1025", "many_fields"]
BYTES = ["brackets_60k", "objects_12k", "random", "invalid_utf8", "bom", "truncated", "empty", "utf16"]
MUTATIONS = {type_: mutations_of(model) for type_, (_, _, model) in INPUT_TYPES.items()}
TYPES_WEIGHTED = [t for t, w in TYPE_WEIGHTS.items() for _ in range(w)]


@st.composite
def specs(draw: st.DrawFn) -> Spec:
    type_ = draw(st.sampled_from(TYPES_WEIGHTED))
    model = INPUT_TYPES[type_][2]
    data: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if name == "user_id":
            data[name] = USER
        elif name in VALID_FIELDS and (info.is_required() or draw(st.booleans())):
            data[name] = draw(VALID_FIELDS[name])
    if type_ == "stepout.attempt.logged.v1" and data["outcome"] != "skipped":
        # The readings as the model wants them: all three, the peak the highest.
        readings = [data.get(name, draw(VALID_FIELDS[name])) for name in ("suds_before", "suds_peak", "suds_after")]
        data.update(suds_before=readings[0], suds_peak=max(readings), suds_after=readings[2])
    # About a quarter of the cases are left as the model makes them.
    count = draw(st.sampled_from([0, 1, 1, 2, 2, 3, 3, 1]))
    return Spec(type_, data, [draw(MUTATIONS[type_]) for _ in range(count)])


def generate_specs(count: int) -> list[Spec]:
    """`count` specs drawn by hypothesis, the same ones on every run."""
    found: list[Spec] = []

    @settings(
        max_examples=count,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(specs())
    def collect(spec: Spec) -> None:
        found.append(spec)

    collect()
    return found


# --- from a spec to the bytes published ------------------------------------------------------------


@dataclass
class Case:
    n: int
    type_: str
    subject: str
    body: bytes
    msg_id: str
    mutations: list[str]
    readers: tuple[str, ...]  # the services whose consumers get it
    expected: dict[str, DeadLetter | None] = field(default_factory=dict)  # the edge's verdict, per reader
    edge_error: str | None = None  # what `decode` raised, where it raised instead of answering


def resolve(value: Any, user: str, attempt_id: str, now: datetime) -> Any:
    if value == USER:
        return user
    if value == ATTEMPT_ID:
        return attempt_id
    if isinstance(value, Ago):
        return (now - timedelta(seconds=value.seconds)).isoformat()
    if isinstance(value, list):
        return [resolve(v, user, attempt_id, now) for v in value]
    if isinstance(value, dict):
        return {k: resolve(v, user, attempt_id, now) for k, v in value.items()}
    return value


def to_json(value: Any) -> str:
    """JSON text with Raw tokens and Nested values written out as they are."""
    raws: list[str] = []

    def swap(v: Any) -> Any:
        if isinstance(v, Raw):
            raws.append(v.text)
            return f"\u0000raw{len(raws) - 1}\u0000"
        if isinstance(v, Nested):
            closer = "]" if v.opener == "[" else "}"
            opener = "[" if v.opener == "[" else '{"a":'
            raws.append(opener * v.depth + ("1" if v.opener == "{" else "") + closer * v.depth)
            return f"\u0000raw{len(raws) - 1}\u0000"
        if isinstance(v, list):
            return [swap(x) for x in v]
        if isinstance(v, dict):
            return {k: swap(x) for k, x in v.items()}
        return v

    text = json.dumps(swap(value))
    for i, raw in enumerate(raws):
        text = text.replace(json.dumps(f"\u0000raw{i}\u0000"), raw)
    return text


def spoil_bytes(kind: str, seed: int) -> bytes:
    rng = random.Random(seed)
    return {
        "brackets_60k": b"[" * 60_000,
        "objects_12k": b'{"a":' * 12_000,
        "random": rng.randbytes(rng.randint(1, 400)),
        "invalid_utf8": b'{"specversion": "1.0", "id": "\xff\xfe", "data": {}}',
        "bom": b"\xef\xbb\xbf{}",
        "truncated": b'{"specversion": "1.0", "id": "x", "data": {"user_id": ',
        "empty": b"",
        "utf16": '{"specversion": "1.0"}'.encode("utf-16"),
    }[kind]


@dataclass
class Draft:
    """A case being spoiled: the body as a value (or, once spoiled beyond JSON, as bytes) and its subject."""

    value: Any
    subject: str
    raw: bytes | None = None

    @property
    def data(self) -> dict[str, Any] | None:
        found = self.value.get("data") if isinstance(self.value, dict) else None
        return found if isinstance(found, dict) else None


def materialize(spec: Spec, n: int, prefix: str, now: datetime) -> Case:
    user = f"fz-{n % USERS:03d}"
    attempt_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"fuzz-edge/{prefix}/attempt/{n}"))
    family, name, _ = INPUT_TYPES[spec.type_]
    event = cloud_event(spec.type_, user, resolve(spec.data, user, attempt_id, now))
    event["id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"fuzz-edge/{prefix}/event/{n}"))
    event["time"] = now.isoformat()
    draft = Draft(event, f"{prefix}.{family}.{name}.{user}")
    applied: list[str] = []
    for mutation in spec.mutations:
        detail = ".".join(mutation[1]) if isinstance(mutation[1], tuple) else str(mutation[1])
        applied.append(f"{mutation[0]}:{detail}"[:60])
        if mutation[0] in ("set", "drop"):
            change_field(draft, mutation, lambda v: resolve(v, user, attempt_id, now))
        elif mutation[0] == "subject":
            change_subject(draft, mutation[1], prefix, family, name, user, fresh=f"fz-new-{n}")
        elif mutation[0] == "shape":
            change_shape(draft, mutation[1])
        elif mutation[0] == "oversize":
            oversize(draft, mutation[1])
        elif mutation[0] == "bytes":
            draft.raw = spoil_bytes(mutation[1], mutation[2])
        elif mutation[0] == "near_valid" and draft.data is not None and draft.raw is None:
            try:
                plain = json.loads(to_json(draft.value))
            except ValueError:
                continue  # holds a number Python cannot read back: leave it as it is
            draft.raw = near_valid_mutation(random.Random(mutation[1]), plain)
    body = draft.raw if draft.raw is not None else to_json(draft.value).encode()
    readers = ("planner", "tracker") if draft.subject.startswith(f"{prefix}.participant.") else ("tracker",)
    return Case(n, spec.type_, draft.subject, body, f"{prefix}-fuzz-{n}", applied, readers)


def change_field(draft: Draft, mutation: tuple[Any, ...], resolved: Any) -> None:
    path = mutation[1]
    target = draft.data if len(path) == 2 else draft.value
    if not isinstance(target, dict):
        return
    if mutation[0] == "drop":
        target.pop(path[-1], None)
    else:
        target[path[-1]] = resolved(mutation[2])


def change_subject(draft: Draft, kind: str, prefix: str, family: str, name: str, user: str, fresh: str) -> None:
    if kind == "fresh_user" and isinstance(draft.value, dict):
        # Someone never enrolled (an enrolment of them enrols them).
        draft.subject, draft.value["subject"] = f"{prefix}.{family}.{name}.{fresh}", fresh
        if draft.data is not None:
            draft.data["user_id"] = fresh
        return
    draft.subject = {
        "extra_token_3": f"{prefix}.{family}.{name}.{user}.3",
        "extra_token_0": f"{prefix}.{family}.{name}.{user}.0",
        "extra_token_99": f"{prefix}.{family}.{name}.{user}.99",
        "extra_token_word": f"{prefix}.{family}.{name}.{user}.x",
        "other_user": f"{prefix}.{family}.{name}.fz-other",
        "bad_user": f"{prefix}.{family}.{name}.bad$user",
        "unicode_user": f"{prefix}.{family}.{name}.ü😀\u202e",
        "long_user": f"{prefix}.{family}.{name}.{'u' * 65}",
        "wrong_family": f"{prefix}.{'participant' if family == 'attempt' else 'attempt'}.{name}.{user}",
        "no_user": f"{prefix}.{family}.{name}",
    }.get(kind, draft.subject)


def change_shape(draft: Draft, kind: str) -> None:
    """Lists, strings and numbers where objects belong, and a key given twice."""
    if not isinstance(draft.value, dict):
        return
    if kind == "data_list":
        draft.value["data"] = [draft.value.get("data")]
    elif kind == "data_string":
        draft.value["data"] = to_json(draft.value.get("data"))
    elif kind == "duplicate_keys" and draft.raw is None:
        draft.raw = (to_json(draft.value)[:-1] + ', "data": {"user_id": "someone-else"}}').encode()
    else:
        draft.value = {"body_list": [draft.value], "body_number": 42, "body_null": None}.get(kind, to_json(draft.value))


def oversize(draft: Draft, kind: str) -> None:
    if not isinstance(draft.value, dict):
        return
    data = draft.data if draft.data is not None else {}
    if kind == "note_2001":
        data["note"] = "n" * 2001
    elif kind == "note_70k":
        data["note"] = "n" * 70_000
    elif kind == "padding_70k":
        draft.value["padding"] = " " * 70_000
    elif kind == "id_257":
        draft.value["id"] = "i" * 257
    elif kind == "source_1025":
        draft.value["source"] = "urn:" + "s" * 1021
    elif kind == "many_fields":
        data.update({f"f{i}": i for i in range(3000)})


def judge_at_the_edge(case: Case, prefix: str, now: datetime) -> None:
    """What each reader's edge says of the case (the planner reads participant types only). The
    edge must answer for any bytes: where it raises instead, the case keeps the error."""
    for reader in case.readers:
        types = INPUT_TYPES if reader == "tracker" else PARTICIPANT_TYPES
        try:
            verdict = decode(
                case.body, case.subject, types, Subjects(prefix), stream_seq=0, delivered=1, received_at=now
            )
        except Exception as exc:  # noqa: BLE001 - reported with the case below
            case.edge_error = f"{type(exc).__name__}: {str(exc)[:100]}"
            verdict = DeadLetter("?", "the edge raised")
        case.expected[reader] = verdict if isinstance(verdict, DeadLetter) else None


def unique_bodies(cases: list[Case]) -> None:
    """Dead letters keep the body untouched: a body each lets a dead letter name its case.
    Trailing spaces change no JSON and no garbage's verdict."""
    seen: set[bytes] = set()
    for case in cases:
        while case.body in seen:
            case.body += b" "
        seen.add(case.body)


# --- the run ---------------------------------------------------------------------------------------


def assert_services_up(system: System) -> None:
    for service in system.services():
        assert service.process is not None and service.process.poll() is None, (
            f"{service.name} exited:\n{service.log_path.read_text()[-3000:]}"
        )
        ready = httpx.get(f"{service.base_url}/readyz", timeout=2.0)
        assert ready.status_code == 200, (service.name, ready.status_code, ready.text)


def service_errors(system: System) -> list[str]:
    """The error lines the services logged: what went wrong, and the last line of its traceback."""
    found = []
    for service in system.services():
        for line in service.log_path.read_text(errors="replace").splitlines() if service.log_path.exists() else []:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("level") in ("error", "critical") or "exception" in record:
                last = (record.get("exception") or "").strip().splitlines()[-1:] or [""]
                found.append(f"{service.name}: {record.get('message')}: {last[0][:300]}")
    return found[:10]


async def settled(platform: Platform, system: System, timeout: float) -> float:
    """Seconds until both input consumers have nothing pending or unacknowledged."""
    stream = f"{system.prefix.upper()}_IN"
    started = time.monotonic()
    while True:
        infos = [await platform.js.consumer_info(stream, durable) for durable in ("planner", "tracker")]
        if all(i.num_pending == 0 and i.num_ack_pending == 0 for i in infos):
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            counts = [(i.name, i.num_pending, i.num_ack_pending, i.num_redelivered) for i in infos]
            raise AssertionError(
                f"inputs not settled within {timeout} s (consumer, pending, ack pending, redelivered): {counts}"
                + "".join(f"\n{line}" for line in service_errors(system))
            )
        await asyncio.sleep(0.05)


def normal_uuid(text: str) -> str:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return text


async def seen_in_history(platform: Platform, user: str) -> set[str]:
    """The CloudEvent ids of the participant's history, and the attempt ids it holds."""
    seen: set[str] = set()
    for event in await history_of(platform, user):
        seen.add(event.get("id", ""))
        if event.get("type") == "stepout.attempt.logged.v1":
            seen.add(normal_uuid(event["data"].get("attempt_id", "")))
    return seen


async def history_of(platform: Platform, user: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    request: dict[str, Any] = {"user_id": user, "limit": 500}
    while True:
        reply = await platform.query("history", request)
        if "error" in reply:
            return events
        assert not reply.get("partial"), f"history of {user} came back partial"
        events.extend(reply["events"])
        if not reply.get("next_cursor"):
            return events
        request = {**request, "cursor": reply["next_cursor"]}


async def all_dead_letters(platform: Platform, system: System) -> list[Msg]:
    """Every dead letter now stored, read without acks (so no ack-pending limit stops the read)."""
    sub = await platform.js.pull_subscribe(
        f"{system.prefix}.deadletter.>",
        stream=f"{system.prefix.upper()}_DLQ",
        config=ConsumerConfig(ack_policy=AckPolicy.NONE),
    )
    found: list[Msg] = []
    try:
        while True:
            try:
                found.extend(await sub.fetch(1000, timeout=1.0))
            except (TimeoutError, nats.errors.TimeoutError):
                return found
    finally:
        await sub.unsubscribe()


def letter_key(letter: Msg) -> bytes:
    headers = letter.headers or {}
    return headers["Stepout-Body-Sha256"].encode() if "Stepout-Body-Sha256" in headers else letter.data


def case_keys(case: Case) -> set[bytes]:
    return {case.body, hashlib.sha256(case.body).hexdigest().encode()}


async def test_generated_and_mutated_inputs_end_once_on_first_delivery_and_the_services_stay_up(
    platform: Platform, system: System
) -> None:
    started = time.monotonic()
    specs_drawn = generate_specs(CASES)
    assert len(specs_drawn) >= 2000
    users = [f"fz-{i:03d}" for i in range(USERS)]
    for user in users:
        await platform.enrol(user, coach_id="coach-1")
    await platform.wait_for("challenge.assigned", count=USERS, timeout=30)
    await settled(platform, system, timeout=30)

    cases: list[Case] = []
    settle_times: list[float] = []
    for first in range(0, len(specs_drawn), BATCH):
        now = datetime.now(UTC)
        batch = [
            materialize(spec, first + i, system.prefix, now)
            for i, spec in enumerate(specs_drawn[first : first + BATCH])
        ]
        unique_bodies([*cases, *batch])
        for case in batch:
            judge_at_the_edge(case, system.prefix, now)
        for case in batch:
            await platform.js.publish(case.subject, case.body, headers={"Nats-Msg-Id": case.msg_id})
        settle_times.append(await settled(platform, system, timeout=SETTLE_S))
        assert_services_up(system)
        cases.extend(batch)

    # A good input after all of them is still decided.
    await platform.enrol("u-after")
    await platform.wait_for("challenge.assigned", "u-after")
    good = await platform.attempt("u-after")
    [progress] = await platform.wait_for("progress.updated", "u-after", timeout=10)
    assert progress["data"]["last_attempt"]["attempt_id"] == good["attempt_id"]
    assert_services_up(system)

    # Nothing was retried.
    stream = f"{system.prefix.upper()}_IN"
    for durable in ("planner", "tracker"):
        info = await platform.js.consumer_info(stream, durable)
        assert info.num_redelivered == 0, (durable, info.num_redelivered)
    letters = await all_dead_letters(platform, system)
    reasons = Counter((m.subject.rsplit(".", 1)[-1], (m.headers or {}).get("Stepout-Reason")) for m in letters)
    assert not [k for k in reasons if k[1] == "retries_exhausted"], reasons

    # Every case ended one way for each service that reads it: dead-lettered once, or accepted and seen.
    by_key: dict[tuple[str, bytes], list[Msg]] = {}
    for letter in letters:
        by_key.setdefault((letter.subject.rsplit(".", 1)[-1], letter_key(letter)), []).append(letter)
    subjects = Subjects(system.prefix)
    histories: dict[str, set[str]] = {}
    outcome: Counter[str] = Counter()
    problems: list[str] = []
    # A participant erased on the way (a withdrawal with `erase: true` among the cases) has no history
    # left, and their earlier dead letters were removed with it: what became of their inputs is gone.
    erased = {user for user in users if (await platform.query("progress", {"user_id": user})).get("erased")}
    outcome["participants erased"] = len(erased)
    for case in cases:
        if case.edge_error is not None:
            problems.append(f"case {case.n} {case.mutations}: decode raised {case.edge_error}")
        if named_users(case.subject, case.body, subjects) & erased:
            outcome["about an erased participant"] += 1
            continue
        for service in case.readers:
            expected = case.expected[service]
            found = [m for key in case_keys(case) for m in by_key.get((service, key), [])]
            if service == "tracker" and original_subject(case.subject, subjects).startswith(
                f"{subjects.prefix}.participant."
            ):
                # Participant inputs are the planner's to dead-letter: the tracker only acks them.
                if found:
                    problems.append(f"case {case.n}: dead-lettered by the tracker, which leaves it to the planner")
                outcome["left to the planner by the tracker"] += 1
                continue
            if len(found) > 1:
                problems.append(f"case {case.n} dead-lettered {len(found)} times by the {service}")
            if found:
                headers = found[0].headers or {}
                reason = headers.get("Stepout-Reason", "")
                outcome[f"dead-lettered by the {service}: {reason}"] += 1
                if expected is not None and expected.reason != "?" and reason != expected.reason:
                    problems.append(
                        f"case {case.n} {case.mutations}: the {service} said {reason}, its edge says {expected.reason}"
                    )
                named = headers.get("Stepout-Original-Subject")
                if named != original_subject(case.subject, subjects):
                    problems.append(f"case {case.n}: the dead letter names subject {named!r}, not {case.subject!r}")
                continue
            if expected is not None:
                problems.append(
                    f"case {case.n} {case.mutations}: not dead-lettered by the {service} "
                    f"though its edge refuses it ({expected.reason})"
                )
                continue
            event = json.loads(case.body)
            if service == "tracker" and event["type"] != "stepout.attempt.logged.v1":
                # A participant input the tracker accepts may store nothing (a pause, a resume).
                outcome["accepted by the tracker: participant input"] += 1
                continue
            user = subjects.user_of(original_subject(case.subject, subjects)) or ""
            if user not in histories:
                histories[user] = await seen_in_history(platform, user)
            seen = histories[user]
            attempt_id = event["data"].get("attempt_id") if service == "tracker" else None
            if event["id"] in seen or (attempt_id is not None and normal_uuid(attempt_id) in seen):
                outcome[f"accepted by the {service}"] += 1
            else:
                problems.append(f"case {case.n} {case.mutations}: neither dead-lettered by nor seen in the {service}")

    mutated = sum(1 for case in cases if case.mutations)
    print(
        f"\nfuzz at the edge: {len(cases)} cases ({mutated} mutated) in {time.monotonic() - started:.1f} s, "
        f"slowest batch settled in {max(settle_times):.2f} s"
    )
    for key, count in sorted(outcome.items()):
        print(f"  {key}: {count}")
    problems += [f"logged {line}" for line in service_errors(system)]
    assert not problems, f"{len(problems)} problems, first: " + "\n".join(problems[:20])
    assert outcome["accepted by the tracker"] > 200 and outcome["accepted by the planner"] > 50
