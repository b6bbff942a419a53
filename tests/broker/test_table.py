"""A changelog topic not yet in the metadata is not a partition mismatch (see broker._table)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from faust.exceptions import PartitionsMismatch

from broker._settings import BrokerSettings
from broker._table import UnknownPartitionsTable
from broker.app import make_faust_app

SOURCE = "fed.broker.routed"


def _table(tmp_path: Path, known: dict[str, int], cls: type[Any]) -> Any:
    settings = BrokerSettings(
        bootstrap="127.0.0.1:1", directory=tmp_path / "d", trust_anchor=tmp_path / "t",
        signing_key=tmp_path / "k", app_id="group", data_dir=tmp_path / "data",
    )  # fmt: skip
    app = make_faust_app(settings, 1)
    table = cls(app, name="token-state")
    # aiokafka's coordinator snapshot: a topic it has no metadata for counts as 0
    app.consumer = SimpleNamespace(topic_partitions=lambda topic: known.get(topic, 0))
    return table


def test_the_app_makes_its_tables_with_the_broker_table_class(tmp_path: Path):
    settings = BrokerSettings(
        bootstrap="127.0.0.1:1", directory=tmp_path / "d", trust_anchor=tmp_path / "t",
        signing_key=tmp_path / "k", app_id="group", data_dir=tmp_path / "data",
    )  # fmt: skip
    assert isinstance(make_faust_app(settings, 1).Table("t"), UnknownPartitionsTable)


def test_upstream_calls_a_changelog_it_has_no_metadata_for_a_mismatch(tmp_path: Path):
    table = _table(tmp_path, {SOURCE: 3}, faust.Table)
    with pytest.raises(PartitionsMismatch):
        table._verify_source_topic_partitions(SOURCE)


def test_an_unknown_changelog_is_checked_again_once_known(tmp_path: Path):
    known = {SOURCE: 3}
    table = _table(tmp_path, known, UnknownPartitionsTable)
    table._verify_source_topic_partitions(SOURCE)  # 3 against "not known yet": goes on
    known[table.changelog_topic_name] = 2  # the metadata arrives, and disagrees
    with pytest.raises(PartitionsMismatch):
        table._verify_source_topic_partitions(SOURCE)
    known[table.changelog_topic_name] = 3
    table._verify_source_topic_partitions(SOURCE)
