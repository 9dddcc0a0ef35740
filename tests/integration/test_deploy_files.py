"""The deployment files agree with the code: what they query is exported, what they run exists."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from stepout_cli.main import parser as stepout_parser
from stepout_contract.settings import Settings
from support import ROOT, Platform, System

DEPLOY = ROOT / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
PROMETHEUS_CONFIGS = [DEPLOY / "prometheus" / "prometheus.yml", DEPLOY / "prometheus" / "prometheus.local.yml"]

# Series Prometheus itself writes for every target.
SCRAPE_SERIES = {
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_series_added",
    "scrape_samples_post_metric_relabeling",
}
PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "offset",
    "bool",
    "inf",
    "nan",
    "atan2",
}
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "gauge": ("",),
    "unknown": ("",),
    "info": ("_info",),
}


def promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (all our expressions select by name)."""
    text = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`', '""', expr)  # strings
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges, subqueries, Grafana's $__rate_interval
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)  # label lists
    names = set()
    for match in re.finditer(r"(?<![\w.$:])[A-Za-z_:][A-Za-z0-9_:]*+(?!\s*\()", text):
        if match.group() not in PROMQL_WORDS and not re.fullmatch(r"\d+[smhdwy]", match.group()):
            names.add(match.group())
    return names


def alert_expressions() -> dict[str, str]:
    rules = yaml.safe_load(ALERTS.read_text())
    return {rule["alert"]: rule["expr"] for group in rules["groups"] for rule in group["rules"] if "alert" in rule}


def dashboard_expressions() -> dict[str, str]:
    found = {}
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                found[f"{path.name}: {panel['title']} ({target['refId']})"] = target["expr"]
    return found


def queried_metrics() -> dict[str, set[str]]:
    """Metric name -> where it is queried (alerts and dashboard panels)."""
    where: dict[str, set[str]] = {}
    for place, expr in {**alert_expressions(), **dashboard_expressions()}.items():
        for name in promql_metric_names(expr):
            where.setdefault(name, set()).add(place)
    return where


def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())  # type: ignore[no-any-return]


def nats_nodes() -> dict[str, dict[str, Any]]:
    """Compose services that run nats-server, by name."""
    return {name: service for name, service in compose()["services"].items() if name.startswith("nats")}


def command_of(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return command if isinstance(command, list) else shlex.split(command)


def flag(command: list[str], name: str) -> str:
    """The value after `name` in a command line."""
    assert command.count(name) == 1, f"{name} in {command}"
    return command[command.index(name) + 1]


def interpolated(value: str, **variables: str) -> str:
    """`value` as compose would pass it, `${NAME}`, `${NAME:?message}` and `${NAME:-default}` replaced."""
    return re.sub(r"\$\{(\w+)(?::?[?-][^}]*)?\}", lambda m: variables[m.group(1)], value)


def stepout_services() -> Iterator[tuple[str, dict[str, Any]]]:
    """Compose services that run the image of our Dockerfile and keep running (not the one-shot `topology`)."""
    for name, service in compose()["services"].items():
        if "build" in service and name != "topology":
            yield name, service


def dockerfile_instruction(name: str) -> list[str]:
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith(f"{name} "):
            return json.loads(line.removeprefix(f"{name} "))  # type: ignore[no-any-return]
    raise AssertionError(f"the Dockerfile has no {name}")


def scrape(base_url: str) -> tuple[set[str], dict[tuple[str, frozenset[tuple[str, str]]], float]]:
    """Series names a target exports (declared families included, even without a sample yet) and its samples."""
    names: set[str] = set()
    samples = {}
    for family in text_string_to_metric_families(httpx.get(f"{base_url}/metrics", timeout=5).text):
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
        for sample in family.samples:
            names.add(sample.name)
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return names, samples


def total(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return sum(
        value
        for (found, found_labels), value in samples.items()
        if found == name and set(labels.items()) <= found_labels
    )


async def enrol_and_attempt(platform: Platform) -> None:
    await platform.enrol("u-ops")
    await platform.wait_for("challenge.assigned", "u-ops")
    await platform.attempt("u-ops", outcome="rejected")
    await platform.wait_for("progress.updated", "u-ops")
    await platform.wait_for("challenge.assigned", "u-ops", count=2)


# --- what the files query ---------------------------------------------------------------------------


def test_metric_names_are_read_from_promql_with_labels_ranges_and_grouping_left_out() -> None:
    expr = (
        'sum by (service, reason) (rate(stepout_dead_letters_total{reason!="x"}[5m])) > 0 or '
        "histogram_quantile(0.95, sum by (le) (rate(stepout_store_append_seconds_bucket[$__rate_interval]))) "
        "and on (job) (up offset 10m) unless ignoring(le) stepout_a:b * 60 > 3 * (vector(0))"
    )
    assert promql_metric_names(expr) == {
        "stepout_dead_letters_total",
        "stepout_store_append_seconds_bucket",
        "up",
        "stepout_a:b",
    }


def test_every_alert_and_panel_queries_a_metric() -> None:
    expressions = {**alert_expressions(), **dashboard_expressions()}
    assert len(alert_expressions()) >= 5 and len(dashboard_expressions()) >= 10
    assert [place for place, expr in expressions.items() if not promql_metric_names(expr)] == []


def test_every_alert_has_a_severity_a_summary_a_description_and_a_unit_test() -> None:
    rules = [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]
    for rule in rules:
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
    tests = yaml.safe_load((DEPLOY / "prometheus" / "alerts_test.yml").read_text())["tests"]
    cases = [case for test in tests for case in test["alert_rule_test"]]
    for rule in rules:
        mine = [case for case in cases if case["alertname"] == rule["alert"]]
        assert any(case["exp_alerts"] for case in mine), f"no test where {rule['alert']} fires"
        assert any(not case["exp_alerts"] for case in mine), f"no test where {rule['alert']} stays silent"


async def test_every_metric_the_alerts_and_dashboards_query_is_exported(platform: Platform, system: System) -> None:
    assert system.planner is not None and system.tracker is not None
    await enrol_and_attempt(platform)
    exported = scrape(system.planner.base_url)[0] | scrape(system.tracker.base_url)[0] | SCRAPE_SERIES
    missing = {name: sorted(places) for name, places in queried_metrics().items() if name not in exported}
    assert missing == {}


async def test_the_scraped_metrics_count_an_enrolment_and_an_attempt(platform: Platform, system: System) -> None:
    assert system.planner is not None and system.tracker is not None
    await enrol_and_attempt(platform)
    expected = {
        "tracker rejected": 1.0,
        "tracker accepted": 0.0,
        "tracker duplicates": 0.0,
        "planner enrolled": 1.0,
    }
    pending = ("stepout_consumer_pending_messages", frozenset({("service", "tracker"), ("consumer", "tracker")}))
    for _ in range(50):  # the outbox counts a publication after its ack; pending is refreshed every 2 s
        planner, tracker = scrape(system.planner.base_url)[1], scrape(system.tracker.base_url)[1]
        seen = {
            "tracker rejected": total(tracker, "stepout_attempts_logged_total", outcome="rejected"),
            "tracker accepted": total(tracker, "stepout_attempts_logged_total", outcome="accepted"),
            "tracker duplicates": total(tracker, "stepout_attempts_duplicate_total"),
            "planner enrolled": total(planner, "stepout_participants_enrolled_total"),
        }
        positive = {
            "planner assigned": total(planner, "stepout_challenges_assigned_total"),
            "planner start assignments": total(planner, "stepout_challenges_assigned_total", reason="start"),
            "planner published": total(planner, "stepout_events_published_total", service="planner"),
            "tracker published": total(
                tracker, "stepout_events_published_total", service="tracker", type="stepout.progress.updated.v1"
            ),
            "planner appends": total(planner, "stepout_store_append_seconds_count"),
            "tracker appends": total(tracker, "stepout_store_append_seconds_count"),
            "planner batches": total(planner, "stepout_ingest_batch_seconds_count", service="planner"),
            "tracker batches": total(tracker, "stepout_ingest_batch_seconds_count", service="tracker"),
        }
        if seen == expected and all(positive.values()) and pending in tracker:
            break
        await asyncio.sleep(0.1)
    assert seen == expected
    assert {name: value for name, value in positive.items() if value <= 0} == {}
    assert pending in tracker
    assert total(tracker, "stepout_dead_letters_total") == 0 and total(planner, "stepout_dead_letters_total") == 0


# --- what the files run -----------------------------------------------------------------------------


def test_the_image_runs_the_stepout_command_with_a_valid_default_subcommand() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    [entrypoint] = dockerfile_instruction("ENTRYPOINT")
    assert entrypoint in scripts
    args = stepout_parser().parse_args(dockerfile_instruction("CMD"))
    assert (args.command, args.which) == ("run", "tracker")


def role_of(service: dict[str, Any]) -> str:
    """What a compose service of our image runs: planner, tracker or console."""
    args = stepout_parser().parse_args(service.get("command") or dockerfile_instruction("CMD"))
    assert args.command == "run"
    return str(args.which)


# The processes that serve /metrics (and /readyz); the console serves pages and /healthz only.
SERVICES = {"planner", "tracker"}
HEALTH_PATHS = {"planner": "/readyz", "tracker": "/readyz", "console": "/healthz"}


def test_compose_runs_two_planners_two_trackers_and_a_console_with_valid_stepout_commands() -> None:
    roles = sorted(role_of(service) for _, service in stepout_services())
    assert roles == ["console", "planner", "planner", "tracker", "tracker"]


def test_compose_declares_the_topology_as_the_operator_before_any_service_starts() -> None:
    """`stepout topology apply` under `admin`, once, with the same topology settings as the services; each
    service waits for it to finish (the console, for the services)."""
    topology = compose()["services"]["topology"]
    args = stepout_parser().parse_args(topology["command"])
    assert (args.command, args.action) == ("topology", "apply")
    assert topology["restart"] == "no"
    env = topology["environment"]
    assert env["STEPOUT_NATS_USER"] == "admin"
    for node in nats_nodes().values():
        assert env["STEPOUT_NATS_PASSWORD"] == node["environment"]["STEPOUT_NATSD_ADMIN_PASSWORD"]
    for name, service in stepout_services():
        if role_of(service) in SERVICES:
            assert service["depends_on"]["topology"] == {"condition": "service_completed_successfully"}, name
            for setting in ("STEPOUT_NATS_URL", "STEPOUT_SUBJECT_PREFIX", "STEPOUT_TRACKER_PARTITIONS"):
                assert service["environment"].get(setting) == env.get(setting), (name, setting)
            assert service["environment"]["STEPOUT_STREAM_REPLICAS"] == env["STEPOUT_STREAM_REPLICAS"] == "3"


def test_compose_sets_only_known_settings_and_the_postgres_store() -> None:
    for name, service in stepout_services():
        env = service["environment"]
        unknown = [
            key
            for key in env
            if key.startswith("STEPOUT_") and key.removeprefix("STEPOUT_").lower() not in Settings.model_fields
        ]
        assert unknown == [], name
        assert env["STEPOUT_HTTP_HOST"] == "0.0.0.0"
        # Each logs in as itself, with the password every nats node gives that identity.
        role = role_of(service)
        assert env["STEPOUT_NATS_USER"] == role, name
        password = f"STEPOUT_NATSD_{role.upper()}_PASSWORD"
        for node in nats_nodes().values():
            assert env["STEPOUT_NATS_PASSWORD"] == node["environment"][password], name
        if role in SERVICES:
            assert env["STEPOUT_ENVIRONMENT"] == "production", name
            assert env["STEPOUT_STORE"] == "postgres" and env["STEPOUT_POSTGRES_DSN"].startswith("postgresql://")


def test_compose_gives_the_console_its_accounts_and_secret_and_no_key() -> None:
    [console] = [service for _, service in stepout_services() if role_of(service) == "console"]
    env = console["environment"]
    # Required at `up`, and by the console itself in production.
    assert env["STEPOUT_ENVIRONMENT"] == "production"
    assert env["STEPOUT_CONSOLE_SECRET"].startswith("${STEPOUT_CONSOLE_SECRET:?")
    assert "STEPOUT_CONSOLE_USERS" not in env  # a HASH holds `$`, which compose and .env files would interpolate
    users = env["STEPOUT_CONSOLE_USERS_FILE"]
    assert "${STEPOUT_CONSOLE_USERS_FILE:?" in "".join(v for v in console["volumes"] if v.endswith(f":{users}:ro"))
    # Neither the master key nor the stores: the console reads the services through their queries only.
    assert {"STEPOUT_CIPHER_KEY", "STEPOUT_POSTGRES_DSN", "STEPOUT_KEYSTORE_DSN", "STEPOUT_API_TOKENS"}.isdisjoint(env)
    assert set(console["depends_on"]) == {*nats_nodes(), "planner-1", "planner-2", "tracker-1", "tracker-2"}
    # Beyond loopback: Secure session cookies and HSTS unless an operator says `false`.
    assert env["STEPOUT_HTTP_HOST"] == "0.0.0.0"
    assert env["STEPOUT_CONSOLE_SECURE_COOKIES"] == "${STEPOUT_CONSOLE_SECURE_COOKIES:-true}"


def service_port(service: dict[str, Any]) -> int:
    which = role_of(service)
    return int(
        service["environment"].get(f"STEPOUT_{which.upper()}_PORT") or Settings.model_fields[f"{which}_port"].default
    )


def test_compose_health_checks_and_published_ports_use_each_service_port() -> None:
    for name, service in stepout_services():
        port = service_port(service)
        test = service["healthcheck"]["test"]
        assert test[:3] == ["CMD", "python", "-c"], name
        compile(test[3], f"{name} healthcheck", "exec")
        assert f"http://127.0.0.1:{port}{HEALTH_PATHS[role_of(service)]}" in test[3], name
        assert all(mapping.rsplit(":", 1)[-1] == str(port) for mapping in service.get("ports", [])), name
    host_ports = [p.rsplit(":", 1)[0] for _, s in compose()["services"].items() for p in s.get("ports", [])]
    assert len(host_ports) == len(set(host_ports)), "two services publish the same host port"


def test_the_image_exposes_each_port_compose_runs_it_on() -> None:
    exposed = {
        int(port)
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.startswith("EXPOSE ")
        for port in line.split()[1:]
    }
    assert {service_port(service) for _, service in stepout_services()} <= exposed


def test_prometheus_in_compose_scrapes_every_service_on_its_port() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIGS[0].read_text())
    targets = {
        target for job in config["scrape_configs"] for static in job["static_configs"] for target in static["targets"]
    }
    expected = {
        f"{name}:{service_port(service)}" for name, service in stepout_services() if role_of(service) in SERVICES
    }
    assert targets == expected


def test_every_prometheus_config_names_the_same_jobs_and_existing_rule_files() -> None:
    jobs = []
    for path in PROMETHEUS_CONFIGS:
        config = yaml.safe_load(path.read_text())
        jobs.append(sorted(job["job_name"] for job in config["scrape_configs"]))
        assert all((path.parent / rule_file).is_file() for rule_file in config["rule_files"]), path
    assert jobs[0] == jobs[1] == ["stepout-planner", "stepout-tracker"]


def test_compose_mounts_files_that_exist() -> None:
    for name, service in compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which does not exist"


def test_grafana_loads_the_dashboards_from_where_compose_mounts_them() -> None:
    grafana = compose()["services"]["grafana"]
    mounts = dict(volume.split(":")[:2] for volume in grafana["volumes"] if volume.startswith("./"))
    provider = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/stepout.yml").read_text())["providers"][0]
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    [source] = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())["datasources"]
    assert urlparse(source["url"]).hostname in compose()["services"]
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        assert {v["name"]: v["query"] for v in board["templating"]["list"]}["datasource"] == source["type"]


NATS_CONFIG = DEPLOY / "nats/nats-server.conf"
CLUSTER_CONFIG = DEPLOY / "nats/cluster.conf"
CLIENT_PORT, ROUTE_PORT = 4222, 6222


def test_every_nats_node_loads_the_shared_server_configuration() -> None:
    # The cluster's file, and beside it the shared one it includes.
    assert "include ./nats-server.conf" in CLUSTER_CONFIG.read_text().splitlines()
    referenced = {
        variable
        for path in (NATS_CONFIG, CLUSTER_CONFIG)
        for variable in re.findall(r"\$(STEPOUT_NATSD_[A-Z_]+)", path.read_text())
    }
    for name, node in nats_nodes().items():
        config = flag(command_of(node), "--config")
        assert f"./deploy/nats/cluster.conf:{config}:ro" in node["volumes"], name
        beside = str(Path(config).with_name("nats-server.conf"))
        assert f"./deploy/nats/nats-server.conf:{beside}:ro" in node["volumes"], name
        assert referenced <= set(node["environment"]), (
            f"{name}: the configuration reads a variable compose does not set"
        )
    # The same identities and the same key at rest on every node.
    assert len({json.dumps(node["environment"], sort_keys=True) for node in nats_nodes().values()}) == 1


def test_compose_runs_three_nats_nodes_in_one_cluster_each_with_its_own_store() -> None:
    nodes = nats_nodes()
    assert sorted(nodes) == ["nats-1", "nats-2", "nats-3"]
    assert len({node["image"] for node in nodes.values()}) == 1
    volumes = compose()["volumes"]
    stores = []
    # One cluster, its routes behind the `route` user's password (deploy/nats/cluster.conf).
    cluster = CLUSTER_CONFIG.read_text()
    assert re.search(r"^  name: stepout$", cluster, re.M) and f"listen: 0.0.0.0:{ROUTE_PORT}" in cluster
    assert re.search(r"user: route\s+password: \$STEPOUT_NATSD_ROUTE_PASSWORD\s", cluster)
    assert "routes: $STEPOUT_NATSD_ROUTES" in cluster
    for name, node in nodes.items():
        command = command_of(node)
        assert flag(command, "--server_name") == name
        # No secret on a command line, where `ps` shows it to every user of the host; no flag that would replace
        # the file's cluster (a --cluster without the password drops it).
        assert not [arg for arg in command if "PASSWORD" in arg or "@" in arg], name
        assert not {"--cluster", "--routes", "--cluster_name"} & set(command), name
        # The route password, given at `up`: no container of the network joins without it.
        env = node["environment"]
        assert env["STEPOUT_NATSD_ROUTE_PASSWORD"].startswith("${STEPOUT_NATSD_ROUTE_PASSWORD:?"), name
        password = {"STEPOUT_NATSD_ROUTE_PASSWORD": "pw"}
        routes = [urlparse(url) for url in json.loads(interpolated(env["STEPOUT_NATSD_ROUTES"], **password))]
        assert sorted(route.hostname or "" for route in routes) == sorted(nodes), name  # each skips its own
        assert {(route.port, route.username, route.password) for route in routes} == {(ROUTE_PORT, "route", "pw")}
        # Its own store: a named volume at the directory the configuration reads.
        [store] = [v for v in node["volumes"] if v.endswith(":" + node["environment"]["STEPOUT_NATSD_STORE_DIR"])]
        assert store.split(":")[0] in volumes, name
        stores.append(store.split(":")[0])
        assert [p.rsplit(":", 1)[-1] for p in node["ports"]] == [str(CLIENT_PORT)], name
        # Healthy only with JetStream running, which the services need before anything else.
        assert "js-enabled-only=true" in " ".join(node["healthcheck"]["test"]), name
    assert len(set(stores)) == len(nodes)


def test_every_stepout_service_lists_every_nats_node_and_waits_for_them() -> None:
    urls = sorted(f"nats://{name}:{CLIENT_PORT}" for name in nats_nodes())
    for name, service in stepout_services():
        assert sorted(service["environment"]["STEPOUT_NATS_URL"].split(",")) == urls, name
        waits = service["depends_on"]
        assert all(waits[node]["condition"] == "service_healthy" for node in nats_nodes()), name


def test_compose_replicates_the_streams_and_partitions_planners_and_trackers_alike() -> None:
    services = [(name, service) for name, service in stepout_services() if role_of(service) in SERVICES]
    replicas = {role: sum(role_of(s) == role for _, s in services) for role in SERVICES}
    assert replicas == {"planner": 2, "tracker": 2}
    expected = {
        # Every stream on every node.
        "STEPOUT_STREAM_REPLICAS": str(len(nats_nodes())),
        "STEPOUT_PLANNER_REPLICAS": str(replicas["planner"]),
        "STEPOUT_TRACKER_REPLICAS": str(replicas["tracker"]),
    }
    partitions = {service["environment"]["STEPOUT_TRACKER_PARTITIONS"] for _, service in services}
    # The same topology declared by every service: one partition count, more partitions than replicas.
    assert len(partitions) == 1
    [count] = partitions
    assert int(count) >= max(replicas.values())
    for name, service in services:
        env = service["environment"]
        assert {key: env.get(key) for key in expected} == expected, name
        settings = Settings(
            **{key.removeprefix("STEPOUT_").lower(): env[key] for key in (*expected, "STEPOUT_TRACKER_PARTITIONS")}
        )
        assert settings.tracker_partitions == int(count) and settings.stream_replicas == len(nats_nodes())
    # The server names the consumers of every partition compose runs (deploy/nats/nats-server.conf lists each
    # partition's), each in its own service's identity only.
    rights = {role: identity_block(role.upper()) for role in SERVICES}
    for k in range(int(count)):
        for role, other in (("tracker", "planner"), ("planner", "tracker")):
            for subject in (f"$JS.API.CONSUMER.MSG.NEXT.STEPOUT_IN.{role}-p{k}", f"$JS.ACK.STEPOUT_IN.{role}-p{k}.>"):
                assert f'"{subject}"' in rights[role] and subject not in rights[other], subject


def identity_block(name: str) -> str:
    """The permissions of one identity of deploy/nats/nats-server.conf (`NAME_RIGHTS = { ... }`), comments
    left out."""
    text = NATS_CONFIG.read_text()
    start = text.index(f"\n{name}_RIGHTS = {{\n")
    block = text[start : text.index("\n}\n", start)]
    return "\n".join(line for line in block.splitlines() if not line.lstrip().startswith("#"))


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: Path(p).name)
def test_dashboard_panels_read_the_provisioned_datasource(path: Path) -> None:
    board = json.loads(path.read_text())
    for panel in board["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
