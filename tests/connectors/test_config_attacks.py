"""Attacks on the files a council's IT team writes: the connector config and a
source mapping with wrong types, typos and YAML tricks.

Each must be a ``ConfigInvalid``/``MappingInvalid`` naming the key, before
anything starts: a typo silently ignored leaves a setting at its default (a
``kafka.bootsrap`` sent events to whatever cluster the environment named), and a
wrong type raised a bare ``ValueError``/``TypeError``, or failed at every pass
later. Each test failed on the code before its fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors import ConfigInvalid, MappingInvalid, load_config, parse_mapping


def _config(tmp_path: Path, **changes: Any) -> Path:
    source: dict[str, Any] = {"name": "s", "kind": "csv", "path": "in", "mapping": "m.yaml"}
    source.update(changes.pop("source", {}))
    document: dict[str, Any] = {
        "council": "E08000001", "directory": "d", "trust_anchor": "t", "signing_key": "k",
        "linkage_keys": "l", "outbox": "o", "kafka": {"bootstrap": "x:1"},
        "sources": [source],
    }  # fmt: skip
    document.update(changes)
    path = tmp_path / "connector.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_the_base_config_loads(tmp_path):
    assert load_config(_config(tmp_path)).sources[0].name == "s"


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"metrics_port": "abc"}, "metrics_port"),
        ({"metrics_port": 70000}, "metrics_port"),
        ({"metrics_port": True}, "metrics_port"),
        ({"poll_interval_s": "fast"}, "poll_interval_s"),
        ({"poll_interval_s": [1]}, "poll_interval_s"),
        ({"poll_interval_s": -1}, "poll_interval_s"),  # a loop without a pause
        ({"poll_interval_s": float("nan")}, "poll_interval_s"),
        ({"poll_interval": 5}, "poll_interval"),
        ({"occurred_at_flor": "2021-01-01"}, "occurred_at_flor"),
        ({"kafka": {"bootsrap": "x:1"}}, "kafka.bootsrap"),
        ({"kafka": {"bootstrap": ["x:1"]}}, "kafka.bootstrap"),
        ({"kafka": {"bootstrap": "x:1", "topic_prefix": ["a"]}}, "kafka.topic_prefix"),
        ({"kafka": {"bootstrap": "x:1", "topic_prefix": "fed/../x"}}, "kafka.topic_prefix"),
        ({"metrics_bind": 5}, "metrics_bind"),
        ({"linkage_keys": ["a", "b"]}, "linkage_keys"),
        ({"directory_serials": {"a": 1}}, "directory_serials"),
        ({"source": {"name": ["a"]}}, "sources[0].name"),
        ({"source": {"mapping": 5}}, "sources[0].mapping"),
        ({"source": {"path": ["in"]}}, "sources[0].path"),
        ({"source": {"high_water": "id"}}, "sources[0].high_water"),
        (
            {
                "source": {
                    "kind": "postgres",
                    "dsn": "postgresql://x",
                    "table": 5,
                    "high_water_column": "id",
                }
            },
            "sources[0].table",
        ),  # fmt: skip
        (
            {"source": {"kind": "postgres", "dsn": ["x"], "table": "t", "high_water_column": "id"}},
            "sources[0].dsn",
        ),  # fmt: skip
    ],
)
def test_a_wrong_config_is_refused_naming_the_key(tmp_path, monkeypatch, changes, key):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "elsewhere:9092")
    with pytest.raises(ConfigInvalid) as caught:
        load_config(_config(tmp_path, **changes))
    assert f": {key}:" in str(caught.value)


def test_a_yaml_alias_bomb_is_refused_without_being_expanded(tmp_path):
    """Nested aliases are shared, not copied, by the YAML loader; ``str()`` of the name
    expanded them all (here half a million strings; 9 levels of 9 are 387 million)."""
    levels = ["&a0 [x, x, x, x, x, x, x, x, x]"]
    levels += [f"&a{n} [{', '.join([f'*a{n - 1}'] * 9)}]" for n in range(1, 6)]
    path = _config(tmp_path)
    path.write_text(path.read_text().replace("name: s", f"name: [{', '.join(levels)}]"))
    with pytest.raises(ConfigInvalid, match=r"sources\[0\]\.name"):
        load_config(path)


GOOD_MAPPING: dict[str, Any] = {
    "system": "rev", "identity": {"nhs_number": "n"}, "reference": "ref",
    "event_type": "address-change", "occurred_at": {"column": "t"},
}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"occurred_at": {"column": ["a", "b"]}}, "occurred_at.column"),
        ({"occurred_at": {"column": 5}}, "occurred_at.column"),
        ({"occurred_at": {"column": ""}}, "occurred_at.column"),
        ({"occurred_at": {"fixed": ["2026-01-01"]}}, "occurred_at.fixed"),
        # an extra fuzzy column named as an identifier overrode that identifier's column
        (
            {"identity": {"nhs_number": "n", "extra": {"postcode": "street"}}},
            "identity.extra.postcode",
        ),  # fmt: skip
    ],
)
def test_a_wrong_mapping_value_is_refused_naming_the_key(change, key):
    with pytest.raises(MappingInvalid) as caught:
        parse_mapping({**GOOD_MAPPING, **change})
    assert f": {key}:" in str(caught.value)


def test_two_sources_watching_one_folder_are_refused(tmp_path):
    """A source block copied and its path left as it was: the first source took every
    file dropped for the second, read it under the wrong mapping (or refused it to
    failed/), and the second never saw one."""
    path = _config(tmp_path)
    document = yaml.safe_load(path.read_text())
    document["sources"].append(dict(document["sources"][0], name="t", mapping="other.yaml"))
    document["sources"][1]["path"] = str(tmp_path / "in")  # the same folder, spelt otherwise
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ConfigInvalid, match=r"sources\[1\]\.path"):
        load_config(path)


def test_more_build_workers_than_the_host_can_hold_are_refused(tmp_path):
    """``build_workers: 5000`` (a 5 for a 50, or a copied row count) forked five
    thousand copies of the connector at the first file."""
    with pytest.raises(ConfigInvalid, match="build_workers"):
        load_config(_config(tmp_path, build_workers=5000))
    assert load_config(_config(tmp_path, build_workers=2)).build_workers == 2
