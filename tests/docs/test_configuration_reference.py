"""docs/reference/configuration.md lists every option, YAML key and environment variable.

The reference is written by hand, so it falls behind the code unless a test
holds it: this one walks the ``fedbroker`` command tree (every ``--help``), the
loaders' key sets and the settings dataclasses, and names exactly what is
missing. When it fails after a new option lands, add the line it prints.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import click
import pytest

from broker import BrokerSettings
from connectors import ConnectorConfig, MappingInvalid, SourceConfig, parse_mapping
from connectors._mapping import IDENTITY_FIELDS
from consent import _agreement_loader as agreement_loader
from consent import _directory as directory_loader
from consent import _kafka_security as kafka_security
from fedbroker.cli import cli
from subscriber import SubscriberSettings

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "docs" / "reference" / "configuration.md"
PACKAGES = ("schemas", "consent", "connectors", "broker", "subscriber", "fedbroker")
_ENV_NAME = re.compile(r"\b(FEDBROKER_[A-Z0-9_]*[A-Z0-9]|KAFKA_BOOTSTRAP_SERVERS)\b")


def _sections(level: str) -> dict[str, str]:
    """Heading text -> body, for headings of exactly this level (``##`` or ``###``)."""
    text = REFERENCE.read_text(encoding="utf-8")
    parts = re.split(rf"^{level} (.+)$", text, flags=re.MULTILINE)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def _section(title: str) -> str:
    found = [body for heading, body in _sections("##").items() if heading.startswith(title)]
    assert found, f"{REFERENCE.name} has no '## {title}' section"
    return found[0]


def _commands() -> list[tuple[str, click.Command]]:
    """Every command of the tree with its full name, groups included."""
    found: list[tuple[str, click.Command]] = []

    def walk(command: click.Command, path: str, ctx: click.Context) -> None:
        found.append((path, command))
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None
                walk(sub, f"{path} {name}", click.Context(sub, parent=ctx, info_name=name))

    walk(cli, "fedbroker", click.Context(cli, info_name="fedbroker"))
    return found


def _suggested_row(option: click.Option) -> str:
    names = ", ".join(f"`{o}`" for o in option.opts + option.secondary_opts)
    if option.required:
        default = "required"
    elif option.multiple:
        default = "none (repeatable)"
    elif option.is_flag:
        default = "off"
    elif option.default is None or "Sentinel" in str(option.default):
        default = "none"
    else:
        default = f"`{option.default}`"
    env = f"`{option.envvar}`" if option.envvar else ""
    return f"| {names} | {default} | {env} | {option.help or ''} |"


def test_every_command_option_is_in_the_reference():
    sections = {heading.strip("` "): body for heading, body in _sections("###").items()}
    missing: list[str] = []
    for path, command in _commands():
        options = [p for p in command.params if isinstance(p, click.Option)]
        if isinstance(command, click.Group) and not options:
            continue
        body = sections.get(path)
        if body is None:
            missing.append(f"{path}: no '### `{path}`' section")
            continue
        for option in options:
            if not any(f"`{name}`" in body for name in option.opts):
                missing.append(f"{path} {option.opts[-1]}    {_suggested_row(option)}")
    assert not missing, "missing from docs/reference/configuration.md:\n" + "\n".join(missing)


def test_no_documented_option_is_stale():
    """An option row whose option the command no longer has misleads; name it."""
    commands = dict(_commands())
    stale: list[str] = []
    for heading, body in _sections("###").items():
        path = heading.strip("` ")
        command = commands.get(path)
        if command is None:
            stale.append(f"{path}: no such command")
            continue
        known = {name for p in command.params for name in getattr(p, "opts", [])}
        known |= {name for p in command.params for name in getattr(p, "secondary_opts", [])}
        for line in body.splitlines():
            if line.startswith("| `-"):
                first = line.split("|")[1]
                stale += [
                    f"{path} {n}" for n in re.findall(r"`(-[-\w]+)`", first) if n not in known
                ]
    assert not stale, "options documented but gone:\n" + "\n".join(stale)


def _keys_missing(section: str, keys: list[str]) -> list[str]:
    body = _section(section)
    return [f"{section}: {key}" for key in keys if f"`{key}`" not in body]


def _mapping_keys() -> list[str]:
    """The mapping loader's accepted keys, read from its own refusal of an unknown one."""
    with pytest.raises(MappingInvalid) as caught:
        parse_mapping({"no-such-key": 1})
    listed = re.search(r"expected one of \[(.*?)\]", str(caught.value))
    assert listed, str(caught.value)
    return re.findall(r"'([a-z_]+)'", listed.group(1))


def test_every_yaml_key_and_settings_field_is_in_the_reference():
    missing: list[str] = []
    connector = [f.name for f in dataclasses.fields(ConnectorConfig)]
    connector += [f"sources[].{f.name}" for f in dataclasses.fields(SourceConfig)]
    missing += _keys_missing("Connector config", connector)
    mapping = [*_mapping_keys(), "identity.extra", *sorted(IDENTITY_FIELDS)]
    missing += _keys_missing("Source mapping", mapping + ["column", "fixed", "values", "format"])
    agreement = sorted(agreement_loader._FIELDS)
    agreement += [f"lawful_basis.{k}" for k in sorted(agreement_loader._BASIS_FIELDS)]
    agreement += [f"match.{k}" for k in sorted(agreement_loader._MATCH_FIELDS)]
    missing += _keys_missing("Agreement", agreement)
    directory = sorted(directory_loader._TOP)
    directory += [f"members[].{k}" for k in sorted(directory_loader._MEMBER)]
    missing += _keys_missing("Directory", directory)
    broker = [f.name for f in dataclasses.fields(BrokerSettings)]
    missing += _keys_missing("Broker settings", broker)
    missing += _keys_missing("Kafka security settings", sorted(kafka_security._FIELDS))
    subscriber = [f.name for f in dataclasses.fields(SubscriberSettings)]
    missing += _keys_missing("Subscriber settings", subscriber)
    assert not missing, "missing from docs/reference/configuration.md:\n" + "\n".join(missing)


def test_every_environment_variable_the_code_reads_is_in_the_reference():
    sources = [p for package in PACKAGES for p in (REPO / package).rglob("*.py")]
    sources.append(REPO / "tests" / "kafka_fixtures.py")
    found = {m for path in sources for m in _ENV_NAME.findall(path.read_text("utf-8"))}
    assert "FEDBROKER_HOME" in found  # the scan itself works
    # KafkaSecurity reads one variable per setting, named by a prefix in code.
    prefix = kafka_security.ENV_PREFIX
    found |= {f"{prefix}{name.upper()}" for name in kafka_security._FIELDS}
    found |= {f"{prefix}SECURITY_FILE", f"{prefix}SASL_PASSWORD", "XDG_STATE_HOME"}
    found.discard(f"{prefix}X")  # the docstring's placeholder for "each setting x"
    names = sorted(found)
    body = _section("Environment variables")
    missing = [name for name in names if f"`{name}`" not in body]
    assert not missing, "missing from docs/reference/configuration.md:\n" + "\n".join(missing)
