"""``tierbot migrate-db`` (issue 17): a town's SQLite database copied into PostgreSQL.

The source is opened as the bot opens it (so migrated to this tierbot's schema, or refused
if newer), then read with plain sqlite3 in one snapshot. The target is migrated to the same
version and must hold no rows. Every table is copied with COPY (asyncpg's
``copy_records_to_table``), parents before the tables that refer to them, all in one
transaction: a failure leaves the target as empty as it was. The identity columns' sequences
are set past the copied ids, so the next report gets the next number; each table's count in
the target is checked against the source's before the commit.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg

from bot.store import postgres
from bot.store.copies import check_copy
from bot.store.schema import SchemaTooNew
from bot.store.store import Store, file_uri

CHUNK = 5000  # source rows read at a time


class CannotMove(Exception):
    """Nothing was copied: why, in one line (no row's content in it)."""


@dataclass
class Moved:
    version: int
    counts: list[tuple[str, int]]  # every table, in the order copied, with its rows


def _order(db: sqlite3.Connection, tables: list[str]) -> list[str]:
    """Tables with each after those its foreign keys name (PostgreSQL checks them row by row)."""
    parents = {t: {row[2] for row in db.execute(f'PRAGMA foreign_key_list("{t}")')} - {t} for t in tables}
    ordered: list[str] = []
    while len(ordered) < len(tables):
        ready = [t for t in tables if t not in ordered and parents[t] <= set(ordered)]
        if not ready:
            raise CannotMove(f"the foreign keys of {sorted(set(tables) - set(ordered))} form a cycle")
        ordered += ready
    return ordered


def _converter(table: str, column: str, kind: str) -> Any:
    """A SQLite value (typed by the value, not the column) as the PostgreSQL column takes it;
    a value that would change its meaning is refused, naming where, not what."""
    def refuse(value: object) -> Any:
        raise CannotMove(f"{table}.{column}: a {type(value).__name__} value in a {kind} column; nothing was copied")

    def to_int(value: object) -> Any:
        if value is None or isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return refuse(value)

    def to_float(value: object) -> Any:
        return float(value) if isinstance(value, int | float) else value if value is None else refuse(value)

    def to_text(value: object) -> Any:
        return value if value is None or isinstance(value, str) else refuse(value)

    def to_bytes(value: object) -> Any:
        if value is None or isinstance(value, bytes):
            return value
        return value.encode() if isinstance(value, str) else refuse(value)

    return {"bigint": to_int, "integer": to_int, "double precision": to_float, "text": to_text,
            "bytea": to_bytes}.get(kind, lambda v: v)


def _records(db: sqlite3.Connection, table: str, columns: list[tuple[str, str]]) -> Iterator[tuple[Any, ...]]:
    convert = [_converter(table, name, kind) for name, kind in columns]
    names = ", ".join(f'"{name}"' for name, _ in columns)
    cursor = db.execute(f'SELECT {names} FROM "{table}"')
    while rows := cursor.fetchmany(CHUNK):
        for row in rows:
            yield tuple(f(v) for f, v in zip(convert, row, strict=True))


async def _target_columns(conn: asyncpg.Connection) -> dict[str, list[tuple[str, str]]]:
    rows = await conn.fetch("SELECT table_name, column_name, data_type FROM information_schema.columns "
                            "WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position")
    columns: dict[str, list[tuple[str, str]]] = {}
    for row in rows:
        columns.setdefault(row["table_name"], []).append((row["column_name"], row["data_type"]))
    columns.pop("schema_version", None)  # the target's own: written by its migration
    return columns


async def _set_identities(conn: asyncpg.Connection) -> None:
    """Each identity column's sequence past the highest id copied (COPY with explicit ids
    leaves it at its start, and the next report would collide with #1)."""
    identities = await conn.fetch("SELECT table_name, column_name FROM information_schema.columns "
                                  "WHERE table_schema = current_schema() AND is_identity = 'YES'")
    for row in identities:
        table, column = row["table_name"], row["column_name"]
        await conn.execute(
            f'SELECT setval(pg_get_serial_sequence(quote_ident($1), $2), COALESCE(max("{column}"), 0) + 1, false) '
            f'FROM "{table}"', table, column)


async def copy_to_postgres(source: Path, url: str) -> Moved:
    """Copy the SQLite database at ``source`` into the empty PostgreSQL database at ``url``.
    CannotMove (nothing copied) if the target holds rows, or a table does not match; the
    caller holds the source's lock and the target's guard."""
    try:
        store = await Store.open(source)  # migrated as the bot would, or SchemaTooNew
        await store.close()
    except (SchemaTooNew, sqlite3.Error) as exc:
        raise CannotMove(f"the source {source}: {exc}; nothing was copied") from None
    version = check_copy(source)  # and whole (integrity_check)
    db = sqlite3.connect(file_uri(source, read_only=True), uri=True)
    conn = await asyncpg.connect(url)
    try:
        db.execute("BEGIN")  # one snapshot for every table
        try:
            await postgres.migrate(conn)  # to the same version
        except SchemaTooNew as exc:
            raise CannotMove(f"the target: {exc}; nothing was copied") from None
        target = await _target_columns(conn)
        tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                            "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        if set(tables) != set(target):
            raise CannotMove(f"the tables differ: only in the source {sorted(set(tables) - set(target))}, "
                             f"only in the target {sorted(set(target) - set(tables))}")
        for table in tables:
            if await conn.fetchval(f'SELECT EXISTS (SELECT 1 FROM "{table}")'):
                raise CannotMove(f"the target is not empty (table {table} has rows); migrate-db copies into an "
                                 "empty database only")
        counts: list[tuple[str, int]] = []
        async with conn.transaction():
            for table in _order(db, tables):
                columns = target[table]
                await conn.copy_records_to_table(table, records=_records(db, table, columns),
                                                 columns=[name for name, _ in columns])
                (expected,) = db.execute(f'SELECT count(*) FROM "{table}"').fetchone()
                copied = await conn.fetchval(f'SELECT count(*) FROM "{table}"')
                if copied != expected:
                    raise CannotMove(f"table {table}: {copied} row(s) in the target, {expected} in the source; "
                                     "nothing was copied")
                counts.append((table, int(copied)))
            await _set_identities(conn)
        return Moved(version, counts)
    finally:
        db.close()
        await conn.close()
