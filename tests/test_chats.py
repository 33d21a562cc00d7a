"""The other ways in: keyword reports, "/report" alone, photos, @botname; chats outside
the tree and /bind; /list, /show, /chatid."""

from __future__ import annotations

from typing import Any

from bot.dev.fakeapi import buttons
from tests.conftest import (
    C1_CHAT,
    HEAD1,
    POLICE,
    RESIDENT,
    RESIDENT2,
    STATION_CHAT,
    U1_CHAT,
    U2_CHAT,
    U3_CHAT,
    Running,
)

H = 3600.0
STRANGE_CHAT = -999
U4_HEAD = 34


async def count_matters(bot: Running) -> int:
    async with bot.svc.store.read() as tx:
        matters = await tx.open_matters([u.id for u in bot.svc.tree.units()])
    return len(matters)


async def test_keyword_messages_are_reports(make_bot: Any) -> None:
    async with make_bot() as bot:
        bot.say(U1_CHAT, RESIDENT, "上报：小区门口路灯坏了一周")
        card = await bot.wait_bot(U1_CHAT, "事项 #1")
        assert "小区门口路灯坏了一周" in card.text and "上报：" not in card.text.split("\n")[1]
        bot.say(U1_CHAT, RESIDENT, "#纠纷 隔壁装修占用楼道")
        await bot.wait_bot(U1_CHAT, "事项 #2")
        bot.say(U1_CHAT, RESIDENT, "大家好，今天天气不错")  # ordinary chatter is not a report
        await bot.settle()
        assert await count_matters(bot) == 2


async def test_report_alone_asks_and_takes_the_reply(make_bot: Any) -> None:
    async with make_bot() as bot:
        bot.say(U1_CHAT, RESIDENT, "/report")
        ask = await bot.wait_bot(U1_CHAT, "请说明发生了什么")
        forced = [c for c in bot.api.calls_to("sendMessage") if "force_reply" in str(c.params.get("reply_markup"))]
        assert forced, "the question forces a reply so it reaches the bot in privacy mode"
        bot.say(U1_CHAT, RESIDENT2, "我只是路过")  # someone else talking: not their answer
        bot.say(U1_CHAT, RESIDENT, "楼下烧烤店油烟太大", reply_to_message_id=ask.message_id)
        card = await bot.wait_bot(U1_CHAT, "事项 #1")
        assert "楼下烧烤店油烟太大" in card.text
        bot.say(U1_CHAT, RESIDENT, "谢谢")  # the question was answered once
        await bot.settle()
        assert await count_matters(bot) == 1


async def test_photo_with_report_caption_and_report_at_botname(make_bot: Any) -> None:
    async with make_bot() as bot:
        bot.api.send_photo(U1_CHAT, bot.user(RESIDENT), caption="/report 井盖丢失，很危险", file_id="ph1")
        card = await bot.wait_bot(U1_CHAT, "井盖丢失，很危险")
        assert "附件 1 个" in card.text
        bot.say(U1_CHAT, RESIDENT, f"/report@{bot.api.bot_username} 电动车楼道充电")
        await bot.wait_bot(U1_CHAT, "电动车楼道充电")
        bot.say(U1_CHAT, RESIDENT, "/report@some_other_bot 不是给我们的")
        bot.api.send_photo(U1_CHAT, bot.user(RESIDENT), caption="/report@some_other_bot 也不是")
        await bot.settle()
        assert await count_matters(bot) == 2


async def test_over_long_and_empty_reports_get_a_polite_answer(make_bot: Any) -> None:
    async with make_bot() as bot:
        bot.say(U1_CHAT, RESIDENT, "/report " + "很长" * 2001)
        await bot.wait_bot(U1_CHAT, "内容太长了")
        bot.say(U1_CHAT, RESIDENT, "上报")
        await bot.wait_bot(U1_CHAT, "请写明发生了什么")
        assert await count_matters(bot) == 0


async def test_chats_outside_the_tree_log_nothing_until_bound(make_bot: Any) -> None:
    async with make_bot() as bot:
        bot.api.add_chat(STRANGE_CHAT, "商铺街群")
        bot.say(STRANGE_CHAT, RESIDENT, "/report 有人打架")
        await bot.wait_bot(STRANGE_CHAT, "还没有登记")
        bot.say(STRANGE_CHAT, RESIDENT, "上报 有人打架")
        bot.say(STRANGE_CHAT, RESIDENT, "/list")
        await bot.wait_bot(STRANGE_CHAT, "请先使用 /bind")
        assert await count_matters(bot) == 0

        bot.say(STRANGE_CHAT, RESIDENT, "/chatid")
        await bot.wait_bot(STRANGE_CHAT, f"本群 ID：{STRANGE_CHAT}")
        bot.say(STRANGE_CHAT, RESIDENT, "/bind u4")  # a resident may not bind
        await bot.wait_bot(STRANGE_CHAT, "只有 商铺街 及上级的负责人")
        bot.say(STRANGE_CHAT, HEAD1, "/bind u4")  # nor a head of another unit
        await bot.api.wait_for(lambda: bot.count_bot(STRANGE_CHAT, "只有 商铺街") == 2)
        bot.say(STRANGE_CHAT, U4_HEAD, "/bind nowhere")
        await bot.wait_bot(STRANGE_CHAT, "没有编号为 nowhere 的节点")
        bot.say(STRANGE_CHAT, U4_HEAD, "/bind u4")
        await bot.wait_bot(STRANGE_CHAT, "本群已登记为 商铺街（单元）")

        bot.say(STRANGE_CHAT, RESIDENT, "/report 有人打架")
        await bot.wait_bot(STRANGE_CHAT, "事项 #1 · 商铺街")
        async with bot.svc.store.read() as tx:
            assert (await tx.bindings())[STRANGE_CHAT] == "u4"


async def test_bindings_survive_a_restart(make_bot: Any, bot_database: str) -> None:
    database = bot_database
    async with make_bot(database=database) as bot:
        bot.api.add_chat(STRANGE_CHAT, "商铺街群")
        bot.say(STRANGE_CHAT, U4_HEAD, "/bind u4")
        await bot.wait_bot(STRANGE_CHAT, "本群已登记为")
    async with make_bot(database=database) as bot:
        bot.say(STRANGE_CHAT, RESIDENT, "/report 消防通道被占")
        await bot.wait_bot(STRANGE_CHAT, "事项 #1 · 商铺街")


async def test_report_outside_a_unit_group_says_where_to_go(make_bot: Any) -> None:
    async with make_bot() as bot:
        bot.say(C1_CHAT, RESIDENT, "/report 有事")
        await bot.wait_bot(C1_CHAT, "请在单元群里上报事项；本群是社区群")
        assert await count_matters(bot) == 0


async def test_list_shows_open_matters_overdue_first_and_show_has_the_timeline(make_bot: Any) -> None:
    async with make_bot() as bot:
        bot.say(U1_CHAT, RESIDENT, "/report 第一件：楼道杂物")
        await bot.wait_bot(U1_CHAT, "事项 #1")
        bot.clock.advance(2 * H)  # matter 1 goes overdue and climbs
        await bot.wait_bot(C1_CHAT, "事项 #1 上报至社区")
        bot.say(U1_CHAT, RESIDENT, "/report 第二件：噪音")
        await bot.wait_bot(U1_CHAT, "事项 #2")
        bot.say(U2_CHAT, RESIDENT, "/report 第三件：别的小组")
        await bot.wait_bot(U2_CHAT, "事项 #3")

        bot.say(U1_CHAT, HEAD1, "/list")
        listing = await bot.wait_bot(U1_CHAT, "未结事项")
        lines = listing.text.splitlines()
        assert "第一村民小组 未结事项 2 件" in lines[0]
        assert lines[1].startswith("#1") and "超期" in lines[1] and lines[2].startswith("#2")
        bot.say(C1_CHAT, POLICE, "/list")  # the community sees all its units
        community = await bot.wait_bot(C1_CHAT, "未结事项")
        assert "未结事项 3 件" in community.text

        await bot.done(U1_CHAT, bot.say(U1_CHAT, HEAD1, "/note 1 已联系物业，明天清理"))
        bot.say(U1_CHAT, HEAD1, "/show 1")
        details = await bot.wait_bot(U1_CHAT, "时间线")
        assert "上报至社区" in details.text and "进展 · 用户31：已联系物业，明天清理" in details.text
        assert "适用期限：单元 认领1小时/解决1天" in details.text
        bot.say(U3_CHAT, HEAD1, "/show 1")
        await bot.wait_bot(U3_CHAT, "不属于本群")
        bot.say(STATION_CHAT, HEAD1, "/show 3")  # the station sees the whole town
        await bot.wait_bot(STATION_CHAT, "第三件：别的小组")
        bot.say(U2_CHAT, RESIDENT, "/list")
        assert "时间线" not in (await bot.wait_bot(U2_CHAT, "未结事项")).text


async def test_stale_or_forged_buttons_get_a_clear_toast(make_bot: Any) -> None:
    async with make_bot() as bot:
        bot.say(U1_CHAT, RESIDENT, "/report 漏水")
        card = await bot.wait_bot(U1_CHAT, "事项 #1")
        bot.api.press_button(U1_CHAT, bot.user(HEAD1), card.message_id, "v0:claim:1")
        bot.api.press_button(U1_CHAT, bot.user(HEAD1), card.message_id, "v1:explode:1")
        await bot.api.wait_for(lambda: len(bot.api.callback_answers) == 2)
        assert all("按钮已失效" in (a.get("text") or "") for a in bot.api.callback_answers)
        bot.say(U1_CHAT, HEAD1, "/resolve 1")
        await bot.api.wait_for(lambda: not buttons(card))
        bot.api.press_button(U1_CHAT, bot.user(HEAD1), card.message_id, "v1:claim:1")
        await bot.api.wait_for(lambda: len(bot.api.callback_answers) == 3)
        assert "已经解决了" in bot.api.callback_answers[-1]["text"]


async def test_a_long_report_is_cut_cleanly_on_its_card_and_whole_in_show(make_bot: Any) -> None:
    async with make_bot() as bot:
        long_text = "".join(f"第{i}句话，情况比较复杂。" for i in range(250))  # about 3,300 characters
        bot.say(U1_CHAT, RESIDENT, "/report " + long_text)
        card = await bot.wait_bot(U1_CHAT, "事项 #1")
        assert len(card.text) <= 4096 and "……（全文见 /show 1）" in card.text
        assert long_text[:2000] in card.text
        async with bot.svc.store.read() as tx:
            assert (await tx.matter(1)).text == long_text  # the whole text is kept
        bot.say(U1_CHAT, HEAD1, "/show 1")
        await bot.wait_bot(U1_CHAT, "时间线")
        shown = "".join(m.text for m in bot.api.bot_messages(U1_CHAT)[1:])
        assert long_text in shown and all(len(m.text) <= 4096 for m in bot.api.bot_messages(U1_CHAT))
