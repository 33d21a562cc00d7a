"""Delivery through faults: the right messages arrive in the right chats, once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot import outbox
from tests.conftest import C1_CHAT, RESIDENT, ROOT, STATION_CHAT, TOKEN, U1_CHAT, U2_CHAT, add_chats, town

pytestmark = pytest.mark.both_engines  # on SQLite and on PostgreSQL (issue 17)

H = 3600.0


async def test_a_429_is_waited_out_and_the_card_arrives_once(make_bot: Any) -> None:
    async with make_bot() as bot:
        bot.api.fail("sendMessage", chat_id=U1_CHAT, status=429, retry_after=1)
        bot.say(U1_CHAT, RESIDENT, "/report 楼道灯坏了")
        await bot.wait_bot(U1_CHAT, "事项 #1", within=10)
        await bot.settle()
        sends = [c for c in bot.api.calls_to("sendMessage") if c.params.get("chat_id") == U1_CHAT]
        assert [c.status for c in sends] == [429, 200]  # PTB's AIORateLimiter retried it
        assert bot.count_bot(U1_CHAT, "事项 #1") == 1


async def test_server_errors_and_dropped_connections_are_retried(make_bot: Any) -> None:
    async with make_bot() as bot:
        bot.api.fail("sendMessage", chat_id=U1_CHAT, status=500)
        bot.say(U1_CHAT, RESIDENT, "/report 下水道堵了")
        await bot.api.wait_for(lambda: any(c.status == 500 for c in bot.api.calls))
        await bot.settle()
        assert bot.count_bot(U1_CHAT, "事项 #1") == 0  # waiting for its retry time
        bot.clock.advance(2)
        await bot.wait_bot(U1_CHAT, "事项 #1")

        bot.api.fail("sendMessage", chat_id=U1_CHAT, drop=True)
        bot.say(U1_CHAT, RESIDENT, "/report 垃圾没人清")
        await bot.api.wait_for(lambda: any(c.status == 0 for c in bot.api.calls))
        await bot.settle()
        bot.clock.advance(2)
        await bot.wait_bot(U1_CHAT, "事项 #2")
        await bot.settle()
        assert bot.count_bot(U1_CHAT, "事项 #1") == 1 and bot.count_bot(U1_CHAT, "事项 #2") == 1


async def test_a_chat_that_removed_the_bot_is_reported_once_and_escalation_goes_on(make_bot: Any) -> None:
    async with make_bot() as bot:
        bot.api.remove_bot_from(C1_CHAT)
        bot.say(U1_CHAT, RESIDENT, "/report 邻居吵架")
        await bot.wait_bot(U1_CHAT, "事项 #1")
        bot.say(U1_CHAT, RESIDENT, "/report 又吵起来了")
        await bot.wait_bot(U1_CHAT, "事项 #2")
        bot.clock.advance(1 * H)  # both climb to the community, whose group is gone
        notice = await bot.wait_bot(STATION_CHAT, "无法向 蒋母塘村 的群")
        assert str(C1_CHAT) in notice.text
        bot.clock.advance(2 * H)  # and on to the station, which hears of both
        await bot.wait_bot(STATION_CHAT, "事项 #1 上报至派出所")
        await bot.wait_bot(STATION_CHAT, "事项 #2 上报至派出所")
        await bot.settle()
        assert bot.count_bot(STATION_CHAT, "无法向") == 1
        assert bot.api.bot_messages(C1_CHAT) == []
        async with bot.svc.store.read() as tx:
            assert C1_CHAT in await tx.unreachable_chats()


async def test_tierbot_run_serves_a_real_process_and_stops_on_sigterm(api: Any, tmp_path: Path) -> None:
    """The production path: `tierbot run` (run_polling) as its own process."""
    raw = town()
    raw["database"] = str(tmp_path / "run.sqlite3")
    raw["telegram"].update(base_url=api.base_url, base_file_url=api.base_file_url)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    add_chats(api, raw)
    env = {**os.environ, "TELEGRAM_BOT_TOKEN": TOKEN}
    # An asyncio subprocess: the fake server lives in this event loop and must keep serving.
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", "--config", str(config),
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        api.send_text(U1_CHAT, api.user(RESIDENT, "王芳"), "/report 真实进程里的上报")
        card = await api.wait_for(
            lambda: next((m for m in api.bot_messages(U1_CHAT) if "真实进程里的上报" in (m.text or "")), None),
            timeout=20,
        )
        assert "事项 #1" in card.text
    finally:
        process.send_signal(signal.SIGTERM)
        raw_output, _ = await asyncio.wait_for(process.communicate(), 20)
    output = raw_output.decode()
    assert process.returncode == 0, output
    assert "tierbot started" in output


async def test_a_queued_photo_is_sent_by_file_id_with_its_caption(make_bot: Any) -> None:
    async with make_bot() as bot:
        bot.api.send_photo(U1_CHAT, bot.user(RESIDENT), file_id="ph7")  # a photo Telegram knows
        async with bot.svc.store.transaction() as tx:
            # A broadcast's photo (one with no record: its report is nobody's business here).
            await outbox.put(tx, outbox.BroadcastCopy(7, C1_CHAT, "st", "井盖丢失", "ph7"), now=bot.clock.now())
        photo = await bot.api.wait_for(lambda: next((m for m in bot.api.bot_messages(C1_CHAT) if m.photo), None))
        assert photo.text == "📢 苏溪派出所通知\n井盖丢失" and photo.raw["photo"][-1]["file_id"] == "ph7"
        await bot.settle()
        async with bot.svc.store.read() as tx:
            assert await tx.outbox_due(bot.clock.now(), limit=1) == []


async def test_a_group_at_its_rate_limit_holds_up_no_other_group(make_bot: Any) -> None:
    import time

    raw = town()
    raw["telegram"]["rate_limit"]["group_per_minute"] = 3  # a burst of 3, then one every 20 s
    async with make_bot(raw) as bot:
        for n in range(5):
            bot.say(U1_CHAT, RESIDENT, f"/report 第一组第{n}件")
        await bot.api.wait_for(lambda: bot.count_bot(U1_CHAT, "📋") == 3)
        started = time.monotonic()
        bot.say(U2_CHAT, RESIDENT, "/report 第二组的事")
        await bot.wait_bot(U2_CHAT, "📋 事项 #6")
        assert time.monotonic() - started < 2.0  # not behind group 1's queue
        assert bot.count_bot(U1_CHAT, "📋") == 3  # group 1 still waits its turn


async def test_delivery_stops_when_told_to_as_it_wakes(make_bot: Any) -> None:
    # A stop that lands in the same moment as a wake-up: asyncio.wait_for on Python 3.11
    # swallowed that cancel, and the worker idled on forever while the bot waited for it.
    async with make_bot() as bot:
        await bot.settle()
        await asyncio.sleep(0.2)  # the worker is idle, waiting to be woken
        delivery = bot.svc.delivery
        worker = delivery._task
        assert worker is not None
        delivery.wake()
        worker.cancel()  # as stop() does, in the same moment
        done, _ = await asyncio.wait({worker}, timeout=3)
        assert worker in done and worker.cancelled()
