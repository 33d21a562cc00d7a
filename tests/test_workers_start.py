"""Several workers on one PostgreSQL (issue 18): what a worker does as it starts, once per
worker, and what is done once per deployment, by the sender as it takes the lease.

- Retry times: a sender that starts tries at once what waited for a retry (as one process
  does at a restart); a worker starting beside a running sender must not reset the retry
  times that sender set.
- Command menus: set by the sender, not by every worker (each set is a call on the token's
  limits); a new sender finishes what a dead one left, the meta table saying what was set.
- Replay at start: none in webhook mode on PostgreSQL (Telegram posts again what was never
  answered; a replay could take an update another worker has in hand)."""

from __future__ import annotations

import asyncio
import json

import pytest

from bot import outbox
from bot.app import build_application, running
from bot.clock import ManualClock
from bot.config import parse_config
from bot.dev.fakeapi import FakeBotApi
from tests.conftest import RESIDENT, START, TOKEN, U1_CHAT, town
from tests.postgres import rows
from tests.test_workers import LEASE, die, numbered, numbers_sent, sender, worker


async def test_a_worker_starting_beside_the_sender_leaves_its_retry_times_and_a_new_sender_retries_at_once(
    api: FakeBotApi, postgres_url: str
) -> None:
    async with worker(api, postgres_url) as a:
        await sender(a)
        api.fail("sendMessage", chat_id=U1_CHAT, status=502)  # Telegram's trouble: the sender retries later
        async with a.svc.store.transaction() as tx:
            await outbox.put(tx, *numbered(1), now=a.clock.now())
        waiting = "SELECT not_before FROM outbox WHERE key LIKE 'reply:7%' AND attempts = 1"
        retry_at: list[tuple] = []
        for _ in range(50):
            if retry_at := await rows(postgres_url, waiting):
                break
            await asyncio.sleep(0.1)
        assert retry_at and retry_at[0][0] > a.clock.now()  # the manual clock never reaches it
        async with worker(api, postgres_url) as b:
            await asyncio.sleep(LEASE / 2)  # b started and tried for the lease
            assert not b.svc.delivery.may_send()
            assert await rows(postgres_url, waiting) == retry_at  # untouched by b's start
            await a.settle()
            assert not numbers_sent(api)
            await die(a)
            await sender(b)  # the new sender tries at once what the dead one waited to retry
            await api.wait_for(lambda: numbers_sent(api), 5)
            await b.settle()
    assert numbers_sent(api) == {700000: 1}


async def test_menus_are_set_by_the_sender_only_and_a_new_sender_sets_what_is_left(
    api: FakeBotApi, postgres_url: str
) -> None:
    async with worker(api, postgres_url) as a:
        await sender(a)
        await a.app.bot_data["menus"].wait()
        set_by_a = len(api.calls_to("setMyCommands"))
        assert set_by_a > 0
        # Forgotten, as after an upgrade that changed every menu: whoever starts would set them all.
        async with a.svc.store.transaction() as tx:
            await tx.delete_meta("menu:")
        async with worker(api, postgres_url) as b:
            await asyncio.sleep(LEASE / 2)  # b has started, and set no menu: it does not hold the lease
            assert not b.svc.delivery.may_send()
            assert len(api.calls_to("setMyCommands")) == set_by_a  # b is not the sender: it sets none
            await die(a)
            await sender(b)
            await api.wait_for(lambda: len(api.calls_to("setMyCommands")) == 2 * set_by_a, 10)
            await b.app.bot_data["menus"].wait()
        assert len(api.calls_to("setMyCommands")) == 2 * set_by_a  # each once more, by b alone


async def test_a_webhook_worker_starting_replays_nothing_another_worker_may_have_in_hand(
    api: FakeBotApi, postgres_url: str
) -> None:
    """On one process a replay at start takes up what a crash left unanswered; among webhook
    workers on PostgreSQL an update not done may be in another worker's hands, and Telegram
    posts again whatever was never answered: a worker starting replays nothing."""
    pytest.importorskip("bot.telegram.webhook", reason="webhook mode (issue 18) is not built in this tree yet")
    async with worker(api, postgres_url) as a:
        await sender(a)
        message = api.send_text(U1_CHAT, api.user(RESIDENT, "居民"), "/report 楼道堆物")
        update = {"update_id": 880001, "message": message}
        async with a.svc.store.transaction() as tx:  # taken in by a, its handling under way
            await tx.inbox_add([(880001, json.dumps(update, ensure_ascii=False))], a.clock.now())
        raw = town(delivery={"lease": f"{LEASE}s"}, telegram={"mode": "webhook", "poll_timeout": 1})
        raw["database"] = postgres_url
        raw["telegram"].update(base_url=api.base_url, base_file_url=api.base_file_url)
        app = build_application(parse_config(raw), TOKEN, clock=ManualClock(START))
        async with running(app, webhook_secret="s3cret"):
            await asyncio.sleep(LEASE / 2)
            await a.settle()
            assert await rows(postgres_url, "SELECT count(*) FROM matters") == [(0,)]
            assert not [m for m in api.bot_messages(U1_CHAT) if (m.text or "").startswith("📋")]
            assert await rows(postgres_url, "SELECT count(*) FROM inbox WHERE done_at IS NULL") == [(1,)]
