"""PostgreSQL under the storage layer (issue 17): asyncpg, shaped like the aiosqlite
connection that ``Tx`` (bot/store/queries.py) and ``Store`` (bot/store/store.py) use. The
queries come in the canonical spelling, PostgreSQL's own, and go as they are; a query still in
SQLite's old spelling is translated on its way (bot/store/dialect.py).

One trip per call, as with aiosqlite: ``execute_fetchall`` is one fetch; ``execute`` is
one, its row count read from the command's status; ``executemany`` is asyncpg's pipelined
one-trip form, with ``RETURNING 1`` so its row count is known. The canonical queries ask for
the ids they insert (``RETURNING id``); an old-spelled single ``INSERT`` into a table numbered
by ``id`` gets it added, for ``cursor.lastrowid`` (SQLite's rowid; on PostgreSQL there is none
to ask for afterwards).

Parameters are typed by PostgreSQL, not by the value as in SQLite: a ``?`` whose type it
cannot infer (``SELECT ?, …`` feeding an INSERT) is text, and a number bound to it is refused
(asyncpg's DataError) — such a query needs a cast, see ``dialect``'s notes.

Several worker processes share one database, each with its own connection (issue 18): the
transactions are READ COMMITTED; ``Tx`` reads ``Connection.engine`` to add PostgreSQL's row
locks (``FOR UPDATE``, ``FOR UPDATE SKIP LOCKED``) to the queries that need them; which
transactions still take the writers' lock, and why, is in bot/store/store.py's docstring.
A deadlock or serialization failure (``RETRY``) is run again by ``Store.retrying``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any

import asyncpg

from bot.store.dialect import (
    MIGRATION_LOCK,
    SCHEMA_KEY,
    VERSION_TABLE,
    is_canonical,
    postgres_migration,
    postgres_query,
)
from bot.store.queries import Tx
from bot.store.schema import MIGRATIONS, SCHEMA_VERSION, SchemaTooNew

# What a ROLLBACK may raise and be ignored (the transaction it would end is gone already).
ERRORS: tuple[type[BaseException], ...] = (asyncpg.PostgresError, asyncpg.InterfaceError)
# What PostgreSQL aborts a transaction with that the same transaction, run again, may pass:
# a deadlock between workers (40P01), a serialization failure (40001). Store.retrying.
RETRY: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.DeadlockDetectedError, asyncpg.exceptions.SerializationError)
STATEMENTS = 2000  # prepared statements kept per connection
_STATUS_COUNT = re.compile(r"(\d+)$")
_INSERT_INTO = re.compile(r"^\s*INSERT\s+(?:OR\s+\w+\s+)?INTO\s+(\w+)", re.I)
_RETURNING = re.compile(r"\bRETURNING\b", re.I)
_WRITE = re.compile(r"^\s*(INSERT|UPDATE|DELETE)\b", re.I)
_ROWS = re.compile(r"^\s*(SELECT|WITH|VALUES|SHOW)\b", re.I)


def _id_tables() -> frozenset[str]:
    """Tables whose rows are numbered by ``id`` (SQLite's ``id INTEGER PRIMARY KEY``)."""
    found = re.findall(r"CREATE\s+TABLE\s+(\w+)\s*\(\s*id\s+INTEGER\s+PRIMARY\s+KEY", "\n".join(MIGRATIONS), re.I)
    return frozenset(found)


ID_TABLES = _id_tables()


class Cursor:
    """What ``Tx`` reads of a cursor: the rows a statement changed, the id it inserted, and
    the rows it returned."""

    __slots__ = ("lastrowid", "rowcount", "rows")

    def __init__(self, rowcount: int = -1, lastrowid: int | None = None, rows: list[tuple[Any, ...]] | None = None):
        self.rowcount = rowcount
        self.lastrowid = lastrowid
        self.rows = rows or []

    async def fetchone(self) -> tuple[Any, ...] | None:
        return self.rows[0] if self.rows else None

    async def fetchall(self) -> list[tuple[Any, ...]]:
        return list(self.rows)

    async def close(self) -> None:
        pass

    async def __aenter__(self) -> Cursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        pass


@lru_cache(maxsize=4096)
def _with_id(sql: str) -> str | None:
    """The query returning the id it inserts, when it is one old-spelled INSERT into a
    numbered table (a canonical one says RETURNING id where its id is wanted)."""
    if is_canonical(sql):
        return None
    query = postgres_query(sql)
    match = _INSERT_INTO.match(query)
    if match and match.group(1) in ID_TABLES and not _RETURNING.search(query):
        return f"{query} RETURNING id"
    return None


def quiet(exc: BaseException) -> None:
    """Leave out of an error what would quote a row (a report's text, a resident's name) in a
    log: PostgreSQL's DETAIL ("Failing row contains (…)") and the value asyncpg could not bind."""
    if isinstance(exc, asyncpg.PostgresError | asyncpg.InterfaceError):
        exc.detail = None
    if isinstance(exc, asyncpg.DataError) and exc.args and str(exc.args[0]).startswith("invalid input for query"):
        where = str(exc.args[0]).split(":", 1)[0]
        exc.args = (f"{where} ({exc.__cause__})" if exc.__cause__ is not None else where,)


class Connection:
    """An asyncpg connection answering like aiosqlite's (the part the storage layer uses)."""

    engine = "postgres"  # what Tx reads to pick a query's PostgreSQL branch (row locks)
    retry = RETRY  # what Store.retrying runs again

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.raw = conn

    @classmethod
    async def connect(cls, url: str) -> Connection:
        # Every query prepared once and kept (asyncpg's default keeps 100; Tx has more, and
        # an evicted one costs a second trip to prepare it again).
        return cls(await asyncpg.connect(url, statement_cache_size=STATEMENTS))

    async def close(self) -> None:
        await self.raw.close()

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        try:
            return await self._execute(sql, params)
        except Exception as exc:
            quiet(exc)
            raise

    async def execute_fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return await self._fetchall(sql, params)
        except Exception as exc:
            quiet(exc)
            raise

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Cursor:
        try:
            return await self._executemany(sql, rows)
        except Exception as exc:
            quiet(exc)
            raise

    async def _execute(self, sql: str, params: Sequence[Any]) -> Cursor:
        query = postgres_query(sql)
        if (returning := _with_id(sql)) is not None:
            rows = await self.raw.fetch(returning, *params)
            return Cursor(len(rows), rows[-1][0] if rows else None, [tuple(r) for r in rows])
        if _ROWS.match(query) or (_WRITE.match(query) and _RETURNING.search(query)):
            rows = await self.raw.fetch(query, *params)
            return Cursor(len(rows), None, [tuple(r) for r in rows])
        # A write's count is in its status ("UPDATE 3"); BEGIN, COMMIT and DDL go as they are.
        status = await self.raw.execute(query, *params) if params else await self.raw.execute(query)
        count = _STATUS_COUNT.search(status)
        return Cursor(int(count.group(1)) if count else -1)

    async def _fetchall(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        rows = await self.raw.fetch(postgres_query(sql), *params)
        return [tuple(r) for r in rows]

    async def _executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Cursor:
        query = postgres_query(sql)
        rows = list(rows)
        if not rows:
            return Cursor(0)
        if not _RETURNING.search(query):
            query += " RETURNING 1"  # one small row per row changed: the count, in the same trip
        returned = await self.raw.fetchmany(query, rows)
        return Cursor(len(returned))


@asynccontextmanager
async def read_only(url: str) -> AsyncIterator[Tx]:
    """``tierbot status``'s look (bot/store/store.py ``read_only``): one read-only snapshot, no
    migration, never in a running bot's way."""
    conn = await Connection.connect(url)
    try:
        await conn.raw.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        yield Tx(conn)  # type: ignore[arg-type]
    finally:
        await conn.close()  # the snapshot ends with the session


# --- the schema ----------------------------------------------------------------------------
async def schema_version(conn: asyncpg.Connection) -> int:
    """The version in the version table; 0 for a database without one (a new one)."""
    exists = await conn.fetchval("SELECT to_regclass('schema_version') IS NOT NULL")
    if not exists:
        return 0
    version = await conn.fetchval("SELECT max(version) FROM schema_version")
    return int(version or 0)


async def migrate(conn: asyncpg.Connection, migrations: Sequence[str] = MIGRATIONS,
                  known: int = SCHEMA_VERSION) -> int:
    """Bring the database up to ``known``, one transaction per migration, each holding a lock
    so that processes starting together migrate once; refuse a database from a newer
    tierbot (SchemaTooNew). Returns the version it found."""
    found = None
    while True:
        async with conn.transaction():
            await conn.execute(f"SELECT pg_advisory_xact_lock($1, {SCHEMA_KEY})", MIGRATION_LOCK)
            await conn.execute(VERSION_TABLE)
            version = await schema_version(conn)
            found = version if found is None else found
            if version > known:
                raise SchemaTooNew(f"made by a newer tierbot: schema {version}, this one knows {known}")
            if version == known:
                return found
            for statement in postgres_migration(migrations[version], version + 1):
                await conn.execute(statement)
            if version == 0:
                await conn.execute("INSERT INTO schema_version (version) VALUES (1)")
            else:
                await conn.execute("UPDATE schema_version SET version = $1", version + 1)


# --- the single-instance guard (issue 17) ----------------------------------------------------
# ``tierbot run`` on PostgreSQL holds this advisory lock on a connection of its own (bot/lock.py).
# A class of its own (the first key), apart from MIGRATION_LOCK's and WRITE_LOCK's (bot/store/dialect.py),
# so no guard's key can meet theirs.
GUARD_CLASS = 0x74627275  # "tbru"
APPLICATION = "tierbot run pid {pid}"  # the guard's session names its holder, for the second one's message
_HOLDER_PID = re.compile(r"^tierbot run pid (\d+)")


# The server probes the guard's idle connection: a bot whose host vanished (no FIN, no RST)
# loses the guard within about two minutes instead of the kernel's two hours.
KEEPALIVES = {"tcp_keepalives_idle": "60", "tcp_keepalives_interval": "10", "tcp_keepalives_count": "6"}


async def guard_connection(url: str, pid: int) -> asyncpg.Connection:
    return await asyncpg.connect(url, server_settings={"application_name": APPLICATION.format(pid=pid), **KEEPALIVES})


async def guard_key(conn: asyncpg.Connection) -> int:
    """The guard's key for this database and schema: advisory locks are shared by every schema
    of a database (the tests give each town a schema of one server), so the schema is in it."""
    database, schema = await conn.fetchrow("SELECT current_database(), current_schema()")
    digest = hashlib.blake2b(f"{database}\0{schema}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big", signed=True)


async def try_guard(conn: asyncpg.Connection, key: int) -> bool:
    """Take the guard if nobody holds it; held until this session ends (the server releases
    it when the connection drops, however the process died)."""
    return bool(await conn.fetchval("SELECT pg_try_advisory_lock($1, $2)", GUARD_CLASS, key))


async def guard_holder(conn: asyncpg.Connection, key: int) -> int | None:
    """The pid the holder's session names (None if the server does not show it to us)."""
    name = await conn.fetchval(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 "
        "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND l.classid::bigint = $1 AND l.objid::bigint = $2",
        GUARD_CLASS, key & 0xFFFFFFFF,  # oids are unsigned
    )
    match = _HOLDER_PID.match(name or "")
    return int(match.group(1)) if match else None
