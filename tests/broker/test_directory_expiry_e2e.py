"""Past its directory's expiry a worker stops deciding, says why, and resumes on a new one.

Through real Kafka: once a worker is up, the authority signs serial 2, valid
for a minute and a half (long enough for a slow worker's first poll). Once it
has expired the worker reports ``fedbroker_broker_deciding 0`` and logs why;
two councils' events that would match are left unread (nothing is routed,
decided or notified under a directory nobody vouches for any more). The
authority signs serial 3; the worker picks it up without a restart and
notifies the match (issue 11, item 5). The short-lived directory is signed
only once the worker is up, so a slow start cannot use up its life.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from kafka import KafkaProducer

from connectors import EventFactory, SourceRow, Tokeniser
from consent import build_dev_federation, load_private_key, sign_directory
from schemas import Codec
from tests.broker.test_partition import FROM, KEY, MAPPING, PERSON, TO
from tests.broker.workers import metric, start_worker, stop_worker
from tests.connectors.conftest import read_topic
from tests.ports import free_port
from tests.wire import read_notifications

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

SHORT_LIFE = timedelta(seconds=90)


def _until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.5)


def _resign(federation, *, serial: int, life: timedelta) -> None:
    """The authority signs the same directory again, as ``serial``, valid for ``life``."""
    document = yaml.safe_load(federation.document_path.read_text())
    now = datetime.now(UTC).replace(microsecond=0)
    document.update(serial=serial, issued_at=now.isoformat(),
                    expires_at=(now + life).isoformat())  # fmt: skip
    authority = load_private_key(federation.keys[federation.authority].signing.private)
    federation.directory_path.write_bytes(
        sign_directory(yaml.safe_dump(document, sort_keys=False), authority)
    )


def test_an_expired_directory_stops_decisions_until_a_new_one_is_installed(
    kafka_bootstrap, topic_factory, tmp_path
):
    issued = datetime.now(UTC)
    federation = build_dev_federation(tmp_path / "fed", councils=[FROM, TO], now=issued)
    prefix, group, port = topic_factory("fed"), topic_factory("broker"), free_port()
    codec = Codec()

    def envelope(council: str, code: str, day: str, ref: str) -> bytes:
        factory = EventFactory(council, federation.signing_key(council), federation.load(issued),
                               Tokeniser([KEY]), KEY)  # fmt: skip
        row = SourceRow("x.csv", 1, {**PERSON, "e": code, "t": day, "ref": ref})
        return factory.envelope(factory.event(row, MAPPING, now=datetime.now(UTC)), codec)

    today = datetime.now(UTC).date()
    moved_out = envelope(FROM, "C", (today - timedelta(days=5)).isoformat(), "a-1")
    moved_in = envelope(TO, "M", (today - timedelta(days=2)).isoformat(), "b-7")
    worker = start_worker(kafka_bootstrap, federation, group=group, prefix=prefix,
                          data_dir=tmp_path / "broker", log=tmp_path / "worker.log",
                          options=["--metrics-port", str(port)])  # fmt: skip
    try:
        _until(lambda: metric(port, "fedbroker_broker_deciding") == 1.0, 120, "worker up")
        _resign(federation, serial=2, life=SHORT_LIFE)
        _until(lambda: metric(port, "fedbroker_broker_directory_serial") == 2.0, 60, "serial 2")
        _until(lambda: metric(port, "fedbroker_broker_deciding") == 0.0, 120, "expiry seen")
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        producer.send(f"{prefix}.events.{FROM}", key=b"a", value=moved_out)
        producer.send(f"{prefix}.events.{TO}", key=b"b", value=moved_in)
        producer.flush()
        # Several directory polls pass: nothing is routed while the directory is expired.
        polls = time.monotonic() + 12
        while time.monotonic() < polls:
            routed = read_topic(kafka_bootstrap, f"{prefix}.broker.routed")
            assert [k for k, _ in routed if k != b"\x00tick"] == [], "an event was routed"
            time.sleep(2)
        assert (metric(port, "fedbroker_broker_directory_expires_in_seconds") or 0) < 0
        assert (
            "not deciding until a valid one is installed" in (tmp_path / "worker.log").read_text()
        )

        _resign(federation, serial=3, life=timedelta(days=30))
        _until(lambda: metric(port, "fedbroker_broker_deciding") == 1.0, 60, "renewed")
        _until(lambda: bool(read_notifications(kafka_bootstrap, prefix, federation.load())),
               120, "the match is notified once a valid directory is in force")  # fmt: skip
        assert metric(port, "fedbroker_broker_directory_serial") == 3.0
        assert worker.poll() is None
    finally:
        # Stopped while expired, a worker exits at once without committing (not tested here).
        stop_worker(worker)
