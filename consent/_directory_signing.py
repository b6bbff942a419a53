"""Signing and loading the directory: a signed envelope around the exact document.

The envelope is a small JSON object holding the directory's YAML text verbatim
and an Ed25519 signature over it in the ``fedbroker/directory/v3`` domain
(``consent.sign_detached``), so the signature cannot be replayed as any other
fedbroker signature. Signing the exact bytes, rather than
a re-serialisation, means there is no canonicalisation for two implementations
to disagree on: what was signed is what is parsed.
"""

from __future__ import annotations

import base64
import json
import logging
import stat
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from consent._directory import Directory, parse_directory
from consent._envelope import sign_detached, verify_detached
from consent._errors import DirectoryExpired, DirectoryInvalid, KeyInvalid, SignatureInvalid
from consent._keys import PublicKey, load_public_key, public_key_b64
from schemas import SignatureDomain

__all__ = [
    "MAX_DIRECTORY_BYTES",
    "SIGNED_DIRECTORY_FORMAT",
    "load_directory",
    "load_trust_anchor",
    "read_signed_directory",
    "sign_directory",
    "verify_directory",
]

SIGNED_DIRECTORY_FORMAT = "fedbroker-signed-directory/2"
"""Version 2 (release 0.2.0): the signature is in the ``fedbroker/directory/v3`` domain."""
MAX_DIRECTORY_BYTES = 4 * 1024 * 1024
"""The largest signed directory read (a real one is tens of kilobytes): a bigger
file, or one linked to ``/dev/zero``, is refused before it is read whole."""
_DOMAIN = SignatureDomain.DIRECTORY
_log = logging.getLogger(__name__)


def sign_directory(document: str, private_key: Ed25519PrivateKey) -> bytes:
    """Check ``document`` parses, then wrap it in a signed envelope (JSON bytes).

    Args:
        document: the directory YAML text.
        private_key: the combined authority's Ed25519 key.

    Raises:
        DirectoryInvalid: the document itself has problems (nothing is signed).
    """
    directory = parse_directory(document)
    authority_key = directory.members[directory.authority].signing_key
    if authority_key is None or public_key_b64(authority_key) != public_key_b64(private_key):
        raise DirectoryInvalid(
            "the signing key is not the authority's key listed in the directory",
            reason="directory-signer-mismatch",
        )
    signature = sign_detached(private_key, _DOMAIN, document.encode("utf-8"))
    envelope = {
        "format": SIGNED_DIRECTORY_FORMAT,
        "algorithm": "ed25519",
        "signer": directory.authority,
        "signature": base64.b64encode(signature).decode("ascii"),
        "document": document,
    }
    return (json.dumps(envelope, indent=1, sort_keys=True) + "\n").encode("utf-8")


def verify_directory(
    signed: bytes, *, trust_anchor: PublicKey | str | Path, now: datetime
) -> Directory:
    """Verify a signed envelope against the trust anchor and the clock.

    Args:
        signed: the envelope bytes (``sign_directory``'s output).
        trust_anchor: the combined authority's Ed25519 public key (key, PEM or path).
        now: the time to check ``issued_at``/``expires_at`` against (timezone-aware).

    Raises:
        DirectoryInvalid: reason ``directory-unsigned`` (no envelope),
            ``directory-too-large`` (over ``MAX_DIRECTORY_BYTES``),
            ``directory-signature-invalid``, ``directory-signer-mismatch`` or
            ``directory-invalid`` (content).
        DirectoryExpired: reason ``directory-expired`` or ``directory-not-yet-valid``.
    """
    anchor = load_trust_anchor(trust_anchor)
    _check_size(len(signed))
    try:
        envelope = json.loads(signed.decode("utf-8"))
        ok = isinstance(envelope, dict) and envelope.get("format") == SIGNED_DIRECTORY_FORMAT
    except (ValueError, RecursionError):  # RecursionError: a file of nested brackets
        ok = False
    if not ok:
        raise DirectoryInvalid(
            "not a signed directory: sign it with 'fedbroker directory sign'",
            reason="directory-unsigned",
        )
    document, signature_b64 = envelope.get("document"), envelope.get("signature")
    if not isinstance(document, str) or not isinstance(signature_b64, str):
        raise DirectoryInvalid(
            "signed directory lacks its document or signature", reason="directory-unsigned"
        )
    try:
        # ValueError: non-ASCII base64, or a lone surrogate that no signed bytes can hold
        signature = base64.b64decode(signature_b64, validate=True)
        verify_detached(anchor, _DOMAIN, document.encode("utf-8"), signature)
    except (ValueError, SignatureInvalid) as exc:
        raise DirectoryInvalid(
            "directory signature does not verify under the trust anchor",
            reason="directory-signature-invalid",
        ) from exc
    directory = parse_directory(document)
    listed = directory.members[directory.authority].signing_key
    if listed is None or public_key_b64(listed) != public_key_b64(anchor):
        raise DirectoryInvalid(
            "the directory's authority key differs from the trust anchor",
            reason="directory-signer-mismatch",
        )
    if now < directory.issued_at:
        raise DirectoryExpired(
            f"directory serial {directory.serial} is not valid until "
            f"{directory.issued_at.isoformat()}",
            reason="directory-not-yet-valid",
        )
    if now >= directory.expires_at:
        raise DirectoryExpired(
            f"directory serial {directory.serial} expired at {directory.expires_at.isoformat()}"
        )
    _log.info(
        "directory serial %d verified: %d members, %d agreements, expires %s",
        directory.serial,
        len(directory.members),
        len(directory.agreements),
        directory.expires_at.isoformat(),
    )
    return directory


def load_directory(
    path: Path | str, *, trust_anchor: PublicKey | str | Path, now: datetime
) -> Directory:
    """Read a signed directory file and ``verify_directory`` it.

    Raises:
        DirectoryInvalid: unreadable, unsigned, wrongly signed or malformed.
        DirectoryExpired: outside its validity window at ``now``.
    """
    return verify_directory(read_signed_directory(path), trust_anchor=trust_anchor, now=now)


def read_signed_directory(path: Path | str) -> bytes:
    """The bytes of a signed directory file, at most ``MAX_DIRECTORY_BYTES`` of them.

    Raises:
        DirectoryInvalid: unreadable, or reason ``directory-too-large``.
    """
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_DIRECTORY_BYTES + 1)
    except OSError as exc:
        raise DirectoryInvalid(f"cannot read directory {path}") from exc
    _check_size(len(data))
    return data


def _check_size(size: int) -> None:
    if size > MAX_DIRECTORY_BYTES:
        raise DirectoryInvalid(
            f"signed directory larger than {MAX_DIRECTORY_BYTES} bytes: refused unread",
            reason="directory-too-large",
        )


def load_trust_anchor(trust_anchor: PublicKey | str | Path) -> Ed25519PublicKey:
    """The authority's Ed25519 public key from a key, PEM text or a path (read now, once).

    Raises:
        KeyInvalid: unreadable, malformed, or not an Ed25519 public key.
    """
    if isinstance(trust_anchor, Ed25519PublicKey):
        return trust_anchor
    if not isinstance(trust_anchor, str | Path):
        raise KeyInvalid("the trust anchor must be an Ed25519 public key")
    named = trust_anchor if isinstance(trust_anchor, Path) else Path(trust_anchor.strip())
    if "\n" not in str(named) and named.is_file():
        _warn_if_writable(named)
    key = load_public_key(trust_anchor, kind="signing")
    assert isinstance(key, Ed25519PublicKey)
    return key


def _warn_if_writable(path: Path) -> None:
    """The anchor is public, but whoever can write it picks the root of trust."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return  # reading it reports the problem
    if mode & 0o022:
        _log.warning(
            "trust anchor %s has mode %04o: group or others can write the federation's "
            "root of trust; run 'chmod 644 %s'",
            path,
            mode,
            path,
        )
