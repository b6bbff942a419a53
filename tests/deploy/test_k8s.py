"""The Kubernetes manifests: current with their generator, valid against Kubernetes' and
Strimzi's schemas, and consistent with the code (topics, ACLs, commands, metrics ports)."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from connectors import load_config
from consent import build_dev_federation
from fedbroker._acls import derive_acls
from tests.deploy.cli_args import refused
from tests.deploy.conftest import DEPLOY, REPO, load_script

K8S = DEPLOY / "k8s"
STRIMZI = Path(__file__).with_name("strimzi")
STRIMZI_KINDS = {"Kafka", "KafkaNodePool", "KafkaTopic", "KafkaUser"}


@pytest.fixture(scope="module")
def generator() -> Any:
    return load_script(K8S / "generate.py")


def _documents() -> list[dict[str, Any]]:
    return [d for f in sorted(K8S.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]


def _of(kind: str) -> list[dict[str, Any]]:
    return [d for d in _documents() if d["kind"] == kind]


def _workloads() -> list[dict[str, Any]]:
    return _of("Deployment") + _of("StatefulSet")


def test_generated_manifests_are_what_the_generator_writes(generator):
    for name, text in generator.render().items():
        assert (K8S / name).read_text() == text, f"run: python deploy/k8s/generate.py ({name})"


# -- schemas -------------------------------------------------------------------------------


def _core_problems(document: dict[str, Any]) -> str | None:
    try:
        kubernetes_validate.validate(document, kubernetes_validate.latest_version(), strict=True)
    except kubernetes_validate.ValidationError as exc:
        return str(exc.message)
    return None


def test_core_kinds_are_valid_against_the_kubernetes_schemas():
    core = [d for d in _documents() if d["kind"] not in STRIMZI_KINDS]
    assert {d["kind"] for d in core} >= {"Namespace", "Deployment", "StatefulSet", "Service",
                                          "ConfigMap", "PersistentVolumeClaim"}  # fmt: skip
    problems = {f"{d['kind']}/{d['metadata']['name']}": _core_problems(d) for d in core}
    assert not {k: v for k, v in problems.items() if v}


def test_the_kubernetes_check_refuses_a_careless_deployment():
    deployment = _of("Deployment")[0]
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["replicas"] = "two"
    broken["spec"]["template"]["spec"]["containers"][0]["resources"]["limit"] = {"cpu": "1"}
    assert _core_problems(broken)


def _install_strimzi_schemas(npm: str) -> None:
    """Installs into a staging folder and renames it into place, because two xdist workers
    may both find no node_modules: a worker seeing another's half-written folder ran node
    against a package not yet unpacked (a CI failure). A rename onto a folder that exists
    fails, so the first finished install wins and the other is discarded."""
    if (STRIMZI / "node_modules").exists():
        return
    staging = Path(tempfile.mkdtemp(prefix=".install-", dir=STRIMZI))
    try:
        for name in ("package.json", "package-lock.json"):
            shutil.copy2(STRIMZI / name, staging / name)
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=staging, check=True,
                       capture_output=True, timeout=300)  # fmt: skip
        with contextlib.suppress(OSError):
            (staging / "node_modules").rename(STRIMZI / "node_modules")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _strimzi_problems(documents: list[dict[str, Any]]) -> list[str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "Node.js and npm are needed for the Strimzi CRD schemas"
    _install_strimzi_schemas(npm)
    result = subprocess.run([node, "validate.mjs"], cwd=STRIMZI, input=json.dumps(documents),
                            capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert result.stdout, result.stderr
    return list(json.loads(result.stdout))


def test_strimzi_resources_are_valid_against_strimzis_crd_schemas():
    strimzi = [d for d in _documents() if d["kind"] in STRIMZI_KINDS]
    assert {d["kind"] for d in strimzi} == STRIMZI_KINDS
    assert _strimzi_problems(strimzi) == []


def test_the_strimzi_check_refuses_malformed_resources():
    topic = json.loads(json.dumps(_of("KafkaTopic")[0]))
    topic["spec"]["partitions"] = "six"
    user = json.loads(json.dumps(_of("KafkaUser")[0]))
    user["spec"]["authentication"]["type"] = "password-in-clear"
    assert len(_strimzi_problems([topic, user])) == 2


# -- consistency with the code -------------------------------------------------------------


@pytest.fixture(scope="module")
def directory(generator, tmp_path_factory) -> Any:
    folder = tmp_path_factory.mktemp("federation")
    return build_dev_federation(folder, councils=list(generator.COUNCILS)).load()


def test_every_topic_the_federation_uses_has_a_kafkatopic_and_no_other(generator, directory):
    declared = {d["spec"]["topicName"]: d for d in _of("KafkaTopic")}
    prefix = generator.PREFIX
    expected = {f"{prefix}.{role}.{c.member_id}" for c in directory.councils
                for role in ("events", "consent")}  # fmt: skip
    expected |= {f"{prefix}.notify.{s.member_id}" for s in directory.services}
    expected |= {f"{prefix}.audit", f"{prefix}.rejected", f"{prefix}.broker.matches",
                 f"{prefix}.broker.routed"}  # fmt: skip
    assert set(declared) == expected
    assert declared[f"{prefix}.audit"]["spec"]["config"]["retention.ms"] == -1
    assert all(d["spec"]["replicas"] == 3 and d["spec"]["config"]["min.insync.replicas"] == 2
               for d in declared.values())  # fmt: skip
    # The broker's own topic names, as its code spells them (a rename must reach here).
    from broker._topics import ROUTED_SUFFIX

    assert f"{prefix}.{ROUTED_SUFFIX}" in declared
    source = (REPO / "broker" / "_topics.py").read_text()
    for suffix in (".broker.matches", ".audit", ".rejected"):
        assert f'{{prefix}}{suffix}"' in source, suffix


def test_every_kafkauser_carries_exactly_the_directorys_acls(directory):
    expected: dict[str, set[tuple[str, str, str, str]]] = {}
    for acl in derive_acls(directory):
        member = acl.principal.removeprefix("User:")
        pattern = "prefix" if acl.pattern.value == "prefixed" else "literal"
        expected.setdefault(member, set()).add(
            (acl.resource.value, acl.name, pattern, acl.operation.value)
        )
    found: dict[str, set[tuple[str, str, str, str]]] = {}
    for user in _of("KafkaUser"):
        member = user["metadata"]["annotations"]["fedbroker/member-id"]
        assert user["spec"]["authentication"]["type"] == "tls"
        for rule in user["spec"]["authorization"]["acls"]:
            r = rule["resource"]
            found.setdefault(member, set()).update(
                (r["type"], r["name"], r["patternType"], op) for op in rule["operations"]
            )
    assert found == expected


def test_kafka_is_kraft_with_only_authenticated_tls_listeners():
    (kafka,) = _of("Kafka")
    (pool,) = _of("KafkaNodePool")
    assert kafka["metadata"]["annotations"]["strimzi.io/kraft"] == "enabled"
    assert set(pool["spec"]["roles"]) == {"controller", "broker"} and pool["spec"]["replicas"] >= 3
    for listener in kafka["spec"]["kafka"]["listeners"]:
        assert listener["tls"] is True and listener["authentication"]["type"] == "tls"
    assert kafka["spec"]["kafka"]["authorization"]["type"] == "simple"
    assert kafka["spec"]["kafka"]["config"]["allow.everyone.if.no.acl.found"] is False


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


def _flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_workloads_probe_their_metrics_port_and_bound_their_resources(generator, tmp_path):
    deployments = {d["metadata"]["name"]: d for d in _workloads()}
    councils = {f"fedbroker-connector-{c.lower()}" for c in generator.COUNCILS}
    assert set(deployments) == {"fedbroker-broker", "fedbroker-subscriber", *councils}
    assert deployments["fedbroker-broker"]["spec"]["replicas"] >= 2
    configs = {d["metadata"]["name"]: d["data"]["connector.yaml"] for d in _of("ConfigMap")}
    for name, deployment in deployments.items():
        container = _container(deployment)
        args = container["args"]
        assert not refused(args), (name, refused(args))
        if args[0] == "connector":
            (tmp_path / "c.yaml").write_text(configs[name])
            config = load_config(tmp_path / "c.yaml")
            assert config.council.lower() in name and config.metrics_bind == "0.0.0.0"
            port = config.metrics_port
        else:
            assert _flag(args, "--metrics-bind") == "0.0.0.0"
            port = int(_flag(args, "--metrics-port"))
        assert container["ports"] == [{"name": "metrics", "containerPort": port}]
        for probe in ("readinessProbe", "livenessProbe"):
            assert container[probe]["httpGet"] == {"path": "/metrics", "port": "metrics"}
        resources = container["resources"]
        assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}
        # Kafka credentials are files named by variables, never flags.
        env = {e["name"]: e["value"] for e in container["env"]}
        assert {"FEDBROKER_KAFKA_CA_FILE", "FEDBROKER_KAFKA_CERT_FILE",
                "FEDBROKER_KAFKA_KEY_FILE"} <= set(env)  # fmt: skip
        assert not any("key" in a.lower() and a.endswith(".pem") for a in args)


def test_each_workload_uses_the_certificate_of_its_own_party(directory):
    users = {u["metadata"]["name"] for u in _of("KafkaUser")}
    for deployment in _workloads():
        volumes = deployment["spec"]["template"]["spec"]["volumes"]
        (secret,) = [v["secret"]["secretName"] for v in volumes if v["name"] == "kafka-user"]
        assert secret in users, f"{deployment['metadata']['name']} mounts no KafkaUser's secret"


def test_every_component_keeps_its_state_on_a_volume_that_outlives_its_pod():
    """The broker's data folder holds the directory's serial store: on an emptyDir,
    every restart was a fresh host that accepted a rolled-back directory once."""
    for workload in _workloads():
        name, spec = workload["metadata"]["name"], workload["spec"]
        volumes = spec["template"]["spec"]["volumes"]
        assert not [v for v in volumes if "emptyDir" in v], name
        mounted = {m["name"] for m in _container(workload)["volumeMounts"]
                   if m["mountPath"] == "/var/lib/fedbroker"}  # fmt: skip
        claims = {v["name"] for v in volumes if "persistentVolumeClaim" in v}
        claims |= {c["metadata"]["name"] for c in spec.get("volumeClaimTemplates", [])}
        assert mounted and mounted <= claims, name
    (broker,) = [w for w in _workloads() if w["metadata"]["name"] == "fedbroker-broker"]
    # One volume per worker: a shared claim would put two workers' RocksDB in one folder.
    assert broker["kind"] == "StatefulSet" and broker["spec"]["replicas"] >= 2
    (service,) = [
        s for s in _of("Service") if s["metadata"]["name"] == broker["spec"]["serviceName"]
    ]
    assert service["spec"]["clusterIP"] == "None"
