"""The thin layer that composes both sides: the ``fedbroker`` CLI and local tooling.

It may import every package below it (broker, connectors, consent, schemas) and
holds no logic those packages should own (DESIGN section 9).
"""

from __future__ import annotations

from fedbroker._errors import CommandError
from fedbroker._localkafka import KAFKA_VERSION, KafkaCluster, LocalKafkaError

__all__ = ["KAFKA_VERSION", "CommandError", "KafkaCluster", "LocalKafkaError"]
