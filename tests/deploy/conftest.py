"""Fixtures for the deployment tests: the generated dashboard, and the connector factories
(re-used, so a scraped connector is set up exactly as the connector tests set one up)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.connectors.conftest import (  # noqa: F401 - fixtures re-used by name
    council_factory,
    federation,
    linkage_keys,
    synthetic,
)

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


def load_script(path: Path) -> ModuleType:
    """Import a script under deploy/ (not a package) by its path."""
    spec = importlib.util.spec_from_file_location(f"_deploy_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def dashboard() -> ModuleType:
    return load_script(DEPLOY / "grafana" / "dashboard.py")
