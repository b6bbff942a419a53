"""Standing checks over every package: exports, the exception root, module size."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path
from types import ModuleType

import pytest

from schemas import FedbrokerError

PACKAGES = ("schemas", "consent", "connectors", "broker", "subscriber", "fedbroker")
REPO = Path(__file__).resolve().parent.parent


def _modules(package: str) -> list[ModuleType]:
    root = importlib.import_module(package)
    found = [root]
    for info in pkgutil.walk_packages(root.__path__, prefix=f"{package}."):
        if info.name.endswith("__main__"):
            continue
        found.append(importlib.import_module(info.name))
    return found


def _isort_key(name: str) -> tuple[int, str]:
    """Constants, then classes, then functions: the order ruff's RUF022 keeps."""
    kind = 0 if name.isupper() else 1 if name[:1].isupper() else 2
    return kind, name


@pytest.mark.parametrize("package", PACKAGES)
def test_package_root_exports_exist_and_are_sorted(package: str):
    module = importlib.import_module(package)
    exported = list(getattr(module, "__all__", []))
    assert exported == sorted(exported, key=_isort_key), f"{package}.__all__ is not sorted"
    missing = [name for name in exported if not hasattr(module, name)]
    assert not missing, f"{package}.__all__ names missing attributes: {missing}"
    assert module.__doc__, f"{package}/__init__.py must say what the package is for"


@pytest.mark.parametrize("package", PACKAGES)
def test_every_exception_derives_from_the_root(package: str):
    strays = []
    for module in _modules(package):
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == module.__name__
                and not issubclass(value, FedbrokerError)
            ):
                strays.append(f"{module.__name__}.{name}")
    assert not strays, f"exceptions outside the FedbrokerError tree: {strays}"


@pytest.mark.parametrize("package", PACKAGES)
def test_every_error_has_a_reason_code(package: str):
    for module in _modules(package):
        for value in vars(module).values():
            if inspect.isclass(value) and issubclass(value, FedbrokerError):
                assert isinstance(value.reason, str) and value.reason, value
