"""Trips to the database must not grow with the second engine (issue 17): a trip to
PostgreSQL costs about twice one to aiosqlite's thread, so the calls reaching the connection
per report logged (group commit), per sweep batch and per sent message (group commit of sent
marks) are the same on both engines, and no more than SQLite's before the SQL was respelled
(measured on main's code, a4f440a: the figures below, on both engines)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from bot.store import QueuedReport, Sent, Store
from escalation.sweep import sweep
from tests.conftest import RESIDENT, START, U1_CHAT, U2_CHAT

H = 3600.0
# SQLite's figures before the flip (main at a4f440a), the most these may cost.
REPORTS = [5, 5, 5, 5]  # batches of 1, 30, 1, 30 reports: BEGIN, matters, events, outbox, COMMIT
SWEEP = [12, 12]  # a sweep with 1 matter due, then one with 3 (its first transaction, releasing held pings, included)
# 1 and 16 plain messages (BEGIN, outbox, COMMIT); 2 and 16 of cards and pings that become views
# (BEGIN, outbox, matters, views, view_matters, COMMIT).
SENT = [3, 3, 6, 6]


def counting(store: Store, only_this_task: bool = False) -> Callable[[], int]:
    """Counts the calls reaching the store's connection (aiosqlite's or bot/store/postgres.py's:
    each one trip); ``only_this_task``: leave out other tasks' (the delivery worker's)."""
    conn: Any = store._conn
    task = asyncio.current_task()
    calls = 0

    def wrap(call: Any) -> Any:
        def counted(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            if not only_this_task or asyncio.current_task() is task:
                calls += 1
            return call(*args, **kwargs)
        return counted

    for name in ("execute", "execute_fetchall", "executemany"):
        setattr(conn, name, wrap(getattr(conn, name)))
    return lambda: calls


def report(i: int, at: float = 1000.0) -> QueuedReport:
    return QueuedReport(None, {
        "unit_id": "u1", "chat_id": U1_CHAT, "report_message_id": 100 + i, "reporter_id": RESIDENT,
        "reporter_name": "居民", "text": f"第{i}件", "state": "open", "tier": 3, "top_tier": 3, "tier_since": at,
        "rules": "{}", "created_at": at, "limit_key": RESIDENT, "next_due": at + 10,
    }, 100 + i)


async def test_a_group_commit_of_reports_costs_the_same_few_trips_on_both(database_url: str) -> None:
    store = await Store.open(database_url)
    calls = counting(store)
    found = []
    try:
        for size in (1, 30, 1, 30):
            before = calls()
            for i in range(size):
                store.queue_report(report(i))
            async with store.read():  # waits for the group commit
                found.append(calls() - before)
    finally:
        await store.close()
    assert found == REPORTS


async def test_a_group_commit_of_sent_marks_costs_the_same_few_trips_on_both(database_url: str) -> None:
    store = await Store.open(database_url)
    try:
        async with store.transaction() as tx:
            ids = await tx.insert_reports([report(i) for i in range(40)])  # 40 cards queued
            await tx.outbox_insert([(f"m{i}", U1_CHAT, "message", None, "hi", None, None, None, None, 1.0, 1.0)
                                    for i in range(20)])
            await tx.outbox_insert([(f"p{i}", U1_CHAT, "ping", None, None, None, None, None,
                                     json.dumps({"matters": [ids[i][0]]}), 1.0, 1.0) for i in range(20)])
        async with store.read() as tx:
            due = await tx.outbox_due(2e9, limit=100)
        cards = [item.id for item in due if item.kind == "card"]
        messages = [item.id for item in due if item.kind == "message"]
        pings = [item.id for item in due if item.kind == "ping"]
        calls = counting(store)
        found = []
        for sent in ([Sent(messages[0], 5.0, 1)], [Sent(i, 5.0, 1) for i in messages[1:17]],
                     [Sent(cards[0], 5.0, 1, card=(1, U1_CHAT, 1)), Sent(pings[0], 5.0, 2, view=True)],
                     [Sent(cards[n], 5.0, 1, card=(1 + n, U1_CHAT, n)) for n in range(1, 9)]
                     + [Sent(pings[n], 5.0, 100 + n, view=True) for n in range(1, 9)]):
            before = calls()
            for one in sent:
                store.queue_sent(one)
            async with store.read():
                found.append(calls() - before)
        async with store.read() as tx:
            assert len(await tx.views([f"p{n}" for n in range(9)])) == 9  # the pings became views
    finally:
        await store.close()
    assert found == SENT


async def test_a_sweep_batch_costs_the_same_few_trips_on_both(make_bot: Any, database_url: str) -> None:
    async with make_bot(database=database_url) as bot:
        bot.say(U1_CHAT, RESIDENT, "/report 甲")
        await bot.wait_bot(U1_CHAT, "事项 #1")
        await bot.settle()
        store, notifier = bot.svc.store, bot.svc.notifier
        calls = counting(store, only_this_task=True)
        before = calls()
        assert await sweep(store, notifier, START + 1.5 * H) == 1  # #1 goes up to its community
        found = [calls() - before]
        for n, chat in ((2, U1_CHAT), (3, U2_CHAT), (4, U2_CHAT)):
            bot.say(chat, RESIDENT, f"/report 第{n}件")
            await bot.wait_bot(chat, f"事项 #{n}")
        await bot.settle()
        before = calls()
        assert await sweep(store, notifier, START + 2 * H) == 3  # #2-#4; #1 waits at its community
        found.append(calls() - before)
    assert found == SWEEP
