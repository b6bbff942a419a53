"""Admission refuses fields that carry text where the contract says opaque (attack round 2).

A connector writes only keyed digests and catalogue names in the fields the
broker keeps in clear: 32-hex references and consent ids, short lowercase
token domains, the event type's own attribute names. Anything else is a
careless mapping or a forged connector putting personal data where it would
travel on: a ``source_ref`` into every notification, a consent ``record_id``
into the audit trail's erasure ids, a token domain into every audit record's
subject tokens and every Kafka key, an attribute into the broker's state.
Each is refused before it is kept, with a reason code that never holds the value.
"""

from __future__ import annotations

from dataclasses import replace
from types import MappingProxyType

import pytest

from broker import Rejected
from schemas import ConsentState, citizen_event_id
from tests.broker.test_attack_regressions import _admit_signed
from tests.broker.test_partition import FROM, _consent, _event, federation

__all__ = ["federation"]

CLEAR = "Ann Example 1980-02-03"


def _bound(event):
    """``event`` with its id recomputed, as a forged connector would sign it."""
    ref = citizen_event_id(event.source_council, event.source_system, event.source_ref,
                           event.event_type, event.occurred_at)  # fmt: skip
    return replace(event, event_id=ref)


def _refused(federation, record) -> Rejected:
    with pytest.raises(Rejected) as caught:
        _admit_signed(federation, record)
    assert CLEAR not in str(caught.value) and "ann" not in str(caught.value).lower()
    return caught.value


def test_the_honest_records_are_admitted(federation):
    event = _event(federation, FROM, "C", "2026-09-01", "a-1")
    assert _admit_signed(federation, event) == event
    record = _consent(federation, ConsentState.GRANTED, "*")
    assert _admit_signed(federation, record) == record


@pytest.mark.parametrize("ref", [CLEAR, "AB123456C", "a" * 31, "A" * 32, "g" * 32])
def test_a_source_reference_that_is_not_an_opaque_digest_is_refused(federation, ref):
    event = _bound(replace(_event(federation, FROM, "C", "2026-09-01", "a-1"), source_ref=ref))
    assert _refused(federation, event).reason == "reference-not-opaque"


@pytest.mark.parametrize("record_id", [CLEAR, "consent-of-ann", "C" * 32])
def test_a_consent_record_id_that_is_not_an_opaque_digest_is_refused(federation, record_id):
    record = replace(_consent(federation, ConsentState.GRANTED, "*"), record_id=record_id)
    assert _refused(federation, record).reason == "identifier-not-opaque"


@pytest.mark.parametrize("domain", [CLEAR, "Ann", "nhs 9434765919", "nhs:1", "", "+nhs"])
def test_a_token_domain_that_is_free_text_is_refused(federation, domain):
    event = _event(federation, FROM, "C", "2026-09-01", "a-1")
    exact = (replace(event.tokens[0], domain=domain), *event.tokens[1:])
    blocking = (replace(event.blocking_tokens[0], domain=domain), *event.blocking_tokens[1:])
    for forged in (replace(event, tokens=exact), replace(event, blocking_tokens=blocking)):
        assert _refused(federation, forged).reason == "token-domain-invalid"
    record = _consent(federation, ConsentState.GRANTED, "*")
    forged_consent = replace(record, tokens=(replace(record.tokens[0], domain=domain),))
    assert _refused(federation, forged_consent).reason == "token-domain-invalid"


def test_an_attribute_the_event_type_does_not_carry_is_refused(federation):
    event = _event(federation, FROM, "C", "2026-09-01", "a-1")
    for attributes in ({"notes": CLEAR}, {"given_name": "Ann"}):
        forged = replace(event, attributes=MappingProxyType(attributes))
        assert _refused(federation, forged).reason == "unknown-attribute"


@pytest.mark.parametrize("value", [CLEAR, "Ann", "c", "C "])
def test_an_attribute_value_outside_its_vocabulary_is_refused(federation, value):
    event = _event(federation, FROM, "C", "2026-09-01", "a-1")
    assert event.event_type.value == "council-tax-account-closed"
    forged = replace(event, attributes=MappingProxyType({"band": value}))
    assert _refused(federation, forged).reason == "attribute-value-not-allowed"
    honest = replace(event, attributes=MappingProxyType({"band": "C"}))
    assert _admit_signed(federation, honest) == honest
