"""How a party proves who it is to Kafka: one settings object, many client libraries.

Connectors, the broker, subscribers and the CLI all reach Kafka, through
kafka-python, aiokafka (under Faust) and librdkafka (kcat). They take their
credentials from this one frozen object, so a secured deployment is configured
once per party, from a file or ``FEDBROKER_KAFKA_*`` variables, never from a
command line (where ``ps`` would show it). It lives in ``consent`` beside the
directory's parties and keys; the adapters only build dictionaries and a stdlib
``ssl.SSLContext``, so ``consent`` still does no Kafka I/O.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from consent._errors import KeyInvalid
from consent._keys import warn_if_exposed

__all__ = ["ENV_PREFIX", "KafkaSecurity", "Secret", "SecurityProtocol"]

ENV_PREFIX = "FEDBROKER_KAFKA_"
DEFAULT_SASL_MECHANISM = "SCRAM-SHA-512"

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_SSL"]
_FIELDS = frozenset(
    {
        "ca_file",
        "cert_file",
        "key_file",
        "key_password_file",
        "sasl_mechanism",
        "sasl_username",
        "sasl_password_file",
    }
)


@dataclass(frozen=True, slots=True)
class Secret:
    """A password that never shows itself in a repr, a log line or a traceback."""

    _value: str

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__


def _read_secret(path: Path) -> Secret:
    try:
        return Secret(path.read_text(encoding="utf-8").strip())
    except OSError as exc:
        raise KeyInvalid(f"cannot read the password file {path}") from exc


@dataclass(frozen=True, slots=True)
class KafkaSecurity:
    """A party's Kafka credentials; the default is an unsecured (development) client.

    Attributes:
        ca_file: PEM bundle of the CA that signed the brokers' certificates.
        cert_file: the party's client certificate (mutual TLS).
        key_file: its private key (PEM, PKCS#8).
        key_password: the key's password, if it is encrypted.
        sasl_mechanism: ``SCRAM-SHA-512`` (default) or ``SCRAM-SHA-256``.
        sasl_username: set to use SASL over TLS instead of a client certificate.
        sasl_password: the SASL password.
    """

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    key_password: Secret | None = None
    sasl_mechanism: str = DEFAULT_SASL_MECHANISM
    sasl_username: str | None = None
    sasl_password: Secret | None = None

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise KeyInvalid("a client certificate needs its key, and a key its certificate")
        if (self.sasl_username is None) != (self.sasl_password is None):
            raise KeyInvalid("SASL needs both a user name and a password")
        secured = self.cert_file is not None or self.sasl_username is not None
        if secured and self.ca_file is None:
            raise KeyInvalid("client credentials need the CA file that signed the brokers")
        if self.sasl_mechanism not in ("SCRAM-SHA-512", "SCRAM-SHA-256"):
            raise KeyInvalid(f"unsupported SASL mechanism {self.sasl_mechanism!r}")
        for path in (self.ca_file, self.cert_file, self.key_file):
            if path is not None and not path.is_file():
                raise KeyInvalid(f"Kafka credential file {path} does not exist")

    @property
    def protocol(self) -> SecurityProtocol:
        if self.sasl_username is not None:
            return "SASL_SSL"
        return "SSL" if self.ca_file is not None else "PLAINTEXT"

    # -- loading -------------------------------------------------------------

    @classmethod
    def from_mapping(
        cls,
        values: Mapping[str, Any],
        *,
        base: Path | None = None,
        sasl_password: Secret | None = None,
    ) -> KafkaSecurity:
        """Build from a mapping of the ``_FIELDS`` names; relative paths are under ``base``.

        Raises:
            KeyInvalid: an unknown field, a missing file or an incomplete pair.
        """
        unknown = sorted(set(values) - _FIELDS)
        if unknown:
            raise KeyInvalid(f"unknown Kafka security setting(s): {', '.join(unknown)}")

        def path(name: str) -> Path | None:
            value = values.get(name)
            if value in (None, ""):
                return None
            found = Path(str(value)).expanduser()
            return found if base is None or found.is_absolute() else base / found

        key_password_file = path("key_password_file")
        sasl_password_file = path("sasl_password_file")
        # whoever reads these can log in to Kafka as the party (the CA and certificate are public)
        for secret in (path("key_file"), key_password_file, sasl_password_file):
            if secret is not None:
                warn_if_exposed(secret)
        return cls(
            ca_file=path("ca_file"),
            cert_file=path("cert_file"),
            key_file=path("key_file"),
            key_password=_read_secret(key_password_file) if key_password_file else None,
            sasl_mechanism=str(values.get("sasl_mechanism") or DEFAULT_SASL_MECHANISM),
            sasl_username=str(values["sasl_username"]) if values.get("sasl_username") else None,
            sasl_password=_read_secret(sasl_password_file) if sasl_password_file else sasl_password,
        )

    @classmethod
    def from_file(cls, path: Path) -> KafkaSecurity:
        """Read a YAML file of settings; relative paths are relative to the file."""
        try:
            values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise KeyInvalid(f"cannot read Kafka security settings {path}") from exc
        if not isinstance(values, Mapping):
            raise KeyInvalid(f"{path}: Kafka security settings must be a mapping")
        return cls.from_mapping(values, base=path.parent)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> KafkaSecurity:
        """``FEDBROKER_KAFKA_SECURITY_FILE`` (a YAML file) or one variable per setting.

        Each setting ``x`` is read from ``FEDBROKER_KAFKA_X``; passwords come from
        files (``..._KEY_PASSWORD_FILE``, ``..._SASL_PASSWORD_FILE``), or from
        ``FEDBROKER_KAFKA_SASL_PASSWORD`` where an orchestrator injects secrets
        as variables. Nothing set means an unsecured client.
        """
        file = environ.get(f"{ENV_PREFIX}SECURITY_FILE")
        if file:
            return cls.from_file(Path(file))
        values = {
            name: environ[f"{ENV_PREFIX}{name.upper()}"]
            for name in _FIELDS
            if environ.get(f"{ENV_PREFIX}{name.upper()}")
        }
        direct = environ.get(f"{ENV_PREFIX}SASL_PASSWORD")
        return cls.from_mapping(values, sasl_password=Secret(direct) if direct else None)

    # -- adapters ------------------------------------------------------------

    def ssl_context(self) -> ssl.SSLContext | None:
        """A verifying client context (hostname checked), or None when unsecured."""
        if self.ca_file is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.ca_file))
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.cert_file is not None and self.key_file is not None:
            password = self.key_password.reveal() if self.key_password else None
            context.load_cert_chain(str(self.cert_file), str(self.key_file), password)
        return context

    def kafka_python(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python's producer, consumer and admin client."""
        if self.protocol == "PLAINTEXT":
            return {}
        kwargs: dict[str, Any] = {
            "security_protocol": self.protocol,
            "ssl_cafile": str(self.ca_file),
            "ssl_check_hostname": True,
        }
        if self.cert_file is not None:
            kwargs["ssl_certfile"] = str(self.cert_file)
            kwargs["ssl_keyfile"] = str(self.key_file)
            if self.key_password is not None:
                kwargs["ssl_password"] = self.key_password.reveal()
        if self.sasl_username is not None and self.sasl_password is not None:
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.sasl_username
            kwargs["sasl_plain_password"] = self.sasl_password.reveal()
        return kwargs

    def aiokafka(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka's clients (the library under Faust)."""
        if self.protocol == "PLAINTEXT":
            return {}
        kwargs: dict[str, Any] = {
            "security_protocol": self.protocol,
            "ssl_context": self.ssl_context(),
        }
        if self.sasl_username is not None and self.sasl_password is not None:
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.sasl_username
            kwargs["sasl_plain_password"] = self.sasl_password.reveal()
        return kwargs

    def librdkafka(self) -> dict[str, str]:
        """Properties for librdkafka clients such as kcat (write them to a 0600 file)."""
        if self.protocol == "PLAINTEXT":
            return {}
        config = {
            "security.protocol": self.protocol.lower(),
            "ssl.ca.location": str(self.ca_file),
        }
        if self.cert_file is not None:
            config["ssl.certificate.location"] = str(self.cert_file)
            config["ssl.key.location"] = str(self.key_file)
            if self.key_password is not None:
                config["ssl.key.password"] = self.key_password.reveal()
        if self.sasl_username is not None and self.sasl_password is not None:
            config["sasl.mechanisms"] = self.sasl_mechanism
            config["sasl.username"] = self.sasl_username
            config["sasl.password"] = self.sasl_password.reveal()
        return config
