"""The directory a running worker trusts: reloaded when its file changes, never rolled back.

``consent.DirectoryWatcher`` does the reloading and, with ``consent.SerialStore``,
refuses a serial lower than the highest ever accepted (or a reused one): serial 1
must not bring back the key serial 2 revoked. This module adds what the broker
needs on top. Keys, revocations, validity, accepted linkage-key epochs and
withdrawn agreements take effect at once; councils and agreements the worker
did not start with need topics and agents it does not have, so they are
reported as ``restart-needed`` and served after a restart. Past ``expires_at``
the worker stops deciding (``usable`` is False and ``why`` says so) until a
valid directory arrives, and likewise once the directory lists another broker
key than the one the worker signs with (its key was rotated: everything signed
with the old one would be refused downstream; restart with the new key).
Consent errors become ``DirectoryNotUsable``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from types import MappingProxyType

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from broker._errors import DirectoryNotUsable
from consent import (
    ConsentError,
    Directory,
    DirectoryWatcher,
    MemberKind,
    SerialStore,
    consent_grantors,
    public_key_b64,
)

__all__ = ["DirectoryWatch", "Reload"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Reload:
    """What a reload did: the serial now in use, and whether a restart is needed."""

    serial: int
    restart_needed: bool
    reasons: tuple[str, ...] = ()


def _councils(directory: Directory) -> frozenset[str]:
    return frozenset(m for m, v in directory.members.items() if v.kind is MemberKind.COUNCIL)


def _not_usable(exc: ConsentError) -> DirectoryNotUsable:
    reason = exc.reason if exc.reason.startswith("directory-") else "directory-invalid"
    return DirectoryNotUsable(f"directory refused ({exc.reason})", reason=reason)


@dataclass
class DirectoryWatch:
    """The worker's current directory, limited to what it started with, and its expiry.

    ``signing_key`` is the public half of the key the worker signs with ("" when
    unchecked): a directory that lists another broker key stops the deciding.
    """

    watcher: DirectoryWatcher
    councils: frozenset[str]
    agreements: frozenset[str]
    current: Directory
    why: str = ""
    signing_key: str = ""
    _usable: bool = field(default=True)
    _rotated: bool = field(default=False)  # worked out per directory, not per message
    consent_scopes: Mapping[str, frozenset[str]] = field(init=False)
    """The consent scopes of the newest signed directory, served agreements or not yet,
    each with the councils that may record a grant under it (``consent_grantors``)."""
    services: frozenset[str] = field(init=False)
    """The services the worker started with: it has a notification topic for each."""

    def __post_init__(self) -> None:
        self.consent_scopes = consent_grantors(self.current)
        self.services = frozenset(s.member_id for s in self.current.services)

    @classmethod
    def open(
        cls, path: Path, trust_anchor: Path, serials: SerialStore, now: datetime, *,
        signing_key: Ed25519PublicKey | None = None,
    ) -> DirectoryWatch:  # fmt: skip
        """Load the directory at start; refuse one older than a serial already accepted."""
        try:
            watcher = DirectoryWatcher(path, trust_anchor=trust_anchor, serial_store=serials,
                                       now=now)  # fmt: skip
        except ConsentError as exc:
            raise _not_usable(exc) from exc
        directory = watcher.current
        held = "" if signing_key is None else public_key_b64(signing_key)
        watch = cls(watcher, _councils(directory), frozenset(directory.agreements), directory,
                    signing_key=held)  # fmt: skip
        watch._rotated = watch._key_rotated()
        return watch

    def _key_rotated(self) -> bool:
        listed = self.current.broker.signing_key
        return bool(self.signing_key) and (
            listed is None or public_key_b64(listed) != self.signing_key
        )

    def usable(self, now: datetime) -> bool:
        """Whether decisions may be taken now; if not, ``why`` says why (logged once)."""
        why = ""
        if now >= self.current.expires_at:
            why = (f"directory serial {self.current.serial} expired at "
                   f"{self.current.expires_at.isoformat()}; not deciding until a "
                   "valid one is installed")  # fmt: skip
        elif self._rotated:
            why = (f"directory serial {self.current.serial} lists another broker key than "
                   "the one this worker signs with; not deciding until it is restarted "
                   "with the new key")  # fmt: skip
        if why and (self._usable or why != self.why):
            logger.error("%s", why)
        self._usable, self.why = not why, why
        return self._usable

    def expires_in(self, now: datetime) -> float:
        return (self.current.expires_at - now).total_seconds()

    def poll(self, now: datetime) -> Reload | None:
        """Reload if the file changed; None if it did not.

        Raises:
            DirectoryNotUsable: the new file is unreadable, wrongly signed,
                expired, or rolls the serial back; the current directory stays.
        """
        try:
            change = self.watcher.poll(now)
        except ConsentError as exc:
            raise _not_usable(exc) from exc
        if change is None:
            return None
        directory = change.current
        new = sorted((_councils(directory) - self.councils)
                     | (frozenset(directory.agreements) - self.agreements))  # fmt: skip
        # A changed agreement is served at once as far as it narrows: a recipient
        # the worker did not start with has no notification topic here, and
        # notifying it would fail every match under the agreement until a restart.
        kept = {
            k: replace(v, recipients=v.recipients & self.services)
            for k, v in directory.agreements.items()
            if k in self.agreements
        }
        self.current = replace(directory, agreements=MappingProxyType(kept))
        # Consent to an agreement served only after a restart is admitted and kept now.
        self.consent_scopes = consent_grantors(directory)
        reasons = tuple(change.needs_restart) or tuple(f"added: {n}" for n in new)
        self._rotated = self._key_rotated()
        if self._rotated:
            reasons += ("broker key rotated: restart with the new key",)
        if reasons:
            logger.warning("directory serial %d in force; restart the workers to serve: %s",
                           directory.serial, "; ".join(reasons))  # fmt: skip
        else:
            logger.warning("directory serial %d in force", directory.serial)
        return Reload(directory.serial, bool(reasons), reasons)
