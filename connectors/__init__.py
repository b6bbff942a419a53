"""The council connector: source records in, signed, sealed, pseudonymous events out.

The only package that sees personal data in clear and holds the linkage key.
It imports ``schemas`` and ``consent``; the broker never imports it (DESIGN 9).
"""

from __future__ import annotations

__all__: list[str] = []
