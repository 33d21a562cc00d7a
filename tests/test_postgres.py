"""Storage on PostgreSQL (issue 17), against a real server (tests/postgres.py)."""

from __future__ import annotations

import asyncpg


async def test_a_fresh_schema_on_a_real_server(postgres_url: str) -> None:
    conn = await asyncpg.connect(postgres_url)
    try:
        assert conn.get_server_version().major >= 15
        assert (await conn.fetchval("SELECT current_schema()")).startswith("test_")
        assert await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()") == 0
    finally:
        await conn.close()
