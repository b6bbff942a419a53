"""Builds a ready connector from its config: the one place its parts are constructed."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from connectors._config import LINKAGE_KEYS_ENV, ConnectorConfig
from connectors._directory_reload import DirectoryReloader
from connectors._errors import ConfigInvalid
from connectors._events import EventFactory
from connectors._metrics import ConnectorMetrics
from connectors._outbox import Outbox
from connectors._publisher import Publisher
from connectors._runner import Connector
from connectors._tokens import Tokeniser, load_linkage_keys
from consent import DirectoryWatcher, SerialStore, load_private_key
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
    signing_key = load_private_key(config.signing_key)
    if not isinstance(signing_key, Ed25519PrivateKey):
        raise ConfigInvalid(f"{config.signing_key}: not an Ed25519 signing key")
    keys = (
        load_linkage_keys(config.linkage_keys)
        if config.linkage_keys is not None
        else load_linkage_keys(os.environ[LINKAGE_KEYS_ENV])
    )
    current = max(keys, key=lambda k: k.epoch)
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
        publisher=Publisher(config.bootstrap, client_id=f"fedbroker-connector-{config.council}"),
        metrics=metrics,
        directory=DirectoryReloader(watcher, metrics),
        codec=Codec(),
    )
