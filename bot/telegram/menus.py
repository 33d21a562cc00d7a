"""Command menus: what people see when they type "/" (setMyCommands, per scope and language).

- every group: what residents do (report, their own matters, help);
- every private chat: start, language, help;
- each bound chat, by its node: a unit's group gets the heads' commands, a community's or
  the station's group the leaders' (broadcast, duty, …). Telegram shows a chat's own menu
  to everyone in it, so a unit's menu starts with /report.

Each scope is set with no language code in the chat's language (its /lang, else the
configured default) and with each other catalog language's code in that language — unless
the chat chose a language, which then wins for everyone, as it does for replies.
Descriptions come from the catalog (``cmd.<name>``); a command the Application does not
handle is left out, so a menu never offers what the bot would ignore.

A town may bind two thousand groups: menus are set in the background after start (never
holding it up), failures are logged and skipped, and what was set is remembered in the
``meta`` table so that a restart sets only what changed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging

from telegram import (
    Bot,
    BotCommand,
    BotCommandScope,
    BotCommandScopeAllGroupChats,
    BotCommandScopeAllPrivateChats,
    BotCommandScopeChat,
)
from telegram.error import TelegramError
from telegram.ext import Application, CommandHandler, ContextTypes

from bot.store import Store
from bot.text import render
from bot.text.i18n import CATALOGS, Languages
from bot.tree import UNIT, Tree

log = logging.getLogger(__name__)

RESIDENTS = ("report", "my", "cancel", "help")
PRIVATE = ("start", "report", "my", "cancel", "lang", "help")
HEADS = (
    "report", "claim", "resolve", "note", "list", "show", "close", "refer", "suspend", "resume", "escalate",
    "reopen", "held", "summary", "lang", "help",
)
LEADERS = (
    "broadcast", "list", "show", "takeover", "resolve", "return", "note", "escalate", "close", "refer",
    "suspend", "resume", "reopen", "held", "duty", "summary", "export", "visits", "bind", "lang", "help",
)
DESCRIPTION_MAX = 256  # Telegram's limit for a command's description


def registered_commands(app: Application) -> set[str]:
    """Every command some handler of the Application answers."""
    return {
        name
        for group in app.handlers.values()
        for handler in group
        if isinstance(handler, CommandHandler)
        for name in handler.commands
    }


class Menus:
    def __init__(self, bot: Bot, store: Store, tree: Tree, langs: Languages, available: set[str]) -> None:
        self.bot = bot
        self.store = store
        self.tree = tree
        self.langs = langs
        self.available = available
        self._task: asyncio.Task[None] | None = None
        self.begun = asyncio.Event()  # set once start() is called: on PostgreSQL, when this worker takes the lease

    # --- what each scope shows -----------------------------------------------------
    def codes(self) -> list[str | None]:
        """The language codes each scope is set for: none (the default), then the others."""
        return [None, *(lang for lang in CATALOGS if lang != self.langs.default)]

    def commands(self, names: tuple[str, ...], language: str) -> list[BotCommand]:
        t = self.langs.get(language)
        return [BotCommand(name, render.plain(t(f"cmd.{name}"), DESCRIPTION_MAX)) for name in names
                if name in self.available]

    def chat_names(self, chat_id: int) -> tuple[str, ...] | None:
        """The commands a chat's own menu offers; None if it has no menu of its own."""
        node = self.tree.node_for_chat(chat_id)
        if node is not None:
            return HEADS if node.tier == UNIT else LEADERS
        if chat_id > 0 and self.langs.chat_language(chat_id) is not None:
            return PRIVATE  # a person who chose a language with /lang
        return None

    def plan(self) -> list[tuple[str, BotCommandScope, tuple[str, ...], str | None]]:
        """(key, scope, commands, the chat's own language) for every menu to set."""
        menus: list[tuple[str, BotCommandScope, tuple[str, ...], str | None]] = [
            ("groups", BotCommandScopeAllGroupChats(), RESIDENTS, None),
            ("private", BotCommandScopeAllPrivateChats(), PRIVATE, None),
        ]
        chats = [chat for node in self.tree.nodes.values() if (chat := self.tree.chat_of(node.id)) is not None]
        chats += sorted(c for c in self.langs.chats() if c > 0)
        for chat in chats:
            names = self.chat_names(chat)
            if names is not None:
                menus.append((f"chat:{chat}", BotCommandScopeChat(chat), names, self.langs.chat_language(chat)))
        return menus

    # --- setting them ----------------------------------------------------------------
    def start(self) -> None:
        """Set every menu in the background; the bot serves people meanwhile (not again while
        a setting is under way: a sender that lost the lease and took it back)."""
        if self._task is not None and not self._task.done():
            return
        self._task = asyncio.create_task(self.set_all(), name="tierbot-menus")
        self.begun.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def wait(self) -> None:
        """Until the menus this worker began setting are set (tests, benches); at once if it
        began none (on PostgreSQL only the sender sets them: await ``begun`` first to wait for that)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def set_all(self) -> None:
        try:
            async with self.store.read() as tx:
                done = await tx.meta_values(self._prefix())
            changed = 0
            for key, scope, names, language in self.plan():
                changed += await self._set(key, scope, names, language, done)
            log.info("command menus: %d set or changed", changed)
        except Exception:  # menus are a convenience: never let them take the bot down
            log.exception("setting the command menus failed")

    async def set_chat(self, chat_id: int) -> None:
        """(Re)set one chat's own menu now: after /bind or /lang."""
        names = self.chat_names(chat_id)
        if names is not None:
            await self._set(f"chat:{chat_id}", BotCommandScopeChat(chat_id), names,
                            self.langs.chat_language(chat_id), {})

    async def clear_chat(self, chat_id: int) -> None:
        """A chat no longer bound to its node (another chat was bound): drop its menu."""
        for code in self.codes():
            try:
                await self.bot.delete_my_commands(scope=BotCommandScopeChat(chat_id), language_code=code)
            except TelegramError as exc:
                log.warning("could not delete the menu of chat %s (%s): %s", chat_id, code, exc)
        async with self.store.transaction() as tx:
            await tx.delete_meta(f"{self._prefix()}chat:{chat_id}:")

    def _prefix(self) -> str:
        return f"menu:{self.bot.id}:"  # another bot token starts afresh

    async def _set(
        self, key: str, scope: BotCommandScope, names: tuple[str, ...], language: str | None, done: dict[str, str]
    ) -> int:
        """Set one scope in every language code; returns how many were sent."""
        sent = 0
        for code in self.codes():
            commands = self.commands(names, language or code or self.langs.default)
            digest = hashlib.sha256(
                json.dumps([(c.command, c.description) for c in commands], ensure_ascii=False).encode()
            ).hexdigest()[:16]
            meta_key = f"{self._prefix()}{key}:{code or '-'}"
            if done.get(meta_key) == digest:
                continue
            try:
                await self.bot.set_my_commands(commands, scope=scope, language_code=code)
            except TelegramError as exc:
                log.warning("could not set the %s menu (%s): %s", key, code or "default", exc)
                continue
            async with self.store.transaction() as tx:
                await tx.set_meta(meta_key, digest)
            sent += 1
        return sent


def menus(context: ContextTypes.DEFAULT_TYPE) -> Menus | None:
    return context.application.bot_data.get("menus")
