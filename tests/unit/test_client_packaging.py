"""stepout-client ships as wheels of its own: the contract beside it, importing no other stepout
package, both versioned with the contract, and the client reading the consumer the operator declares."""

from __future__ import annotations

import ast
import tomllib

from stepout_client.client import PLATFORM_CONSUMER, platform_deliveries
from stepout_contract.subjects import Subjects
from stepout_runtime.topology import platform_consumer_config
from support import ROOT

SHARED = ROOT / "shared"


def stepout_imports(package: str) -> set[str]:
    """The top-level stepout packages that `package`'s modules import, itself left out."""
    found: set[str] = set()
    for path in (SHARED / package).glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            found |= {name.split(".")[0] for name in names if name.startswith("stepout")}
    return found - {package}


def test_the_contract_imports_no_other_stepout_package() -> None:
    assert stepout_imports("stepout_contract") == set()


def test_the_client_imports_only_the_contract() -> None:
    assert stepout_imports("stepout_client") == {"stepout_contract"}


def test_client_and_contract_wheels_carry_the_contracts_version() -> None:
    contract = tomllib.loads((SHARED / "stepout_contract" / "pyproject.toml").read_text())["project"]
    client = tomllib.loads((SHARED / "stepout_client" / "pyproject.toml").read_text())["project"]
    assert contract["version"] == client["version"] and contract["version"].startswith("1.")
    assert f"stepout-contract=={contract['version']}" in client["dependencies"]
    assert not any(dependency.startswith("stepout") for dependency in contract["dependencies"])


def test_the_client_reads_the_consumer_the_operator_declares_for_the_platform() -> None:
    subjects = Subjects("acme")
    declared = platform_consumer_config(subjects, 30.0)
    assert declared.durable_name == PLATFORM_CONSUMER == declared.deliver_group
    assert declared.deliver_subject == platform_deliveries(subjects)
