"""docs/security.md names, for each guarantee, the test that shows it; those tests exist."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NAMED = re.compile(r"`([a-z_]+/test_[a-z0-9_]+\.py)::(test_[a-z0-9_]+)`")


def test_every_test_the_security_page_names_exists():
    text = (REPO / "docs" / "security.md").read_text()
    named = NAMED.findall(text)
    assert len(named) > 30, "the page should name the tests behind its guarantees"
    missing = [
        f"{path}::{name}"
        for path, name in named
        if not re.search(
            rf"^(async )?def {name}\(", (REPO / "tests" / path).read_text(), flags=re.M
        )
    ]
    assert not missing, f"docs/security.md names tests that do not exist: {missing}"
    assert "TODO" not in text
