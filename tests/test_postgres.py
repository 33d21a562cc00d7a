"""Storage on PostgreSQL (issue 17), against a real server (tests/postgres.py)."""

from __future__ import annotations

import asyncio
import sqlite3
import traceback
from pathlib import Path

import asyncpg
import pytest
import yaml

from bot.config import is_postgres, parse_config
from bot.store import MIGRATIONS, SCHEMA_VERSION, QueuedReport, SchemaTooNew, Store
from bot.store.dialect import (
    POSTGRES_FORMS,
    SCHEMA_KEY,
    WRITE_LOCK,
    Untranslatable,
    postgres_migrations,
    postgres_query,
)
from bot.store.postgres import migrate, schema_version
from tests.conftest import ROOT, town
from tests.postgres import fresh_schema
from tests.test_config import errors_of, tierbot


async def test_a_fresh_schema_on_a_real_server(postgres_url: str) -> None:
    conn = await asyncpg.connect(postgres_url)
    try:
        assert conn.get_server_version().major >= 15
        assert (await conn.fetchval("SELECT current_schema()")).startswith("test_")
        assert await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()") == 0
    finally:
        await conn.close()


async def test_the_writers_lock_is_per_schema(postgres_url: str) -> None:
    """One writer at a time in a schema (SQLite's BEGIN IMMEDIATE), but two towns (or two
    tests) in two schemas of one database never wait for each other's writes."""
    async with fresh_schema() as other_url:
        holder, same, other = [await asyncpg.connect(u) for u in (postgres_url, postgres_url, other_url)]
        try:
            for statement in postgres_query("BEGIN IMMEDIATE").split("; "):
                await holder.execute(statement)
            await other.execute("BEGIN")
            await other.execute(postgres_query("BEGIN IMMEDIATE").split("; ")[1], timeout=2)  # not kept waiting
            await other.execute("ROLLBACK")
            await same.execute("BEGIN")
            with pytest.raises(asyncio.TimeoutError):
                await same.execute(postgres_query("BEGIN IMMEDIATE").split("; ")[1], timeout=0.5)
        finally:
            for conn in (holder, same, other):
                await conn.close()


# --- `database:` takes a PostgreSQL URL --------------------------------------------------
def test_the_database_is_a_file_path_or_a_postgresql_url() -> None:
    url = "postgresql://tierbot@db.example:5432/city"
    assert parse_config(town(database=url)).database == url
    assert is_postgres(url) and is_postgres("postgres://tierbot@db/city")
    for path in ("data/tierbot.sqlite3", ":memory:", "/var/lib/tierbot/postgresql.sqlite3", "postgresql.db"):
        assert parse_config(town(database=path)).database == path
        assert not is_postgres(path)
    message = errors_of(town(database="mysql://tierbot@db/city"))
    assert "database: expected a file path, or a URL postgresql://user@host:port/db" in message
    assert "database: expected a PostgreSQL URL with a host" in errors_of(town(database="postgresql:///city"))


def test_run_on_an_unreachable_postgresql_server_exits_1_in_one_line(tmp_path: Path) -> None:
    """No longer refused (the operations have their PostgreSQL form, tests/test_postgres_ops.py):
    a server that cannot be reached is one line, with the password masked."""
    config = tmp_path / "city.yaml"
    config.write_text(yaml.safe_dump(town(database="postgresql://tierbot:s3cret-pw@127.0.0.1:1/city"),
                                     allow_unicode=True), encoding="utf-8")
    done = tierbot("run", "--config", str(config), env={"TELEGRAM_BOT_TOKEN": "123456:TEST-TOKEN"})
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and done.stdout == "", lines
    assert lines[0].startswith("tierbot: cannot use the database postgresql://tierbot:***@127.0.0.1:1/city (")
    assert "check that the server runs" in lines[0]
    assert "TEST-TOKEN" not in done.stderr + done.stdout and "s3cret-pw" not in done.stderr
    assert not list(tmp_path.glob("postgresql*")) and not list(tmp_path.glob("*.lock"))
    assert not (ROOT / "postgresql:").exists()  # no file made of it


# --- the schema on PostgreSQL --------------------------------------------------------------
def sqlite_schema(path: Path) -> tuple[dict[str, list[str]], set[str]]:
    """Columns per table, in order, and the names of the indexes a migration created."""
    db = sqlite3.connect(path)
    try:
        tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                            "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        columns = {t: [c[1] for c in db.execute(f"PRAGMA table_info({t})")] for t in tables}
        indexes = {i for (i,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")}
    finally:
        db.close()
    return columns, indexes


async def postgres_schema(conn: asyncpg.Connection) -> tuple[dict[str, list[str]], set[str]]:
    rows = await conn.fetch("SELECT table_name, column_name FROM information_schema.columns "
                            "WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position")
    columns: dict[str, list[str]] = {}
    for row in rows:
        columns.setdefault(row["table_name"], []).append(row["column_name"])
    # Not those behind a key or a UNIQUE constraint (SQLite's have no sql).
    indexes = {r["relname"] for r in await conn.fetch(
        "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE c.relnamespace = current_schema()::regnamespace "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)")}
    return columns, indexes


async def test_every_migration_applies_on_postgresql_and_makes_sqlites_tables(postgres_url: str,
                                                                              tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "town.sqlite3")
    await store.close()
    sqlite_columns, sqlite_indexes = sqlite_schema(tmp_path / "town.sqlite3")
    conn = await asyncpg.connect(postgres_url)
    try:
        assert await migrate(conn) == 0
        assert await schema_version(conn) == SCHEMA_VERSION
        columns, indexes = await postgres_schema(conn)
        assert columns.pop("schema_version") == ["version"]
        assert columns == sqlite_columns
        assert indexes == sqlite_indexes
        # Telegram's ids (chat -100…, user ids past 2^31) fit; times keep their fractions.
        types = dict(await conn.fetch("SELECT column_name, data_type FROM information_schema.columns "
                                      "WHERE table_schema = current_schema() AND table_name = 'matters'"))
        assert types["chat_id"] == "bigint" and types["created_at"] == "double precision"
        assert await migrate(conn) == SCHEMA_VERSION  # a second start changes nothing
    finally:
        await conn.close()


async def test_an_upgrade_on_postgresql_keeps_the_rows_and_rebuilds_as_sqlite_does(postgres_url: str) -> None:
    """Migration 6 rebuilds the inbox on SQLite; its PostgreSQL form alters it in place, and
    what is done loses its payload on both."""
    conn = await asyncpg.connect(postgres_url)
    try:
        await migrate(conn, MIGRATIONS[:5], 5)
        await conn.executemany("INSERT INTO inbox (update_id, payload, received_at, done_at) VALUES ($1, $2, $3, $4)",
                               [(1, '{"done": 1}', 10.0, 11.0), (2, '{"waiting": 2}', 12.0, None)])
        assert await migrate(conn) == 5
        rows = await conn.fetch("SELECT update_id, payload, tries, failed_at FROM inbox ORDER BY update_id")
        assert [tuple(r) for r in rows] == [(1, None, 0, None), (2, '{"waiting": 2}', 0, None)]
        await conn.execute("INSERT INTO inbox (update_id, received_at) VALUES (3, 13.0)")  # payload may be NULL now
    finally:
        await conn.close()


async def test_a_database_from_a_newer_tierbot_is_refused_on_postgresql(postgres_url: str) -> None:
    conn = await asyncpg.connect(postgres_url)
    try:
        await migrate(conn)
        await conn.execute("UPDATE schema_version SET version = $1", SCHEMA_VERSION + 1)
        with pytest.raises(SchemaTooNew, match=f"schema {SCHEMA_VERSION + 1}, this one knows {SCHEMA_VERSION}"):
            await migrate(conn)
        assert await schema_version(conn) == SCHEMA_VERSION + 1  # untouched
    finally:
        await conn.close()


async def test_a_new_migration_in_sqlites_spelling_applies_on_postgresql_without_edits(postgres_url: str) -> None:
    """Other branches add migrations in SQLite's spelling: the mechanical form carries them;
    one that has none is refused by name, and rolled back."""
    new = """
    CREATE TABLE station_counts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        station_id TEXT NOT NULL,
        at REAL NOT NULL DEFAULT 0.5,
        note TEXT DEFAULT 'INTEGER PRIMARY KEY, REAL ?'
    );
    CREATE TABLE pairs (a INTEGER NOT NULL, b TEXT NOT NULL, PRIMARY KEY (a, b)) WITHOUT ROWID;
    ALTER TABLE matters ADD COLUMN station_id TEXT NOT NULL DEFAULT 'st';
    INSERT OR IGNORE INTO meta (key, value) VALUES ('stations', '1')
    """
    conn = await asyncpg.connect(postgres_url)
    try:
        await migrate(conn, [*MIGRATIONS, new], SCHEMA_VERSION + 1)
        await conn.execute("INSERT INTO station_counts (station_id) VALUES ('st')")
        assert tuple(await conn.fetchrow("SELECT id, at, note FROM station_counts")) == (
            1, 0.5, "INTEGER PRIMARY KEY, REAL ?")
        await conn.execute("INSERT INTO pairs VALUES (-1001234567890, 'x')")
        assert await conn.fetchval("SELECT value FROM meta WHERE key = 'stations'") == "1"
        pragma = "PRAGMA foreign_keys = OFF; CREATE TABLE later (x INTEGER)"
        with pytest.raises(Untranslatable, match=f"migration {SCHEMA_VERSION + 2}: a PRAGMA"):
            await migrate(conn, [*MIGRATIONS, new, pragma], SCHEMA_VERSION + 2)
        assert await schema_version(conn) == SCHEMA_VERSION + 1
    finally:
        await conn.close()


def test_each_postgresql_form_replaces_exactly_one_migration() -> None:
    """Its phrase finds it wherever a merge renumbers it; an edit or a second match fails here."""
    for phrase in POSTGRES_FORMS:
        assert sum(phrase in m for m in MIGRATIONS) == 1, phrase
    assert len(postgres_migrations()) == SCHEMA_VERSION


# --- the queries in PostgreSQL's spelling --------------------------------------------------
def test_queries_are_respelled_for_postgresql() -> None:
    assert postgres_query("SELECT id FROM matters WHERE unit_id = ? AND text != '?' AND id IN (?, ?)") == (
        "SELECT id FROM matters WHERE unit_id = $1 AND text != '?' AND id IN ($2, $3)")
    assert postgres_query("INSERT OR IGNORE INTO village_notices (community_id, week) VALUES (?, ?) RETURNING id") == (
        "INSERT INTO village_notices (community_id, week) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING id")
    assert postgres_query("INSERT OR IGNORE INTO meta (key, value) VALUES ('first_started', ?)") == (
        "INSERT INTO meta (key, value) VALUES ('first_started', $1) ON CONFLICT DO NOTHING")
    assert postgres_query("SELECT 1 WHERE a IS NULL AND b IS TRUE AND c IS NOT NULL AND d = ?") == (
        "SELECT 1 WHERE a IS NULL AND b IS TRUE AND c IS NOT NULL AND d = $1")
    assert postgres_query("BEGIN IMMEDIATE") == f"BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK}, {SCHEMA_KEY})"
    assert postgres_query("BEGIN") == "BEGIN" and postgres_query("BEGIN DEFERRED") == "BEGIN"
    # What the canonical spelling writes as a branch in Tx, refused in the old one rather than translated.
    for sqlite_only in ("SELECT j.value FROM outbox o, json_each(o.data, '$.names') j",
                        "SELECT rowid FROM matters", "PRAGMA quick_check(1)",
                        "INSERT OR REPLACE INTO chats (chat_id) VALUES (?)",
                        "SELECT e.at FROM events e INDEXED BY events_matter WHERE e.matter_id = ?",
                        "SELECT v.key, group_concat(m.matter_id) FROM views v",
                        "UPDATE visits SET deed = ? WHERE deed IS NOT ?", "SELECT 1 WHERE c IS NOT 'x'"):
        with pytest.raises(Untranslatable):
            postgres_query(sqlite_only)


# --- the connection ---------------------------------------------------------------------
NAME, TEXT = "张" + "秘名", "不可外传" + "的举报"  # not as such in this file's lines a traceback quotes


async def test_a_postgresql_error_quotes_no_row_in_the_log(postgres_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """PostgreSQL's DETAIL repeats the failing row, asyncpg's binding error the value: a
    report's text and a resident's name must stay out of the log all the same."""
    store = await Store.open(postgres_url)
    try:
        row = {"unit_id": None, "chat_id": -201, "report_message_id": 7, "reporter_id": 901,
               "reporter_name": NAME, "text": TEXT, "state": "open", "tier": 3, "top_tier": 3,
               "tier_since": 1000.0, "rules": "{}", "created_at": 1000.0}
        store.queue_report(QueuedReport(None, row, 7))  # NOT NULL fails, logged with its traceback
        async with store.read():
            pass
        assert "could not commit 1 report(s)" in caplog.text and "NotNullViolationError" in caplog.text
        with pytest.raises(asyncpg.DataError) as caught:
            async with store.transaction() as tx:
                await tx.update_matter(1, tier=TEXT)
        assert "query argument $1" in str(caught.value)
        shown = caplog.text + str(caught.value) + "".join(traceback.format_exception(caught.value))
        assert NAME not in shown and TEXT not in shown
    finally:
        await store.close()


async def test_a_null_safe_comparison_means_the_same_on_both(database_url: str) -> None:
    """SQLite's ``IS NOT ?`` between values has no PostgreSQL spelling before 3.39's IS DISTINCT
    FROM; the canonical spelling says it with IS NULL (as the purge of visits does)."""
    store = await Store.open(database_url)
    try:
        async with store.transaction() as tx:
            await tx.set_meta("cleared", "（已清除）")
            await tx.set_meta("kept", "话")
        async with store.read() as tx:
            found = [[k for (k,) in await tx._all(
                "SELECT key FROM meta WHERE (value IS NULL OR value != $1) ORDER BY key", (value,))]
                     for value in ("（已清除）", "话", "x")]
        assert found == [["kept"], ["cleared"], ["cleared", "kept"]]
    finally:
        await store.close()
