"""Data kept no longer than needed (issue 10) and the poisoned update (issue 11).

The inbox keeps an update's payload only until it is done, ids for a week, nothing but the
id for chats outside the tree; an update that cannot be stored or handled is stored as
well as it can be and, after three tries, marked failed; personal data is cleared a
configured time after a matter closes; the database is private to the bot's user; and one
chat cannot serve two nodes.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from bot.config import ConfigError, parse_config, parse_duration
from bot.storage import Store
from tests.conftest import C1_CHAT, RESIDENT, U1_CHAT, town


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
