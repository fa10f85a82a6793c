"""Schema migrations: a store at an earlier revision is refused with one line, `seqemb db upgrade`
brings it to head keeping every row, and a migrated store has the schema a new store has."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import JSON, Boolean, DateTime, Enum, Float, Integer, LargeBinary, MetaData, String, Text, insert, text
from typer.testing import CliRunner

from embeddings.errors import ConfigError
from embeddings.store import Store, migrate
from embeddings.store.migrate import VERSION_TABLE
from embeddings.store.schema import metadata
from ui.cli import app

ROWS = 40


def _value(column, i: int):
    """A value for row ``i`` of ``column`` (unique per row, references pointing at run 0)."""
    kind, name = column.type, column.name
    if name == "parent_run_id":
        return None
    if name == "run_id" and column.table.name != "runs":
        return "0-run_id"
    if isinstance(kind, Enum):
        return kind.enums[i % 3]  # the values of revision 0001 (later ones only added values)
    if isinstance(kind, Boolean):
        return i % 2 == 0
    if isinstance(kind, Integer):
        return i
    if isinstance(kind, Float):
        return i + 0.25
    if isinstance(kind, DateTime):
        return datetime(2024, 1, 1) + timedelta(minutes=i)
    if isinstance(kind, JSON):
        return {"i": i, "name": name}
    if isinstance(kind, LargeBinary):
        return bytes([i % 256]) * 8
    if isinstance(kind, (String, Text)):
        return f"{i}-{name}"[: kind.length]  # unique per row within any column length
    raise AssertionError(f"no test value for {column}")


def _fill(engine) -> dict[str, list[tuple]]:
    """Fill every table of the store as it is (reflected) with ROWS rows; return them per table."""
    tables = MetaData()
    tables.reflect(engine)
    written = {}
    with engine.begin() as conn:
        for table in tables.sorted_tables:
            if table.name == VERSION_TABLE:
                continue
            rows = [
                {c.name: _value(metadata.tables[table.name].c[c.name], i) for c in table.columns} for i in range(ROWS)
            ]
            conn.execute(insert(table), rows)
            written[table.name] = [tuple(row.values()) for row in rows]
    return written


def _read(engine, columns: dict[str, list[str]]) -> dict[str, list[tuple]]:
    found = {}
    with engine.connect() as conn:
        for name, names in columns.items():
            table = metadata.tables[name]
            keys = [c.name for c in table.primary_key.columns]
            stmt = table.select().with_only_columns(*(table.c[n] for n in names)).order_by(*(table.c[k] for k in keys))
            found[name] = [tuple(row) for row in conn.execute(stmt)]
    return found


def _sorted(rows: dict[str, list[tuple]], columns: dict[str, list[str]]) -> dict[str, list[tuple]]:
    """The written rows in primary-key order (as :func:`_read` returns them)."""
    out = {}
    for name, values in rows.items():
        keys = [columns[name].index(c.name) for c in metadata.tables[name].primary_key.columns]
        out[name] = sorted(values, key=lambda row: tuple(row[k] for k in keys))
    return out


@pytest.mark.parametrize("previous", ["0001", "0002"])
def test_a_store_at_an_earlier_revision_is_refused_then_upgraded_with_every_row_kept(store_url, previous):
    engine = migrate.open_engine(store_url)
    assert migrate.upgrade(engine, previous) == (None, previous)
    written = _fill(engine)
    reflected = MetaData()
    reflected.reflect(engine)
    columns = {name: [c.name for c in reflected.tables[name].columns] for name in written}

    with pytest.raises(
        ConfigError,
        match=rf"schema revision {previous}, this seqemb needs {migrate.head()}: run `seqemb db upgrade --db ",
    ):
        Store(store_url)
    shown = CliRunner().invoke(app, ["db", "current", "--db", store_url])
    assert shown.exit_code == 0 and shown.output.startswith(f"{previous} (this seqemb needs {migrate.head()}"), (
        shown.output
    )

    upgraded = CliRunner().invoke(app, ["db", "upgrade", "--db", store_url])
    assert upgraded.exit_code == 0 and f"from {previous} to {migrate.head()}" in upgraded.output, upgraded.output
    assert _read(engine, columns) == _sorted(written, columns)  # every row, every old column, unchanged
    assert sum(len(rows) for rows in written.values()) == ROWS * (len(metadata.tables))

    store = Store(store_url)  # opens as a head store: the new statuses and columns work
    with store.run("synthetic", {}) as run:
        pass
    store.update("runs", {"status": "interrupted"}, where={"run_id": run.id})
    store.update("alerts", {"status": "superseded"}, where={"alert_id": "0-alert_id"})
    assert store.read("alerts", where={"alert_id": "0-alert_id"})["status"].to_list() == ["superseded"]
    store.close()


def test_an_upgraded_store_has_the_schema_of_a_new_store(store_url):
    engine = migrate.open_engine(store_url)
    migrate.upgrade(engine, "0001")
    migrate.upgrade(engine)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": lambda obj, name, *_: name != VERSION_TABLE})
        assert compare_metadata(context, metadata) == []
        assert migrate.current_revision(conn) == migrate.head()


def test_a_store_made_before_migrations_gets_its_revision_inferred_and_upgrades(store_url):
    engine = migrate.open_engine(store_url)
    migrate.upgrade(engine, "0002")
    with engine.begin() as conn:
        conn.execute(text(f"DROP TABLE {VERSION_TABLE}"))  # as the hardening release left its stores
    assert CliRunner().invoke(app, ["db", "current", "--db", store_url]).output.startswith("0002 (this seqemb needs")
    assert migrate.upgrade(engine) == ("0002", migrate.head())
    Store(store_url).close()


def test_a_new_store_is_stamped_head_and_a_newer_one_is_refused(store_url):
    Store(store_url).close()
    shown = CliRunner().invoke(app, ["db", "current", "--db", store_url])
    assert shown.output.startswith(f"{migrate.head()} (head)")
    engine = migrate.open_engine(store_url)
    with engine.begin() as conn:
        conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '9999'"))
    with pytest.raises(ConfigError, match="has schema revision 9999, newer than this seqemb's .*: upgrade seqemb"):
        Store(store_url)
