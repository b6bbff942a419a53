"""The thin layer that composes both sides: the ``fedbroker`` CLI and local tooling.

It may import every package below it (broker, connectors, consent, schemas) and
holds no logic those packages should own (DESIGN section 9). ``fedbroker.link``
(the batch dry run of linkage) is a public module of its own, imported by name,
so that ``import fedbroker`` stays light for commands that never link.
"""

from __future__ import annotations

from fedbroker._errors import CommandError
from fedbroker._localkafka import KAFKA_VERSION, KafkaCluster, LocalKafkaError
from fedbroker._topics import DEFAULT_READ_TIMEOUT_S, TopicReadError, TopicRecord, read_to_end

__all__ = [
    "DEFAULT_READ_TIMEOUT_S",
    "KAFKA_VERSION",
    "CommandError",
    "KafkaCluster",
    "LocalKafkaError",
    "TopicReadError",
    "TopicRecord",
    "read_to_end",
]
