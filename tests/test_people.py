"""End to end, the residents' side: private reports from the deep link to the heads' DM
with the group seeing no text; attachments by reply; ratings, where 不满意 reopens;
/my and /cancel."""

from __future__ import annotations

from typing import Any

import pytest

from bot.dev.fakeapi import buttons
from escalation.policy import State
from tests.conftest import C1_CHAT, HEAD1, RESIDENT, RESIDENT2, U1_CHAT, Running

pytestmark = pytest.mark.both_engines  # on SQLite and on PostgreSQL (issue 17)

H = 3600.0
SECRET = "丈夫酒后动手，不敢在群里说"


async def matter(bot: Running, number: int) -> Any:
    async with bot.svc.store.read() as tx:
        return await tx.matter(number)


def open_private(bot: Running, user: int) -> None:
    bot.api.add_chat(user, None, "private")


async def test_private_report_from_the_card_button_reaches_heads_by_dm_and_not_the_group(make_bot: Any) -> None:
    async with make_bot() as bot:
        open_private(bot, HEAD1)
        bot.say(HEAD1, HEAD1, "/start")  # the head opened a private chat with the bot once
        await bot.wait_bot(HEAD1, "三级联动治理机器人")
        bot.say(U1_CHAT, RESIDENT2, "/report 路灯坏了")
        card = await bot.wait_bot(U1_CHAT, "事项 #1")
        link = dict(buttons(card))["私下反映"]
        assert link == f"https://t.me/{bot.api.bot_username}?start=p_u1"

        open_private(bot, RESIDENT)
        bot.say(RESIDENT, RESIDENT, "/start p_u1")  # what Telegram sends when the link is opened
        await bot.wait_bot(RESIDENT, "您正在向 第一村民小组 私下反映")
        bot.say(RESIDENT, RESIDENT, SECRET)
        await bot.wait_bot(RESIDENT, "私下反映的事项 #2")
        dm = await bot.wait_bot(HEAD1, SECRET)  # the head reads it in full, by DM
        assert "事项 #2" in dm.text and ("认领", "v1:claim:2") in buttons(dm)
        community = await bot.wait_bot(C1_CHAT, "私下反映的事项 #2")  # the leaders above, in their chat
        assert SECRET in community.text
        stub = await bot.wait_bot(U1_CHAT, "事项 #2")
        await bot.settle()
        group_text = "\n".join(m.text for m in bot.api.messages(U1_CHAT))
        assert SECRET not in group_text and f"id={RESIDENT}" not in stub.source  # no text, no name
        assert "私下反映的事项" in stub.text
        assert (await matter(bot, 2)).private

        # The head claims from the DM; the reporter hears back in private, the group sees the state.
        bot.api.press_button(HEAD1, bot.user(HEAD1, "蒋建国"), dm.message_id, "v1:claim:2")
        await bot.wait_bot(RESIDENT, "已由 蒋建国 认领")
        await bot.api.wait_for(lambda: "处理中" in stub.text)
        bot.say(U1_CHAT, HEAD1, "/list")
        listing = await bot.wait_bot(U1_CHAT, "未结事项")
        assert SECRET not in listing.text and "路灯坏了" in listing.text
        bot.say(U1_CHAT, HEAD1, "/show 2")
        shown = await bot.wait_bot(U1_CHAT, "私下反映的事项，内容仅")
        assert SECRET not in shown.text
        bot.say(U1_CHAT, HEAD1, "/escalate 2 需要社区介入")  # up: the community sees the text…
        up = await bot.wait_bot(C1_CHAT, "事项 #2 上报至社区")
        assert SECRET in up.text
        await bot.settle()  # …the group still does not
        assert SECRET not in "\n".join(m.text for m in bot.api.messages(U1_CHAT))


async def test_report_in_a_private_chat_asks_which_unit(make_bot: Any) -> None:
    async with make_bot() as bot:
        open_private(bot, RESIDENT)
        bot.say(RESIDENT, RESIDENT, "/report 有人冒充客服诈骗老人")
        choose = await bot.wait_bot(RESIDENT, "请选择要反映的单元")
        assert buttons(choose) == []  # no past reports: search by name
        bot.say(RESIDENT, RESIDENT, "不存在的地方")
        await bot.wait_bot(RESIDENT, "没有找到名称含“不存在的地方”的单元")
        bot.say(RESIDENT, RESIDENT, "第二")
        await bot.api.wait_for(lambda: bot.count_bot(RESIDENT, "请选择要反映的单元") == 2)
        found = bot.api.bot_messages(RESIDENT)[-1]
        assert buttons(found) == [("第二村民小组", "v1:pu:u2")]
        bot.api.press_button(RESIDENT, bot.user(RESIDENT), found.message_id, "v1:pu:u2")
        await bot.wait_bot(RESIDENT, "私下反映的事项 #1")
        reported = await matter(bot, 1)
        assert (reported.unit_id, reported.private, reported.text) == ("u2", True, "有人冒充客服诈骗老人")


async def test_photos_voice_and_places_replying_to_a_card_join_the_matter(make_bot: Any) -> None:
    async with make_bot() as bot:
        bot.say(U1_CHAT, RESIDENT, "/report 井盖松动")
        card = await bot.wait_bot(U1_CHAT, "事项 #1")
        bot.api.send_photo(U1_CHAT, bot.user(RESIDENT), file_id="ph-lid", reply_to_message_id=card.message_id)
        await bot.wait_bot(U1_CHAT, "已添加到事项 #1")
        bot.api.send_voice(U1_CHAT, bot.user(RESIDENT), file_id="vo-1", reply_to_message_id=card.message_id)
        bot.api.send_location(U1_CHAT, bot.user(RESIDENT), 29.33, 120.06, reply_to_message_id=card.message_id)
        await bot.api.wait_for(lambda: "附件 3 个" in card.text)
        bot.api.send_photo(U1_CHAT, bot.user(RESIDENT2), caption="#1 我也拍了", file_id="ph-2")
        await bot.wait_bot(U1_CHAT, "只有本单元的负责人和上级领导")  # not the reporter, not a head
        bot.api.send_photo(U1_CHAT, bot.user(RESIDENT), file_id="ph-holiday")  # about nothing
        await bot.settle()
        async with bot.svc.store.read() as tx:
            assert await tx.attachments(1) == [("photo", "ph-lid"), ("voice", "vo-1"), ("location", "29.33,120.06")]
        bot.say(U1_CHAT, HEAD1, "/show 1")
        shown = await bot.wait_bot(U1_CHAT, "附件：")
        assert "照片 1 · 语音 1 · 位置 1" in shown.text
        bot.clock.advance(1 * H)  # escalations carry them up
        await bot.wait_bot(C1_CHAT, "上报至社区")
        await bot.api.wait_for(lambda: len(bot.api.messages(C1_CHAT)) == 4)
        kinds = [next(k for k in ("photo", "voice", "location") if k in m.raw) for m in bot.api.messages(C1_CHAT)[1:]]
        assert kinds == ["photo", "voice", "location"]


async def test_a_rating_is_the_reporters_and_unsatisfied_reopens_with_a_reason(make_bot: Any) -> None:
    async with make_bot() as bot:
        bot.say(U1_CHAT, RESIDENT, "/report 楼上漏水")
        card = await bot.wait_bot(U1_CHAT, "事项 #1")
        bot.say(U1_CHAT, HEAD1, "/resolve 1 已修好")
        ask = await bot.wait_bot(U1_CHAT, "请评价处理结果")
        bot.api.press_button(U1_CHAT, bot.user(RESIDENT2), ask.message_id, "v1:rate:1:satisfied")
        await bot.api.wait_for(lambda: any("只有报告人" in (a.get("text") or "") for a in bot.api.callback_answers))
        bot.api.press_button(U1_CHAT, bot.user(RESIDENT), ask.message_id, "v1:rate:1:unsatisfied")
        await bot.api.wait_for(lambda: "感谢您的评价：不满意" in ask.text)
        why = await bot.wait_bot(U1_CHAT, "请回复本条消息说明原因")
        await bot.wait_bot(U1_CHAT, "报告人对事项 #1 的处理结果不满意")
        reopened = await matter(bot, 1)
        assert (reopened.state, reopened.rating, reopened.tier) == (State.OPEN, "unsatisfied", 3)
        await bot.api.wait_for(lambda: ("认领", "v1:claim:1") in buttons(card))
        bot.say(U1_CHAT, RESIDENT, "还是在漏，天花板都湿了", reply_to_message_id=why.message_id)
        await bot.wait_bot(U1_CHAT, "报告人说明不满意的原因（事项 #1）：还是在漏")
        async with bot.svc.store.read() as tx:
            kinds = [e.kind for e in await tx.events(1)]
        assert kinds[-3:] == ["rated", "reopened", "note"]
        assert len(await _matters(bot)) == 1  # the reason did not become a new report


async def test_no_answer_in_time_is_no_rating(make_bot: Any) -> None:
    async with make_bot() as bot:
        bot.say(U1_CHAT, RESIDENT, "/report 垃圾桶满了")
        await bot.wait_bot(U1_CHAT, "事项 #1")
        bot.say(U1_CHAT, HEAD1, "/resolve 1 已清运")
        ask = await bot.wait_bot(U1_CHAT, "请评价处理结果")
        bot.clock.advance(4 * 24 * H)  # asked for three days
        bot.api.press_button(U1_CHAT, bot.user(RESIDENT), ask.message_id, "v1:rate:1:satisfied")
        await bot.api.wait_for(lambda: any("评价时间已过" in (a.get("text") or "") for a in bot.api.callback_answers))
        assert (await matter(bot, 1)).rating is None


async def test_my_lists_my_matters_and_cancel_withdraws_my_own(make_bot: Any) -> None:
    async with make_bot() as bot:
        bot.say(U1_CHAT, RESIDENT, "/report 第一件")
        await bot.wait_bot(U1_CHAT, "事项 #1")
        bot.say(U1_CHAT, RESIDENT2, "/report 别人的")
        await bot.wait_bot(U1_CHAT, "事项 #2")
        bot.say(U1_CHAT, RESIDENT, "/cancel 2")
        await bot.wait_bot(U1_CHAT, "只有反映这件事项的本人可以撤回")
        bot.say(U1_CHAT, RESIDENT, "/cancel 1")
        await bot.wait_bot(U1_CHAT, "事项 #1 已撤回")
        assert (await matter(bot, 1)).state == State.CANCELLED
        bot.say(U1_CHAT, RESIDENT, "/my")
        mine = await bot.wait_bot(U1_CHAT, "您反映的事项")
        assert "#1 ↩️ 已撤回" in mine.text and "#2" not in mine.text
        bot.clock.advance(5 * H)
        await bot.settle()
        assert "事项 #1 上报" not in "\n".join(m.text for m in bot.api.bot_messages(C1_CHAT))


async def _matters(bot: Running) -> list[Any]:
    async with bot.svc.store.read() as tx:
        return await tx.matters_of(RESIDENT)
