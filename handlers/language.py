"""``/lang en`` / ``/lang zh``: the language of one chat. In a group, only a leader of the
chat's node (or above) may switch it; in a private chat, the person switches their own.
Replies, cards and pings in that chat then come in that language, and so does its menu."""

from __future__ import annotations

from telegram import Update
from telegram.constants import ChatType
from telegram.ext import ContextTypes

from bot.outbox import put, said, say
from bot.roles import Act, may
from bot.telegram.menus import menus
from bot.text.i18n import CATALOGS, user_language
from handlers.common import actor, language_code, reply, reply_notice, services

ALIASES = {"中文": "zh", "汉语": "zh", "cn": "zh", "chinese": "zh", "英文": "en", "英语": "en", "english": "en"}


def parse_language(word: str) -> str | None:
    word = word.strip().lower()
    language = ALIASES.get(word) or user_language(word)
    return language if language in CATALOGS else None


async def lang(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    svc = services(context)
    chat = update.effective_chat
    assert chat is not None
    args = context.args or []
    language = parse_language(args[0]) if len(args) == 1 else None
    if not args:
        current = svc.langs.for_user(chat.id, language_code(update)).language
        await reply(update, context, said(say("lang.current", language=say(f"lang.name.{current}")), say("usage.lang")))
        return
    if language is None:
        await reply(update, context, say("usage.lang"))
        return
    private = chat.type == ChatType.PRIVATE
    if not private:
        node = svc.tree.node_for_chat(chat.id)
        if node is None:
            await reply(update, context, say("err.not_bound"))
            return
        if not may(svc.tree, actor(update).id, Act.LANGUAGE, node.id):
            await reply(update, context, say("lang.not_allowed"))
            return
    message = update.effective_message
    assert message is not None
    # Composed when sent, in the chat's language then: the one set here.
    done = reply_notice(update, message, say("lang.set_private" if private else "lang.set",
                                             language=say(f"lang.name.{language}")))
    async with svc.store.transaction(update=update.update_id) as tx:  # the change and its answer in one
        await tx.set_chat_language(chat.id, language)
        await put(tx, done, now=svc.clock.now())
    svc.langs.set_chat(chat.id, language)
    chat_menus = menus(context)
    if chat_menus is not None:  # after the change is committed: the menu is a convenience
        await chat_menus.set_chat(chat.id)
