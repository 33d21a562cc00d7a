"""Defects found in review, each pinned by the situation that showed it."""

from __future__ import annotations

import re
from typing import Any

from escalation.policy import State
from tests.conftest import C1_CHAT, HEAD1, POLICE, RESIDENT, STAFF, STATION_CHAT, U1_CHAT, U2_CHAT, town

H = 3600.0


async def test_a_private_reporters_110_notice_stays_private(make_bot: Any) -> None:
    async with make_bot() as bot:
        bot.api.add_chat(RESIDENT, None, "private")
        bot.say(RESIDENT, RESIDENT, "/start p_u1")
        await bot.wait_bot(RESIDENT, "私下反映")
        bot.say(RESIDENT, RESIDENT, "接到冒充公安的电话，已经转了钱")
        card = await bot.wait_bot(U1_CHAT, "事项 #1")
        bot.api.press_button(U1_CHAT, bot.user(HEAD1), card.message_id, "v1:cat:1:fraud")
        await bot.wait_bot(RESIDENT, "请立即拨打 110")
        await bot.settle()
        group = [m.source for m in bot.api.bot_messages(U1_CHAT)]
        assert not any(f"id={RESIDENT}" in text or "110" in text for text in group)


async def test_a_leader_cannot_take_a_chat_from_a_node_they_do_not_lead(make_bot: Any) -> None:
    async with make_bot() as bot:
        bot.say(STATION_CHAT, HEAD1, "/bind u1")  # a unit head in the station's group
        await bot.wait_bot(STATION_CHAT, "只有 苏溪派出所 及上级的负责人")
        assert bot.svc.tree.chat_of("st") == STATION_CHAT


async def test_a_community_cannot_pull_a_matter_down_from_the_station(make_bot: Any) -> None:
    async with make_bot() as bot:
        bot.say(U1_CHAT, RESIDENT, "/report 疑难纠纷")
        await bot.wait_bot(U1_CHAT, "事项 #1")
        bot.say(U1_CHAT, HEAD1, "/escalate 1 需要会商")
        await bot.wait_bot(C1_CHAT, "上报至社区")
        bot.say(C1_CHAT, POLICE, "/escalate 1 需要派出所")
        await bot.wait_bot(STATION_CHAT, "上报至派出所")
        bot.say(C1_CHAT, POLICE, "/return 1 我们来吧")
        bot.say(C1_CHAT, POLICE, "/takeover 1")
        await bot.api.wait_for(lambda: bot.count_bot(C1_CHAT, "事项 #1 现由派出所负责") == 2)
        async with bot.svc.store.read() as tx:
            assert (await tx.matter(1)).tier == 1
        bot.say(STATION_CHAT, STAFF, "/return 1 请社区先处理")  # the station may
        await bot.wait_bot(C1_CHAT, "退回社区处理")


async def test_a_matter_of_a_unit_removed_from_config_does_not_stop_the_town(make_bot: Any, bot_database: str) -> None:
    database = bot_database
    async with make_bot(database=database) as bot:
        bot.say(U2_CHAT, RESIDENT, "/report 第二组的事")
        await bot.wait_bot(U2_CHAT, "事项 #1")
        clock = bot.clock
    smaller = town()
    smaller["station"]["communities"][0]["units"].pop(1)  # u2 is gone
    async with make_bot(smaller, clock=clock, database=database) as bot:
        bot.say(U1_CHAT, RESIDENT, "/report 第一组的事")
        await bot.wait_bot(U1_CHAT, "事项 #2")
        bot.clock.advance(2 * H)
        await bot.wait_bot(C1_CHAT, "事项 #2 上报至社区")
        bot.say(U1_CHAT, RESIDENT, "/my")
        await bot.wait_bot(U1_CHAT, "您反映的事项")
        async with bot.svc.store.read() as tx:
            orphan = await tx.matter(1)
        assert orphan.state == State.OPEN and orphan.next_due is None  # parked, with a warning logged


async def test_a_large_group_of_leaders_is_named_in_messages_of_at_most_50_mentions(make_bot: Any) -> None:
    raw = town()
    raw["station"]["communities"][0]["police"] = [{"id": 5000 + i, "name": f"民警{i}"} for i in range(90)]
    async with make_bot(raw) as bot:
        bot.say(U1_CHAT, RESIDENT, "/report 大事")
        await bot.wait_bot(U1_CHAT, "事项 #1")
        bot.clock.advance(1 * H)
        await bot.wait_bot(C1_CHAT, "上报至社区")
        await bot.api.wait_for(lambda: len(bot.api.bot_messages(C1_CHAT)) == 3)
        counts = [m.source.count("tg://user?id=") for m in bot.api.bot_messages(C1_CHAT)]
        assert all(c <= 50 for c in counts)
        named = {int(x) for m in bot.api.bot_messages(C1_CHAT) for x in re.findall(r"id=(\d+)", m.source)}
        assert {5000 + i for i in range(90)} <= named  # every officer is notified


async def test_the_first_sweep_runs_at_start_however_long_opening_took(api: Any, tmp_path: Any) -> None:
    """APScheduler worked the first run out when the job queue started: a start slower than
    0.1 s (a fresh database's migrations on a busy machine) skipped it to a whole
    sweep_interval later (here an hour)."""
    import asyncio

    from bot.app import build_application, running
    from bot.clock import ManualClock
    from bot.config import parse_config
    from bot.store import LAST_SWEEP
    from tests.conftest import START, TOKEN, add_chats

    raw = town(sweep_interval="1h", database=str(tmp_path / "t.sqlite3"))
    raw["telegram"] = {**raw["telegram"], "base_url": api.base_url, "base_file_url": api.base_file_url}
    add_chats(api, raw)
    app = build_application(parse_config(raw), TOKEN, clock=ManualClock(START))
    await asyncio.sleep(0.3)  # the database took a while to open
    async with running(app):
        store = app.bot_data["services"].store
        for _ in range(300):
            async with store.read() as tx:
                if await tx.meta_value(LAST_SWEEP) is not None:
                    return
            await asyncio.sleep(0.01)
    raise AssertionError("the first sweep did not run at start")
