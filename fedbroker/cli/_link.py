"""``fedbroker link``: the command over ``fedbroker.link`` (the batch dry run of linkage).

Options in, files and a summary out; the linkage itself is in ``fedbroker.link``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from broker import FUZZY
from connectors import ConfigInvalid, LinkageKey, load_linkage_keys
from fedbroker._errors import CommandError
from fedbroker.link import (
    DEFAULT_REVIEW_MARGIN,
    LinkResult,
    Progress,
    link_files,
    read_truth,
    score_histogram,
    write_pairs,
    write_review,
)

__all__ = ["link"]


def _keys(path: Path | None) -> tuple[LinkageKey, ...] | None:
    if path is None:
        return None
    try:
        return load_linkage_keys(path)
    except (OSError, ConfigInvalid) as exc:
        raise CommandError(f"--linkage-keys {path}: {exc}") from exc


def _same_file(a: Path, b: Path) -> bool:
    if a.exists() and b.exists():
        return a.samefile(b)  # hard links and symlinks too
    return a.resolve() == b.resolve()


def _check_outputs(inputs: dict[str, Path | None], outputs: dict[str, Path | None]) -> None:
    """Refuse an output that would overwrite an input, or the other output.

    The outputs are written after every input is read, so a clerk's
    ``--out extract.csv`` would otherwise replace the council's extract (or
    the mapping, or the key file) with the pairs.
    """
    named = [(option, path) for option, path in outputs.items() if path is not None]
    for index, (option, path) in enumerate(named):
        others = [*inputs.items(), *named[:index]]
        for other, given in others:
            if given is not None and _same_file(path, given):
                raise CommandError(f"{option} {path} is the same file as {other}")


#: Seconds between two progress lines, so a long run says it is alive without flooding.
_PROGRESS_EVERY_S = 2.0


def _stderr_progress() -> Progress:
    """Progress lines on stderr (counts only), at most one per ``_PROGRESS_EVERY_S``."""
    last = [0.0]

    def report(stage: str, done: int, total: int | None) -> None:
        now = time.monotonic()
        if now - last[0] < _PROGRESS_EVERY_S and done != total:
            return
        last[0] = now
        if stage == "encode":
            click.echo(f"link: {done:,} rows encoded", err=True)
        else:
            click.echo(f"link: {done:,} of {total or 0:,} records matched", err=True)

    return report


def _stats(result: LinkResult) -> None:
    """Blocking recall (with a truth file) and the Dice histogram: counts, never values."""
    if result.recall is not None:
        click.echo(result.recall.describe())
    click.echo(
        f"{len(result.scores)} blocked pairs scored (Dice), threshold {result.fit.threshold:.3f}:"
    )
    for line in score_histogram(result.scores, result.fit.threshold):
        click.echo(f"  {line}")


_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)
_OUTPUT = click.Path(dir_okay=False, path_type=Path)


@click.command()
@click.option("--left", type=_FILE, required=True, help="One extract (CSV with a header row).")
@click.option("--right", type=_FILE, required=True, help="The other extract.")
@click.option(
    "--mapping",
    type=_FILE,
    required=True,
    help="Connector mapping YAML: identity columns, reference, extra fuzzy columns, free text.",
)
@click.option("--out", type=_OUTPUT, required=True, help="Where to write the pairs CSV.")
@click.option(
    "--linkage-keys",
    type=_FILE,
    default=None,
    help='JSON {"epoch": "hex secret"}: the councils\' keys, for the tokens on the wire. '
    "Default: a fresh random key for this run.",
)
@click.option(
    "--threshold",
    type=click.FloatRange(0.0, 1.0),
    default=None,
    help="Dice threshold for fuzzy pairs. Default: fitted by EM on the blocked pairs.",
)
@click.option(
    "--review",
    type=_OUTPUT,
    default=None,
    help="Also write borderline pairs and unmatched records for clerical review.",
)
@click.option(
    "--review-margin",
    type=click.FloatRange(0.0, 1.0),
    default=DEFAULT_REVIEW_MARGIN,
    show_default=True,
    help="How close to the threshold a fuzzy pair counts as borderline.",
)
@click.option(
    "--stats",
    is_flag=True,
    help="Also report the Dice score histogram and, with --truth, the blocking recall.",
)
@click.option(
    "--truth",
    type=_FILE,
    default=None,
    help="CSV of known pairs (left_ref,right_ref) for --stats to measure blocking recall.",
)
@click.option(
    "--progress/--quiet",
    "show_progress",
    default=None,
    help="Progress lines on stderr (rows encoded, records matched). Default: only when "
    "stderr is a terminal.",
)
def link(
    left: Path,
    right: Path,
    mapping: Path,
    out: Path,
    linkage_keys: Path | None,
    threshold: float | None,
    review: Path | None,
    review_margin: float,
    stats: bool,
    truth: Path | None,
    show_progress: bool | None,
) -> None:
    """Dry-run linkage of two extracts: write left_ref,right_ref,score,method.

    Rows go through the connector's normalisation and encodings and the pairs
    come from the broker's matcher, so this is what the federation would find.
    """
    if truth is not None and not stats:
        raise CommandError("--truth is read only with --stats")
    _check_outputs(
        {"--left": left, "--right": right, "--mapping": mapping,
         "--linkage-keys": linkage_keys, "--truth": truth},
        {"--out": out, "--review": review},
    )  # fmt: skip
    if show_progress is None:
        show_progress = sys.stderr.isatty()
    result = link_files(
        left,
        right,
        mapping,
        linkage_keys=_keys(linkage_keys),
        threshold=threshold,
        review_margin=review_margin,
        truth=None if truth is None else read_truth(truth),
        progress=_stderr_progress() if show_progress else None,
    )
    write_pairs(out, result)
    click.echo(result.fit.describe())
    exact = sum(1 for p in result.pairs if p.method != FUZZY)
    click.echo(
        f"{result.records} records, {len(result.pairs)} pairs ({exact} exact, "
        f"{len(result.pairs) - exact} fuzzy), {len(result.refused)} rows refused -> {out}"
    )
    if stats:
        _stats(result)
    for refusal in result.refused:
        click.echo(f"refused {refusal.describe()}", err=True)
    for lost in result.dropped:
        click.echo(f"dropped {lost.describe()}", err=True)
    if review is not None:
        write_review(review, result)
        click.echo(
            f"{len(result.borderline)} borderline pairs, {len(result.unmatched)} unmatched "
            f"records -> {review}"
        )
