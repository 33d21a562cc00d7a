"""End to end: the real Application against the fake Bot API server, a real SQLite file,
and a clock the test moves. Report → card → claim → resolve, refusals, escalation up the
tiers, and nothing after resolve."""

from __future__ import annotations

from typing import Any

import pytest

from bot.dev.fakeapi import buttons
from escalation.policy import State
from tests.conftest import (
    C1_CHAT,
    HEAD1,
    HEAD3,
    POLICE,
    RESIDENT,
    RESIDENT2,
    STAFF,
    STATION_CHAT,
    U1_CHAT,
    U3_CHAT,
    Running,
)

pytestmark = pytest.mark.both_engines  # on SQLite and on PostgreSQL (issue 17)

H = 3600.0


def text_of(msg: Any) -> str:
    """What people see (HTML stripped); ``msg.source`` is what the bot sent."""
    return msg.text or ""


async def report(
    bot: Running, chat: int = U1_CHAT, user: int = RESIDENT, text: str = "楼道堆放杂物，有消防隐患"
) -> Any:
    """A resident reports; returns the card the bot answers with."""
    sent = bot.say(chat, user, f"/report {text}")
    return await bot.api.wait_for(
        lambda: next((m for m in bot.api.bot_messages(chat) if m.reply_to == sent["message_id"]), None)
    )


async def matter_state(bot: Running, number: int) -> Any:
    async with bot.svc.store.read() as tx:
        return await tx.matter(number)


async def test_report_gets_a_card_with_heads_deadlines_and_buttons(make_bot: Any) -> None:
    async with make_bot() as bot:
        card = await report(bot)
        text = text_of(card)
        assert "事项 #1" in text and "第一村民小组" in text
        assert "楼道堆放杂物，有消防隐患" in text
        assert "蒋建国" in text and f"tg://user?id={HEAD1}" in card.source  # the head is mentioned
        assert "认领期限：11-24 11:00" in text and "解决期限：11-25 10:00" in text
        assert buttons(card)[:2] == [("认领", "v1:claim:1"), ("解决", "v1:resolve:1")]
        assert ("🏷 分类", "v1:cats:1") in buttons(card)  # until someone picks one
        assert "类别：其他" in text
        await bot.settle()
        matter = await matter_state(bot, 1)
        assert matter.state == State.OPEN and matter.unit_id == "u1" and matter.reporter_id == RESIDENT
        assert (matter.card_chat_id, matter.card_message_id) == (U1_CHAT, card.message_id)


async def test_html_in_a_report_is_escaped_and_cannot_break_the_card(make_bot: Any) -> None:
    async with make_bot() as bot:
        card = await report(bot, text='<b>bold</b> & <a href="x">link</a> </i>')
        assert "&lt;b&gt;bold&lt;/b&gt; &amp; &lt;a href=&quot;x&quot;&gt;link&lt;/a&gt; &lt;/i&gt;" in card.source
        assert '<b>bold</b> & <a href="x">link</a> </i>' in text_of(card)


async def test_claim_by_button_then_resolve_by_command(make_bot: Any) -> None:
    async with make_bot() as bot:
        card = await report(bot)
        bot.api.press_button(U1_CHAT, bot.user(HEAD1, "蒋建国"), card.message_id, "v1:claim:1")
        # The reporter sees 👀 on their report (issue 14): no message says it.
        await bot.api.wait_for(lambda: bot.api.reactions(U1_CHAT, card.reply_to) == ["👀"])
        assert any(a.get("text") == "已认领事项 #1" for a in bot.api.callback_answers)
        await bot.api.wait_for(lambda: "处理中" in text_of(card))
        assert card.edits >= 1 and buttons(card)[0] == ("解决", "v1:resolve:1")
        assert ("认领", "v1:claim:1") not in buttons(card)

        command = bot.say(U1_CHAT, HEAD1, "/resolve 1 已上门清理，消除隐患")
        ask = await bot.wait_bot(U1_CHAT, "已由 用户31 解决：已上门清理，消除隐患")
        assert f"tg://user?id={RESIDENT}" in ask.source  # the reporter is told, by mention
        await bot.done(U1_CHAT, command)  # the /resolve confirmed by 👍
        await bot.api.wait_for(lambda: not buttons(card))
        assert "处理结果：已上门清理，消除隐患" in text_of(card)
        matter = await matter_state(bot, 1)
        assert matter.state == State.RESOLVED and matter.resolution == "已上门清理，消除隐患"
        # The card, and the reporter told once: the resolution and the rating's question in one.
        await bot.settle()
        assert len(bot.api.bot_messages(U1_CHAT)) == 2
        assert "请评价处理结果" in ask.text and ask.reply_to == card.reply_to
        assert [label for label, _ in buttons(ask)] == ["满意", "基本满意", "不满意"]
        async with bot.svc.store.read() as tx:
            kinds = [e.kind for e in await tx.events(1)]
        assert kinds == ["reported", "claimed", "resolved"]


async def test_residents_and_strangers_are_refused_and_nothing_changes(make_bot: Any) -> None:
    async with make_bot() as bot:
        card = await report(bot)
        bot.say(U1_CHAT, RESIDENT2, "/claim 1")
        await bot.wait_bot(U1_CHAT, "只有本单元的负责人和上级领导")
        bot.api.press_button(U1_CHAT, bot.user(RESIDENT2), card.message_id, "v1:resolve:1")
        await bot.api.wait_for(lambda: any(a.get("show_alert") for a in bot.api.callback_answers))
        # A head of another unit is a stranger here too.
        bot.say(U1_CHAT, HEAD3, "/resolve 1 不是我的")
        await bot.api.wait_for(lambda: bot.count_bot(U1_CHAT, "只有本单元") == 2)
        matter = await matter_state(bot, 1)
        assert matter.state == State.OPEN and matter.claimed_by is None and card.edits == 0


async def test_bad_arguments_unknown_numbers_and_other_units_get_clear_answers(make_bot: Any) -> None:
    async with make_bot() as bot:
        await report(bot)
        bot.say(U1_CHAT, HEAD1, "/claim")
        await bot.wait_bot(U1_CHAT, "用法：/claim 事项编号")
        bot.say(U1_CHAT, HEAD1, "/claim abc")
        await bot.api.wait_for(lambda: bot.count_bot(U1_CHAT, "用法：/claim") == 2)
        bot.say(U1_CHAT, HEAD1, "/resolve 99 done")
        await bot.wait_bot(U1_CHAT, "没有找到事项 #99")
        bot.say(U1_CHAT, HEAD1, "/note 1")
        await bot.wait_bot(U1_CHAT, "用法：/note")
        # Matter 1 is unit 1's: unit 3's chat is the wrong place, even for a station leader.
        bot.say(U3_CHAT, STAFF, "/claim 1")
        await bot.wait_bot(U3_CHAT, "事项 #1 不属于本群")
        assert (await matter_state(bot, 1)).state == State.OPEN


async def test_unclaimed_matter_climbs_to_the_community_then_the_station(make_bot: Any) -> None:
    async with make_bot() as bot:
        card = await report(bot, user=RESIDENT, text="楼上装修噪音扰民")
        bot.clock.advance(1 * H)  # the unit's claim window
        up = await bot.wait_bot(C1_CHAT, "事项 #1 上报至社区")
        text = text_of(up)
        assert "第一村民小组" in text and "蒋母塘村" in text and "楼上装修噪音扰民" in text
        assert "超过认领期限无人认领" in text and "已等待：1小时" in text
        assert f"tg://user?id={POLICE}" in up.source  # the community's leaders are named
        assert buttons(up) == [("接手", "v1:claim:1"), ("解决", "v1:resolve:1")]
        await bot.api.wait_for(lambda: "已上报社区" in text_of(card))
        assert bot.api.bot_messages(STATION_CHAT) == []

        bot.clock.advance(2 * H)  # the community's claim window, counted from arrival
        top = await bot.wait_bot(STATION_CHAT, "事项 #1 上报至派出所")
        assert "已等待：3小时" in text_of(top)
        matter = await matter_state(bot, 1)
        assert (matter.tier, matter.top_tier) == (1, 1)

        # At the top: pinged when the station's claim window passes, then every 6 h.
        bot.clock.advance(3 * H)
        await bot.wait_bot(STATION_CHAT, "仍未处理")
        bot.clock.advance(5 * H)
        await bot.settle()
        assert bot.count_bot(STATION_CHAT, "仍未处理") == 1
        bot.clock.advance(1 * H)
        await bot.api.wait_for(lambda: bot.count_bot(STATION_CHAT, "仍未处理") == 2)
        # Leaders act from their own chat: the station takes it over and resolves it.
        bot.api.press_button(STATION_CHAT, bot.user(STAFF, "陈所长"), top.message_id, "v1:resolve:1")
        await bot.api.wait_for(lambda: not buttons(card))
        assert (await matter_state(bot, 1)).state == State.RESOLVED


async def test_a_claimed_matter_still_goes_up_when_not_resolved_in_time(make_bot: Any) -> None:
    async with make_bot() as bot:
        await report(bot)
        await bot.done(U1_CHAT, bot.say(U1_CHAT, HEAD1, "/claim 1"))
        bot.clock.advance(2 * H)
        await bot.settle()
        assert bot.api.bot_messages(C1_CHAT) == []  # claimed in time: no escalation
        bot.clock.advance(22 * H)
        up = await bot.wait_bot(C1_CHAT, "上报至社区")
        assert "超过解决期限仍未解决" in text_of(up) and "此前认领人：用户31" in text_of(up)
        bot.api.press_button(C1_CHAT, bot.user(POLICE, "王警官"), up.message_id, "v1:claim:1")
        await bot.wait_bot(U1_CHAT, "认领人：王警官")  # the card in the unit group follows


async def test_nothing_escalates_after_resolve(make_bot: Any) -> None:
    async with make_bot() as bot:
        await report(bot)
        bot.say(U1_CHAT, HEAD1, "/resolve 1 已调解")
        await bot.wait_bot(U1_CHAT, "已调解")
        for _ in range(4):
            bot.clock.advance(30 * H)
            await bot.settle()
        assert bot.api.bot_messages(C1_CHAT) == [] and bot.api.bot_messages(STATION_CHAT) == []
        assert (await matter_state(bot, 1)).next_due is None


async def test_restart_catches_up_exactly_once(make_bot: Any, bot_database: str) -> None:
    database = bot_database
    async with make_bot(database=database) as bot:
        await report(bot)
        clock = bot.clock
    clock.advance(5 * H)  # the unit's deadline passes while the bot is down
    async with make_bot(clock=clock, database=database) as bot:
        await bot.wait_bot(C1_CHAT, "上报至社区")
        await bot.settle()
    async with make_bot(clock=clock, database=database) as bot:  # and once more
        await bot.settle()
        escalations = [m for m in bot.api.bot_messages(C1_CHAT) if "上报至社区" in text_of(m)]
        assert len(escalations) == 1
        matter = await matter_state(bot, 1)
        assert matter.tier == 2 and matter.tier_since == clock.now()
