"""The hourly report limit across processes (issue 10: limits "count from the database, so
several processes do not multiply them"). Each process keeps its own memory of the last
hour; the group commit decides, in the write transaction, from what every process wrote.

A second process is a second Store on the same SQLite file, driven through a Matters of
its own (``tierbot run`` takes a lock per database, so two real bots cannot share one;
what can is anything else writing through Store, or a second bot started by mistake
elsewhere). The first process is the real Application behind the fake Bot API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from bot.limits import HOUR, over_limit
from bot.matters import Actor, Matters
from bot.store import QueuedReport, Store
from tests.conftest import RESIDENT, START, U1_CHAT, Running, parse_town, town
from tests.postgres import rows
from tests.test_limits import private_report

HELD = "一小时内反映的事项已达"


@asynccontextmanager
async def second_process(bot: Running) -> AsyncIterator[Matters]:
    """Another process on the bot's database: its own connection, group commit and memory
    of the last hour (loaded now, as at its start)."""
    store = await Store.open(bot.config.database, now=bot.clock.now)
    svc = bot.svc
    matters = Matters(store, svc.tree, svc.langs, bot.clock, bot.config, svc.notifier)
    await matters.load_limits()
    try:
        yield matters
    finally:
        await store.close()


async def report_there(bot: Running, other: Matters, text: str) -> dict[str, Any]:
    """A report the other process receives: a message in the unit group that only it sees."""
    api = bot.api
    msg = api._store(api._chats[U1_CHAT], bot.user(RESIDENT), text=f"/report {text}")
    await other.report(bot.svc.tree.nodes["u1"], U1_CHAT, Actor(RESIDENT, f"用户{RESIDENT}"), text,
                       msg.raw["message_id"], limit_key=RESIDENT)
    return msg.raw


async def flush(other: Matters) -> None:
    async with other.store.read():  # reading waits for the group commit
        pass


async def counts(bot: Running) -> tuple[list[str], int]:
    texts = [r[0] for r in await rows(bot.config.database, "SELECT text FROM matters ORDER BY id")]
    [(held,)] = await rows(bot.config.database, "SELECT count(*) FROM held_reports WHERE matter_id IS NULL")
    return texts, held


async def answered(bot: Running, sent: list[dict[str, Any]]) -> dict[int, str]:
    """Each message's answer (its card or the held answer), once all have one."""
    ids = {s["message_id"] for s in sent}

    def all_answered() -> dict[int, str] | None:
        got = {m.reply_to: m.text for m in bot.api.bot_messages(U1_CHAT) if m.reply_to in ids}
        return got if len(got) == len(ids) else None

    return await bot.api.wait_for(all_answered, 10.0)


async def test_a_second_process_below_its_own_count_is_stopped_by_the_database(make_bot: Any) -> None:
    """Each process alone sees the person below the limit; together they are over it."""
    async with make_bot(town(limits={"reports_per_hour": 3})) as bot, second_process(bot) as other:
        here = [bot.say(U1_CHAT, RESIDENT, f"/report 本处第{i}件") for i in (1, 2)]
        await answered(bot, here)
        there = [await report_there(bot, other, f"别处第{i}件") for i in (1, 2)]
        await flush(other)
        answers = await answered(bot, there)  # the bot's delivery posts what the other process queued
        assert "📋" in answers[there[0]["message_id"]]
        held = answers[there[1]["message_id"]]
        assert "已达 3 件上限" in held and "11-24 11:00 后可以再反映" in held and "📋" not in held
        assert await counts(bot) == (["本处第1件", "本处第2件", "别处第1件"], 1)


async def test_two_processes_reporting_at_once_never_exceed_the_limit(make_bot: Any) -> None:
    limit = 4
    async with make_bot(town(limits={"reports_per_hour": limit})) as bot, second_process(bot) as other:
        async def there() -> list[dict[str, Any]]:
            sent = []
            for i in range(6):
                sent.append(await report_there(bot, other, f"别处第{i}件"))
                await asyncio.sleep(0.01)  # several group commits, interleaved with the bot's
            await flush(other)
            return sent

        here = []
        for i in range(6):
            here.append(bot.say(U1_CHAT, RESIDENT, f"/report 本处第{i}件"))
        there_sent = await there()
        answers = await answered(bot, here + there_sent)
        texts, held = await counts(bot)
        assert len(texts) == limit and held == 12 - limit
        assert sum("📋" in a for a in answers.values()) == limit
        assert sum(HELD in a and "📋" not in a for a in answers.values()) == 12 - limit


async def test_a_private_report_is_held_by_the_same_count(make_bot: Any) -> None:
    async with make_bot(town(limits={"reports_per_hour": 2})) as bot, second_process(bot) as other:
        await report_there(bot, other, "别处第1件")
        await report_there(bot, other, "别处第2件")  # queued, not yet committed: counted all the same
        await private_report(bot, RESIDENT, "私下反映：楼上漏水")
        answer = bot.api.bot_messages(RESIDENT)[-1].text
        assert "已达 2 件上限" in answer
        assert await counts(bot) == (["别处第1件", "别处第2件"], 1)


async def test_two_stores_committing_at_once_admit_exactly_the_limit(database_url: str) -> None:
    """The group commit alone: two connections, each with batches of one person's reports
    (on PostgreSQL too: its write transactions take the writers' lock, bot/store/dialect.py)."""
    rules = parse_town().rules_for("other").to_json()
    path = database_url
    one, two = await Store.open(path), await Store.open(path)
    try:
        def queue(store: Store, i: int) -> None:
            row = {"unit_id": "u1", "chat_id": U1_CHAT, "report_message_id": i, "reporter_id": RESIDENT,
                   "reporter_name": "居民", "text": f"第{i}件", "state": "open", "tier": 3, "top_tier": 3,
                   "tier_since": START + i, "rules": rules, "created_at": START + i, "limit_key": RESIDENT}
            store.queue_report(QueuedReport(None, row, i, per_hour=5))

        for i in range(20):
            queue(one if i % 2 else two, i)
            if i % 3 == 0:
                await asyncio.sleep(0)  # let a commit start with what is queued so far
        for store in (one, two):
            async with store.read():
                pass
        assert await rows(path, "SELECT count(*) FROM matters") == [(5,)]
        assert await rows(path, "SELECT count(*), min(reason), max(reason) FROM held_reports") == [
            (15, "hourly", "hourly")]
        replies = await rows(path, "SELECT reply_to, data FROM outbox WHERE key LIKE 'held:%'")
        assert len(replies) == 15 and all("limits.held_hourly" in data for _, data in replies)
        cards = {r for (r,) in await rows(path, "SELECT reply_to FROM outbox WHERE kind = 'card'")}
        assert cards.isdisjoint(r for r, _ in replies) and len(cards) == 5
    finally:
        await one.close()
        await two.close()


async def test_private_reports_at_once_in_two_processes_never_exceed_the_limit(make_bot: Any) -> None:
    """Counting and writing are one transaction: two processes cannot both count 'one left'."""
    async with make_bot(town(limits={"reports_per_hour": 2})) as bot, second_process(bot) as other:
        bot.api.add_chat(RESIDENT, None, "private")
        unit, person = bot.svc.tree.nodes["u1"], Actor(RESIDENT, f"用户{RESIDENT}")
        await report_there(bot, other, "别处第1件")
        await flush(other)
        agains = await asyncio.gather(*(
            matters.report(unit, RESIDENT, person, f"私下第{i}件", None, private=True, limit_key=RESIDENT)
            for i, matters in enumerate([bot.svc.matters, other, bot.svc.matters, other])
        ))
        assert sum(again is not None for again in agains) == 3
        texts, held = await counts(bot)
        assert len(texts) == 2 and held == 3


def test_over_limit_counts_what_is_stored_and_each_report_of_the_batch() -> None:
    prior = {1: [0.0, 100.0], 2: [50.0]}
    batch = [(1, 200.0), (2, 210.0), (1, 300.0), (1, HOUR + 1.0), (2, 400.0)]
    # Key 1: two stored, the third fits, the fourth is held until the first leaves the
    # hour; at HOUR + 1 the first has left, but the held one still counts.
    assert over_limit(prior, batch, 3, HOUR) == [None, None, HOUR, HOUR + 100.0, None]
