"""The Compose deployment: valid against the Compose specification's JSON schema (the
Docker CLI here has no Compose plugin, so ``docker compose config`` cannot run), secured
as ``kafka up --secure`` is, and consistent with the code, the scrape config and the
files ``prepare.py`` makes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET  # noqa: S405 - parsing the project's own pom
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from connectors import load_config
from tests.deploy.cli_args import refused
from tests.deploy.conftest import DEPLOY, REPO, load_script

COMPOSE = DEPLOY / "compose"
#: compose-spec/compose-spec schema/compose-spec.json (Apache-2.0), vendored unchanged.
SCHEMA = Path(__file__).with_name("schemas") / "compose-spec.json"
CLIENTS = ("acls", "broker-1", "broker-2", "connector-e08000001", "connector-e08000002",
           "connector-e08000003", "subscriber")  # fmt: skip


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((COMPOSE / "compose.yaml").read_text()))


def _schema_errors(document: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(json.loads(SCHEMA.read_text()))
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]


def test_compose_file_is_valid_against_the_compose_specification(compose):
    assert _schema_errors(compose) == []


def test_docker_compose_config_accepts_it_where_the_cli_has_compose(tmp_path):
    docker = shutil.which("docker")
    has_compose = docker and subprocess.run([docker, "compose", "version"], capture_output=True,
                                            check=False).returncode == 0  # fmt: skip
    if not has_compose:
        pytest.skip("the Docker CLI here has no Compose plugin; the schema test stands in")
    result = subprocess.run([docker, "compose", "-f", str(COMPOSE / "compose.yaml"), "config",
                             "--no-interpolate", "--quiet"], capture_output=True, text=True,
                            check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_the_schema_check_refuses_a_careless_edit(compose):
    broken = json.loads(json.dumps(compose))
    broken["services"]["kafka"]["healthchek"] = broken["services"]["kafka"].pop("healthcheck")
    broken["services"]["broker-1"]["secrets"] = "broker-signing-key"
    assert len(_schema_errors(broken)) >= 2


def test_services_are_the_deployment_the_issue_asks_for(compose):
    services = compose["services"]
    assert set(services) == {"kafka", "prometheus", "grafana", *CLIENTS}
    pom = ET.parse(REPO / "fedbroker" / "_deploy" / "kafka" / "pom.xml")  # noqa: S314 - the project's own file
    version = next(e.text for e in pom.iter() if e.tag.endswith("kafka.version"))
    assert services["kafka"]["image"] == f"apache/kafka:{version}"
    assert {c.removeprefix("connector-").upper() for c in services if "connector" in c} == {
        p.stem for p in (COMPOSE / "connectors").glob("*.yaml")
    }


def _properties(path: Path) -> dict[str, str]:
    lines = [x for x in path.read_text().splitlines() if x and not x.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def test_kafka_accepts_only_tls_clients_with_certificates_and_denies_by_default(compose):
    props = _properties(COMPOSE / "kafka" / "server.properties")
    protocols = dict(p.split(":") for p in props["listener.security.protocol.map"].split(","))
    listeners = [x.split("://")[0] for x in props["listeners"].split(",")]
    assert all(protocols[name] == "SSL" for name in listeners)
    assert props["ssl.client.auth"] == "required"
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert "StandardAuthorizer" in props["authorizer.class.name"]
    # Every secret the node reads is mounted on it, and no password sits in the file.
    kafka = compose["services"]["kafka"]
    used = set(re.findall(r"/run/secrets[/:]([\w.-]+)", "\n".join(props.values())))
    assert used and used <= set(kafka["secrets"])
    assert not any(k.endswith("password") and "${dir:" not in v for k, v in props.items())


def test_every_client_has_its_own_certificate_from_secrets_never_from_flags(compose):
    secrets = compose["secrets"]
    for name in CLIENTS:
        service = compose["services"][name]
        env = service["environment"]
        for variable in ("FEDBROKER_KAFKA_CA_FILE", "FEDBROKER_KAFKA_CERT_FILE",
                         "FEDBROKER_KAFKA_KEY_FILE"):  # fmt: skip
            secret = env[variable].removeprefix("/run/secrets/")
            assert secret in service["secrets"] and secret in secrets, (name, variable)
        cert = secrets[env["FEDBROKER_KAFKA_CERT_FILE"].removeprefix("/run/secrets/")]["file"]
        key = secrets[env["FEDBROKER_KAFKA_KEY_FILE"].removeprefix("/run/secrets/")]["file"]
        assert Path(cert).parent == Path(key).parent, name  # one party's pair
        assert not refused(service["command"]), (name, refused(service["command"]))
        assert not any(a.endswith((".key", ".pem", ".p12")) for a in service["command"])


def test_prepare_makes_every_file_the_compose_file_mounts(compose, tmp_path):
    load_script(COMPOSE / "prepare.py").prepare(tmp_path, people=20)
    for section in ("secrets", "configs"):
        for name, entry in compose[section].items():
            relative = entry["file"]
            base = tmp_path if relative.startswith(("./secrets/", "./data/")) else COMPOSE
            assert (base / relative).is_file(), f"{section}.{name}: {relative}"
    for volume in (v for s in compose["services"].values() for v in s.get("volumes", [])):
        source = volume.split(":")[0]
        if source.startswith("./data/"):
            assert (tmp_path / source).is_dir(), source
        elif source.startswith("."):
            assert (COMPOSE / source).exists(), source


def _metrics_port(service: dict[str, Any], tmp_path: Path) -> int:
    command = service["command"]
    if command[0] == "connector":
        source = service["configs"][2]["source"]
        (tmp_path / "c.yaml").write_text((COMPOSE / f"connectors/{source[10:].upper()}.yaml")
                                         .read_text())  # fmt: skip
        config = load_config(tmp_path / "c.yaml", bootstrap="kafka:9093")
        assert config.metrics_bind == "0.0.0.0"
        return config.metrics_port
    assert command[command.index("--metrics-bind") + 1] == "0.0.0.0"
    return int(command[command.index("--metrics-port") + 1])


def test_prometheus_scrapes_every_worker_on_its_metrics_port_under_the_rules_job_names(
    compose, tmp_path
):
    scrape = yaml.safe_load((COMPOSE / "prometheus.yml").read_text())
    targets = {t for job in scrape["scrape_configs"] for c in job["static_configs"]
               for t in c["targets"]}  # fmt: skip
    expected = {f"{n}:{_metrics_port(compose['services'][n], tmp_path)}" for n in CLIENTS
                if n != "acls"}  # fmt: skip
    assert targets == expected
    jobs = {job["job_name"] for job in scrape["scrape_configs"]}
    rules = (DEPLOY / "prometheus" / "rules.yml").read_text()
    assert set(re.findall(r'job="([\w-]+)"', rules)) <= jobs
    example = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert {j["job_name"] for j in example["scrape_configs"]} <= jobs


def test_grafana_loads_the_generated_dashboard_from_prometheus(compose):
    volumes = compose["services"]["grafana"]["volumes"]
    assert any(v.startswith("../grafana/fedbroker.json:") for v in volumes)
    assert (COMPOSE / "../grafana/fedbroker.json").resolve().is_file()
    sources = yaml.safe_load((COMPOSE / "grafana/datasources/prometheus.yaml").read_text())
    assert sources["datasources"][0]["type"] == "prometheus"
    assert sources["datasources"][0]["url"] == "http://prometheus:9090"
    assert compose["services"]["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD__FILE"]


def test_the_image_the_services_run_is_built_from_the_repository(compose):
    assert (REPO / "Dockerfile").is_file()
    dockerfile = (REPO / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["fedbroker"]' in dockerfile and "USER 10001" in dockerfile
    for name in CLIENTS:
        assert compose["services"][name]["image"] == "fedbroker:0.2.0"
