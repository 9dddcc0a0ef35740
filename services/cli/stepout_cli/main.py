"""Entry point of the `stepout` command. Exit codes: 0 success, 1 a check failed, 2 usage error."""

from __future__ import annotations

import argparse
import logging
import sys

from stepout_contract.settings import SettingsError, load_settings
from stepout_runtime import logs

log = logging.getLogger("stepout")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="stepout", description="Paces rejection therapy for wellness platforms.")
    commands = top.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the services")
    run.add_argument("which", nargs="?", default="all", choices=["all", "planner", "tracker"])

    simulate = commands.add_parser("simulate", help="drive a synthetic cohort through a running system")
    simulate.add_argument("--participants", type=int, required=True)
    simulate.add_argument("--days", type=int, required=True)
    simulate.add_argument("--seed", type=int, default=1)
    simulate.add_argument("--json", action="store_true", help="print the summary as JSON")
    projections = commands.add_parser("projections", help="read models")
    projection_commands = projections.add_subparsers(dest="action", required=True)
    rebuild = projection_commands.add_parser("rebuild", help="rebuild the read models from the event stores")
    rebuild.add_argument("--verify", action="store_true", help="rebuild aside and compare with the live read models")
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"stepout: bad setting: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format)
    if args.command == "run":
        from .run import run_all, run_service

        try:
            return run_all(settings) if args.which == "all" else run_service(settings, args.which)
        except Exception as exc:  # noqa: BLE001 - one line naming what is wrong, not a traceback
            from stepout_domain.catalog import CatalogError
            from stepout_domain.ruleset import RuleSetError

            if isinstance(exc, (CatalogError, RuleSetError)):
                print(f"stepout: {exc}", file=sys.stderr)
                return 2
            raise
    if args.command == "simulate":
        from .simulate import simulate

        return simulate(settings, args.participants, args.days, args.seed, as_json=args.json)
    if args.command == "projections":
        from .projections import rebuild

        return rebuild(settings, verify=args.verify)
    return 2


if __name__ == "__main__":
    sys.exit(main())
