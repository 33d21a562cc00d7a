"""A PostgreSQL server for the tests (issue 17): ``postgres_url`` is a fresh, empty schema
on the server that ``TIERBOT_TEST_POSTGRES`` names (``.ci/postgres.sh`` starts one and sets
it), dropped after the test; ``database_url`` is a test's database on each engine in turn.

``bot_database`` is the database of the bots a test starts (``make_bot``). In a module marked
``pytestmark = pytest.mark.both_engines`` (the storage, sweep, delivery, figures and
end-to-end tests) every test using it runs twice, ``[sqlite]`` on a SQLite file and
``[postgres]`` on a PostgreSQL schema; elsewhere it is a SQLite file. ``TIERBOT_TEST_ENGINE``
picks one engine for every test (``TIERBOT_TEST_ENGINE=postgres .ci/postgres.sh make test``
runs all the bots on PostgreSQL). A test about SQLite itself (its files, WAL, a corrupt file)
is marked ``@pytest.mark.sqlite_only(reason=…)`` and skipped on PostgreSQL with that reason.

Without the variable the PostgreSQL tests are skipped, saying why; in CI (``CI`` set) they
must run, so a missing server fails them instead of skipping."""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import pytest

from bot.config import is_postgres
from bot.store.dialect import VERSION_TABLE, postgres_migrations, postgres_query
from bot.store.schema import SCHEMA_VERSION

SERVER = "TIERBOT_TEST_POSTGRES"
NO_SERVER = f"{SERVER} is not set: no PostgreSQL server to test against (.ci/postgres.sh COMMAND starts one)"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def server_url() -> str:
    """The server's URL, or this test is skipped (failed, in CI)."""
    url = os.environ.get(SERVER, "").strip()
    if not url:
        if in_ci():
            pytest.fail(f"{NO_SERVER}; in CI the PostgreSQL tests must run")
        pytest.skip(NO_SERVER)
    return url


def with_schema(url: str, schema: str) -> str:
    """The URL with every connection's search_path set to ``schema`` (asyncpg passes query
    parameters it does not know as server settings)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "search_path"] + [("search_path", schema)]
    return urlunsplit(parts._replace(query=urlencode(query)))


@cache
def _migrated() -> str:
    """Every migration's PostgreSQL statements and the version they reach, as one script."""
    statements = [statement for migration in postgres_migrations() for statement in migration]
    return ";\n".join([*statements, VERSION_TABLE, f"INSERT INTO schema_version (version) VALUES ({SCHEMA_VERSION})"])


@asynccontextmanager
async def fresh_schema(migrated: bool = False) -> AsyncIterator[str]:
    """A URL whose connections see a new, empty schema of their own (a database's worth of
    tables, without the tenth of a second a CREATE DATABASE takes), dropped afterwards.

    ``migrated``: with the bot's tables already made, in one trip rather than a transaction
    per migration (half a bot's start on PostgreSQL; tests/test_postgres.py tests the
    migrations themselves)."""
    url = server_url()
    schema = f"test_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(url)
    try:
        await admin.execute(f"CREATE SCHEMA {schema}")
        if migrated:
            await admin.execute(f"SET search_path TO {schema};\n{_migrated()};\nRESET search_path")
        yield with_schema(url, schema)
    finally:
        await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.close()


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    async with fresh_schema() as url:
        yield url


ENGINES = ("sqlite", "postgres")
ENGINE = "TIERBOT_TEST_ENGINE"


def chosen_engines() -> tuple[str, ...]:
    """The engines ``TIERBOT_TEST_ENGINE`` names (one, or ``both``); both when unset."""
    chosen = os.environ.get(ENGINE, "").strip().lower()
    if chosen in ("", "both"):
        return ENGINES
    if chosen not in ENGINES:
        raise pytest.UsageError(f"{ENGINE}={chosen!r}: expected one of {', '.join(ENGINES)} or both")
    return (chosen,)


def parametrize_engines(metafunc: pytest.Metafunc) -> None:
    """``bot_database`` on each engine for the tests of a ``both_engines`` module (conftest's
    ``pytest_generate_tests``)."""
    if "bot_database" in metafunc.fixturenames and metafunc.definition.get_closest_marker("both_engines"):
        metafunc.parametrize("bot_database", chosen_engines(), indirect=True, ids=lambda engine: engine)


@pytest.fixture(params=chosen_engines())
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A test's database, on each engine: a SQLite file path, then a PostgreSQL URL."""
    if request.param == "sqlite":
        yield str(tmp_path / "tierbot.sqlite3")
    else:
        async with fresh_schema() as url:
            yield url


@pytest.fixture
async def bot_database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The default database of the bots a test starts: one per test, kept across restarts;
    on the engine the test's parameter names, else ``TIERBOT_TEST_ENGINE``'s (SQLite by default)."""
    engine = getattr(request, "param", None) or chosen_engines()[0]
    if engine == "postgres":
        if (only := request.node.get_closest_marker("sqlite_only")) is not None:
            pytest.skip(f"SQLite only: {only.kwargs.get('reason') or ' '.join(map(str, only.args))}")
        async with fresh_schema(migrated=True) as url:
            yield url
    else:
        yield str(tmp_path / "tierbot.sqlite3")


async def rows(database: str | Path, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """A test's own look into (or change to) a bot's database, on either engine: ``sql`` in
    SQLite's spelling, run on a connection of its own and committed (a SQLite file as
    sqlite3 sees it)."""
    database = str(database)
    if not is_postgres(database):
        db = sqlite3.connect(database)
        try:
            with db:
                return db.execute(sql, tuple(params)).fetchall()
        finally:
            db.close()
    conn = await asyncpg.connect(database)
    try:
        return [tuple(r) for r in await conn.fetch(postgres_query(sql), *params)]
    finally:
        await conn.close()


async def add_trigger(database: str | Path, name: str, when: str, table: str, *, where: str | None = None,
                      do: str | None = None, fail: str | None = None) -> None:
    """A trigger a test puts into a bot's database, on either engine: ``when`` is e.g.
    ``BEFORE INSERT`` or ``BEFORE UPDATE OF done_at``, ``where`` a condition on ``NEW``;
    it runs the statement ``do`` for each row, or refuses the row with the error ``fail``."""
    assert (do is None) != (fail is None), "either a statement to run or an error to raise"
    database = str(database)
    if not is_postgres(database):
        action = do if do is not None else f"SELECT RAISE(ABORT, '{fail}')"
        condition = f" WHEN {where}" if where else ""
        await rows(database, f"CREATE TRIGGER {name} {when} ON {table}{condition} BEGIN {action}; END")
        return
    action = f"{do}; RETURN NEW" if do is not None else f"RAISE EXCEPTION '{fail}'"
    condition = f" WHEN ({where})" if where else ""
    conn = await asyncpg.connect(database)
    try:
        await conn.execute(
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN {action}; END$$;"
            f"CREATE TRIGGER {name} {when} ON {table} FOR EACH ROW{condition} EXECUTE FUNCTION {name}()")
    finally:
        await conn.close()


async def drop_trigger(database: str | Path, name: str, table: str) -> None:
    database = str(database)
    if not is_postgres(database):
        await rows(database, f"DROP TRIGGER {name}")
        return
    conn = await asyncpg.connect(database)
    try:
        await conn.execute(f"DROP TRIGGER {name} ON {table}; DROP FUNCTION {name}()")
    finally:
        await conn.close()
