"""Builds a ready connector from its config: the one place its parts are constructed."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from connectors._config import LINKAGE_KEYS_ENV, ConnectorConfig
from connectors._directory_reload import DirectoryReloader
from connectors._errors import ConfigInvalid, KeyEpochNotAccepted, SigningKeyMismatch
from connectors._events import EventFactory
from connectors._metrics import ConnectorMetrics
from connectors._outbox import Outbox
from connectors._publisher import Publisher
from connectors._runner import Connector
from connectors._tokens import Tokeniser, load_linkage_keys
from consent import (
    Directory,
    DirectoryWatcher,
    MemberKind,
    SerialStore,
    load_private_key,
    public_key_b64,
)
from schemas import Codec

__all__ = ["open_connector"]

logger = logging.getLogger(__name__)


def open_connector(
    config: ConnectorConfig, *, metrics: ConnectorMetrics | None = None
) -> Connector:
    """Load keys and the verified directory, open the outbox; refuse anything inconsistent.

    Raises:
        DirectoryRolledBack: the directory's serial is below one this connector
            accepted before (an older directory may restore a revoked key).
    """
    # Before anything is signed under it: an old file put back must not bring
    # a revoked recipient key (or a withdrawn agreement) back into the sealing.
    watcher = DirectoryWatcher(
        config.directory,
        trust_anchor=config.trust_anchor,
        serial_store=SerialStore(config.serials_path),
        now=datetime.now(UTC),
    )
    directory = watcher.current
    metrics = metrics or ConnectorMetrics()
    if config.council not in directory.members:
        raise ConfigInvalid(f"council {config.council} is not a member in the directory")
    if directory.member(config.council).kind is not MemberKind.COUNCIL:
        raise ConfigInvalid(f"{config.council} is a member of the directory but not a council")
    signing_key = load_private_key(config.signing_key)
    if not isinstance(signing_key, Ed25519PrivateKey):
        raise ConfigInvalid(f"{config.signing_key}: not an Ed25519 signing key")
    keys = (
        load_linkage_keys(config.linkage_keys)
        if config.linkage_keys is not None
        else load_linkage_keys(os.environ[LINKAGE_KEYS_ENV])
    )
    current = max(keys, key=lambda k: k.epoch)
    _check_against_directory(config, directory, signing_key, current.epoch)
    factory = EventFactory(
        council=config.council,
        signing_key=signing_key,
        directory=directory,
        tokeniser=Tokeniser(keys),
        reference_key=current,
        time_bounds=config.time_bounds,
    )
    logger.info(
        "connector for %s: %d source(s), linkage key epoch %d",
        config.council,
        len(config.sources),
        current.epoch,
    )
    return Connector(
        config,
        factory,
        outbox=Outbox(config.outbox),
        publisher=Publisher(
            config.bootstrap,
            client_id=f"fedbroker-connector-{config.council}",
            security=config.security,
        ),
        metrics=metrics,
        directory=DirectoryReloader(watcher, metrics),
        codec=Codec(),
    )


def _check_against_directory(
    config: ConnectorConfig, directory: Directory, signing_key: Ed25519PrivateKey, epoch: int
) -> None:
    """Refuse at start what would have every event refused downstream, silently here.

    Raises:
        SigningKeyMismatch: the key is not the council's in the directory (another
            council's, or its own from before a rotation).
        KeyEpochNotAccepted: the newest linkage key is of an epoch the directory
            does not accept (given out before the directory was re-signed for it).
    """
    if public_key_b64(signing_key) != public_key_b64(directory.signing_key(config.council)):
        raise SigningKeyMismatch(
            f"{config.signing_key} is not the signing key the directory lists for "
            f"council {config.council}"
        )
    if epoch not in directory.accepted_epochs:
        accepted = ", ".join(str(e) for e in sorted(directory.accepted_epochs))
        raise KeyEpochNotAccepted(
            f"the newest linkage key is of epoch {epoch}; the directory accepts {accepted}"
        )
