"""The highest directory serial each component has accepted, per authority key, on disk.

A directory is valid for weeks, so an older one still verifies after a newer
one has revoked a key: whoever can put the old file back (or replay it to a
process that restarts) brings the revoked key back. Every component therefore
remembers the highest serial it has accepted from each authority key and
refuses a lower one, across restarts, and refuses a different document under
a serial it has already accepted. Keyed by the authority's key so that a new
federation (a new authority key) starts its own count.

The file is tiny JSON, replaced atomically under an exclusive lock, so two
processes sharing it (a connector and its CLI on one host) never lose an update.
"""

from __future__ import annotations

import fcntl
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from consent._atomic import make_folders, write_atomically
from consent._directory import Directory
from consent._errors import DirectoryInvalid, DirectoryRolledBack
from consent._keys import public_key_b64

__all__ = ["SERIAL_STORE_FORMAT", "SerialStore"]

SERIAL_STORE_FORMAT = "fedbroker-directory-serials/1"
_log = logging.getLogger(__name__)


def _authority_id(directory: Directory) -> str:
    key = directory.members[directory.authority].signing_key
    if key is None:  # parse_directory already refuses this; kept for the type checker
        raise DirectoryInvalid("the authority has no signing key", reason="no-key")
    return "ed25519:" + public_key_b64(key)


class SerialStore:
    """Remembers accepted directory serials in ``path`` and refuses rollbacks.

    Args:
        path: the store file (created on the first accepted directory).
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        make_folders(self.path.parent)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self) -> dict[str, Any]:
        if not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("format") != SERIAL_STORE_FORMAT:
                raise ValueError("not a serial store")
            authorities = data["authorities"]
            if not isinstance(authorities, dict) or not all(
                isinstance(held, dict) and isinstance(held.get("serial"), int)
                for held in authorities.values()
            ):
                raise ValueError("malformed")
            return authorities
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # never read as "nothing accepted yet": that would re-open every rollback
            raise DirectoryInvalid(
                f"cannot read the directory serial store {self.path}",
                reason="serial-store-invalid",
            ) from exc

    def highest(self, directory: Directory) -> int | None:
        """The highest serial accepted from ``directory``'s authority key, if any."""
        held = self._read().get(_authority_id(directory))
        return int(held["serial"]) if isinstance(held, dict) else None

    def accept(self, directory: Directory) -> None:
        """Record ``directory`` as accepted, or refuse it as a rollback.

        Call it after the directory verified (signature and dates), before using it.

        Raises:
            DirectoryRolledBack: reason ``directory-rolled-back`` (a lower serial
                than one accepted) or ``directory-serial-reused`` (the accepted
                serial, but another document).
            DirectoryInvalid: reason ``serial-store-invalid``: the store cannot be
                read or written.
        """
        authority = _authority_id(directory)
        try:
            recorded = self._accept_locked(directory, authority)
        except OSError as exc:  # a full disk, a read-only or mistyped folder
            raise DirectoryInvalid(
                f"cannot write the directory serial store {self.path}",
                reason="serial-store-invalid",
            ) from exc
        if recorded:
            _log.info("directory serial %d accepted and recorded", directory.serial)

    def _accept_locked(self, directory: Directory, authority: str) -> bool:
        """Whether ``directory`` was recorded (False: its serial and content already were)."""
        with self._locked():
            authorities = self._read()
            held = authorities.get(authority)
            if isinstance(held, dict):
                serial, digest = int(held["serial"]), str(held.get("digest", ""))
                if directory.serial < serial:
                    raise DirectoryRolledBack(
                        f"directory serial {directory.serial} is older than serial {serial}, "
                        "already accepted: refused (it may restore a revoked key)"
                    )
                if directory.serial == serial:
                    if digest and digest != directory.digest.hex():
                        raise DirectoryRolledBack(
                            f"directory serial {serial} was already accepted with other "
                            "content: a changed directory needs a new serial",
                            reason="directory-serial-reused",
                        )
                    return False
            authorities[authority] = {"serial": directory.serial, "digest": directory.digest.hex()}
            body = {"format": SERIAL_STORE_FORMAT, "authorities": authorities}
            write_atomically(
                self.path, (json.dumps(body, indent=1, sort_keys=True) + "\n").encode()
            )
        return True
