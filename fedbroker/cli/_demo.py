"""``fedbroker demo``: three councils, a broker and subscribers, live on a real Kafka.

Only wiring: the run itself is ``fedbroker._demo`` (plan, processes, live
view, ground truth, checks).
"""

from __future__ import annotations

import sys

import click
from click.core import ParameterSource

from fedbroker._demo import DemoOptions, found_in_clear, run_demo

__all__ = ["demo"]

# The privacy scan's matcher, under the name its test has always used.
_found = found_in_clear


@click.command()
@click.option("--people", type=click.IntRange(10, 5000), default=300, show_default=True)
@click.option(
    "--duration", type=click.FloatRange(min=5), default=120.0, show_default=True,
    help="Seconds over which the councils' rows arrive, slice by slice.",
)  # fmt: skip
@click.option(
    "--seed", type=int, default=7, show_default=True,
    help="Everything random (people, errors, linkage key, slices) follows from it.",
)  # fmt: skip
@click.option(
    "--plain", is_flag=True, help="Periodic plain lines instead of the live table (also when "
    "the output is not a terminal).",
)  # fmt: skip
@click.option(
    "--bootstrap",
    envvar="KAFKA_BOOTSTRAP_SERVERS",
    default=None,
    help="An existing plaintext cluster (default: start the local Kafka).",
)
@click.option(
    "--secure", is_flag=True, help="Run on the local secured Kafka (`kafka up --secure`): TLS,"
    " and each party with its own certificate and only the ACLs the directory gives it.",
)  # fmt: skip
@click.option(
    "--kafka-port", type=int, default=None,
    help="First port of the local Kafka [default: 9092, or 9192 with --secure].",
)  # fmt: skip
@click.pass_context
def demo(
    ctx: click.Context, people: int, duration: float, seed: int, plain: bool,
    bootstrap: str | None, secure: bool, kafka_port: int | None,
) -> None:  # fmt: skip
    """Run the federation live and check what was shared, why, and with whom."""
    if secure and bootstrap is not None:
        # The demo issues every party's certificate, so it needs the cluster's own CA:
        # an address from the environment is the plaintext test Kafka, not this one.
        if ctx.get_parameter_source("bootstrap") is ParameterSource.COMMANDLINE:
            raise click.UsageError("--secure runs on the local secured Kafka; drop --bootstrap")
        bootstrap = None
    options = DemoOptions(people=people, duration_s=duration, seed=seed, bootstrap=bootstrap,
                          plain=plain, secure=secure, port=kafka_port)  # fmt: skip
    code = run_demo(options, sys.stdout, click.echo)
    if code:
        raise SystemExit(code)
