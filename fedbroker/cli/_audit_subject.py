"""``fedbroker audit subject``: every decision that concerned one person (a subject-access request).

The person's details are personal data, so they never travel on the command
line, where ``ps`` and the shell's history would keep them: they are read from
standard input or a file (``--details``), as JSON or as ``key: value`` lines,
and turned into tokens in this process by the connectors' tokeniser. Only the
tokens meet the audit trail; error messages name fields, never values.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO

import click

from consent import (
    audit_record_signed,
    audit_record_to_dict,
    decisions_concerning,
    verify_audit,
)
from fedbroker._errors import CommandError
from fedbroker.cli._audit_topic import common_options, decoder, describe_problem, read_audit_topic
from fedbroker.cli._broker_key import broker_key_options, load_broker_key, load_previous_keys
from schemas import AuditKind

__all__ = ["DETAIL_FIELDS", "parse_details", "subject"]

DETAIL_FIELDS = (
    "given_name",
    "family_name",
    "date_of_birth",
    "nhs_number",
    "nino",
    "postcode",
)
"""The identifiers a subject-access request may give (the connectors' canonical names)."""


def parse_details(text: str) -> dict[str, str]:
    """A person's details from JSON (an object) or ``key: value`` / ``key=value`` lines.

    Raises:
        CommandError: not an object of known fields with text values; the message
            names the offending field or line number, never a value.
    """
    stripped = text.strip()
    found: dict[str, object] = {}
    lines: dict[str, int] = {}  # key -> the line it came from (line form only)
    if stripped.startswith("{"):
        try:
            loaded = json.loads(stripped)
        except ValueError:
            raise CommandError("the details are not valid JSON") from None
        if not isinstance(loaded, dict):
            raise CommandError("the details must be one JSON object")
        found = loaded
    else:
        for number, line in enumerate(stripped.splitlines(), start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            colon, equals = line.find(":"), line.find("=")
            cuts = [i for i in (colon, equals) if i > 0]
            if not cuts:
                raise CommandError(f"details line {number} is not 'field: value'")
            cut = min(cuts)
            key = line[:cut].strip()
            found[key], lines[key] = line[cut + 1 :].strip(), number
    unknown = set(found) - set(DETAIL_FIELDS)
    if unknown:
        # An unknown key is the clerk's text ("Ann Example=1980-02-03" has the key
        # "Ann Example"), so it is placed by line or counted, never echoed.
        where = (
            f"details line(s) {', '.join(str(n) for n in sorted(lines[k] for k in unknown))}"
            if lines
            else f"{len(unknown)} detail(s)"
        )
        raise CommandError(f"{where}: unknown field; known: {', '.join(DETAIL_FIELDS)}")
    details: dict[str, str] = {}
    for name, value in found.items():
        if not isinstance(value, str):
            raise CommandError(f"detail '{name}' must be text")
        details[name] = value
    if not any(v.strip() for v in details.values()):
        raise CommandError("no details given")
    return details


def _tokens_from_details(handle: IO[str], linkage_keys: Path, dob_format: str) -> list[str]:
    # connectors is imported here: only a council-side run needs the tokeniser
    from connectors import Tokeniser, load_linkage_keys, normalise_identity

    details = parse_details(handle.read())
    identity = normalise_identity(dict(details), date_format=dob_format)
    made = Tokeniser(load_linkage_keys(linkage_keys)).tokenise(identity)
    return [t.key() for t in made.tokens]


@click.command()
@common_options
@click.option(
    "--token",
    "tokens",
    multiple=True,
    help="A token key (domain:epoch:hex) of the person; repeat for each.",
)
@click.option(
    "--linkage-keys",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Council side: compute the tokens from the person's details with these keys.",
)
@click.option(
    "--details",
    type=click.File("r", encoding="utf-8"),
    default="-",
    show_default=True,
    help="With --linkage-keys: a file (or - for standard input) holding the person's "
    f"details as JSON or 'field: value' lines; fields: {', '.join(DETAIL_FIELDS)}.",
)
@click.option("--dob-format", default="%Y-%m-%d", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the records as JSON lines.")
@broker_key_options(
    "Signed directory (gives the broker's key): each listed record's signature is checked."
)
def subject(
    bootstrap: str,
    topic: str,
    timeout_s: float,
    wire: str,
    tokens: tuple[str, ...],
    linkage_keys: Path | None,
    details: IO[str],
    dob_format: str,
    as_json: bool,
    directory: Path | None,
    trust_anchor: Path | None,
    broker_key: Path | None,
    previous_broker_keys: tuple[Path, ...],
) -> None:
    """List every decision that concerned a person (a subject-access request).

    Run at a council: with --linkage-keys, the person's details are read from
    --details (standard input by default, never from flags) and turned into
    tokens here by the connectors' tokeniser; nothing in clear leaves this
    process. Or pass token keys with --token.

    With the broker's key (--directory and --trust-anchor, or --broker-key),
    each listed record's signature is checked (the broker signs every record):
    one it did not sign is flagged, and the command exits 1. The chains read
    are verified too (their links, as `fedbroker audit verify` does without its
    anchors and clock): a record missing, altered, duplicated or reordered in
    any chain may have named this person, so the answer may be incomplete, and
    the command says where and exits 1. Without the key, the records are listed
    as read; run `fedbroker audit verify` for the chains.
    """
    if linkage_keys is not None:
        tokens = (*tokens, *_tokens_from_details(details, linkage_keys, dob_format))
    if not tokens:
        raise CommandError("give --linkage-keys with the person's details, or --token")
    key = None
    if directory is not None or broker_key is not None:
        key = load_broker_key(directory, trust_anchor, broker_key)
    previous = load_previous_keys(previous_broker_keys)
    keys = (key, *previous) if key is not None else ()
    messages, unreadable = read_audit_topic(bootstrap, topic, decoder(wire), timeout_s=timeout_s)
    if unreadable:
        places = ", ".join(str(u) for u in unreadable[:5])
        more = f" and {len(unreadable) - 5} more" if len(unreadable) > 5 else ""
        click.echo(
            f"warning: skipped {len(unreadable)} message(s) that are not audit records: "
            f"{places}{more}; run `fedbroker audit verify`",
            err=True,
        )
    found = decisions_concerning([m.record for m in messages], tokens)
    signed = [not keys or any(audit_record_signed(record, k) for k in keys) for record in found]
    if as_json:
        for record, ok in zip(found, signed, strict=True):
            line = audit_record_to_dict(record)
            if key is not None:
                line["broker_signed"] = ok
            click.echo(json.dumps(line, sort_keys=True))
    else:
        click.echo(f"{len(found)} decision(s) concerned this person")
        for record, ok in zip(found, signed, strict=True):
            flag = "" if ok else "NOT SIGNED BY THE BROKER: "
            if record.kind is AuditKind.ERASURE:
                click.echo(
                    f"  {flag}{record.decided_at.isoformat()} erasure of state "
                    f"({record.decision_id})"
                )
                continue
            outcome = record.outcome.value if record.outcome else "-"
            click.echo(
                f"  {flag}{record.decided_at.isoformat()} {outcome} agreement "
                f"{record.agreement_id} to {', '.join(record.recipients)} events "
                f"{', '.join(record.event_ids)} because {', '.join(record.reasons)} "
                f"({record.decision_id})"
            )
    records = [m.record for m in messages]
    broken = verify_audit(records, key, previous_keys=previous).problems if key else ()
    for problem in broken:
        click.echo(describe_problem(problem, messages), err=True)
    if broken:
        # A deleted record leaves every remaining one signed: only the chain shows the gap.
        click.echo(
            f"the answer may be incomplete: {len(broken)} chain(s) of the audit trail do not "
            "verify; run `fedbroker audit verify`",
            err=True,
        )
    if not all(signed):
        click.echo(
            f"{signed.count(False)} listed record(s) are not signed by the broker: they are "
            "not evidence of a decision; run `fedbroker audit verify`",
            err=True,
        )
    if broken or not all(signed):
        raise SystemExit(1)
