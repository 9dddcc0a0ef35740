"""A real Prometheus scrapes the running services and evaluates our alert rules; promtool checks them.

Needs `prometheus` and `promtool` (deploy/scripts/install-ops-tools.sh). Without them these tests
skip, unless STEPOUT_REQUIRE_OPS_TOOLS=1 (CI), where a missing tool fails them.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from support import ROOT, Platform, System, free_port

PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
SCRAPE_INTERVAL_S = 1


def ops_tool(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    message = f"{name} is not installed (deploy/scripts/install-ops-tools.sh installs it)"
    if os.environ.get("STEPOUT_REQUIRE_OPS_TOOLS") == "1":
        pytest.fail(message)
    pytest.skip(message)


class Prometheus:
    """A `prometheus` server of our own: a generated config, its own TSDB and a free port."""

    def __init__(self, binary: str, workdir: Path, targets: dict[str, str]) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = workdir / "prometheus.yml"
        self.log = workdir / "prometheus.log"
        workdir.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            yaml.safe_dump(
                {
                    "global": {
                        "scrape_interval": f"{SCRAPE_INTERVAL_S}s",
                        "evaluation_interval": f"{SCRAPE_INTERVAL_S}s",
                    },
                    "rule_files": [str(PROMETHEUS_DIR / "alerts.yml")],
                    "scrape_configs": [
                        {"job_name": job, "static_configs": [{"targets": [target]}]} for job, target in targets.items()
                    ],
                }
            )
        )
        self.command = [
            binary,
            f"--config.file={self.config}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.process.returncode}:\n{self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"prometheus not ready:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None

    def api(self, path: str, **params: str) -> Any:
        reply = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=5).json()
        assert reply["status"] == "success", reply
        return reply["data"]

    async def eventually(self, what: str, probe: Any, timeout: float = 30.0) -> Any:
        """The first truthy result of `probe()`, polled until `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            found = probe()
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not seen within {timeout}s\n{self.log.read_text()[-3000:]}")
            await asyncio.sleep(0.25)


@pytest.fixture
def prometheus_binary() -> str:
    return ops_tool("prometheus")


@pytest.fixture
def prometheus(prometheus_binary: str, system: System, tmp_path: Path) -> Iterator[Prometheus]:
    """Prometheus scraping the planner and tracker of `system` every second, stopped in any case."""
    assert system.planner is not None and system.tracker is not None
    server = Prometheus(
        prometheus_binary,
        tmp_path / "prometheus",
        {
            "stepout-planner": f"127.0.0.1:{system.planner.port}",
            "stepout-tracker": f"127.0.0.1:{system.tracker.port}",
        },
    )
    try:
        server.start()
        yield server
    finally:
        server.stop()


async def test_prometheus_reads_back_a_run_and_evaluates_every_alert_rule_quietly(
    prometheus: Prometheus,
    platform: Platform,  # prometheus first: a missing binary skips before anything starts
) -> None:
    await platform.enrol("u-prom")
    await platform.wait_for("challenge.assigned", "u-prom")
    await platform.attempt("u-prom", outcome="rejected")
    await platform.attempt("u-prom", outcome="accepted")
    await platform.wait_for("progress.updated", "u-prom", count=2)

    def attempts() -> dict[str, str]:
        result = prometheus.api("query", query="sum by (outcome) (stepout_attempts_logged_total)")["result"]
        counted = {series["metric"]["outcome"]: series["value"][1] for series in result}
        return counted if counted.get("rejected") == "1" and counted.get("accepted") == "1" else {}

    counted = await prometheus.eventually("stepout_attempts_logged_total through /api/v1/query", attempts)
    assert counted == {"rejected": "1", "accepted": "1", "hostile": "0", "escaped": "0", "skipped": "0"}
    [series] = prometheus.api("query", query='stepout_attempts_logged_total{outcome="rejected"}')["result"]
    assert series["metric"]["job"] == "stepout-tracker"

    # Each target is scraped on its own schedule: the planner's first scrape may come later.
    def enrolled() -> list[tuple[str, str]]:
        result = prometheus.api("query", query="stepout_participants_enrolled_total")["result"]
        return [(s["metric"]["job"], s["value"][1]) for s in result]

    assert await prometheus.eventually("stepout_participants_enrolled_total", enrolled) == [("stepout-planner", "1")]

    # The same server evaluates alerts.yml on this live data: no rule errs and, all being well, none fires.
    def targets() -> list[tuple[str, str]]:
        found = sorted((t["labels"]["job"], t["health"]) for t in prometheus.api("targets")["activeTargets"])
        return found if all(health != "unknown" for _, health in found) else []

    assert await prometheus.eventually("both targets scraped", targets) == [
        ("stepout-planner", "up"),
        ("stepout-tracker", "up"),
    ]

    def evaluated_rules() -> list[dict[str, Any]]:
        rules = [rule for group in prometheus.api("rules")["groups"] for rule in group["rules"]]
        return rules if rules and all(rule["health"] != "unknown" for rule in rules) else []

    rules = await prometheus.eventually("every rule evaluated", evaluated_rules)
    expected = {
        rule["alert"]
        for group in yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())["groups"]
        for rule in group["rules"]
    }
    assert {rule["name"] for rule in rules} == expected
    assert {rule["name"]: rule.get("lastError") for rule in rules if rule["health"] != "ok"} == {}
    assert [alert["labels"]["alertname"] for alert in prometheus.api("alerts")["alerts"]] == []


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ops_tool("promtool"), *args], capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_promtool_accepts_the_alert_rules() -> None:
    checked = run_promtool("check", "rules", str(PROMETHEUS_DIR / "alerts.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_alert_rules_pass_their_promtool_unit_tests() -> None:
    tested = run_promtool("test", "rules", str(PROMETHEUS_DIR / "alerts_test.yml"))
    assert tested.returncode == 0, tested.stdout + tested.stderr
