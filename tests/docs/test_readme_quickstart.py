"""The README's quick start, run as written, so the README cannot drift from the product.

The commands are taken from the README's fenced block marked ``sh quickstart``
and run by ``sh -e`` in an empty folder, with the project's ``fedbroker`` on
the PATH and the shared Kafka named by ``KAFKA_BOOTSTRAP_SERVERS``, as a new
user would after installing.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_BLOCK = re.compile(r"^```sh quickstart\n(.*?)^```", re.MULTILINE | re.DOTALL)


def quickstart() -> str:
    blocks = _BLOCK.findall((REPO / "README.md").read_text(encoding="utf-8"))
    assert len(blocks) == 1, "README.md must have exactly one ```sh quickstart block"
    return str(blocks[0])


def test_the_quickstart_block_is_there_and_uses_the_command():
    commands = [line for line in quickstart().splitlines() if line and not line[0].isspace()]
    assert commands and all(line.startswith("fedbroker ") for line in commands)


@pytest.mark.slow
@pytest.mark.kafka
def test_the_readme_quickstart_runs_as_written(kafka_bootstrap, tmp_path):
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "FEDBROKER_HOME": str(tmp_path / ".fedbroker"),
        "PYTHONPATH": str(REPO),
    }
    result = subprocess.run(
        ["sh", "-e", "-c", quickstart()],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    # What each step promises, from its files and its words.
    assert (tmp_path / "quickstart" / "pairs.csv").read_text().startswith("left_ref,right_ref")
    assert (tmp_path / "quickstart" / "review.csv").exists()
    assert (tmp_path / "quickstart" / "federation" / "directory.signed").exists()
    assert "fitted by EM" in result.stdout
