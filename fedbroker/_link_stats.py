"""What ``fedbroker link --stats`` reports: blocking recall and the score distribution.

Blocking decides which pairs are ever compared, so a true pair that shares no
token is lost before any threshold is chosen; with a truth file (pairs of
references known to be one person) the share of true pairs that blocking kept
is the ceiling on recall. The histogram of blocked pairs' Dice scores shows
whether the fitted threshold sits in the valley between the non-match and
match humps. Both are counts and scores only: no reference, token or value of
any row is printed.
"""

from __future__ import annotations

import csv
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from broker import Sighting
from fedbroker._errors import CommandError

__all__ = [
    "DEFAULT_HISTOGRAM_BINS",
    "BlockingRecall",
    "blocking_recall",
    "read_truth",
    "score_histogram",
]

DEFAULT_HISTOGRAM_BINS = 20
_BAR_WIDTH = 50
_TRUTH_COLUMNS = ("left_ref", "right_ref")


@dataclass(frozen=True, slots=True)
class BlockingRecall:
    """How many of the truth file's pairs blocking let through to comparison.

    ``pairs`` true pairs in all; ``blocked`` share at least one token (exact or
    blocking) and so were compared; ``unread`` have a side that is no linked
    record (refused, or not in the file), so could never be compared.
    """

    pairs: int
    blocked: int
    unread: int

    @property
    def recall(self) -> float:
        return self.blocked / self.pairs if self.pairs else 0.0

    def describe(self) -> str:
        return (
            f"blocking recall {self.recall:.4f}: {self.blocked} of {self.pairs} true pairs "
            f"share a token ({self.unread} with a side refused or absent)"
        )


def read_truth(path: Path) -> frozenset[tuple[str, str]]:
    """Pairs ``(left_ref, right_ref)`` from a CSV with those two columns (``link``'s own
    pairs file is one), or, without that header, the first two columns of every row.

    Raises:
        CommandError: the file cannot be read or a row has fewer than two cells
            (the message names the row number, never its cells).
    """
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CommandError(f"--truth {path}: cannot read ({type(exc).__name__})") from exc
    if rows and tuple(c.strip() for c in rows[0][:2]) == _TRUTH_COLUMNS:
        rows = rows[1:]
    pairs = set()
    for number, row in enumerate(rows, start=1):
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            raise CommandError(f"--truth {path}: row {number} does not name two references")
        pairs.add((row[0].strip(), row[1].strip()))
    return frozenset(pairs)


def blocking_recall(
    sightings: Iterable[Sighting], truth: Collection[tuple[str, str]], *, left: str, right: str
) -> BlockingRecall:
    """The share of ``truth`` pairs whose records share any token, so were compared.

    A reference with several rows counts by the union of its rows' tokens.
    """
    tokens: dict[tuple[str, str], set[str]] = {}
    for s in sightings:
        tokens.setdefault((s.source_council, s.source_ref), set()).update(s.tokens, s.blocking)
    blocked = unread = 0
    for left_ref, right_ref in truth:
        mine, theirs = tokens.get((left, left_ref)), tokens.get((right, right_ref))
        if mine is None or theirs is None:
            unread += 1
        elif not mine.isdisjoint(theirs):
            blocked += 1
    return BlockingRecall(len(truth), blocked, unread)


def score_histogram(
    scores: Sequence[float], threshold: float, *, bins: int = DEFAULT_HISTOGRAM_BINS
) -> list[str]:
    """Text histogram of Dice scores over [0, 1], one line per bin, the threshold marked.

    Each line: the bin's range, its count, a bar scaled to the fullest bin (a
    non-empty bin always shows at least one mark), and ``<- threshold`` on the
    bin holding it.
    """
    counts = [0] * bins
    for score in scores:
        counts[min(int(score * bins), bins - 1)] += 1
    peak = max(counts, default=0)
    marked = min(int(threshold * bins), bins - 1)
    width = len(str(peak))
    lines = []
    for index, count in enumerate(counts):
        bar = "#" * (max(1, round(count * _BAR_WIDTH / peak)) if count else 0)
        note = "  <- threshold" if index == marked else ""
        low, high = index / bins, (index + 1) / bins
        lines.append(f"{low:.2f}-{high:.2f} {count:>{width}} {bar}{note}")
    return lines
