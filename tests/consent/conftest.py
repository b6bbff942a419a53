"""Factories for consent's tests: agreements as YAML text, a dev federation, records."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from consent import DevFederation, build_dev_federation

COUNCILS = ("E08000003", "E08000006", "E08000009")
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def base_agreement() -> dict[str, Any]:
    """A valid authored agreement that each test changes in the one way it cares about."""
    return {
        "id": "test-agreement",
        "title": "Test agreement",
        "purpose": "testing",
        "lawful_basis": {
            "article_6": "6(1)(e) public task",
            "statutory_power": "Local Government Finance Act 1992",
        },
        "controllers": ["E08000003", "E08000006"],
        "recipients": ["E08000009.revenues"],
        "disclose": {"address-change": ["postcode", "uprn"]},
        "match": {
            "event_types": ["address-change", "council-tax-account-closed"],
            "distinct_sources_min": 2,
            "count_min": 2,
            "window": "30d",
        },
        "consent_model": "not-required",
        "valid_from": "2026-01-01",
        "valid_until": "2027-12-31",
        "retention": "90d",
    }


@pytest.fixture
def agreement_yaml() -> Callable[..., str]:
    """``agreement_yaml(**changes)``: YAML text of the base agreement with changes applied.

    A change whose value is None removes that key; nested keys use ``a__b``.
    """

    def make(**changes: Any) -> str:
        doc = base_agreement()
        for key, value in changes.items():
            target, name = doc, key
            if "__" in key:
                outer, name = key.split("__", 1)
                target = doc[outer]
            if value is None:
                target.pop(name, None)
            else:
                target[name] = value
        return yaml.safe_dump(doc, sort_keys=False)

    return make


@pytest.fixture(scope="session")
def federation(tmp_path_factory: pytest.TempPathFactory) -> DevFederation:
    """A small signed federation (three councils), valid around ``T0``."""
    return build_dev_federation(tmp_path_factory.mktemp("federation"), councils=COUNCILS, now=T0)


@pytest.fixture
def federation_factory(tmp_path: Path) -> Callable[..., DevFederation]:
    def make(**kwargs: Any) -> DevFederation:
        kwargs.setdefault("councils", COUNCILS)
        kwargs.setdefault("now", T0)
        return build_dev_federation(tmp_path / f"fed{len(list(tmp_path.iterdir()))}", **kwargs)

    return make
