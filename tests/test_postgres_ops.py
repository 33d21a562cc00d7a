"""The operations on PostgreSQL (issue 17): the single-instance guard, ``tierbot status``,
``backup``/``restore`` refusing with advice, and ``tierbot migrate-db`` moving a town from
SQLite, against a real server (tests/postgres.py: skipped without one, failed in CI)."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml

from bot import ops
from bot.clock import ManualClock
from bot.config import shown
from bot.dev.fakeapi import FakeBotApi
from bot.lock import AlreadyRunning, DatabaseLock, PostgresGuard
from bot.store import SCHEMA_VERSION, Store
from bot.store.postgres import migrate
from tests.conftest import (
    C1_CHAT,
    HEAD1,
    HEAD2,
    POLICE,
    RESIDENT,
    ROOT,
    STAFF,
    STATION_CHAT,
    TOKEN,
    TZ,
    U1_CHAT,
    U2_CHAT,
    U3_CHAT,
    Running,
    add_chats,
    town,
)
from tests.postgres import fresh_schema, rows
from tests.test_observe import report, tierbot

H = 3600.0


# --- the single-instance guard --------------------------------------------------------------
async def test_the_guard_is_one_holder_per_database_and_schema_and_goes_with_its_connection() -> None:
    async with fresh_schema() as town_a, fresh_schema() as town_b:
        first = PostgresGuard(town_a)
        await first.acquire()
        try:
            with pytest.raises(AlreadyRunning) as refused:
                await PostgresGuard(town_a).acquire()
            assert refused.value.pid == os.getpid()  # named by the holder's session
            # The server probes the holder: a vanished host's guard goes within minutes.
            assert await first._conn.fetchval("SHOW tcp_keepalives_idle") == "60"
            other = PostgresGuard(town_b)  # another schema of the same database: another town
            await other.acquire()
            await other.release()
        finally:
            await first.release()
        again = PostgresGuard(town_a)  # released with its connection
        await again.acquire()
        await again.release()


def run_config(tmp_path: Path, api: FakeBotApi, database: str, name: str = "config.yaml") -> Path:
    raw = town(sweep_interval="0.5s")
    raw["database"] = database
    raw["telegram"].update(base_url=api.base_url, base_file_url=api.base_file_url, poll_timeout=1)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


async def start(config: Path, log: Path) -> asyncio.subprocess.Process:
    with log.open("wb") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", "--config", str(config), cwd=ROOT,
            env={**os.environ, "TELEGRAM_BOT_TOKEN": TOKEN}, stdout=out, stderr=subprocess.STDOUT,
        )


async def card_for(api: FakeBotApi, text: str) -> None:
    api.send_text(U1_CHAT, api.user(901, "居民"), f"/report {text}")
    await api.wait_for(lambda: any(text in (m.text or "") and "📋" in (m.text or "")
                                   for m in api.bot_messages(U1_CHAT)), timeout=20)


async def test_a_second_run_on_one_postgresql_database_exits_3_and_a_killed_ones_guard_goes_with_it(
    api: FakeBotApi, tmp_path: Path, postgres_url: str
) -> None:
    # A password in the URL is never printed.
    url = postgres_url.replace("postgresql://tierbot@", "postgresql://tierbot:s3cret-pw@")
    config = run_config(tmp_path, api, url)
    add_chats(api, town())
    first = await start(config, tmp_path / "first.log")
    try:
        await card_for(api, "楼道堆物")
        second = await start(config, tmp_path / "second.log")
        assert await asyncio.wait_for(second.wait(), 30) == 3
        said = (tmp_path / "second.log").read_text().splitlines()
        assert said == [f"tierbot: another tierbot (pid {first.pid}) is already running on the database "
                        f"{shown(url)}; stop it first, or give this one its own database"]
        assert "s3cret-pw" not in said[0] and ":***@" in said[0]
        await card_for(api, "路灯坏了")  # the first one polls on, alone
        # Killed, however hard: the server ends its session, and the guard with it.
        first.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(first.wait(), 10) == -signal.SIGKILL
        third = await start(config, tmp_path / "third.log")
        try:
            await card_for(api, "井盖丢了")
        finally:
            third.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(third.wait(), 20) == 0
    finally:
        if first.returncode is None:
            first.kill()
            await first.wait()
    assert [n for (n,) in await rows(postgres_url, "SELECT count(*) FROM matters")] == [3]
    assert "s3cret-pw" not in "".join((tmp_path / f"{n}.log").read_text() for n in ("first", "second", "third"))


async def test_a_bot_whose_guard_connection_is_cut_stops_in_one_line(
    api: FakeBotApi, tmp_path: Path, postgres_url: str
) -> None:
    config = run_config(tmp_path, api, postgres_url)
    add_chats(api, town())
    bot = await start(config, tmp_path / "bot.log")
    try:
        await card_for(api, "楼道堆物")
        admin = await asyncpg.connect(postgres_url)
        try:  # as a server restart or a DBA would: the guard's session ends
            ended = await admin.fetchval("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                         "WHERE application_name = $1", f"tierbot run pid {bot.pid}")
        finally:
            await admin.close()
        assert ended == 1
        assert await asyncio.wait_for(bot.wait(), 30) == 1
    finally:
        if bot.returncode is None:
            bot.kill()
            await bot.wait()
    lines = [line for line in (tmp_path / "bot.log").read_text().splitlines() if "lost the connection" in line]
    assert lines == [f"tierbot: lost the connection holding the single-instance guard on the database "
                     f"{postgres_url}; stopping (start it again)"]


# --- status ----------------------------------------------------------------------------------
async def status_scenario(bot: Running, now: float) -> None:
    """test_observe's running bot: matters at each tier, a card waiting, a chat gone. (Run
    twice on one fake Telegram: each wait is for a message new since its step.)"""
    async def then(chat: int, text: str, step: Any) -> None:
        before = bot.count_bot(chat, text)
        step()
        await bot.api.wait_for(lambda: bot.count_bot(chat, text) > before)

    await report(bot, U1_CHAT, 901, "一")  # left alone: it climbs to the station
    await report(bot, U2_CHAT, 902, "二")
    await bot.done(U2_CHAT, bot.api.send_text(U2_CHAT, bot.api.user(HEAD2, "周明"), "/claim 2"))
    await report(bot, U3_CHAT, 903, "三")
    await then(U3_CHAT, "好了", lambda: bot.api.send_text(U3_CHAT, bot.api.user(33, "吴楼长"), "/resolve 3 好了"))
    await then(C1_CHAT, "事项 #1 上报至社区", lambda: bot.clock.set(now - 4 * H))
    await then(STATION_CHAT, "事项 #1 上报至派出所", lambda: bot.clock.set(now - 2 * H))
    bot.clock.set(now)
    bot.api.remove_bot_from(U2_CHAT)
    bot.api.fail("sendMessage", chat_id=U3_CHAT, status=500, times=10**6)  # a card left waiting: retried
    bot.api.send_text(U3_CHAT, bot.api.user(904, "居民"), "/report 四")
    await bot.api.wait_for(lambda: bot.api.calls_to("sendMessage")[-1].status == 500)
    bot.api.send_text(U2_CHAT, bot.api.user(HEAD2, "周明"), "/note 2 在处理")  # its 👍 finds the bot gone
    await bot.api.wait_for(lambda: bot.api.calls_to("setMessageReaction")[-1].status == 403)
    await bot.settle()


def unaged(text: str) -> str:
    """Status output without what depends on the wall clock (ages, the next bulletin's day)."""
    text = re.sub(r"\d+ (s|min|h) ago", "N ago", text)
    return re.sub(r"\(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\)", "(TIME)", text)


async def test_status_on_postgresql_says_what_it_says_on_sqlite(make_bot: Any, tmp_path: Path,
                                                                postgres_url: str) -> None:
    outputs = {}
    for engine, database in (("sqlite", str(tmp_path / "town.sqlite3")), ("postgres", postgres_url)):
        now = time.time()
        bot: Running
        # No bulletin falls due while the bot's clock runs the 5 hours up to now: their next times
        # are an hour ahead (and one due before a bot's first start is never sent).
        ahead = datetime.fromtimestamp(now + H, TZ)
        raw = town(weekly_summary=ahead.strftime("%a %H:%M").lower(), monthly_bulletin=ahead.strftime("%H:%M"))
        async with make_bot(raw, clock=ManualClock(now - 5 * H), database=database) as bot:
            await status_scenario(bot, now)
            raw["database"] = database
            config = tmp_path / f"{engine}.yaml"
            config.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
            code, out, err = await tierbot("status", "--config", str(config))
            assert (code, err) == (0, ""), out + err
            assert f"schema version: {SCHEMA_VERSION}" in out
            assert "open matters: 3 (tier 3 units: 2, tier 2 communities: 0, tier 1 station: 1)" in out
            assert "oldest overdue: none" in out
            assert re.search(r"outbox backlog: 1 message\(s\), the oldest queued \d+ s ago \(card:4:new\)", out)
            assert f"unreachable chats: 1: {U2_CHAT} (u2)" in out
            assert "failed inbox updates: 0" in out and re.search(r"last sweep: \d+ s ago", out)
            assert out.rstrip().endswith("OK")
            status = await ops.status(bot.config, now + 3 * H, max_backlog_age=15 * 60, max_sweep_age=300)
            assert "oldest overdue: matter 1 at tier 1 (u1), 2 h past its claim deadline" in status.lines
            assert status.problems == ["the oldest message waiting was queued 3 h ago (limit 15 min)",
                                       "the last sweep ran 3 h ago (limit 5 min)"]
            code_stale, out_stale, _ = await tierbot("status", "--config", str(config), "--max-backlog-age", "0.1s")
            assert code_stale == 1 and "PROBLEM: the oldest message waiting was queued" in out_stale
            outputs[engine] = (code, out.splitlines())
            bot.api._faults.clear()  # the card's failures were this engine's: the next one starts clean
    # Line for line the same, but for the database's name.
    (code_pg, lines_pg), (code_sqlite, lines_sqlite) = outputs["postgres"], outputs["sqlite"]
    assert code_pg == code_sqlite and lines_pg[0] == f"database: {postgres_url}"
    assert [unaged(line) for line in lines_pg[1:]] == [unaged(line) for line in lines_sqlite[1:]]


async def test_status_of_an_unreachable_postgresql_database_exits_1_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(town(database="postgresql://tierbot:pw@127.0.0.1:1/city"), allow_unicode=True),
                      encoding="utf-8")
    code, out, err = await tierbot("status", "--config", str(config))
    assert code == 1 and out == ""
    assert err.startswith("tierbot status: cannot read postgresql://tierbot:***@127.0.0.1:1/city: ")
    assert len(err.splitlines()) == 1 and ":pw@" not in err


# --- backup and restore -----------------------------------------------------------------------
async def test_backup_and_restore_refuse_a_postgresql_url_with_pg_dump_and_pg_restore(tmp_path: Path) -> None:
    raw = town(database="postgresql://tierbot:pw@db.example:5432/city?search_path=town")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    code, out, err = await tierbot("backup", "--config", str(config), "--out", str(tmp_path / "copy.sqlite3"))
    assert (code, out) == (2, "") and len(err.splitlines()) == 1
    assert "`database` is a PostgreSQL URL" in err
    assert "pg_dump -Fc -n town -f tierbot.dump 'postgresql://tierbot@db.example:5432/city'" in err
    code, out, err = await tierbot("restore", "--config", str(config), "--from", str(tmp_path / "copy.sqlite3"))
    assert (code, out) == (2, "") and len(err.splitlines()) == 1
    assert "pg_restore --clean --if-exists -n town -d 'postgresql://tierbot@db.example:5432/city' tierbot.dump" in err
    assert ":pw@" not in err
    assert os.listdir(tmp_path) == ["config.yaml"]  # no file written, none made of the URL


# --- migrate-db --------------------------------------------------------------------------------
async def drive_a_town(bot: Running) -> None:
    """Reports, a claim, a resolution and its rating, an escalation, a claim up there."""
    async def reported(chat: int, text: str) -> None:
        before = len(bot.api.bot_messages(chat))
        bot.say(chat, RESIDENT, f"/report {text}")
        await bot.api.wait_for(lambda: len(bot.api.bot_messages(chat)) > before)
        await bot.settle()

    await reported(U1_CHAT, "楼道堆物")
    bot.clock.advance(0.5 * H)
    await bot.done(U1_CHAT, bot.say(U1_CHAT, HEAD1, "/claim 1"))
    bot.clock.advance(0.5 * H)
    bot.say(U1_CHAT, HEAD1, "/resolve 1 已清理")
    ask = await bot.wait_bot(U1_CHAT, "请评价处理结果")
    bot.api.press_button(U1_CHAT, bot.user(RESIDENT), ask.message_id, "v1:rate:1:satisfied")
    await bot.api.wait_for(lambda: any("满意" in (a.get("text") or "") for a in bot.api.callback_answers))
    await reported(U1_CHAT, "房东租客押金纠纷")  # #2: left alone, it climbs to the community
    await reported(U2_CHAT, "路灯坏了")  # #3
    await bot.done(U2_CHAT, bot.say(U2_CHAT, HEAD2, "/claim 3"))
    bot.clock.advance(1.1 * H)
    await bot.wait_bot(C1_CHAT, "事项 #2 上报至社区")
    await bot.done(C1_CHAT, bot.say(C1_CHAT, POLICE, "/claim 2"))
    await bot.settle()


async def summary(bot: Running) -> str:
    before = bot.count_bot(STATION_CHAT, "近七天")
    bot.say(STATION_CHAT, STAFF, "/summary")
    await bot.api.wait_for(lambda: bot.count_bot(STATION_CHAT, "近七天") > before)
    return [m.text for m in bot.api.bot_messages(STATION_CHAT) if "近七天" in (m.text or "")][-1]


def sqlite_counts(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as db:
        tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                            "AND name NOT LIKE 'sqlite_%'")]
        return {t: db.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}


async def test_a_town_moved_to_postgresql_carries_on_where_it_was(make_bot: Any, tmp_path: Path,
                                                                  postgres_url: str) -> None:
    source = tmp_path / "town.sqlite3"
    clock = ManualClock(time.time() - 2 * H)
    async with make_bot(clock=clock, database=source) as bot:
        await drive_a_town(bot)
        before = await summary(bot)
    assert "满意 1" in before  # the rating is among the figures moved
    counts = sqlite_counts(source)
    assert counts["matters"] == 3 and counts["events"] >= 7 and counts["outbox"] > 0

    code, out, err = await tierbot("migrate-db", "--from", str(source), "--to", postgres_url)
    assert (code, err) == (0, ""), out + err
    printed = dict(re.findall(r"^(\w+)\s+([\d,]+)$", out, re.M))
    assert {t: int(n.replace(",", "")) for t, n in printed.items()} == counts  # every table, its count
    assert f"copied {len(counts)} tables, {sum(counts.values()):,} rows from {source}" in out
    for table, count in counts.items():
        assert await rows(postgres_url, f'SELECT count(*) FROM "{table}"') == [(count,)]
    assert await rows(postgres_url, "SELECT id, state, tier, rating FROM matters ORDER BY id") == \
        [tuple(r) for r in sqlite3.connect(source).execute("SELECT id, state, tier, rating FROM matters ORDER BY id")]

    async with make_bot(clock=ManualClock(clock.now()), database=postgres_url) as bot:
        assert await summary(bot) == before  # the same figures after the move
        bot.say(U1_CHAT, RESIDENT, "/report 井盖丢了")
        await bot.wait_bot(U1_CHAT, "📋 事项 #4 ·")  # the next number, not #1 again
        bot.say(C1_CHAT, POLICE, "/resolve 2 已调解")  # a moved matter is handled where it stood
        await bot.wait_bot(U1_CHAT, "已调解")
    assert await rows(postgres_url, "SELECT state FROM matters WHERE id = 2") == [("resolved",)]
    assert await rows(postgres_url, "SELECT count(*) FROM events WHERE id > ?", (counts["events"],)) != [(0,)]


async def test_migrate_db_refuses_a_non_empty_target_a_newer_source_and_a_running_bot(
    tmp_path: Path, postgres_url: str
) -> None:
    source = tmp_path / "town.sqlite3"
    store = await Store.open(source)
    await store.close()
    with sqlite3.connect(source) as db:
        db.execute("INSERT INTO inbox (update_id, payload, received_at) VALUES (7, '{}', 1.0)")

    code, _, err = await tierbot("migrate-db", "--from", str(tmp_path / "missing.sqlite3"), "--to", postgres_url)
    assert code == 1 and err == f"tierbot migrate-db: no database at {tmp_path / 'missing.sqlite3'}\n"
    code, _, err = await tierbot("migrate-db", "--from", str(source), "--to", str(tmp_path / "other.sqlite3"))
    assert code == 2 and "--to a URL postgresql://" in err

    lock = DatabaseLock(source)  # a bot running on the source
    lock.acquire()
    try:
        code, _, err = await tierbot("migrate-db", "--from", str(source), "--to", postgres_url)
    finally:
        lock.release()
    assert code == 3 and "is already running on the database" in err and "migrate-db needs the bot stopped" in err
    guard = PostgresGuard(postgres_url)  # a bot running on the target
    await guard.acquire()
    try:
        code, _, err = await tierbot("migrate-db", "--from", str(source), "--to", postgres_url)
    finally:
        await guard.release()
    assert code == 3 and f"already running on the database {postgres_url}" in err

    code, out, err = await tierbot("migrate-db", "--from", str(source), "--to", postgres_url)
    assert code == 0, err
    code, out, err = await tierbot("migrate-db", "--from", str(source), "--to", postgres_url)
    assert (code, out) == (1, "")
    assert err == ("tierbot migrate-db: the target is not empty (table inbox has rows); migrate-db copies into an "
                   "empty database only\n")
    assert await rows(postgres_url, "SELECT count(*) FROM inbox") == [(1,)]  # not copied twice

    with sqlite3.connect(source) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    async with fresh_schema() as empty:
        code, _, err = await tierbot("migrate-db", "--from", str(source), "--to", empty)
        assert code == 1 and "made by a newer tierbot" in err and str(source) in err
        assert await rows(empty, "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()") == [(0,)]


async def test_a_row_that_cannot_move_leaves_the_target_empty(tmp_path: Path, postgres_url: str) -> None:
    """One transaction: a value PostgreSQL's column would read otherwise (text in an integer
    column, which SQLite keeps) stops the copy, and the tables copied before it are rolled back."""
    source = tmp_path / "town.sqlite3"
    store = await Store.open(source)
    await store.close()
    with sqlite3.connect(source) as db:
        db.execute("INSERT INTO matters (id, unit_id, chat_id, reporter_id, reporter_name, text, state, tier, "
                   "top_tier, tier_since, rules, created_at) VALUES (1, 'u1', -201, 901, '居民', '秘密的事', 'open', "
                   "3, 1, 1.0, '{}', 1.0)")
        db.execute("INSERT INTO events (matter_id, at, actor_id, kind) VALUES (1, 2.0, 'not a number', 'x')")
    code, out, err = await tierbot("migrate-db", "--from", str(source), "--to", postgres_url)
    assert (code, out) == (1, "")
    assert err == "tierbot migrate-db: events.actor_id: a str value in a bigint column; nothing was copied\n"
    assert "秘密" not in err
    assert await rows(postgres_url, "SELECT count(*) FROM matters") == [(0,)]
    conn = await asyncpg.connect(postgres_url)
    try:
        assert await migrate(conn) == SCHEMA_VERSION  # migrated, and empty: a second try may come
    finally:
        await conn.close()



async def test_the_commands_that_read_a_database_take_a_postgresql_url(tmp_path: Path, postgres_url: str) -> None:
    """inbox, purge and export looked for a file at `database` and said there was none."""
    store = await Store.open(postgres_url)
    await store.close()
    raw = town(database=postgres_url)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    code, out, err = await tierbot("inbox", "--config", str(config))
    assert (code, err, out) == (0, "", "inbox: 0 update(s) waiting, 0 failed (list them with --failed)\n")
    code, out, err = await tierbot("export", "--config", str(config), "--from", "2026-11-01", "--to", "2026-11-30",
                                   "--out", str(tmp_path / "ledger.csv"))
    assert (code, err) == (0, "") and "0 matter(s)" in out
    code, out, err = await tierbot("purge", "--config", str(config), "--before", "2026-01-01")
    assert code == 0 and "cleared the personal data of 0 matter(s)" in out, err
