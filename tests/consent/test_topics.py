"""The per-service notification topic: one name every party computes the same way."""

from __future__ import annotations

import pytest

from consent import DirectoryInvalid, notify_topic


def test_a_service_topic_is_prefix_notify_service():
    assert notify_topic("fed", "E08000009.revenues") == "fed.notify.E08000009.revenues"
    assert notify_topic("demo2026", "gmca.housing") != notify_topic("demo2026", "gmca.health")


@pytest.mark.parametrize("service", ["", "svc/../x", "a b", "é", "x" * 250])
def test_a_service_id_that_cannot_name_a_kafka_topic_is_refused(service):
    with pytest.raises(DirectoryInvalid) as caught:
        notify_topic("fed", service)
    assert caught.value.reason == "unknown-topic"
