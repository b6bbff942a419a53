"""The council connector: source records in, signed, sealed, pseudonymous events out.

The only package that sees personal data in clear and holds the linkage key.
It imports ``schemas`` and ``consent``; the broker never imports it (DESIGN 9).
Linkage: ``normalise_identity`` -> ``Identity`` -> ``Tokeniser.tokenise``.
Pipeline: ``load_config`` -> ``open_connector`` -> ``Connector.run``.
"""

from __future__ import annotations

from connectors._assembly import open_connector
from connectors._bloom import BLOOM_BITS, ENCODING, BloomEncoder, bigrams
from connectors._config import ConnectorConfig, SourceConfig, load_config
from connectors._dates import normalise_date_of_birth
from connectors._errors import (
    BuildFailed,
    ConfigInvalid,
    ConnectorError,
    InvalidIdentifier,
    KafkaUnavailable,
    KeyEpochNotAccepted,
    MappingInvalid,
    OutboxError,
    SigningKeyMismatch,
    SourceError,
    TableUnreadable,
)
from connectors._events import EventFactory, event_id_for
from connectors._folder_source import MAX_LINE_CHARS, FolderSource
from connectors._ingest_pass import IngestReport
from connectors._mapping import SourceMapping, load_mapping, parse_mapping
from connectors._metrics import ConnectorMetrics
from connectors._normalise import (
    MAX_VALUE_CHARS,
    DroppedField,
    Identity,
    normalise_fields,
    normalise_free_text,
    normalise_identity,
    normalise_name,
    normalise_nhs_number,
    normalise_nino,
    normalise_postcode,
    normalise_uprn,
    postcode_outward,
)
from connectors._outbox import Outbox, OutboxEntry, QuarantineEntry
from connectors._postgres_source import PostgresSource
from connectors._publisher import Publisher, PublishOutcome
from connectors._rows import MAX_CELL_CHARS, EncodedRow, encode_row, encode_rows, row_tokens
from connectors._runner import Connector
from connectors._sources import SourceRow
from connectors._synth import SyntheticFederation, generate_federation, nhs_number, ni_number
from connectors._timestamps import TimeBounds, parse_timestamp, time_bound_reason
from connectors._tokens import (
    LinkageKey,
    Tokeniser,
    Tokens,
    blocking_keys,
    generate_linkage_key,
    load_linkage_keys,
    opaque_reference,
)

__all__ = [
    "BLOOM_BITS",
    "ENCODING",
    "MAX_CELL_CHARS",
    "MAX_LINE_CHARS",
    "MAX_VALUE_CHARS",
    "BloomEncoder",
    "BuildFailed",
    "ConfigInvalid",
    "Connector",
    "ConnectorConfig",
    "ConnectorError",
    "ConnectorMetrics",
    "DroppedField",
    "EncodedRow",
    "EventFactory",
    "FolderSource",
    "Identity",
    "IngestReport",
    "InvalidIdentifier",
    "KafkaUnavailable",
    "KeyEpochNotAccepted",
    "LinkageKey",
    "MappingInvalid",
    "Outbox",
    "OutboxEntry",
    "OutboxError",
    "PostgresSource",
    "PublishOutcome",
    "Publisher",
    "QuarantineEntry",
    "SigningKeyMismatch",
    "SourceConfig",
    "SourceError",
    "SourceMapping",
    "SourceRow",
    "SyntheticFederation",
    "TableUnreadable",
    "TimeBounds",
    "Tokeniser",
    "Tokens",
    "bigrams",
    "blocking_keys",
    "encode_row",
    "encode_rows",
    "event_id_for",
    "generate_federation",
    "generate_linkage_key",
    "load_config",
    "load_linkage_keys",
    "load_mapping",
    "nhs_number",
    "ni_number",
    "normalise_date_of_birth",
    "normalise_fields",
    "normalise_free_text",
    "normalise_identity",
    "normalise_name",
    "normalise_nhs_number",
    "normalise_nino",
    "normalise_postcode",
    "normalise_uprn",
    "opaque_reference",
    "open_connector",
    "parse_mapping",
    "parse_timestamp",
    "postcode_outward",
    "row_tokens",
    "time_bound_reason",
]
