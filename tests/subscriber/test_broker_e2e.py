"""The real broker worker end to end: councils' connectors, a worker, the subscriber library."""

from __future__ import annotations

from datetime import timedelta

import pytest

from consent import notify_topic
from subscriber import OpenedNotification
from tests.broker.test_app_e2e import DAY0, PERSON, _write
from tests.broker.workers import start_worker
from tests.connectors.conftest import (  # noqa: F401 - fixtures
    council_factory,
    linkage_keys,
    read_topic,
    run_connector,
    synthetic,
)
from tests.subscriber.conftest import publish
from tests.subscriber.factory import FROM, SERVICE, TO

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_a_move_reaches_the_service_once_with_only_the_fields_its_agreement_grants(
    council_factory, kafka_bootstrap, federation, topic_factory, tmp_path, subscriber_factory
):
    prefix = topic_factory("fed")
    origin = council_factory(FROM, prefix=prefix)
    destination = council_factory(TO, prefix=prefix)
    _write(
        origin.inbox,
        [{**PERSON, "ref": "A-1", "event": "CT_CLOSE", "event_date": DAY0.isoformat()}],
    )
    moved = (DAY0 + timedelta(days=3)).isoformat()
    _write(destination.inbox, [{**PERSON, "ref": "B-7", "event": "MOVE", "event_date": moved,
                                "postcode": "M32 0AA", "address_1": "2 Chester Rd"}])  # fmt: skip
    worker = start_worker(kafka_bootstrap, federation, group=topic_factory("broker"),
                          prefix=prefix, data_dir=tmp_path / "broker",
                          log=tmp_path / "worker.log")  # fmt: skip
    topic = notify_topic(prefix, SERVICE)
    try:
        run_connector(origin, "--once")
        run_connector(destination, "--once")
        received: list[OpenedNotification] = []
        subscriber = subscriber_factory(topic, received=received)
        subscriber.run(max_delivered=1, idle_timeout=120)
        assert len(received) == 1, (tmp_path / "worker.log").read_text()[-3000:]
        opened = {k: v for fields in received[0].fields.values() for k, v in fields.items()}
        assert opened["given_name"] == "Alice" and opened["postcode"] == "M32 0AA"
        assert "nhs_number" not in opened and "nino" not in opened
        assert {e.source_council for e in received[0].events} == {FROM, TO}

        # The broker's own message again on the topic (a replay): not handed over twice.
        publish(
            kafka_bootstrap, topic, [(k.decode(), v) for k, v in read_topic(kafka_bootstrap, topic)]
        )
        subscriber.run(idle_timeout=5)
        assert len(received) == 1 and subscriber.metrics.tally["duplicate"] >= 1
        assert subscriber.dead_letters.read() == []
    finally:
        worker.terminate()
        worker.wait(timeout=60)
