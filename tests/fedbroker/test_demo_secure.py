"""``fedbroker demo --secure``: the whole demo on the local secured Kafka, each party as itself.

The cluster denies whatever no ACL allows, so a demo that completes with every
check held proves the directory's ACLs are enough for connectors, broker and
subscribers; the children are inspected while they run to prove each holds
only its own party's credentials, from a file named in its environment, never
on its command line.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fedbroker import KafkaCluster
from tests.ports import kafka_port

PORT = kafka_port("demo-secure")
HEAP = "-Xmx320m -Xms96m"


def _children(pid: int) -> dict[int, tuple[str, dict[str, str]]]:
    """Live child processes of ``pid``: command line and environment."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        # The demo's own Kafka node is its child too (it started the cluster): not a party.
        if int(fields[1]) == pid and fields[0] != "Z" and "kafka.Kafka" not in cmdline:
            env = dict(e.decode().partition("=")[::2] for e in environ if b"=" in e)
            found[int(entry.name)] = (cmdline, env)
    return found


@pytest.mark.slow
@pytest.mark.kafka
@pytest.mark.timeout(600)
def test_the_demo_runs_secured_with_least_privilege_and_no_credential_in_sight(
    fedbroker_home: Path, tmp_path: Path
):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEDBROKER_KAFKA_")}
    env |= {"FEDBROKER_HOME": str(fedbroker_home), "FEDBROKER_KAFKA_HEAP": HEAP}
    # KAFKA_BOOTSTRAP_SERVERS (the plaintext test Kafka) stays set: --secure must ignore it.
    demo = subprocess.Popen(
        [sys.executable, "-m", "fedbroker", "demo", "--secure", "--kafka-port", str(PORT),
         "--people", "60", "--duration", "20", "--plain"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    cluster = KafkaCluster(1, PORT, fedbroker_home, secure=True)
    lines: list[str] = []
    try:
        assert demo.stdout is not None
        for line in demo.stdout:
            lines.append(line)
            if line.startswith("streaming: "):
                break
        children = _children(demo.pid)
        rest, _ = demo.communicate(timeout=540)
    finally:
        if demo.poll() is None:
            demo.kill()
        cluster.down()
    out = "".join(lines) + rest
    assert demo.returncode == 0, out[-5000:]
    assert f"Kafka at 127.0.0.1:{PORT} (secured" in out
    assert re.search(r"credentials and ACLs set for \d+ parties", out), out[:2000]
    assert "demo OK: every check held" in out
    assert re.search(r"privacy scan of \d+ topics \S+: 0 clear values found", out)

    # Each child reaches Kafka as its own party, through a settings file in its
    # environment; no command line names a Kafka credential.
    principals = cluster.pki.folder / "principals"
    for cmdline, _ in children.values():
        assert str(principals) not in cmdline and "kafka-security" not in cmdline, cmdline
    # The connectors' build workers are forks of the demo itself (its command line).
    parties = {pid: child for pid, child in children.items() if " demo " not in child[0]}
    assert len(parties) == 5, children
    for cmdline, child_env in parties.values():
        party = "broker" if " broker run " in cmdline else cmdline.split("--service ")[1].split()[0]
        settings = child_env.get("FEDBROKER_KAFKA_SECURITY_FILE")
        assert settings == str(principals / party / "kafka-security.yaml"), (party, settings)
        assert not {k for k in child_env if k.startswith("FEDBROKER_KAFKA_")} - {
            "FEDBROKER_KAFKA_SECURITY_FILE"
        }
    # Connectors run in the demo's process: their YAML names their own files.
    work = Path(re.search(r"working in (\S+);", out)[1])  # type: ignore[index]
    for config in work.glob("E*/connector.yaml"):
        council = config.parent.name
        security = yaml.safe_load(config.read_text())["kafka"]["security"]
        assert security["cert_file"] == str(principals / council / "cert.pem"), security
    # Nothing was refused, and no secret reached the output or a log.
    logs = "".join(p.read_text(errors="replace") for p in work.glob("*.log"))
    assert "AuthorizationFailed" not in logs + out
    password = cluster.pki.node_password_file.read_text().strip()
    assert password not in out + logs and "PRIVATE KEY" not in out + logs
