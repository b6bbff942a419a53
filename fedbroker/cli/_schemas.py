"""``fedbroker schemas check``: prove every released schema version is fully compatible."""

from __future__ import annotations

from pathlib import Path

import click

from schemas import AVRO_DIR, check_compatibility, load_versions

__all__ = ["schemas"]


@click.group()
def schemas() -> None:
    """The Avro contracts in schemas/avro/."""


@schemas.command()
@click.option(
    "--root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=AVRO_DIR,
    show_default=True,
    help="Folder of <Name>/v<N>.avsc files.",
)
def check(root: Path) -> None:
    """Within a major line, each version reads every other's data; exit 1 naming fields.

    A version may open a new major line only for a break recorded in CHANGELOG.md.
    """
    root = root.resolve()
    problems = check_compatibility(root)
    for problem in problems:
        click.echo(f"INCOMPATIBLE {problem}", err=True)
    if problems:
        raise SystemExit(1)
    versions = load_versions(root)
    count = sum(len(v) for v in versions.values())
    breaks = sorted({v.opens_major for vs in versions.values() for v in vs if v.opens_major})
    lines = f" within each major line (recorded breaks: {', '.join(breaks)})" if breaks else ""
    click.echo(f"{len(versions)} record schemas, {count} versions: fully compatible{lines}")
