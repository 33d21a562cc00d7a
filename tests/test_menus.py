"""Command menus: set per scope and language at start, per chat on /bind and /lang, only
for commands the bot answers, and never in the way of starting."""

from __future__ import annotations

import asyncio
from typing import Any

from telegram import BotCommandScope, BotCommandScopeAllGroupChats, BotCommandScopeAllPrivateChats, BotCommandScopeChat

from bot.telegram.menus import registered_commands
from tests.conftest import C1_CHAT, HEAD1, RESIDENT, STATION_CHAT, U1_CHAT, U3_CHAT, Running

STRANGE_CHAT, OTHER_CHAT = -999, -998
U4_HEAD = 34


async def menu(bot: Running, scope: BotCommandScope, language: str | None = None) -> dict[str, str]:
    commands = await bot.app.bot.get_my_commands(scope=scope, language_code=language)
    return {c.command: c.description for c in commands}


async def started(bot: Running) -> None:
    menus = bot.app.bot_data["menus"]
    await asyncio.wait_for(menus.begun.wait(), 10)  # on PostgreSQL, once the bot takes the sender's lease
    await menus.wait()


async def test_menus_are_set_per_scope_and_language_at_start(make_bot: Any, bot_database: str) -> None:
    database = bot_database
    async with make_bot(database=database) as bot:
        await started(bot)
        groups = await menu(bot, BotCommandScopeAllGroupChats())
        assert next(iter(groups)) == "report" and "help" in groups and "claim" not in groups
        assert groups["report"].startswith("反映事项")
        assert (await menu(bot, BotCommandScopeAllGroupChats(), "en"))["report"].startswith("Report a problem")
        private = await menu(bot, BotCommandScopeAllPrivateChats())
        assert {"start", "lang", "help"} <= set(private) and "broadcast" not in private

        station = await menu(bot, BotCommandScopeChat(STATION_CHAT))
        assert {"broadcast", "duty", "list", "show", "summary", "takeover", "return"} <= set(station)
        assert station["broadcast"] == "向下辖所有单元群发通知"
        assert (await menu(bot, BotCommandScopeChat(C1_CHAT), "en"))["broadcast"].startswith("Send a notice")
        unit = await menu(bot, BotCommandScopeChat(U1_CHAT))
        assert next(iter(unit)) == "report" and "broadcast" not in unit
        assert {"claim", "resolve", "note", "list", "show", "close", "refer", "suspend"} <= set(unit)
        assert (await menu(bot, BotCommandScopeChat(U3_CHAT), "en"))["claim"].startswith("Claim a matter")

        answered = registered_commands(bot.app)  # a menu never offers what the bot ignores
        assert len(bot.api.calls_to("setMyCommands")) == 2 * (2 + 6)  # groups, private, six bound chats; zh, en
        for call in bot.api.calls_to("setMyCommands"):
            assert {c["command"] for c in call.params["commands"]} <= answered
    calls = len(bot.api.calls_to("setMyCommands"))
    async with make_bot(database=database) as bot:  # nothing changed: nothing set again
        await started(bot)
        assert len(bot.api.calls_to("setMyCommands")) == calls


async def test_bind_and_lang_reset_a_chats_menu(make_bot: Any) -> None:
    async with make_bot() as bot:
        await started(bot)
        bot.api.add_chat(STRANGE_CHAT, "商铺街群")
        bot.say(STRANGE_CHAT, U4_HEAD, "/bind u4")
        await bot.wait_bot(STRANGE_CHAT, "本群已登记为")
        await bot.api.wait_for(lambda: len(bot.api.calls_to("setMyCommands")) == 18)  # 16 at start, 2 now
        assert "claim" in await menu(bot, BotCommandScopeChat(STRANGE_CHAT))

        bot.api.add_chat(OTHER_CHAT, "商铺街新群")  # the unit moves to a new group: the old one loses its menu
        bot.say(OTHER_CHAT, U4_HEAD, "/bind u4")
        await bot.wait_bot(OTHER_CHAT, "本群已登记为")
        await bot.api.wait_for(lambda: len(bot.api.calls_to("deleteMyCommands")) == 2)
        assert await menu(bot, BotCommandScopeChat(STRANGE_CHAT)) == {}
        assert "claim" in await menu(bot, BotCommandScopeChat(OTHER_CHAT))

        bot.say(U1_CHAT, HEAD1, "/lang en")  # the chat's choice wins for everyone in it
        await bot.wait_bot(U1_CHAT, "This chat now speaks English.")
        await bot.api.wait_for(lambda: len(bot.api.calls_to("setMyCommands")) == 22)
        assert (await menu(bot, BotCommandScopeChat(U1_CHAT)))["claim"].startswith("Claim a matter")
        bot.say(RESIDENT, RESIDENT, "/lang en")  # a person's private chat gets a menu of its own
        await bot.wait_bot(RESIDENT, "I will answer you in English.")
        await bot.api.wait_for(lambda: len(bot.api.calls_to("setMyCommands")) == 24)
        assert (await menu(bot, BotCommandScopeChat(RESIDENT)))["lang"].startswith("Language")


async def test_a_failing_set_my_commands_never_stops_the_bot(make_bot: Any, api: Any, bot_database: str) -> None:
    database = bot_database
    api.fail("setMyCommands", status=400, times=16, description="Bad Request: BOT_COMMAND_INVALID")
    async with make_bot(database=database) as bot:
        bot.say(U1_CHAT, RESIDENT, "/report 路灯坏了")
        await bot.wait_bot(U1_CHAT, "事项 #1")
        await started(bot)
        assert [c.status for c in bot.api.calls_to("setMyCommands")] == [400] * 16
    async with make_bot(database=database) as bot:  # what failed is set at the next start
        await started(bot)
        assert "claim" in await menu(bot, BotCommandScopeChat(U1_CHAT))
        assert len(bot.api.calls_to("setMyCommands")) == 32
