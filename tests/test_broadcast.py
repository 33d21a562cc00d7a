"""/broadcast (一点发起、全网响应): a station's or community's leaders push a notice to every
unit group below them, paced through the outbox, and get one delivery report."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import (
    C1_CHAT,
    C2_CHAT,
    HEAD1,
    POLICE,
    RESIDENT,
    STAFF,
    STATION_CHAT,
    U1_CHAT,
    U2_CHAT,
    U3_CHAT,
    Running,
    town,
)

pytestmark = pytest.mark.both_engines  # on SQLite and on PostgreSQL (issue 17)

EXTRA = 17  # units added to the test town's three with groups: twenty targets in all
EXTRA_CHATS = [-1000 - i for i in range(EXTRA)]
NOTICE = "近期冒充客服退款的诈骗多发，请勿向陌生人转账 <b>&"


def big_town() -> dict[str, Any]:
    raw = town()
    communities = raw["station"]["communities"]
    for i, chat in enumerate(EXTRA_CHATS):
        communities[i % 2]["units"].append(
            {"id": f"x{i}", "name": f"新增单元{i}", "kind": "village", "chat_id": chat, "heads": [500 + i]}
        )
    return raw


async def broadcasts(bot: Running) -> int:
    async with bot.svc.store.read() as tx:
        count = 0
        while await tx.broadcast(count + 1) is not None:
            count += 1
    return count


async def test_station_broadcast_reaches_every_unit_group_and_reports_once(make_bot: Any, bot_database: str) -> None:
    database = bot_database
    async with make_bot(big_town(), database=database) as bot:
        bot.api.remove_bot_from(U2_CHAT)  # 第二村民小组 removed the bot
        bot.say(STATION_CHAT, STAFF, f"/broadcast {NOTICE}")
        await bot.wait_bot(STATION_CHAT, "通知 #1 正在发往 20 个单元群")
        report = await bot.wait_bot(STATION_CHAT, "已发送完毕", within=10)
        assert "送达 19 个群，未送达 1 个" in report.text
        assert "未送达：第二村民小组" in report.text
        assert report.reply_to is not None, "the report answers the /broadcast message"
        for chat in [U1_CHAT, U3_CHAT, *EXTRA_CHATS]:
            (notice,) = bot.api.bot_messages(chat)
            assert notice.text == f"📢 苏溪派出所通知\n{NOTICE}"  # the leader's HTML shown as typed
        assert bot.api.bot_messages(U2_CHAT) == []
        await bot.settle()
        assert bot.count_bot(STATION_CHAT, "已发送完毕") == 1
        async with bot.svc.store.read() as tx:
            recorded = await tx.broadcast(1)
        assert recorded is not None and recorded.targets == 20 and recorded.reported_at is not None
        assert recorded.sender_id == STAFF and recorded.text == NOTICE
    async with make_bot(big_town(), database=database) as bot:  # a restart reports nothing again
        await bot.settle()
        assert bot.count_bot(STATION_CHAT, "已发送完毕") == 1


async def test_a_broadcast_waiting_on_a_retry_is_reported_after_a_restart(make_bot: Any, bot_database: str) -> None:
    database = bot_database
    async with make_bot(database=database) as bot:
        bot.api.fail("sendMessage", chat_id=U3_CHAT, status=500)  # retried later (the clock stands still)
        bot.say(STATION_CHAT, STAFF, "/broadcast 今晚有暴雨，请注意防汛")
        await bot.wait_bot(U1_CHAT, "今晚有暴雨")
        await bot.wait_bot(U2_CHAT, "今晚有暴雨")
        await bot.settle()
        assert bot.count_bot(STATION_CHAT, "已发送完毕") == 0
    async with make_bot(database=database) as bot:
        report = await bot.wait_bot(STATION_CHAT, "已发送完毕")
        assert "送达 3 个群，未送达 0 个" in report.text
        await bot.wait_bot(U3_CHAT, "今晚有暴雨")
        await bot.settle()
        assert bot.count_bot(STATION_CHAT, "已发送完毕") == 1


async def test_a_group_lost_while_its_notice_waits_for_a_retry_is_reported_failed(make_bot: Any) -> None:
    async with make_bot() as bot:
        bot.api.fail("sendMessage", chat_id=U3_CHAT, status=500)
        bot.say(STATION_CHAT, STAFF, "/broadcast 防范电信诈骗")
        await bot.wait_bot(U1_CHAT, "防范电信诈骗")
        await bot.wait_bot(U2_CHAT, "防范电信诈骗")
        await bot.settle()
        assert bot.count_bot(STATION_CHAT, "已发送完毕") == 0
        bot.api.remove_bot_from(U3_CHAT)  # the last target's outcome is "unreachable"
        bot.clock.advance(10)
        report = await bot.wait_bot(STATION_CHAT, "已发送完毕")
        assert "送达 2 个群，未送达 1 个" in report.text and "未送达：3幢" in report.text


async def test_a_community_broadcast_reaches_only_its_units(make_bot: Any) -> None:
    async with make_bot() as bot:
        bot.say(C1_CHAT, POLICE, "/broadcast 明天上午9点到12点停水")
        report = await bot.wait_bot(C1_CHAT, "已发送完毕")
        assert "送达 2 个群，未送达 0 个" in report.text
        assert "蒋母塘村通知" in (await bot.wait_bot(U1_CHAT, "停水")).text
        await bot.wait_bot(U2_CHAT, "停水")
        # Station staff lead every community: from a community's group, its units only (商铺街 has no group).
        bot.say(C2_CHAT, STAFF, "/broadcast 电梯年检")
        assert "送达 1 个群" in (await bot.wait_bot(C2_CHAT, "已发送完毕")).text
        await bot.wait_bot(U3_CHAT, "电梯年检")
        await bot.settle()
        assert bot.count_bot(U3_CHAT, "停水") == 0 and bot.count_bot(U1_CHAT, "电梯年检") == 0
        assert bot.api.bot_messages(STATION_CHAT) == []


async def test_residents_heads_and_other_communities_are_refused(make_bot: Any) -> None:
    async with make_bot() as bot:
        bot.say(STATION_CHAT, RESIDENT, "/broadcast 我也想发通知")
        await bot.wait_bot(STATION_CHAT, "只有派出所和社区的负责人")
        bot.say(U1_CHAT, HEAD1, "/broadcast 本组通知")  # a unit head, in the unit's group
        await bot.wait_bot(U1_CHAT, "只有派出所和社区的负责人")
        bot.say(C2_CHAT, POLICE, "/broadcast 别的社区")  # 蒋母塘村's officer in 好派新城社区's group
        await bot.wait_bot(C2_CHAT, "只有派出所和社区的负责人")
        bot.api.send_photo(U1_CHAT, bot.user(RESIDENT), caption="/broadcast 看图", file_id="ph9")
        await bot.api.wait_for(lambda: bot.count_bot(U1_CHAT, "只有派出所和社区的负责人") == 2)
        bot.say(STAFF, STAFF, "/broadcast 私聊里发")  # a private chat has no units below it
        await bot.wait_bot(STAFF, "只有派出所和社区的负责人")
        bot.say(STATION_CHAT, STAFF, "/broadcast")
        await bot.wait_bot(STATION_CHAT, "用法：/broadcast 通知内容")
        bot.say(STATION_CHAT, STAFF, "/broadcast " + "长" * 3001)
        await bot.wait_bot(STATION_CHAT, "通知太长了（最多 3000 字）")
        bot.say(STATION_CHAT, STAFF, "/broadcast " + "&" * 1000)  # fits as typed, not once escaped
        await bot.api.wait_for(lambda: bot.count_bot(STATION_CHAT, "通知太长了") == 2)
        await bot.settle()
        assert await broadcasts(bot) == 0
        assert bot.api.bot_messages(U2_CHAT) == [] and bot.api.bot_messages(U3_CHAT) == []


async def test_a_photo_broadcast_arrives_as_photos(make_bot: Any) -> None:
    async with make_bot() as bot:
        caption = "/broadcast 冬季用火安全，人走断电"
        bot.api.send_photo(STATION_CHAT, bot.user(STAFF), caption=caption, file_id="poster1")
        report = await bot.wait_bot(STATION_CHAT, "已发送完毕")
        assert "送达 3 个群" in report.text
        for chat in (U1_CHAT, U2_CHAT, U3_CHAT):
            (notice,) = bot.api.bot_messages(chat)
            assert notice.photo and notice.text == "📢 苏溪派出所通知\n冬季用火安全，人走断电"
        sent = bot.api.calls_to("sendPhoto")
        assert len(sent) == 3 and {c.params["photo"] for c in sent} == {"poster1"}
        bot.api.send_photo(C1_CHAT, bot.user(POLICE), caption="/broadcast", file_id="poster2")  # a poster alone
        await bot.api.wait_for(lambda: bot.count_bot(C1_CHAT, "已发送完毕") == 1)
        assert [m.text for m in bot.api.bot_messages(U1_CHAT) if m.photo][-1] == "📢 蒋母塘村通知"
        bot.api.send_photo(STATION_CHAT, bot.user(STAFF), caption="/broadcast@some_other_bot 不是给我们的")
        await bot.settle()
        assert await broadcasts(bot) == 2


async def test_a_notice_telegram_rejects_counts_as_failed(make_bot: Any) -> None:
    async with make_bot() as bot:
        wrong = "Bad Request: wrong file identifier/HTTP URL specified"
        bot.api.fail("sendPhoto", status=400, times=3, description=wrong)
        bot.api.send_photo(STATION_CHAT, bot.user(STAFF), caption="/broadcast 寻人启事", file_id="lost1")
        report = await bot.wait_bot(STATION_CHAT, "已发送完毕")
        assert "送达 0 个群，未送达 3 个" in report.text
        assert "第一村民小组、第二村民小组、3幢" in report.text


async def test_a_card_does_not_wait_behind_a_broadcast(make_bot: Any) -> None:
    """At 4 messages a second, twenty notices take five seconds; a report made meanwhile
    gets its card within about a second, ahead of the notices still queued."""
    raw = big_town()
    raw["telegram"]["rate_limit"]["overall_per_second"] = 4
    async with make_bot(raw) as bot:
        bot.say(STATION_CHAT, STAFF, f"/broadcast {NOTICE}")
        await bot.wait_bot(STATION_CHAT, "通知 #1 正在发往 20 个单元群")
        bot.say(U3_CHAT, RESIDENT, "/report 路灯不亮")
        await bot.wait_bot(U3_CHAT, "事项 #1", within=10)
        notices = sum(1 for chat in [U1_CHAT, U2_CHAT, U3_CHAT, *EXTRA_CHATS]
                      for m in bot.api.bot_messages(chat) if "苏溪派出所通知" in (m.text or ""))
        assert notices < 15, f"the card came after {notices} of 20 notices"
        report = await bot.wait_bot(STATION_CHAT, "已发送完毕", within=15)
        assert "送达 20 个群" in report.text


# --- composed when sent (issue 13) -----------------------------------------------------
async def test_a_broadcast_is_composed_in_each_chats_language_when_it_is_sent(make_bot: Any) -> None:
    """The copies, the acknowledgement and the report carry what their words are made of:
    a group that switches to English while its copy waits reads it in English, with the
    sender's own words as typed; the other groups read the same words as ever."""
    async with make_bot() as bot:
        bot.api.fail("sendMessage", chat_id=U1_CHAT, status=500)  # the copy waits for a retry
        bot.api.fail("sendMessage", chat_id=STATION_CHAT, status=500)  # … and the acknowledgement
        bot.say(STATION_CHAT, STAFF, f"/broadcast {NOTICE}")
        copy = await bot.wait_bot(U2_CHAT, NOTICE)
        assert copy.text == f"📢 苏溪派出所通知\n{NOTICE}"
        async with bot.svc.store.read() as tx:
            rows = await tx.outbox_due(bot.clock.now() + 1e9, limit=10)
        assert rows and all(row.text is None and row.data for row in rows), "no words are kept in the outbox"
        bot.say(U1_CHAT, HEAD1, "/lang en")
        bot.say(STATION_CHAT, STAFF, "/lang en")
        await bot.settle()
        bot.clock.advance(5)  # the retries fall due
        copy = await bot.wait_bot(U1_CHAT, NOTICE)
        assert copy.text == f"📢 Notice from 苏溪派出所\n{NOTICE}"
        queued = await bot.wait_bot(STATION_CHAT, "Notice #1 is on its way to 3 unit group(s)")
        assert queued.reply_to is not None
        report = await bot.wait_bot(STATION_CHAT, "notice #1 has been sent", within=10)
        assert report.text == f"📢 用户{STAFF}, notice #1 has been sent: delivered to 3 group(s), failed for 0."
        assert bot.api.bot_messages(U3_CHAT)[0].text == f"📢 苏溪派出所通知\n{NOTICE}"


async def test_a_broadcast_report_names_the_groups_it_missed_in_the_senders_language(make_bot: Any) -> None:
    """A sender whose Telegram speaks English, in a group that chose no language, is
    answered in English, as before; the units it missed are named."""
    async with make_bot() as bot:
        bot.api.remove_bot_from(U2_CHAT)
        bot.api.send_text(STATION_CHAT, bot.api.user(STAFF, "Officer Li", language_code="en"), "/broadcast 注意防火")
        await bot.wait_bot(STATION_CHAT, "Notice #1 is on its way to 3 unit group(s)")
        report = await bot.wait_bot(STATION_CHAT, "notice #1 has been sent", within=10)
        assert report.text == ("📢 Officer Li, notice #1 has been sent: "
                               "delivered to 2 group(s), failed for 1.\nNot delivered: 第二村民小组")
