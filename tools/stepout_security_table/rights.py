"""Each identity of a NATS configuration and its rights, grouped in plain words.

A subject is read as the contract names it (`stepout_contract.subjects`): an input, an output, a
dead letter, a query; or as a JetStream API call on a stream or one of its consumers; or as an
inbox. Calls on the same stream, and on consumers, that come with the same operations are one row,
so the per-partition lines (`tracker-p0` to `tracker-p15`) read as one. What none of this names
is shown as written, so that a new kind of right shows up rather than vanishes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Literal

from stepout_contract.subjects import INPUT_FAMILIES, OUTPUT_FAMILIES, Subjects

from .identities import Party, Rule, parties
from .nats_config import Value

Direction = Literal["publish", "subscribe"]
DEFAULT = Subjects()  # the default subject prefix, `stepout`, which deploy/nats/nats-server.conf is written for

# JetStream API operations, by the tokens after `$JS.API.STREAM.` or `$JS.API.CONSUMER.` (`ACK` for
# `$JS.ACK`), in the order a row lists them. A `*` stands for one token: the one-word operations only.
STREAM_OPS = {
    "*": "any one-word operation (info, create, update, delete, purge, ...)",
    "INFO": "info",
    "CREATE": "create",
    "UPDATE": "update",
    "DELETE": "delete",
    "PURGE": "purge",
    "MSG.GET": "read a stored message",
    "DIRECT.GET": "read a stored message (direct get)",
    "MSG.DELETE": "delete a stored message",
    "SNAPSHOT": "snapshot",
    "RESTORE": "restore",
    "LEADER.STEPDOWN": "leader step-down",
    "PEER.REMOVE": "remove a peer",
}
CONSUMER_OPS = {
    "*": "any one-word operation (info, create, delete, ...)",
    "INFO": "info",
    "CREATE": "create",
    "DURABLE.CREATE": "create durable",
    "DELETE": "delete",
    "NAMES": "list",
    "LIST": "list",
    "MSG.NEXT": "pull",
    "ACK": "ack",
    "PAUSE": "pause",
    "UNPIN": "unpin",
    "LEADER.STEPDOWN": "leader step-down",
}
OPS = {"stream": STREAM_OPS, "consumer": CONSUMER_OPS}

# The kinds of row of each direction, in the order they are shown; `{queue}` is a queue group.
ROWS = {
    "publish": (
        "send inputs",
        "publish outputs",
        "publish dead letters",
        "ask queries",
        "call the JetStream API",
        "stream",
        "consumer",
        "reply to inboxes",
        "publish",
    ),
    "subscribe": (
        "hear inputs",
        "hear outputs",
        "read dead letters",
        "hear queries",
        "answer queries in queue group {queue}",
        "receive replies on inboxes",
        "subscribe",
    ),
}


@dataclass(frozen=True)
class Row:
    """One line of the table: what a party may (or may never) do, and on what."""

    may: str
    on: tuple[str, ...]
    joiner: str = ", "  # "; " between streams that each list their consumers

    @property
    def on_text(self) -> str:
        return self.joiner.join(self.on)


@dataclass(frozen=True)
class _Plain:
    kind: str
    item: str
    queue: str | None = None


@dataclass(frozen=True)
class _Call:
    """A JetStream API call (or ack): `consumer` None for a call on the stream itself."""

    api: Literal["stream", "consumer"]
    op: str
    stream: str
    consumer: str | None = None
    filter: str | None = None


# --- subjects in plain words -------------------------------------------------------------------


def classify(entry: str, direction: Direction, subjects: Subjects = DEFAULT) -> _Plain | _Call:
    """What one permission entry (`subject`, or `subject queue` for a subscription) lets a party do."""
    subject, _, queue = entry.strip().partition(" ")
    queue = queue.strip()
    publish = direction == "publish"
    tokens = subject.split(".")
    if tokens[:2] == ["$JS", "API"]:
        return _api(tokens[2:]) or _Plain("call the JetStream API", f"`{subject}`")
    if tokens[:2] == ["$JS", "ACK"] and len(tokens) >= 4:
        return _Call("consumer", "ACK", tokens[2], tokens[3])
    if tokens[0].startswith("_INBOX"):
        return _Plain("reply to inboxes" if publish else "receive replies on inboxes", f"`{subject}`")
    rest = subjects.tokens_of(subject) or []
    family = rest[0] if rest else None
    if family in INPUT_FAMILIES:
        return _Plain("send inputs" if publish else "hear inputs", f"`{subject}`")
    if family in OUTPUT_FAMILIES:
        return _Plain("publish outputs" if publish else "hear outputs", f"`{subject}`")
    if family == "deadletter":
        return _Plain("publish dead letters" if publish else "read dead letters", f"`{subject}`")
    if family == "query" and len(rest) == 2:
        if publish:
            return _Plain("ask queries", f"`{rest[1]}`")
        kind = "answer queries in queue group {queue}" if queue else "hear queries"
        return _Plain(kind, f"`{rest[1]}`", queue or None)
    shown = "any subject" if subject == ">" else f"`{entry.strip()}`"
    return _Plain("publish" if publish else "subscribe", shown)


def _api(tokens: list[str]) -> _Plain | _Call | None:
    if tokens == ["INFO"]:
        return _Plain("call the JetStream API", "account info (`$JS.API.INFO`)")
    if tokens[:2] == ["DIRECT", "GET"] and len(tokens) == 3:
        return _Call("stream", "DIRECT.GET", tokens[2])
    if not tokens or tokens[0] not in ("STREAM", "CONSUMER"):
        return None
    api: Literal["stream", "consumer"] = "stream" if tokens[0] == "STREAM" else "consumer"
    ops = STREAM_OPS if api == "stream" else CONSUMER_OPS
    two = ".".join(tokens[1:3])
    op, rest = (two, tokens[3:]) if two in ops else (tokens[1] if len(tokens) > 1 else "", tokens[2:])
    if op not in ops or not rest:
        return None
    if api == "stream":
        return _Call("stream", op, rest[0]) if len(rest) == 1 else None
    return _Call("consumer", op, rest[0], rest[1] if len(rest) > 1 else None, ".".join(rest[2:]) or None)


# --- rows ---------------------------------------------------------------------------------------


def rows(party: Party, subjects: Subjects = DEFAULT) -> list[Row]:
    """The party's rows: what it may publish, then subscribe to, each followed by what it may never."""
    found: list[Row] = []
    for direction in ("publish", "subscribe"):
        rule: Rule = getattr(party, direction)
        if rule.allow is None:
            found.append(Row(direction if direction == "publish" else "subscribe to", ("any subject",)))
        else:
            found += _rows_of(rule.allow, direction, subjects)
        found += [replace(row, may=f"never: {row.may}") for row in _rows_of(rule.deny, direction, subjects)]
    if party.responses is not None:
        found.append(Row("reply to whoever asks it (`allow_responses`)", (party.responses,)))
    return found


def _rows_of(entries: Iterable[str], direction: Direction, subjects: Subjects) -> Iterator[Row]:
    plain: dict[tuple[str, str | None], list[str]] = {}
    calls: dict[str, dict[_Target, list[str]]] = {"stream": {}, "consumer": {}}
    for entry in entries:
        right = classify(entry, direction, subjects)
        if isinstance(right, _Plain):
            _add(plain.setdefault((right.kind, right.queue), []), right.item)
        else:
            _add(calls[right.api].setdefault((right.stream, right.consumer, right.filter), []), right.op)
    for kind in ROWS[direction]:
        if kind in calls:
            yield from _call_rows(kind, calls[kind])
        for (found, queue), items in plain.items():
            if found == kind:
                yield Row(kind.format(queue=f"`{queue}`"), tuple(items))


_Target = tuple[str, str | None, str | None]  # stream, consumer, filter


def _add(items: list[str], item: str) -> None:
    if item not in items:
        items.append(item)


def _call_rows(api: str, ops_by_target: dict[_Target, list[str]]) -> Iterator[Row]:
    """One row per set of operations, on every stream (or consumer) that has exactly that set."""
    order = list(OPS[api])
    targets_by_ops: dict[tuple[str, ...], list[_Target]] = {}
    for target, ops in ops_by_target.items():
        targets_by_ops.setdefault(tuple(sorted(ops, key=order.index)), []).append(target)
    for listed, targets in targets_by_ops.items():
        words = ", ".join(dict.fromkeys(OPS[api][op] for op in listed))
        if api == "stream":
            yield Row(f"JetStream streams: {words}", tuple(dict.fromkeys(_stream(s) for s, _, _ in targets)))
        else:
            yield Row(f"JetStream consumers: {words}", tuple(_consumers(targets)), joiner="; ")


def _consumers(targets: list[_Target]) -> Iterator[str]:
    """Each stream with its consumers, `STREAM` › names, partitions collapsed."""
    names: dict[str, list[str]] = {}
    for stream, consumer, filter in targets:
        names.setdefault(stream, []).append(_consumer(consumer, filter))
    for stream, listed in names.items():
        yield f"{_stream(stream)} › {', '.join(collapse(listed))}"


def _stream(stream: str) -> str:
    return "any stream" if stream in ("*", ">") else f"`{stream}`"


def _consumer(consumer: str | None, filter: str | None) -> str:
    if consumer is None:
        return "no consumer named"
    if consumer == ">":
        return "any consumer, with or without a filter"
    name = "any consumer" if consumer == "*" else f"`{consumer}`"
    if filter is None:
        return name
    return f"{name} with any filter" if filter == ">" else f"{name} with filter `{filter}`"


_PARTITION = re.compile(r"^`(?P<base>.+-p)(?P<k>\d+)`$")


def collapse(names: list[str]) -> list[str]:
    """Consumer names with each run of three or more partitions (`x-p0`, `x-p1`, ...) as `x-p0` to `x-pN`,
    where the run's first partition was."""
    runs: dict[str, list[int]] = {}
    order: list[str | tuple[str]] = []  # a name, or (base,) where a base's partitions go
    for name in names:
        match = _PARTITION.match(name)
        if match is None:
            order.append(name)
            continue
        if match["base"] not in runs:
            runs[match["base"]] = []
            order.append((match["base"],))
        runs[match["base"]].append(int(match["k"]))
    return [shown for item in order for shown in ([item] if isinstance(item, str) else _runs(item[0], runs[item[0]]))]


def _runs(base: str, partitions: list[int]) -> list[str]:
    groups: list[list[int]] = []
    for k in sorted(set(partitions)):
        if groups and k == groups[-1][-1] + 1:
            groups[-1].append(k)
        else:
            groups.append([k])
    shown = []
    for group in groups:
        if len(group) >= 3:
            shown.append(f"`{base}{group[0]}` to `{base}{group[-1]}`")
        else:
            shown += [f"`{base}{k}`" for k in group]
    return shown


def table(config: dict[str, Value], subjects: Subjects = DEFAULT) -> list[tuple[Party, list[Row]]]:
    """Every party of the configuration, in its order, with its rows."""
    return [(party, rows(party, subjects)) for party in parties(config)]
