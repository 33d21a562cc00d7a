"""/lang switches one chat's language: replies, cards, pings and notices sent there follow."""

from __future__ import annotations

from typing import Any

from tests.conftest import (
    C1_CHAT,
    HEAD1,
    HEAD2,
    POLICE,
    RESIDENT,
    STAFF,
    STATION_CHAT,
    U1_CHAT,
    U2_CHAT,
)

H = 3600.0
STRANGE_CHAT = -999


async def test_lang_switches_one_chat_only_and_what_is_sent_there_follows(make_bot: Any, bot_database: str) -> None:
    database = bot_database
    async with make_bot(database=database) as bot:
        bot.say(U1_CHAT, HEAD1, "/lang en")
        await bot.wait_bot(U1_CHAT, "This chat now speaks English.")
        bot.say(U1_CHAT, RESIDENT, "/report Water leaking from the ceiling")
        card = await bot.wait_bot(U1_CHAT, "Matter #1 · 第一村民小组")
        assert "Reported by" in card.text and "Category" in card.text
        bot.say(U2_CHAT, RESIDENT, "/report 楼上漏水")  # the other unit's group stays Chinese
        assert "报告人" in (await bot.wait_bot(U2_CHAT, "事项 #2 · 第二村民小组")).text
        bot.say(U1_CHAT, RESIDENT, "/chatid")
        await bot.wait_bot(U1_CHAT, "This chat's id")
        bot.say(U2_CHAT, RESIDENT, "/chatid")
        await bot.wait_bot(U2_CHAT, "本群 ID")

        bot.say(C1_CHAT, POLICE, "/lang en")  # the community reads English, whatever the unit speaks
        await bot.wait_bot(C1_CHAT, "This chat now speaks English.")
        bot.clock.advance(1.5 * H)
        ping = await bot.wait_bot(C1_CHAT, "Matter #2 escalated to the community")
        assert "第二村民小组" in ping.text
        bot.say(STATION_CHAT, STAFF, "/broadcast 注意防火")
        assert "Notice from 苏溪派出所" in (await bot.wait_bot(U1_CHAT, "注意防火")).text
        assert "苏溪派出所通知" in (await bot.wait_bot(U2_CHAT, "注意防火")).text
    async with make_bot(database=database) as bot:  # the choice survives a restart
        bot.say(U1_CHAT, RESIDENT, "/report Broken street lamp")
        await bot.wait_bot(U1_CHAT, "Matter #3")
        bot.say(U1_CHAT, HEAD1, "/lang zh")
        await bot.wait_bot(U1_CHAT, "本群语言已设为中文")
        await bot.done(U1_CHAT, bot.say(U1_CHAT, HEAD1, "/claim 3"))


async def test_only_leaders_of_the_chat_may_switch_a_group(make_bot: Any) -> None:
    async with make_bot() as bot:
        bot.say(U1_CHAT, RESIDENT, "/lang en")
        await bot.wait_bot(U1_CHAT, "只有本群所属单元及上级的负责人")
        bot.say(U1_CHAT, HEAD2, "/lang en")  # the head of another unit
        await bot.api.wait_for(lambda: bot.count_bot(U1_CHAT, "只有本群所属单元及上级的负责人") == 2)
        bot.say(U1_CHAT, RESIDENT, "/lang")
        current = await bot.wait_bot(U1_CHAT, "当前语言：中文")
        assert "用法：/lang zh" in current.text
        bot.say(U1_CHAT, POLICE, "/lang fr")
        await bot.api.wait_for(lambda: bot.count_bot(U1_CHAT, "用法：/lang zh") == 2)
        bot.say(U1_CHAT, POLICE, "/lang English")  # a leader above the unit
        await bot.wait_bot(U1_CHAT, "This chat now speaks English.")
        bot.api.add_chat(STRANGE_CHAT, "外面的群")
        bot.say(STRANGE_CHAT, POLICE, "/lang en")
        await bot.wait_bot(STRANGE_CHAT, "请先使用 /bind")
        async with bot.svc.store.read() as tx:
            assert await tx.chat_languages() == {U1_CHAT: "en"}


async def test_lang_in_a_private_chat_is_the_persons_own(make_bot: Any) -> None:
    async with make_bot() as bot:
        bot.say(RESIDENT, RESIDENT, "/lang en")
        await bot.wait_bot(RESIDENT, "I will answer you in English.")
        bot.say(RESIDENT, RESIDENT, "/chatid")
        await bot.wait_bot(RESIDENT, "This chat's id")
        bot.say(U1_CHAT, RESIDENT, "/chatid")  # the group keeps its own language
        await bot.wait_bot(U1_CHAT, "本群 ID")
