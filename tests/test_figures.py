"""Figures a station can rely on (issue 12): every rating kept and counted when given,
moves up counted as the README defines them, periods computed from the timeline as it
stood at their end, and the edge cases of display. Each test is the smallest case of one
point, end to end where the point is about what the bot sends."""

from __future__ import annotations

from typing import Any

from bot.storage import Matter
from escalation.policy import State
from tests.conftest import (
    HEAD1,
    RESIDENT,
    U1_CHAT,
    Running,
    town,
)

H = 3600.0
DAY = 24 * H


def long_rating(**overrides: Any) -> dict[str, Any]:
    """The test town, with a month to rate and deadlines that never pass during a test."""
    raw = town(**overrides)
    raw["satisfaction"] = {"ask_for": "30d"}
    raw["deadlines"]["unit"] = {"claim": "60d", "resolve": "60d"}
    raw["deadlines"]["community"] = {"claim": "60d", "resolve": "60d"}
    raw["deadlines"]["station"] = {"claim": "60d", "resolve": "60d", "repeat": "60d"}
    return raw


async def matter(bot: Running, matter_id: int) -> Matter:
    async with bot.svc.store.read() as tx:
        found = await tx.matter(matter_id)
    assert found is not None
    return found


async def report(bot: Running, text: str, chat: int = U1_CHAT, who: int = RESIDENT) -> None:
    before = len(bot.api.bot_messages(chat))
    bot.say(chat, who, f"/report {text}")
    await bot.api.wait_for(lambda: len(bot.api.bot_messages(chat)) > before)
    await bot.settle()


async def do(bot: Running, chat: int, user: int, command: str, expect: str) -> None:
    before = bot.count_bot(chat, expect)
    bot.say(chat, user, command)
    await bot.api.wait_for(lambda: bot.count_bot(chat, expect) > before)
    await bot.settle()


async def asked(bot: Running, matter_id: int) -> int:
    """The request to rate the matter now waiting for an answer (answered ones are edited)."""
    ask = await bot.wait_bot(U1_CHAT, f"事项 #{matter_id} 已办结")
    return int(ask.message_id)


async def rate(bot: Running, matter_id: int, rating: str, ask: int | None = None) -> str:
    """The reporter taps ``rating`` under a request to rate the matter (the waiting one
    unless ``ask`` says which); returns what the button answered."""
    ask = ask or await asked(bot, matter_id)
    before = len(bot.api.callback_answers)
    bot.api.press_button(U1_CHAT, bot.user(RESIDENT), ask, f"v1:rate:{matter_id}:{rating}")
    await bot.api.wait_for(lambda: len(bot.api.callback_answers) > before)
    await bot.settle()
    return str(bot.api.callback_answers[-1].get("text") or "")


async def summary(bot: Running, chat: int, user: int) -> str:
    bot.clock.advance(60)  # what was done "now" falls inside the seven days
    before = bot.count_bot(chat, "周报")
    bot.say(chat, user, "/summary")
    await bot.api.wait_for(lambda: bot.count_bot(chat, "周报") > before)
    return [m.text for m in bot.api.bot_messages(chat) if "周报" in (m.text or "")][-1]


# --- ratings ------------------------------------------------------------------------------
async def test_a_resolution_after_an_unsatisfied_reopen_can_be_rated(make_bot: Any) -> None:
    async with make_bot(long_rating()) as bot:
        await report(bot, "楼上漏水")
        await do(bot, U1_CHAT, HEAD1, "/resolve 1 已修好", "已解决事项 #1")
        assert "不满意" in await rate(bot, 1, "unsatisfied")  # reopens
        bot.clock.advance(H)
        await do(bot, U1_CHAT, HEAD1, "/resolve 1 换了水管", "已解决事项 #1")
        second = await asked(bot, 1)
        assert "感谢您的评价：满意" in await rate(bot, 1, "satisfied", second)
        assert (await matter(bot, 1)).rating == "satisfied"  # the latest is the matter's rating
        # Each resolution is rated once: the same request again is refused.
        assert "已经评价过" in await rate(bot, 1, "basic", second)
        text = await summary(bot, U1_CHAT, RESIDENT)
        assert "群众满意度 50%（评价 2 件：满意 1 · 基本满意 0 · 不满意 1）" in text


async def test_reopening_by_hand_keeps_the_rating(make_bot: Any) -> None:
    async with make_bot(long_rating()) as bot:
        await report(bot, "路灯坏了")
        await do(bot, U1_CHAT, HEAD1, "/resolve 1 已报修", "已解决事项 #1")
        await rate(bot, 1, "satisfied")
        bot.clock.advance(H)
        await do(bot, U1_CHAT, HEAD1, "/reopen 1 又坏了", "#1")
        assert (await matter(bot, 1)).state == State.OPEN
        assert (await matter(bot, 1)).rating == "satisfied"
        text = await summary(bot, U1_CHAT, RESIDENT)
        assert "群众满意度 100%（评价 1 件：满意 1 · 基本满意 0 · 不满意 0）" in text


async def test_last_periods_satisfaction_counts_ratings_given_then(make_bot: Any) -> None:
    async with make_bot(long_rating()) as bot:
        await report(bot, "垃圾清运")
        await do(bot, U1_CHAT, HEAD1, "/resolve 1 已清运", "已解决事项 #1")
        bot.clock.advance(8 * DAY)  # rated in the week before the summary's, long after its resolve
        await rate(bot, 1, "satisfied")
        bot.clock.advance(7 * DAY)
        await report(bot, "井盖松动")
        await do(bot, U1_CHAT, HEAD1, "/resolve 2 已固定", "已解决事项 #2")
        await rate(bot, 2, "satisfied")
        bot.clock.advance(DAY)
        text = await summary(bot, U1_CHAT, RESIDENT)
        assert "群众满意度 100% →（评价 1 件" in text  # compared with the 100% shown the week before
