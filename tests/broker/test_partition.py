"""The broker's per-partition core and its verification, without Kafka.

Events are built by the real connector code (signed, sealed, tokenised) so the
core sees exactly what it would see on the wire.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from broker import Matcher, Rejected, Sighting, verify_record
from broker._partition import PartitionCore, retention_for
from connectors import EventFactory, LinkageKey, SourceRow, Tokeniser, parse_mapping
from consent import AuditChain, ChainHead, ConsentLedger, build_dev_federation, verify_audit
from schemas import CitizenEvent, ConsentRecord, ConsentState, Outcome

FROM, TO = "E08000001", "E08000002"
KEY = LinkageKey(1, b"k" * 32)
NOW = datetime(2026, 9, 10, tzinfo=UTC)
MAPPING = parse_mapping({
    "system": "rev",
    "identity": {"given_name": "f", "family_name": "s", "date_of_birth": "d", "nhs_number": "n"},
    "reference": "ref",
    "event_type": {"column": "e", "values": {"C": "council-tax-account-closed",
                                             "M": "address-change", "B": "benefit-claim"}},
    "occurred_at": {"column": "t"},
    "payload": {"address_line_1": "a"},
})  # fmt: skip
PERSON = {"f": "Alice", "s": "Example", "d": "1984-02-14", "n": "9434765919", "a": "1 High St"}


@pytest.fixture(scope="module")
def federation(tmp_path_factory):
    return build_dev_federation(tmp_path_factory.mktemp("fed"), councils=[FROM, TO], now=NOW)


def _event(federation, council: str, code: str, when: str, ref: str, **person: str) -> CitizenEvent:
    factory = EventFactory(council, federation.signing_key(council), federation.load(NOW),
                           Tokeniser([KEY]), KEY)  # fmt: skip
    row = SourceRow("x.csv", 1, {**PERSON, **person, "e": code, "t": when, "ref": ref})
    return factory.event(row, MAPPING, now=NOW)


def _consent(federation, state: ConsentState, scope: str) -> ConsentRecord:
    tokens = _event(federation, FROM, "C", "2026-09-01", "r").tokens
    return ConsentRecord("c" * 32, FROM, tokens, scope, state, NOW - timedelta(days=30), NOW, 1)


def _run(federation, consent: ConsentLedger | None = None, second: CitizenEvent | None = None):
    directory = federation.load(NOW)
    core = PartitionCore(directory, Matcher(), federation.signing_key("broker"))
    chain = AuditChain(ChainHead("test/0"), federation.signing_key("broker"))
    first = _event(federation, FROM, "C", "2026-09-01", "a-1")
    second = second or _event(federation, TO, "M", "2026-09-04", "b-7")
    token = min(t.key() for t in first.tokens)  # the pair is reported under its first token
    state, effects = None, None
    for event in (first, second):
        sighting = Sighting.from_event(event, retention=retention_for(directory, event))
        state, effects = core.on_sighting(token, sighting, state, consent, chain, NOW)
    return effects, chain, directory


def test_a_move_is_allowed_and_notified_to_the_destination(federation):
    effects, chain, directory = _run(federation)
    assert [n.agreement_id for n in effects.notifications] == ["gm-cross-boundary-move"] * 2
    assert [n.recipient for n in effects.notifications] == [
        f"{TO}.electoral-registration",
        f"{TO}.revenues",
    ]
    audited = {a.recipients[0]: a.notification_id for a in effects.audit if a.notification_id}
    assert audited == {n.recipient: n.notification_id for n in effects.notifications}
    assert {o for _, o in effects.decisions} == {Outcome.ALLOWED}
    assert verify_audit(effects.audit, directory.member("broker").signing_key).ok


def test_an_erasure_request_denies_even_without_a_consent_model(federation):
    consent = ConsentLedger().apply(_consent(federation, ConsentState.ERASURE_REQUESTED, "*"))
    effects, _, _ = _run(federation, consent)
    assert effects.notifications == []
    assert {r for a in effects.audit for r in a.reasons} == {"erasure-requested"}


def test_a_replayed_event_is_recognised(federation):
    directory = federation.load(NOW)
    core = PartitionCore(directory, Matcher(), federation.signing_key("broker"))
    chain = AuditChain(ChainHead("test/0"), federation.signing_key("broker"))
    event = _event(federation, FROM, "C", "2026-09-01", "a-1")
    sighting = Sighting.from_event(event, retention=retention_for(directory, event))
    state, _ = core.on_sighting("t", sighting, None, None, chain, NOW)
    _, effects = core.on_sighting("t", sighting, state, None, chain, NOW)
    assert effects.redelivered, "without an origin, a known id is read again, not replayed"
    assert not effects.duplicate, "so it is not refused"


def test_erasure_forgets_the_tokens_sightings(federation):
    directory = federation.load(NOW)
    core = PartitionCore(directory, Matcher(), federation.signing_key("broker"))
    chain = AuditChain(ChainHead("test/0"), federation.signing_key("broker"))
    event = _event(federation, FROM, "C", "2026-09-01", "a-1")
    sighting = Sighting.from_event(event, retention=retention_for(directory, event))
    state, _ = core.on_sighting("t", sighting, None, None, chain, NOW)
    assert state.sighting_count() == 1
    applied = core.on_consent(
        "t", _consent(federation, ConsentState.ERASURE_REQUESTED, "*"), state, None, chain, NOW
    )
    erased, consent, audit = applied.state, applied.consent, applied.audit
    assert erased is not None and erased.sighting_count() == 0
    assert all(consent.get(t.key()).erased for t in event.tokens)
    assert audit[0].kind.value == "erasure"


def test_a_sealed_field_the_agreement_does_not_grant_is_refused(federation):
    second = _event(federation, TO, "M", "2026-09-04", "b-7")
    widened = tuple(replace(p, fields=(*p.fields, "nhs_number")) for p in second.sealed)
    effects, _, _ = _run(federation, second=replace(second, sealed=widened))
    assert effects.notifications == []
    assert {r for a in effects.audit for r in a.reasons} == {"field-not-allowed"}


def _shared_blocking(a: CitizenEvent, b: CitizenEvent) -> str:
    shared = {t.key() for t in a.blocking_tokens} & {t.key() for t in b.blocking_tokens}
    assert shared and not {t.key() for t in a.tokens} & {t.key() for t in b.tokens}
    return min(shared)


def test_a_fuzzy_match_sees_consent_routed_by_a_blocking_token(federation):
    """The two events share no exact token, so they meet only under a blocking one."""
    directory = federation.load(NOW)
    core = PartitionCore(directory, Matcher(0.5), federation.signing_key("broker"))
    chain = AuditChain(ChainHead("test/0"), federation.signing_key("broker"))
    first = _event(federation, FROM, "C", "2026-09-01", "a-1")
    variant = _event(federation, TO, "M", "2026-09-04", "b-7", f="Alicia", n="")
    token = _shared_blocking(first, variant)
    erasure = _consent(federation, ConsentState.ERASURE_REQUESTED, "*")
    applied = core.on_consent(token, erasure, None, None, chain, NOW)
    state, ledger = applied.state, applied.consent
    for event in (first, variant):
        sighting = Sighting.from_event(event, retention=retention_for(directory, event))
        state, effects = core.on_sighting(token, sighting, state, ledger, chain, NOW)
    assert [m.method for m in effects.matches] == ["fuzzy"]
    assert effects.notifications == []
    assert {r for a in effects.audit for r in a.reasons} == {"erasure-requested"}
    # Without the record under the blocking token the same match is notified.
    _, allowed = core.on_sighting(token, sighting, state.without({sighting.event_id}), None,
                                  chain, NOW)  # fmt: skip
    assert [n.agreement_id for n in allowed.notifications] == ["gm-cross-boundary-move"] * 2


def test_erasure_under_a_blocking_token_forgets_only_the_subject(federation):
    directory = federation.load(NOW)
    core = PartitionCore(directory, Matcher(), federation.signing_key("broker"))
    chain = AuditChain(ChainHead("test/0"), federation.signing_key("broker"))
    subject = _event(federation, FROM, "C", "2026-09-01", "a-1")
    neighbour = _event(federation, FROM, "C", "2026-09-01", "a-2", f="Bob", n="")
    token = _shared_blocking(subject, neighbour)
    state = None
    for event in (subject, neighbour):
        sighting = Sighting.from_event(event, retention=retention_for(directory, event))
        state, _ = core.on_sighting(token, sighting, state, None, chain, NOW)
    erasure = _consent(federation, ConsentState.ERASURE_REQUESTED, "*")
    applied = core.on_consent(token, erasure, state, None, chain, NOW)
    assert applied.state is not None and applied.state.event_ids() == {neighbour.event_id}
    assert set(applied.audit[0].subject_tokens) == {t.key() for t in subject.tokens}
    # The subject's event also sits under tokens the consent record does not
    # carry (its postcode); the erasure is sent on to each of them, once.
    carried = {t.key() for t in (*erasure.tokens, *erasure.blocking_tokens)}
    others = set(Sighting.from_event(subject, retention=None).all_tokens()) - carried
    assert others and applied.cascade == dict.fromkeys(sorted(others),
                                                       frozenset({subject.event_id}))  # fmt: skip
    onward = min(others)
    there = Sighting.from_event(subject, retention=None)
    held, _ = core.on_sighting(onward, there, None, None, chain, NOW)
    cascaded = core.on_consent(onward, erasure, held, None, chain, NOW,
                               forget=applied.cascade[onward])  # fmt: skip
    assert cascaded.state is not None and cascaded.state.sighting_count() == 0
    assert cascaded.cascade == {}


def _factory(federation, council: str) -> EventFactory:
    return EventFactory(council, federation.signing_key(council), federation.load(NOW),
                        Tokeniser([KEY]), KEY)  # fmt: skip


def test_verify_refuses_forgeries_and_other_councils(federation):
    from consent import seal_envelope
    from schemas import Codec, SignatureDomain, SignedEnvelope

    directory, codec = federation.load(NOW), Codec()
    event = _event(federation, FROM, "C", "2026-09-01", "a-1")
    data = _factory(federation, FROM).envelope(event, codec)
    topic = f"fed.events.{FROM}"
    assert verify_record(data, topic=topic, directory=directory, codec=codec, now=NOW) == event
    from connectors._bloom import ENCODING

    assert event.encoding == ENCODING  # the connector names its encoding's parameter set
    envelope = codec.decode_as(data, SignedEnvelope)
    tampered = codec.encode_body(replace(event, source_ref="tampered"))[1]
    claims_other = _factory(federation, FROM).envelope(replace(event, source_council=TO), codec)
    as_broker = seal_envelope(SignatureDomain.EVENT, event, federation.signing_key("broker"),
                              directory.broker.member_id, codec=codec)  # fmt: skip
    cases = [
        (data, f"fed.events.{TO}", "wrong-council"),
        (claims_other, topic, "wrong-council"),
        (as_broker, topic, "wrong-council"),
        (codec.encode(replace(envelope, signature=b"\x00" * 64)), topic, "bad-signature"),
        (codec.encode(replace(envelope, body=tampered)), topic, "bad-signature"),
        (data, f"fed.consent.{FROM}", "wrong-domain"),
        (data, f"fed.rejected.{FROM}", "wrong-topic"),
        (data, "fed.events.E09999999", "unknown-council"),
    ]
    for message, where, reason in cases:
        with pytest.raises(Rejected) as caught:
            verify_record(message, topic=where, directory=directory, codec=codec, now=NOW)
        assert caught.value.reason == reason, (where, reason)
    with pytest.raises(Rejected, match="published too long ago"):
        verify_record(data, topic=topic, directory=directory, codec=codec,
                      now=NOW + timedelta(days=365))  # fmt: skip
    with pytest.raises(Rejected) as caught:
        verify_record(data, topic=topic, directory=directory, codec=codec, now=NOW,
                      accepted_epochs=frozenset({2}))  # fmt: skip
    assert caught.value.reason == "stale-key-epoch"


def test_verify_refuses_a_bare_record_that_is_not_in_an_envelope(federation):
    from schemas import Codec, WrongRecordType

    codec = Codec()
    event = _event(federation, FROM, "C", "2026-09-01", "a-1")
    with pytest.raises(WrongRecordType):
        verify_record(codec.encode(event), topic=f"fed.events.{FROM}",
                      directory=federation.load(NOW), codec=codec, now=NOW)  # fmt: skip


def test_a_match_no_agreement_covers_is_denied_on_the_record_and_not_kept(federation):
    directory = federation.load(NOW)
    core = PartitionCore(directory, Matcher(), federation.signing_key("broker"))
    chain = AuditChain(ChainHead("test/0"), federation.signing_key("broker"))
    move = _event(federation, FROM, "M", "2026-09-01", "a-1")
    claim = _event(federation, TO, "B", "2026-09-03", "b-1")
    token = min(t.key() for t in move.tokens)
    state = None
    for event in (move, claim):
        sighting = Sighting.from_event(event, retention=retention_for(directory, event))
        state, effects = core.on_sighting(token, sighting, state, None, chain, NOW)
    assert effects.notifications == []
    assert [(a.agreement_id, a.reasons) for a in effects.audit] == [("", ("no-agreement",))]
    assert effects.decisions == [("none", Outcome.DENIED)]
    assert set(effects.audit[0].event_ids) == {move.event_id, claim.event_id}
    assert state.event_ids() == {move.event_id}, "an event no agreement uses is not kept"


def test_a_replay_after_later_arrivals_resends_exactly_what_it_first_sent(federation):
    """After a crash the state can hold events that arrived after the replayed one."""
    directory = federation.load(NOW)
    core = PartitionCore(directory, Matcher(), federation.signing_key("broker"))
    chain = AuditChain(ChainHead("test/0"), federation.signing_key("broker"))
    events = [
        _event(federation, FROM, "C", "2026-09-01", "a-1"),
        _event(federation, TO, "M", "2026-09-04", "b-7"),
        _event(federation, TO, "M", "2026-09-06", "b-8"),
    ]
    token = min(t.key() for t in events[0].tokens)
    sightings = [Sighting.from_event(e, retention=retention_for(directory, e)) for e in events]
    state, sent = None, []
    for sighting in sightings:
        state, effects = core.on_sighting(token, sighting, state, None, chain, NOW)
        sent.append([n.notification_id for n in effects.notifications])
    assert sent[1] and sent[2] and sent[1] != sent[2]
    _, replay = core.on_sighting(token, sightings[1], state, None, chain, NOW)
    assert replay.redelivered and not replay.duplicate
    assert [n.notification_id for n in replay.notifications] == sent[1]


def test_verify_refuses_a_record_from_a_member_that_is_not_a_council(federation):
    """The broker, a service or the authority has a signing key too, but no council's voice.

    A consent record on ``fed.consent.<broker id>``, naming the broker and signed
    by it, was accepted: the check asked only for a member with a signing key.
    """
    from consent import seal_envelope
    from schemas import Codec, SignatureDomain

    directory, codec = federation.load(NOW), Codec()
    for member in (directory.broker, directory.member(directory.authority)):
        record = replace(_consent(federation, ConsentState.GRANTED, "*"), council=member.member_id)
        key = federation.signing_key(member.member_id)
        data = seal_envelope(SignatureDomain.CONSENT, record, key, member.member_id, codec=codec)
        with pytest.raises(Rejected) as caught:
            verify_record(data, topic=f"fed.consent.{member.member_id}", directory=directory,
                          codec=codec, now=NOW)  # fmt: skip
        assert caught.value.reason == "unknown-council"
