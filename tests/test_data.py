"""Data kept no longer than needed (issue 10) and the poisoned update (issue 11).

The inbox keeps an update's payload only until it is done, ids for a week, nothing but the
id for chats outside the tree; an update that cannot be stored or handled is stored as
well as it can be and, after three tries, marked failed; personal data is cleared a
configured time after a matter closes; the database is private to the bot's user; and one
chat cannot serve two nodes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import stat
from pathlib import Path
from typing import Any

import pytest

from bot.config import ConfigError, parse_config, parse_duration
from bot.storage import Store
from tests.conftest import C1_CHAT, RESIDENT, RESIDENT2, U1_CHAT, town


def errors_of(raw: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    return str(caught.value)


# --- config ------------------------------------------------------------------------------
def test_years_are_a_duration_and_retention_defaults_to_three() -> None:
    assert parse_duration("3y") == 3 * 365 * 86400
    assert parse_config(town()).retention.personal_data == 3 * 365 * 86400
    assert parse_config(town(retention={"personal_data": "180d"})).retention.personal_data == 180 * 86400
    assert 'retention.personal_data: expected a duration such as "30s"' in errors_of(
        town(retention={"personal_data": "forever"})
    )


def test_two_nodes_sharing_a_chat_are_refused_naming_both() -> None:
    raw = town()
    raw["station"]["communities"][0]["units"][1]["chat_id"] = C1_CHAT  # the community's own group
    message = errors_of(raw)
    assert "station.communities[0].chat_id" in message
    assert "station.communities[0].units[1].chat_id" in message
    assert str(C1_CHAT) in message
    raw = town()
    raw["station"]["communities"][1]["chat_id"] = raw["station"]["chat_id"]
    message = errors_of(raw)
    assert "station.chat_id and station.communities[1].chat_id" in message


# --- file modes ------------------------------------------------------------------------
async def test_the_database_its_wal_and_shm_are_the_bot_users_alone(make_bot: Any, tmp_path: Path) -> None:
    folder = tmp_path / "private" / "data"
    database = folder / "tierbot.sqlite3"
    old = os.umask(0o022)  # the usual umask, which alone would leave the files world-readable
    try:
        async with make_bot(database=database) as bot:
            bot.say(U1_CHAT, RESIDENT, "/report 楼道堆物")
            await bot.wait_bot(U1_CHAT, "#1")
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}
    finally:
        os.umask(old)
    assert modes == {"tierbot.sqlite3": 0o600, "tierbot.sqlite3-wal": 0o600, "tierbot.sqlite3-shm": 0o600}
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


async def test_a_database_others_can_read_is_reported_at_start(
    make_bot: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    database = tmp_path / "tierbot.sqlite3"
    store = await Store.open(database)
    await store.close()
    database.chmod(0o644)
    caplog.set_level(logging.WARNING, logger="bot.storage")
    async with make_bot(database=database) as bot:
        bot.say(U1_CHAT, RESIDENT, "/report 楼道堆物")
        await bot.wait_bot(U1_CHAT, "#1")  # a warning, not a refusal
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(str(database) in w and "644" in w for w in warnings), warnings


# --- the inbox keeps what replay needs, no more ----------------------------------------
def _watch_inbox(database: str) -> sqlite3.Connection:
    """A trigger noting, for each update the bot stores, whether its payload was kept."""
    db = sqlite3.connect(database)
    db.executescript(
        "CREATE TABLE stored (update_id INTEGER, kept INTEGER);"
        "CREATE TRIGGER note_stored AFTER INSERT ON inbox BEGIN "
        "INSERT INTO stored VALUES (NEW.update_id, NEW.payload IS NOT NULL); END;"
    )
    return db


async def test_a_done_update_leaves_its_id_only_and_outsiders_never_more(make_bot: Any) -> None:
    async with make_bot() as bot:
        db = _watch_inbox(bot.config.database)
        outside = -777
        bot.api.add_chat(outside, "外面的群")
        chatter = bot.say(U1_CHAT, RESIDENT, "今天谁家在装修，吵死了")
        stranger = bot.say(outside, RESIDENT2, "外人闲聊：我家住在城东")
        bot.say(U1_CHAT, RESIDENT, "/report 楼道堆满杂物")
        await bot.wait_bot(U1_CHAT, "#1")
        await bot.settle()
        kept = dict(db.execute("SELECT update_id, kept FROM stored").fetchall())
        rows = db.execute("SELECT update_id, payload, done_at FROM inbox").fetchall()
        db.close()
    assert len(kept) == 3
    ids = sorted(kept)
    assert kept[ids[0]] == 1 and kept[ids[2]] == 1  # the unit group's: replay may need them
    assert kept[ids[1]] == 0  # the stranger's: the id only, from the start
    assert len(rows) == 3 and all(payload is None and done_at is not None for _, payload, done_at in rows)
    assert chatter["message_id"] and stranger["message_id"]
    # Not even in the file's free space.
    content = _bytes_of(bot.config.database)
    for text in ("今天谁家在装修", "外人闲聊", "城东"):
        assert text.encode() not in content


async def test_update_ids_are_kept_a_week_not_a_month(make_bot: Any) -> None:
    async with make_bot() as bot:
        for i in range(3):
            bot.say(U1_CHAT, RESIDENT, f"聊天{i}")
        await bot.settle()
        assert len(inbox_ids(bot)) == 3
        bot.clock.advance(6 * 86400)
        await bot.api.wait_for(lambda: bot.svc.last_prune == bot.clock.now(), 5)  # pruned: none a week old
        assert len(inbox_ids(bot)) == 3
        bot.clock.advance(1.5 * 86400)
        await bot.api.wait_for(lambda: bot.svc.last_prune == bot.clock.now(), 5)
        assert len(inbox_ids(bot)) == 1  # the newest stays, so that ids stay known


def _bytes_of(path: str) -> bytes:
    return Path(path).read_bytes()


def inbox_ids(bot: Any) -> list[int]:
    with contextlib.closing(sqlite3.connect(bot.config.database)) as db:
        return [r[0] for r in db.execute("SELECT update_id FROM inbox ORDER BY update_id")]
