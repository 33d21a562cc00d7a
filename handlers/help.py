"""/help by role — residents (short, in their group), unit heads, leaders — and the
welcome /start gives in a private chat. Always in the language of the one asking."""

from __future__ import annotations

from telegram import Update
from telegram.constants import ChatType
from telegram.ext import ContextTypes

from bot.tree import COMMUNITY, UNIT
from handlers.common import services, texts_for


def for_role(update: Update, context: ContextTypes.DEFAULT_TYPE, welcome: bool = False) -> str:
    svc = services(context)
    t = texts_for(update, context)
    chat, user = update.effective_chat, update.effective_user
    user_id = user.id if user else 0
    private = chat is None or chat.type == ChatType.PRIVATE
    if chat is not None and not private:
        node = svc.tree.node_for_chat(chat.id)
        if node is None:
            keys = ["help.unbound"]
        elif not svc.tree.leads(user_id, node.id):  # a resident: just how to report
            return t("help.resident" if node.tier == UNIT else "help.resident_private")
        else:
            keys = ["help.head" if node.tier == UNIT else "help.leader"]
    else:
        tiers = {n.tier for n in svc.tree.nodes.values() if any(p.id == user_id for p in n.leaders)}
        if any(tier <= COMMUNITY for tier in tiers):
            keys = ["help.leader", "help.head"]
        elif tiers:
            keys = ["help.head"]
        else:
            keys = ["help.resident_private"]
    if welcome:
        keys.insert(0, "start.welcome")
    return "\n\n".join([*(t(key) for key in keys), t("help.footer_private" if private else "help.footer")])
