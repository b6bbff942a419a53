"""What a worker's agents and timers share: its settings, clients, tables and small helpers.

``build_app`` constructs one ``Parts`` and hands it to ``install_agents`` and
``install_timers``; nothing else holds state. The helpers here build the
messages the agents publish (a rejection, a match, a notification) and keep a
partition's audit chain, recovered from the audit topic on first use in a
process (the topic, not the table, is the chain's truth after a crash).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from broker._admission import AdmissionPolicy
from broker._audit_tail import read_chain_tail
from broker._chain_recovery import OnceChain, recover_chain
from broker._consent_view import ConsentTableView
from broker._directory_watch import DirectoryWatch
from broker._matching import Match
from broker._metrics import BrokerMetrics
from broker._notifications import seal_notification
from broker._partition import PartitionCore
from broker._pending_sends import PendingSends
from broker._poison import AttemptCounts
from broker._settings import BrokerSettings
from broker._state_cache import StateCache
from broker._threshold import ScoreHistogram
from broker._timers import Clock
from broker._topics import BrokerTopics
from broker._verify import topic_council
from consent import AuditChain, ChainHead
from schemas import AuditRecord, Codec, MatchNotification, RejectedRecord

__all__ = ["EXIT_DIRECTORY_EXPIRED", "SCORE_FLUSH", "Parts"]

#: The exit status of a worker stopped while its directory is expired.
EXIT_DIRECTORY_EXPIRED = 3
#: Blocked-pair scores buffered per partition before the histogram table is written.
SCORE_FLUSH = 50

Send = tuple[Any, bytes, bytes]


def _rejected_id(topic: str, partition: int, offset: int) -> str:
    return hashlib.sha256(f"{topic}/{partition}/{offset}".encode()).hexdigest()[:32]


@dataclass
class Parts:
    """One worker's wiring (built by ``build_app``)."""

    app: Any
    settings: BrokerSettings
    watch: DirectoryWatch
    core: PartitionCore
    key: Ed25519PrivateKey
    codec: Codec
    metrics: BrokerMetrics
    clock: Clock
    topics: BrokerTopics
    states: Any
    consent_table: Any
    heads: Any
    histograms: Any
    attempts: AttemptCounts
    policy: AdmissionPolicy
    consent_view: ConsentTableView = field(init=False)
    pending_sends: PendingSends = field(init=False)
    state_cache: StateCache = field(default_factory=StateCache)
    renewed: asyncio.Event = field(default_factory=asyncio.Event)
    chains: dict[str, AuditChain] = field(default_factory=dict)
    pending_scores: dict[int, list[float]] = field(default_factory=dict)
    read_tail: Callable[..., list[AuditRecord]] = read_chain_tail

    def __post_init__(self) -> None:
        self.consent_view = ConsentTableView(self.consent_table)
        self.pending_sends = PendingSends(self.clock.monotonic)

    @property
    def window(self) -> timedelta:
        """How long an event id stays known: its freshness window."""
        return self.policy.max_age + self.policy.max_skew

    def admission(self) -> AdmissionPolicy:
        """The policy now: the linkage-key epochs the directory in force accepts.

        ``--key-epoch`` can only narrow them: an epoch the directory has retired
        (a signed act) stays refused whatever the worker was started with.
        """
        accepted = self.watch.current.accepted_epochs
        if self.settings.accepted_epochs is not None:
            accepted &= self.settings.accepted_epochs
        return replace(self.policy, accepted_epochs=accepted)

    def rejection(self, origin: str, reason: str, event_id: str | None) -> Send:
        """The quarantine record of the message read at ``origin`` (counted once sent)."""
        topic, partition, offset = origin.rsplit("/", 2)
        record = RejectedRecord(
            rejected_id=_rejected_id(topic, int(partition), int(offset)),
            topic=topic,
            partition=int(partition),
            offset=int(offset),
            reason=reason,
            detail="",
            rejected_at=self.clock.now(),
            event_id=event_id,
            source_council=topic_council(topic),
        )
        return self.topics.rejected, record.rejected_id.encode(), self.codec.encode(record)

    async def reject(
        self, topic: str, partition: int, offset: int, reason: str, event_id: str | None
    ) -> None:
        target, key, value = self.rejection(f"{topic}/{partition}/{offset}", reason, event_id)
        await target.send(key=key, value=value)
        # Counted once written: a send Kafka refused is tried again by ``guarded``.
        self.metrics.rejected.labels(reason).inc()

    def match_message(self, pair: Match) -> Send:
        return self.topics.matches, pair.pair_id.encode(), json.dumps(pair.to_dict()).encode()

    def notification_message(self, notification: MatchNotification) -> Send:
        broker_id = self.watch.current.broker.member_id
        return (
            self.topics.notify[notification.recipient],
            notification.notification_id.encode(),
            seal_notification(notification, self.key, broker_id, self.codec),
        )

    def observe_lag(self, message: Any) -> None:
        highwater = self.app.consumer.highwater(message.tp)
        if highwater is not None:
            lag = max(int(highwater) - int(message.offset) - 1, 0)
            self.metrics.lag.labels(message.topic, str(message.partition)).set(lag)

    def chain_id(self, partition: int) -> str:
        """``<prefix>.broker/<partition>/<key tag>``: the partition's chain under this key.

        Named by key too, so a new broker key starts new chains: continued from
        the old key's head, one chain would be signed under two keys, and no
        key would verify it (``audit verify --previous-broker-key``).
        """
        raw = self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        tag = hashlib.sha256(raw).hexdigest()[:12]
        return f"{self.settings.topic_prefix}.broker/{partition}/{tag}"

    async def chain_for(self, partition: int) -> AuditChain:
        """The partition's chain, its head and recent decisions recovered from the audit topic.

        Recovered once per process (and again after the partition comes back,
        ``forget_chain``), before the first append (``broker._chain_recovery``).
        """
        chain_id = self.chain_id(partition)
        if chain_id not in self.chains:
            stored = self.heads.get(chain_id)
            now = self.clock.now()
            s = self.settings
            tail = await asyncio.get_running_loop().run_in_executor(
                None,
                functools.partial(self.read_tail, s.bootstrap, f"{s.topic_prefix}.audit",
                                  chain_id, now - self.window, s.security),
            )  # fmt: skip
            recovered = recover_chain(
                chain_id,
                ChainHead.from_dict(json.loads(stored)) if stored else None,
                tail,
                now=now,
                window=self.window,
                key=self.key.public_key(),
            )
            interval = timedelta(seconds=s.checkpoint_interval_s)
            chain = OnceChain(recovered, self.key, window=self.window, checkpoint_interval=interval)
            chain.start(now)
            self.chains[chain_id] = chain
        return self.chains[chain_id]

    def forget_chain(self, partition: int) -> None:
        """Another worker appends to a chain whose partition left: a kept head would fork it."""
        self.chains.pop(self.chain_id(partition), None)

    def store_head(self, chain: AuditChain) -> None:
        self.heads[chain.head.chain] = json.dumps(chain.head.to_dict()).encode()

    def checkpoint_if_due(self, chain: AuditChain) -> AuditRecord | None:
        now = self.clock.now()
        if not chain.checkpoint_due(now):
            return None
        return chain.checkpoint(now, reason="idle")

    def keep_scores(self, partition: int, scores: list[float]) -> None:
        """Add blocked-pair scores to this partition's histogram, in batches."""
        buffer = self.pending_scores.setdefault(partition, [])
        buffer.extend(scores)
        if len(buffer) >= SCORE_FLUSH:
            name = f"scores/{partition}"
            stored = self.histograms.get(name)
            held = ScoreHistogram.from_dict(json.loads(stored)) if stored else ScoreHistogram()
            self.histograms[name] = json.dumps(held.add(buffer).to_dict()).encode()
            buffer.clear()
