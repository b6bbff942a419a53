"""``fedbroker link``: the command over ``fedbroker.link`` (the batch dry run of linkage).

Options in, files and a summary out; the linkage itself is in ``fedbroker.link``.
"""

from __future__ import annotations

from pathlib import Path

import click

from broker import FUZZY
from connectors import ConfigInvalid, LinkageKey, load_linkage_keys
from fedbroker._errors import CommandError
from fedbroker.link import DEFAULT_REVIEW_MARGIN, link_files, write_pairs, write_review

__all__ = ["link"]


def _keys(path: Path | None) -> tuple[LinkageKey, ...] | None:
    if path is None:
        return None
    try:
        return load_linkage_keys(path)
    except (OSError, ConfigInvalid) as exc:
        raise CommandError(f"--linkage-keys {path}: {exc}") from exc


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
def link(
    left: Path,
    right: Path,
    mapping: Path,
    out: Path,
    linkage_keys: Path | None,
    threshold: float | None,
    review: Path | None,
    review_margin: float,
) -> None:
    """Dry-run linkage of two extracts: write left_ref,right_ref,score,method.

    Rows go through the connector's normalisation and encodings and the pairs
    come from the broker's matcher, so this is what the federation would find.
    """
    result = link_files(
        left,
        right,
        mapping,
        linkage_keys=_keys(linkage_keys),
        threshold=threshold,
        review_margin=review_margin,
    )
    write_pairs(out, result)
    click.echo(result.fit.describe())
    exact = sum(1 for p in result.pairs if p.method != FUZZY)
    click.echo(
        f"{result.records} records, {len(result.pairs)} pairs ({exact} exact, "
        f"{len(result.pairs) - exact} fuzzy), {len(result.refused)} rows refused -> {out}"
    )
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
