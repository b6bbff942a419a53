"""Ed25519 signing keys and X25519 sealing keys, in standard PEM files.

Councils, the broker and the combined authority sign with Ed25519; subscriber
services receive sealed fields under X25519 (DESIGN section 2). Keys live in
PKCS#8 / SubjectPublicKeyInfo PEM so that ``openssl pkey`` can read them. A
private key file is created 0600 (never written first and tightened after), and
a loader warns, without the secret, about one that others can read.
"""

from __future__ import annotations

import base64
import logging
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from consent._atomic import fsync_folder, make_folders, write_atomically
from consent._errors import KeyInvalid, SignatureInvalid

__all__ = [
    "KeyKind",
    "KeyPairPaths",
    "PrivateKey",
    "PublicKey",
    "generate_sealing_key",
    "generate_signing_key",
    "load_private_key",
    "load_public_key",
    "private_key_pem",
    "public_key_b64",
    "public_key_pem",
    "sign",
    "verify_signature",
    "warn_if_exposed",
    "write_key_pair",
    "write_secret_file",
]

_log = logging.getLogger(__name__)

KeyKind = Literal["signing", "sealing"]
PrivateKey = Ed25519PrivateKey | X25519PrivateKey
PublicKey = Ed25519PublicKey | X25519PublicKey

_PRIVATE_MODE = 0o600


@dataclass(frozen=True, slots=True)
class KeyPairPaths:
    """Where ``write_key_pair`` put a key pair: ``<prefix>.key`` and ``<prefix>.pub``."""

    private: Path
    public: Path


def generate_signing_key() -> Ed25519PrivateKey:
    """A fresh Ed25519 key for signing events, directories and audit checkpoints."""
    return Ed25519PrivateKey.generate()


def generate_sealing_key() -> X25519PrivateKey:
    """A fresh X25519 key for receiving sealed payloads (HPKE, see ``consent._sealing``)."""
    return X25519PrivateKey.generate()


def private_key_pem(key: PrivateKey) -> bytes:
    """Unencrypted PKCS#8 PEM; protect the file, not the bytes (0600, secrets store)."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_key_pem(key: PublicKey | PrivateKey) -> str:
    """SubjectPublicKeyInfo PEM of a public key (or of a private key's public half)."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey | X25519PrivateKey) else key
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def public_key_b64(key: PublicKey | PrivateKey) -> str:
    """The 32 raw public-key bytes in base64: the compact form a directory may hold."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey | X25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def write_secret_file(path: Path | str, data: bytes) -> Path:
    """Write ``data`` to ``path`` readable by the owner only, from its first byte.

    The bytes go to a new file created 0600 with ``O_EXCL`` in the same folder,
    then replace ``path`` atomically: an existing file's looser mode is not
    inherited (``O_TRUNC`` would keep it), and no reader ever sees a half-written
    secret. The umask can only narrow 0600.
    """
    path = Path(path)
    make_folders(path.parent)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, _PRIVATE_MODE)  # mkstemp creates 0600 already; be explicit
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)  # a key whose name a power cut takes back is lost
    return path


def write_key_pair(key: PrivateKey, prefix: Path | str) -> KeyPairPaths:
    """Write ``<prefix>.key`` (created 0600, see ``write_secret_file``) and ``<prefix>.pub``.

    Args:
        key: the private key to store.
        prefix: path prefix; parent directories are created.
    """
    prefix = Path(prefix)
    private = write_secret_file(prefix.with_name(prefix.name + ".key"), private_key_pem(key))
    public = prefix.with_name(prefix.name + ".pub")
    # replaced, never written through: a link planted at that path must not be followed
    write_atomically(public, public_key_pem(key).encode("ascii"))
    return KeyPairPaths(private, public)


def warn_if_exposed(path: Path | str) -> bool:
    """Log a warning if a secret file can be read or written by its group or others.

    Names the file and its mode, never its content. Returns whether it warned.
    """
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return False
    if mode & 0o077:
        _log.warning(
            "key file %s has mode %04o: group or others can reach it; run 'chmod 600 %s'",
            path,
            mode,
            path,
        )
        return True
    return False


def load_private_key(path: Path | str) -> PrivateKey:
    """Read an Ed25519 or X25519 private key from a PEM file.

    Warns (``warn_if_exposed``) if the file is group- or world-accessible.

    Raises:
        KeyInvalid: the file is missing, unreadable or holds another kind of key.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyInvalid(f"cannot read a private key from {path}") from exc
    if b"PUBLIC KEY-----" in data and b"PRIVATE KEY-----" not in data:
        raise KeyInvalid(f"{path} holds a public key; give the private key file")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise KeyInvalid(f"cannot read a private key from {path}") from exc
    if not isinstance(key, Ed25519PrivateKey | X25519PrivateKey):
        raise KeyInvalid(f"{path} holds a {type(key).__name__}, not Ed25519 or X25519")
    warn_if_exposed(path)
    return key


def load_public_key(pem_or_path: str | bytes | Path, *, kind: KeyKind | None = None) -> PublicKey:
    """Read a public key from PEM text, a PEM file, or ``ed25519:``/``x25519:`` base64.

    Args:
        pem_or_path: PEM text or bytes, a path to a PEM file, or ``<alg>:<base64 raw>``.
        kind: if given, the key must be of that kind (``signing`` or ``sealing``).

    Raises:
        KeyInvalid: unreadable, malformed, or not of the requested kind.
    """
    key = _parse_public(pem_or_path)
    if kind == "signing" and not isinstance(key, Ed25519PublicKey):
        raise KeyInvalid("expected an Ed25519 signing key")
    if kind == "sealing" and not isinstance(key, X25519PublicKey):
        raise KeyInvalid("expected an X25519 sealing key")
    return key


def _parse_public(value: str | bytes | Path) -> PublicKey:
    if isinstance(value, Path):
        try:
            value = value.read_bytes()
        except OSError as exc:
            raise KeyInvalid("cannot read the public key file") from exc
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
    stripped = text.strip()
    if not stripped.startswith("-----BEGIN"):
        alg, sep, b64 = stripped.partition(":")
        if sep and alg in ("ed25519", "x25519"):
            try:
                raw = base64.b64decode(b64, validate=True)
                if alg == "ed25519":
                    return Ed25519PublicKey.from_public_bytes(raw)
                return X25519PublicKey.from_public_bytes(raw)
            except ValueError as exc:
                raise KeyInvalid(f"malformed {alg} base64 public key") from exc
        if isinstance(value, str) and "\n" not in stripped and Path(stripped).is_file():
            return _parse_public(Path(stripped))
        raise KeyInvalid("not a PEM public key, a key file or '<alg>:<base64>'")
    if "PRIVATE KEY-----" in stripped.partition("\n")[0]:
        # never parsed, never echoed: a secret where a public key belongs
        raise KeyInvalid("a private key where a public key belongs: give its public half")
    try:
        key = serialization.load_pem_public_key(stripped.encode("ascii"))
    except ValueError as exc:
        raise KeyInvalid("malformed PEM public key") from exc
    if not isinstance(key, Ed25519PublicKey | X25519PublicKey):
        raise KeyInvalid(f"a {type(key).__name__} is not Ed25519 or X25519")
    return key


def sign(private_key: Ed25519PrivateKey, data: bytes) -> bytes:
    """Ed25519 signature (64 bytes) over ``data``."""
    if not isinstance(private_key, Ed25519PrivateKey):
        raise KeyInvalid("signing needs an Ed25519 private key")
    return private_key.sign(data)


def verify_signature(public_key: PublicKey, data: bytes, signature: bytes) -> None:
    """Check an Ed25519 signature.

    Raises:
        SignatureInvalid: the signature does not verify, or the key cannot sign.
    """
    if not isinstance(public_key, Ed25519PublicKey):
        raise SignatureInvalid("not an Ed25519 key: cannot verify a signature")
    try:
        public_key.verify(signature, data)
    except InvalidSignature as exc:
        raise SignatureInvalid("signature does not verify") from exc
