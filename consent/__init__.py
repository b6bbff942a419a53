"""Agreements, the signed directory, keys, residents' consent, decisions and the audit chain.

Pure where it can be: ``consent`` imports only ``schemas`` and does no Kafka I/O,
so an information-governance officer's questions can be answered by reading and
testing this package alone (DESIGN sections 2, 6 and 9).

Sealing is HPKE (RFC 9180) base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
AES-256-GCM, with the event id, agreement, recipient and sorted field names bound
through HPKE's ``info``. Signed records travel in ``SignedEnvelope``s
(``seal_envelope``/``open_envelope``), signed over a domain tag, the writer
schema's fingerprint and the exact body bytes.
"""

from __future__ import annotations

from consent._agreement import Agreement, ConsentModel, LawfulBasis, MatchRule, Routing
from consent._agreement_loader import load_agreement, parse_agreement
from consent._atomic import fsync_folder, make_folders, write_atomically
from consent._audit import (
    DEFAULT_CHECKPOINT_EVERY,
    DEFAULT_CHECKPOINT_INTERVAL,
    GENESIS_HASH,
    AuditChain,
    ChainHead,
    audit_bytes,
    audit_record_hash,
    audit_record_signed,
)
from consent._audit_anchors import ANCHORS_FORMAT, load_anchors, save_anchors
from consent._audit_records import (
    audit_record_from_dict,
    audit_record_to_dict,
    decisions_concerning,
)
from consent._audit_verify import (
    DEFAULT_VOUCH_MARGIN,
    AuditProblem,
    AuditReport,
    ChainSummary,
    ProblemKind,
    verify_audit,
)
from consent._batch_sealing import DEFAULT_SEALER_MAX_USES, BatchSealer
from consent._consent_state import (
    ALL_SCOPES,
    ConsentEntry,
    ConsentLedger,
    ConsentView,
    TokenConsent,
    effective_consent,
    effective_time,
    erased_since,
)
from consent._decisions import (
    CandidateDisclosure,
    Decision,
    DisclosedEvent,
    Reason,
    decide,
    decision_id,
)
from consent._devfederation import (
    AGREEMENTS_DIR,
    GM_COUNCILS,
    DevFederation,
    MemberKeys,
    build_dev_federation,
    example_agreement_paths,
)
from consent._directory import (
    DEFAULT_KEY_EPOCH,
    DIRECTORY_FORMAT,
    Directory,
    Member,
    MemberKind,
    directory_expires_in,
    parse_directory,
)
from consent._directory_signing import (
    MAX_DIRECTORY_BYTES,
    load_directory,
    sign_directory,
    verify_directory,
)
from consent._directory_watch import DirectoryChange, DirectoryWatcher, restart_reasons
from consent._durations import format_duration, parse_duration
from consent._envelope import (
    KeyForSigner,
    open_envelope,
    seal_envelope,
    sign_detached,
    verify_detached,
)
from consent._errors import (
    AgreementInvalid,
    AuditInvalid,
    ConsentError,
    ConsentStateInvalid,
    DirectoryExpired,
    DirectoryInvalid,
    DirectoryRolledBack,
    KeyInvalid,
    SealingFailed,
    SignatureInvalid,
    TimeOutOfBounds,
)
from consent._kafka_security import KafkaSecurity, Secret
from consent._keyed_hmac import HmacSha256
from consent._keys import (
    KeyPairPaths,
    generate_sealing_key,
    generate_signing_key,
    load_private_key,
    load_public_key,
    private_key_pem,
    public_key_b64,
    public_key_pem,
    sign,
    verify_signature,
    warn_if_exposed,
    write_key_pair,
    write_secret_file,
)
from consent._routing import agreements_for, consent_grantors, consent_scopes, route
from consent._sealing import (
    SEALING_SUITE,
    open_fields,
    open_sealed,
    seal,
    seal_payload,
    sealing_context,
)
from consent._serial_store import SERIAL_STORE_FORMAT, SerialStore
from consent._time_bounds import (
    DEFAULT_CLOCK_SKEW,
    DEFAULT_OCCURRED_FLOOR,
    DEFAULT_RECORDED_FLOOR,
    check_times,
    time_problem,
)
from consent._topics import NOTIFY_ROLE, notify_topic

__all__ = [
    "AGREEMENTS_DIR",
    "ALL_SCOPES",
    "ANCHORS_FORMAT",
    "DEFAULT_CHECKPOINT_EVERY",
    "DEFAULT_CHECKPOINT_INTERVAL",
    "DEFAULT_CLOCK_SKEW",
    "DEFAULT_KEY_EPOCH",
    "DEFAULT_OCCURRED_FLOOR",
    "DEFAULT_RECORDED_FLOOR",
    "DEFAULT_SEALER_MAX_USES",
    "DEFAULT_VOUCH_MARGIN",
    "DIRECTORY_FORMAT",
    "GENESIS_HASH",
    "GM_COUNCILS",
    "MAX_DIRECTORY_BYTES",
    "NOTIFY_ROLE",
    "SEALING_SUITE",
    "SERIAL_STORE_FORMAT",
    "Agreement",
    "AgreementInvalid",
    "AuditChain",
    "AuditInvalid",
    "AuditProblem",
    "AuditReport",
    "BatchSealer",
    "CandidateDisclosure",
    "ChainHead",
    "ChainSummary",
    "ConsentEntry",
    "ConsentError",
    "ConsentLedger",
    "ConsentModel",
    "ConsentStateInvalid",
    "ConsentView",
    "Decision",
    "DevFederation",
    "Directory",
    "DirectoryChange",
    "DirectoryExpired",
    "DirectoryInvalid",
    "DirectoryRolledBack",
    "DirectoryWatcher",
    "DisclosedEvent",
    "HmacSha256",
    "KafkaSecurity",
    "KeyForSigner",
    "KeyInvalid",
    "KeyPairPaths",
    "LawfulBasis",
    "MatchRule",
    "Member",
    "MemberKeys",
    "MemberKind",
    "ProblemKind",
    "Reason",
    "Routing",
    "SealingFailed",
    "Secret",
    "SerialStore",
    "SignatureInvalid",
    "TimeOutOfBounds",
    "TokenConsent",
    "agreements_for",
    "audit_bytes",
    "audit_record_from_dict",
    "audit_record_hash",
    "audit_record_signed",
    "audit_record_to_dict",
    "build_dev_federation",
    "check_times",
    "consent_grantors",
    "consent_scopes",
    "decide",
    "decision_id",
    "decisions_concerning",
    "directory_expires_in",
    "effective_consent",
    "effective_time",
    "erased_since",
    "example_agreement_paths",
    "format_duration",
    "fsync_folder",
    "generate_sealing_key",
    "generate_signing_key",
    "load_agreement",
    "load_anchors",
    "load_directory",
    "load_private_key",
    "load_public_key",
    "make_folders",
    "notify_topic",
    "open_envelope",
    "open_fields",
    "open_sealed",
    "parse_agreement",
    "parse_directory",
    "parse_duration",
    "private_key_pem",
    "public_key_b64",
    "public_key_pem",
    "restart_reasons",
    "route",
    "save_anchors",
    "seal",
    "seal_envelope",
    "seal_payload",
    "sealing_context",
    "sign",
    "sign_detached",
    "sign_directory",
    "time_problem",
    "verify_audit",
    "verify_detached",
    "verify_directory",
    "verify_signature",
    "warn_if_exposed",
    "write_atomically",
    "write_key_pair",
    "write_secret_file",
]
