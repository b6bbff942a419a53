"""Factories for connector tests: a signed dev federation, synthetic councils, configs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors import (
    Connector,
    ConnectorConfig,
    OutboxEntry,
    SourceConfig,
    SyntheticFederation,
    generate_federation,
    generate_linkage_key,
    open_connector,
)
from consent import DevFederation, build_dev_federation, write_secret_file
from fedbroker import read_to_end

COUNCILS = ("E08000001", "E08000002", "E08000003")
REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class CouncilSetup:
    """One council's connector, ready to run: config, watched folder, its federation."""

    council: str
    config: Path
    inbox: Path
    outbox: Path
    federation: DevFederation
    synth: SyntheticFederation
    prefix: str
    linkage_keys: Path

    @property
    def events_topic(self) -> str:
        return f"{self.prefix}.events.{self.council}"

    @property
    def consent_topic(self) -> str:
        return f"{self.prefix}.consent.{self.council}"


@pytest.fixture(scope="session")
def federation(tmp_path_factory) -> DevFederation:
    return build_dev_federation(tmp_path_factory.mktemp("federation"), councils=list(COUNCILS))


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory) -> SyntheticFederation:
    return generate_federation(tmp_path_factory.mktemp("synth"), councils=COUNCILS, people=60)


@pytest.fixture(scope="session")
def linkage_keys(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("linkage") / "linkage-keys.json"
    # 0600 from the first byte, as a council would keep it (a looser file is warned about)
    return write_secret_file(path, json.dumps({"1": generate_linkage_key(1).secret.hex()}).encode())


@pytest.fixture
def council_factory(
    tmp_path, kafka_bootstrap, topic_factory, federation, synthetic, linkage_keys
) -> Callable[..., CouncilSetup]:
    def make(
        council: str = COUNCILS[0],
        *,
        sources: Sequence[dict[str, object]] | None = None,
        bootstrap: str | None = None,
        prefix: str | None = None,
    ) -> CouncilSetup:
        prefix = prefix or topic_factory("fed")
        home = tmp_path / prefix / council
        inbox = home / "inbox"
        inbox.mkdir(parents=True, exist_ok=True)
        keys = federation.keys[council].signing
        assert keys is not None
        document = {
            "council": council,
            "directory": str(federation.directory_path),
            "trust_anchor": str(federation.trust_anchor),
            "signing_key": str(keys.private),
            "linkage_keys": str(linkage_keys),
            "outbox": str(home / "outbox.sqlite"),
            "kafka": {"bootstrap": bootstrap or kafka_bootstrap, "topic_prefix": prefix},
            "poll_interval_s": 0.2,
            "sources": list(
                sources
                or [
                    {
                        "name": "revenues",
                        "kind": "csv",
                        "path": str(inbox),
                        "mapping": str(synthetic.mapping),
                    }
                ]
            ),
        }
        config = home / "connector.yaml"
        config.write_text(yaml.safe_dump(document))
        return CouncilSetup(
            council, config, inbox, home / "outbox.sqlite", federation, synthetic, prefix,
            linkage_keys,
        )  # fmt: skip

    return make


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    result = subprocess.run(
        [str(REPO / "deploy/postgres/ensure.sh")], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        pytest.fail(f"PostgreSQL could not be started: {result.stderr[-2000:]}", pytrace=False)
    return result.stdout.strip().splitlines()[-1]


def read_topic(
    bootstrap: str, topic: str, *, expect: int | None = None
) -> list[tuple[bytes, bytes]]:
    """Every (key, value) on a topic, from the beginning to its current end."""
    messages = [(r.key, r.value) for r in read_to_end(bootstrap, topic)]
    if expect is not None:
        assert len(messages) == expect
    return messages  # type: ignore[return-value]  # connectors never write tombstones


def run_connector(setup: CouncilSetup, *args: str, timeout: float = 240) -> str:
    result = subprocess.run(
        [str(REPO / ".venv/bin/fedbroker"), "connector", "run", "--config", str(setup.config),
         *args],
        capture_output=True, text=True, timeout=timeout, check=False,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout + result.stderr


def outbox_ids(entries: Sequence[OutboxEntry]) -> list[str]:
    return [e.event_id for e in entries]


def offline_config(
    federation: DevFederation, linkage_keys: Path, outbox: Path,
    sources: tuple[SourceConfig, ...], **overrides: Any,
) -> ConnectorConfig:  # fmt: skip
    """The first council's connector config, with no Kafka: for ``ingest``."""
    signing = federation.keys[COUNCILS[0]].signing
    assert signing is not None
    return ConnectorConfig(
        council=COUNCILS[0],
        directory=federation.directory_path,
        trust_anchor=federation.trust_anchor,
        signing_key=signing.private,
        linkage_keys=linkage_keys,
        outbox=outbox,
        bootstrap="127.0.0.1:9",  # never reached: ingest only reads
        sources=sources,
        **overrides,
    )


def offline_connector(
    tmp_path: Path, federation: DevFederation, synthetic: SyntheticFederation,
    linkage_keys: Path, outbox: Path,
) -> tuple[Connector, Path]:  # fmt: skip
    """The first council's connector reading a CSV inbox, with no Kafka: for ``ingest``."""
    inbox = tmp_path / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    source = SourceConfig("revenues", "csv", synthetic.mapping, path=inbox)
    return open_connector(offline_config(federation, linkage_keys, outbox, (source,))), inbox


def uninterrupted(
    tmp_path: Path, federation: DevFederation, synthetic: SyntheticFederation, linkage_keys: Path
) -> tuple[int, list[str]]:
    """Rows read and record ids enqueued by one trouble-free read of the first council's
    extract, for comparison."""
    whole, inbox = offline_connector(
        tmp_path / "whole", federation, synthetic, linkage_keys, tmp_path / "whole.sqlite"
    )
    shutil.copy(synthetic.files[COUNCILS[0]], inbox / "extract.csv")
    try:
        rows = whole.ingest().read
        return rows, outbox_ids(whole.outbox.pending(10_000))
    finally:
        whole.close()
