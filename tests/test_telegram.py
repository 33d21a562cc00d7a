"""Telegram's answers (issue 11): flood waits kept to their chat, groups that become
supergroups, and sends recorded fast enough that a crash repeats few."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from telegram.error import RetryAfter

from bot import outbox
from bot.store import Sent, Store
from bot.telegram.ratelimit import ChatRateLimiter
from tests.conftest import C1_CHAT, HEAD1, RESIDENT, STAFF, STATION_CHAT, U1_CHAT, U2_CHAT, town

H = 3600.0
REAL_LIMITS = {"overall_per_second": 30, "group_per_minute": 20, "max_retries": 3}


# --- a 429 waits out its own chat only ---------------------------------------------------
async def test_a_flood_wait_in_one_group_holds_up_no_other_chat(make_bot: Any) -> None:
    raw = town()
    raw["telegram"]["rate_limit"] = dict(REAL_LIMITS)
    async with make_bot(raw) as bot:
        bot.say(U2_CHAT, RESIDENT, "/report 路灯坏了")  # will climb to the station below
        await bot.wait_bot(U2_CHAT, "事项 #1")
        # Telegram answers every send to unit 1's group with a 45 s flood wait.
        bot.api.fail("sendMessage", chat_id=U1_CHAT, status=429, retry_after=45, times=100)
        bot.say(U1_CHAT, RESIDENT, "/report 楼道堆物")
        await bot.api.wait_for(lambda: any(c.status == 429 for c in bot.api.calls), timeout=5)

        started = time.monotonic()
        bot.say(U2_CHAT, RESIDENT, "/report 下水道堵了")
        await bot.wait_bot(U2_CHAT, "事项 #3", within=2)
        bot.clock.advance(1 * H + 1)  # #1 climbs to the community, then to the station
        await bot.wait_bot(C1_CHAT, "事项 #1 上报至社区", within=2)
        bot.clock.advance(2 * H + 1)
        await bot.wait_bot(STATION_CHAT, "事项 #1 上报至派出所", within=2)
        assert time.monotonic() - started < 2.0
        assert bot.count_bot(U1_CHAT, "事项 #2") == 0  # still waiting out its flood


def _flood_once(seconds: float) -> Any:
    """A Bot API call that answers 429 the first time, then succeeds."""
    calls: list[float] = []

    async def call() -> bool:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise RetryAfter(timedelta(seconds=seconds))
        return True

    return call, calls


async def _send(limiter: ChatRateLimiter, chat: int | None, call: Any) -> float:
    started = time.monotonic()
    data = {} if chat is None else {"chat_id": chat}
    await limiter.process_request(call, (), {}, "sendMessage", data, None)
    return time.monotonic() - started


async def _ok() -> bool:
    return True


async def test_the_limiter_pauses_only_the_flooded_chat() -> None:
    limiter = ChatRateLimiter(30, 20, max_retries=2)
    flood, calls = _flood_once(0.5)
    flooded = asyncio.create_task(_send(limiter, -1, flood))
    await asyncio.sleep(0.05)
    assert await _send(limiter, -2, _ok) < 0.1  # another group goes at once
    assert await _send(limiter, 7, _ok) < 0.1  # and a private chat
    assert await _send(limiter, None, _ok) < 0.1  # and a call with no chat
    assert 0.5 <= await flooded < 1.0 and len(calls) == 2  # retried after its wait


async def test_a_429_without_a_chat_or_from_three_chats_pauses_everything() -> None:
    limiter = ChatRateLimiter(30, 20, max_retries=1)
    flood, _ = _flood_once(0.4)
    waiting = asyncio.create_task(_send(limiter, None, flood))
    await asyncio.sleep(0.05)
    assert await _send(limiter, -2, _ok) >= 0.3
    await waiting

    limiter = ChatRateLimiter(30, 20, max_retries=1)
    floods = [asyncio.create_task(_send(limiter, chat, _flood_once(0.4)[0])) for chat in (-1, -2)]
    await asyncio.sleep(0.05)
    assert await _send(limiter, -4, _ok) < 0.1  # two chats flooded: the others still go
    floods.append(asyncio.create_task(_send(limiter, -3, _flood_once(0.4)[0])))
    await asyncio.sleep(0.05)
    assert await _send(limiter, -4, _ok) >= 0.3  # a third within 10 s: everyone waits
    await asyncio.gather(*floods)


async def test_the_limiter_keeps_the_per_group_and_overall_rates() -> None:
    # At most 3 in any minute: a group's first 3 go at once, the 4th a minute after the first.
    limiter = ChatRateLimiter(overall_per_second=1000, group_per_minute=3, max_retries=0)
    assert await asyncio.gather(*(_send(limiter, -1, _ok) for _ in range(3))) < [0.1] * 4
    fourth = asyncio.create_task(_send(limiter, -1, _ok))
    assert await _send(limiter, -2, _ok) < 0.1  # another group has its own bucket
    await asyncio.sleep(0.3)
    assert not fourth.done()
    fourth.cancel()

    limiter = ChatRateLimiter(overall_per_second=20, group_per_minute=1000, max_retries=0)
    started = time.monotonic()
    await asyncio.gather(*(_send(limiter, -i, _ok) for i in range(1, 21)))  # 20 groups: 2 at once, then 19 a second
    assert 0.85 < time.monotonic() - started < 1.4


async def test_the_last_429_is_raised_after_max_retries() -> None:
    limiter = ChatRateLimiter(30, 20, max_retries=1)
    calls: list[float] = []

    async def always() -> bool:
        calls.append(time.monotonic())
        raise RetryAfter(timedelta(seconds=0.1))

    try:
        await _send(limiter, -1, always)
    except RetryAfter:
        pass
    else:
        raise AssertionError("expected RetryAfter")
    assert len(calls) == 2


# --- a group that becomes a supergroup ----------------------------------------------------
SUPERGROUP = -1000000000201


async def test_a_group_that_becomes_a_supergroup_is_followed_at_once(make_bot: Any, caplog: Any) -> None:
    caplog.set_level("INFO", logger="bot.telegram.delivery")
    async with make_bot() as bot:
        bot.say(U1_CHAT, STAFF, "/lang en")  # the group's language goes with it
        await bot.wait_bot(U1_CHAT, "English")
        bot.api.fail("sendMessage", chat_id=U1_CHAT, status=500)  # a card left waiting for its retry
        bot.say(U1_CHAT, RESIDENT, "/report 楼道堆物")
        await bot.api.wait_for(lambda: any(c.status == 500 for c in bot.api.calls))
        await bot.settle()

        bot.api.migrate_chat(U1_CHAT, SUPERGROUP, bot.user(HEAD1))
        await bot.api.wait_for(lambda: not bot.api.pending_updates())
        await bot.settle()
        bot.say(SUPERGROUP, RESIDENT, "/report 路灯坏了")  # heard in the new group, in English
        card = await bot.wait_bot(SUPERGROUP, "Matter #2")
        assert "第一村民小组" in card.text
        bot.clock.advance(5)  # the waiting card goes to the new id
        await bot.wait_bot(SUPERGROUP, "Matter #1")
        bot.clock.advance(1 * H + 1)  # and the unit's matters still climb from it
        await bot.wait_bot(C1_CHAT, "事项 #1 上报至社区")
        await bot.settle()

        assert bot.count_bot(U1_CHAT, "Matter #") == 0
        stale = [c for c in bot.api.calls_to("sendMessage") if c.params.get("chat_id") == U1_CHAT and c.status != 500]
        assert len(stale) == 1, "nothing was sent to the old id after the migration"  # only /lang's answer
        async with bot.svc.store.read() as tx:
            assert (await tx.bindings()).get(SUPERGROUP) == "u1"
            assert (await tx.chat_languages()).get(SUPERGROUP) == "en"
    moved = [r.getMessage() for r in caplog.records if "migrated" in r.getMessage()]
    assert moved == [f"chat {U1_CHAT} migrated to {SUPERGROUP} (node u1)"]  # once, ids only


# --- sends recorded before anyone looks ---------------------------------------------------
async def test_a_reader_sees_every_send_queued_before_it_got_in(tmp_path: Path) -> None:
    """A send queued while a reader's group commit ends (a delivery task that just got
    Telegram's answer) is recorded before the reader looks: else the delivery worker finds
    the message still due and sends it again."""
    store = await Store.open(tmp_path / "commit.sqlite3")
    async with store.transaction() as tx:
        for key in ("a", "b"):
            await outbox.put(tx, outbox.OpsNotice(key, 0, 0.0, -1), now=0.0)
    async with store.read() as tx:
        first, second = await tx.outbox_due(1.0, limit=10)
    write_all = store._write_all
    late = [Sent(second.id, 1.0, 2)]

    async def write_then_queue_one_more() -> None:
        await write_all()
        if late:  # runs before the reader is woken
            asyncio.get_running_loop().call_soon(store.queue_sent, late.pop())

    store._write_all = write_then_queue_one_more  # type: ignore[method-assign]
    store.queue_sent(Sent(first.id, 1.0, 1))
    async with store.read() as tx:
        assert await tx.outbox_due(2.0, limit=10) == []
    await store.close()
