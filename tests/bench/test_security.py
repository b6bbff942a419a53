"""The benches reach a secured Kafka with the same FEDBROKER_KAFKA_* credentials as every
fedbroker process: each of their own clients is given them, and none from a command line."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from bench._security import bench_security, client_config
from fedbroker._tls import LocalPki

BENCH = Path(__file__).resolve().parents[2] / "bench"
_CLIENTS = {"KafkaProducer", "KafkaConsumer", "KafkaAdminClient"}


def _calls(name: str) -> list[tuple[str, ast.Call]]:
    found = []
    for path in sorted(BENCH.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                called = node.func
                called_name = (
                    called.attr
                    if isinstance(called, ast.Attribute)
                    else getattr(called, "id", None)
                )
                if called_name == name:
                    found.append((f"{path.name}:{node.lineno}", node))
    return found


def test_every_kafka_client_a_bench_builds_gets_the_environments_credentials():
    clients = [c for name in _CLIENTS for c in _calls(name)]
    assert len(clients) >= 8  # the connector bench's two, the broker bench's six
    for where, call in clients:
        spread = [k.value for k in call.keywords if k.arg is None]
        assert any(
            isinstance(v, ast.Call) and getattr(v.func, "id", "") == "client_config" for v in spread
        ), f"{where}: a Kafka client without **client_config()"
    for where, call in _calls("ensure_topics"):
        assert "security" in {k.arg for k in call.keywords}, f"{where}: topics made unsecured"
    for where, call in _calls("App"):
        assert "broker_credentials" in {k.arg for k in call.keywords}, where


def test_the_credentials_come_from_the_settings_file_in_the_environment(tmp_path, monkeypatch):
    files = LocalPki(tmp_path).ensure_client("bench")
    settings = tmp_path / "kafka-security.yaml"
    settings.write_text(
        f"ca_file: {files.ca_file}\ncert_file: {files.cert_file}\nkey_file: {files.key_file}\n"
    )
    bench_security.cache_clear()
    monkeypatch.setenv("FEDBROKER_KAFKA_SECURITY_FILE", str(settings))
    try:
        config = client_config()
        assert config["security_protocol"] == "SSL"
        assert "PRIVATE KEY" not in repr(config)
    finally:
        bench_security.cache_clear()
    monkeypatch.delenv("FEDBROKER_KAFKA_SECURITY_FILE")
    assert client_config() == {} or client_config().get("security_protocol") == "PLAINTEXT"
    bench_security.cache_clear()


@pytest.mark.parametrize("module", ["connector", "broker"])
def test_no_bench_takes_a_credential_on_its_command_line(module):
    text = (BENCH / f"{module}.py").read_text()
    for word in ("--cert", "--key-file", "--password", "--ca-file", "--sasl"):
        assert word not in text
