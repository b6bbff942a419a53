"""``fedbroker synth``: synthetic councils for tests, the demo and benchmarks."""

from __future__ import annotations

from pathlib import Path

import click

from connectors import generate_federation

__all__ = ["synth"]


@click.command()
@click.option("--councils", type=click.IntRange(1, 10), default=3, show_default=True)
@click.option("--people", type=click.IntRange(1), default=1000, show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option(
    "--error-rate",
    type=click.FloatRange(0, 1),
    default=0.3,
    show_default=True,
    help="Share of cross-council rows that carry one realistic error.",
)
def synth(councils: int, people: int, out: Path, seed: int, error_rate: float) -> None:
    """Write one CSV per council, a mapping YAML and the ground truth (truth.csv)."""
    result = generate_federation(
        out, councils=councils, people=people, seed=seed, error_rate=error_rate
    )
    for council, path in result.files.items():
        click.echo(f"{council}: {path}")
    click.echo(f"{result.rows} rows; mapping {result.mapping}; ground truth {result.truth}")
