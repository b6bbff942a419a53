"""The Faust matching broker: verify, route by token, match, decide, notify, audit.

It sees tokens, types, times and references only, never clear identifiers or
sealed fields, and must not import ``connectors`` (DESIGN section 9).
"""

from __future__ import annotations

__all__: list[str] = []
