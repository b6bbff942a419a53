"""Agreements, the signed directory, keys, residents' consent, decisions and the audit chain.

Pure where it can be: ``consent`` imports only ``schemas`` and does no Kafka I/O,
so an information-governance officer's questions can be answered by reading and
testing this package alone (DESIGN sections 2, 6 and 9).
"""

from __future__ import annotations

__all__: list[str] = []
