"""Connector errors: what can go wrong between a council's records and Kafka.

Tree (mirrored in docs/errors.md)::

    FedbrokerError
    └── ConnectorError
        ├── InvalidIdentifier      "invalid-<field>": a value failed normalisation
        ├── MappingInvalid         "mapping-invalid": a mapping file is wrong (names the key)
        ├── ConfigInvalid          "config-invalid": a connector config file is wrong
        ├── SourceError            "source-unreadable": a file or table cannot be read
        │   └── TableUnreadable    the same, for a table: keeps the SQLSTATE, not the text
        ├── OutboxError            "outbox-failed": the local outbox cannot be written
        ├── BuildFailed            "build-failed": build workers fail on row after row
        └── KafkaUnavailable       "kafka-unavailable": Kafka did not acknowledge in time

Messages name fields, files, rows and reasons, never the values themselves:
the connector is the one place personal data exists in clear.
"""

from __future__ import annotations

from schemas import FedbrokerError

__all__ = [
    "BuildFailed",
    "ConfigInvalid",
    "ConnectorError",
    "InvalidIdentifier",
    "KafkaUnavailable",
    "MappingInvalid",
    "OutboxError",
    "SourceError",
    "TableUnreadable",
]


class ConnectorError(FedbrokerError):
    """Base of every connector error."""

    reason = "connector-error"


class InvalidIdentifier(ConnectorError):
    """A value of a row failed validation; it never becomes a token or a message.

    Mostly an identifier; also a row's time (``occurred_at``/``recorded_at``,
    with the time-bound codes), the row as a whole (``row``: ``not-json``,
    ``cell-too-large``, ``unexpected-<type>``) or its encoded ``record``
    (``record-too-large``). ``field`` names which, ``code`` is the short reason
    (``bad-check-digit``, ``bad-format``, ...); the value is never kept.
    """

    reason = "invalid-identifier"

    def __init__(self, field: str, code: str) -> None:
        super().__init__(f"{field}: {code}", reason=f"invalid-{field}")
        self.field = field
        self.code = code


class MappingInvalid(ConnectorError):
    reason = "mapping-invalid"


class ConfigInvalid(ConnectorError):
    reason = "config-invalid"


class SigningKeyMismatch(ConfigInvalid):
    """The connector's key is not the one the directory lists for its council:
    the broker would refuse every event it signed (``wrong-council``)."""

    reason = "signing-key-mismatch"


class KeyEpochNotAccepted(ConfigInvalid):
    """The newest linkage-key epoch is not among the directory's accepted ones:
    the broker would refuse every event it made (``key-epoch``)."""

    reason = "key-epoch-not-in-directory"


class SourceError(ConnectorError):
    reason = "source-unreadable"


class TableUnreadable(SourceError):
    """PostgreSQL refused a table read: the error's class and SQLSTATE, never its text.

    A server message quotes the value it could not take (``invalid input syntax
    for type date: "..."``, ``DETAIL: Key (name)=(...)``), so the driver's
    exception is neither kept nor chained: a traceback printing ``__cause__``
    put a resident's value in the connector's log. The SQLSTATE (``22007``)
    names the kind of fault, which is what an operator needs to fix it.
    """

    def __init__(self, source: str, error: str, sqlstate: str | None) -> None:
        code = sqlstate or "no-sqlstate"
        super().__init__(f"source {source}: {error} (SQLSTATE {code})")
        self.source = source
        self.error = error
        self.sqlstate = sqlstate


class OutboxError(ConnectorError):
    reason = "outbox-failed"


class BuildFailed(ConnectorError):
    """Build workers fail whatever row they build: the host, not the data, is at fault.

    The step in hand is not committed; the next reading pass tries it again.
    """

    reason = "build-failed"


class KafkaUnavailable(ConnectorError):
    reason = "kafka-unavailable"
