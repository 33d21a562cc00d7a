"""Webhook mode (issue 18): the fake Bot API posting updates the way Telegram does, and the
real Application answering each post only once its effect is committed.

The fake's own behaviour is tested against a small receiver in the test (order per chat, one
in flight per chat, retries after a 500 and a dropped connection, ``max_connections``); the
bot's against the fake, on the test's database (SQLite, or PostgreSQL with
``TIERBOT_TEST_ENGINE=postgres``)."""

from __future__ import annotations

import asyncio
import copy
import json
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx
import pytest
from telegram import Bot

from bot.app import build_application, running
from bot.clock import ManualClock
from bot.config import is_postgres, parse_config
from bot.dev.fakeapi import FakeBotApi
from bot.store import LAST_SWEEP, MIGRATIONS, Store
from bot.store.dialect import postgres_query
from bot.store.postgres import migrate
from bot.store.store import statements
from tests.conftest import HEAD1, RESIDENT, START, TOKEN, TOWN, U1_CHAT, U2_CHAT, U3_CHAT, Running, add_chats
from tests.postgres import rows

SECRET = "s3cret_Token-for-tests"
PATH = "/telegram/hook-x7Kd"


# --- the fake's webhook mode --------------------------------------------------------------
class Receiver:
    """A webhook endpoint for the fake to post to: records each post, holds it ``hold``
    seconds, and answers what ``answer(update, attempt)`` says (None: drop the connection)."""

    def __init__(self, answer: Callable[[dict[str, Any], int], int | None] | None = None, hold: float = 0.0):
        self.answer = answer or (lambda update, attempt: 200)
        self.hold = hold
        self.got: list[tuple[int, str]] = []  # (update id, secret header) in the order they came
        self.attempts: Counter[int] = Counter()
        self.in_flight: Counter[str] = Counter()  # queue key -> posts in hand now
        self.max_per_key = 0
        self.max_total = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Receiver:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head.split("\r\n")[1:])}
        update = json.loads(await reader.readexactly(int(headers["content-length"])))
        key = FakeBotApi.queue_key(update)
        self.got.append((update["update_id"], headers.get("x-telegram-bot-api-secret-token", "")))
        self.attempts[update["update_id"]] += 1
        self.in_flight[key] += 1
        self.max_per_key = max(self.max_per_key, self.in_flight[key])
        self.max_total = max(self.max_total, sum(self.in_flight.values()))
        try:
            await asyncio.sleep(self.hold)
            status = self.answer(update, self.attempts[update["update_id"]])
        finally:
            self.in_flight[key] -= 1
        if status is not None:
            writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
        writer.close()


async def set_webhook(api: FakeBotApi, url: str, **kwargs: Any) -> None:
    async with Bot(TOKEN, base_url=api.base_url) as bot:
        await bot.set_webhook(url, **kwargs)


def chat_of(api: FakeBotApi, update_id: int) -> str:
    return next(p.key for p in api.webhook_posts if p.update_id == update_id)


async def test_fake_posts_each_chats_updates_in_order_one_at_a_time(api: FakeBotApi) -> None:
    chats = [-11, -12, -13]
    for chat in chats:
        api.add_chat(chat)
    sent: dict[int, list[int]] = {chat: [] for chat in chats}
    for i in range(5):
        for chat in chats:
            api.send_text(chat, api.user(900 + i, "居民"), f"第{i}条")
            sent[chat].append(api.pending_updates()[-1]["update_id"])
    async with Receiver(hold=0.05) as receiver:
        await set_webhook(api, receiver.url, secret_token=SECRET)
        await api.wait_for(lambda: len(receiver.got) == 15 and not api.pending_updates(), timeout=10)
    assert {secret for _, secret in receiver.got} == {SECRET}
    for chat in chats:
        order = [u for u, _ in receiver.got if u in sent[chat]]
        assert order == sent[chat], "each chat's updates in order"
    assert receiver.max_per_key == 1, "one update in flight per chat"
    assert receiver.max_total > 1, "chats are posted to side by side"


async def test_fake_posts_again_after_a_500_and_a_dropped_connection_keeping_the_chats_order(
    api: FakeBotApi,
) -> None:
    api.add_chat(-11)
    api.add_chat(-12)
    ids = []
    for i in range(3):
        api.send_text(-11, api.user(901, "居民"), f"第{i}条")
        ids.append(api.pending_updates()[-1]["update_id"])
    api.send_text(-12, api.user(902, "居民"), "别的群")
    other = api.pending_updates()[-1]["update_id"]
    first, second = ids[0], ids[1]

    def answer(update: dict[str, Any], attempt: int) -> int | None:
        if update["update_id"] == first and attempt == 1:
            return 500
        if update["update_id"] == second and attempt <= 2:
            return None  # dropped, twice
        return 200

    async with Receiver(answer) as receiver:
        await set_webhook(api, receiver.url)
        await api.wait_for(lambda: not api.pending_updates(), timeout=10)
    assert [u for u, _ in receiver.got if u in ids] == [first, first, second, second, second, ids[2]]
    assert receiver.attempts[other] == 1
    statuses = [(p.update_id, p.status) for p in api.webhook_posts if p.update_id in ids]
    assert statuses == [(first, 500), (first, 200), (second, 0), (second, 0), (second, 200), (ids[2], 200)]
    info = api._webhook_info({})
    assert info["pending_update_count"] == 0 and "last_error_message" in info


async def test_fake_keeps_to_max_connections(api: FakeBotApi) -> None:
    for chat in range(-20, -10):
        api.add_chat(chat)
        api.send_text(chat, api.user(900, "居民"), "hello")
    async with Receiver(hold=0.1) as receiver:
        await set_webhook(api, receiver.url, max_connections=3)
        await api.wait_for(lambda: not api.pending_updates(), timeout=10)
    assert receiver.max_total == 3
    assert receiver.max_per_key == 1


async def test_fake_refuses_get_updates_while_a_webhook_is_set(api: FakeBotApi) -> None:
    async with Receiver() as receiver, httpx.AsyncClient() as client:
        await set_webhook(api, receiver.url)
        answer = await client.post(f"{api.base_url}{TOKEN}/getUpdates", json={"timeout": 0})
        assert answer.status_code == 409 and "webhook is active" in answer.json()["description"]
        info = (await client.post(f"{api.base_url}{TOKEN}/getWebhookInfo")).json()["result"]
        assert info["url"] == receiver.url
        await client.post(f"{api.base_url}{TOKEN}/deleteWebhook")
        answer = await client.post(f"{api.base_url}{TOKEN}/getUpdates", json={"timeout": 0})
        assert answer.status_code == 200


# --- the bot in webhook mode ----------------------------------------------------------------
@pytest.fixture
def webhook_bot(bot_database: str, api: FakeBotApi) -> Callable[..., Any]:
    """``async with webhook_bot() as bot:`` the real Application in webhook mode, its
    webhook set on the fake."""

    @asynccontextmanager
    async def start(clock: ManualClock | None = None) -> AsyncIterator[Running]:
        raw = copy.deepcopy(TOWN)
        raw["database"] = bot_database
        raw["telegram"].update(base_url=api.base_url, base_file_url=api.base_file_url, mode="webhook",
                               webhook={"path": PATH, "max_connections": 10})
        config = parse_config(raw)
        add_chats(api, raw)
        app = build_application(config, TOKEN, clock=clock or ManualClock(START))
        async with running(app, webhook_secret=SECRET):
            port = app.bot_data["webhook"].port
            await app.bot.set_webhook(f"http://127.0.0.1:{port}{PATH}", secret_token=SECRET,
                                      allowed_updates=list(config.telegram.webhook.allowed_updates))
            yield Running(app, api, app.bot_data["clock"], config)

    return start


def hook_url(bot: Running) -> str:
    return f"http://127.0.0.1:{bot.app.bot_data['webhook'].port}{PATH}"


async def post(bot: Running, update: dict[str, Any], secret: str = SECRET) -> int:
    async with httpx.AsyncClient() as client:
        answer = await client.post(hook_url(bot), json=update, headers={"X-Telegram-Bot-Api-Secret-Token": secret})
        return answer.status_code


async def count(bot: Running, sql: str, *params: Any) -> int:
    await bot.svc.store.flush()
    return int((await rows(bot.config.database, sql, params))[0][0])


async def test_a_report_posted_by_webhook_gets_its_card_and_getupdates_is_never_called(
    webhook_bot: Any, api: FakeBotApi
) -> None:
    async with webhook_bot() as bot:
        sent = bot.say(U1_CHAT, RESIDENT, "/report 楼道堆放杂物")
        card = await bot.api.wait_for(
            lambda: next((m for m in bot.api.bot_messages(U1_CHAT) if m.reply_to == sent["message_id"]), None))
        assert "事项 #1" in (card.text or "")
        await api.wait_for(lambda: not api.pending_updates())
        assert [p.status for p in api.webhook_posts] == [200]
        # answered only once committed: the matter and "done" were in the database before the 200
        assert await count(bot, "SELECT count(*) FROM matters") == 1
        assert await count(bot, "SELECT count(*) FROM inbox WHERE done_at IS NOT NULL") == 1
    assert api.calls_to("getUpdates") == []


async def test_the_same_update_posted_twice_is_logged_once(webhook_bot: Any, api: FakeBotApi) -> None:
    async with webhook_bot() as bot:
        bot.say(U1_CHAT, RESIDENT, "/report 路灯坏了")
        update = copy.deepcopy(api.pending_updates()[0])
        await bot.wait_bot(U1_CHAT, "事项 #1")
        await api.wait_for(lambda: not api.pending_updates())
        # Telegram posts it again (its answer lost), and twice at once
        assert await post(bot, update) == 200
        assert await asyncio.gather(post(bot, update), post(bot, update)) == [200, 200]
        # a new one posted twice at once: handled once, both answered once it is committed
        bot.api.add_chat(U2_CHAT)
        new = copy.deepcopy(update)
        new["update_id"] += 1000
        new["message"]["message_id"] += 1000
        new["message"]["chat"] = {"id": U2_CHAT, "type": "supergroup", "title": "第二村民小组"}
        new["message"]["text"] = "/report 井盖丢了"
        assert await asyncio.gather(post(bot, new), post(bot, new)) == [200, 200]
        assert await count(bot, "SELECT count(*) FROM matters") == 2
        await bot.wait_bot(U2_CHAT, "事项 #2")
        await bot.settle()
        assert bot.count_bot(U1_CHAT, "事项 #1") == 1 and bot.count_bot(U2_CHAT, "事项 #2") == 1


async def test_a_post_with_a_wrong_secret_is_refused_and_changes_nothing(webhook_bot: Any, api: FakeBotApi) -> None:
    async with webhook_bot() as bot:
        api.add_chat(U3_CHAT)
        update = {"update_id": 777, "message": {
            "message_id": 5, "date": int(START), "chat": {"id": U3_CHAT, "type": "supergroup", "title": "3幢"},
            "from": api.user(RESIDENT, "居民"), "text": "/report 有人砸车",
            "entities": [{"type": "bot_command", "offset": 0, "length": 7}]}}
        assert await post(bot, update, secret="wrong") == 403
        assert api.calls_to("getUpdates") == []
        assert await post(bot, update, secret="") == 403
        async with httpx.AsyncClient() as client:  # no header at all
            assert (await client.post(hook_url(bot), json=update)).status_code == 403
        await asyncio.sleep(0.3)
        assert await count(bot, "SELECT count(*) FROM inbox") == 0
        assert await count(bot, "SELECT count(*) FROM matters") == 0
        assert bot.api.bot_messages(U3_CHAT) == []
        assert await post(bot, update) == 200  # the right secret: taken
        # answered once committed: seen at once from another connection, no flush awaited
        assert (await rows(bot.config.database, "SELECT count(*) FROM matters"))[0][0] == 1
        assert (await rows(bot.config.database, "SELECT count(*) FROM inbox WHERE done_at IS NOT NULL"))[0][0] == 1


async def test_a_button_press_by_webhook_claims_once(webhook_bot: Any, api: FakeBotApi) -> None:
    async with webhook_bot() as bot:
        bot.say(U1_CHAT, RESIDENT, "/report 楼道堆放杂物")
        card = await bot.wait_bot(U1_CHAT, "事项 #1")
        bot.api.press_button(U1_CHAT, bot.user(HEAD1, "蒋建国"), card.message_id, "v1:claim:1")
        update = copy.deepcopy(api.pending_updates()[-1])
        await api.wait_for(lambda: not api.pending_updates())
        assert await post(bot, update) == 200  # posted again
        assert await count(bot, "SELECT count(*) FROM events WHERE kind = 'claimed'") == 1


async def test_healthz_says_whether_the_database_answers_and_the_sweep_is_recent(webhook_bot: Any) -> None:
    async with webhook_bot() as bot:
        url = f"http://127.0.0.1:{bot.app.bot_data['webhook'].port}/healthz"

        async def swept() -> bool:
            async with bot.svc.store.read() as tx:
                return LAST_SWEEP in await tx.meta_values(LAST_SWEEP)

        async with httpx.AsyncClient() as client:
            for _ in range(50):
                if await swept():
                    break
                await asyncio.sleep(0.1)
            assert (await client.get(url)).status_code == 200
            for job in bot.app.job_queue.get_jobs_by_name("sweep"):  # the sweep stops
                job.enabled = False
            await asyncio.sleep(0.2)
            async with bot.svc.store.transaction() as tx:
                await tx.set_meta(LAST_SWEEP, repr(bot.clock.now() - 3600))
            assert (await client.get(url)).status_code == 503


# --- the inbox's key: the bot's id and the update's (issue 18) --------------------------------
KEYED = next(i for i, sql in enumerate(MIGRATIONS) if "CREATE TABLE inbox_keyed" in sql)  # its index: renumbering-proof


async def old_database(database: str) -> None:
    """A database as it was before the inbox was keyed by bot, with update 5 done and 6 not."""
    insert = ("INSERT INTO inbox (update_id, payload, received_at, done_at) VALUES "
              "(5, NULL, 1.0, 2.0), (6, '{\"update_id\": 6}', 1.0, NULL)")
    if is_postgres(database):
        conn = await asyncpg.connect(database)
        try:
            await migrate(conn, MIGRATIONS[:KEYED], known=KEYED)
            await conn.execute(postgres_query(insert))
        finally:
            await conn.close()
        return
    db = sqlite3.connect(database, isolation_level=None)
    try:
        for sql in MIGRATIONS[:KEYED]:
            for statement in statements(sql):
                db.execute(statement)
        db.execute(f"PRAGMA user_version = {KEYED}")
        db.execute(insert)
    finally:
        db.close()


async def test_the_inbox_is_keyed_by_the_bot_and_old_rows_are_adopted(database_url: str) -> None:
    await old_database(database_url)
    store = await Store.open(database_url)
    try:
        store.bot_id = 111
        async with store.transaction() as tx:
            assert await tx.inbox_adopt() == 2  # the rows from before are this bot's
            assert await tx.inbox_is_done(5)
            assert await tx.inbox_pending() == [(6, '{"update_id": 6}')]
        store.bot_id = 222  # another bot numbers its updates from anywhere: its 5 is another update
        async with store.transaction() as tx:
            assert not await tx.inbox_is_done(5)
            assert await tx.inbox_pending() == []
            assert await tx.inbox_add_new([(5, "{}"), (6, None)], 3.0) == {5, 6}
            assert await tx.inbox_add_new([(5, "{}"), (7, None)], 3.0) == {7}  # posted again: not new
            await tx.inbox_done([5], 4.0)
            assert await tx.inbox_is_done(5)
        store.bot_id = 111
        async with store.read() as tx:
            assert await tx.inbox_pending() == [(6, '{"update_id": 6}')]  # bot 222's "done 5" is not ours
            assert await tx.inbox_last_id() == 6
    finally:
        await store.close()



def test_webhook_settings_are_checked_with_their_key_paths() -> None:
    from tests.test_config import errors_of

    raw = copy.deepcopy(TOWN)
    raw["telegram"].update(mode="push", webhook={"port": 0, "path": "no-slash", "max_connections": 101,
                                                 "url": "ftp://x", "healthy_within": "soon"})
    said = errors_of(raw)
    for key in ("telegram.mode", "telegram.webhook.port", "telegram.webhook.path", "telegram.webhook.max_connections",
                "telegram.webhook.url", "telegram.webhook.healthy_within"):
        assert key in said, key
    assert parse_config(TOWN).telegram.mode == "polling"  # the default
