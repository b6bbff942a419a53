"""One routed batch, items handled one by one: a bad item never stops or taints the rest."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from broker import Sighting, TokenState
from broker._chain_recovery import OnceChain, RecoveredChain
from broker._errors import StateInvalid
from broker._item_loop import Outbox, Read, run_items
from broker._poison import INTERNAL_ERROR, AttemptCounts, guarded
from broker._routed import ItemKind, RoutedItem
from broker._state_cache import StateBatch, StateCache, decode_state
from broker._sweep import _is_token
from consent import AuditChain, ChainHead, Decision, Reason, generate_signing_key, verify_audit
from schemas import AuditKind, EventType, Outcome

T0 = datetime(2026, 6, 1, tzinfo=UTC)


def _item(n: int) -> RoutedItem:
    sighting = Sighting(f"ev-{n}", "E08000001", f"r{n}", EventType.ADDRESS_CHANGE, T0, 1)
    return RoutedItem(ItemKind.EVENT, ("shared", f"own-{n}"), f"fed.events.X/0/{n}", T0, sighting)


def _run(items: list[RoutedItem], handle: Callable[..., None], chain: AuditChain | None = None):  # type: ignore[no-untyped-def]
    table: dict[str, bytes | None] = {}
    rejected: list[tuple[str, str]] = []

    async def persist(coords: str, count: int | None) -> None:
        return None

    attempts = AttemptCounts.of(persist, {})

    async def nosleep(_: float) -> None:
        return None

    def guard(coords: str, origin: str, work: Callable[[], Awaitable[None]],
              event_id: str | None) -> Awaitable[None]:  # fmt: skip
        async def refuse(reason: str) -> None:
            rejected.append((origin, reason))

        return guarded(coords, "match", work, attempts=attempts, reject=refuse,
                       count_failure=lambda s, e: None, sleep=nosleep)  # fmt: skip

    batch = StateBatch(table, StateCache(), 0)
    out, succeeded = asyncio.run(
        run_items(
            items,
            "fed.broker.routed/0/9",
            batch,
            handle=handle,
            tick=lambda: None,
            guard=guard,
            chain=chain,
        )  # fmt: skip
    )
    written, _ = batch.flush()
    states = {k: decode_state(v, _reader(table)) for k, v in table.items() if v and _is_token(k)}
    return out, succeeded, written, states, rejected


def _reader(rows: dict[str, bytes | None]) -> Callable[[str], Sighting | None]:
    """The sighting a stored reference names, read from the table's rows afresh."""

    def read(key: str) -> Sighting | None:
        stored = rows.get(f"{key}/0")
        return Sighting.from_row(json.loads(stored)) if stored else None

    return read


def _adding(fail: dict[str, BaseException]) -> Callable[..., None]:
    """Adds the sighting under each token, then fails (after touching state) if told to."""

    def handle(item: RoutedItem, staged: dict[str, TokenState], read: Read, out: Outbox) -> None:
        assert item.sighting is not None
        for token in item.tokens:
            held = staged[token] if token in staged else read(token)
            staged[token] = (held or TokenState()).add(item.sighting)
            out.sends.append(("topic", item.sighting.event_id.encode(), token.encode()))
        if item.sighting.event_id in fail:
            raise fail[item.sighting.event_id]

    return handle


def test_a_bug_in_one_item_is_quarantined_and_leaves_nothing_behind():
    items = [_item(n) for n in range(5)]
    out, succeeded, written, states, rejected = _run(items, _adding({"ev-2": KeyError("bug")}))
    assert succeeded == 4
    assert rejected == [("fed.events.X/0/2", INTERNAL_ERROR)]  # after its attempts
    assert [s.event_id for s in states["shared"].sightings] == ["ev-0", "ev-1", "ev-3", "ev-4"]
    assert "own-2" not in states  # its half-done state was discarded
    assert b"ev-2" not in {key for _, key, _ in out.sends}
    # one read and one write per token for the whole batch: 1 shared + 4 own
    assert written == 5


def test_a_refused_item_is_rejected_at_once_with_its_reason_and_the_rest_go_on():
    items = [_item(n) for n in range(3)]
    out, succeeded, _, states, rejected = _run(items, _adding({"ev-0": StateInvalid("x")}))
    assert succeeded == 2 and rejected == [("fed.events.X/0/0", "state-invalid")]
    assert [s.event_id for s in states["shared"].sightings] == ["ev-1", "ev-2"]


def test_effects_keep_source_order_across_the_batch():
    items = [_item(n) for n in range(4)]
    out, *_ = _run(items, _adding({}))
    assert [key for _, key, _ in out.sends][::2] == [b"ev-0", b"ev-1", b"ev-2", b"ev-3"]


def _deciding(chain: AuditChain, fail: dict[str, list[BaseException]]) -> Callable[..., None]:
    """Appends the item's decision to ``chain``, then raises the next of its failures, if any."""

    def handle(item: RoutedItem, staged: dict[str, TokenState], read: Read, out: Outbox) -> None:
        assert item.sighting is not None
        event_id = item.sighting.event_id
        decision = Decision(f"dec-{event_id}", "ag", "svc", Outcome.ALLOWED,
                            (Reason.ALLOWED,), (event_id,), ("nhs:1:aa",), T0)  # fmt: skip
        out.audit.extend(chain.append(decision))
        failures = fail.get(event_id)
        if failures:
            raise failures.pop(0)

    return handle


def test_a_failed_item_leaves_no_link_behind_on_the_audit_chain():
    """Attack: an item fails after its decision was linked (say, a notification topic unknown).

    Its records were discarded with its outbox, but the chain's head had moved
    past them: every later record linked to one never published, and the
    retried item, its id remembered, was never audited at all.
    """
    key = generate_signing_key()
    chain = OnceChain(RecoveredChain(ChainHead("c")), key, window=timedelta(days=2),
                      checkpoint_interval=timedelta(minutes=1))  # fmt: skip
    items = [_item(n) for n in range(4)]
    fail = {"ev-1": [KeyError("bug")] * 9, "ev-2": [KeyError("once")]}
    out, succeeded, *_, rejected = _run(items, _deciding(chain, fail), chain)
    assert succeeded == 3 and [origin for origin, _ in rejected] == ["fed.events.X/0/1"]
    published = [*out.audit, chain.checkpoint(T0, reason="shutdown")]
    report = verify_audit(published, key.public_key())
    assert report.ok, [str(p) for p in report.problems]
    decided = [r.decision_id for r in published if r.kind is AuditKind.DECISION]
    assert decided == ["dec-ev-0", "dec-ev-2", "dec-ev-3"], "the retried item is audited once"
