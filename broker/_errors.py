"""The broker's exception tree: what the matching core and the app can refuse.

Tree (mirrored in docs/errors.md)::

    FedbrokerError
    └── BrokerError                    "broker"
        ├── EncodingMismatch           "encoding-mismatch"   fuzzy encodings of different lengths
        ├── StateInvalid               "state-invalid"       table bytes that are not broker state
        ├── ThresholdInvalid           "threshold-invalid"   a threshold outside [0, 1]
        ├── KafkaUnavailable           "kafka-unavailable"   a Kafka client call failed (translated
        │                                                    at the edge, ``broker._kafka_edge``)
        ├── DirectoryNotUsable         "directory-expired", "directory-rolled-back",
        │                              "directory-serial-reused", "directory-invalid"
        └── Rejected                   a refused message (``broker._verify``); its reason
                                       codes are listed in docs/errors.md

``Rejected`` lives in ``broker._verify`` beside the checks that raise it. Messages name
event ids, agreement ids and lengths only, never a token, an encoding or any
attribute value, so they are safe to log and to use as metric labels.
"""

from __future__ import annotations

from schemas import FedbrokerError

__all__ = [
    "BrokerError",
    "DirectoryNotUsable",
    "EncodingMismatch",
    "KafkaUnavailable",
    "StateInvalid",
    "ThresholdInvalid",
]


class BrokerError(FedbrokerError):
    """Root of the broker's errors; ``reason`` is the stable metric label."""

    reason = "broker"


class EncodingMismatch(BrokerError):
    """Two fuzzy encodings cannot be compared: their lengths differ.

    Encodings of different lengths come from different encoder parameters (or a
    corrupt message); comparing them bit by bit would give a meaningless score.
    """

    reason = "encoding-mismatch"


class StateInvalid(BrokerError):
    """Serialised broker state (a Faust table value) could not be read back."""

    reason = "state-invalid"


class ThresholdInvalid(BrokerError):
    """A similarity threshold outside [0, 1], from configuration or a fit."""

    reason = "threshold-invalid"


class KafkaUnavailable(BrokerError):
    """A Kafka client call failed; the message names the operation, never the data.

    Raised in place of kafka-python's and aiokafka's own errors, so callers (the
    timers, the per-message guard) handle one type and can retry with backoff.
    """

    reason = "kafka-unavailable"


class DirectoryNotUsable(BrokerError):
    """The directory the worker holds (or was offered) must not be used to decide.

    Expired, rolled back to a lower serial than one accepted, or not verifiable:
    the worker stops deciding rather than trust keys or agreements nobody vouches
    for any more (DESIGN section 2).
    """

    reason = "directory-invalid"
