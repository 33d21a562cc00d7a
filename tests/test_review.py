"""Review of the merged issue-10/11/12 work, end to end through the fake Bot API: places
where privacy (bot/visibility.py), authority (bot/authority.py) and limits (bot/limits.py)
did not hold together. Each test failed before its fix."""

from __future__ import annotations

from typing import Any

from escalation.policy import State
from tests.conftest import (
    C1_CHAT,
    HEAD1,
    POLICE,
    RESIDENT,
    STAFF,
    STATION_CHAT,
    U1_CHAT,
    Running,
)
from tests.test_authority import matter, report, to_station
from tests.test_privacy import SECRET, everything_sent_to, report_privately, start_dm


async def rate_unsatisfied(bot: Running, chat: int, number: int) -> None:
    asking = await bot.wait_bot(chat, "请评价处理结果")
    bot.api.press_button(chat, bot.user(RESIDENT), asking.message_id, f"v1:rate:{number}:unsatisfied")
    await bot.wait_bot(chat, "请回复本条消息说明原因")


async def test_unsatisfied_reopens_at_the_tier_that_closed_it_and_tells_it(make_bot: Any) -> None:
    async with make_bot() as bot:
        await report(bot, "邻里多次冲突")
        await to_station(bot)
        bot.say(STATION_CHAT, STAFF, "/resolve 1 已调解")
        await bot.wait_bot(STATION_CHAT, "已解决")
        await rate_unsatisfied(bot, U1_CHAT, 1)
        told = await bot.wait_bot(STATION_CHAT, "报告人对事项 #1 的处理结果不满意")
        assert "在派出所重新打开" in told.text and "邻里多次冲突" in told.text
        await bot.wait_bot(U1_CHAT, "事项已由派出所重新打开跟进")
        reopened = await matter(bot, 1)
        assert (reopened.state, reopened.tier) == (State.OPEN, 1)
        # …so a unit head still cannot bury what the station decided.
        bot.say(U1_CHAT, HEAD1, "/close 1 无需处理")
        await bot.wait_bot(U1_CHAT, "事项 #1 现由派出所负责")
        assert (await matter(bot, 1)).state == State.OPEN


async def test_a_private_matter_the_community_resolved_reopens_there_and_tells_it_once(make_bot: Any) -> None:
    async with make_bot() as bot:
        await start_dm(bot, HEAD1)
        await report_privately(bot, 1)
        bot.say(C1_CHAT, POLICE, "/resolve 1 已训诫")  # the community decided what the unit held
        await bot.wait_bot(C1_CHAT, "已解决")
        await rate_unsatisfied(bot, RESIDENT, 1)
        told = await bot.wait_bot(C1_CHAT, "不满意")
        assert SECRET in told.text
        await bot.wait_bot(HEAD1, "不满意")
        assert (await matter(bot, 1)).tier == 2
        bot.say(U1_CHAT, HEAD1, "/close 1 算了")
        await bot.wait_bot(U1_CHAT, "事项 #1 现由社区负责")
        await bot.settle()
        assert bot.count_bot(C1_CHAT, "不满意") == 1  # one message, not the ping and the copy
        group = everything_sent_to(bot, U1_CHAT)
        assert "不满意" not in group and SECRET not in group and "已训诫" not in group
