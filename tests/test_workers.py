"""Several workers on one PostgreSQL (issue 18): one sender per token, holding a lease that
another takes over when it dies; marks fenced on the lease; flood waits kept for the next
sender; LISTEN/NOTIFY wakes the sender and keeps the in-memory copies shared.

Each test runs real Applications (bot/app.py) on one PostgreSQL schema against one fake Bot
API; updates go to one of them (the others take none), as a webhook's would."""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest

from bot import outbox
from bot.app import build_application, running
from bot.clock import ManualClock
from bot.config import parse_config
from bot.dev.fakeapi import FakeBotApi
from bot.store import SENT_BATCH, LeaseLost, Sent, Store
from bot.store.workers import Workers, channel
from tests.conftest import STAFF, START, TOKEN, U1_CHAT, U2_CHAT, U3_CHAT, Running, add_chats, town
from tests.postgres import rows

LEASE = 2.0  # seconds: a test's lease, short (the default is 15 s)
SLACK = 0.6  # for a loaded test machine


@asynccontextmanager
async def worker(api: FakeBotApi, url: str, polling: bool = False, per_second: float = 1000) -> AsyncIterator[Running]:
    """One worker: the real Application on the shared schema; ``polling``: it takes the updates."""
    raw = town(delivery={"lease": f"{LEASE}s"},
               telegram={"poll_timeout": 1, "rate_limit": {"group_per_minute": 6000, "overall_per_second": per_second}})
    raw["database"] = url
    raw["telegram"].update(base_url=api.base_url, base_file_url=api.base_file_url)
    config = parse_config(raw)
    add_chats(api, raw)
    clock = ManualClock(START)
    app = build_application(config, TOKEN, clock=clock)
    async with running(app, polling=polling):
        yield Running(app, api, clock, config)


async def die(bot: Running) -> None:
    """As the worker's process dying would: nothing more is sent or renewed, and its lease is
    not given up (the database sees its connection drop)."""
    bot.app.bot_data["workers"].kill()
    await bot.svc.delivery.stop()


async def sender(bot: Running) -> None:
    await bot.api.wait_for(bot.svc.delivery.may_send, LEASE + 5)


def numbered(n: int, chats: tuple[int, ...] = (U1_CHAT, U2_CHAT, U3_CHAT), first: int = 700000) -> list[outbox.Notice]:
    """``n`` messages, each saying its own number."""
    return [outbox.Reply(first + i, chats[i % len(chats)], outbox.said(outbox.say("chatid", chat_id=first + i)))
            for i in range(n)]


def numbers_sent(api: FakeBotApi) -> Counter[int]:
    """How often each numbered message went out (Telegram took it)."""
    found = (re.search(r"\b7\d{5}\b", str(c.params.get("text", ""))) for c in api.calls_to("sendMessage")
             if c.status == 200)
    return Counter(int(m.group(0)) for m in found if m)


async def test_one_worker_sends_and_another_takes_over_within_the_lease(api: FakeBotApi, postgres_url: str) -> None:
    n = 60
    async with worker(api, postgres_url, per_second=20) as a:
        await sender(a)
        async with worker(api, postgres_url, per_second=20) as b:
            await asyncio.sleep(LEASE)  # b tries for the lease every third of it meanwhile
            assert a.svc.delivery.may_send() and not b.svc.delivery.may_send()
            async with b.svc.store.transaction() as tx:  # queued by the worker that does not send
                await outbox.put(tx, *numbered(n), now=b.clock.now())
            await api.wait_for(lambda: sum(numbers_sent(api).values()) >= 15, 10)
            assert b.svc.delivery.started_items == 0  # only the holder sends
            killed = time.monotonic()
            await die(a)
            await sender(b)
            assert time.monotonic() - killed <= LEASE + SLACK
            await api.wait_for(lambda: len(numbers_sent(api)) == n, 15)
            assert b.svc.delivery.started_items > 0
            await b.settle()
    sent = numbers_sent(api)
    assert set(sent) == set(range(700000, 700000 + n))
    # Repeated at most: the sends in flight at the kill, and those waiting for the group commit.
    assert sum(sent.values()) - n <= a.config.telegram.connections + SENT_BATCH
    states = await rows(postgres_url, "SELECT state, count(*) FROM outbox WHERE key LIKE 'reply:7%' GROUP BY state")
    assert states == [("sent", n)]


async def test_a_former_holder_can_neither_send_nor_mark_sent(postgres_url: str) -> None:
    first, second = await Store.open(postgres_url), await Store.open(postgres_url)
    one, two = await Workers.connect(postgres_url, LEASE), await Workers.connect(postgres_url, LEASE)
    try:
        assert await one.hold() and not await two.hold()
        first.fence, first.may_send = one.fence(), one.held
        async with first.transaction() as tx:
            await outbox.put(tx, *numbered(2), now=START)
        ids = [i for (i,) in await rows(postgres_url, "SELECT id FROM outbox ORDER BY id")]
        await asyncio.sleep(one.ttl + 0.1)  # the holder hangs: renews nothing
        assert await two.hold() and two.generation == (one.generation or 0) + 1
        assert not await one.hold()  # taken: not given back to the former holder
        # What it sent meanwhile is not marked by it: the group commit leaves it pending ...
        first.queue_sent(Sent(ids[0], START, 1))
        async with first.read():
            pass
        # ... and so does a transaction of its own.
        with pytest.raises(LeaseLost):
            async with first.transaction() as tx:
                await tx.outbox_sent([Sent(ids[1], START, 2)])
        with pytest.raises(LeaseLost):  # nor give an item up (the new sender may have sent it)
            async with first.transaction() as tx:
                await tx.outbox_failed(ids[1], "400")
        assert await rows(postgres_url, "SELECT state FROM outbox ORDER BY id") == [("pending",), ("pending",)]
        with pytest.raises(LeaseLost):  # and it sends nothing more
            await first.send_slot().take()
        second.fence = two.fence()
        second.queue_sent(Sent(ids[0], START, 1))
        async with second.transaction() as tx:
            await tx.outbox_sent([Sent(ids[1], START, 2)])
        assert await rows(postgres_url, "SELECT state FROM outbox ORDER BY id") == [("sent",), ("sent",)]
    finally:
        for workers in (one, two):
            await workers.close()
        for store in (first, second):
            await store.close()


async def test_a_bot_alone_on_its_database_takes_a_killed_predecessors_lease_at_once(postgres_url: str) -> None:
    """Polling on PostgreSQL: the process holding the single-instance guard is the only
    sender, so a lease left by a killed predecessor is not waited out (a restarted bot's
    messages would wait the whole lease, 15 s by default); the generation still moves, so
    nothing of the dead one's could be marked."""
    await (await Store.open(postgres_url)).close()  # the schema, migrated
    dead = await Workers.connect(postgres_url, 60.0)
    assert await dead.hold()
    generation = dead.generation or 0
    dead.kill()  # as SIGKILL would: the lease row stays, unexpired for a minute
    other = await Workers.connect(postgres_url, 60.0)
    alone = await Workers.connect(postgres_url, 60.0, sole=True)
    try:
        assert not await other.hold()  # a worker beside others waits out the lease ...
        assert await alone.hold() and alone.generation == generation + 1  # ... the bot alone takes it at once
    finally:
        for workers in (other, alone):
            await workers.close()


async def test_a_flood_wait_set_by_one_sender_is_honoured_by_the_next(api: FakeBotApi, postgres_url: str) -> None:
    wait = 4
    async with worker(api, postgres_url) as a:
        await sender(a)
        async with worker(api, postgres_url) as b:
            api.fail("sendMessage", chat_id=U1_CHAT, retry_after=wait)
            async with a.svc.store.transaction() as tx:
                await outbox.put(tx, *numbered(1, (U1_CHAT,)), now=a.clock.now())
            flooded = await api.wait_for(
                lambda: next((c for c in api.calls_to("sendMessage") if c.status == 429), None), 5)
            for _ in range(50):  # kept in the database, for whoever sends next
                if await rows(postgres_url, "SELECT chat_id FROM flood_waits"):
                    break
                await asyncio.sleep(0.05)
            assert await rows(postgres_url, "SELECT chat_id FROM flood_waits") == [(U1_CHAT,)]
            await die(a)  # while it waits out the flood wait
            await sender(b)
            assert time.monotonic() < flooded.at + wait - 0.5  # b took over well before the wait ended
            await api.wait_for(lambda: numbers_sent(api), wait + 3)
            went = next(c for c in api.calls_to("sendMessage") if c.status == 200)
            assert went.at >= flooded.at + wait - 0.05
            assert b.svc.delivery.started_items == 1


async def test_a_card_queued_by_a_worker_that_does_not_send_goes_out_within_2s(
    api: FakeBotApi, postgres_url: str
) -> None:
    async with worker(api, postgres_url) as a:
        await sender(a)
        async with worker(api, postgres_url, polling=True) as b:  # b takes the updates; a sends
            for number in (1, 2, 3):
                asked = time.monotonic()
                b.say(U1_CHAT, 900 + number, f"/report 楼道堆放杂物 {number}")
                card = await b.wait_bot(U1_CHAT, f"事项 #{number}", within=5)
                went = next(c for c in api.calls_to("sendMessage") if f"事项 #{number}" in str(c.params.get("text")))
                assert went.at - asked <= 2.0, card
            assert b.svc.delivery.started_items == 0 and a.svc.delivery.started_items >= 3


async def test_a_commit_that_queues_or_changes_a_copy_notifies_in_its_own_transaction(postgres_url: str) -> None:
    store = await Store.open(postgres_url)
    listener = await asyncpg.connect(postgres_url)
    heard: asyncio.Queue[str] = asyncio.Queue()
    try:
        await listener.add_listener(channel(await listener.fetchval("SELECT current_schema()")),
                                    lambda *args: heard.put_nowait(args[-1]))
        with pytest.raises(RuntimeError):
            async with store.transaction() as tx:
                await outbox.put(tx, *numbered(1), now=START)
                raise RuntimeError("rolled back")
        async with store.transaction() as tx:
            await tx.set_meta("nothing", "queued")
        async with store.transaction() as tx:
            await outbox.put(tx, *numbered(1), now=START)
        async with store.transaction() as tx:
            await tx.bind_chat(-401, "u4", STAFF, START)
            await tx.set_chat_language(U1_CHAT, "en")
        said = [await asyncio.wait_for(heard.get(), 2) for _ in range(3)]
        assert said == ["queued", "bindings", "languages"]  # nothing from the rollback or the meta
        assert heard.empty()
    finally:
        await listener.close()
        await store.close()


async def test_a_change_in_one_worker_reaches_the_others_within_a_second(api: FakeBotApi, postgres_url: str) -> None:
    new_chat = -401
    api.add_chat(new_chat, "商铺街群")
    async with worker(api, postgres_url) as a, worker(api, postgres_url, polling=True) as b:
        # /bind: the tree's chat map.
        api.send_text(new_chat, api.user(STAFF, "陈所长", username="Chen_Z"), "/bind u4")
        await api.wait_for(lambda: b.svc.tree.node_for_chat(new_chat) is not None, 5)
        seen = time.monotonic()
        await api.wait_for(lambda: a.svc.tree.node_for_chat(new_chat) is not None, 1.0)
        assert a.svc.tree.chat_of("u4") == new_chat and time.monotonic() - seen <= 1.0
        # /lang: a chat's language.
        b.say(U1_CHAT, STAFF, "/lang en")
        await api.wait_for(lambda: b.svc.langs.chat_language(U1_CHAT) == "en", 5)
        await api.wait_for(lambda: a.svc.langs.chat_language(U1_CHAT) == "en", 1.0)
        # A station staff member's @name, for "/duty @name": in memory only, told all the same.
        assert b.svc.usernames.get("chen_z") == STAFF
        await api.wait_for(lambda: a.svc.usernames.get("chen_z") == STAFF, 1.0)


def test_the_lease_is_configured_and_validated() -> None:
    assert parse_config(town()).delivery.lease == 15.0
    assert parse_config(town(delivery={"lease": "30s"})).delivery.lease == 30.0
    from tests.test_config import errors_of

    for bad in ("0s", "500ms", "1h"):
        assert "delivery.lease" in errors_of(town(delivery={"lease": bad}))


async def test_a_worker_whose_side_connection_drops_hears_again_and_reloads_what_it_missed(
    api: FakeBotApi, postgres_url: str
) -> None:
    new_chat = -401
    api.add_chat(new_chat, "商铺街群")
    async with worker(api, postgres_url) as a, worker(api, postgres_url, polling=True) as b:
        side: Workers = a.app.bot_data["workers"]
        pid = side.server_pid
        admin = await asyncpg.connect(postgres_url)
        try:  # the server drops it (a restart, a network cut): what is said meanwhile is not heard
            await admin.execute("SELECT pg_terminate_backend($1)", pid)
        finally:
            await admin.close()
        api.send_text(new_chat, api.user(STAFF, "陈所长"), "/bind u4")
        await api.wait_for(lambda: b.svc.tree.node_for_chat(new_chat) is not None, 5)
        # Made again at its next renewal (a third of the lease), and the copies reloaded then.
        await api.wait_for(lambda: a.svc.tree.node_for_chat(new_chat) is not None, LEASE)
        assert side.server_pid not in (None, pid)


async def test_marking_sent_under_the_lease_costs_no_trip_more(postgres_url: str) -> None:
    """The fence rides in the marking UPDATE (bot/store/queries.py's ``outbox_sent``): a group
    commit of sent marks sends as many statements as without it (issue 17: the trips per sent
    message must not grow)."""
    store = await Store.open(postgres_url)
    lease = await Workers.connect(postgres_url, LEASE)
    statements = 0

    def count(record: object = None) -> None:
        nonlocal statements
        statements += 1

    store._conn.raw.add_query_logger(count)  # type: ignore[union-attr]
    try:
        async with store.transaction() as tx:
            await outbox.put(tx, *numbered(12), now=START)
        ids = [i for (i,) in await rows(postgres_url, "SELECT id FROM outbox ORDER BY id")]

        async def mark(batch: list[int]) -> int:
            before = statements
            for item in batch:
                store.queue_sent(Sent(item, START, item))
            async with store.read():  # waits for the group commit
                pass
            return statements - before

        plain = [await mark(ids[0:3]), await mark(ids[3:6])]
        assert await lease.hold()
        store.fence = lease.fence()
        fenced = [await mark(ids[6:9]), await mark(ids[9:12])]
        assert fenced[1] == plain[1]
        assert await rows(postgres_url, "SELECT count(*) FROM outbox WHERE state = 'sent'") == [(12,)]
    finally:
        await lease.close()
        await store.close()
