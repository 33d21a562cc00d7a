"""Storage on PostgreSQL (issue 17), against a real server (tests/postgres.py)."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import yaml

from bot.config import is_postgres, parse_config
from tests.conftest import ROOT, town
from tests.test_config import errors_of, tierbot


async def test_a_fresh_schema_on_a_real_server(postgres_url: str) -> None:
    conn = await asyncpg.connect(postgres_url)
    try:
        assert conn.get_server_version().major >= 15
        assert (await conn.fetchval("SELECT current_schema()")).startswith("test_")
        assert await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()") == 0
    finally:
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


def test_run_on_a_postgresql_url_is_refused_in_one_line_until_the_engine_is_whole(tmp_path: Path) -> None:
    config = tmp_path / "city.yaml"
    config.write_text(yaml.safe_dump(town(database="postgresql://tierbot@127.0.0.1:1/city"), allow_unicode=True),
                      encoding="utf-8")
    done = tierbot("run", "--config", str(config), env={"TELEGRAM_BOT_TOKEN": "123456:TEST-TOKEN"})
    assert done.returncode == 1
    assert "PostgreSQL URL, which this tierbot cannot run on yet" in done.stderr
    assert "TEST-TOKEN" not in done.stderr + done.stdout
    assert not list(tmp_path.glob("postgresql*")) and not (ROOT / "postgresql:").exists()  # no file made of it
