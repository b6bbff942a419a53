"""Who may record which consent: a grant only from a council that supplies what it covers.

A resident's consent is given to a controller for its own processing (UK GDPR
art 4(11), 7): an agreement names its controllers, the supplying councils
(DESIGN section 6), and only they may record a grant under it. Any council may
record a refusal (withdrawal, objection, erasure request) under any scope the
directory names: a refusal only restricts, and refusing it would let consent lose.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from broker import Rejected
from broker._admission import AdmissionPolicy, admit
from consent import (
    AGREEMENTS_DIR,
    ConsentLedger,
    build_dev_federation,
    decide,
    example_agreement_paths,
    seal_envelope,
)
from consent._decisions import CandidateDisclosure, DisclosedEvent
from schemas import Codec, ConsentRecord, ConsentState, EventType, LinkageToken, SignatureDomain

A, B, C = "E08000001", "E08000002", "E08000003"
NOW = datetime(2026, 9, 10, tzinfo=UTC)
AB_ONLY = "ab-early-help"  # supplied by A and B only, purpose of its own
AB_SHARED = "ab-shared-purpose"  # supplied by A and B, the purpose of gm-multiple-disadvantage
GM = "gm-multiple-disadvantage"  # supplied by A, B and C; consent model: objection
REQUIRED = "ab-consented"  # supplied by A and B; consent model: required
TOKENS = (LinkageToken("nhs", 1, b"\x01" * 32),)
REFUSALS = (ConsentState.WITHDRAWN, ConsentState.OBJECTED, ConsentState.ERASURE_REQUESTED)


def _agreement(folder: Path, agreement_id: str, purpose: str, model: str = "objection") -> Path:
    authored = yaml.safe_load((AGREEMENTS_DIR / f"{GM}.yaml").read_text(encoding="utf-8"))
    authored.update(id=agreement_id, purpose=purpose, controllers=[A, B], consent_model=model)
    path = folder / f"{agreement_id}.yaml"
    path.write_text(yaml.safe_dump(authored, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def federation(tmp_path_factory):
    folder = tmp_path_factory.mktemp("authority")
    agreements = (
        *example_agreement_paths(),
        _agreement(folder, AB_ONLY, "ab-only"),
        _agreement(folder, AB_SHARED, "supporting-families-early-help"),
        _agreement(folder, REQUIRED, "ab-consented", "required"),
    )
    return build_dev_federation(folder / "fed", councils=[A, B, C], agreements=agreements,
                                now=NOW)  # fmt: skip


def _record(council: str, scope: str, state: ConsentState, *, minutes: int = 0) -> ConsentRecord:
    at = NOW - timedelta(hours=1) + timedelta(minutes=minutes)
    return ConsentRecord(f"{minutes:032x}", council, TOKENS, scope, state, at, at, 1)


def _admit(federation, record: ConsentRecord) -> ConsentRecord:
    """``record`` signed with its own council's key and read from that council's topic."""
    codec = Codec()
    council = record.council
    raw = seal_envelope(SignatureDomain.CONSENT, record, federation.signing_key(council), council,
                        codec=codec)  # fmt: skip
    admitted = admit(raw, topic=f"fed.consent.{council}", directory=federation.load(NOW),
                     codec=codec, now=NOW, policy=AdmissionPolicy())  # fmt: skip
    assert isinstance(admitted, ConsentRecord)
    return admitted


def _reason(federation, record: ConsentRecord) -> str:
    with pytest.raises(Rejected) as caught:
        _admit(federation, record)
    return caught.value.reason


def test_a_council_cannot_grant_consent_under_an_agreement_it_does_not_supply(federation):
    """Attack: council C, no party to A and B's agreement, records a grant for it.

    The grant was admitted and counted: it even overrode the resident's own
    objection at A, being the later record for the scope, and the disclosure
    that the objection stopped was allowed again.
    """
    objection = _record(A, AB_ONLY, ConsentState.OBJECTED, minutes=1)
    grant = _record(C, AB_ONLY, ConsentState.GRANTED, minutes=2)
    assert _reason(federation, grant) == "grant-not-controller"
    # What the admitted grant did: the objection no longer governed.
    kept = ConsentLedger.from_records([_admit(federation, objection)])
    assert not _decide(federation, AB_ONLY, kept).allowed


def _decide(federation, agreement_id: str, consent: ConsentLedger):
    agreement = federation.load(NOW).agreements[agreement_id]
    event = DisclosedEvent("e" * 32, A, EventType.RENT_ARREARS, NOW - timedelta(days=1))
    candidate = CandidateDisclosure(agreement_id, "gmca.supporting-families", (event,),
                                    (tuple(t.key() for t in TOKENS),))  # fmt: skip
    return decide(agreement, candidate, consent, NOW)


def test_a_purpose_or_all_scope_grant_needs_every_agreement_it_covers_supplied(federation):
    """A purpose or ``*`` grant counts for every agreement it covers, so it needs them all.

    C supplies gm-multiple-disadvantage but not ab-shared-purpose, which serves
    the same purpose: a purpose grant from C would count for both.
    """
    for scope in ("purpose:ab-only", "purpose:supporting-families-early-help", "*"):
        assert _reason(federation, _record(C, scope, ConsentState.GRANTED)) == (
            "grant-not-controller"
        ), scope
    for scope in (GM, "purpose:council-tax-and-electoral-registration-accuracy"):
        assert _admit(federation, _record(C, scope, ConsentState.GRANTED)).scope == scope
    for scope in (AB_ONLY, AB_SHARED, "purpose:ab-only", "purpose:supporting-families-early-help",
                  "*"):  # fmt: skip
        assert _admit(federation, _record(A, scope, ConsentState.GRANTED)).scope == scope


@pytest.mark.parametrize("state", REFUSALS)
def test_any_council_may_record_a_refusal_under_any_scope_the_directory_names(federation, state):
    """A refusal only restricts: refusing it would let consent lose."""
    for scope in (AB_ONLY, AB_SHARED, "purpose:ab-only", "*"):
        assert _admit(federation, _record(C, scope, state)).state is state, scope
    assert _reason(federation, _record(C, "purpose:marketing", state)) == "unknown-scope"


def test_a_grant_counts_only_for_agreements_its_council_supplies_whatever_the_directory_was(
    federation,
):
    """Attack (a roll-out): C's ``*`` grant was admitted when C supplied every agreement.

    A later directory adds an agreement, needing consent, that only A and B
    supply. C's old grant, still held, counted for it and disclosed the
    resident under an agreement C has no part in. The rule admission applies
    holds at every decision too: a grant counts only where its council is a
    controller; a refusal counts wherever it is held.
    """
    over = ConsentLedger.from_records([_record(C, "*", ConsentState.GRANTED)])
    denied = _decide(federation, REQUIRED, over)
    assert not denied.allowed and [r.value for r in denied.reasons] == ["consent-not-granted"]
    assert _decide(federation, GM, ConsentLedger.from_records(
        [_record(C, "*", ConsentState.OBJECTED)])).reasons[0].value == "objected"  # fmt: skip
    own = ConsentLedger.from_records([_record(A, "*", ConsentState.GRANTED)])
    assert _decide(federation, REQUIRED, own).allowed
    withdrawn = ConsentLedger.from_records([
        _record(A, REQUIRED, ConsentState.WITHDRAWN, minutes=1),
        _record(C, "*", ConsentState.GRANTED, minutes=2),
    ])  # fmt: skip
    assert not _decide(federation, REQUIRED, withdrawn).allowed, "the later grant is not A's"
    both = ConsentLedger.from_records([
        _record(A, REQUIRED, ConsentState.GRANTED, minutes=1),
        _record(C, "*", ConsentState.GRANTED, minutes=2),
    ])  # fmt: skip
    assert _decide(federation, REQUIRED, both).allowed, "C's grant hides no one else's"
