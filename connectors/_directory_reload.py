"""Taking up a new directory in a running connector: revocations bite at once, rollbacks never.

A connector runs for months and seals every event for the recipients the
directory names; a revoked recipient key must stop being used at the next
poll, not at the next restart. ``consent.DirectoryWatcher`` verifies each new
version and refuses a lower serial through the ``SerialStore``; this module
swaps the factory's directory, counts what it refused, and reports a change
that the running process cannot take up in place (a new agreement is not
compiled into its mappings) as needing a restart.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime

from connectors._events import EventFactory
from connectors._metrics import ConnectorMetrics
from consent import DirectoryInvalid, DirectoryWatcher

__all__ = ["DirectoryReloader"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class DirectoryReloader:
    """Polls the directory file once per connector loop.

    Args:
        watcher: holds the verified directory in force and its serial store.
        metrics: where refusals, restarts needed and the seconds left are counted.
    """

    watcher: DirectoryWatcher
    metrics: ConnectorMetrics

    def refresh(self, factory: EventFactory, now: datetime) -> EventFactory:
        """The factory under the directory in force at ``now``.

        Raises:
            DirectoryExpired: the directory in force has expired: the connector
                must not sign under it (a stale key list is the risk).
        """
        try:
            change = self.watcher.poll(now)
        except DirectoryInvalid as exc:
            # A refused version (rolled back, unsigned, expired) is reported
            # once; the verified one in force stays.
            self.metrics.directory_refused.labels(reason=exc.reason).inc()
            logger.warning("new directory refused (%s); keeping the one in force", exc.reason)
            change = None
        self.watcher.check_current(now)
        self.metrics.directory_expires_in.set(self.watcher.expires_in(now))
        if change is None:
            return factory
        if change.restart_required:
            self.metrics.directory_restart_needed.inc()
            logger.warning("directory change needs a restart: %s", "; ".join(change.needs_restart))
        return dataclasses.replace(factory, directory=change.current)
