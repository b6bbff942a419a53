"""The README's quick start, run as written, so the README cannot drift from the product.

The commands are taken from the README's fenced block marked ``sh quickstart``
and run by ``sh -e`` in an empty folder, with the project's ``fedbroker`` on
the PATH and the shared Kafka named by ``KAFKA_BOOTSTRAP_SERVERS``, as a new
user would after installing. Its last line, ``fedbroker demo``, is run the same
way once per session (``tests/demo_run.py``) and shared with the tests that
read a whole demo; here it must have succeeded as the user would see it.
"""

from __future__ import annotations

import subprocess

import pytest

from tests.demo_run import DEMO_TIMEOUT_S, quickstart, split_quickstart, user_env


def test_the_quickstart_block_is_there_and_uses_the_command():
    commands = [line for line in quickstart().splitlines() if line and not line[0].isspace()]
    assert commands and all(line.startswith("fedbroker ") for line in commands)


@pytest.mark.slow
@pytest.mark.kafka
def test_the_readme_quickstart_runs_as_written(kafka_bootstrap, tmp_path):
    steps, _ = split_quickstart()
    result = subprocess.run(
        ["sh", "-e", "-c", steps],
        cwd=tmp_path,
        env=user_env(kafka_bootstrap, tmp_path / ".fedbroker"),
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


@pytest.mark.slow
@pytest.mark.kafka
@pytest.mark.timeout(DEMO_TIMEOUT_S + 60)
def test_the_readme_demo_line_runs_as_written(quickstart_demo):
    _, line = split_quickstart()
    assert quickstart_demo.command == line
    assert quickstart_demo.returncode == 0, quickstart_demo.output[-4000:]
    assert "demo OK: every check held" in quickstart_demo.stdout
