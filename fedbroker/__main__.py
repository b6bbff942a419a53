"""``python -m fedbroker`` runs the CLI, for environments without the console script."""

from __future__ import annotations

from fedbroker.cli import main

main()
