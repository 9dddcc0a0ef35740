"""Entry point of the `stepout` command. Exit codes: 0 success, 1 a check failed, 2 usage error."""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import datetime
from pathlib import Path

from stepout_contract.settings import Settings, SettingsError, load_settings
from stepout_contract.subjects import is_user_id
from stepout_runtime import data_dir, logs

log = logging.getLogger("stepout")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="stepout", description="Paces rejection therapy for wellness platforms.")
    commands = top.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the services")
    run.add_argument("which", nargs="?", default="all", choices=["all", "planner", "tracker", "console"])
    cluster = commands.add_parser("cluster", help="a JetStream cluster of nats-server nodes on loopback (development)")
    cluster.add_argument("--nodes", type=int, default=3, choices=range(3, 8), metavar="N", help="how many, 3 to 7 (3)")
    cluster.add_argument("--port", type=int, default=4241, help="the first node's client port; the next nodes' follow")
    cluster.add_argument("--route-port", type=int, default=6241, help="the first node's route port, the same way")
    topology = commands.add_parser("topology", help="the streams and consumers (the operator's)")
    topology_commands = topology.add_subparsers(dest="action", required=True)
    topology_commands.add_parser(
        "apply", help="declare every stream and durable consumer, idempotently (an identity allowed to)"
    )
    console = commands.add_parser("console", help="the console for coaches and auditors")
    console_commands = console.add_subparsers(dest="action", required=True)
    console_commands.add_parser(
        "hash-password", help="read a password on standard input, print the HASH of a STEPOUT_CONSOLE_USERS entry"
    )

    simulate = commands.add_parser("simulate", help="drive a synthetic cohort through a running system")
    simulate.add_argument("--participants", type=int, required=True)
    simulate.add_argument("--days", type=int, required=True)
    simulate.add_argument("--seed", type=int, default=1)
    simulate.add_argument("--json", action="store_true", help="print the summary as JSON")
    projections = commands.add_parser("projections", help="read models")
    projection_commands = projections.add_subparsers(dest="action", required=True)
    rebuild = projection_commands.add_parser("rebuild", help="rebuild the read models from the event stores")
    rebuild.add_argument("--verify", action="store_true", help="rebuild aside and compare with the live read models")

    replay = commands.add_parser("replay", help="a participant's state and decisions as of a time, from the stores")
    replay.add_argument("--user", type=user_id, required=True)
    replay.add_argument("--as-of", type=moment, help="RFC 3339 time with an offset (default: now)")
    replay.add_argument("--json", action="store_true", help="print the state as JSON")
    audit = commands.add_parser("audit", help="hash-chained exports and re-derived decisions")
    audit_commands = audit.add_subparsers(dest="action", required=True)
    export = audit_commands.add_parser("export", help="a participant's inputs and decisions as chained JSON Lines")
    export.add_argument("--user", type=user_id, required=True)
    export.add_argument("--out", type=Path, required=True)
    verify = audit_commands.add_parser("verify", help="recompute the hash chain of an export")
    verify.add_argument("file", type=Path)
    decisions = audit_commands.add_parser("decisions", help="re-derive a participant's decisions with their rule sets")
    decisions.add_argument("--user", type=user_id, required=True)
    keys = commands.add_parser("keys", help="the key store")
    key_commands = keys.add_subparsers(dest="action", required=True)
    rotate = key_commands.add_parser("rotate", help="re-wrap every key under a new master key (services stopped)")
    rotate.add_argument(
        "--new-key-file", type=Path, help="the new master key, base64 (required with STEPOUT_CIPHER_KEY)"
    )
    return top


def user_id(text: str) -> str:
    if not is_user_id(text):
        raise argparse.ArgumentTypeError(f"not a user id (1 to 64 of A-Z a-z 0-9 _ -): {text!r}")
    return text


def moment(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 time: {text!r}") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"the time needs an offset (Z or +hh:mm): {text!r}")
    return value


def opens_data_dir(args: argparse.Namespace) -> bool:
    """Whether the command reads or writes the data directory: it is checked first (`data_dir.check`)."""
    if args.command == "audit":
        return bool(args.action != "verify")
    return args.command in {"run", "cluster", "projections", "replay", "keys"}


def main(argv: list[str] | None = None) -> int:
    data_dir.keep_private()  # before anything is made: every file and directory is its owner's only
    args = parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"stepout: bad setting: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format)
    if opens_data_dir(args):
        try:
            data_dir.prepare(settings.data_dir)
        except data_dir.DataDirOpen as exc:
            print(f"stepout: {exc}", file=sys.stderr)
            return 1
    if args.command == "run":
        from .run import run_all, run_service

        try:
            if args.which != "console":
                settings.check_service()
            return run_all(settings) if args.which == "all" else run_service(settings, args.which)
        except Exception as exc:
            from stepout_domain.catalog import CatalogError
            from stepout_domain.ruleset import RuleSetError
            from stepout_runtime.connection import NatsRefusedError
            from stepout_runtime.keystore import KeyStoreError
            from stepout_runtime.server_version import ServerTooOld
            from stepout_runtime.service import ServiceFailed
            from stepout_runtime.topology import TopologyError

            if isinstance(exc, (ServerTooOld, TopologyError, KeyStoreError)):
                print(f"stepout: {exc}", file=sys.stderr)  # one line: what the server is and what breaks
                return 1
            if isinstance(exc, (CatalogError, RuleSetError, NatsRefusedError, SettingsError)):
                print(f"stepout: {exc}", file=sys.stderr)
                return 2
            if isinstance(exc, ServiceFailed):
                print(f"stepout: {exc}", file=sys.stderr)  # the cause is in the log above
                return 1
            raise
    if args.command == "cluster":
        from .cluster import nodes, run_cluster
        from .run import jetstream_key

        return run_cluster(
            nodes(args.nodes, settings.data_dir / "cluster", args.port, args.route_port), jetstream_key(settings)
        )
    if args.command == "topology":
        from .topology import apply_command

        return apply_command(settings)
    if args.command == "console":
        from .console import hash_password_command

        return hash_password_command()
    if args.command == "simulate":
        try:
            from stepout_simulate import simulate
        except ModuleNotFoundError as exc:
            if exc.name != "stepout_simulate":
                raise  # the simulator is installed but cannot import: a bug to see, not a missing tool
            print(
                "stepout simulate: the simulator is a development tool, found in a checkout's tools/ (`make install`)",
                file=sys.stderr,
            )
            return 2
        return simulate(settings, args.participants, args.days, args.seed, as_json=args.json)
    if args.command == "projections":
        from .projections import rebuild

        return rebuild(settings, verify=args.verify)
    if args.command == "audit" and args.action == "verify":
        from .audit import verify

        return verify(args.file)  # the file alone: no store is opened
    if args.command == "keys":
        from .keys import rotate

        return rotate(settings, args.new_key_file)
    from stepout_domain.catalog import CatalogError
    from stepout_domain.ruleset import RuleSetError
    from stepout_runtime.keystore import KeyStoreError

    try:
        return _reading_stores(settings, args)
    except (CatalogError, RuleSetError, SettingsError) as exc:
        print(f"stepout: {exc}", file=sys.stderr)
        return 2
    except KeyStoreError as exc:
        print(f"stepout: {exc}", file=sys.stderr)
        return 1


def _reading_stores(settings: Settings, args: argparse.Namespace) -> int:
    if args.command == "replay":
        from .replay import replay

        return replay(settings, args.user, args.as_of, as_json=args.json)
    if args.command == "audit" and args.action == "export":
        from .audit import export

        return export(settings, args.user, args.out)
    if args.command == "audit" and args.action == "decisions":
        from .audit import audit_decisions

        return audit_decisions(settings, args.user)
    return 2


if __name__ == "__main__":
    sys.exit(main())
