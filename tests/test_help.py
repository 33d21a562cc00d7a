"""/help speaks to each role — residents briefly, heads, leaders — in the asker's language;
/start in a private chat explains the bot and records that the person can be reached."""

from __future__ import annotations

from typing import Any

from tests.conftest import C1_CHAT, HEAD1, POLICE, RESIDENT, STAFF, U1_CHAT, Running

STRANGE_CHAT = -999


async def help_in(bot: Running, chat: int, user: int, **user_fields: Any) -> str:
    before = len(bot.api.bot_messages(chat))
    bot.api.send_text(chat, bot.api.user(user, f"用户{user}", **user_fields), "/help")
    await bot.api.wait_for(lambda: len(bot.api.bot_messages(chat)) > before)
    return bot.api.bot_messages(chat)[-1].text or ""


async def test_help_speaks_to_each_role(make_bot: Any) -> None:
    async with make_bot() as bot:
        resident = await help_in(bot, U1_CHAT, RESIDENT)
        assert "/report 3号楼楼道堆放杂物" in resident and "/claim" not in resident and "/lang" not in resident
        head = await help_in(bot, U1_CHAT, HEAD1)
        assert "/claim 12" in head and "/resolve 12 已上门调解" in head and "/broadcast" not in head
        assert "/lang en" in head
        leader = await help_in(bot, C1_CHAT, POLICE)
        assert "/broadcast 近期冒充客服退款" in leader and "/takeover 12" in leader
        english = await help_in(bot, U1_CHAT, RESIDENT, language_code="en")  # a person's own language
        assert "Report problems in this group" in english
        bot.api.add_chat(STRANGE_CHAT, "外面的群")
        assert "/bind" in await help_in(bot, STRANGE_CHAT, RESIDENT)


async def test_start_in_private_explains_the_bot_and_records_the_chat(make_bot: Any) -> None:
    async with make_bot() as bot:
        bot.say(RESIDENT, RESIDENT, "/start")
        welcome = await bot.wait_bot(RESIDENT, "三级联动治理机器人")
        assert "怎样反映事情" in welcome.text and "/claim" not in welcome.text
        bot.say(STAFF, STAFF, "/start")
        staff = await bot.wait_bot(STAFF, "三级联动治理机器人")
        assert "/broadcast" in staff.text and "/claim 12" in staff.text
        async with bot.svc.store.read() as tx:
            assert await tx.has_private_chat(RESIDENT) and await tx.has_private_chat(STAFF)
        bot.say(U1_CHAT, RESIDENT, "/start")  # in a group: the help
        await bot.wait_bot(U1_CHAT, "有事请在本群反映")


async def test_help_follows_a_persons_language_choice(make_bot: Any) -> None:
    async with make_bot() as bot:
        bot.say(RESIDENT, RESIDENT, "/lang en")
        await bot.wait_bot(RESIDENT, "I will answer you in English.")
        bot.say(RESIDENT, RESIDENT, "/help")
        private = await bot.wait_bot(RESIDENT, "How to report")
        assert "/lang zh for Chinese" in private.text and "/chatid" not in private.text
        bot.say(U1_CHAT, RESIDENT, "/help")  # the group keeps its own language
        await bot.wait_bot(U1_CHAT, "有事请在本群反映")
