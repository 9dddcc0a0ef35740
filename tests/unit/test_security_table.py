"""README.md's "Security" table is the one deploy/nats/nats-server.conf generates (`make security-table`),
and the generator reads nats-server's configuration format and groups any identity's rights."""

from __future__ import annotations

from pathlib import Path

import pytest

from stepout_security_table import ConfigError, Row, collapse, parse, parties, read, render, rows
from stepout_security_table.readme import CONFIG, README, STALE, block, current, main


def rows_of(config: str, user: str) -> list[tuple[str, str]]:
    [party] = [p for p in parties(parse(config)) if p.name == user]
    return [(row.may, row.on_text) for row in rows(party)]


def test_the_readme_table_is_the_one_the_nats_configuration_generates() -> None:
    assert current(README.read_text(encoding="utf-8")) == block(CONFIG), STALE


def test_every_identity_of_the_configuration_is_in_the_table_with_rights() -> None:
    config = read(CONFIG, env={})
    text = render(config)
    for party in parties(config):
        assert f"| **`{party.name}`** " in text
        assert rows(party), party.name


# --- the configuration format -------------------------------------------------------------------


def test_the_format_takes_equals_colons_blanks_comments_and_separators() -> None:
    config = parse(
        """
        # a comment
        host: 127.0.0.1   // another
        port 4222
        max_payload = 1MB; debug: true
        "quoted key": 'single $NOT_A_VARIABLE'
        jetstream {store_dir: "/var/x", cipher: chachapoly}
        list = [a, "b c"
          d  # comment inside
        ]
        """
    )
    assert config == {
        "host": "127.0.0.1",
        "port": "4222",
        "max_payload": "1MB",
        "debug": "true",
        "quoted key": "single $NOT_A_VARIABLE",
        "jetstream": {"store_dir": "/var/x", "cipher": "chachapoly"},
        "list": ["a", "b c", "d"],
    }


def test_variables_come_from_an_enclosing_map_then_the_environment_else_stay_as_written() -> None:
    config = parse(
        """
        ROLE = {publish = ["a.>"]}
        auth {
          users = [{user: u, password: $SECRET, permissions: $ROLE, other: $MISSING, quoted: "$ROLE"}]
        }
        """,
        env={"SECRET": "s3cret"},
    )
    user = {
        "user": "u",
        "password": "s3cret",
        "permissions": {"publish": ["a.>"]},
        "other": "$MISSING",
        "quoted": "$ROLE",
    }
    assert config["auth"] == {"users": [user]}


def test_an_include_is_read_relative_to_the_including_file(tmp_path: Path) -> None:
    (tmp_path / "roles.conf").write_text('ROLE = { subscribe = "x.>" }\n')
    (tmp_path / "main.conf").write_text(
        "include ./roles.conf\nauthorization { users = [ {user: u, permissions: $ROLE} ] }\n"
    )
    [party] = parties(read(tmp_path / "main.conf"))
    assert party.subscribe.allow == ("x.>",)


def test_a_broken_configuration_names_its_line() -> None:
    with pytest.raises(ConfigError, match=r"<text>:3: unterminated"):
        parse('a = 1\nb {\n  c = "open\n}\n')


# --- rights in plain words ----------------------------------------------------------------------


def test_a_permission_list_and_an_allow_map_read_alike() -> None:
    as_list = 'authorization { users = [{user: u, permissions: {publish = ["stepout.query.plan"]}}] }'
    as_map = 'authorization { users = [{user: u, permissions: {publish = {allow = ["stepout.query.plan"]}}}] }'
    assert rows_of(as_list, "u") == rows_of(as_map, "u")
    assert rows_of(as_list, "u") == [("ask queries", "`plan`"), ("subscribe to", "any subject")]


def test_the_per_partition_lines_collapse_into_one_row() -> None:
    lines = "\n".join(
        f'"$JS.API.CONSUMER.INFO.STEPOUT_IN.t-p{k}", "$JS.API.CONSUMER.MSG.NEXT.STEPOUT_IN.t-p{k}", '
        f'"$JS.ACK.STEPOUT_IN.t-p{k}.>"'
        for k in range(16)
    )
    config = f"""
    T = {{ publish = [
      "$JS.API.CONSUMER.INFO.STEPOUT_IN.t", "$JS.API.CONSUMER.MSG.NEXT.STEPOUT_IN.t", "$JS.ACK.STEPOUT_IN.t.>"
      {lines}
      "$JS.API.STREAM.INFO.STEPOUT_IN"
      "$JS.API.STREAM.INFO.STEPOUT_OUT"
    ], subscribe = ["stepout.query.progress stepout-tracker", "_INBOX_t.>"] }}
    authorization {{ users = [{{user: t, permissions: $T}}] }}
    """
    assert rows_of(config, "t") == [
        ("JetStream streams: info", "`STEPOUT_IN`, `STEPOUT_OUT`"),
        ("JetStream consumers: info, pull, ack", "`STEPOUT_IN` › `t`, `t-p0` to `t-p15`"),
        ("answer queries in queue group `stepout-tracker`", "`progress`"),
        ("receive replies on inboxes", "`_INBOX_t.>`"),
    ]


def test_partition_runs_of_three_or_more_collapse_and_gaps_show() -> None:
    names = ["`a`", "`x-p0`", "`x-p1`", "`x-p2`", "`x-p5`", "`x-p6`", "`b`"]
    assert collapse(names) == ["`a`", "`x-p0` to `x-p2`", "`x-p5`", "`x-p6`", "`b`"]


def test_a_new_identity_shows_up_with_every_right_even_those_no_row_names() -> None:
    config = """
    ADMIN = {
      publish = {
        allow = ["$JS.API.INFO", "$JS.API.STREAM.*.STEPOUT_IN", "$JS.API.CONSUMER.*.STEPOUT_IN.>", "$SYS.REQ.>"]
        deny = ["stepout.participant.*.*"]
      }
      subscribe = ["_INBOX_admin.>", ">"]
      allow_responses = {max: 1, expires: "1m"}
    }
    accounts { OPS { users = [{user: admin, permissions: $ADMIN}] } }
    """
    assert rows_of(config, "admin") == [
        ("call the JetStream API", "account info (`$JS.API.INFO`)"),
        ("JetStream streams: any one-word operation (info, create, update, delete, purge, ...)", "`STEPOUT_IN`"),
        (
            "JetStream consumers: any one-word operation (info, create, delete, ...)",
            "`STEPOUT_IN` › any consumer, with or without a filter",
        ),
        ("publish", "`$SYS.REQ.>`"),
        ("never: send inputs", "`stepout.participant.*.*`"),
        ("receive replies on inboxes", "`_INBOX_admin.>`"),
        ("subscribe", "any subject"),
        ("reply to whoever asks it (`allow_responses`)", "max 1, expires 1m"),
    ]
    assert "| **`admin`** (account `OPS`) | call the JetStream API |" in render(parse(config))


def test_a_user_without_permissions_may_publish_and_subscribe_to_anything() -> None:
    party = parties(parse("authorization { users = [{user: root, password: x}] }"))[0]
    assert rows(party) == [Row("publish", ("any subject",)), Row("subscribe to", ("any subject",))]


# --- `make security-table` ----------------------------------------------------------------------


def test_the_check_fails_on_a_stale_readme_and_writing_it_fixes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n<!-- security-table:start -->\nold\n<!-- security-table:end -->\n\n## Licence\n")
    assert main(["--readme", str(readme), "--check"]) == 1
    assert "run `make security-table`" in capsys.readouterr().err
    assert main(["--readme", str(readme)]) == 0
    assert main(["--readme", str(readme), "--check"]) == 0
    text = readme.read_text()
    assert text.startswith("# x\n\n<!-- security-table:start -->\n") and text.endswith("-->\n\n## Licence\n")
