"""The broker's two agents: verify (admit, route in batches) and match (decide, publish).

``verify`` takes the councils' messages in batches (Faust's ``take_events``: it
acks a batch's events only once the loop body that handled them has returned,
so no offset is committed before its records were handed to the producer),
admits them in two threads off the event loop (``admit_each``: the Ed25519
checks release the GIL, so they run beside the loop's matching and sending),
handles each outcome inside ``guarded`` (one bad message is quarantined
alone), and sends one routed message per (batch, target partition)
(``broker._routed``).

``match`` takes one routed message at a time, which is already a batch: every
token it touches is read once and written once (``StateBatch``: states hold
references, each sighting is stored once per partition), and each item runs
inside ``guarded`` on its own, staged so that a failed item leaves no half of
its effects behind. The effects of the whole message are published after
its states are written, in order: matches, notifications, audit records.
While the directory is expired both agents wait, deciding nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from broker._admission import admit_each
from broker._consent_view import ItemConsent, applied_entries
from broker._errors import KafkaUnavailable
from broker._item_loop import YIELD_EVERY, Outbox, Read, run_items
from broker._kafka_edge import kafka_errors
from broker._partition import retention_for
from broker._parts import EXIT_DIRECTORY_EXPIRED, Parts
from broker._pending_sends import PendingSends
from broker._poison import Backoff, guarded
from broker._routed import (
    BATCH_KEY,
    ItemKind,
    RoutedItem,
    decode_batch,
    encode_batches,
    group_by_partition,
)
from broker._sightings import Sighting, TokenState
from broker._state_cache import StateBatch
from broker._sweep import Sweeper, SweepReport, key_scan, still_empty
from consent import AuditChain
from schemas import AuditRecord, CitizenEvent, ConsentRecord

__all__ = ["VERIFY_BATCH", "VERIFY_WITHIN_S", "install_agents"]

logger = logging.getLogger(__name__)

#: Source messages per verify batch, and the longest a batch waits to fill: at
#: 1,000 events/s a batch holds ~50 events and waits 50 ms, inside the latency
#: budget; under a backlog batches fill at once and routing costs ~1/100 message.
VERIFY_BATCH = 500
VERIFY_WITHIN_S = 0.05
#: Threads admitting a verify batch, each a share of it: on two cores, two let
#: signature checks overlap each other and the loop; more only contend for the GIL.
ADMISSION_THREADS = 2

Admitted = CitizenEvent | ConsentRecord | Exception


def _coords(message: Any) -> str:
    return f"{message.topic}/{message.partition}/{message.offset}"


def _split(origin: str) -> tuple[str, int, int]:
    topic, partition, offset = origin.rsplit("/", 2)
    return topic, int(partition), int(offset)


async def _send(pending: PendingSends, topic: Any, key: bytes | None, value: bytes,
                partition: int | None = None) -> None:  # fmt: skip
    """Send; a Kafka outage is retried with backoff for as long as it lasts, never lost.

    The delivery is then ``pending``'s to watch until Kafka acknowledges it.
    Anything else (a bug) propagates to the message's ``guarded``.
    """
    backoff = Backoff()
    while True:
        try:
            with kafka_errors("sending"):
                sent = await topic.send(key=key, value=value, partition=partition)
            pending.track(sent, topic.get_topic_name())
            return
        except KafkaUnavailable as exc:
            delay = backoff.failed(0.0)
            logger.warning("send failed (%s); retrying in %.1f s", exc.reason, delay)
            await asyncio.sleep(delay)


def install_agents(parts: Parts) -> None:
    """Define the verify and match agents on ``parts.app``."""
    p, settings, metrics, clock = parts, parts.settings, parts.metrics, parts.clock
    routed = p.topics.routed
    # Label children resolved once: ``labels()`` takes a lock and a lookup per call.
    routed_messages = metrics.routed.labels("messages")
    routed_items = metrics.routed.labels("items")
    routed_tokens = metrics.routed.labels("tokens")
    verify_seconds = metrics.processing.labels("verify")
    match_seconds = metrics.processing.labels("match")
    sweeper = Sweeper(key_scan(p.states, settings.partitions), settings.partitions,
                      keys=settings.sweep_keys)  # fmt: skip

    async def until_deciding() -> None:
        """Wait while the directory is expired: deciding on it would trust stale keys.

        Faust waits for the message in hand before it stops or rebalances, and
        that message must not be decided, quarantined or committed. So a worker
        asked to stop (or to give up partitions) while expired exits at once,
        uncommitted, as after a crash; it refuses to start again until a valid
        directory is installed, and the message is read again then.
        """
        while True:
            p.renewed.clear()
            if p.watch.usable(clock.now()):
                return
            metrics.deciding.set(0)
            if p.app.should_stop or p.app.rebalancing:
                logger.error("%s; exiting without committing", p.watch.why)
                logging.shutdown()
                os._exit(EXIT_DIRECTORY_EXPIRED)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(p.renewed.wait(), timeout=1.0)

    def guard(coords: str, origin: str, stage: str, work: Callable[[], Awaitable[None]],
              event_id: str | None = None) -> Awaitable[None]:  # fmt: skip
        async def refuse(reason: str) -> None:
            await p.reject(*_split(origin), reason, event_id)

        return guarded(
            coords, stage, work, attempts=p.attempts, reject=refuse,
            count_failure=lambda s, e: metrics.failures.labels(s, e).inc(),
            max_attempts=settings.max_attempts,
        )  # fmt: skip

    async def send_routed(items: Sequence[RoutedItem]) -> None:
        encoded: dict[int, bytes] = {}  # each sighting once, whatever its partitions
        for partition, bound in sorted(group_by_partition(items, settings.partitions).items()):
            for body in encode_batches(bound, encoded=encoded):
                await _send(p.pending_sends, routed, BATCH_KEY, body, partition)
                routed_messages.inc()

    admission = ThreadPoolExecutor(ADMISSION_THREADS, thread_name_prefix="fedbroker-admit")

    def admitter() -> Callable[[Sequence[tuple[bytes, str]]], list[Admitted]]:
        """``admit_each`` under the directory, policy and time in force now."""
        return functools.partial(admit_each, directory=p.watch.current, codec=p.codec,
                                 now=clock.now(), policy=p.admission(),
                                 scopes=p.watch.consent_scopes)  # fmt: skip

    async def admit_batch(messages: Sequence[Any]) -> list[Admitted]:
        """Each message's record or error, admitted in the admission threads."""
        if not messages:
            return []
        run = admitter()
        share = -(-len(messages) // ADMISSION_THREADS)
        loop = asyncio.get_running_loop()
        parts = await asyncio.gather(*(
            loop.run_in_executor(admission, run, [(m.value or b"", m.topic) for m in chunk])
            for chunk in (messages[i:i + share] for i in range(0, len(messages), share))
        ))  # fmt: skip
        return [outcome for part in parts for outcome in part]

    async def verify_one(message: Any, admitted: list[Admitted], found: list[RoutedItem]) -> None:
        """Route the admitted record; a retry (after a bug) admits the message again."""
        if admitted:
            record = admitted.pop()
        else:
            [record] = admitter()([(message.value or b"", message.topic)])
        if isinstance(record, Exception):
            raise record
        origin = _coords(message)
        if isinstance(record, ConsentRecord):
            tokens = dict.fromkeys(t.key() for t in record.tokens + record.blocking_tokens)
            found.append(RoutedItem(ItemKind.CONSENT, tuple(tokens), origin,
                                    record=p.codec.encode(record)))  # fmt: skip
            return
        metrics.events.labels(record.source_council, record.event_type.value).inc()
        sighting = Sighting.from_event(record, retention=retention_for(p.watch.current, record))
        found.append(RoutedItem(ItemKind.EVENT, sighting.all_tokens(), origin,
                                record.published_at, sighting))  # fmt: skip

    @p.app.agent(p.topics.sources)  # type: ignore[untyped-decorator]
    async def verify(stream: Any) -> None:
        async for events in stream.take_events(VERIFY_BATCH, within=VERIFY_WITHIN_S):
            await until_deciding()
            started = time.perf_counter()
            items: list[RoutedItem] = []
            last: dict[Any, Any] = {}  # each source partition's last message, for its lag
            outcomes = await admit_batch([event.message for event in events])
            for event, outcome in zip(events, outcomes, strict=True):
                message = event.message
                found: list[RoutedItem] = []
                coords = _coords(message)
                await guard(coords, coords, "verify",
                            functools.partial(verify_one, message, [outcome], found))  # fmt: skip
                items.extend(found)
                last[message.tp] = message
                if len(items) % YIELD_EVERY == 0:
                    await asyncio.sleep(0)  # let Faust's commit and heartbeat tasks run
            await send_routed(items)
            for message in last.values():  # the gauge keeps the last value set anyway
                p.observe_lag(message)
            share = (time.perf_counter() - started) / max(len(events), 1)
            for _ in events:
                verify_seconds.observe(share)

    def on_event(item: RoutedItem, chain: AuditChain, states: dict[str, TokenState],
                 read: Read, out: Outbox) -> None:  # fmt: skip
        sighting = item.sighting
        assert sighting is not None and item.published_at is not None
        now = clock.now()
        seen_until = item.published_at + p.window
        consent = ItemConsent(p.consent_view)  # read once per item, not once per token
        added = 0
        for token in item.tokens:
            state = states[token] if token in states else read(token)
            new_state, effects = p.core.on_sighting(
                token, sighting, state, consent, chain, now,
                origin=item.origin, seen_until=seen_until, published_at=item.published_at,
            )  # fmt: skip
            states[token] = new_state
            added += new_state.sighting_count() - (
                state.sighting_count() if state is not None else 0
            )
            if effects.duplicate and token == sighting.all_tokens()[0]:
                out.sends.append(p.rejection(item.origin, "duplicate", sighting.event_id))
                out.rejected.append("duplicate")
            if effects.scores and not effects.redelivered:  # scored the first time
                out.scores.extend(effects.scores)
            for pair in effects.matches:
                metrics.matches.labels(pair.method).inc()
                out.sends.append(p.match_message(pair))
            for agreement_id, outcome in effects.decisions:
                metrics.decisions.labels(agreement_id, outcome.value).inc()
            for notification in effects.notifications:
                metrics.notified_latency.observe((now - item.published_at).total_seconds())
                metrics.notifications.labels(notification.agreement_id).inc()
                out.sends.append(p.notification_message(notification))
            out.audit.extend(effects.audit)
        metrics.sightings.inc(added)
        routed_tokens.inc(len(item.tokens))

    def on_consent(item: RoutedItem, chain: AuditChain, states: dict[str, TokenState],
                   read: Read, out: Outbox) -> None:  # fmt: skip
        assert item.record is not None
        record = p.codec.decode_as(item.record, ConsentRecord)
        if item.kind is ItemKind.CONSENT:  # the broadcast: this partition's copy first
            for held_token, entry in applied_entries(p.consent_view, record).items():
                p.consent_table[held_token] = entry
        for token in item.tokens:
            state = states[token] if token in states else read(token)
            applied = p.core.on_consent(
                token, record, state, p.consent_view.ledger_for(record), chain, clock.now(),
                forget=frozenset(item.forget),
            )  # fmt: skip
            if applied.state is not None and applied.state is not state:
                states[token] = applied.state
                metrics.sightings.inc(
                    applied.state.sighting_count()
                    - (state.sighting_count() if state is not None else 0)
                )
            out.audit.extend(applied.audit)
            for other, event_ids in applied.cascade.items():
                out.cascade.append(
                    RoutedItem(
                        ItemKind.CASCADE,
                        (other,),
                        item.origin,
                        record=item.record,
                        forget=tuple(sorted(event_ids)),
                    )
                )
        routed_tokens.inc(len(item.tokens))

    async def match_batch(event: Any) -> None:
        message = event.message
        items = decode_batch(event.value or b"")
        partition = message.partition
        chain = await p.chain_for(partition)
        writes = p.states.writes(partition)  # made at the end, as whole record batches
        batch = StateBatch(writes, p.state_cache, partition)

        def handle(item: RoutedItem, staged: dict[str, TokenState], read: Read,
                   mine: Outbox) -> None:  # fmt: skip
            kind = on_event if item.kind is ItemKind.EVENT else on_consent
            kind(item, chain, staged, read, mine)

        swept = SweepReport()

        def tick() -> AuditRecord | None:
            """Sign a checkpoint if one is due, and sweep a slice of the partition's tokens.

            In the tick, so in partition order: never beside half a batch.
            """
            checkpoint = p.checkpoint_if_due(chain)
            done = sweeper.sweep(batch, p.states, clock.now())
            swept.add(done)
            return checkpoint

        out, succeeded = await run_items(
            items, _coords(message), batch,
            handle=handle,
            tick=tick,
            guard=lambda coords, origin, work, event_id: guard(
                coords, origin, "match", work, event_id),
            chain=chain,
        )  # fmt: skip
        routed_items.inc(succeeded)
        if out.scores:
            p.keep_scores(partition, out.scores)
        emptied = still_empty(batch, swept.emptied)
        for token in emptied:
            batch.drop(token)
        states_written, rows_written = batch.flush()
        await writes.commit()
        metrics.state_writes.inc(states_written)
        metrics.sighting_rows.inc(rows_written)
        if swept.sightings or swept.seen or swept.rows or emptied or swept.invalid:
            metrics.swept.labels("sightings").inc(swept.sightings)
            metrics.swept.labels("seen").inc(swept.seen)
            metrics.swept.labels("rows").inc(swept.rows)
            metrics.swept.labels("states").inc(len(emptied))
            metrics.sightings.dec(swept.sightings)
            if swept.invalid:
                metrics.failures.labels("sweep", "StateInvalid").inc(swept.invalid)
        if out.audit:  # the head moved
            p.store_head(chain)
        for topic, key, value in out.sends:
            await _send(p.pending_sends, topic, key, value)
        for reason in out.rejected:  # counted once written
            metrics.rejected.labels(reason).inc()
        for record in out.audit:
            await _send(p.pending_sends, p.topics.audit, chain.head.chain.encode(),
                        p.codec.encode(record))  # fmt: skip
        if out.cascade:
            await send_routed(out.cascade)

    @p.app.agent(routed)  # type: ignore[untyped-decorator]
    async def match(stream: Any) -> None:
        async for event in stream.events():
            await until_deciding()
            started = time.perf_counter()
            await guard(_coords(event.message), _coords(event.message), "match",
                        functools.partial(match_batch, event))  # fmt: skip
            match_seconds.observe(time.perf_counter() - started)
            p.observe_lag(event.message)
