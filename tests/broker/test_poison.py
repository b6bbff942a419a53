"""One bad message never stops a stream; a failing timer never kills the worker (item 3)."""

from __future__ import annotations

import asyncio

import aiokafka.errors
import kafka.errors
import pytest

from broker import Rejected, StateInvalid
from broker._errors import KafkaUnavailable
from broker._histograms import read_histograms
from broker._metrics import BrokerMetrics
from broker._poison import AttemptCounts, Backoff, guarded
from broker.app import _side

COORDS = "fed.events.E08000001/2/41"


class Log:
    def __init__(self) -> None:
        self.persisted: list[tuple[str, int | None]] = []
        self.rejected: list[str] = []
        self.failures: list[tuple[str, str]] = []
        self.slept: list[float] = []

    async def persist(self, coords: str, count: int | None) -> None:
        self.persisted.append((coords, count))

    async def reject(self, reason: str) -> None:
        self.rejected.append(reason)

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


def _run(work, log: Log, held: dict[str, int] | None = None, **kwargs) -> AttemptCounts:
    attempts = AttemptCounts.of(log.persist, held or {})
    asyncio.run(guarded(COORDS, "verify", work, attempts=attempts, reject=log.reject,
                        count_failure=lambda s, e: log.failures.append((s, e)),
                        sleep=log.sleep, **kwargs))  # fmt: skip
    return attempts


def test_a_refusal_is_rejected_once_with_its_reason_and_never_retried():
    log, calls = Log(), []

    async def work() -> None:
        calls.append(1)
        raise Rejected("no", reason="bad-signature")

    _run(work, log)
    assert calls == [1] and log.rejected == ["bad-signature"] and log.slept == []


def test_any_typed_error_is_quarantined_with_its_own_reason():
    log = Log()

    async def work() -> None:
        raise StateInvalid("token state bytes are not JSON")

    _run(work, log)
    assert log.rejected == ["state-invalid"]


def test_a_bug_is_retried_a_bounded_number_of_times_then_quarantined():
    """An OverflowError raised on every attempt used to kill the agent, and again after restart."""
    log, calls = Log(), []

    async def work() -> None:
        calls.append(1)
        raise OverflowError("date value out of range")

    attempts = _run(work, log)
    assert len(calls) == 3 and log.rejected == ["internal-error"]
    assert log.persisted == [(COORDS, 1), (COORDS, 2), (COORDS, 3), (COORDS, None)]
    assert log.failures == [("verify", "OverflowError")] * 3
    assert len(log.slept) == 2 and log.slept[1] > log.slept[0], "backoff grows"
    assert attempts.get(COORDS) == 0


def test_the_attempt_count_survives_a_restart():
    """Two attempts failed before the worker restarted: one more, then quarantine."""
    log, calls = Log(), []

    async def work() -> None:
        calls.append(1)
        raise RuntimeError("still broken")

    _run(work, log, held={COORDS: 2})
    assert len(calls) == 1 and log.rejected == ["internal-error"]


def test_a_transient_failure_passes_and_its_count_is_forgotten():
    log, calls = Log(), []

    async def work() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("once")

    _run(work, log)
    assert len(calls) == 2 and log.rejected == []
    assert log.persisted == [(COORDS, 1), (COORDS, None)]


def test_kafka_being_down_never_quarantines_a_good_message():
    log, calls = Log(), []

    async def work() -> None:
        calls.append(1)
        if len(calls) <= 5:
            raise KafkaUnavailable("sending: KafkaConnectionError")

    _run(work, log)
    assert len(calls) == 6 and log.rejected == [] and log.persisted == []
    assert log.failures == [("verify", "kafka-unavailable")] * 5


def test_backoff_is_capped():
    backoff = Backoff(base_s=1, cap_s=8)
    assert [backoff.failed(0) for _ in range(6)] == [1, 2, 4, 8, 8, 8]
    assert not backoff.ready(7.9) and backoff.ready(8)
    backoff.succeeded()
    assert backoff.ready(0)


def test_reading_histograms_with_kafka_down_raises_the_brokers_own_error(monkeypatch):
    import broker._histograms as histograms

    class Down:
        def __init__(self, **_: object) -> None:
            raise kafka.errors.KafkaConnectionError()

    monkeypatch.setattr(histograms, "KafkaConsumer", Down)
    with pytest.raises(KafkaUnavailable) as caught:
        read_histograms("127.0.0.1:1", "changelog")
    assert caught.value.reason == "kafka-unavailable"
    assert isinstance(caught.value.__cause__, kafka.errors.KafkaConnectionError)


def test_a_timer_that_fails_is_counted_backs_off_and_does_not_raise():
    """The refit timer's KafkaConnectionError used to kill the worker when a node died."""
    metrics, backoff, calls = BrokerMetrics(), Backoff(base_s=60), []

    async def refit() -> None:
        calls.append(1)
        raise KafkaUnavailable("reading changelog: KafkaConnectionError")

    asyncio.run(_side("refit", backoff, metrics, refit))
    asyncio.run(_side("refit", backoff, metrics, refit))  # inside the backoff: not tried
    assert calls == [1]
    sample = metrics.registry.get_sample_value(
        "fedbroker_broker_side_errors_total", {"task": "refit", "error": "KafkaUnavailable"}
    )
    assert sample == 1.0


@pytest.mark.parametrize(
    "error",
    [aiokafka.errors.KafkaTimeoutError, aiokafka.errors.KafkaConnectionError,
     aiokafka.errors.NotLeaderForPartitionError, kafka.errors.KafkaConnectionError],
    ids=lambda e: f"{e.__module__.split('.')[0]}-{e.__name__}",
)  # fmt: skip
def test_a_raw_kafka_client_error_in_a_send_is_waited_out_not_the_messages_fault(error):
    """A send inside the stage failed with the client's own error: once counted as the
    message's attempt, so three of them quarantined a good message as internal-error."""
    log, calls = Log(), []

    async def work() -> None:
        calls.append(1)
        if len(calls) <= 5:
            raise error()

    _run(work, log)
    assert len(calls) == 6 and log.rejected == [] and log.persisted == []
    assert log.failures == [("verify", "kafka-unavailable")] * 5
    assert len(log.slept) == 5 and log.slept[-1] > log.slept[0], "backs off"


class FlakyLog(Log):
    """Kafka refuses the first write of a rejection and of an attempt count."""

    def __init__(self) -> None:
        super().__init__()
        self.refused: list[str] = []

    async def persist(self, coords: str, count: int | None) -> None:
        if "persist" not in self.refused:
            self.refused.append("persist")
            raise aiokafka.errors.KafkaTimeoutError()
        await super().persist(coords, count)

    async def reject(self, reason: str) -> None:
        if "reject" not in self.refused:
            self.refused.append("reject")
            raise aiokafka.errors.KafkaConnectionError()
        await super().reject(reason)


def test_a_rejection_kafka_would_not_take_is_retried_not_raised():
    """The guard's own send to the rejected topic used to let aiokafka's error escape."""
    log = FlakyLog()

    async def work() -> None:
        raise Rejected("no", reason="bad-signature")

    _run(work, log)
    assert log.refused == ["reject"] and log.rejected == ["bad-signature"]
    assert log.failures == [("verify", "kafka-unavailable")]


def test_an_attempt_count_kafka_would_not_take_is_written_again_not_counted_twice():
    log, calls = FlakyLog(), []

    async def work() -> None:
        calls.append(1)
        raise OverflowError("date value out of range")

    _run(work, log)
    assert len(calls) == 3 and log.rejected == ["internal-error"]
    assert log.persisted == [(COORDS, 1), (COORDS, 2), (COORDS, 3), (COORDS, None)]
    assert ("verify", "kafka-unavailable") in log.failures
