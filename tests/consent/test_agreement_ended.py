"""An agreement that has ended discloses nothing more (docs/guides/agreements.md).

"To end it, set ``valid_until`` (decisions after that day are denied
``agreement-not-in-force``)": ``decide`` checked validity only at each event's
``occurred_at``, so events that happened before the end were still disclosed
after it, for as long as their rule's window kept them. This test failed on the
code before its fix.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from consent import ConsentLedger, Reason, decide
from schemas import Outcome
from tests.consent.test_decisions import agreement, candidate, event

END = datetime(2027, 1, 1, tzinfo=UTC)  # the agreement's valid_until (exclusive)


def test_events_from_before_the_end_are_not_disclosed_after_it():
    before_end = END - timedelta(days=2)
    cand = candidate([event(1, occurred_at=before_end),
                      event(2, source_council="E08000006", occurred_at=before_end)])  # fmt: skip
    assert decide(agreement(), cand, ConsentLedger(), END - timedelta(days=1)).allowed
    after = decide(agreement(), cand, ConsentLedger(), END + timedelta(days=30))
    assert after.outcome is Outcome.DENIED
    assert after.reasons == (Reason.NOT_IN_FORCE,)


def test_an_agreement_without_an_end_stays_in_force():
    cand = candidate()
    far = datetime(2099, 1, 1, tzinfo=UTC)
    assert decide(agreement(valid_until=None), cand, ConsentLedger(), far).allowed
