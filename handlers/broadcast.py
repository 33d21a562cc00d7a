"""Leaders push a notice down the tree (一点发起、全网响应): ``/broadcast <text>``, or a photo
captioned ``/broadcast <text>``, in a station's or community's group, by its leaders. It
goes to every unit group below; the sender gets a delivery report (bot/broadcasts.py)."""

from __future__ import annotations

import re

from telegram import Message, Update
from telegram.ext import ContextTypes, filters

from bot.broadcasts import MAX_CAPTION, MAX_TEXT, Broadcasts
from bot.outbox import say
from bot.roles import Act, may
from bot.text import render
from bot.tree import Tree
from handlers.common import ack_for, actor, chat_node, command_text, reply, services

CAPTION = filters.CaptionRegex(r"(?i)^/broadcast(@\w+)?(\s|$)")
_CAPTION_COMMAND = re.compile(r"^/broadcast(?:@(\w+))?(?:\s|$)", re.IGNORECASE)


class LeaderChat(filters.MessageFilter):
    """Messages from a leader of this chat's station or community (or of a node above it)."""

    def __init__(self, tree: Tree) -> None:
        super().__init__(name="LeaderChat")
        self.tree = tree

    def filter(self, message: Message) -> bool:
        user, node = message.from_user, self.tree.node_for_chat(message.chat.id)
        return user is not None and node is not None and may(self.tree, user.id, Act.BROADCAST, node.id)


def _for_another_bot(message: Message, context: ContextTypes.DEFAULT_TYPE) -> bool:
    """A caption ``/broadcast@otherbot …`` (CommandHandler checks this for commands)."""
    match = _CAPTION_COMMAND.match(message.caption or "")
    return bool(match and match.group(1) and match.group(1).lower() != (context.bot.username or "").lower())


async def send(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    svc = services(context)
    message = update.effective_message
    node = chat_node(update, context)
    assert message is not None and node is not None
    if message.photo and _for_another_bot(message, context):
        return
    photo = message.photo[-1].file_id if message.photo else None
    text = command_text(message)
    if not text and photo is None:  # a photo alone is a notice (a poster); words alone must be there
        await reply(update, context, say("usage.broadcast"))
        return
    if not render.broadcast_fits(svc.langs, node.name, text, photo is not None, MAX_CAPTION if photo else MAX_TEXT):
        await reply(update, context, say("broadcast.too_long", max=MAX_CAPTION if photo else MAX_TEXT))
        return
    queued = await Broadcasts(svc.store, svc.tree, svc.clock).send(
        node, message.chat_id, message.message_id, actor(update), text, photo, ack_for(update, context).language,
        update=update.update_id,
    )
    if queued is None:  # the acknowledgement and the report come through the outbox
        await reply(update, context, say("broadcast.no_targets", node=node.name))


async def refuse(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Residents, heads, or any chat but a station's or community's: a polite no."""
    message = update.effective_message
    if message is not None and message.photo and _for_another_bot(message, context):
        return
    await reply(update, context, say("broadcast.not_allowed"))
