"""The batch dry run of linkage on two extracts (DESIGN section 5), as a library.

How a council checks match quality on its own extracts before going live: the
connector's reading, normalisation and encodings turn each row into tokens
(``_link_rows``, in batches), and the broker's matching (``broker.run_batch``,
the streaming ``observe`` applied in order; ``_link_match`` gives its result
for a whole extract, held equal to it by test) finds the pairs, at a threshold
fitted without labels (or ``--threshold``). With the councils' linkage keys the
tokens are the ones on the wire, so ``link`` finds the pairs the live broker
would. ``write_pairs`` writes ``left_ref,right_ref,score,method``;
``write_review`` the borderline pairs and unmatched records for clerical review,
as Splink and FEBRL users expect. ``fedbroker link`` is a thin command over it.

It is a public module of the composition layer, not of ``broker`` or
``connectors``, because it needs both sides (DESIGN section 9); importing it
loads neither Faust nor Kafka clients.

This module only composes the two sides (DESIGN section 9): mapping, normalisers
and encoder belong to ``connectors``, matching and the threshold to ``broker``.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from broker import (
    FUZZY,
    Match,
    MatchMethod,
    ThresholdFit,
    choose_threshold,
    fit_threshold,
)
from connectors import (
    LinkageKey,
    MappingInvalid,
    SourceMapping,
    generate_linkage_key,
    load_mapping,
)
from fedbroker._errors import CommandError
from fedbroker._link_encode import ENCODE_BATCH, encode_files
from fedbroker._link_match import match_all
from fedbroker._link_rows import Refused, RowEncoder, read_rows
from fedbroker._link_stats import BlockingRecall, blocking_recall, read_truth, score_histogram

__all__ = [
    "DEFAULT_REVIEW_MARGIN",
    "ENCODE_BATCH",
    "FORMULA_PREFIXES",
    "PAIRS_HEADER",
    "REVIEW_HEADER",
    "BlockingRecall",
    "LinkResult",
    "LinkedPair",
    "Progress",
    "Refused",
    "RowEncoder",
    "link_files",
    "read_rows",
    "read_truth",
    "score_histogram",
    "spreadsheet_safe",
    "write_pairs",
    "write_review",
]

logger = logging.getLogger(__name__)

#: Fuzzy pairs scoring within this distance of the threshold (either side) go to review.
DEFAULT_REVIEW_MARGIN = 0.05
PAIRS_HEADER = ("left_ref", "right_ref", "score", "method")
REVIEW_HEADER = ("kind", "left_ref", "right_ref", "score", "method")
LEFT, RIGHT = "left", "right"
# A run without the councils' keys still needs one; its epoch is arbitrary.
_RUN_KEY_EPOCH = 1


@dataclass(frozen=True, slots=True, order=True)
class LinkedPair:
    """A pair spanning the two files, by each side's local reference."""

    left_ref: str
    right_ref: str
    score: float
    method: MatchMethod


@dataclass(frozen=True, slots=True)
class LinkResult:
    """The dry run's outcome.

    ``pairs`` are the cross-file pairs at the chosen threshold, ``borderline``
    the fuzzy cross-file pairs within the review margin of it (above and below),
    ``unmatched`` the (side, reference) of records in no pair, ``refused`` the
    rows the connector would quarantine, ``records`` the rows that were linked,
    ``dropped`` the identifiers rows were linked without (malformed values the
    connector would drop, by row and reason code), ``scores`` the Dice scores
    of every blocked pair (the sample the threshold was fitted on), ``recall``
    the blocking recall against a truth file, when one was given.
    """

    pairs: tuple[LinkedPair, ...]
    borderline: tuple[LinkedPair, ...]
    unmatched: tuple[tuple[str, str], ...]
    fit: ThresholdFit
    refused: tuple[Refused, ...]
    records: int
    dropped: tuple[Refused, ...] = ()
    scores: tuple[float, ...] = ()
    recall: BlockingRecall | None = None


def _cross(match: Match) -> LinkedPair | None:
    """The pair by (left, right) reference if it spans both files, else None."""
    sides = {s.source_council: s.source_ref for s in (match.sighting, match.other)}
    if set(sides) != {LEFT, RIGHT}:
        return None
    return LinkedPair(sides[LEFT], sides[RIGHT], match.score, match.method)


def _mapping(mapping: Path | SourceMapping) -> SourceMapping:
    if isinstance(mapping, SourceMapping):
        return mapping
    try:
        return load_mapping(mapping)
    except MappingInvalid as exc:
        raise CommandError(str(exc)) from exc


Progress = Callable[[str, int, int | None], None]
"""``(stage, done, total)`` reports from a long run: stage ``encode`` (rows, total
unknown) or ``match`` (records, of ``total``). Counts only, never a value."""


def _no_progress(stage: str, done: int, total: int | None) -> None:
    """The default: report nothing."""


def link_files(
    left: Path,
    right: Path,
    mapping: Path | SourceMapping,
    *,
    linkage_keys: Sequence[LinkageKey] | None = None,
    threshold: float | None = None,
    review_margin: float = DEFAULT_REVIEW_MARGIN,
    truth: Collection[tuple[str, str]] | None = None,
    progress: Progress | None = None,
    workers: int | None = None,
) -> LinkResult:
    """Tokenise both files with the connector's code and match them with the broker's.

    Args:
        left: CSV (or ``.jsonl``) extract with a header row.
        right: the other extract, read with the same mapping.
        mapping: the connector mapping YAML, or one already loaded: identity
            columns, reference column, ``identity.extra`` fuzzy columns and
            ``free_text`` identifiers.
        linkage_keys: the councils' linkage keys (default None: a fresh random
            key for this run; tokens then match nothing outside it).
        threshold: Dice threshold override (default None: fitted by EM on the
            blocked pairs' scores, as the broker fits it).
        review_margin: how close to the threshold a fuzzy pair is borderline
            (default ``DEFAULT_REVIEW_MARGIN``).
        truth: known ``(left_ref, right_ref)`` pairs, to measure blocking recall
            (default None: not measured).
        progress: called with counts as rows are encoded and records matched
            (default None: silent).
        workers: processes that encode rows (default None: one per core).

    Raises:
        CommandError: the mapping is invalid, a file is unreadable or lacks a
            column the mapping names (the message names the file and column).
    """
    keys = tuple(linkage_keys) if linkage_keys else (generate_linkage_key(_RUN_KEY_EPOCH),)
    encoder = RowEncoder.of(_mapping(mapping), keys)
    report = progress or _no_progress
    dropped: list[Refused] = []
    sightings, refused = encode_files(
        encoder,
        ((LEFT, left), (RIGHT, right)),
        dropped=dropped,
        progress=lambda done: report("encode", done, None),
        workers=workers,
    )
    # One pass at threshold 0 (run_batch's result, by ``_link_match``) returns
    # every blocked pair with its score: the sample the fit needs and the
    # borderline pairs. The pairs at or above the chosen threshold are exactly
    # what a pass at that threshold would return (exact pairs score 1.0), i.e.
    # what the streaming broker reports.
    everything = match_all(sightings, progress=lambda done: report("match", done, len(sightings)))
    fit = choose_threshold(threshold, fit_threshold(everything.scores))
    cross = [pair for m in everything.matches if (pair := _cross(m)) is not None]
    pairs = sorted(p for p in cross if p.score >= fit.threshold)
    borderline = sorted(
        p for p in cross if p.method == FUZZY and abs(p.score - fit.threshold) <= review_margin
    )
    linked = {(LEFT, p.left_ref) for p in pairs} | {(RIGHT, p.right_ref) for p in pairs}
    unmatched = sorted(
        {(s.source_council, s.source_ref) for s in sightings} - linked,
        key=lambda item: (item[0] != LEFT, item[1]),
    )
    logger.info("linked %d records: %d pairs, %d refused", len(sightings), len(pairs), len(refused))
    return LinkResult(
        tuple(pairs),
        tuple(borderline),
        tuple(unmatched),
        fit,
        tuple(refused),
        len(sightings),
        tuple(dropped),
        everything.scores,
        None if truth is None else blocking_recall(sightings, truth, left=LEFT, right=RIGHT),
    )


#: A cell starting with one of these is a formula to Excel, LibreOffice and
#: Google Sheets (tab and carriage return too, which some of them strip first).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(cell: str) -> str:
    """The cell, with a leading single quote if a spreadsheet would run it as a formula.

    References come from the councils' extracts, so a clerk's slip or an
    attacker's ``=HYPERLINK(...)`` must not run when the review file is opened
    in a spreadsheet (OWASP's advice on CSV injection: prefix a single quote).
    """
    return f"'{cell}" if cell.startswith(FORMULA_PREFIXES) else cell


def _write(path: Path, header: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    try:
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            writer.writerows([spreadsheet_safe(cell) for cell in row] for row in rows)
    except OSError as exc:
        raise CommandError(f"cannot write {path} ({type(exc).__name__})") from exc


def _score(value: float) -> str:
    return f"{value:.4f}"


def write_pairs(path: Path, result: LinkResult) -> None:
    """``left_ref,right_ref,score,method``, one row per pair, sorted by reference."""
    _write(
        path,
        PAIRS_HEADER,
        ((p.left_ref, p.right_ref, _score(p.score), p.method) for p in result.pairs),
    )


def write_review(path: Path, result: LinkResult) -> None:
    """``kind,left_ref,right_ref,score,method`` for clerical review.

    ``borderline-match`` and ``borderline-non-match`` rows are fuzzy pairs just
    above and just below the threshold, weakest first; ``unmatched`` rows are
    records in no pair, with the other side's columns empty.
    """
    threshold = result.fit.threshold
    rows: list[tuple[str, ...]] = []
    for p in sorted(result.borderline, key=lambda p: (p.score, p.left_ref, p.right_ref)):
        kind = "borderline-match" if p.score >= threshold else "borderline-non-match"
        rows.append((kind, p.left_ref, p.right_ref, _score(p.score), p.method))
    for side, ref in result.unmatched:
        rows.append(
            ("unmatched", ref if side == LEFT else "", ref if side == RIGHT else "", "", "")
        )
    _write(path, REVIEW_HEADER, rows)
