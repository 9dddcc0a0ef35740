"""The challenge catalog: the shipped data, validation of catalog files, and the choice of a challenge."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stepout_domain.catalog import (
    CATEGORIES,
    DEFAULT_CATALOG_PATH,
    Catalog,
    CatalogError,
    Challenge,
    load_catalog,
)

LEVELS = range(1, 11)


@cache
def _shipped() -> Catalog:
    return load_catalog()


@pytest.fixture
def shipped() -> Catalog:
    return _shipped()


def _row(category: str, level: int, slug: str = "x", /, **changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": f"{category}-{level:02d}-{slug}",
        "title": f"Do the {slug} thing",
        "category": category,
        "level": level,
        "expected_suds": 10 * level,
    }
    row.update(changes)
    return row


def _full_rows() -> list[dict[str, Any]]:
    """One challenge for every (category, level) pair: the smallest valid catalog."""
    return [_row(category, level) for category in CATEGORIES for level in LEVELS]


def _write(tmp_path: Path, data: object) -> Path:
    file = tmp_path / "catalog.json"
    file.write_text(json.dumps(data), encoding="utf-8")
    return file


def _minimal_catalog() -> Catalog:
    return Catalog("test", [Challenge(**row) for row in _full_rows()])


# The shipped catalog


def test_shipped_catalog_loads_from_the_package_with_at_least_sixty_challenges(shipped: Catalog) -> None:
    assert DEFAULT_CATALOG_PATH.name == "catalog.json"
    assert shipped.version == "2026.1"
    assert len(shipped) >= 60


def test_shipped_catalog_covers_every_category_at_every_level(shipped: Catalog) -> None:
    for category in CATEGORIES:
        for level in LEVELS:
            assert shipped.at_level(level, [category]), (category, level)


def test_shipped_catalog_has_at_least_twelve_challenges_per_category(shipped: Catalog) -> None:
    per_category = Counter(challenge.category for challenge in shipped)
    assert all(per_category[category] >= 12 for category in CATEGORIES), per_category


def test_shipped_ids_name_their_category_and_two_digit_level(shipped: Catalog) -> None:
    for challenge in shipped:
        assert re.fullmatch(rf"{challenge.category}-{challenge.level:02d}-[a-z0-9]+(-[a-z0-9]+)*", challenge.id)


def test_shipped_expected_suds_is_within_ten_of_ten_times_the_level(shipped: Catalog) -> None:
    for challenge in shipped:
        assert abs(challenge.expected_suds - 10 * challenge.level) <= 10, challenge


def test_shipped_titles_are_distinct(shipped: Catalog) -> None:
    titles = [challenge.title for challenge in shipped]
    assert len(titles) == len(set(titles))


def test_get_finds_a_challenge_by_id_and_returns_none_for_an_unknown_id(shipped: Catalog) -> None:
    first = shipped.challenges[0]
    assert shipped.get(first.id) == first
    assert shipped.get("no-such-challenge") is None


def test_at_level_is_sorted_by_id_and_empty_categories_mean_all(shipped: Catalog) -> None:
    everything = shipped.at_level(4)
    assert [c.id for c in everything] == sorted(c.id for c in everything)
    assert shipped.at_level(4, []) == everything == shipped.at_level(4, None)
    assert {c.category for c in shipped.at_level(4, ["money", "play"])} == {"money", "play"}


# Catalog files that cannot be used


def test_a_minimal_catalog_file_with_every_pair_covered_loads(tmp_path: Path) -> None:
    catalog = load_catalog(_write(tmp_path, {"version": "t1", "challenges": _full_rows()}))
    assert catalog.version == "t1"
    assert len(catalog) == 60


def test_duplicate_ids_are_rejected_naming_the_id(tmp_path: Path) -> None:
    rows = [*_full_rows(), _row("money", 3, title="Another title")]
    with pytest.raises(CatalogError, match=r"catalog\.json: challenge 'money-03-x': id is used more than once"):
        load_catalog(_write(tmp_path, {"version": "t", "challenges": rows}))


@pytest.mark.parametrize("level", [0, 11, -1])
def test_a_level_outside_one_to_ten_is_rejected_naming_the_challenge(tmp_path: Path, level: int) -> None:
    rows = [*_full_rows(), _row("money", 3, "odd", level=level)]
    with pytest.raises(CatalogError, match=rf"challenge 'money-03-odd': level {level} is outside 1-10"):
        load_catalog(_write(tmp_path, {"version": "t", "challenges": rows}))


def test_an_unknown_category_is_rejected_naming_the_challenge(tmp_path: Path) -> None:
    rows = [*_full_rows(), _row("money", 3, "odd", category="dating")]
    with pytest.raises(CatalogError, match=r"challenge 'money-03-odd': category 'dating' is not one of"):
        load_catalog(_write(tmp_path, {"version": "t", "challenges": rows}))


def test_a_category_missing_at_a_level_is_rejected_naming_the_pair(tmp_path: Path) -> None:
    rows = [row for row in _full_rows() if row["id"] != "career-07-x"]
    with pytest.raises(CatalogError, match=r"no challenge in category 'career' at level 7"):
        load_catalog(_write(tmp_path, {"version": "t", "challenges": rows}))


def test_bad_json_is_rejected_naming_the_file(tmp_path: Path) -> None:
    file = tmp_path / "catalog.json"
    file.write_text('{"version": "t", "challenges": [', encoding="utf-8")
    with pytest.raises(CatalogError, match=r"catalog\.json: not valid JSON"):
        load_catalog(file)


def test_a_missing_file_is_rejected_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match=r"absent\.json: cannot read"):
        load_catalog(tmp_path / "absent.json")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], r"expected a JSON object"),
        ({"challenges": []}, r"missing field version"),
        ({"version": "t", "challenges": [], "extra": 1}, r"unknown field extra"),
        ({"version": 2026, "challenges": []}, r"version must be a string, got an integer"),
        ({"version": "", "challenges": _full_rows()}, r"version must not be empty"),
        ({"version": "t", "challenges": {}}, r"challenges must be an array"),
        ({"version": "t", "challenges": ["money-01-x"]}, r"challenges\[0\]: expected an object, got a string"),
    ],
)
def test_a_malformed_top_level_is_rejected_naming_the_problem(tmp_path: Path, data: object, message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        load_catalog(_write(tmp_path, data))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"level": "3"}, r"challenge 'money-03-odd': level must be an integer, got a string"),
        ({"level": True}, r"challenge 'money-03-odd': level must be an integer, got a boolean"),
        ({"expected_suds": 30.5}, r"challenge 'money-03-odd': expected_suds must be an integer, got a number"),
        ({"title": None}, r"challenge 'money-03-odd': title must be a string, got null"),
        ({"expected_suds": 101}, r"challenge 'money-03-odd': expected_suds 101 is outside 0-100"),
        ({"title": "  "}, r"challenge 'money-03-odd': title is empty"),
        ({"title": "a" * 201}, r"challenge 'money-03-odd': title has 201 characters"),
        ({"id": "Money 03"}, r"challenge 'Money 03': id must be"),
        ({"id": "-money-03"}, r"challenge '-money-03': id must be"),
        ({"id": "m" * 65}, r"id must be 1-64"),
    ],
)
def test_a_bad_field_is_rejected_naming_the_challenge_and_field(
    tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    rows = [*_full_rows(), _row("money", 3, "odd", **change)]
    with pytest.raises(CatalogError, match=message):
        load_catalog(_write(tmp_path, {"version": "t", "challenges": rows}))


def test_a_challenge_missing_a_field_is_rejected_naming_it(tmp_path: Path) -> None:
    odd = _row("money", 3, "odd")
    del odd["expected_suds"]
    with pytest.raises(CatalogError, match=r"challenge 'money-03-odd': missing field expected_suds"):
        load_catalog(_write(tmp_path, {"version": "t", "challenges": [*_full_rows(), odd]}))


def test_a_catalog_built_in_code_is_validated_too() -> None:
    challenges = [Challenge(**row) for row in _full_rows()]
    with pytest.raises(CatalogError, match=r"level 12 is outside 1-10"):
        Catalog("t", [*challenges, Challenge("play-12-x", "Play", "play", 12, 100)])


# Choosing a challenge


def test_choose_gives_the_same_challenge_for_the_same_key(shipped: Catalog) -> None:
    picks = {shipped.choose(5, ["social", "play"], "social-05-x", "user-1:assignment-7") for _ in range(20)}
    assert len(picks) == 1


def test_choose_is_pinned_to_sha256_so_a_replay_in_another_process_agrees() -> None:
    catalog = _minimal_catalog()
    # Pinned values: if these change, past assignments no longer replay.
    assert catalog.choose(3, None, None, "user-1:assignment-1").id == "career-03-x"
    assert catalog.choose(3, None, None, "user-1:assignment-2").id == "money-03-x"
    assert catalog.choose(3, None, None, "user-2:assignment-1").id == "favours-03-x"


def test_choose_spreads_different_keys_over_the_level(shipped: Catalog) -> None:
    picks = {shipped.choose(6, None, None, f"user-1:assignment-{n}").id for n in range(200)}
    assert picks == {challenge.id for challenge in shipped.at_level(6)}


def test_choose_never_repeats_the_previous_challenge_when_the_level_has_another(shipped: Catalog) -> None:
    for n in range(100):
        key = f"user-3:assignment-{n}"
        previous = shipped.choose(4, ["money"], None, key)
        assert shipped.choose(4, ["money"], previous.id, key) != previous


def test_choose_honours_the_categories(shipped: Catalog) -> None:
    for n in range(100):
        chosen = shipped.choose(7, ["career", "performance"], None, f"user-4:assignment-{n}")
        assert chosen.category in {"career", "performance"}
        assert chosen.level == 7


def test_choose_falls_back_to_all_categories_when_the_categories_offer_only_the_previous_challenge() -> None:
    catalog = _minimal_catalog()
    chosen = catalog.choose(2, ["money"], "money-02-x", "user-5:assignment-1")
    assert chosen.level == 2
    assert chosen.id != "money-02-x"


def test_choose_falls_back_to_all_categories_when_the_categories_have_nothing_known(shipped: Catalog) -> None:
    chosen = shipped.choose(8, ["retired-category"], None, "user-6:assignment-1")
    assert chosen in shipped.at_level(8)


def test_choose_raises_when_the_level_has_no_challenge(shipped: Catalog) -> None:
    with pytest.raises(CatalogError, match=r"no challenge at level 11"):
        shipped.choose(11, None, None, "user-7:assignment-1")


def test_categories_given_as_one_string_are_refused_as_a_bug(shipped: Catalog) -> None:
    with pytest.raises(TypeError):
        shipped.at_level(3, "money")


_CATALOGS: tuple[Callable[[], Catalog], ...] = (_minimal_catalog, _shipped)


@given(
    catalog=st.sampled_from(_CATALOGS).map(lambda make: make()),
    level=st.integers(1, 10),
    categories=st.none() | st.lists(st.sampled_from(CATEGORIES), unique=True),
    data=st.data(),
    key=st.text(),
)
def test_choose_never_returns_the_avoided_challenge_when_the_level_has_two(
    catalog: Catalog, level: int, categories: list[str] | None, data: st.DataObject, key: str
) -> None:
    at_level = catalog.at_level(level)
    assert len(at_level) >= 2
    avoid = data.draw(st.sampled_from(at_level).map(lambda challenge: challenge.id) | st.none())
    chosen = catalog.choose(level, categories, avoid, key)
    assert chosen.id != avoid
    assert chosen.level == level
    offered = [c for c in catalog.at_level(level, categories) if c.id != avoid]
    if offered:
        assert chosen in offered
