"""Building steps in worker processes, so that a connector uses every core it has.

Building a record (normalising, keyed hashing, Bloom encoding, sealing,
signing, Avro) is CPU-bound Python: in one interpreter it runs on one core at
a time, however many the machine has, and the producer's thread waits for the
same interpreter lock. Workers are forked from the connector for one reading
pass, so they inherit its keys, directory and mappings in memory: no secret is
serialised or sent anywhere. Only the rows go to a worker, over a local pipe,
and only the encoded records, refusals and reason codes come back; the
connector records them in row order in its own outbox, metrics and logs
(``connectors._build``). Several steps are in flight at once, so the workers
build ahead while the connector commits and sends what is done. Of the
descriptors a fork copies, a worker keeps only its pipes and standard streams:
no Kafka socket, no outbox file (``_drop_inherited_descriptors``).

A worker that dies (killed, out of memory, a crash in native code) or stays
silent past a deadline (then it is killed) costs no row: the steps it and its
pool held are built again by fresh workers, the failed step one row at a
time, so that a row which fails every worker it meets is found and refused
alone (``row``/``worker-died`` or ``row``/``worker-stuck``) instead of
stopping the connector at that row for ever. Nothing of those steps had been
committed. Workers end with their connector (``PR_SET_PDEATHSIG``), even when
it is killed with SIGKILL.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import stat
import sys
from collections import deque
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType

from connectors._build import ROW_ATTEMPTS, Refused, RowOutcome, StepBuilder, StepOutcome
from connectors._errors import BuildFailed
from connectors._mapping import SourceMapping
from connectors._sources import SourceRow

__all__ = ["ROW_DEADLINE_S", "STEP_DEADLINE_S", "SYSTEMIC_FAILURES", "BuildPool"]

_PR_SET_PDEATHSIG = 1
#: A step of 1,000 rows builds in well under a second. A worker silent for this
#: long is stuck (a lock inherited through fork, a value that makes some code
#: loop) and is killed: one step must not wedge the connector.
STEP_DEADLINE_S = 300.0
#: The same for one row built alone, while a failed step is searched for its culprit.
ROW_DEADLINE_S = 30.0
#: Before any row has built (no canary), this many failing rows in a row are
#: taken for a fault of the host, not of the rows.
SYSTEMIC_FAILURES = 3

# Set in each worker when it starts (inherited through fork, never pickled).
_builder: StepBuilder | None = None
_mappings: Mapping[str, SourceMapping] = {}


def _start_worker(
    builder: StepBuilder, mappings: Mapping[str, SourceMapping], connector_pid: int
) -> None:
    global _builder, _mappings  # noqa: PLW0603 - a worker process's one piece of state
    _builder, _mappings = builder, mappings
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != connector_pid:  # it died before the line above took effect
        os._exit(1)
    _drop_inherited_descriptors()
    # Ctrl-C and a service manager's stop reach the whole process group: the
    # connector decides when to stop, and its workers end with it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _drop_inherited_descriptors() -> None:
    """Puts /dev/null in place of every socket and regular file the fork inherited.

    A fork copies every descriptor: the producer's connections to Kafka (held
    open in the worker after the connector closed them), the metrics listener,
    and the outbox's database, WAL and shared-memory files (SQLite must not be
    used across a fork, and a worker held the outbox open past its connector).
    A worker needs none: its rows come and its results go over the pool's pipes,
    which are FIFOs and are kept, as are stdin, stdout and stderr. The numbers
    stay taken (by /dev/null) rather than closed: an object the fork copied that
    still believes it owns a number must not reach whatever would open it next.

    Forking from a process that never held them (``spawn``, ``forkserver``)
    would cost each worker an import of the connector (~3.5 s measured on the
    shared machine, ``bench/RESULTS.md``) and pickling its keys to the worker;
    this costs a listing of ``/proc/self/fd`` and a ``dup2`` per descriptor.
    """
    null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
    try:
        listing = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"
        for name in os.listdir(listing):
            descriptor = int(name)
            if descriptor <= 2 or descriptor == null:
                continue
            try:
                mode = os.fstat(descriptor).st_mode
            except OSError:  # the listing's own descriptor, closed since
                continue
            if stat.S_ISSOCK(mode) or stat.S_ISREG(mode):
                os.dup2(null, descriptor, inheritable=False)
    finally:
        os.close(null)


def _build_step(source: str, rows: Sequence[SourceRow], now: datetime) -> StepOutcome:
    assert _builder is not None, "not a build worker"
    return _builder.build(rows, _mappings[source], now)


@dataclass(frozen=True, slots=True)
class _Step:
    """A step handed to the pool: its rows, its time, and the future of its outcome."""

    rows: list[SourceRow]
    now: datetime
    future: Future[StepOutcome]


class BuildPool:
    """``workers`` forked processes building steps; results come back in submission order."""

    def __init__(
        self,
        builder: StepBuilder,
        mappings: Mapping[str, SourceMapping],
        workers: int,
        *,
        on_worker_failure: Callable[[str], None] = lambda failure: None,
    ) -> None:
        self._builder = builder
        self._mappings = mappings
        self._workers = workers
        self._on_worker_failure = on_worker_failure
        self._executor: ProcessPoolExecutor | None = None
        # A row that built: while it still builds, a row that fails is at fault itself.
        self._canary: tuple[str, SourceRow, datetime] | None = None

    def build(
        self,
        source: str,
        steps: Iterable[Sequence[SourceRow]],
        clock: Callable[[], datetime],
    ) -> Generator[StepOutcome, None, None]:
        """Each step's outcome in order, up to two steps per worker built ahead.

        Each step is built at the time ``clock`` gives when it is handed over
        (its records' ``published_at``), as if built in place.
        """
        in_flight: deque[_Step] = deque()
        try:
            for taken in steps:
                rows, now = list(taken), clock()
                in_flight.append(_Step(rows, now, self._submit(source, rows, now)))
                if len(in_flight) >= 2 * self._workers:
                    yield self._outcome(source, in_flight)
            while in_flight:
                yield self._outcome(source, in_flight)
        finally:
            for step in in_flight:  # the caller stopped early: build nothing more
                step.future.cancel()

    def _outcome(self, source: str, in_flight: deque[_Step]) -> StepOutcome:
        """The first step's outcome; if its worker failed, the step is rebuilt row by row.

        Every step in flight was lost with the pool, so the later ones are submitted again.
        """
        step = in_flight.popleft()
        outcome = self._wait(step.future, STEP_DEADLINE_S)
        if isinstance(outcome, StepOutcome):
            if step.rows:
                self._canary = (source, step.rows[0], step.now)
            return outcome
        outcome = self._isolate(source, step.rows, step.now)
        for index, later in enumerate(in_flight):
            in_flight[index] = _Step(
                later.rows, later.now, self._submit(source, later.rows, later.now)
            )
        return outcome

    def _isolate(self, source: str, rows: list[SourceRow], now: datetime) -> StepOutcome:
        """Each row built alone: one that fails its worker every time is refused, alone.

        A worker killed from outside (the operator, the out-of-memory killer
        choosing it for its size) costs a rebuild, not a row: a row is refused
        only when it fails a fresh worker ``ROW_ATTEMPTS`` times, as
        ``row``/``worker-died`` or ``row``/``worker-stuck``, and a row that
        built before still builds (the canary). When it does not, the host is
        at fault (out of memory, say), not the row: refusing rows would drop
        good records, so the step is left uncommitted for a later pass. Before
        any row has built, ``SYSTEMIC_FAILURES`` failing rows in a row decide it.

        Raises:
            BuildFailed: rows fail their workers, and so does a row that built before.
        """
        outcomes: list[RowOutcome] = []
        failing = 0  # rows in a row that failed, with no canary to tell why
        for row in rows:
            failure = ""
            for _ in range(ROW_ATTEMPTS):
                outcome = self._wait(self._submit(source, [row], now), ROW_DEADLINE_S)
                if isinstance(outcome, StepOutcome):
                    outcomes.extend(outcome.rows)
                    self._canary, failing = (source, row, now), 0
                    break
                failure = outcome
            else:
                failing += 1
                if not self._canary_builds(failing):
                    raise BuildFailed(
                        f"build workers fail ({failure}) on rows that built before: "
                        "the host, not the data; the step is left for the next pass"
                    )
                outcomes.append(RowOutcome(Refused("row", failure)))
        return StepOutcome(tuple(outcomes))

    def _canary_builds(self, failing: int) -> bool:
        """Whether workers still build a row that built before (the pool is sound)."""
        if self._canary is None:
            return failing < SYSTEMIC_FAILURES
        source, row, now = self._canary
        return isinstance(self._wait(self._submit(source, [row], now), ROW_DEADLINE_S), StepOutcome)

    def _wait(self, future: Future[StepOutcome], deadline_s: float) -> StepOutcome | str:
        """The outcome, or why there is none: ``worker-died``, ``worker-stuck``
        when it took longer than ``deadline_s``, or ``unexpected-<type>`` for an
        exception the step sent back (its pool is then killed). That exception is
        never raised here: its text and traceback may hold the rows' values."""
        try:
            return future.result(timeout=deadline_s)
        except BrokenProcessPool:
            failure = "worker-died"
        except TimeoutError:
            failure = "worker-stuck"
        except Exception as exc:  # noqa: BLE001 - one row's trouble must not fail the pass
            failure = f"unexpected-{type(exc).__name__}"
        self._discard(kill=True)
        self._on_worker_failure(failure)
        return failure

    def _submit(self, source: str, rows: list[SourceRow], now: datetime) -> Future[StepOutcome]:
        if not rows:  # an empty file's one step: nothing to fork a worker for
            done: Future[StepOutcome] = Future()
            done.set_result(StepOutcome(()))
            return done
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=self._workers,
                mp_context=multiprocessing.get_context("fork"),
                initializer=_start_worker,
                initargs=(self._builder, self._mappings, os.getpid()),
            )
        try:
            return self._executor.submit(_build_step, source, rows, now)
        except BrokenProcessPool as exc:  # a worker died idle, after its last step
            broken: Future[StepOutcome] = Future()
            broken.set_exception(exc)  # ``_wait`` replaces the pool and builds again
            return broken

    def _discard(self, *, kill: bool) -> None:
        """Shut the pool down (its workers killed first, if asked); the next submission
        forks a fresh one."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        if kill:
            for process in list(executor._processes.values()):  # noqa: SLF001 - no public way before 3.14
                process.kill()
            # A worker killed halfway through sending a result leaves the pool's
            # reader waiting for the rest for ever (this process holds the pipe's
            # other end too): closed, the reader meets the end once they are gone.
            writer = getattr(executor._result_queue, "_writer", None)  # noqa: SLF001
            if writer is not None:
                writer.close()
        executor.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        self._discard(kill=False)

    def __enter__(self) -> BuildPool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()  # every step was waited for: the workers are idle
        else:  # steps may still be building, one perhaps for ever: nobody will use them
            self._discard(kill=True)
