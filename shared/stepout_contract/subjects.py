"""Subject and stream names, all built from the subject prefix (CONTRACT §1)."""

from __future__ import annotations

import re
from dataclasses import dataclass

USER_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
_USER_ID = re.compile(USER_ID_PATTERN)

INPUT_FAMILIES = ("participant", "attempt")
OUTPUT_FAMILIES = ("challenge", "plan", "progress", "overload")


def is_user_id(value: object) -> bool:
    """True for 1 to 64 characters of A-Z a-z 0-9 _ -."""
    return isinstance(value, str) and _USER_ID.fullmatch(value) is not None


def stream_prefix(prefix: str) -> str:
    """P upper-cased, every character other than A-Z and 0-9 turned into `_`."""
    return re.sub(r"[^A-Z0-9]", "_", prefix.upper())


@dataclass(frozen=True)
class Subjects:
    """Every subject and stream of one deployment, for prefix P."""

    prefix: str = "stepout"

    # Streams
    @property
    def in_stream(self) -> str:
        return f"{stream_prefix(self.prefix)}_IN"

    @property
    def out_stream(self) -> str:
        return f"{stream_prefix(self.prefix)}_OUT"

    @property
    def dlq_stream(self) -> str:
        return f"{stream_prefix(self.prefix)}_DLQ"

    @property
    def outcomes_stream(self) -> str:
        """With several partitions: the tracker's outcomes for the planner, sourced from the output
        stream with a partition token after the prefix (no subject of its own: nobody publishes to it)."""
        return f"{stream_prefix(self.prefix)}_OUTCOMES"

    def in_stream_subjects(self) -> list[str]:
        return [f"{self.prefix}.{family}.>" for family in INPUT_FAMILIES]

    def out_stream_subjects(self) -> list[str]:
        return [f"{self.prefix}.{family}.>" for family in OUTPUT_FAMILIES]

    def dlq_stream_subjects(self) -> list[str]:
        return [f"{self.prefix}.deadletter.>"]

    # Inputs and outputs: P.<family>.<event>.<user_id>
    def event(self, family: str, name: str, user_id: str) -> str:
        return f"{self.prefix}.{family}.{name}.{user_id}"

    def all_of(self, family: str, name: str) -> str:
        return f"{self.prefix}.{family}.{name}.*"

    def tokens_of(self, subject: str) -> list[str] | None:
        """The tokens of `subject` after the prefix, or None when it is not under the prefix."""
        head = f"{self.prefix}."
        return subject[len(head) :].split(".") if subject.startswith(head) else None

    def user_of(self, subject: str) -> str | None:
        """The `{user_id}` token of an input or output subject, or None if it has none."""
        parts = self.tokens_of(subject)
        return parts[2] if parts is not None and len(parts) == 3 else None

    def dead_letter(self, service: str) -> str:
        return f"{self.prefix}.deadletter.{service}"

    def query(self, name: str) -> str:
        return f"{self.prefix}.query.{name}"
