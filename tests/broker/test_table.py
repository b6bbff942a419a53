"""A changelog topic not yet in the metadata is not a partition mismatch (see broker._table)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from faust.exceptions import PartitionsMismatch
from faust.serializers import codecs
from hypothesis import example, given, settings
from hypothesis import strategies as st

from broker._settings import BrokerSettings
from broker._table import TABLE_KEYS, BrokerTable
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
    assert isinstance(make_faust_app(settings, 1).Table("t"), BrokerTable)


def test_upstream_calls_a_changelog_it_has_no_metadata_for_a_mismatch(tmp_path: Path):
    table = _table(tmp_path, {SOURCE: 3}, faust.Table)
    with pytest.raises(PartitionsMismatch):
        table._verify_source_topic_partitions(SOURCE)


def test_an_unknown_changelog_is_checked_again_once_known(tmp_path: Path):
    known = {SOURCE: 3}
    table = _table(tmp_path, known, BrokerTable)
    table._verify_source_topic_partitions(SOURCE)  # 3 against "not known yet": goes on
    known[table.changelog_topic_name] = 2  # the metadata arrives, and disagrees
    with pytest.raises(PartitionsMismatch):
        table._verify_source_topic_partitions(SOURCE)
    known[table.changelog_topic_name] = 3
    table._verify_source_topic_partitions(SOURCE)


@pytest.mark.parametrize("store", ["memory://", "rocksdb://"])
def test_a_lookup_reads_the_store_once_and_an_absent_key_gives_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store: str
):
    """``Mapping.get`` asked the store whether it held the key, then read it: two reads."""
    table = broker_app(tmp_path, store).Table("t", key_type=str, value_type=bytes)
    reads: list[str] = []
    if store == "memory://":
        table.data.data["present"] = b"value"
        lookup = type(table.data).__getitem__
    else:
        stored = {table.data._encode_key("present"): table.data._encode_value(b"value")}
        monkeypatch.setattr(table.data, "_get", stored.get)  # as RocksDB answers
        lookup = type(table.data).__getitem__

    def counted(data: Any, key: Any) -> Any:
        reads.append(key)
        return lookup(data, key)

    def refused(data: Any, key: object) -> bool:
        raise AssertionError("a second read: asked first whether the key is there")

    monkeypatch.setattr(type(table.data), "__getitem__", counted)
    monkeypatch.setattr(type(table.data), "__contains__", refused)
    assert table.get("present") == b"value"
    assert table.get("absent") is None and table.get("absent", b"d") == b"d"
    assert reads == ["present", "absent", "absent"]


def broker_app(tmp_path: Path, store: str = "memory://") -> faust.App:
    """A broker's Faust app, not connected; on the memory store, tables without RocksDB files."""
    settings = BrokerSettings(
        bootstrap="127.0.0.1:1", directory=tmp_path / "d", trust_anchor=tmp_path / "t",
        signing_key=tmp_path / "k", app_id="group", data_dir=tmp_path / "data",
        store=store,
    )  # fmt: skip
    return make_faust_app(settings, 1)


def test_queued_writes_are_read_back_and_touch_nothing_until_committed(tmp_path: Path):
    """A routed batch reads its own writes; the store and changelog see them at ``commit``."""
    table = broker_app(tmp_path).Table("t", key_type=str, value_type=bytes)
    table.data.data["a"] = b"stored"
    writes = table.writes(0)
    assert writes.get("a") == b"stored" and writes.get("b") is None
    writes["a"] = b"changed"
    writes["b"] = b"new"
    assert (writes.get("a"), writes.get("b")) == (b"changed", b"new")
    assert writes.pop("a") is None  # a deletion is queued, nothing is read
    assert writes.get("a") is None and writes.get("a", b"default") == b"default"
    assert table.data.data == {"a": b"stored"}  # not applied until commit


def test_a_commit_sends_every_write_in_the_order_made_then_applies_them(tmp_path: Path):
    """A key written twice is sent twice: the changelog replays to the last value."""
    app = broker_app(tmp_path)
    table = app.Table("t", key_type=str, value_type=bytes)
    table.data.data["a"] = b"stored"
    sent: list[tuple[str, int, list[tuple[bytes, bytes | None]]]] = []

    class Recording:
        async def send_records(self, topic: str, partition: int, records: Any) -> Any:
            sent.append((topic, partition, list(records)))
            return []

    app.producer = Recording()  # type: ignore[assignment]
    writes = table.writes(2)
    writes["a"] = b"changed"
    writes["b"] = b"new"
    writes.pop("a")
    asyncio.run(writes.commit())
    assert sent == [(table.changelog_topic.get_topic_name(), 2,
                     [(b'"a"', b"changed"), (b'"b"', b"new"), (b'"a"', None)])]  # fmt: skip
    assert table.data.data == {"b": b"new"}


def test_a_commit_applies_to_the_partitions_rocksdb_the_records_the_changelog_gets(
    tmp_path: Path,
):
    """One write batch of the changelog's own bytes, as Faust's recovery writes them:
    Faust's store and later batches read them back, and no other partition's
    database is touched."""
    app = broker_app(tmp_path, "rocksdb://")
    table = app.Table("t", key_type=str, value_type=bytes, partitions=3)
    sent: list[tuple[bytes, bytes | None]] = []

    class Recording:
        async def send_records(self, topic: str, partition: int, records: Any) -> Any:
            sent.extend(records)
            return []

    app.producer = Recording()  # type: ignore[assignment]
    here, other = table.data._db_for_partition(2), table.data._db_for_partition(0)
    here[b'"a"'] = b"stored"
    other[b'"a"'] = b"another partition's"
    writes = table.writes(2)
    writes["a"] = b"changed"
    writes["b"] = b"new"
    writes.pop("a")
    writes["c"] = b"one"
    writes["c"] = b"two"
    asyncio.run(writes.commit())
    assert sent == [(b'"a"', b"changed"), (b'"b"', b"new"), (b'"a"', None),
                    (b'"c"', b"one"), (b'"c"', b"two")]  # fmt: skip
    assert (here.get(b'"a"'), here.get(b'"b"'), here.get(b'"c"')) == (None, b"new", b"two")
    assert (table.data["b"], table.data["c"]) == (b"new", b"two")  # as Faust's store reads
    assert other.get(b'"a"') == b"another partition's" and other.get(b'"b"') is None
    # A later batch reads its own partition's database, and only that one.
    later, elsewhere = table.writes(2), table.writes(0)
    assert (later.get("b"), later.get("a"), later.get("a", b"d")) == (b"new", None, b"d")
    assert (elsewhere.get("a"), elsewhere.get("b")) == (b"another partition's", None)


def test_writes_that_cannot_be_queued_on_the_changelog_leave_the_store_untouched(tmp_path: Path):
    """The batch is then retried and writes them all again; store-first, the retry would
    find its effects already stored, write nothing, and the changelog would lack them."""
    app = broker_app(tmp_path)
    table = app.Table("t", key_type=str, value_type=bytes)
    table.data.data["a"] = b"stored"

    class Closing:
        async def send_records(self, topic: str, partition: int, records: Any) -> Any:
            raise RuntimeError("producer closed")

    app.producer = Closing()  # type: ignore[assignment]
    writes = table.writes(0)
    writes["a"] = b"changed"
    writes.pop("b")
    with pytest.raises(RuntimeError):
        asyncio.run(writes.commit())
    assert table.data.data == {"a": b"stored"}


@settings(max_examples=500, deadline=None)
@given(st.text())
@example("pc:1:0a1b")  # a plain key, or one JSON escapes
@example("ev-1/00ff/3")
@example('a"b')
@example("a\\b")
@example("tab\there")
@example("caf\u00e9")
@example("\x7f")
@example("")
def test_table_keys_are_the_bytes_fausts_json_codec_writes(key: str):
    """Stores and changelogs written before read the same after the change of codec."""
    expected = codecs.get_codec("json").dumps(key)
    assert TABLE_KEYS.dumps(key) == expected
    assert TABLE_KEYS.loads(expected) == key


def test_the_broker_tables_write_their_keys_with_the_table_codec(tmp_path: Path):
    app = _table(tmp_path, {}, BrokerTable).app
    table = BrokerTable(app, name="token-state", key_type=str, value_type=bytes)  # as build_app
    assert table.key_serializer is TABLE_KEYS and table.value_serializer == "raw"
    raw, _ = table.changelog_topic.prepare_key("pc:1:0a1b", table.key_serializer)
    assert raw == b'"pc:1:0a1b"'
