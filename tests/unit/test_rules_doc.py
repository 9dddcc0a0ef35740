"""The committed docs/RULES.md is the one the rule sets generate (regenerate with `make rules-doc`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stepout_domain import rules_doc
from stepout_domain.overload import RULE_IDS
from stepout_domain.ruleset import DEFAULT_RULESET, SHIPPED_DIR, RuleSet, parse_ruleset

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "RULES.md"


def test_the_committed_rules_document_is_not_stale() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == rules_doc.render(), "docs/RULES.md is stale: run `make rules-doc`"


def test_every_rule_set_field_and_every_overload_rule_is_in_the_document() -> None:
    text = rules_doc.render()
    missing = [name for name in RuleSet.model_fields if f"`{name}`" not in text]
    assert missing == []
    assert [rule for rule in RULE_IDS if f"`{rule}`" not in text] == []


def test_every_threshold_has_a_description() -> None:
    assert [name for name, field in RuleSet.model_fields.items() if not field.description] == []


def test_the_table_has_a_column_per_shipped_version_and_marks_what_differs() -> None:
    versions = rules_doc.shipped_rulesets()
    assert versions[0] == DEFAULT_RULESET
    assert len(versions) == 1 + len(list(SHIPPED_DIR.glob("*.json")))
    text = rules_doc.render()
    header = next(line for line in text.splitlines() if line.startswith("| threshold |"))
    assert header.endswith(" | ".join([f"{DEFAULT_RULESET.version} (base)", *(r.version for r in versions[1:])]) + " |")
    for rules in versions[1:]:
        for name in rules_doc.thresholds():
            if getattr(rules, name) != getattr(DEFAULT_RULESET, name):
                assert f"**{rules_doc.value_text(getattr(rules, name))}**" in text


def test_prose_cites_thresholds_by_name_with_the_default_value() -> None:
    text = rules_doc.render()
    assert f"`rejection_streak_length` ({DEFAULT_RULESET.rejection_streak_length})" in text
    assert f"`high_pause_hours` ({DEFAULT_RULESET.high_pause_hours})" in text


def test_an_unknown_name_in_the_text_fails_loudly() -> None:
    with pytest.raises(KeyError, match="no_such_threshold"):
        "{no_such_threshold}".format_map(rules_doc._Names())


@pytest.mark.parametrize(
    ("value", "shown"), [(None, "off"), (0.5, "0.5"), (1.0, "1"), (48, "48"), (True, "yes"), (False, "no")]
)
def test_values_read_as_people_write_them(value: object, shown: str) -> None:
    assert rules_doc.value_text(value) == shown


def test_versions_sort_by_their_numbers() -> None:
    versions = ["2026.10", "2026.2", "2027.1", "2026.9"]
    assert sorted(versions, key=rules_doc._version_key) == ["2026.2", "2026.9", "2026.10", "2027.1"]


def test_a_differing_version_is_bold_in_its_column() -> None:
    other = parse_ruleset({"version": "9999.1", "ease_off_days": 5})
    table = rules_doc._thresholds_table([DEFAULT_RULESET, other])
    [row] = [line for line in table.splitlines() if line.startswith("| `ease_off_days` |")]
    assert row.endswith(f"| {DEFAULT_RULESET.ease_off_days} | **5** |")
