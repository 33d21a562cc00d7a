"""A group upgraded to a supergroup: Telegram gives it a new id and says so with two service
messages, ``migrate_to_chat_id`` in the old group and ``migrate_from_chat_id`` in the new
one. The first that arrives moves the group's binding, language and waiting messages to the
new id (bot/telegram/delivery.py's ``migrated``); the second finds nothing left to move."""

from __future__ import annotations

from telegram import Update
from telegram.ext import ContextTypes

from bot.telegram.menus import menus
from handlers.common import services


async def follow(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    if message is None:
        return
    if message.migrate_to_chat_id:
        old_chat, new_chat = message.chat_id, message.migrate_to_chat_id
    elif message.migrate_from_chat_id:
        old_chat, new_chat = message.migrate_from_chat_id, message.chat_id
    else:
        return
    moved = await services(context).delivery.migrated(old_chat, new_chat, update=update.update_id)
    chat_menus = menus(context)
    if moved and chat_menus is not None:  # the group's menu follows its node
        await chat_menus.set_chat(new_chat)
