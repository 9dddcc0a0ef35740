#!/usr/bin/env bash
# Checks the deployment files without a container engine: the compose file, the Prometheus
# configuration, the alert rules and their unit tests, the Grafana dashboard.
# Needs docker-compose and promtool (deploy/scripts/install-ops-tools.sh) and python3.
# Runs every check, prints each failure, exits 1 if any failed.
set -uo pipefail
cd "$(dirname "$0")/../.."

failed=()

check() {
    local name="$1"
    shift
    echo "== $name"
    if ! "$@"; then
        echo "!! FAILED: $name" >&2
        failed+=("$name")
    fi
}

need() {
    command -v "$1" >/dev/null 2>&1 || {
        echo "check-deploy: $1 not found; run deploy/scripts/install-ops-tools.sh" >&2
        exit 1
    }
}
need docker-compose
need promtool
need python3

compose_config() {
    # The passwords are required at `up`; stand-ins let the file itself be checked anywhere.
    STEPOUT_NATSD_PLATFORM_PASSWORD="${STEPOUT_NATSD_PLATFORM_PASSWORD:-check}" \
    STEPOUT_NATSD_PLANNER_PASSWORD="${STEPOUT_NATSD_PLANNER_PASSWORD:-check}" \
    STEPOUT_NATSD_TRACKER_PASSWORD="${STEPOUT_NATSD_TRACKER_PASSWORD:-check}" \
    STEPOUT_NATSD_AUDITOR_PASSWORD="${STEPOUT_NATSD_AUDITOR_PASSWORD:-check}" \
    STEPOUT_NATSD_CONSOLE_PASSWORD="${STEPOUT_NATSD_CONSOLE_PASSWORD:-check}" \
    STEPOUT_NATSD_ADMIN_PASSWORD="${STEPOUT_NATSD_ADMIN_PASSWORD:-check}" \
    STEPOUT_NATSD_ROUTE_PASSWORD="${STEPOUT_NATSD_ROUTE_PASSWORD:-check}" \
    STEPOUT_NATSD_JETSTREAM_KEY="${STEPOUT_NATSD_JETSTREAM_KEY:-\"check\"}" \
    STEPOUT_CIPHER_KEY="${STEPOUT_CIPHER_KEY:-Y2hlY2stY2hlY2stY2hlY2stY2hlY2stY2hlY2s0MjA=}" \
    POSTGRES_PASSWORD="${POSTGRES_PASSWORD:-check}" \
    KEYSTORE_PASSWORD="${KEYSTORE_PASSWORD:-check}" \
    STEPOUT_API_TOKENS="${STEPOUT_API_TOKENS:-platform:check-token-0123456789}" \
    STEPOUT_CONSOLE_USERS_FILE="${STEPOUT_CONSOLE_USERS_FILE:-/dev/null}" \
    STEPOUT_CONSOLE_SECRET="${STEPOUT_CONSOLE_SECRET:-check-secret-0123456789-0123456789}" \
    GRAFANA_ADMIN_PASSWORD="${GRAFANA_ADMIN_PASSWORD:-check}" \
        docker-compose --file docker-compose.yml config -q
}

# docker-compose does not look at bind-mount sources; a missing one only shows at `up`.
compose_mounts_exist() {
    local ok=0 source
    while read -r source; do
        if [ ! -e "$source" ]; then
            echo "docker-compose.yml mounts $source, which does not exist" >&2
            ok=1
        fi
    done < <(grep -oE '^[[:space:]]*- \./[^:]+' docker-compose.yml | sed -E 's/^[[:space:]]*- //')
    return "$ok"
}

dashboards_valid() {
    python3 - deploy/grafana/dashboards/*.json <<'PY'
import json
import sys

bad = []
for path in sys.argv[1:]:
    try:
        with open(path, encoding="utf-8") as f:
            board = json.load(f)
    except ValueError as exc:
        bad.append(f"{path}: not JSON: {exc}")
        continue
    for key in ("uid", "title", "panels", "schemaVersion"):
        if key not in board:
            bad.append(f"{path}: no {key!r}")
    ids = [panel.get("id") for panel in board.get("panels", [])]
    if len(ids) != len(set(ids)):
        bad.append(f"{path}: panel ids repeat")
    for panel in board.get("panels", []):
        if panel.get("type") == "row":
            continue
        title = panel.get("title", "?")
        targets = panel.get("targets") or []
        if not targets or not all(str(t.get("expr", "")).strip() for t in targets):
            bad.append(f"{path}: panel {title!r} has a target without an expression")
        if "gridPos" not in panel:
            bad.append(f"{path}: panel {title!r} has no gridPos")
    print(f"{path}: {len(board.get('panels', []))} panels")
for line in bad:
    print(line, file=sys.stderr)
sys.exit(1 if bad else 0)
PY
}

check "docker-compose config" compose_config
check "docker-compose bind mounts exist" compose_mounts_exist
check "promtool check config (compose)" promtool check config deploy/prometheus/prometheus.yml
check "promtool check config (local)" promtool check config deploy/prometheus/prometheus.local.yml
check "promtool check rules" promtool check rules deploy/prometheus/alerts.yml
check "promtool test rules" promtool test rules deploy/prometheus/alerts_test.yml
check "grafana dashboards" dashboards_valid

if [ "${#failed[@]}" -ne 0 ]; then
    echo "check-deploy: ${#failed[@]} check(s) FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "check-deploy: all checks passed"
