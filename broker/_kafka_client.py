"""How the broker meets its cluster: Faust's credentials and the replication it asks for.

The credentials come from one ``consent.KafkaSecurity`` (built by the CLI from
files or ``FEDBROKER_KAFKA_*``); Faust wants them as its own credentials object,
kafka-python (topic creation, metadata, the histogram read) as keyword
arguments. Replication follows the cluster unless an operator says otherwise:
a topic made with factor 1 on three nodes cannot fail over (issue 13).
"""

from __future__ import annotations

import logging
from typing import Any

from broker._errors import BrokerError
from broker._kafka_edge import kafka_errors
from consent import KafkaSecurity

__all__ = ["MAX_REPLICATION", "cluster_replication", "faust_credentials", "replication_configs"]

logger = logging.getLogger(__name__)

MAX_REPLICATION = 3
"""Kafka's usual factor: one node may be down for maintenance while another fails."""


def faust_credentials(security: KafkaSecurity) -> Any:
    """Faust's credentials object for these settings, or None for an unsecured client."""
    import faust

    if security.protocol == "PLAINTEXT":
        return None
    if security.sasl_username is not None and security.sasl_password is not None:
        return faust.SASLCredentials(
            username=security.sasl_username,
            password=security.sasl_password.reveal(),
            ssl_context=security.ssl_context(),
            mechanism=security.sasl_mechanism,
        )
    return faust.SSLCredentials(security.ssl_context())


def cluster_replication(bootstrap: str, security: KafkaSecurity, requested: int | None) -> int:
    """The replication factor for the topics the broker creates.

    ``requested`` wins when given; otherwise the cluster's broker count, capped
    at ``MAX_REPLICATION``, so one node gives 1 and three or more give 3.

    Raises:
        BrokerError: (reason ``replication``) the request exceeds the live brokers.
        KafkaUnavailable: the cluster cannot be asked.
    """
    from kafka import KafkaAdminClient

    with kafka_errors("counting the cluster's brokers"):
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, **security.kafka_python())
        try:
            brokers = len(admin.describe_cluster()["brokers"])
        finally:
            admin.close()
    if requested is None:
        chosen = max(1, min(brokers, MAX_REPLICATION))
        logger.info("replication %d (cluster of %d broker(s))", chosen, brokers)
        return chosen
    if requested < 1 or requested > brokers:
        raise BrokerError(
            f"--replication {requested} needs as many live brokers; the cluster has {brokers}",
            reason="replication",
        )
    return requested


def replication_configs(replication: int) -> dict[str, str]:
    """Topic settings that make ``acks=all`` mean something: with three copies, two must
    acknowledge, so one node can fail without loss or a stalled producer."""
    return {"min.insync.replicas": "2"} if replication >= MAX_REPLICATION else {}
