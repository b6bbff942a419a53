"""A worker's topics exist, and are in the brokers' metadata, before it joins its group.

Faust used to create the tables' changelog topics itself just before joining;
on a fresh cluster they were not in the metadata yet and the first assignment
went without them ("Ignoring missing topic"), so the next metadata refresh
rebalanced the group. ``declare_topics`` now creates them with the rest.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import faust
import pytest
from kafka import KafkaAdminClient, KafkaConsumer
from kafka.admin import ConfigResource, ConfigResourceType

from broker._topics import changelog_configs, declare_topics
from consent import KafkaSecurity


def _app(app_id: str = "broker-topics") -> faust.App:
    return faust.App(app_id, broker="kafka://127.0.0.1:1", store="memory://")


def test_a_changelog_is_made_as_faust_would_make_it():
    app = _app()
    plain = app.Table("token-state", key_type=str, value_type=bytes, partitions=3)
    hourly = app.Table("counts", partitions=3).tumbling(timedelta(hours=1),
                                                        expires=timedelta(hours=2))  # fmt: skip
    windowed = hourly.table
    assert changelog_configs([plain], 3) == {
        "broker-topics-token-state-changelog": {"cleanup.policy": "compact"}
    }
    assert changelog_configs([windowed], 3) == {
        "broker-topics-counts-changelog": {
            "cleanup.policy": "compact,delete",
            "retention.ms": str(2 * 3600 * 1000),
        }
    }


def test_a_changelog_of_another_partition_count_is_refused():
    table = _app().Table("token-state", partitions=4)
    with pytest.raises(ValueError, match="4 partitions, not 3"):
        changelog_configs([table], 3)


@pytest.mark.kafka
def test_changelogs_are_created_and_visible_before_the_worker_starts(
    kafka_bootstrap, topic_factory
):
    prefix, app = topic_factory("fed"), _app(topic_factory("broker"))
    tables = [app.Table(name, key_type=str, value_type=bytes, partitions=3)
              for name in ("token-state", "audit-heads")]  # fmt: skip
    declare_topics(app, prefix=prefix, councils=["E08000001"], services=[], partitions=3,
                   replication=1, security=KafkaSecurity(), bootstrap=kafka_bootstrap,
                   tables=tables)  # fmt: skip
    names = [t.changelog_topic_name for t in tables]
    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap)
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        # declare_topics returned only once a client sees them: no wait here
        assert {n: len(consumer.partitions_for_topic(n) or ()) for n in names} == dict.fromkeys(
            names, 3
        )
        described: Any = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, n) for n in names]
        )
        settings = {n: described["topic"][n]["cleanup.policy"] for n in names}
        policies = {n: s["value"] if isinstance(s, dict) else s for n, s in settings.items()}
        assert policies == dict.fromkeys(names, "compact")
    finally:
        consumer.close()
        admin.close()
