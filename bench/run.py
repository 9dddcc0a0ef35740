"""`make bench`: stepout measured against the transport it runs on, in one run.

Prints a table and writes bench/results.json. Needs no services running: it starts its own
nats-server (and uses the PostgreSQL at STEPOUT_BENCH_POSTGRES_DSN for the PostgreSQL row).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from stepout_runtime.data_dir import keep_private

from .cluster import run_cluster_ingest
from .endtoend import run_end_to_end
from .fetchers import rows as fetcher_rows
from .fetchers import run_fetchers
from .history import run_decision_cost, run_drain
from .ingest import run_ingest
from .latency import run_latency
from .rebuild import run_memory, run_rebuild
from .scaling import run_trackers

POSTGRES_DSN = os.environ.get("STEPOUT_BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
RESULTS = Path(__file__).with_name("results.json")
PARTS = ("ingest", "fetchers", "endtoend", "trackers", "cluster", "latency", "rebuild", "memory", "decision", "drain")


def table(results: dict[str, object]) -> str:
    rows = [("measure", "value", "target")]
    for label, key in (("SQLite", "ingest_sqlite"), ("PostgreSQL", "ingest_postgres")):
        r = results.get(key)
        if isinstance(r, dict):
            target = ">= 0.30x" if label == "SQLite" else ">= 0.25x"
            rows.append((f"baseline raw consumer ({label} run)", f"{r['baseline_msgs_per_s']:,.0f} msg/s", ""))
            rows.append(
                (f"ingest {label}", f"{r['ingest_attempts_per_s']:,.0f} attempts/s = {r['ratio']:.2f}x", target)
            )
            if "tracker_cpu_ms_per_attempt" in r:
                rows.append(
                    (
                        "  CPU per attempt while draining",
                        f"tracker {r['tracker_cpu_ms_per_attempt']:.3f} ms, nats-server"
                        f" {r['nats_cpu_ms_per_attempt']:.3f} ms",
                        "",
                    )
                )
    for count in (1, 2):
        r = results.get(f"trackers_{count}")
        if isinstance(r, dict):
            rows.append(
                (
                    f"ingest PostgreSQL, {count} tracker{'s' if count > 1 else ''}, 4 partitions",
                    f"{r['attempts_per_s']:,.0f} attempts/s = {r['ratio']:.2f}x"
                    f" (baseline {r['baseline_msgs_per_s']:,.0f})",
                    ">= 0.45x" if count == 2 else "",
                )
            )
            rows.append(
                (
                    "  while draining",
                    f"machine {r['machine_busy']:.0%} busy; trackers' CPU {r['trackers_cpu_ms_per_attempt']:.2f} ms"
                    " per attempt",
                    "",
                )
            )
    one, two = results.get("trackers_1"), results.get("trackers_2")
    if isinstance(one, dict) and isinstance(two, dict):
        rows.append(("  2 trackers / 1 tracker", f"{two['attempts_per_s'] / one['attempts_per_s']:.2f}x", ""))
    r = results.get("cluster")
    if isinstance(r, dict):
        for label, key in (("one node, R1", "one_node"), (f"{r['nodes']}-node cluster, R{r['nodes']}", "cluster")):
            c = r[key]
            rows.append(
                (
                    f"ingest SQLite, {label}",
                    f"{c['ingest_attempts_per_s']:,.0f} attempts/s = {c['ratio']:.2f}x"
                    f" (baseline {c['baseline_msgs_per_s']:,.0f})",
                    "",
                )
            )
            rows.append(
                (
                    "  CPU per attempt while draining",
                    f"tracker {c['tracker_cpu_ms_per_attempt']:.2f} ms, nats-server"
                    f"{'s' if key == 'cluster' else ''} {c['nats_cpu_ms_per_attempt']:.2f} ms",
                    "",
                )
            )
        rows.append(("  cluster ingest / one-node ingest", f"{r['ratio_to_one_node']:.2f}x", ""))
    r = results.get("endtoend")
    if isinstance(r, dict):
        rows.append(
            (
                f"end to end, {r['attempts']:,} attempts -> challenge.assigned",
                f"{r['assigned_per_s']:,.0f} assigned/s = {r['ratio']:.2f}x (baseline {r['baseline_msgs_per_s']:,.0f})",
                ">= 0.25x",
            )
        )
    r = results.get("fetchers")
    if isinstance(r, dict):
        rows.extend(fetcher_rows(r))
    r = results.get("latency")
    if isinstance(r, dict):
        rows.append(
            (
                f"latency at {r['rate_per_s']}/s for {r['seconds']}s, -> progress.updated",
                f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, max {r['max_ms']:.1f} ms",
                "p99 <= 25 ms",
            )
        )
        a = r.get("to_assignment")
        if isinstance(a, dict):
            rows.append(
                (
                    "  -> next challenge.assigned",
                    f"p50 {a['p50_ms']:.1f} ms, p99 {a['p99_ms']:.1f} ms, max {a['max_ms']:.1f} ms",
                    "p99 <= 50 ms",
                )
            )
    r = results.get("rebuild")
    if isinstance(r, dict):
        rows.append((f"rebuild of {r['events']:,} events", f"{r['events_per_s_wall']:,.0f} events/s", ">= 100,000/s"))
    r = results.get("memory")
    if isinstance(r, dict):
        rows.append(
            (
                f"tracker RSS, {r['participants']:,} participants x {r['attempts_each']}",
                f"{r['rss_mb']:.0f} MB (at start {r['rss_mb_at_start']:.0f})",
                "<= 300 MB",
            )
        )
    r = results.get("decision")
    if isinstance(r, dict):
        cost = r["us_per_attempt"]
        rows.append(
            (
                f"decision cost (rule set {r.get('ruleset_version', '2026.1')}), history 10/100/1,000/5,000",
                " / ".join(f"{cost[k]:.1f}" for k in ("10", "100", "1000", "5000"))
                + f" us = {r['ratio_5000_to_10']:.2f}x",
                "each <= 25 us; 5,000 <= 1.3x of 10",
            )
        )
    r = results.get("drain")
    if isinstance(r, dict):
        long, short = r["long"], r["short"]
        rows.append(
            (
                "drain 10 x 2,000 vs 200 x 100",
                f"{long['attempts_per_s']:,.0f} vs {short['attempts_per_s']:,.0f} attempts/s = {r['ratio']:.2f}x",
                ">= 0.9x",
            )
        )
        cold = long["cold_answers_s"]
        rows.append(("cold restart, 10 x 2,000: answers", f"max {max(cold) * 1000:.0f} ms", "all <= 300 ms"))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [" | ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="make bench")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--rebuild-participants", type=int, default=20_000, help="x 52 stored events each")
    parser.add_argument("--participants", type=int, default=100_000, help="x 50 attempts each, for the RSS")
    parser.add_argument("--only", nargs="*", choices=PARTS, default=list(PARTS))
    args = parser.parse_args()
    # The data directories made below are their owner's only, as stepout requires of a data directory.
    keep_private()
    results: dict[str, object] = {
        "machine": (
            f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"
        ),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="stepout-bench-") as tmp:
        work = Path(tmp)
        if "ingest" in args.only:
            results["ingest_sqlite"] = asyncio.run(
                run_ingest(work, args.messages, {"STEPOUT_STORE": "sqlite"}, "sqlite")
            )
            schema = f"bench{uuid.uuid4().hex[:8]}"
            store = {
                "STEPOUT_STORE": "postgres",
                "STEPOUT_POSTGRES_DSN": POSTGRES_DSN,
                "STEPOUT_POSTGRES_SCHEMA": schema,
            }
            results["ingest_postgres"] = asyncio.run(run_ingest(work, args.messages, store, "pg"))
        if "fetchers" in args.only:
            results["fetchers"] = asyncio.run(run_fetchers(work, args.messages))
        if "endtoend" in args.only:
            results["endtoend"] = asyncio.run(run_end_to_end(work, args.messages))
        if "trackers" in args.only:
            for count in (1, 2):
                results[f"trackers_{count}"] = asyncio.run(run_trackers(work, args.messages, count, POSTGRES_DSN))
        if "cluster" in args.only:
            results["cluster"] = asyncio.run(run_cluster_ingest(work, args.messages))
        if "latency" in args.only:
            results["latency"] = asyncio.run(run_latency(work, args.rate, args.seconds))
        if "rebuild" in args.only:
            results["rebuild"] = run_rebuild(work, args.rebuild_participants)
        if "memory" in args.only:
            results["memory"] = asyncio.run(run_memory(work, args.participants))
        if "decision" in args.only:
            results["decision"] = run_decision_cost()
        if "drain" in args.only:
            results["drain"] = asyncio.run(run_drain(work))
    results["bench_seconds"] = round(time.perf_counter() - started, 1)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(f"\n{results['machine']}; written to {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
