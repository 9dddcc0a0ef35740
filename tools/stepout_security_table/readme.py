"""README.md's table of each NATS identity's rights, between its two marker comments.

`make security-table` (`python -m stepout_security_table`) writes it from deploy/nats/nats-server.conf;
`--check` exits 1 when README.md differs, and tests/unit/test_security_table.py fails the same way.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from . import nats_config
from .rights import table

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "deploy" / "nats" / "nats-server.conf"
README = ROOT / "README.md"
START = "<!-- security-table:start -->"
END = "<!-- security-table:end -->"
NOTE = (
    "<!-- Generated from deploy/nats/nats-server.conf by `make security-table`: "
    "change the configuration, then run it; do not edit the table by hand. -->"
)
STALE = "README.md's security table differs from deploy/nats/nats-server.conf: run `make security-table`"


def render(config: dict[str, nats_config.Value]) -> str:
    """The Markdown table: one row per kind of right, each party's name on its first row."""
    lines = ["| identity | may | on |", "| --- | --- | --- |"]
    for party, rows in table(config):
        name = f"**`{party.name}`**" + (f" (account `{party.account}`)" if party.account else "")
        for index, row in enumerate(rows or []):
            lines.append(f"| {name if index == 0 else ''} | {_cell(row.may)} | {_cell(row.on_text)} |")
        if not rows:
            lines.append(f"| {name} | nothing | |")
    return "\n".join(lines) + "\n"


def block(config_path: Path = CONFIG) -> str:
    """What goes between the markers, the markers included."""
    config = nats_config.read(config_path, env={})  # secrets stay out: passwords read as `$NAME`
    return f"{START}\n{NOTE}\n\n{render(config)}\n{END}"


def current(readme: str) -> str:
    """The block README.md holds now, the markers included."""
    start, end = _span(readme)
    return readme[start:end]


def splice(readme: str, new_block: str) -> str:
    start, end = _span(readme)
    return readme[:start] + new_block + readme[end:]


def _span(readme: str) -> tuple[int, int]:
    if readme.count(START) != 1 or readme.count(END) != 1 or readme.index(START) > readme.index(END):
        raise ValueError(f"README.md must hold `{START}` once, then `{END}` once")
    return readme.index(START), readme.index(END) + len(END)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stepout_security_table", description=__doc__)
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument("--readme", type=Path, default=README)
    parser.add_argument("--check", action="store_true", help="exit 1 when README.md differs; change nothing")
    args = parser.parse_args(argv)
    readme = args.readme.read_text(encoding="utf-8")
    updated = splice(readme, block(args.config))
    if args.check:
        if updated != readme:
            print(STALE, file=sys.stderr)
            return 1
        return 0
    if updated != readme:
        args.readme.write_text(updated, encoding="utf-8")
        print(f"{args.readme.name}: the security table is written again from {args.config.name}")
    return 0
