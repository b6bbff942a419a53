"""One live demo serves every test that reads a whole demo's summary.

A demo on the 2-core CI machine takes minutes, and four tests each ran their
own (the live headless test, the broker's end-to-end test, the README quick
start, the installed wheel), asking nothing of it that one run cannot show. So
the session runs the README quick start's own ``fedbroker demo`` line once, as
a user would (``sh -e`` in an empty folder, ``fedbroker`` on the PATH, the
shared Kafka named by ``KAFKA_BOOTSTRAP_SERVERS``, output not a terminal), and
each test holds that run to its own claims. Runs that must end differently (a
broker killed, a signal) still start their own.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
_BLOCK = re.compile(r"^```sh quickstart\n(.*?)^```", re.MULTILINE | re.DOTALL)
_DEMO = "fedbroker demo "
#: Wall-clock bound of the shared run (set-up, feed, settle, checks) on a loaded machine.
DEMO_TIMEOUT_S = 840


def quickstart() -> str:
    """The README's fenced ``sh quickstart`` block, as written."""
    blocks = _BLOCK.findall((REPO / "README.md").read_text(encoding="utf-8"))
    assert len(blocks) == 1, "README.md must have exactly one ```sh quickstart block"
    return str(blocks[0])


def split_quickstart() -> tuple[str, str]:
    """(the block without its demo line, the demo line): the line runs once per session."""
    lines = quickstart().splitlines(keepends=True)
    demos = [line for line in lines if line.startswith(_DEMO)]
    assert len(demos) == 1, "the quick start must end in one 'fedbroker demo' line"
    assert not demos[0].rstrip().endswith("\\"), "the demo line must stand on its own"
    return "".join(line for line in lines if line is not demos[0]), demos[0].strip()


def user_env(bootstrap: str, home: Path) -> dict[str, str]:
    """A new user's shell after installing: ``fedbroker`` on the PATH, this tree importable."""
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "FEDBROKER_HOME": str(home),
        "PYTHONPATH": str(REPO),
    }


@dataclass(frozen=True, slots=True)
class DemoRun:
    """What one finished ``fedbroker demo`` left: its command, exit code, words and files."""

    command: str
    returncode: int
    stdout: str
    stderr: str
    home: Path

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_quickstart_demo(bootstrap: str, root: Path) -> DemoRun:
    """Run the README's demo line in an empty folder under ``root``; home is ``root/home``."""
    _, command = split_quickstart()
    cwd, home = root / "cwd", root / "home"
    cwd.mkdir(parents=True)
    result = subprocess.run(
        ["sh", "-e", "-c", command], cwd=cwd, env=user_env(bootstrap, home), capture_output=True,
        text=True, check=False, timeout=DEMO_TIMEOUT_S, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    return DemoRun(command, result.returncode, result.stdout, result.stderr, home)


def shared_quickstart_demo(bootstrap: str, shared: Path) -> DemoRun:
    """The quick start's demo, run once in ``shared`` for every pytest-xdist worker.

    The first worker to ask runs it under an exclusive lock and leaves its
    result beside it; the others wait on the lock and read that result, so one
    demo serves the whole session wherever its tests were scheduled.
    """
    lock, result = shared / "quickstart-demo.lock", shared / "quickstart-demo.json"
    with lock.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
        if result.exists():
            saved = json.loads(result.read_text(encoding="utf-8"))
            return DemoRun(**{**saved, "home": Path(saved["home"])})
        run = run_quickstart_demo(bootstrap, shared / "quickstart-demo")
        result.write_text(json.dumps({**asdict(run), "home": str(run.home)}), encoding="utf-8")
        return run
