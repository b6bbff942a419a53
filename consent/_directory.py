"""The directory: who is in the federation, their keys, and the agreements.

Like X-Road's global configuration, it is one document signed by the combined
authority (see ``consent._directory_signing``). Every component loads it and
trusts nothing it does not list: a council's events are checked against the
council's signing key here, sealed fields go to the recipient's key here, and an
agreement is in force only if it is embedded here (DESIGN section 2).

Keys are inline only (PEM text or ``<alg>:<base64>``): a key named by a file
path would let whoever can write that file change a trusted key without the
authority re-signing anything. The linkage-key epochs the broker accepts come
from here too (``key_epoch``, ``accepted_epochs``), so retiring an epoch is a
signed act, and so does the federation's start (``federation_start``), the
floor for consent records' ``recorded_at`` (``consent.check_times``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType

import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from consent._agreement import Agreement
from consent._agreement_loader import compile_agreement
from consent._errors import DirectoryInvalid, KeyInvalid
from consent._keys import KeyKind, PublicKey, load_public_key
from consent._time_bounds import DEFAULT_RECORDED_FLOOR
from consent._yamlnodes import NodeReader, compose

__all__ = [
    "DEFAULT_KEY_EPOCH",
    "DIRECTORY_FORMAT",
    "MAX_KEY_EPOCH",
    "MAX_SERIAL",
    "Directory",
    "Member",
    "MemberKind",
    "directory_expires_in",
    "parse_directory",
]

DIRECTORY_FORMAT = "fedbroker-directory/1"
DEFAULT_KEY_EPOCH = 1
"""The linkage-key epoch when the directory names none."""
MAX_SERIAL = 2**63 - 1
"""The largest serial (a signed 64-bit number, as metrics and stores hold it)."""
MAX_KEY_EPOCH = 2**31 - 1
"""The largest linkage-key epoch: tokens carry it as an Avro ``int``."""

_TOP = frozenset(
    {
        "format",
        "serial",
        "authority",
        "issued_at",
        "expires_at",
        "federation_start",
        "key_epoch",
        "accepted_epochs",
        "members",
        "agreements",
    }
)
_INLINE_PREFIXES = ("-----BEGIN", "ed25519:", "x25519:")
_MEMBER = frozenset({"id", "kind", "name", "council", "signing_key", "sealing_key"})
# An id is a Kafka principal, a certificate's CN, a folder and part of topic names:
# ASCII letters, digits, '.', '_' and '-', so no look-alike, separator or subject part.
_MEMBER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class MemberKind(StrEnum):
    COUNCIL = "council"
    SERVICE = "service"
    BROKER = "broker"
    AUTHORITY = "authority"


@dataclass(frozen=True, slots=True)
class Member:
    """One party: a council (by GSS code), a service, the broker or the authority.

    ``council`` is the council a service belongs to (used for routing). Its topics
    are not here: they derive from the prefix and its id (``consent._topics``).
    """

    member_id: str
    kind: MemberKind
    name: str
    signing_key: Ed25519PublicKey | None = None
    sealing_key: X25519PublicKey | None = None
    council: str | None = None


@dataclass(frozen=True, slots=True)
class Directory:
    """A verified directory. Obtain it from ``load_directory``, never build one by hand.

    ``key_epoch`` is the current linkage-key epoch; ``accepted_epochs`` the epochs
    whose tokens the broker accepts (default: the current one only), to pass as
    the broker's ``accepted_epochs``. ``digest`` is the SHA-256 of the signed
    document text, so two documents under one serial can be told apart.
    """

    authority: str
    serial: int
    issued_at: datetime
    expires_at: datetime
    members: Mapping[str, Member]
    agreements: Mapping[str, Agreement]
    key_epoch: int = DEFAULT_KEY_EPOCH
    accepted_epochs: frozenset[int] = frozenset({DEFAULT_KEY_EPOCH})
    federation_start: datetime | None = None
    digest: bytes = b""

    @property
    def recorded_floor(self) -> datetime:
        """The earliest ``recorded_at`` to accept: the federation's start, or the default."""
        return self.federation_start or DEFAULT_RECORDED_FLOOR

    def expires_in(self, now: datetime) -> float:
        """Seconds left before the directory expires at ``now`` (negative once it has)."""
        return (self.expires_at - now).total_seconds()

    def member(self, member_id: str) -> Member:
        """The member, or ``DirectoryInvalid`` (reason ``unknown-member``) if not listed."""
        try:
            return self.members[member_id]
        except KeyError:
            raise DirectoryInvalid(
                f"member '{member_id}' is not in the directory", reason="unknown-member"
            ) from None

    def of_kind(self, kind: MemberKind) -> tuple[Member, ...]:
        """Members of one kind, sorted by id."""
        return tuple(m for _, m in sorted(self.members.items()) if m.kind is kind)

    @property
    def councils(self) -> tuple[Member, ...]:
        return self.of_kind(MemberKind.COUNCIL)

    @property
    def services(self) -> tuple[Member, ...]:
        return self.of_kind(MemberKind.SERVICE)

    @property
    def broker(self) -> Member:
        """The broker member (exactly one is required)."""
        return self.of_kind(MemberKind.BROKER)[0]

    def signing_key(self, member_id: str) -> Ed25519PublicKey:
        """The member's Ed25519 key; ``DirectoryInvalid`` if it has none."""
        key = self.member(member_id).signing_key
        if key is None:
            raise DirectoryInvalid(f"member '{member_id}' has no signing key", reason="no-key")
        return key

    def sealing_key(self, member_id: str) -> X25519PublicKey:
        """The member's X25519 key; ``DirectoryInvalid`` if it has none."""
        key = self.member(member_id).sealing_key
        if key is None:
            raise DirectoryInvalid(f"member '{member_id}' has no sealing key", reason="no-key")
        return key

    def services_of(self, council: str) -> tuple[Member, ...]:
        """The services belonging to one council (routing by council)."""
        return tuple(m for m in self.services if m.council == council)

    def agreement(self, agreement_id: str) -> Agreement | None:
        """The agreement with that id, if the directory has it in force."""
        return self.agreements.get(agreement_id)


def directory_expires_in(directory: Directory, now: datetime) -> float:
    """Seconds ``directory`` has left at ``now`` (negative once expired): the metric's value."""
    return directory.expires_in(now)


def _time(
    reader: NodeReader, parent: yaml.Node, fields: dict[str, yaml.Node], key: str
) -> datetime:
    text = reader.text(parent, fields, key)
    try:
        value = datetime.fromisoformat(text or "")
    except ValueError:
        if text is not None:
            reader.problem(fields[key], f"'{key}' must be an ISO 8601 datetime")
        return datetime.min.replace(tzinfo=UTC)
    if value.tzinfo is None:
        reader.problem(fields[key], f"'{key}' needs a timezone")
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # year 9999 west of Greenwich is year 10000 in UTC
        reader.problem(fields[key], f"'{key}' is out of range in UTC")
        return datetime.min.replace(tzinfo=UTC)


def _key(
    reader: NodeReader, fields: dict[str, yaml.Node], key: str, member_id: str
) -> PublicKey | None:
    node = fields.get(key)
    if node is None:
        return None
    kind: KeyKind = "signing" if key == "signing_key" else "sealing"
    if not str(node.value).strip().startswith(_INLINE_PREFIXES):
        reader.problem(
            node,
            f"member '{member_id}': {key} must be given inline (PEM or '<alg>:<base64>'), "
            "not as a file: a file could change without the directory being re-signed",
        )
        return None
    try:
        return load_public_key(str(node.value), kind=kind)
    except KeyInvalid as exc:
        reader.problem(node, f"member '{member_id}': {key}: {exc}")
        return None


def _member(reader: NodeReader, node: yaml.Node) -> Member | None:
    fields = reader.mapping(node, "member")
    # Once parsed and kept but never read: a council that set it believed its events
    # went elsewhere. Refused by name below, not as an unknown field.
    topics = fields.pop("topics", None)
    reader.unknown_keys(fields, _MEMBER, "member")
    member_id = reader.text(node, fields, "id")
    kind_text = reader.text(node, fields, "kind")
    if topics is not None:
        reader.problem(
            topics,
            f"member '{member_id}': 'topics' cannot be set: topic names derive from the "
            "prefix and the member id (<prefix>.events.<id>, <prefix>.consent.<id>, "
            "<prefix>.notify.<id>), as the connectors, the broker, the ACLs and the topics "
            "`kafka up` creates use them; remove it",
        )
    if member_id is None or kind_text is None:
        return None
    if not _MEMBER_ID.fullmatch(member_id):
        reader.problem(
            fields["id"],
            f"member id {member_id!r} must be 1 to 64 ASCII letters, digits, '.', '_' or '-' "
            "(starting with a letter or digit): it names a Kafka principal and topics",
        )
        return None
    try:
        kind = MemberKind(kind_text)
    except ValueError:
        reader.problem(fields["kind"], f"member '{member_id}': unknown kind '{kind_text}'")
        return None
    signing = _key(reader, fields, "signing_key", member_id)
    sealing = _key(reader, fields, "sealing_key", member_id)
    if kind is not MemberKind.SERVICE and signing is None:
        reader.problem(node, f"member '{member_id}': a {kind} needs a signing_key")
    if kind is MemberKind.SERVICE and sealing is None:
        reader.problem(node, f"member '{member_id}': a service needs a sealing_key")
    assert signing is None or isinstance(signing, Ed25519PublicKey)
    assert sealing is None or isinstance(sealing, X25519PublicKey)
    return Member(
        member_id=member_id,
        kind=kind,
        name=reader.text(node, fields, "name", required=False) or member_id,
        signing_key=signing,
        sealing_key=sealing,
        council=reader.text(node, fields, "council", required=False),
    )


def _whole(text: str, maximum: int) -> int | None:
    """``text`` as a whole number up to ``maximum``, or None (length first: ``int`` of
    thousands of digits raises, and is slow before it does)."""
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(maximum)):
        return None
    value = int(text)
    return value if value <= maximum else None


def _epochs(
    reader: NodeReader, root: yaml.Node, fields: dict[str, yaml.Node]
) -> tuple[int, frozenset[int]]:
    current_text = reader.text(root, fields, "key_epoch", required=False)
    current = DEFAULT_KEY_EPOCH
    if current_text is not None:
        value = _whole(current_text, MAX_KEY_EPOCH)
        if not value:
            reader.problem(
                fields["key_epoch"],
                f"'key_epoch' must be a positive whole number up to {MAX_KEY_EPOCH}",
            )
        else:
            current = value
    if "accepted_epochs" not in fields:
        return current, frozenset({current})
    accepted: set[int] = set()
    for text, node in reader.text_list(root, fields, "accepted_epochs"):
        epoch = _whole(text, MAX_KEY_EPOCH)
        if not epoch:
            reader.problem(
                node,
                f"'accepted_epochs' items must be positive whole numbers up to {MAX_KEY_EPOCH}",
            )
        else:
            accepted.add(epoch)
    if accepted and current not in accepted:
        reader.problem(fields["accepted_epochs"], "'accepted_epochs' must include 'key_epoch'")
    return current, frozenset(accepted or {current})


def _shared_keys(reader: NodeReader, node: yaml.Node | None, members: dict[str, Member]) -> None:
    """Two members under one key are one party that can sign, or open, as both.

    An authority that pastes a council's key line under another council (or a
    service's sealing key under another service) would let that one key holder
    publish as the other council or read the other service's payloads; that is
    never meant, so the directory is refused.
    """
    owners: dict[tuple[str, bytes], str] = {}
    for member in members.values():
        for kind, key in (("signing_key", member.signing_key), ("sealing_key", member.sealing_key)):
            if key is None:
                continue
            raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
            first = owners.setdefault((kind, raw), member.member_id)
            if first != member.member_id:
                reader.problem(node, f"members '{first}' and '{member.member_id}' share one {kind}")


def parse_directory(text: str, *, source: str = "<directory>") -> Directory:
    """Parse and check a directory document's content (not its signature or dates).

    Raises:
        DirectoryInvalid: listing every problem with its line, embedded agreements'
            problems included.
    """
    try:
        root = compose(text)
    except yaml.YAMLError as exc:
        raise DirectoryInvalid(f"{source}: not valid YAML") from exc
    reader = NodeReader()
    fields = reader.mapping(root, "directory")
    if root is None:
        raise DirectoryInvalid(f"{source}: empty document")
    reader.unknown_keys(fields, _TOP, "directory")
    if reader.text(root, fields, "format") not in (None, DIRECTORY_FORMAT):
        reader.problem(fields["format"], f"format must be '{DIRECTORY_FORMAT}'")
    serial = _whole(reader.text(root, fields, "serial", required=False) or "1", MAX_SERIAL)
    if serial is None:
        reader.problem(fields.get("serial"), f"'serial' must be a whole number up to {MAX_SERIAL}")
        serial = 0  # never used: the problem is raised below
    authority = reader.text(root, fields, "authority") or ""
    issued_at = _time(reader, root, fields, "issued_at")
    expires_at = _time(reader, root, fields, "expires_at")
    if expires_at <= issued_at:
        reader.problem(fields.get("expires_at"), "'expires_at' must be after 'issued_at'")
    start = (
        _time(reader, root, fields, "federation_start") if "federation_start" in fields else None
    )
    key_epoch, accepted_epochs = _epochs(reader, root, fields)

    members: dict[str, Member] = {}
    members_node = fields.get("members")
    if not isinstance(members_node, yaml.SequenceNode):
        reader.problem(members_node or root, "'members' must be a list")
    else:
        for item in members_node.value:
            member = _member(reader, item)
            if member is None:
                continue
            if member.member_id in members:
                reader.problem(item, f"member '{member.member_id}' is listed twice")
            members[member.member_id] = member
    _shared_keys(reader, members_node, members)
    for member in members.values():
        if member.council is not None and member.council not in members:
            reader.problem(members_node, f"service '{member.member_id}': unknown council")
    if authority and members.get(authority, None) is None:
        reader.problem(fields.get("authority"), f"authority '{authority}' is not a member")
    elif authority and members[authority].kind is not MemberKind.AUTHORITY:
        reader.problem(fields.get("authority"), f"member '{authority}' is not of kind authority")
    if sum(m.kind is MemberKind.BROKER for m in members.values()) != 1:
        reader.problem(members_node or root, "the directory must list exactly one broker")

    councils = {m.member_id for m in members.values() if m.kind is MemberKind.COUNCIL}
    services = {m.member_id for m in members.values() if m.kind is MemberKind.SERVICE}
    agreements: dict[str, Agreement] = {}
    agreements_node = fields.get("agreements")
    if agreements_node is not None and not isinstance(agreements_node, yaml.SequenceNode):
        reader.problem(agreements_node, "'agreements' must be a list")
    elif agreements_node is not None:
        for item in agreements_node.value:
            agreement = compile_agreement(item, reader, councils=councils, services=services)
            if agreement is None:
                continue
            if agreement.agreement_id in agreements:
                reader.problem(item, f"agreement '{agreement.agreement_id}' is listed twice")
            agreements[agreement.agreement_id] = agreement

    if reader.problems:
        listing = "\n".join(f"  {source}:{p}" for p in reader.problems)
        raise DirectoryInvalid(f"{len(reader.problems)} problem(s) in directory:\n{listing}")
    return Directory(
        authority=authority,
        serial=serial,
        issued_at=issued_at,
        expires_at=expires_at,
        members=MappingProxyType(members),
        agreements=MappingProxyType(agreements),
        key_epoch=key_epoch,
        accepted_epochs=accepted_epochs,
        federation_start=start,
        digest=hashlib.sha256(text.encode("utf-8")).digest(),
    )
