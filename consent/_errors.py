"""Consent's exception tree: every refusal of a key, directory or agreement.

Tree (mirrored in docs/errors.md)::

    FedbrokerError
    └── ConsentError                   "consent"
        ├── KeyInvalid                 "key-invalid"        not the expected kind of key
        ├── SignatureInvalid           "signature-invalid"; also "wrong-domain" (signed as
        │                              another kind), "unknown-signer" (no trusted key)
        ├── SealingFailed              "sealing-failed"     wrong key, event, labels or bytes;
        │                              also "fields-mismatch" (opened names differ from declared)
        ├── DirectoryInvalid           "directory-invalid"  malformed content (every problem listed)
        │   │                          also: "directory-unsigned", "directory-signature-invalid",
        │   │                          "directory-signer-mismatch", "unknown-member", "no-key",
        │   │                          "unknown-topic", "serial-store-invalid",
        │   │                          "directory-too-large" (over 4 MiB: refused unread)
        │   ├── DirectoryExpired       "directory-expired", "directory-not-yet-valid"
        │   └── DirectoryRolledBack    "directory-rolled-back"  a lower serial than one accepted,
        │                              or "directory-serial-reused" (same serial, other content)
        ├── AgreementInvalid           "agreement-invalid"  every problem, each with its line
        ├── ConsentStateInvalid        "consent-state-invalid"
        ├── TimeOutOfBounds            "recorded-in-future", "recorded-before-floor",
        │                              "occurred-in-future", "occurred-before-floor",
        │                              "time-without-zone"
        └── AuditInvalid               "audit-invalid"      a record or head cannot be built
                                       also: "anchors-invalid" (the anchors file)

Messages name files, lines, member ids and agreement ids; they never contain a
token, a key, a plaintext or any personal data, so they are safe to log.
"""

from __future__ import annotations

from schemas import FedbrokerError

__all__ = [
    "AgreementInvalid",
    "AuditInvalid",
    "ConsentError",
    "ConsentStateInvalid",
    "DirectoryExpired",
    "DirectoryInvalid",
    "DirectoryRolledBack",
    "KeyInvalid",
    "SealingFailed",
    "SignatureInvalid",
    "TimeOutOfBounds",
]


class ConsentError(FedbrokerError):
    """Base of every error raised by ``consent``."""

    reason = "consent"


class KeyInvalid(ConsentError):
    """A key file or value is missing, malformed or of the wrong kind."""

    reason = "key-invalid"


class SignatureInvalid(ConsentError):
    """A signature does not verify under the expected public key."""

    reason = "signature-invalid"


class SealingFailed(ConsentError):
    """A sealed payload cannot be opened: wrong key, event id or bytes."""

    reason = "sealing-failed"


class DirectoryInvalid(ConsentError):
    """The directory is unsigned, wrongly signed or malformed; nothing may trust it."""

    reason = "directory-invalid"


class DirectoryExpired(DirectoryInvalid):
    """The directory is outside its issued-at/expires-at window."""

    reason = "directory-expired"


class DirectoryRolledBack(DirectoryInvalid):
    """An older directory than one already accepted: it may bring back a revoked key."""

    reason = "directory-rolled-back"


class AgreementInvalid(ConsentError):
    """An agreement failed validation; ``problems`` lists every one, with its line.

    Args:
        source: the file (or document) the agreement came from.
        problems: one line per problem, each starting with ``line N:``.
    """

    reason = "agreement-invalid"

    def __init__(self, source: str, problems: list[str] | tuple[str, ...]) -> None:
        self.source = source
        self.problems = tuple(problems)
        listing = "\n".join(f"  {source}:{problem}" for problem in self.problems)
        super().__init__(f"{len(self.problems)} problem(s) in agreement {source}:\n{listing}")


class ConsentStateInvalid(ConsentError):
    """Serialised consent state could not be read back."""

    reason = "consent-state-invalid"


class TimeOutOfBounds(ConsentError):
    """A source-supplied time lies after its publication (plus skew) or before its floor.

    ``reason`` names which time and which bound; the message names neither the
    value nor the record's subject, only the field.
    """

    reason = "time-out-of-bounds"


class AuditInvalid(ConsentError):
    """An audit record or chain cannot be built as asked (not a verification result)."""

    reason = "audit-invalid"
