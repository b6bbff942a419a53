"""A linkage-key rotation: the connector's events under two epochs are admitted.

During a rotation a connector holds both keys and writes every exact and
blocking token under each (``Tokeniser``, docs: "older ones are kept during a
rotation"), so that new events still meet state kept under the old key. The
broker's ``mixed-key-epochs`` refusal (issue 11) took that for forgery and
refused every event of a rotating council. It failed on the code before its fix.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from broker import Rejected
from broker._admission import AdmissionPolicy, admit
from connectors import EventFactory, LinkageKey, SourceRow, Tokeniser
from consent import seal_envelope
from schemas import Codec, SignatureDomain
from tests.broker.test_partition import FROM, KEY, MAPPING, NOW, PERSON, federation

__all__ = ["federation"]

NEW = LinkageKey(KEY.epoch + 1, bytes(range(1, 33)))
BOTH = frozenset({KEY.epoch, NEW.epoch})


def _rotating_event(federation):
    factory = EventFactory(FROM, federation.signing_key(FROM), federation.load(NOW),
                           Tokeniser([KEY, NEW]), NEW)  # fmt: skip
    row = SourceRow("x.csv", 1, {**PERSON, "e": "C", "t": "2026-09-01", "ref": "a-1"})
    return factory.event(row, MAPPING, now=NOW)


def _admit(federation, event, accepted):
    codec = Codec()
    data = seal_envelope(SignatureDomain.EVENT, event, federation.signing_key(FROM), FROM,
                         codec=codec)  # fmt: skip
    return admit(data, topic=f"fed.events.{FROM}", directory=federation.load(NOW), codec=codec,
                 now=NOW, policy=AdmissionPolicy(accepted_epochs=accepted))  # fmt: skip


def test_a_rotating_connectors_event_is_admitted_while_both_epochs_are_accepted(federation):
    event = _rotating_event(federation)
    assert event.key_epoch == NEW.epoch
    assert {t.epoch for t in event.tokens} == BOTH
    assert _admit(federation, event, BOTH) == event
    assert _admit(federation, event, None) == event


def test_once_the_old_epoch_is_retired_the_same_event_is_stale(federation):
    with pytest.raises(Rejected) as caught:
        _admit(federation, _rotating_event(federation), frozenset({NEW.epoch}))
    assert caught.value.reason == "stale-key-epoch"


def test_tokens_newer_than_the_record_or_none_of_its_epoch_are_still_mixed(federation):
    event = _rotating_event(federation)
    older = replace(event, key_epoch=KEY.epoch)  # says epoch 1, carries epoch-2 tokens
    only_old = replace(event, tokens=tuple(t for t in event.tokens if t.epoch == KEY.epoch),
                       blocking_tokens=tuple(t for t in event.blocking_tokens
                                             if t.epoch == KEY.epoch))  # fmt: skip
    for forged in (older, only_old):
        with pytest.raises(Rejected) as caught:
            _admit(federation, forged, BOTH)
        assert caught.value.reason == "mixed-key-epochs"
