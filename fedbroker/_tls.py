"""The local cluster's own certificate authority and the certificates it issues.

A secured local cluster authenticates every client by mutual TLS (see
docs/operations.md for why not SCRAM): each party in the signed directory gets a
client certificate whose subject is ``CN=<member id>``, so Kafka's principal is
``User:<member id>`` once the broker's principal mapping strips the ``CN=``.
Everything is made here with ``cryptography``; nothing is downloaded, and every
private key or password is written 0600 from the moment the file exists.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "ADMIN_PRINCIPAL",
    "CERT_VALIDITY",
    "NODE_PRINCIPAL",
    "ClientFiles",
    "LocalPki",
    "write_secret",
]

ADMIN_PRINCIPAL = "admin"
"""The super user that sets ACLs; no directory member may carry this id."""
NODE_PRINCIPAL = "kafka-node"
"""The Kafka nodes' own identity, for inter-broker and controller traffic."""
CERT_VALIDITY = timedelta(days=365)
_CLOCK_SKEW = timedelta(minutes=5)
# A principal names a folder and a certificate subject: no separators, no commas.
_PRINCIPAL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def write_secret(path: Path, data: bytes) -> None:
    """Write ``data`` to a file that is 0600 from creation (never briefly world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass(frozen=True, slots=True)
class ClientFiles:
    """One principal's credentials: the CA to trust, its certificate and its key."""

    principal: str
    ca_file: Path
    cert_file: Path
    key_file: Path


@dataclass(frozen=True, slots=True)
class LocalPki:
    """A CA kept in ``folder`` and the node and client certificates it signs.

    Issuing is idempotent: an existing certificate is kept, so a restarted
    cluster and its clients keep trusting each other.
    """

    folder: Path

    @property
    def ca_file(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def _ca_key_file(self) -> Path:
        return self.folder / "ca.key"

    @property
    def node_keystore(self) -> Path:
        return self.folder / "node.p12"

    @property
    def node_password_file(self) -> Path:
        return self.folder / "node.password"

    def client_files(self, principal: str) -> ClientFiles:
        if not _PRINCIPAL.match(principal):
            raise ValueError(f"{principal!r} cannot name a Kafka principal")
        folder = self.folder / "principals" / principal
        return ClientFiles(principal, self.ca_file, folder / "cert.pem", folder / "key.pem")

    def ensure_ca(self) -> None:
        """Create the CA once; its key never leaves this folder."""
        if self.ca_file.exists() and self._ca_key_file.exists():
            return
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name("fedbroker local Kafka CA"))
            .issuer_name(_name("fedbroker local Kafka CA"))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _CLOCK_SKEW)
            .not_valid_after(now + CERT_VALIDITY * 5)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        write_secret(self._ca_key_file, _key_pem(key))
        self.ca_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))

    def _issue(
        self, common_name: str, *, hosts: Sequence[str] = ()
    ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        self.ensure_ca()
        ca_key = serialization.load_pem_private_key(self._ca_key_file.read_bytes(), None)
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
        ca_cert = x509.load_pem_x509_certificate(self.ca_file.read_bytes())
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _CLOCK_SKEW)
            .not_valid_after(now + CERT_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )
        if hosts:
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
            names: list[x509.GeneralName] = []
            for host in hosts:
                try:
                    names.append(x509.IPAddress(ipaddress.ip_address(host)))
                except ValueError:
                    names.append(x509.DNSName(host))
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        return key, builder.sign(ca_key, hashes.SHA256())

    def ensure_node(self, hosts: Sequence[str] = ("127.0.0.1", "localhost")) -> None:
        """The nodes' shared keystore (PKCS#12, password in a 0600 file)."""
        if self.node_keystore.exists() and self.node_password_file.exists():
            return
        key, cert = self._issue(NODE_PRINCIPAL, hosts=hosts)
        password = secrets.token_urlsafe(24)
        ca_cert = x509.load_pem_x509_certificate(self.ca_file.read_bytes())
        store = pkcs12.serialize_key_and_certificates(
            NODE_PRINCIPAL.encode(),
            key,
            cert,
            [ca_cert],
            serialization.BestAvailableEncryption(password.encode()),
        )
        write_secret(self.node_password_file, password.encode())
        write_secret(self.node_keystore, store)

    def ensure_client(self, principal: str) -> ClientFiles:
        """The principal's certificate and key, issued once."""
        files = self.client_files(principal)
        if files.cert_file.exists() and files.key_file.exists():
            return files
        key, cert = self._issue(principal)
        write_secret(files.key_file, _key_pem(key))
        files.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return files
