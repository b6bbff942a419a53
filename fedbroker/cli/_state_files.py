"""Where the audit commands keep what they must remember between runs.

In the user's state folder, not the working directory: running a command from
another folder must never start it with no memory of earlier runs.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ANCHORS_ENV", "SERIALS_ENV", "default_anchors_path", "default_serials_path"]

ANCHORS_ENV = "FEDBROKER_AUDIT_ANCHORS"
SERIALS_ENV = "FEDBROKER_DIRECTORY_SERIALS"


def _state_file(variable: str, name: str) -> Path:
    explicit = os.environ.get(variable)
    if explicit:
        return Path(explicit)
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "fedbroker" / name


def default_anchors_path() -> Path:
    """``$FEDBROKER_AUDIT_ANCHORS``, else ``$XDG_STATE_HOME/fedbroker/audit-anchors.json``."""
    return _state_file(ANCHORS_ENV, "audit-anchors.json")


def default_serials_path() -> Path:
    """``$FEDBROKER_DIRECTORY_SERIALS``, else ``directory-serials.json`` in the state folder."""
    return _state_file(SERIALS_ENV, "directory-serials.json")
