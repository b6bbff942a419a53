"""Each app id keeps its RocksDB files apart, on a shared ``--data-dir``.

Faust names a table's files by the table, not by the app: a worker started
under a new ``--app-id`` on a data dir another group used read that group's
stored changelog offsets and stopped with ``ConsistencyError`` (seen when
``bench.broker``'s backfill reused the small run's folder).
"""

from __future__ import annotations

from pathlib import Path

from broker._settings import BrokerSettings
from broker.app import make_faust_app


def _settings(tmp_path: Path, app_id: str) -> BrokerSettings:
    return BrokerSettings(
        bootstrap="127.0.0.1:1", directory=tmp_path / "d", trust_anchor=tmp_path / "t",
        signing_key=tmp_path / "k", app_id=app_id, data_dir=tmp_path / "data",
    )  # fmt: skip


def test_two_app_ids_on_one_data_dir_get_separate_table_folders(tmp_path: Path):
    one = make_faust_app(_settings(tmp_path, "group-one"), 1)
    two = make_faust_app(_settings(tmp_path, "group-two"), 1)
    assert one.conf.tabledir != two.conf.tabledir
    for app, app_id in ((one, "group-one"), (two, "group-two")):
        assert Path(app.conf.tabledir).is_relative_to(tmp_path / "data" / app_id)


def test_the_same_app_id_finds_its_own_folder_again(tmp_path: Path):
    first = make_faust_app(_settings(tmp_path, "group-one"), 1)
    again = make_faust_app(_settings(tmp_path, "group-one"), 1)
    assert first.conf.tabledir == again.conf.tabledir
