"""Group commit (bot/store/) and the connections Bot API calls go through (bot/telegram/http.py).

Reports arriving together are committed together; that must change nothing anyone can
see: numbers follow the order of the messages, every card answers its own report, a bad
row sinks no other, and nothing queued is ever invisible to a later read.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from telegram import Bot

from bot.store import QueuedReport, Sent, Store
from bot.telegram.http import ConnectionsRequest
from tests.conftest import RESIDENT, RESIDENT2, U1_CHAT, U2_CHAT, town
from tests.postgres import add_trigger, rows

pytestmark = pytest.mark.both_engines  # on SQLite and on PostgreSQL (issue 17)


async def test_reports_arriving_together_keep_their_order_and_each_its_own_card(make_bot: Any) -> None:
    async with make_bot(town(limits={"reports_per_hour": 30})) as bot:  # one person's 20 are no abuse here
        # Thirty messages queued at once reach the bot in one getUpdates, and are
        # committed in one transaction (or a few).
        sent = [
            bot.say(U1_CHAT if i % 2 else U2_CHAT, RESIDENT if i % 3 else RESIDENT2, f"/report 第{i}件：楼道堆物")
            for i in range(30)
        ]
        await bot.api.wait_for(lambda: len([m for m in bot.api.bot_messages(U1_CHAT) + bot.api.bot_messages(U2_CHAT)
                                             if "📋" in (m.text or "")]) == 30, timeout=10)
        async with bot.svc.store.read() as tx:
            matters = [await tx.matter(number) for number in range(1, 31)]
        assert [m.text for m in matters if m] == [f"第{i}件：楼道堆物" for i in range(30)]
        for message, matter in zip(sent, matters, strict=True):
            assert matter is not None and matter.report_message_id == message["message_id"]
            card = next(m for m in bot.api.bot_messages(matter.chat_id) if m.message_id == matter.card_message_id)
            assert card.reply_to == message["message_id"] and f"#{matter.id}" in (card.text or "")
            async with bot.svc.store.read() as tx:
                assert [e.kind for e in await tx.events(matter.id)] == ["reported"]
        await bot.settle()
        assert await rows(bot.config.database, "SELECT count(*) FROM inbox WHERE done_at IS NULL") == [(0,)]
        assert await rows(bot.config.database, "SELECT count(*) FROM outbox WHERE state != 'sent'") == [(0,)]


def _row(text: str, unit_id: str | None = "u1") -> dict[str, Any]:
    return {
        "unit_id": unit_id, "chat_id": U1_CHAT, "report_message_id": 7, "reporter_id": RESIDENT,
        "reporter_name": "居民", "text": text, "state": "open", "tier": 3, "top_tier": 3,
        "tier_since": 1000.0, "rules": "{}", "created_at": 1000.0,
    }


async def test_a_bad_report_sinks_no_other_and_stays_in_the_inbox(database_url: str) -> None:
    store = await Store.open(database_url)  # on SQLite and on PostgreSQL (issue 17)
    try:
        async with store.transaction() as tx:
            await tx.inbox_add([(1, "{}"), (2, "{}"), (3, "{}")])
        store.queue_report(QueuedReport(1, _row("甲"), 7))
        store.queue_report(QueuedReport(2, _row("乙", unit_id=None), 8))  # NOT NULL fails
        store.queue_report(QueuedReport(3, _row("丙"), 9))
        async with store.read() as tx:  # every read commits what is queued first
            matters = await tx.open_matters(["u1"])
            done = [u for u in (1, 2, 3) if await tx.inbox_is_done(u)]
            pending = [u for u, _ in await tx.inbox_pending()]
        assert [m.text for m in matters] == ["甲", "丙"]
        if store.engine == "sqlite":  # PostgreSQL's sequence keeps the numbers the failed batch took
            assert [m.id for m in matters] == [1, 2]
        assert done == [1, 3] and pending == [2]  # replayed at the next start
        # The inbox says why, in the database's words, which name the column, never the row.
        [(error,)] = await rows(database_url, "SELECT error FROM inbox WHERE update_id = 2")
        assert "unit_id" in error and "乙" not in error and "居民" not in error, error
    finally:
        await store.close()


async def test_queued_sends_are_recorded_before_any_later_read(database_url: str) -> None:
    store = await Store.open(database_url)  # on SQLite and on PostgreSQL (issue 17)
    try:
        store.queue_report(QueuedReport(None, _row("甲"), 7))
        async with store.read() as tx:
            (item,) = await tx.outbox_due(2000.0)
        assert item.kind == "card" and item.matter_id == 1 and item.reply_to == 7
        store.queue_sent(Sent(item.id, 2000.0, 55, card=(1, U1_CHAT, 55)))
        async with store.read() as tx:
            assert await tx.outbox_due(2000.0) == []
            matter = await tx.matter(1)
        assert matter is not None and (matter.card_chat_id, matter.card_message_id) == (U1_CHAT, 55)
    finally:
        await store.close()


ME = {"id": 1, "is_bot": True, "first_name": "tierbot", "username": "tierbot_test_bot"}


async def test_bot_api_calls_go_through_at_most_the_configured_connections() -> None:
    """Twelve calls at once over three connections: three in flight at a time, on three
    connections, and every call answered."""
    in_flight = peak = connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal in_flight, peak, connections
        connections += 1
        while head := await reader.readuntil(b"\r\n\r\n") if not reader.at_eof() else b"":
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length")), 0)
            await reader.readexactly(length)
            in_flight += 1
            peak = max(peak, in_flight)
            await asyncio.sleep(0.05)
            in_flight -= 1
            body = json.dumps({"ok": True, "result": ME}).encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    bot = Bot("1:T", base_url=f"http://127.0.0.1:{port}/bot", request=ConnectionsRequest(3))
    try:
        async with bot:
            users = await asyncio.gather(*(bot.get_me() for _ in range(12)))
        assert all(u.is_bot for u in users)
        assert peak == 3 and connections == 3
    finally:
        server.close()


async def test_a_reader_cancelled_mid_commit_does_not_take_others_writes_with_it(database_url: str) -> None:
    """Delivery stopping while its read commits the queue (a SIGTERM under load): the sent
    marks and done marks others queued are committed all the same, at whatever point the
    cancel lands, and the connection is left ready for the next transaction."""
    store = await Store.open(database_url)  # on SQLite and on PostgreSQL (issue 17)
    try:
        for point in range(16):
            update = 100 + point
            async with store.transaction() as tx:
                await tx.inbox_add([(update, "{}")])
            store.queue_report(QueuedReport(None, _row(f"第{point}件"), 7))
            async with store.read() as tx:
                (item,) = await tx.outbox_due(2000.0)
            # Someone holds the store; the reader waits for it; then the marks are queued,
            # so the reader, not the committer behind it, is the one that writes them.
            release = asyncio.Event()

            async def holder(release: asyncio.Event = release) -> None:
                async with store.read():
                    await release.wait()

            async def reader() -> None:
                async with store.read():
                    pass

            held = asyncio.create_task(holder())
            await asyncio.sleep(0)
            task = asyncio.create_task(reader())
            await asyncio.sleep(0)
            store.queue_sent(Sent(item.id, 2000.0, 55))
            store.queue_done(update)
            release.set()
            await held
            for _ in range(point):
                await asyncio.sleep(0.0002)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            async with store.transaction() as tx:  # BEGIN works: nothing was left open
                assert await tx.outbox_due(2000.0) == [], f"cancelled at step {point}"
                assert await tx.inbox_is_done(update), f"cancelled at step {point}"
    finally:
        await store.close()


async def test_a_report_the_database_refuses_gets_an_apology_and_waits_in_the_inbox(make_bot: Any) -> None:
    async with make_bot() as bot:
        await add_trigger(bot.config.database, "refuse", "BEFORE INSERT", "matters", fail="disk says no")
        bot.say(U1_CHAT, RESIDENT, "/report 楼道灯坏了")
        await bot.wait_bot(U1_CHAT, "抱歉，处理时出了点问题")
        await bot.settle()
        assert await rows(bot.config.database, "SELECT count(*) FROM matters") == [(0,)]
        assert await rows(bot.config.database, "SELECT count(*) FROM inbox WHERE done_at IS NULL") == [(1,)]


async def test_an_sqlite_without_returning_is_refused_at_start(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(sqlite3, "sqlite_version_info", (3, 31, 1))
    try:
        await Store.open(tmp_path / "t.sqlite3")
    except RuntimeError as exc:
        assert "SQLite 3.35 or newer" in str(exc)
    else:
        raise AssertionError("an SQLite without RETURNING was accepted")
