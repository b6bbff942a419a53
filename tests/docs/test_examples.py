"""The YAML examples in the guides are accepted by the loaders they illustrate.

A guide whose example the product refuses teaches the reader a mistake; these
run each example through the real loader.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from connectors import parse_mapping
from consent import parse_agreement

REPO = Path(__file__).resolve().parents[2]
_YAML = re.compile(r"^```yaml\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _blocks(page: str) -> list[str]:
    return [str(b) for b in _YAML.findall((REPO / "docs" / page).read_text(encoding="utf-8"))]


@pytest.mark.parametrize("block", _blocks("concepts/mapping.md"))
def test_mapping_examples_are_valid_mappings(block):
    mapping = parse_mapping(yaml.safe_load(block))
    assert mapping.identity and mapping.reference


def test_the_agreement_guide_explains_the_agreements_that_ship():
    guide = (REPO / "docs" / "guides" / "agreements.md").read_text(encoding="utf-8")
    shipped = sorted((REPO / "consent" / "agreements").glob("*.yaml"))
    assert len(shipped) == 3
    for path in shipped:
        assert f"### `{path.name}`" in guide, f"{path.name} is not explained in the guide"
        agreement = parse_agreement(path.read_text(encoding="utf-8"), source=path.name)
        assert agreement.agreement_id == path.stem
