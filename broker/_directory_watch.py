"""The directory a running worker trusts: reloaded when its file changes, never rolled back.

A revoked key must stop verifying at once, so the worker re-reads the signed
directory when the file changes (``poll``) and applies keys, revocations and
validity immediately. A change that adds councils or agreements needs topics
and agents the running worker does not have: it is logged and reported as
``restart-needed`` (its new agreements wait for the restart; removed ones stop
at once). A directory with a lower serial than the highest this worker ever
accepted (persisted per authority key beside its state) is refused: serial 1
must not bring back the key serial 2 revoked. Past ``expires_at`` the worker
stops deciding (``usable`` is False and ``why`` says so) until a valid one arrives.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from types import MappingProxyType

from broker._errors import DirectoryNotUsable
from consent import ConsentError, Directory, MemberKind, load_directory, public_key_b64

__all__ = ["DirectoryWatch", "Reload", "SerialStore"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SerialStore:
    """The highest directory serial accepted, per authority key, in a small JSON file."""

    path: Path

    def highest(self, authority_key: str) -> int:
        try:
            held = json.loads(self.path.read_text(encoding="utf-8"))
            return int(held.get(authority_key, 0))
        except FileNotFoundError:
            return 0
        except (ValueError, AttributeError, TypeError) as exc:
            raise DirectoryNotUsable(
                f"the serial store {self.path.name} is unreadable", reason="directory-invalid"
            ) from exc

    def accept(self, authority_key: str, serial: int) -> None:
        try:
            held = json.loads(self.path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            held = {}
        held[authority_key] = max(serial, int(held.get(authority_key, 0)))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".tmp")
        partial.write_text(json.dumps(held, sort_keys=True), encoding="utf-8")
        partial.replace(self.path)


@dataclass(frozen=True, slots=True)
class Reload:
    """What a reload did: the serial now in use, and whether a restart is needed."""

    serial: int
    restart_needed: bool
    added: tuple[str, ...] = ()


def _authority_key(directory: Directory) -> str:
    key = directory.members[directory.authority].signing_key
    return public_key_b64(key) if key is not None else directory.authority


def _councils(directory: Directory) -> frozenset[str]:
    return frozenset(m for m, v in directory.members.items() if v.kind is MemberKind.COUNCIL)


@dataclass
class DirectoryWatch:
    """The worker's current directory and the checks that guard replacing it."""

    path: Path
    trust_anchor: Path
    serials: SerialStore
    current: Directory
    councils: frozenset[str]
    agreements: frozenset[str]
    digest: str = ""
    why: str = ""
    _usable: bool = field(default=True)

    @classmethod
    def open(
        cls, path: Path, trust_anchor: Path, serials: SerialStore, now: datetime
    ) -> DirectoryWatch:
        """Load the directory at start; refuse one older than a serial already accepted."""
        data = path.read_bytes()
        directory = _load(path, trust_anchor, now)
        _check_serial(directory, serials)
        serials.accept(_authority_key(directory), directory.serial)
        return cls(path, trust_anchor, serials, directory, _councils(directory),
                   frozenset(directory.agreements), hashlib.sha256(data).hexdigest())  # fmt: skip

    def usable(self, now: datetime) -> bool:
        """Whether decisions may be taken now; if not, ``why`` says why (logged once)."""
        if now >= self.current.expires_at:
            if self._usable:
                self.why = (f"directory serial {self.current.serial} expired at "
                            f"{self.current.expires_at.isoformat()}; not deciding until a "
                            "valid one is installed")  # fmt: skip
                logger.error("%s", self.why)
            self._usable = False
        else:
            self._usable, self.why = True, ""
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
            data = self.path.read_bytes()
        except OSError as exc:
            raise DirectoryNotUsable("the directory file is unreadable") from exc
        digest = hashlib.sha256(data).hexdigest()
        if digest == self.digest:
            return None
        directory = _load(self.path, self.trust_anchor, now)
        if directory.serial == self.current.serial:
            self.digest = digest
            raise DirectoryNotUsable(
                f"directory serial {directory.serial} reused with other content",
                reason="directory-serial-reused",
            )
        _check_serial(directory, self.serials)
        self.serials.accept(_authority_key(directory), directory.serial)
        added = sorted((_councils(directory) - self.councils)
                       | (frozenset(directory.agreements) - self.agreements))  # fmt: skip
        kept = {k: v for k, v in directory.agreements.items() if k in self.agreements}
        self.current = replace(directory, agreements=MappingProxyType(kept))
        self.digest = digest
        if added:
            logger.warning("directory serial %d adds %d councils or agreements: restart the "
                           "workers to serve them", directory.serial, len(added))  # fmt: skip
        else:
            logger.warning("directory serial %d in force", directory.serial)
        return Reload(directory.serial, bool(added), tuple(added))


def _load(path: Path, trust_anchor: Path, now: datetime) -> Directory:
    try:
        return load_directory(path, trust_anchor=trust_anchor, now=now)
    except ConsentError as exc:
        reason = "directory-expired" if "expired" in exc.reason else "directory-invalid"
        raise DirectoryNotUsable(f"directory refused ({exc.reason})", reason=reason) from exc


def _check_serial(directory: Directory, serials: SerialStore) -> None:
    highest = serials.highest(_authority_key(directory))
    if directory.serial < highest:
        raise DirectoryNotUsable(
            f"directory serial {directory.serial} is older than serial {highest} already accepted",
            reason="directory-rolled-back",
        )
