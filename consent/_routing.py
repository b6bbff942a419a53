"""Which of an agreement's recipients a match goes to, and which agreements an event serves.

The agreement names every recipient that may ever receive a notification; its
``routing`` narrows that per match (the receiving council's services only, or
the services of the councils whose events matched). Keeping this next to the
agreement, not in the broker, lets an information-governance officer read and
test the whole disclosure rule in one package.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from consent._agreement import Agreement, Routing
from consent._consent_state import ALL_SCOPES
from consent._directory import Directory
from schemas import EventType

__all__ = ["agreements_for", "consent_grantors", "consent_scopes", "route"]


def agreements_for(
    directory: Directory, event_type: EventType | str, source_council: str
) -> tuple[Agreement, ...]:
    """Agreements under which an event of this type from this council could be shared.

    Sorted by id; validity at the event's time is still for ``decide`` to check.
    """
    try:
        wanted = EventType(event_type)
    except ValueError:
        return ()
    return tuple(
        agreement
        for _, agreement in sorted(directory.agreements.items())
        if wanted in agreement.match.event_types and source_council in agreement.controllers
    )


def route(
    agreement: Agreement,
    directory: Directory,
    *,
    source_councils: Iterable[str],
    destination_council: str | None = None,
) -> tuple[str, ...]:
    """The recipients of one match, sorted (each still needs its own ``decide``).

    Args:
        agreement: the agreement the match falls under.
        directory: gives each service's owning council.
        source_councils: the councils whose events matched.
        destination_council: for ``destination-council`` routing, the council the
            subject moved to (default None: nobody, so nothing is routed).
    """
    recipients = sorted(agreement.recipients)
    if agreement.routing is Routing.ALL:
        return tuple(recipients)
    if agreement.routing is Routing.DESTINATION_COUNCIL:
        councils = {destination_council} if destination_council else set()
    else:
        councils = set(source_councils)
    return tuple(
        r for r in recipients if r in directory.members and directory.members[r].council in councils
    )


def consent_scopes(directory: Directory) -> frozenset[str]:
    """What a consent record may be about: an agreement, a purpose of one, or ``*`` (all).

    One rule for the connector (which refuses the row) and the broker (which
    must not trust a forged or old connector): anything else, such as a
    resident's name typed into the scope column, never leaves the council.
    """
    return frozenset(consent_grantors(directory))


def consent_grantors(directory: Directory) -> Mapping[str, frozenset[str]]:
    """Each consent scope the directory names, and the councils that may record a grant under it.

    Consent is given to a controller for its own processing, and an agreement
    names its controllers (the supplying councils): a grant recorded by a
    council that supplies nothing under an agreement would otherwise count
    for it, and, being the later record for its scope, override the
    resident's objection recorded by a council that does. A scope covers
    agreements: its own for an agreement id, every agreement of the purpose
    for ``purpose:<name>``, every agreement for ``*``; a grant under it counts
    for each, so only a council that supplies every one of them may record it
    (a council supplying only some records grants per agreement). Refusals
    (withdrawal, objection, erasure request) are for anyone to record under
    any of these scopes: they only restrict, and refusing one would let
    consent lose.
    """
    agreements = tuple(directory.agreements.values())
    covered: dict[str, list[Agreement]] = {ALL_SCOPES: list(agreements)}
    for agreement in agreements:
        covered[agreement.agreement_id] = [agreement]
        covered.setdefault(agreement.purpose_scope, []).append(agreement)
    return MappingProxyType({scope: _supplying_all(each) for scope, each in covered.items()})


def _supplying_all(agreements: Iterable[Agreement]) -> frozenset[str]:
    """The councils that are controllers of every one of ``agreements`` (none for none)."""
    sets = [agreement.controllers for agreement in agreements]
    return frozenset.intersection(*sets) if sets else frozenset()
