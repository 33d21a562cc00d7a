"""A PostgreSQL server for the tests (issue 17): ``postgres_url`` is a fresh, empty schema
on the server that ``TIERBOT_TEST_POSTGRES`` names (``.ci/postgres.sh`` starts one and sets
it), dropped after the test; ``database_url`` is a test's database on each engine in turn.

``bot_database`` is the database of the bots a test starts (``make_bot``): a SQLite file, or
with ``TIERBOT_TEST_ENGINE=postgres`` a PostgreSQL schema, to run the end-to-end tests on
PostgreSQL (``TIERBOT_TEST_ENGINE=postgres .ci/postgres.sh .venv/bin/pytest tests/test_core_loop.py``).

Without the variable the PostgreSQL tests are skipped, saying why; in CI (``CI`` set) they
must run, so a missing server fails them instead of skipping."""

from __future__ import annotations

import os
import sqlite3
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg
import pytest

from bot.config import is_postgres
from bot.store.dialect import postgres_query

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


@asynccontextmanager
async def fresh_schema() -> AsyncIterator[str]:
    """A URL whose connections see a new, empty schema of their own (a database's worth of
    tables, without the tenth of a second a CREATE DATABASE takes), dropped afterwards."""
    url = server_url()
    schema = f"test_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(url)
    try:
        await admin.execute(f"CREATE SCHEMA {schema}")
        yield with_schema(url, schema)
    finally:
        await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.close()


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    async with fresh_schema() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A test's database, on each engine: a SQLite file path, then a PostgreSQL URL."""
    if request.param == "sqlite":
        yield str(tmp_path / "tierbot.sqlite3")
    else:
        async with fresh_schema() as url:
            yield url


@pytest.fixture
async def bot_database(tmp_path: Path) -> AsyncIterator[str]:
    """The default database of the bots a test starts: one per test, kept across restarts."""
    if os.environ.get("TIERBOT_TEST_ENGINE", "sqlite") == "postgres":
        async with fresh_schema() as url:
            yield url
    else:
        yield str(tmp_path / "tierbot.sqlite3")


async def rows(database: str, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """A test's own look into a bot's database, on either engine: ``sql`` in SQLite's
    spelling, run on a connection of its own (committed; a SQLite file as sqlite3 sees it)."""
    if not is_postgres(database):
        db = sqlite3.connect(database)
        try:
            return db.execute(sql, tuple(params)).fetchall()
        finally:
            db.close()
    conn = await asyncpg.connect(database)
    try:
        return [tuple(r) for r in await conn.fetch(postgres_query(sql), *params)]
    finally:
        await conn.close()
