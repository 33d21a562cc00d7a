"""Data kept no longer than needed (issue 10) and the poisoned update (issue 11).

The inbox keeps an update's payload only until it is done, ids for a week, nothing but the
id for chats outside the tree; an update that cannot be stored or handled is stored as
well as it can be and, after three tries, marked failed; personal data is cleared a
configured time after a matter closes; the database is private to the bot's user; and one
chat cannot serve two nodes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.cli import main
from bot.clock import ManualClock
from bot.config import ConfigError, is_postgres, parse_config, parse_duration
from bot.dev.fakeapi import buttons
from bot.store import Store
from escalation.reports import bulletin, service
from handlers import chats
from tests.conftest import C1_CHAT, HEAD1, RESIDENT, RESIDENT2, START, TZ, U1_CHAT, town
from tests.postgres import add_trigger, rows

pytestmark = pytest.mark.both_engines  # on SQLite and on PostgreSQL (issue 17)


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
    assert 'retention.personal_data: expected a duration of at least "30d"' in errors_of(
        town(retention={"personal_data": "2d"})
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
@pytest.mark.sqlite_only(reason="the modes of SQLite's files; a PostgreSQL server keeps its own")
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


@pytest.mark.sqlite_only(reason="the modes of SQLite's files; a PostgreSQL server keeps its own")
async def test_a_database_others_can_read_is_reported_at_start(
    make_bot: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    database = tmp_path / "tierbot.sqlite3"
    store = await Store.open(database)
    await store.close()
    database.chmod(0o644)
    caplog.set_level(logging.WARNING, logger="bot.store")
    async with make_bot(database=database) as bot:
        bot.say(U1_CHAT, RESIDENT, "/report 楼道堆物")
        await bot.wait_bot(U1_CHAT, "#1")  # a warning, not a refusal
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    shared = [w for w in warnings if "other users" in w]
    assert len(shared) == 1 and f"{database} (mode 644)" in shared[0], warnings


# --- the inbox keeps what replay needs, no more ----------------------------------------
async def watch_inbox(database: str) -> None:
    """A trigger noting in ``stored``, for each update the bot stores, whether its payload was kept."""
    await rows(database, "CREATE TABLE stored (update_id INTEGER, kept INTEGER)")
    await add_trigger(database, "note_stored", "AFTER INSERT", "inbox",
                      do="INSERT INTO stored VALUES (NEW.update_id, CASE WHEN NEW.payload IS NULL THEN 0 ELSE 1 END)")


async def test_a_done_update_leaves_its_id_only_and_outsiders_never_more(make_bot: Any) -> None:
    async with make_bot() as bot:
        await watch_inbox(bot.config.database)
        outside = -777
        bot.api.add_chat(outside, "外面的群")
        chatter = bot.say(U1_CHAT, RESIDENT, "今天谁家在装修，吵死了")
        stranger = bot.say(outside, RESIDENT2, "外人闲聊：我家住在城东")
        bot.say(U1_CHAT, RESIDENT, "/report 楼道堆满杂物")
        await bot.wait_bot(U1_CHAT, "#1")
        await bot.settle()
        kept = dict(await rows(bot.config.database, "SELECT update_id, kept FROM stored"))
        inbox = await rows(bot.config.database, "SELECT update_id, payload, done_at FROM inbox")
    assert len(kept) == 3
    ids = sorted(kept)
    assert kept[ids[0]] == 1 and kept[ids[2]] == 1  # the unit group's: replay may need them
    assert kept[ids[1]] == 0  # the stranger's: the id only, from the start
    assert len(inbox) == 3 and all(payload is None and done_at is not None for _, payload, done_at in inbox)
    assert chatter["message_id"] and stranger["message_id"]
    if is_postgres(bot.config.database):
        return  # (the server's files are its own: SQLite's secure_delete is what the rest checks)
    # Not even in the file's free space.
    content = _bytes_of(bot.config.database)
    for text in ("今天谁家在装修", "外人闲聊", "城东"):
        assert text.encode() not in content


async def test_update_ids_are_kept_a_week_not_a_month(make_bot: Any) -> None:
    async with make_bot() as bot:
        for i in range(3):
            bot.say(U1_CHAT, RESIDENT, f"聊天{i}")
        await bot.settle()
        assert len(await inbox_ids(bot)) == 3
        bot.clock.advance(6 * 86400)
        await bot.api.wait_for(lambda: bot.svc.last_prune == bot.clock.now(), 5)  # pruned: none a week old
        assert len(await inbox_ids(bot)) == 3
        bot.clock.advance(1.5 * 86400)
        await bot.api.wait_for(lambda: bot.svc.last_prune == bot.clock.now(), 5)
        assert len(await inbox_ids(bot)) == 1  # the newest stays, so that ids stay known


def _bytes_of(path: str) -> bytes:
    return Path(path).read_bytes()


async def inbox_ids(bot: Any) -> list[int]:
    return [r[0] for r in await rows(bot.config.database, "SELECT update_id FROM inbox ORDER BY update_id")]


# --- one poisoned update must not wedge the bot (issue 11) -----------------------------
async def test_an_update_with_a_lone_surrogate_is_stored_replaced_and_the_bot_goes_on(make_bot: Any) -> None:
    async with make_bot() as bot:
        card = await _report(bot, "/report 楼道堆物")
        # Button data and a report as a broken client may send them: "\ud800" alone is
        # valid JSON but no character; SQLite (UTF-8) refused the whole batch, forever.
        # (The fake Bot API writes JSON with ASCII escapes: the body carries "\\ud800".)
        bot.api.press_button(U1_CHAT, bot.user(HEAD1), card, "claim:1\ud800")
        bot.say(U1_CHAT, RESIDENT, "/report 门口\ud800的灯坏了")
        bot.say(U1_CHAT, RESIDENT2, "/report 下水道堵了")
        await bot.wait_bot(U1_CHAT, "#3")
        async with bot.svc.store.read() as tx:
            second, third = await tx.matter(2), await tx.matter(3)
        assert second is not None and second.text == "门口\ufffd的灯坏了"
        assert third is not None and third.text == "下水道堵了"
        await bot.settle()
        assert await rows(bot.config.database, "SELECT count(*) FROM inbox WHERE done_at IS NULL") == [(0,)]


async def _report(bot: Any, text: str) -> int:
    bot.say(U1_CHAT, RESIDENT, text)
    card = await bot.wait_bot(U1_CHAT, "#1")
    return int(card.message_id)


async def test_an_update_the_inbox_refuses_is_kept_as_its_id_and_still_handled(make_bot: Any) -> None:
    async with make_bot() as bot:
        await add_trigger(bot.config.database, "refuse", "BEFORE INSERT", "inbox", where="NEW.payload LIKE '%毒%'",
                          fail="no")
        bot.say(U1_CHAT, RESIDENT, "/report 有人下毒")
        bot.say(U1_CHAT, RESIDENT2, "/report 下水道堵了")
        await bot.wait_bot(U1_CHAT, "#2")
        await bot.settle()
        inbox = await rows(bot.config.database, "SELECT payload, done_at IS NOT NULL FROM inbox ORDER BY update_id")
    assert inbox == [(None, 1), (None, 1)]


async def _refuse_reports(database: str) -> None:
    await add_trigger(database, "refuse", "BEFORE INSERT", "matters", fail="disk says no")


async def _inbox_row(database: str) -> tuple[Any, ...]:
    [row] = await rows(database, "SELECT update_id, payload IS NOT NULL, done_at, tries, failed_at, error FROM inbox")
    return row


async def test_an_update_that_fails_three_times_is_marked_failed_and_listed(
    make_bot: Any, bot_database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = bot_database
    store = await Store.open(database)
    await store.close()
    await _refuse_reports(database)
    async with make_bot() as bot:
        bot.say(U1_CHAT, RESIDENT, "/report 楼道灯坏了，我是三楼王阿姨")
        await bot.wait_bot(U1_CHAT, "抱歉")
        await bot.settle()
    update_id, kept, done_at, tries, failed_at, error = await _inbox_row(database)
    assert (kept, done_at, tries, failed_at) == (1, None, 1, None)  # waits for the next start
    assert "disk says no" in error
    for start in (2, 3):
        async with make_bot() as bot:  # replayed at the start; refused again
            for _ in range(50):
                if (await _inbox_row(database))[3] == start:
                    break
                await asyncio.sleep(0.1)
            await bot.settle()
    _, kept, done_at, tries, failed_at, error = await _inbox_row(database)
    assert (kept, tries) == (0, 3) and failed_at is not None and done_at == failed_at
    async with make_bot() as bot:  # given up on: not replayed again
        bot.say(U1_CHAT, RESIDENT2, "/report 下水道堵了")
        await bot.wait_bot(U1_CHAT, "抱歉")
        await bot.settle()
        assert await _failed_count(bot) == 1
    # The operator's list: id, when, error; never what the update said.
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(town(database=str(database)), allow_unicode=True), encoding="utf-8")
    assert await asyncio.to_thread(main, ["inbox", "--failed", "--config", str(config_file)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{update_id}\t") and "disk says no" in out and "王阿姨" not in out
    assert await asyncio.to_thread(main, ["inbox", "--config", str(config_file)]) == 0
    assert "1 failed" in capsys.readouterr().out


async def _failed_count(bot: Any) -> int:
    async with bot.svc.store.read() as tx:
        return len(await tx.inbox_failed(10))


async def test_a_handler_that_raises_counts_a_try_without_quoting_the_update(
    make_bot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def boom(update: Any, context: Any) -> None:
        raise RuntimeError(f"could not handle {update.effective_message.text}")

    monkeypatch.setattr(chats, "chat_id", boom)
    async with make_bot() as bot:
        bot.say(U1_CHAT, HEAD1, "/chatid 秘密")
        await bot.wait_bot(U1_CHAT, "抱歉")
        await bot.settle()
        _, kept, done_at, tries, failed_at, error = await _inbox_row(bot.config.database)
    assert (kept, done_at, tries, failed_at) == (1, None, 1, None)  # tried again at the next start
    assert error.startswith("RuntimeError at ") and "秘密" not in error


# --- personal data retention -------------------------------------------------------------
async def _town_figures(bot: Any, around: float) -> tuple[Any, ...]:
    """What bulletins and ledgers count of the closed matters #1 and #2 (#3 stays open and
    climbs meanwhile), for the days around the test's matters."""
    start, end = around - 86400, around + 86400
    async with bot.svc.store.read() as tx:
        plain, moved, _ = await tx.summary_matters(start, end)
        facts = [tuple(f) for f in plain + moved if f[5] in (1, 2)]  # column 5: the matter's number
        replayed = await tx.timelines([1, 2])
        weeks = await tx.count_week(start, end)
        ledger = [(m.id, m.state, m.category, m.created_at, m.closed_at, m.rating, m.top_tier)
                  for m in await tx.ledger_matters(start, end) if m.id in (1, 2)]
    _, exported = await service.export_file(bot.config, "st", start, end, csv=True)  # the 台账 file's rows
    week = await service.period_figures(bot.svc.store, bot.svc.tree, bulletin.weekly_period(end, tz=TZ), history=False)
    timeline = [(e.matter_id, e.at, e.kind, e.tier, e.by_deadline) for e in replayed]
    return sorted(facts, key=lambda f: f[5]), timeline, sorted(weeks), ledger, exported, week.current, week.previous


async def _row_of(database: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    return await rows(database, sql, params)


async def _closed_and_open_matters(bot: Any) -> None:
    """#1 resolved with a note, a photo and a rating; #2 closed as unresolvable; #3 open."""
    bot.api.send_photo(U1_CHAT, bot.user(RESIDENT, "张秀英"), caption="/report 邻居张三家的狗半夜叫")
    await bot.wait_bot(U1_CHAT, "#1")
    bot.say(U1_CHAT, HEAD1, "/note 1 已联系张三")
    bot.say(U1_CHAT, HEAD1, "/resolve 1 张三同意晚上关狗")
    ask = await bot.wait_bot(U1_CHAT, "请评价处理结果")
    bot.api.press_button(U1_CHAT, bot.user(RESIDENT, "张秀英"), ask.message_id, buttons(ask)[0][1])
    bot.say(U1_CHAT, RESIDENT2, "/report 李四家漏水到楼下")
    await bot.wait_bot(U1_CHAT, "#2")
    bot.say(U1_CHAT, HEAD1, "/close 2 房东王五不配合")
    bot.say(U1_CHAT, RESIDENT2, "/report 楼道灯坏了")
    await bot.wait_bot(U1_CHAT, "#3")
    await bot.settle()
    async with bot.svc.store.read() as tx:
        closed = [m for m in [await tx.matter(1), await tx.matter(2)] if m and m.closed]
        assert len(closed) == 2 and (await tx.matter(1)).rating  # type: ignore[union-attr]


async def test_personal_data_is_cleared_after_the_retention_period_figures_stay(
    make_bot: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with make_bot(town(retention={"personal_data": "30d"})) as bot:
        await _closed_and_open_matters(bot)
        figures = await _town_figures(bot, START)
        database = bot.config.database
        bot.clock.advance(29 * 86400)
        await bot.api.wait_for(lambda: bot.svc.last_prune == bot.clock.now(), 5)
        assert await _row_of(database, "SELECT count(*) FROM matters WHERE purged_at IS NOT NULL") == [(0,)]
        bot.clock.advance(2 * 86400)  # past the period
        await bot.api.wait_for(lambda: bot.svc.last_prune == bot.clock.now(), 5)
        assert await _town_figures(bot, START) == figures  # bulletins and ledgers count the same
        bot.say(U1_CHAT, HEAD1, "/show 1")
        shown = await bot.wait_bot(U1_CHAT, "个人信息已清除")
    assert "张秀英" not in shown.text and "张三" not in shown.text and "（已清除）" in shown.text
    matters = await _row_of(database, "SELECT id, reporter_id, reporter_name, text, resolution, close_reason, "
                                "purged_at IS NOT NULL FROM matters ORDER BY id")
    assert matters == [
        (1, 0, "（已清除）", "（已清除）", "（已清除）", None, 1),
        (2, 0, "（已清除）", "（已清除）", None, "（已清除）", 1),
        (3, RESIDENT2, bot.user(RESIDENT2)["first_name"], "楼道灯坏了", None, None, 0),  # open: untouched
    ]
    assert await _row_of(database, "SELECT DISTINCT file_id FROM attachments WHERE matter_id = 1") == [("（已清除）",)]
    details = await _row_of(database, "SELECT kind, actor_id, actor_name, detail FROM events WHERE matter_id IN (1, 2) "
                                "ORDER BY id")
    said = await _row_of(database, "SELECT text, media FROM outbox WHERE matter_id IN (1, 2)")
    everything = repr(details) + repr(said)
    for personal in ("张秀英", "张三", "李四", "王五", str(RESIDENT), str(RESIDENT2)):
        assert personal not in everything, personal
    assert [k for k, *_ in details].count("purged") == 2
    assert ("note", HEAD1, bot.user(HEAD1)["first_name"], "（已清除）") in details  # who worked it stays
    assert any(kind == "rated" and detail == "满意" for kind, _, _, detail in details)  # the rating's word stays
    logged = [r.getMessage() for r in caplog.records if getattr(r, "event", None) == "purged"]
    assert len(logged) == 1 and "2 matter(s)" in logged[0] and "retention period" in logged[0]
    assert "张" not in logged[0] and "李四" not in logged[0]


async def test_tierbot_purge_clears_matters_closed_before_a_day(
    make_bot: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    long_ago = ManualClock(datetime(2024, 1, 10, 10, 0, tzinfo=TZ).timestamp())
    async with make_bot(clock=long_ago) as bot:
        await _closed_and_open_matters(bot)
        database = bot.config.database
    # a report the abuse limits held back
    await rows(database, "INSERT INTO held_reports (unit_id, chat_id, reporter_id, reporter_name, limit_key, text, "
               "reason, created_at) VALUES ('u1', ?, ?, '张秀英', ?, '第十一次反映：张三家的狗', 'hourly', ?)",
               (U1_CHAT, RESIDENT, RESIDENT, long_ago.now()))
    config_file = tmp_path / "config.yaml"
    config_file.write_text(yaml.safe_dump(town(database=database), allow_unicode=True), encoding="utf-8")
    assert await asyncio.to_thread(main, ["purge", "--before", "2024-01-10", "--config", str(config_file)]) == 0
    assert "cleared the personal data of 0 matter(s)" in capsys.readouterr().out  # closed on the 10th
    assert await asyncio.to_thread(main, ["purge", "--before", "2024-01-11", "--config", str(config_file)]) == 0
    assert "cleared the personal data of 2 matter(s) closed before 2024-01-11" in capsys.readouterr().out
    assert await _row_of(database, "SELECT id FROM matters WHERE text = '（已清除）' ORDER BY id") == [(1,), (2,)]
    assert await _row_of(database, "SELECT count(*) FROM events WHERE kind = 'purged'") == [(2,)]
    held = await _row_of(database, "SELECT reporter_id, reporter_name, text FROM held_reports")
    assert held == [(0, "（已清除）", "（已清除）")]
    messages = await _row_of(database,
                             "SELECT DISTINCT text FROM outbox WHERE matter_id IN (1, 2) AND text IS NOT NULL")
    assert messages == [("（已清除）",)]  # what was said to the reporter about them, too
    assert await asyncio.to_thread(main, ["purge", "--before", "2999-01-01", "--config", str(config_file)]) == 2
