"""/help by role — residents (short, in their group), unit heads, leaders — and the
welcome /start gives in a private chat. Always in the language of the one asking."""

from __future__ import annotations

from typing import Any

from telegram import Update
from telegram.constants import ChatType
from telegram.ext import ContextTypes

from bot.outbox import said, say
from bot.roles import Role, role
from bot.tree import UNIT
from handlers.common import Buttons, services


def for_role(
    update: Update, context: ContextTypes.DEFAULT_TYPE, welcome: bool = False, buttons: Buttons | None = None
) -> dict[str, Any]:
    """What /help (and /start's welcome) says: its paragraphs, composed when sent."""
    svc = services(context)
    chat, user = update.effective_chat, update.effective_user
    user_id = user.id if user else 0
    private = chat is None or chat.type == ChatType.PRIVATE
    if chat is not None and not private:
        node = svc.tree.node_for_chat(chat.id)
        if node is None:
            keys = ["help.unbound"]
        elif not role(svc.tree, user_id, node.id).leads:  # a resident: just how to report
            return said(say("help.resident" if node.tier == UNIT else "help.resident_private"), buttons=buttons)
        else:
            keys = ["help.head" if node.tier == UNIT else "help.leader"]
    else:
        highest = role(svc.tree, user_id)  # their highest post anywhere in the tree
        if highest == Role.HEAD:
            keys = ["help.head"]
        elif highest.leads:
            keys = ["help.leader", "help.head"]
        else:
            keys = ["help.resident_private"]
    if welcome:
        keys.insert(0, "start.welcome")
    footer = "help.footer_private" if private else "help.footer"
    return {"answer": "paragraphs", **said(*(say(key) for key in [*keys, footer]), buttons=buttons)}
