"""The tier that holds a matter decides it (issue 10): the rule table of bot/authority.py,
and end to end through the fake Bot API — a unit head cannot bury what the station holds,
suspensions have bounds, /cancel answers with its own rule, work commands in a private chat
say where to go, and anonymous admins and channel posts are not a person."""

from __future__ import annotations

from typing import Any

import pytest

from bot.authority import Action, Verdict, decide
from bot.dev.fakeapi import buttons
from escalation.policy import State
from tests.conftest import (
    C1_CHAT,
    HEAD1,
    POLICE,
    RESIDENT,
    RESIDENT2,
    STAFF,
    STATION_CHAT,
    U1_CHAT,
    Running,
    town,
)

H = 3600.0
D = 86400.0
A, T, HA, NA, NR, NP = (Verdict.ALLOW, Verdict.ALLOW_TELL_HOLDER, Verdict.HELD_ABOVE, Verdict.NOT_ALLOWED,
                        Verdict.NOT_REPORTER, Verdict.NOT_A_PERSON)

# (action, actor's tier or None for a resident, is the reporter, the holding tier) → verdict
TABLE = [
    # The unit holds it: its heads and everyone above decide.
    (Action.CLOSE, 3, False, 3, A), (Action.SUSPEND, 2, False, 3, A), (Action.CLAIM, 3, False, 3, A),
    (Action.CLOSE, None, True, 3, NA), (Action.CLAIM, None, False, 3, NA),
    # The station holds it: a unit head or the community cannot close, refer, suspend, resume or claim it…
    (Action.CLOSE, 3, False, 1, HA), (Action.REFER, 3, False, 1, HA), (Action.SUSPEND, 3, False, 1, HA),
    (Action.RESUME, 2, False, 1, HA), (Action.CLAIM, 3, False, 2, HA), (Action.CLOSE, 1, False, 1, A),
    # …but may note it, attach to it and resolve it (the holder is told).
    (Action.NOTE, 3, False, 1, A), (Action.ATTACH, 3, False, 1, A), (Action.RESOLVE, 3, False, 1, T),
    (Action.RESOLVE, 2, False, 1, T), (Action.RESOLVE, 1, False, 2, A), (Action.RESOLVE, None, False, 1, NA),
    # Return and take over: tier 2 or 1, at or above the holder.
    (Action.RETURN, 3, False, 3, NA), (Action.RETURN, 2, False, 1, HA), (Action.TAKEOVER, 1, False, 2, A),
    (Action.TAKEOVER, 2, False, 2, A),
    # Reopen: the tier that closed it or above; the reporter only what the unit closed.
    (Action.REOPEN, None, True, 3, A), (Action.REOPEN, None, True, 2, HA), (Action.REOPEN, 3, False, 2, HA),
    (Action.REOPEN, 2, False, 2, A), (Action.REOPEN, None, False, 3, NA),
    # Withdraw: the reporter alone, while the unit holds it.
    (Action.CANCEL, None, True, 3, A), (Action.CANCEL, None, True, 2, HA), (Action.CANCEL, None, False, 3, NR),
    (Action.CANCEL, 3, False, 3, NR), (Action.CANCEL, 1, False, 3, NR),
    (Action.RATE, None, True, 1, A), (Action.RATE, 3, False, 3, NR),
    (Action.CATEGORIZE, None, True, 3, A), (Action.CATEGORIZE, None, False, 3, NA),
]


@pytest.mark.parametrize(("action", "tier", "reporter", "holder", "verdict"), TABLE)
def test_who_may_do_what_at_which_tier(action: Action, tier: int | None, reporter: bool, holder: int,
                                       verdict: Verdict) -> None:
    assert decide(action, tier, reporter, holder) == verdict


def test_resolving_from_below_can_be_forbidden_and_anonymous_senders_may_do_nothing() -> None:
    assert decide(Action.RESOLVE, 3, False, 1, resolve_from_below=False) == HA
    assert decide(Action.RESOLVE, 1, False, 1, resolve_from_below=False) == A
    for action in Action:
        assert decide(action, None, True, 3, person=False) == NP


# --- end to end ------------------------------------------------------------------------
async def report(bot: Running, text: str = "楼道堆放杂物", user: int = RESIDENT) -> Any:
    sent = bot.say(U1_CHAT, user, f"/report {text}")
    return await bot.api.wait_for(
        lambda: next((m for m in bot.api.bot_messages(U1_CHAT)
                      if m.reply_to == sent["message_id"] and "📋" in m.text), None)
    )


async def matter(bot: Running, number: int) -> Any:
    async with bot.svc.store.read() as tx:
        return await tx.matter(number)


async def to_station(bot: Running) -> None:
    bot.clock.advance(1 * H)  # the unit's claim hour
    await bot.wait_bot(C1_CHAT, "上报至社区")
    bot.clock.advance(2 * H)  # the community's two
    await bot.wait_bot(STATION_CHAT, "上报至派出所")


async def test_a_unit_head_cannot_bury_a_matter_the_station_holds(make_bot: Any) -> None:
    async with make_bot() as bot:
        await report(bot, "邻里多次冲突")
        await to_station(bot)
        bot.say(U1_CHAT, HEAD1, "/close 1 无需处理")
        await bot.wait_bot(U1_CHAT, "事项 #1 现由派出所负责，这一步只能由派出所或上级来做")
        bot.say(U1_CHAT, HEAD1, "/suspend 1 9999-12-31 x")
        bot.say(U1_CHAT, HEAD1, "/refer 1 别处")
        bot.say(C1_CHAT, POLICE, "/suspend 1 3d 等待")  # the community is below the station too
        await bot.api.wait_for(lambda: bot.count_bot(U1_CHAT, "现由派出所负责") == 3)
        await bot.wait_bot(C1_CHAT, "现由派出所负责")
        held = await matter(bot, 1)
        assert (held.state, held.tier, held.suspended_until, held.closed_at) == (State.OPEN, 1, None, None)
        # The head may still add what they learn on the ground…
        await bot.done(U1_CHAT, bot.say(U1_CHAT, HEAD1, "/note 1 已上门了解"))
        # …and escalation goes on: the station is pinged again when its own window passes.
        bot.clock.advance(3 * H)
        await bot.wait_bot(STATION_CHAT, "事项 #1 仍未处理")


async def test_a_unit_head_may_resolve_a_matter_held_above_and_the_holder_hears_at_once(make_bot: Any) -> None:
    async with make_bot() as bot:
        await report(bot, "邻里多次冲突")
        await to_station(bot)
        bot.say(U1_CHAT, HEAD1, "/resolve 1 已调解，双方签字")
        told = await bot.wait_bot(STATION_CHAT, "事项 #1 已由 用户31 解决")
        assert "处理结果：已调解，双方签字" in told.text and not buttons(told)
        assert (await matter(bot, 1)).state == State.RESOLVED
        async with bot.svc.store.read() as tx:  # queued with the change, in its transaction
            events = await tx.events(1)
        assert events[-1].kind == "resolved"


async def test_resolving_from_below_can_be_forbidden_by_config(make_bot: Any) -> None:
    async with make_bot(town(escalation={"resolve_from_below": False})) as bot:
        await report(bot)
        bot.say(U1_CHAT, HEAD1, "/escalate 1 需要社区")
        await bot.wait_bot(C1_CHAT, "上报至社区")
        bot.say(U1_CHAT, HEAD1, "/resolve 1 已处理")
        await bot.wait_bot(U1_CHAT, "事项 #1 现由社区负责")
        assert (await matter(bot, 1)).state == State.OPEN
        await bot.done(C1_CHAT, bot.say(C1_CHAT, POLICE, "/resolve 1 社区已处理"))


async def test_buttons_on_a_card_held_above(make_bot: Any) -> None:
    async with make_bot() as bot:
        card = await report(bot)
        bot.say(U1_CHAT, HEAD1, "/escalate 1 需要社区")
        await bot.wait_bot(C1_CHAT, "上报至社区")
        head = bot.user(HEAD1, "蒋建国")
        bot.api.press_button(U1_CHAT, head, card.message_id, "v1:claim:1")  # 认领: the community holds it
        await bot.api.wait_for(lambda: len(bot.api.callback_answers) == 1)
        answer = bot.api.callback_answers[-1]
        assert answer["show_alert"] and "现由社区负责" in answer["text"]
        assert (await matter(bot, 1)).claimed_by is None
        bot.api.press_button(U1_CHAT, head, card.message_id, "v1:resolve:1")  # 解决: allowed, the community told
        await bot.api.wait_for(lambda: len(bot.api.callback_answers) == 2)
        assert not bot.api.callback_answers[-1].get("show_alert")
        await bot.wait_bot(C1_CHAT, "事项 #1 已由 蒋建国 解决")
        assert (await matter(bot, 1)).state == State.RESOLVED


async def test_a_matter_closed_by_a_higher_tier_is_reopened_by_that_tier(make_bot: Any) -> None:
    async with make_bot() as bot:
        await report(bot)
        # The community closes a matter the unit held.
        await bot.done(C1_CHAT, bot.say(C1_CHAT, POLICE, "/close 1 不属于本辖区"))
        bot.say(U1_CHAT, HEAD1, "/reopen 1 我们能处理")
        await bot.wait_bot(U1_CHAT, "事项 #1 由社区办结，只有社区或上级可以重新打开")
        bot.say(U1_CHAT, RESIDENT, "/reopen 1 还没解决")
        await bot.api.wait_for(lambda: bot.count_bot(U1_CHAT, "由社区办结") == 2)
        assert (await matter(bot, 1)).state == State.UNRESOLVABLE
        bot.say(STATION_CHAT, STAFF, "/reopen 1 重新核实")
        await bot.wait_bot(STATION_CHAT, "事项 #1 已重新打开")
        reopened = await matter(bot, 1)
        assert (reopened.state, reopened.tier) == (State.OPEN, 2)  # back where it was decided


async def test_a_reporter_cannot_withdraw_what_the_community_handles_and_the_community_hears_the_wish(
    make_bot: Any,
) -> None:
    async with make_bot() as bot:
        await report(bot, "邻居家暴")
        bot.say(U1_CHAT, HEAD1, "/escalate 1 需要社区")
        await bot.wait_bot(C1_CHAT, "上报至社区")
        bot.say(U1_CHAT, RESIDENT, "/cancel 1")
        await bot.wait_bot(U1_CHAT, "事项 #1 现由社区处理，不能撤回。您希望撤回的意愿已转告社区")
        wish = await bot.wait_bot(C1_CHAT, "报告人希望撤回事项 #1")
        assert "邻居家暴" in wish.text
        bot.say(U1_CHAT, RESIDENT, "/cancel 1")  # asking again refuses again, and pings nobody again
        await bot.api.wait_for(lambda: bot.count_bot(U1_CHAT, "不能撤回") == 2)
        await bot.settle()
        assert bot.count_bot(C1_CHAT, "报告人希望撤回") == 1
        assert (await matter(bot, 1)).state == State.OPEN


async def test_cancel_by_someone_else_names_the_reporter_rule(make_bot: Any) -> None:
    async with make_bot() as bot:
        await report(bot)
        bot.say(U1_CHAT, RESIDENT2, "/cancel 1")
        bot.say(U1_CHAT, HEAD1, "/cancel 1")  # a head is not the reporter either
        await bot.api.wait_for(lambda: bot.count_bot(U1_CHAT, "只有反映这件事项的本人可以撤回") == 2)
        assert bot.count_bot(U1_CHAT, "只有本单元的负责人") == 0
        assert (await matter(bot, 1)).state == State.OPEN


async def test_work_commands_in_a_private_chat_say_where_to_send_them(make_bot: Any) -> None:
    async with make_bot() as bot:
        await report(bot)
        bot.api.add_chat(HEAD1, None, "private")
        for command in ("/claim 1", "/resolve 1 好了", "/close 1 x", "/list", "/summary", "/duty", "/export week"):
            bot.say(HEAD1, HEAD1, command)
        await bot.api.wait_for(lambda: bot.count_bot(HEAD1, "请在你所在单元、社区或派出所的群里发送") == 7)
        assert bot.count_bot(HEAD1, "本群还没有登记") == 0
        assert (await matter(bot, 1)).state == State.OPEN


async def test_suspensions_are_bounded_shown_everywhere_and_long_ones_told_above(make_bot: Any) -> None:
    async with make_bot() as bot:
        card = await report(bot)
        bot.say(U1_CHAT, HEAD1, "/suspend 1 99999d 等待")
        await bot.wait_bot(U1_CHAT, "挂起时间最长 30天")
        bot.say(U1_CHAT, HEAD1, "/suspend 1 9999-12-31 等待")
        await bot.api.wait_for(lambda: bot.count_bot(U1_CHAT, "挂起时间最长 30天") == 2)
        assert (await matter(bot, 1)).suspended_until is None
        bot.say(U1_CHAT, HEAD1, "/suspend 1 3d 等待鉴定")  # short: the community is not bothered
        await bot.wait_bot(U1_CHAT, "事项 #1 已挂起，2026-11-27 恢复计时")
        await bot.settle()
        assert bot.api.bot_messages(C1_CHAT) == []
        bot.say(U1_CHAT, HEAD1, "/resume 1")
        await bot.wait_bot(U1_CHAT, "事项 #1 已恢复计时")
        bot.say(U1_CHAT, HEAD1, "/suspend 1 12-10 等待法院开庭")  # 16 days: past suspend.notify_above
        told = await bot.wait_bot(C1_CHAT, "事项 #1 已由单元挂起")
        assert "2026-12-10 恢复计时" in told.text and "等待法院开庭" in told.text
        await bot.api.wait_for(lambda: "2026-12-10 恢复计时" in card.text)
        for chat in (U1_CHAT, C1_CHAT):
            bot.say(chat, HEAD1 if chat == U1_CHAT else POLICE, "/list")
            listed = await bot.wait_bot(chat, "未结事项")
            assert "挂起至 2026-12-10" in listed.text
        bot.say(C1_CHAT, POLICE, "/show 1")
        assert "2026-12-10 恢复计时" in (await bot.wait_bot(C1_CHAT, "时间线")).text


async def test_suspension_limits_come_from_config(make_bot: Any) -> None:
    async with make_bot(town(suspend={"max": "90d", "notify_above": "60d"})) as bot:
        await report(bot)
        bot.say(U1_CHAT, HEAD1, "/suspend 1 45d 等待")
        await bot.wait_bot(U1_CHAT, "事项 #1 已挂起")
        await bot.settle()
        assert bot.api.bot_messages(C1_CHAT) == []


async def test_anonymous_admins_and_channel_posts_may_report_but_not_act(make_bot: Any) -> None:
    async with make_bot() as bot:
        bot.api.anonymous_admin(U1_CHAT, "/report 小区门口路灯坏了")
        card = await bot.wait_bot(U1_CHAT, "路灯坏了")
        assert "报告人：第一村民小组" in card.text and "tg://user?id=-201" not in card.source
        bot.api.channel_post(U1_CHAT, -1009, "苏溪发布", "/report 频道转来的线索")
        second = await bot.wait_bot(U1_CHAT, "频道转来的线索")
        assert "报告人：苏溪发布" in second.text
        # Another anonymous admin (the same "Group" user) cannot withdraw the first one's report,
        # and neither can the first: nobody anonymous acts on a matter.
        bot.api.anonymous_admin(U1_CHAT, "/cancel 1")
        bot.api.anonymous_admin(U1_CHAT, "/claim 1")
        bot.api.channel_post(U1_CHAT, -1009, "苏溪发布", "/cancel 2")
        await bot.api.wait_for(lambda: bot.count_bot(U1_CHAT, "请以个人身份发言后再操作") == 3)
        assert (await matter(bot, 1)).state == State.OPEN and (await matter(bot, 2)).state == State.OPEN
        # A head resolves it: the "reporter" is a chat, told by name, and never asked to rate.
        bot.say(U1_CHAT, HEAD1, "/resolve 1 已报修")
        await bot.wait_bot(U1_CHAT, "第一村民小组，您反映的事项 #1 已由")
        await bot.settle()
        assert bot.count_bot(U1_CHAT, "请评价处理结果") == 0
