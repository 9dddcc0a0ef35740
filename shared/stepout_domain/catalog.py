"""The challenge catalog: what a participant can be asked to do, by category and level.

The catalog is data (`data/catalog.json`), versioned like the rule set. `Catalog.choose`
is a pure function of its arguments, so replaying an assignment picks the same challenge.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stepout_contract.vocabulary import CATEGORIES

MIN_LEVEL = 1
MAX_LEVEL = 10
MAX_TITLE_LENGTH = 200
DEFAULT_CATALOG_PATH = Path(__file__).parent / "data" / "catalog.json"

# Ids travel in events whose contract caps them at 64 characters.
_ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")


@dataclass(frozen=True, slots=True)
class Challenge:
    """One thing a participant can be asked to do; `expected_suds` is about `10 * level`."""

    id: str
    title: str
    category: str
    level: int
    expected_suds: int


# The JSON type of every field; bool is excluded from int where it is checked.
_FIELD_TYPES: dict[str, type] = {
    "id": str,
    "title": str,
    "category": str,
    "level": int,
    "expected_suds": int,
}
_TYPE_NAMES: dict[type, str] = {str: "a string", int: "an integer"}


class CatalogError(ValueError):
    """A catalog that cannot be used; the message names the file and the offending challenge."""


class Catalog:
    """A validated, versioned set of challenges, indexed by id and by level.

    Construction checks every challenge and that each category has a challenge at
    every level, and raises `CatalogError` naming the first problem.
    """

    def __init__(self, version: str, challenges: Iterable[Challenge], *, origin: str = "catalog") -> None:
        self.version = version
        self.origin = origin
        self._challenges = tuple(sorted(challenges, key=lambda challenge: challenge.id))
        validate(self)
        self._by_id = {challenge.id: challenge for challenge in self._challenges}
        self._by_level: dict[int, tuple[Challenge, ...]] = {
            level: tuple(c for c in self._challenges if c.level == level) for level in range(MIN_LEVEL, MAX_LEVEL + 1)
        }

    @property
    def challenges(self) -> tuple[Challenge, ...]:
        """Every challenge, sorted by id."""
        return self._challenges

    def __len__(self) -> int:
        return len(self._challenges)

    def __iter__(self) -> Iterator[Challenge]:
        return iter(self._challenges)

    def __repr__(self) -> str:
        return f"Catalog(version={self.version!r}, challenges={len(self)})"

    def get(self, challenge_id: str) -> Challenge | None:
        """The challenge with this id, or None if the catalog has none."""
        return self._by_id.get(challenge_id)

    def at_level(self, level: int, categories: Iterable[str] | None = None) -> tuple[Challenge, ...]:
        """The challenges at `level` in `categories` (None or empty: all), sorted by id.

        A category the catalog does not know simply matches nothing, so that old
        preferences replayed against a newer catalog still get a challenge.
        """
        if isinstance(categories, str):
            raise TypeError(f"categories must be a collection of category names, not the string {categories!r}")
        at_level = self._by_level.get(level, ())
        wanted = frozenset(categories or ())
        if not wanted:
            return at_level
        return tuple(c for c in at_level if c.category in wanted)

    def choose(self, level: int, categories: Sequence[str] | None, avoid: str | None, key: str) -> Challenge:
        """The challenge to assign at `level`, the same one every time for the same arguments.

        Candidates are, in order of preference: the wanted categories without `avoid`;
        every category without `avoid` (the variety rule outranks the categories);
        and only when the level has nothing else, `avoid` itself. The pick is the
        SHA-256 of `key` modulo the number of candidates. Raises `CatalogError`
        when the level has no challenge at all.
        """
        everything = self.at_level(level)
        if not everything:
            raise CatalogError(f"{self.origin}: no challenge at level {level}")
        candidates = _without(self.at_level(level, categories), avoid) or _without(everything, avoid) or everything
        return candidates[_stable_index(key, len(candidates))]


def validate(catalog: Catalog) -> None:
    """Raise `CatalogError` naming the first problem of `catalog`, if it has any."""
    problems = list(_problems(catalog.version, catalog.challenges))
    if problems:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        raise CatalogError(f"{catalog.origin}: {problems[0]}{more}")


def load_catalog(path: str | Path | None = None) -> Catalog:
    """The catalog in the JSON file at `path`; by default the one shipped with this package."""
    file = DEFAULT_CATALOG_PATH if path is None or str(path) == "" else Path(path)
    origin = str(file)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CatalogError(f"{origin}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise CatalogError(f"{origin}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise CatalogError(f"{origin}: not valid JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(data, dict):
        raise CatalogError(f"{origin}: expected a JSON object with version and challenges, got {_json_type(data)}")
    _check_keys(data, {"version", "challenges"}, origin)
    version, raw_challenges = data["version"], data["challenges"]
    if not isinstance(version, str):
        raise CatalogError(f"{origin}: version must be a string, got {_json_type(version)}")
    if not isinstance(raw_challenges, list):
        raise CatalogError(f"{origin}: challenges must be an array, got {_json_type(raw_challenges)}")
    challenges = [_parse_challenge(raw, index, origin) for index, raw in enumerate(raw_challenges)]
    return Catalog(version, challenges, origin=origin)


def _problems(version: str, challenges: Sequence[Challenge]) -> Iterator[str]:
    if not version:
        yield "version must not be empty"
    seen: set[str] = set()
    for challenge in challenges:
        if challenge.id in seen:
            yield f"challenge {challenge.id!r}: id is used more than once"
        seen.add(challenge.id)
        yield from (f"challenge {challenge.id!r}: {problem}" for problem in _challenge_problems(challenge))
    covered = {(c.category, c.level) for c in challenges}
    for category in CATEGORIES:
        for level in range(MIN_LEVEL, MAX_LEVEL + 1):
            if (category, level) not in covered:
                yield f"no challenge in category {category!r} at level {level}"


def _challenge_problems(challenge: Challenge) -> Iterator[str]:
    if not _ID_PATTERN.fullmatch(challenge.id):
        yield "id must be 1-64 lowercase letters, digits or hyphens, not starting with a hyphen"
    if not challenge.title.strip():
        yield "title is empty"
    elif len(challenge.title) > MAX_TITLE_LENGTH:
        yield f"title has {len(challenge.title)} characters, more than {MAX_TITLE_LENGTH}"
    if challenge.category not in CATEGORIES:
        yield f"category {challenge.category!r} is not one of {', '.join(CATEGORIES)}"
    if not MIN_LEVEL <= challenge.level <= MAX_LEVEL:
        yield f"level {challenge.level} is outside {MIN_LEVEL}-{MAX_LEVEL}"
    if not 0 <= challenge.expected_suds <= 100:
        yield f"expected_suds {challenge.expected_suds} is outside 0-100"


def _parse_challenge(raw: object, index: int, origin: str) -> Challenge:
    where = f"{origin}: challenges[{index}]"
    if not isinstance(raw, dict):
        raise CatalogError(f"{where}: expected an object, got {_json_type(raw)}")
    if isinstance(raw.get("id"), str):
        where = f"{origin}: challenge {raw['id']!r}"
    _check_keys(raw, set(_FIELD_TYPES), where)
    for field, expected in _FIELD_TYPES.items():
        value = raw[field]
        if not isinstance(value, expected) or isinstance(value, bool):
            raise CatalogError(f"{where}: {field} must be {_TYPE_NAMES[expected]}, got {_json_type(value)}")
    return Challenge(
        id=raw["id"],
        title=raw["title"],
        category=raw["category"],
        level=raw["level"],
        expected_suds=raw["expected_suds"],
    )


def _check_keys(raw: dict[str, Any], expected: set[str], where: str) -> None:
    missing = sorted(expected - raw.keys())
    if missing:
        raise CatalogError(f"{where}: missing {_fields(missing)}")
    unknown = sorted(str(key) for key in raw.keys() - expected)
    if unknown:
        raise CatalogError(f"{where}: unknown {_fields(unknown)}")


def _fields(names: list[str]) -> str:
    return f"{'field' if len(names) == 1 else 'fields'} {', '.join(names)}"


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _without(challenges: tuple[Challenge, ...], avoid: str | None) -> tuple[Challenge, ...]:
    return tuple(c for c in challenges if c.id != avoid)


def _stable_index(key: str, count: int) -> int:
    # hash() is salted per process; an audit replay in another process must pick the same.
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest, "big") % count
