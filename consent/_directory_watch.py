"""Reloading the directory in a long-running process: what changes at once, what needs a restart.

A revoked key or a shortened validity must bite in a broker that has run for
weeks, not at its next restart. ``DirectoryWatcher`` polls the signed file by
its hash (not its mtime, which whoever can write the file can also set back;
a directory is a few kilobytes, so reading it is cheap), verifies a new
version against the trust anchor, refuses a rollback through the
``SerialStore``, and swaps ``current``: keys, revocations and validity take
effect for every lookup after that. What a process built at start from the
directory (topics to subscribe, agreements compiled into rules) cannot change
underneath it, so a change that adds councils, services or agreements, or
changes an agreement, is reported in ``DirectoryChange.needs_restart`` for the
caller to log, count and act on.

Pure file I/O, no Kafka: the broker calls ``poll`` from a timer and exports
``expires_in`` as a metric; ``check_current`` refuses to run past expiry.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from consent._directory import Directory, MemberKind
from consent._directory_signing import (
    load_trust_anchor,
    read_signed_directory,
    verify_directory,
)
from consent._errors import ConsentError, DirectoryExpired
from consent._keys import PublicKey
from consent._serial_store import SerialStore

__all__ = ["DirectoryChange", "DirectoryWatcher", "restart_reasons"]

_log = logging.getLogger(__name__)

_RETRIED = frozenset({"directory-not-yet-valid", "serial-store-invalid"})
"""Refusals that time or a repair can lift without the file changing: a directory
issued a moment ahead of this host's clock, a serial store being restored. The
same bytes are tried again at every poll (reported once); every other refusal
is final for those bytes."""


@dataclass(frozen=True, slots=True)
class DirectoryChange:
    """A newer directory, now current; ``needs_restart`` lists what the process must reload."""

    previous: Directory
    current: Directory
    needs_restart: tuple[str, ...]

    @property
    def restart_required(self) -> bool:
        return bool(self.needs_restart)


def restart_reasons(old: Directory, new: Directory) -> tuple[str, ...]:
    """What ``new`` adds or changes that a running process cannot take up in place.

    Removals (a council or key revoked) are not here: they take effect at once.
    """
    reasons: list[str] = []
    for kind in (MemberKind.COUNCIL, MemberKind.SERVICE):
        before = {m.member_id for m in old.of_kind(kind)}
        reasons += [
            f"{kind} added: {m.member_id}" for m in new.of_kind(kind) if m.member_id not in before
        ]
    for agreement_id, agreement in sorted(new.agreements.items()):
        held = old.agreements.get(agreement_id)
        if held is None:
            reasons.append(f"agreement added: {agreement_id}")
        elif held != agreement:
            reasons.append(f"agreement changed: {agreement_id}")
    if new.accepted_epochs - old.accepted_epochs:
        reasons.append("linkage-key epoch accepted: needs the new epoch's tokens")
    return tuple(reasons)


class DirectoryWatcher:
    """Holds the current verified directory and reloads it when its file changes.

    Args:
        path: the signed directory file.
        trust_anchor: the combined authority's public key (key, PEM or path). A
            path is read once, here: the root of trust is pinned for the process's
            life, so whoever can write that file cannot swap it under a running
            process (nor can its deletion stop reloads); a new anchor needs a restart.
        serial_store: where accepted serials are kept (None: no rollback check;
            only for tests of other things; every process should pass one).
        now: the time to verify the first load against.

    Raises:
        DirectoryInvalid, DirectoryExpired, DirectoryRolledBack: the first load failed.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        trust_anchor: PublicKey | str | Path,
        serial_store: SerialStore | None,
        now: datetime,
    ) -> None:
        self.path = Path(path)
        self._anchor = load_trust_anchor(trust_anchor)
        self._store = serial_store
        data = self._read()
        self._digest = hashlib.sha256(data).digest()
        self._current = self._accept(data, now)
        self._retry = False

    @property
    def current(self) -> Directory:
        """The directory in force: look keys up here on every use, never keep a copy."""
        return self._current

    def _read(self) -> bytes:
        return read_signed_directory(self.path)

    def _accept(self, data: bytes, now: datetime) -> Directory:
        directory = verify_directory(data, trust_anchor=self._anchor, now=now)
        if self._store is not None:
            self._store.accept(directory)
        return directory

    def poll(self, now: datetime) -> DirectoryChange | None:
        """Reload if the file changed; the change, or None if there was none.

        A new version that fails (unsigned, wrongly signed, expired, rolled back)
        raises once, the first time it is seen, and the current directory stays.
        One refused as not yet valid, or because the serial store could not be
        read, is tried again at every later poll and taken up once it passes.

        Raises:
            DirectoryInvalid: with the failed version's reason code.
        """
        data = self._read()
        digest = hashlib.sha256(data).digest()
        seen = digest == self._digest
        if seen and not self._retry:
            return None
        self._digest = digest  # a failed version is reported once, not at every poll
        try:
            directory = self._accept(data, now)
        except ConsentError as exc:
            self._retry = exc.reason in _RETRIED
            if seen:
                return None
            raise
        self._retry = False
        if directory.digest == self._current.digest:
            return None  # back to the version in force after a refused one
        previous, self._current = self._current, directory
        change = DirectoryChange(previous, directory, restart_reasons(previous, directory))
        _log.info(
            "directory serial %d replaces serial %d%s",
            directory.serial,
            previous.serial,
            "; restart needed: " + "; ".join(change.needs_restart) if change.needs_restart else "",
        )
        return change

    def expires_in(self, now: datetime) -> float:
        """Seconds the current directory has left (negative once expired)."""
        return self._current.expires_in(now)

    def check_current(self, now: datetime) -> None:
        """Refuse to go on past the current directory's expiry.

        Raises:
            DirectoryExpired: reason ``directory-expired``.
        """
        if now >= self._current.expires_at:
            raise DirectoryExpired(
                f"directory serial {self._current.serial} expired at "
                f"{self._current.expires_at.isoformat()}"
            )
