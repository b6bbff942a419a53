"""The build pool under the trouble a running connector meets outside a step.

A worker that dies while idle, a connector that fails mid-pass while a worker
is stuck, a builder that must never cross the pipe: each costs a rebuild at
most, never the pass, a wedged connector or a secret on the wire.
"""

from __future__ import annotations

import os
import signal
import struct
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import pytest

from connectors import _build_pool as build_pool
from connectors._build import Refused, RowOutcome, StepOutcome
from connectors._build_pool import BuildPool
from tests.connectors.processes import alive, children, until

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class _Echo:
    """Each row refused under its own value as the code, so the order is visible."""

    def build(self, rows: Sequence[Any], mapping: object, now: datetime) -> StepOutcome:
        return StepOutcome(tuple(RowOutcome(Refused("row", str(r))) for r in rows))


def _codes(outcomes: list[StepOutcome]) -> list[list[str]]:
    return [[o.result.code for o in step.rows] for step in outcomes]  # type: ignore[union-attr]


def test_a_worker_killed_while_idle_costs_a_rebuild_not_the_pass():
    """The out-of-memory killer or an operator may pick a worker between two steps:
    the next submission then meets a broken pool, which must not fail the pass."""
    deaths: list[str] = []
    steps = [[i] for i in range(8)]
    with BuildPool(_Echo(), {"s": None}, 1, on_worker_failure=deaths.append) as pool:
        outcomes = pool.build("s", steps, lambda: NOW)
        first = next(outcomes)
        executor = pool._executor
        assert executor is not None
        for pid in list(executor._processes):
            os.kill(pid, signal.SIGKILL)
        until(lambda: executor._broken, "the pool never noticed its dead worker")
        rest = list(outcomes)
    assert _codes([first, *rest]) == [[str(i)] for i in range(8)]
    assert deaths == ["worker-died"]


class _StuckOnOne(_Echo):
    def build(self, rows: Sequence[Any], mapping: object, now: datetime) -> StepOutcome:
        if 1 in rows:
            threading.Event().wait()  # for ever
        return super().build(rows, mapping, now)


def test_a_pass_that_fails_while_a_worker_is_stuck_ends_and_leaves_no_worker():
    """The outbox fails (disk full) or ``after_step`` raises while a step in flight
    hangs its worker: the connector must fail promptly, not wait on that worker."""
    before = children()
    failed: list[BaseException] = []

    def one_pass() -> None:
        try:
            with BuildPool(_StuckOnOne(), {"s": None}, 2) as pool:
                for _ in pool.build("s", [[0], [1], [2], [3]], lambda: NOW):
                    raise OSError("database or disk is full")
        except OSError as exc:
            failed.append(exc)

    passing = threading.Thread(target=one_pass, daemon=True)
    passing.start()
    passing.join(timeout=30)
    leftover = children() - before
    for pid in leftover:  # do not leave a stuck worker to the rest of the session
        os.kill(pid, signal.SIGKILL)
    assert not passing.is_alive(), "the failed pass waited for a stuck worker"
    assert len(failed) == 1
    assert leftover == set() or not any(alive(p) for p in leftover)


class _Unpicklable(_Echo):
    """A builder holding keys: pickling it would put them on the pipe."""

    def __reduce__(self) -> NoReturn:
        raise AssertionError("the builder was pickled")


class _UnpicklableMapping:
    def __reduce__(self) -> NoReturn:
        raise AssertionError("a mapping was pickled")


@pytest.mark.parametrize("workers", [1, 3])
def test_the_builder_and_mappings_reach_the_workers_without_pickling(workers):
    deaths: list[str] = []
    mappings = {"s": _UnpicklableMapping()}
    with BuildPool(_Unpicklable(), mappings, workers, on_worker_failure=deaths.append) as pool:
        outcomes = list(pool.build("s", [[i, i + 1] for i in range(0, 10, 2)], lambda: NOW))
    assert _codes(outcomes) == [[str(i), str(i + 1)] for i in range(0, 10, 2)]
    assert deaths == []


class _DiesHalfwaySending(_Echo):
    """The worker building row 1 is killed after writing part of a result."""

    pool: BuildPool | None = None
    armed: Path | None = None

    def build(self, rows: Sequence[Any], mapping: object, now: datetime) -> StepOutcome:
        armed = _DiesHalfwaySending.armed
        if 1 in rows and armed is not None:
            try:
                armed.rename(armed.with_suffix(".fired"))
            except FileNotFoundError:
                pass
            else:
                assert self.pool is not None and self.pool._executor is not None
                results = self.pool._executor._result_queue._writer  # type: ignore[attr-defined]
                os.write(results.fileno(), struct.pack("!i", 1_000_000) + b"the first bytes")
                os.kill(os.getpid(), signal.SIGKILL)
        return super().build(rows, mapping, now)


def test_a_worker_killed_while_sending_its_result_costs_a_rebuild(tmp_path, monkeypatch):
    """The pool's reader then waits for the rest of a message that never comes; the
    step's deadline must end that wait, not leave the connector waiting on the reader."""
    monkeypatch.setattr(build_pool, "STEP_DEADLINE_S", 2.0)
    monkeypatch.setattr(build_pool, "ROW_DEADLINE_S", 2.0)
    armed = tmp_path / "armed"
    armed.touch()
    monkeypatch.setattr(_DiesHalfwaySending, "armed", armed)
    before = children()
    built: list[list[StepOutcome]] = []
    deaths: list[str] = []

    def one_pass() -> None:
        with BuildPool(
            _DiesHalfwaySending(), {"s": None}, 1, on_worker_failure=deaths.append
        ) as pool:
            _DiesHalfwaySending.pool = pool
            built.append(list(pool.build("s", [[0], [1], [2]], lambda: NOW)))

    passing = threading.Thread(target=one_pass, daemon=True)
    passing.start()
    passing.join(timeout=60)
    leftover = children() - before
    for pid in leftover:
        os.kill(pid, signal.SIGKILL)
    assert armed.with_suffix(".fired").exists(), "a worker died halfway"
    assert not passing.is_alive(), "the pass waited for ever on a half-sent result"
    assert [_codes(b) for b in built] == [[["0"], ["1"], ["2"]]]
    assert deaths == ["worker-stuck"]


class _RaisesOnOne(_Echo):
    """Memory runs out again in the row's own error handling: the exception leaves
    the builder, and the worker sends it, with its traceback text, to the connector."""

    def build(self, rows: Sequence[Any], mapping: object, now: datetime) -> StepOutcome:
        if 1 in rows:
            raise MemoryError("a row's values, in clear")
        return super().build(rows, mapping, now)


def test_an_exception_a_row_sends_back_from_its_worker_costs_that_row_only():
    """Raised in the connector, it failed the pass, and the next pass met the same row."""
    failures: list[str] = []
    with BuildPool(_RaisesOnOne(), {"s": None}, 2, on_worker_failure=failures.append) as pool:
        outcomes = list(pool.build("s", [[0], [1, 2], [3]], lambda: NOW))
    assert _codes(outcomes) == [["0"], ["unexpected-MemoryError", "2"], ["3"]]
    assert set(failures) == {"unexpected-MemoryError"}
