"""Breaks a hostile reviewer reproduced in the broker (issue 11), each pinned by a test.

Every test here failed on the code before its fix.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from broker import Matcher, Rejected, Sighting
from broker._admission import AdmissionPolicy, Limits, admit, check_shape
from broker._partition import PartitionCore, retention_for
from broker._verify import DEFAULT_MAX_AGE, DEFAULT_MAX_SKEW
from consent import AuditChain, ChainHead, seal_envelope
from schemas import Codec, ConsentRecord, ConsentState, SignatureDomain
from tests.broker.test_partition import FROM, NOW, TO, _consent, federation
from tests.broker.test_replay_window import _event

__all__ = ["federation"]


def test_an_erased_event_replayed_from_another_offset_is_a_duplicate_not_stored_again(
    federation,
):
    """A state holding only remembered ids is still a state (it used to count as empty)."""
    directory = federation.load(NOW)
    core = PartitionCore(directory, Matcher(), federation.signing_key("broker"))
    chain = AuditChain(ChainHead("test/0"), federation.signing_key("broker"))
    first = _event(federation, FROM, "C", "2026-09-01", "a-1", NOW)
    moved = _event(federation, TO, "M", "2026-09-04", "b-7", NOW)
    token = min(t.key() for t in first.tokens)
    state = None
    for event, origin in ((first, "fed.events.A/0/1"), (moved, "fed.events.B/0/1")):
        sighting = Sighting.from_event(event, retention=retention_for(directory, event))
        until = event.published_at + DEFAULT_MAX_AGE + DEFAULT_MAX_SKEW
        state, _ = core.on_sighting(token, sighting, state, None, chain, NOW, origin=origin,
                                    seen_until=until)  # fmt: skip
    erasure = ConsentRecord("e" * 32, FROM, first.tokens, "*", ConsentState.ERASURE_REQUESTED,
                            NOW, NOW, 1)  # fmt: skip
    erased = core.on_consent(token, erasure, state, None, chain, NOW + timedelta(hours=1))
    assert erased.state.sighting_count() == 0, "the erasure removed every sighting"
    assert erased.state.remembered(first.event_id) is not None, "but the ids are remembered"

    sighting = Sighting.from_event(first, retention=retention_for(directory, first))
    until = first.published_at + DEFAULT_MAX_AGE + DEFAULT_MAX_SKEW
    after, effects = core.on_sighting(token, sighting, erased.state, erased.consent, chain,
                                      NOW + timedelta(hours=2), origin="fed.events.A/0/77",
                                      seen_until=until)  # fmt: skip
    assert effects.duplicate
    assert not effects.notifications
    assert [s.event_id for s in after.sightings] == []


def test_the_matcher_keeps_remembered_ids_of_a_state_with_no_sightings(federation):
    """``Matcher.observe`` on a state of remembered ids only hands back those ids."""
    directory = federation.load(NOW)
    core = PartitionCore(directory, Matcher(), federation.signing_key("broker"))
    chain = AuditChain(ChainHead("test/0"), federation.signing_key("broker"))
    first = _event(federation, FROM, "C", "2026-09-01", "a-1", NOW)
    token = min(t.key() for t in first.tokens)
    sighting = Sighting.from_event(first, retention=retention_for(directory, first))
    until = first.published_at + DEFAULT_MAX_AGE + DEFAULT_MAX_SKEW
    state, _ = core.on_sighting(token, sighting, None, None, chain, NOW,
                                origin="fed.events.A/0/1", seen_until=until)  # fmt: skip
    erasure = ConsentRecord("e" * 32, FROM, first.tokens, "*", ConsentState.ERASURE_REQUESTED,
                            NOW, NOW, 1)  # fmt: skip
    erased = core.on_consent(token, erasure, state, None, chain, NOW).state
    moved = _event(federation, TO, "M", "2026-09-04", "b-7", NOW)
    other = Sighting.from_event(moved, retention=retention_for(directory, moved))
    observed = Matcher().observe(erased, token, other, NOW)
    assert observed.state.remembered(first.event_id) is not None


def _admit_signed(federation, record, *, accepted=frozenset({1})):
    """Seal ``record`` with the council's own key, as a forged connector would, and admit it."""
    codec = Codec()
    domain, topic = (
        (SignatureDomain.EVENT, f"fed.events.{FROM}")
        if not isinstance(record, ConsentRecord)
        else (SignatureDomain.CONSENT, f"fed.consent.{FROM}")
    )
    data = seal_envelope(domain, record, federation.signing_key(FROM), FROM, codec=codec)
    return admit(data, topic=topic, directory=federation.load(NOW), codec=codec, now=NOW,
                 policy=AdmissionPolicy(accepted_epochs=accepted))  # fmt: skip


def _epoch(tokens, epoch):
    return tuple(replace(t, epoch=epoch) for t in tokens)


def test_tokens_of_a_retired_epoch_under_an_accepted_record_epoch_are_refused(federation):
    event = _event(federation, FROM, "C", "2026-09-01", "a-1", NOW)
    assert _admit_signed(federation, event) == event, "the honest event is admitted"
    retired = replace(event, tokens=_epoch(event.tokens, 0),
                      blocking_tokens=_epoch(event.blocking_tokens, 0))  # fmt: skip
    only_blocking = replace(event, blocking_tokens=_epoch(event.blocking_tokens, 0))
    for forged in (retired, only_blocking):
        with pytest.raises(Rejected) as caught:
            _admit_signed(federation, forged)
        assert caught.value.reason == "stale-key-epoch"
    record = _consent(federation, ConsentState.GRANTED, "*")
    with pytest.raises(Rejected) as caught:
        _admit_signed(federation, replace(record, tokens=_epoch(record.tokens, 0)))
    assert caught.value.reason == "stale-key-epoch"


def test_a_record_whose_tokens_disagree_with_its_own_epoch_is_refused(federation):
    event = _event(federation, FROM, "C", "2026-09-01", "a-1", NOW)
    mixed = replace(event, tokens=_epoch(event.tokens, 2))
    with pytest.raises(Rejected) as caught:
        _admit_signed(federation, mixed, accepted=frozenset({1, 2}))
    assert caught.value.reason == "mixed-key-epochs"
    with pytest.raises(Rejected) as caught:  # no accepted set configured: still one epoch
        _admit_signed(federation, mixed, accepted=None)
    assert caught.value.reason == "mixed-key-epochs"


def _reason(call, *args, **kwargs):
    with pytest.raises(Rejected) as caught:
        call(*args, **kwargs)
    return caught.value.reason


def test_every_string_and_list_a_sender_chooses_is_capped(federation):
    """30,000-character ids and references and 5,000 declared field names were admitted."""
    event = _event(federation, FROM, "C", "2026-09-01", "a-1", NOW)
    assert _admit_signed(federation, event) == event
    payload = event.sealed[0]
    long = "x" * 30_000
    cases = [
        (replace(event, event_id=long), "identifier-too-long"),
        (replace(event, source_system=long), "identifier-too-long"),
        (replace(event, encoding="clk-" + long), "identifier-too-long"),
        (replace(event, source_ref=long), "reference-too-long"),
        (
            replace(event, sealed=(replace(payload, fields=tuple(f"f{i}" for i in range(5000))),)),
            "too-many-sealed-fields",
        ),  # fmt: skip
        (replace(event, sealed=(replace(payload, fields=("n" * 5000,)),)), "field-name-too-long"),
        (replace(event, sealed=(replace(payload, recipient=long),)), "identifier-too-long"),
        (replace(event, sealed=(replace(payload, agreement_id=long),)), "identifier-too-long"),
        (replace(event, tokens=(replace(event.tokens[0], domain=long),)), "identifier-too-long"),
    ]
    for forged, reason in cases:
        assert _reason(_admit_signed, federation, forged, accepted=None) == reason, reason
    big_token = replace(event, tokens=(replace(event.tokens[0], value=b"v" * 65),))
    assert _reason(check_shape, big_token, Limits()) == "token-too-large"
    record = _consent(federation, ConsentState.GRANTED, "*")
    forged = replace(record, record_id=long)
    assert _reason(_admit_signed, federation, forged) == "identifier-too-long"
    assert _reason(_admit_signed, federation, replace(record, scope=long)) == "scope-too-long"


def test_the_caps_are_settings(federation):
    event = _event(federation, FROM, "C", "2026-09-01", "a-1", NOW)
    check_shape(event, Limits())
    tight = Limits(identifier_bytes=8)
    assert _reason(check_shape, event, tight) == "identifier-too-long"


def test_a_consent_scope_outside_the_directory_is_refused_before_anything_is_stored(federation):
    """A forged or old connector's free-text scope (a resident's name) never reaches a table."""
    directory = federation.load(NOW)
    agreement = next(iter(directory.agreements.values()))
    record = _consent(federation, ConsentState.GRANTED, "*")
    for scope in ("*", agreement.agreement_id, agreement.purpose_scope):
        assert _admit_signed(federation, replace(record, scope=scope)).scope == scope
    for scope in ("Alice Example 14/02/1984 9434765919", "purpose:marketing", "", "**"):
        forged = replace(record, scope=scope)
        assert _reason(_admit_signed, federation, forged) == "unknown-scope", scope


def test_an_empty_id_or_a_record_with_no_token_is_refused_not_silently_lost(federation):
    """Two events with empty ids were one 'duplicate'; a token-less event was never decided."""
    event = _event(federation, FROM, "C", "2026-09-01", "a-1", NOW)
    for forged in (
        replace(event, event_id=""),
        replace(event, source_system=""),
        replace(event, source_ref=""),
    ):
        assert _reason(_admit_signed, federation, forged, accepted=None) == "identifier-empty"
    tokenless = replace(event, tokens=(), blocking_tokens=(), fuzzy=None)
    assert _reason(_admit_signed, federation, tokenless, accepted=None) == "no-tokens"
    record = _consent(federation, ConsentState.OBJECTED, "*")
    assert _reason(_admit_signed, federation, replace(record, record_id="")) == "identifier-empty"
    assert _reason(_admit_signed, federation, replace(record, tokens=())) == "no-tokens"
