"""The dependency audit of `make lint`: every pinned version against the committed snapshot of PyPI's
advisories, the ignore file, and PyPI asked live when it answers (tools/stepout_advisories)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from stepout_advisories import Advisory, Entry, Pin, Snapshot, check, read_ignores, read_locks
from stepout_advisories.check import read_ignore_file
from stepout_advisories.cli import main
from stepout_advisories.pypi import PROJECT_URL, RELEASE_URL, Unanswered, entry_of
from stepout_advisories.snapshot import load

FAKE = Advisory("PYSEC-2099-1", aliases=("CVE-2099-0001", "GHSA-xxxx-yyyy-zzzz"), fixed_in=("99.0",))


def pinned(name: str) -> Pin:
    """The version of `name` the committed locks pin."""
    return next(pin for pin in read_locks() if pin.name == name)


def with_advisory(snapshot: Snapshot, pin: Pin, advisory: Advisory) -> Snapshot:
    entries = dict(snapshot.entries)
    entries[pin] = dataclasses.replace(entries[pin], advisories=(advisory,))
    return Snapshot(snapshot.taken, entries)


def test_the_committed_snapshot_has_every_pinned_version_and_the_ignore_file_reads() -> None:
    report = check(read_locks(), load(), read_ignore_file())
    assert report.missing == [], "a pinned version is missing from requirements/advisories.json: run `make advisories`"


def test_an_advisory_against_a_pinned_version_fails_naming_lock_package_version_and_id() -> None:
    jinja2 = pinned("jinja2")
    report = check(read_locks(), with_advisory(load(), jinja2, FAKE), [])
    assert report.failed
    [problem] = report.problems()
    assert problem == (
        f"requirements/runtime.txt, requirements/dev.txt: jinja2=={jinja2.version} is affected by PYSEC-2099-1 "
        "(CVE-2099-0001, GHSA-xxxx-yyyy-zzzz); fixed in 99.0"
    )


@pytest.mark.parametrize("advisory_id", ["PYSEC-2099-1", "CVE-2099-0001"])
def test_the_ignore_file_lets_that_advisory_pass_by_any_of_its_ids(advisory_id: str) -> None:
    ignores = read_ignores(f"# a comment\n{advisory_id} Jinja2  # only sandboxed templates are affected\n")
    report = check(read_locks(), with_advisory(load(), pinned("jinja2"), FAKE), ignores)
    assert not report.failed
    assert report.notes()[0] == f"ignored: {pinned('jinja2')} PYSEC-2099-1 (only sandboxed templates are affected)"


def test_an_ignore_for_another_package_silences_nothing() -> None:
    ignores = read_ignores("PYSEC-2099-1 markupsafe  # wrong package\n")
    report = check(read_locks(), with_advisory(load(), pinned("jinja2"), FAKE), ignores)
    assert [f.pin.name for f in report.affected] == ["jinja2"]


def test_an_ignore_without_a_reason_is_refused() -> None:
    with pytest.raises(ValueError, match=r"advisories.ignore:2: expected `ADVISORY-ID PACKAGE  # why"):
        read_ignores("# header\nPYSEC-2099-1 jinja2\n")


def test_an_ignore_no_pinned_version_needs_fails() -> None:
    report = check(read_locks(), load(), read_ignores("PYSEC-2099-1 jinja2  # fixed long ago\n"))
    assert report.failed
    assert report.problems() == [
        "requirements/advisories.ignore lets PYSEC-2099-1 pass for jinja2, which no pinned version needs "
        "any more: remove the line"
    ]


def test_a_pinned_version_the_snapshot_lacks_fails_and_says_how_to_refresh() -> None:
    snapshot = load()
    pins = {**read_locks(), Pin("jinja2", "0.1"): ("requirements/dev.txt",)}
    report = check(pins, snapshot, [])
    assert report.problems() == [
        f"jinja2==0.1 is pinned but not in the advisories snapshot (taken {snapshot.taken}): run `make advisories`"
    ]


# --- PyPI's answers ---------------------------------------------------------------------------------


def project(version: str, *vulnerabilities: dict[str, Any]) -> dict[str, Any]:
    return {"info": {"version": version}, "vulnerabilities": list(vulnerabilities)}


def vulnerability(id: str, withdrawn: str | None = None) -> dict[str, Any]:
    return {"id": id, "aliases": ["CVE-2099-0002"], "fixed_in": ["2.0"], "link": None, "withdrawn": withdrawn}


def test_the_release_json_is_read_first_and_the_project_json_serves_only_the_latest_release() -> None:
    pin = Pin("demo", "1.0")
    answers: dict[str, dict[str, Any] | None] = {
        RELEASE_URL.format(name="demo", version="1.0"): project("1.0", vulnerability("PYSEC-1")),
        PROJECT_URL.format(name="demo"): project("1.1"),
    }
    assert entry_of(pin, answers.get) == Entry("release", "1.1", (Advisory("PYSEC-1", ("CVE-2099-0002",), ("2.0",)),))
    del answers[RELEASE_URL.format(name="demo", version="1.0")]
    assert entry_of(pin, answers.get) == Entry("none", "1.1")
    answers[PROJECT_URL.format(name="demo")] = project("1.0", vulnerability("PYSEC-2"), vulnerability("PYSEC-3", "x"))
    assert entry_of(pin, answers.get).advisories == (Advisory("PYSEC-2", ("CVE-2099-0002",), ("2.0",)),)


def test_the_snapshot_reads_back_what_it_wrote() -> None:
    snapshot = with_advisory(load(), pinned("jinja2"), FAKE)
    assert Snapshot.from_json(snapshot.to_json()) == snapshot


# --- `python -m stepout_advisories check` -----------------------------------------------------------


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """A lock of one pinned version, a snapshot with a fake advisory for it, and an empty ignore file."""
    lock = tmp_path / "dev.txt"
    lock.write_text("jinja2==3.1.6 \\\n    --hash=sha256:00\n    # via demo\n")
    snapshot = tmp_path / "advisories.json"
    entry = Entry("project", "3.1.6", (FAKE,))
    snapshot.write_text(Snapshot("2026-01-01T00:00:00Z", {Pin("jinja2", "3.1.6"): entry}).to_json())
    ignores = tmp_path / "ignore.txt"
    ignores.write_text("")
    return {"--lock": lock, "--snapshot": snapshot, "--ignores": ignores}


def run(files: dict[str, Path], *command: str, fetch: Any) -> int:
    options = [str(item) for option, path in files.items() for item in (option, path)]
    return main([*options, *command], fetch=fetch)


def closed(url: str) -> dict[str, Any] | None:
    raise Unanswered(f"{url}: Temporary failure in name resolution")


def test_with_the_network_closed_the_snapshot_alone_fails_the_check_and_says_why(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(files, "check", fetch=closed) == 1
    out, err = capsys.readouterr()
    assert f"advisories: {files['--lock']}: jinja2==3.1.6 is affected by PYSEC-2099-1" in err
    assert "PyPI did not answer" in out and "no live check, only the snapshot taken 2026-01-01T00:00:00Z" in out


def test_with_the_network_closed_an_ignored_advisory_passes(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    files["--ignores"].write_text("CVE-2099-0001 jinja2  # demo: the affected API is not used\n")
    assert run(files, "check", fetch=closed) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert "ignored: jinja2==3.1.6 PYSEC-2099-1 (demo: the affected API is not used)" in out
    assert "PyPI did not answer" in out


def test_an_advisory_published_since_the_snapshot_fails_the_live_check(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    files["--ignores"].write_text("PYSEC-2099-1 jinja2  # demo\n")
    answers = {PROJECT_URL.format(name="jinja2"): project("3.1.6", vulnerability("PYSEC-2099-7"))}
    assert run(files, "check", fetch=answers.get) == 1
    out, err = capsys.readouterr()
    assert "published since the snapshot: " in err and "jinja2==3.1.6 is affected by PYSEC-2099-7" in err
    assert "run `make advisories`" in out


def test_refresh_with_the_network_closed_leaves_the_snapshot_as_it_was(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    before = files["--snapshot"].read_text()
    assert run(files, "refresh", fetch=closed) == 1
    assert files["--snapshot"].read_text() == before
    assert "PyPI did not answer" in capsys.readouterr().err


def test_refresh_records_what_pypi_lists_now(files: dict[str, Path]) -> None:
    answers = {PROJECT_URL.format(name="jinja2"): project("3.1.6")}
    assert run(files, "refresh", fetch=answers.get) == 0
    assert load(files["--snapshot"]).entries == {Pin("jinja2", "3.1.6"): Entry("project", "3.1.6")}
