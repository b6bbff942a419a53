"""Reading and encoding both extracts for ``fedbroker link``, on every core when it pays.

Encoding (normalising, keyed hashing, the Bloom encoding) is most of a large
run's time and each batch of rows is independent of the others, so batches go
to worker processes (``workers``, default one per core) once a run has more
than one batch; results come back in file order, so the sightings, refusals
and dropped fields are exactly those of encoding in one process. Workers are
forked, so the linkage keys and mapping are inherited, never sent anywhere;
rows reach them over the pool's pipes (memory, on this machine). At most
``_IN_FLIGHT_PER_WORKER`` batches per worker are read ahead, which bounds
memory whatever the file size.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from itertools import chain, islice
from pathlib import Path

from broker import Sighting
from connectors import SourceError, SourceRow
from fedbroker._errors import CommandError
from fedbroker._link_rows import Compact, Refused, RowEncoder, compact, expand, read_rows

__all__ = ["ENCODE_BATCH", "encode_files"]

#: Rows read and encoded together: one batch Bloom pass each, bounded memory.
ENCODE_BATCH = 4096
_IN_FLIGHT_PER_WORKER = 2

_Batch = tuple[list[Compact | Refused], list[Refused]]
_worker_encoder: RowEncoder | None = None


def _start(encoder: RowEncoder) -> None:
    global _worker_encoder  # noqa: PLW0603 - one encoder per worker process, set once
    _worker_encoder = encoder


def _encode(encoder: RowEncoder | None, side: str, rows: list[SourceRow]) -> _Batch:
    use = encoder or _worker_encoder
    assert use is not None
    dropped: list[Refused] = []
    made = use.sightings(rows, side=side, dropped=dropped)
    return [m if isinstance(m, Refused) else compact(m) for m in made], dropped


def _in_worker(side: str, rows: list[SourceRow]) -> _Batch:
    return _encode(None, side, rows)


def _batches(
    encoder: RowEncoder, files: Iterable[tuple[str, Path]]
) -> Iterator[tuple[str, list[SourceRow]]]:
    for side, path in files:
        try:
            rows = read_rows(path, encoder.columns)
            while batch := list(islice(rows, ENCODE_BATCH)):
                yield side, batch
        except SourceError as exc:
            raise CommandError(f"{side} file {exc}") from exc


def _pooled(
    encoder: RowEncoder, batches: Iterator[tuple[str, list[SourceRow]]], workers: int
) -> Iterator[tuple[int, _Batch]]:
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_start, initargs=(encoder,)
    ) as pool:
        pending: deque[tuple[int, Future[_Batch]]] = deque()
        for side, rows in batches:
            pending.append((len(rows), pool.submit(_in_worker, side, rows)))
            if len(pending) >= workers * _IN_FLIGHT_PER_WORKER:
                size, future = pending.popleft()
                yield size, future.result()
        while pending:
            size, future = pending.popleft()
            yield size, future.result()


def encode_files(
    encoder: RowEncoder,
    files: Iterable[tuple[str, Path]],
    *,
    dropped: list[Refused],
    progress: Callable[[int], None],
    workers: int | None = None,
) -> tuple[list[Sighting], list[Refused]]:
    """Every row's sighting (or refusal) in file order; dropped fields into ``dropped``.

    Args:
        encoder: the mapping and linkage keys.
        files: ``(side, path)`` in order.
        dropped: receives the identifiers rows were linked without.
        progress: called with the number of rows encoded so far.
        workers: processes to encode in (default None: one per core; 1 or a
            run of a single batch encodes in this process).

    Raises:
        CommandError: a file cannot be read or lacks a mapped column.
    """
    count = (os.cpu_count() or 1) if workers is None else workers
    batches = _batches(encoder, files)
    first = list(islice(batches, 2))
    if count <= 1 or len(first) < 2:
        results: Iterator[tuple[int, _Batch]] = (
            (len(rows), _encode(encoder, side, rows)) for side, rows in chain(first, batches)
        )
    else:
        results = _pooled(encoder, chain(first, batches), count)
    sightings: list[Sighting] = []
    refused: list[Refused] = []
    done = 0
    for size, (made, lost) in results:
        for item in made:
            if isinstance(item, Refused):
                refused.append(item)
            else:
                sightings.append(expand(item))
        dropped.extend(lost)
        done += size
        progress(done)
    return sightings, refused
