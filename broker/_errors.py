"""The broker's exception tree: what the matching core and the app can refuse.

Tree (mirrored in docs/errors.md)::

    FedbrokerError
    └── BrokerError                    "broker"
        ├── EncodingMismatch           "encoding-mismatch"   fuzzy encodings of different lengths
        ├── StateInvalid               "state-invalid"       table bytes that are not broker state
        └── ThresholdInvalid           "threshold-invalid"   a threshold outside [0, 1]

The app engineer appends the Faust app's leaves below these. Messages name
event ids, agreement ids and lengths only, never a token, an encoding or any
attribute value, so they are safe to log and to use as metric labels.
"""

from __future__ import annotations

from schemas import FedbrokerError

__all__ = ["BrokerError", "EncodingMismatch", "StateInvalid", "ThresholdInvalid"]


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
