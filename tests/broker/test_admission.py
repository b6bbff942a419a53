"""Admission: the cheapest refusal first, and source times bounded (issue 11, items 1, 3, 7).

An attacker who can write to a council's topic chooses the size and shape of
what the broker must read; a careless clerk chooses the dates. Work is counted
(decodes, signature checks), never timed.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

import pytest

import consent._envelope as envelope_module
from broker import Rejected, Sighting
from broker._admission import AdmissionPolicy, Limits, admit, admit_each
from consent import seal_envelope
from schemas import (
    CitizenEvent,
    Codec,
    ConsentRecord,
    ConsentState,
    SignatureDomain,
    citizen_event_id,
)
from tests.broker.test_partition import FROM, NOW, _event, federation

__all__ = ["federation"]

EVENTS, CONSENT = f"fed.events.{FROM}", f"fed.consent.{FROM}"


class CountingCodec(Codec):
    def __init__(self) -> None:
        super().__init__()
        self.decodes = 0

    def decode(self, data: bytes):  # type: ignore[no-untyped-def]
        self.decodes += 1
        return super().decode(data)


_CHECKS: list[int] = []  # signature checks made inside ``admit`` (not loading the directory)


@pytest.fixture
def signatures(monkeypatch):
    real = envelope_module.verify_signature

    def counting(*args, **kwargs):
        _CHECKS.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(envelope_module, "verify_signature", counting)
    return _CHECKS


def _sealed(federation, record) -> bytes:
    """The record as its council publishes it: a signed envelope over its exact bytes."""
    domain = SignatureDomain.EVENT if isinstance(record, CitizenEvent) else SignatureDomain.CONSENT
    return seal_envelope(domain, record, federation.signing_key(FROM), FROM, codec=Codec())


def _rebound(event: CitizenEvent) -> CitizenEvent:
    """With the id its changed fields give, as the council's connector would make it."""
    return replace(event, event_id=citizen_event_id(event.source_council, event.source_system,
                   event.source_ref, event.event_type, event.occurred_at))  # fmt: skip


def _admit(federation, raw: bytes, codec: Codec | None = None, topic: str = EVENTS, **policy):
    directory = federation.load(NOW)
    _CHECKS.clear()
    return admit(raw, topic=topic, directory=directory, codec=codec or Codec(), now=NOW,
                 policy=AdmissionPolicy(**policy))  # fmt: skip


def _reason(call) -> str:
    with pytest.raises(Rejected) as caught:
        call()
    return caught.value.reason


def test_a_good_event_is_admitted_with_one_decode_and_one_signature_check(federation, signatures):
    codec = CountingCodec()
    event = _event(federation, FROM, "C", "2026-09-01", "a-1")
    assert _admit(federation, _sealed(federation, event), codec) == event
    assert codec.decodes == 1 and len(signatures) == 1


def test_a_batch_admitted_off_the_loop_keeps_each_outcome_in_its_place(federation):
    """Forged, truncated and oversized messages among good ones: each refused alone, in order."""
    good = [_event(federation, FROM, "C", "2026-09-01", f"a-{n}") for n in range(3)]
    forged = bytearray(_sealed(federation, good[1]))
    forged[-1] ^= 1  # a signature byte flipped
    batch = [
        (_sealed(federation, good[0]), EVENTS),
        (bytes(forged), EVENTS),
        (_sealed(federation, good[1])[:40], EVENTS),
        (b"\x00" * 70_000, EVENTS),
        (_sealed(federation, good[2]), CONSENT),  # an event on a consent topic
        (_sealed(federation, good[1]), EVENTS),
    ]
    outcomes = admit_each(batch, directory=federation.load(NOW), codec=Codec(), now=NOW,
                          policy=AdmissionPolicy())  # fmt: skip
    assert outcomes[0] == good[0] and outcomes[5] == good[1]
    refused = [o.reason if isinstance(o, Rejected) else o for o in outcomes[1:5]]
    expected = [
        _reason(lambda raw=raw, topic=topic: _admit(federation, raw, topic=topic))
        for raw, topic in batch[1:5]
    ]
    assert refused == expected
    assert expected[0] == "bad-signature" and expected[2] == "too-large"


def test_an_unsigned_770_kb_message_is_refused_before_any_decoding(federation, signatures):
    codec = CountingCodec()
    event = _event(federation, FROM, "C", "2026-09-01", "a-1")
    padding = MappingProxyType({f"k{i}": "x" * 7700 for i in range(100)})
    raw = Codec().encode(replace(event, attributes=padding))  # not even in an envelope
    assert len(raw) > 770_000
    assert _reason(lambda: _admit(federation, raw, codec)) == "too-large"
    assert codec.decodes == 0 and signatures == [], "refused by its length alone"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            {"attributes": MappingProxyType({f"k{i}": "v" for i in range(40)})},
            "too-many-attributes",
        ),
        ({"attributes": MappingProxyType({"note": "x" * 300})}, "attribute-too-large"),
        ("tokens", "too-many-tokens"),
        ("sealed", "too-many-sealed"),
        ("sealed-size", "sealed-too-large"),
        ({"fuzzy": b"\xff" * 2048}, "fuzzy-too-large"),
    ],
)
def test_oversized_parts_are_refused_with_their_own_reasons(federation, signatures, change, reason):
    """Signed by the council, so only the shape refuses them, after one signature check
    (the signature covers the bytes as sent: checking it costs no decode or encode)."""
    event = _event(federation, FROM, "C", "2026-09-01", "a-1")
    if change == "tokens":
        change = {"blocking_tokens": event.blocking_tokens * (65 // len(event.blocking_tokens) + 1)}
    elif change == "sealed":
        change = {"sealed": event.sealed * 17}
    elif change == "sealed-size":
        change = {"sealed": (replace(event.sealed[0], ciphertext=b"\x01" * 9000),)}
    oversized = _sealed(federation, replace(event, **change))
    assert _reason(lambda: _admit(federation, oversized)) == reason
    assert len(signatures) == 1


def test_malformed_and_misplaced_messages_carry_their_reasons(federation):
    event = _event(federation, FROM, "C", "2026-09-01", "a-1")
    raw = _sealed(federation, event)
    assert _reason(lambda: _admit(federation, raw[:40])) == "truncated"
    assert _reason(lambda: _admit(federation, b"\x00\x01garbage")) in {"bad-marker", "truncated"}
    assert _reason(lambda: _admit(federation, raw, topic=CONSENT)) == "wrong-domain"
    assert _reason(lambda: _admit(federation, Codec().encode(event))) == "wrong-record-type"


@pytest.mark.parametrize(
    ("occurred", "reason"),
    [
        (datetime(9999, 12, 31, tzinfo=UTC), "occurred-in-future"),
        (NOW + timedelta(minutes=6), "occurred-in-future"),
        (datetime(1850, 1, 1, tzinfo=UTC), "occurred-before-floor"),
    ],
)
def test_a_signed_event_with_an_impossible_occurred_at_is_refused(federation, occurred, reason):
    """9999-12-31 used to pass and then raise OverflowError in ``Sighting.from_event``."""
    event = replace(_event(federation, FROM, "C", "2026-09-01", "a-1"), occurred_at=occurred,
                    published_at=NOW)  # fmt: skip
    if occurred.year == 9999:
        with pytest.raises(OverflowError):
            Sighting.from_event(event, retention=timedelta(days=90))
    assert _reason(lambda: _admit(federation, _sealed(federation, event))) == reason


def _consent_record(federation, recorded_at: datetime) -> ConsentRecord:
    tokens = _event(federation, FROM, "C", "2026-09-01", "r").tokens
    return ConsentRecord("c" * 32, FROM, tokens, "*", ConsentState.GRANTED, recorded_at, NOW, 1)


@pytest.mark.parametrize(
    ("recorded", "reason"),
    [
        (datetime(2062, 9, 10, tzinfo=UTC), "recorded-in-future"),  # a clerk's 2062 for 2026
        (datetime(2019, 12, 31, tzinfo=UTC), "recorded-before-floor"),
    ],
)
def test_a_consent_record_dated_outside_its_bounds_is_refused(federation, recorded, reason):
    raw = _sealed(federation, _consent_record(federation, recorded))
    assert _reason(lambda: _admit(federation, raw, topic=CONSENT)) == reason


def test_the_floors_and_skew_are_configurable(federation):
    raw = _sealed(federation, _consent_record(federation, datetime(2024, 1, 1, tzinfo=UTC)))
    assert isinstance(_admit(federation, raw, topic=CONSENT), ConsentRecord)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    assert (
        _reason(lambda: _admit(federation, raw, topic=CONSENT, recorded_floor=start))
        == "recorded-before-floor"
    )
    event = _event(federation, FROM, "C", "2026-09-01", "a-1")
    late = _sealed(federation, _rebound(replace(event, occurred_at=NOW + timedelta(minutes=3))))
    assert isinstance(_admit(federation, late), CitizenEvent)
    skew = timedelta(minutes=1)
    assert _reason(lambda: _admit(federation, late, max_skew=skew)) == "occurred-in-future"


def test_limits_are_settings(federation):
    raw = _sealed(federation, _event(federation, FROM, "C", "2026-09-01", "a-1"))
    tight = Limits(message_bytes=len(raw) - 1)
    assert _reason(lambda: _admit(federation, raw, limits=tight)) == "too-large"


def _stale(federation, state: ConsentState, record_id: str = "d" * 32) -> ConsentRecord:
    """A record published 31 days before the broker reads it (a group lagging, a rebuild)."""
    published = NOW - timedelta(days=31)
    record = _consent_record(federation, published - timedelta(days=1))
    return replace(record, record_id=record_id, state=state, published_at=published)


def _ledger_state(records) -> ConsentState | None:
    """The state that governs the records' subject under the cross-boundary move agreement."""
    from consent import ConsentLedger, effective_consent

    tokens = [t.key() for t in records[0].tokens]
    purpose = "council-tax-and-electoral-registration-accuracy"
    ledger = ConsentLedger.from_records(records)
    entry = effective_consent(ledger, tokens, agreement_id="gm-cross-boundary-move",
                              purpose=purpose, controllers=frozenset({FROM}))  # fmt: skip
    return entry.state if entry is not None else None


@pytest.mark.parametrize("state", [ConsentState.WITHDRAWN, ConsentState.OBJECTED])
def test_a_withdrawal_or_objection_read_after_the_freshness_window_is_applied(federation, state):
    """Attack (a crashing machine): the group lags 31 days on a council's consent topic.

    The resident's grant was read while fresh; their withdrawal, read late, was
    refused as ``stale`` and lost: the grant went on disclosing. A refusal only
    restricts, so its age is no reason to refuse it; it still ranks by its own
    time, so an old one replayed cannot undo a newer grant.
    """
    long_ago = NOW - timedelta(days=40)  # read while it was fresh
    grant = replace(_stale(federation, ConsentState.GRANTED, "a" * 32), recorded_at=long_ago,
                    published_at=long_ago)  # fmt: skip
    refusal = _stale(federation, state)
    admitted = _admit(federation, _sealed(federation, refusal), topic=CONSENT)
    assert admitted == refusal
    assert _ledger_state([grant, admitted]) is state
    # A replay of the same record, read again later, changes nothing.
    assert _ledger_state([grant, admitted, admitted]) is state
    an_hour_ago = NOW - timedelta(hours=1)
    newer = replace(grant, record_id="b" * 32, recorded_at=an_hour_ago, published_at=an_hour_ago)
    assert _ledger_state([grant, newer, admitted]) is ConsentState.GRANTED


def test_a_stale_grant_or_erasure_is_still_refused(federation):
    """A grant only widens, so an old one is refused like an old event.

    An erasure request is refused too (a documented limit): its audit record id
    is remembered for the freshness window only, so one re-read later, as a
    rebuild does, would be audited twice and fail ``audit verify``.
    """
    for state in (ConsentState.GRANTED, ConsentState.ERASURE_REQUESTED):
        raw = _sealed(federation, _stale(federation, state))
        assert _reason(lambda raw=raw: _admit(federation, raw, topic=CONSENT)) == "stale"
