"""Errors of the composition layer (the CLI and local tooling)."""

from __future__ import annotations

from schemas import FedbrokerError

__all__ = ["CommandError"]


class CommandError(FedbrokerError):
    """A CLI command could not do what was asked; the message says why."""

    reason = "command-failed"
