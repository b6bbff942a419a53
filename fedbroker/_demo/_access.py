"""How the demo and each of its parties reach Kafka: plaintext, or each as itself on TLS.

With ``--secure`` the demo runs on the local secured cluster (``kafka up
--secure``): every party of the run's directory gets its own client certificate
and exactly the ACLs the directory implies (``fedbroker._provision``), so the
demo proves that least privilege is enough for the whole pipeline. Connectors
get their credentials in their YAML (``kafka.security``), the broker and the
subscribers through ``FEDBROKER_KAFKA_SECURITY_FILE``, a file that names
certificate and key files; no credential is put on a command line or printed.
The demo's own view (progress, checks, privacy scan) is the operator's: the
cluster admin's certificate.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from consent import Directory
from fedbroker._acls import AclNames
from fedbroker._localkafka import KafkaCluster
from fedbroker._provision import provision

__all__ = ["DemoKafka", "broker_app_id"]

#: Where ``consent.KafkaSecurity.from_env`` reads a party's settings.
ENV_PREFIX = "FEDBROKER_KAFKA_"


def broker_app_id(prefix: str) -> str:
    """The demo broker's Faust app id, which is also its consumer group."""
    return f"{prefix}-broker"


@dataclass(frozen=True, slots=True)
class DemoKafka:
    """The run's Kafka: its bootstrap and, when secured, the local cluster that issues
    each party's credentials."""

    bootstrap: str
    cluster: KafkaCluster | None = None

    @property
    def secure(self) -> bool:
        return self.cluster is not None and self.cluster.secure

    def provision(self, directory: Directory, prefix: str) -> int:
        """Credentials for every party of the run's directory, and the ACLs it implies."""
        if self.cluster is None or not self.secure:
            return 0
        return provision(self.cluster, directory, AclNames(prefix, broker_app_id(prefix)))

    def view(self) -> Mapping[str, Any]:
        """kafka-python settings for the demo's own clients (the admin; none in plaintext)."""
        if self.cluster is None:
            return {}
        return self.cluster.security().kafka_python()

    def connector_security(self, council: str) -> dict[str, str] | None:
        """The ``kafka.security`` block of a council's connector YAML (file paths only)."""
        if self.cluster is None or not self.secure:
            return None
        files = self.cluster.credentials(council)
        return {
            "ca_file": str(files.ca_file),
            "cert_file": str(files.cert_file),
            "key_file": str(files.key_file),
        }

    def env(self, principal: str) -> dict[str, str]:
        """A child process's environment: only its own party's settings file, if secured.

        Inherited ``FEDBROKER_KAFKA_*`` settings are dropped so that no child runs
        with anyone else's credentials.
        """
        env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
        if self.cluster is not None and self.secure:
            files = self.cluster.credentials(principal)
            settings: Path = files.cert_file.parent / "kafka-security.yaml"
            env[f"{ENV_PREFIX}SECURITY_FILE"] = str(settings)
        return env
