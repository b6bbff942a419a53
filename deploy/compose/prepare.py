"""Makes what ``compose.yaml`` mounts: the development federation, TLS credentials, data.

``python deploy/compose/prepare.py [FOLDER]`` (default: this folder) writes

- ``secrets/federation/``: a signed directory for three councils and every
  member's keys (``consent.build_dev_federation``);
- ``secrets/pki/``: the project's own CA, the Kafka node's keystore (for the host
  name ``kafka``) and a client certificate per party plus ``admin``
  (``fedbroker._tls.LocalPki``, as ``fedbroker kafka up --secure`` does);
- ``secrets/linkage-keys.json`` and ``secrets/grafana-admin-password``;
- ``data/mapping.yaml`` and one synthetic extract per council in ``data/inbox/``.

Secrets are 0600 files; the containers run as uid 10001 (Kafka's image as 1000),
so on Linux ``chown`` them to those users or run Compose rootless. It refuses to
overwrite an existing federation: new keys would orphan every topic's history.
``secrets/`` and ``data/`` are ignored by git.
"""

from __future__ import annotations

import json
import secrets
import shutil
import sys
from pathlib import Path

from connectors import generate_federation, generate_linkage_key
from consent import build_dev_federation
from fedbroker._tls import ADMIN_PRINCIPAL, LocalPki, write_secret

__all__ = ["COUNCILS", "KAFKA_HOSTS", "prepare"]

COUNCILS = ("E08000001", "E08000002", "E08000003")
KAFKA_HOSTS = ("kafka", "localhost", "127.0.0.1")  # the broker's certificate names


def prepare(folder: Path, *, people: int = 300) -> None:
    """Write the federation, credentials and sample data under ``folder``."""
    vault = folder / "secrets"
    if (vault / "federation" / "directory.signed").exists():
        raise SystemExit(f"{vault / 'federation'} exists: remove it to start a new federation")
    federation = build_dev_federation(vault / "federation", councils=list(COUNCILS))
    pki = LocalPki(vault / "pki")
    pki.ensure_node(hosts=KAFKA_HOSTS)
    for member in (ADMIN_PRINCIPAL, *federation.load().members):
        pki.ensure_client(member)
    key = generate_linkage_key(1)
    write_secret(vault / "linkage-keys.json", json.dumps({"1": key.secret.hex()}).encode())
    write_secret(vault / "grafana-admin-password", secrets.token_urlsafe(18).encode())
    synth = generate_federation(folder / "data" / "synth", councils=COUNCILS, people=people)
    shutil.copy(synth.mapping, folder / "data" / "mapping.yaml")
    for council, extract in synth.files.items():
        inbox = folder / "data" / "inbox" / council
        inbox.mkdir(parents=True, exist_ok=True)
        shutil.copy(extract, inbox / extract.name)


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
    prepare(target)
    sys.stdout.write(f"prepared {target}/secrets and {target}/data\n")
