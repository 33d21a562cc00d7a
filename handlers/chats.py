"""Chats and the tree: /bind, /chatid, /help, /summary, and answers outside the tree."""

from __future__ import annotations

import logging

from telegram import Update
from telegram.constants import ChatType
from telegram.ext import ContextTypes

from bot.outbox import Chart, Notice, put, say
from bot.roles import Act, may
from bot.telegram.menus import menus
from bot.text import render
from bot.text.render import SUMMARY_PARTS
from bot.tree import UNIT
from escalation.reports import bulletin, service
from handlers import people
from handlers.common import actor, chat_node, reply, reply_notice, send, services
from handlers.help import for_role

log = logging.getLogger(__name__)


async def bind(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/bind <node-id>: a leader of that node (or above) makes this chat its group."""
    svc = services(context)
    chat = update.effective_chat
    assert chat is not None
    if not context.args or len(context.args) != 1 or chat.type == ChatType.PRIVATE:
        example = next(svc.tree.units()).id
        await reply(update, context, say("usage.bind", example=example))
        return
    node = svc.tree.get(context.args[0])
    user = actor(update)
    current = svc.tree.node_for_chat(chat.id)
    if node is None:
        # The town's ids are its map: only the ids this person could bind this chat to.
        may_rebind = current is None or may(svc.tree, user.id, Act.BIND, current.id)
        ids = ", ".join(n for n in svc.tree.nodes if may_rebind and may(svc.tree, user.id, Act.BIND, n))
        node_id = context.args[0][:40]
        answer = say("bind.unknown", node_id=node_id, ids=ids) if ids else say("bind.unknown_id", node_id=node_id)
        await reply(update, context, answer)
        return
    # Rebinding a chat takes it from its node: only who leads both may do that.
    if not may(svc.tree, user.id, Act.BIND, node.id) or (
        current is not None and not may(svc.tree, user.id, Act.BIND, current.id)
    ):
        denied = current if current is not None and not may(svc.tree, user.id, Act.BIND, current.id) else node
        await reply(update, context, say("bind.not_allowed", node=denied.name))
        return
    before = svc.tree.chat_of(node.id)
    message = update.effective_message
    assert message is not None
    done = reply_notice(update, message, say("bind.done", node=node.name, tier=say(f"tier.{node.tier}")))
    async with svc.store.transaction(update=update.update_id) as tx:  # the binding and its answer in one
        await tx.bind_chat(chat.id, node.id, user.id, svc.clock.now())
        bindings = await tx.bindings()
        await put(tx, done, now=svc.clock.now())
    svc.tree.set_bindings(bindings)
    chat_menus = menus(context)
    if chat_menus is not None:  # the chat's menu follows its node; a released chat loses its own
        await chat_menus.set_chat(chat.id)
        if before is not None and before != chat.id:
            await chat_menus.clear_chat(before)


async def chat_id(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/chatid: anyone, anywhere; what a leader needs to put the chat in config.yaml."""
    chat = update.effective_chat
    assert chat is not None
    await reply(update, context, say("chatid", chat_id=chat.id))


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/start: in a private chat, remember that this person can be reached by DM and say
    what the bot is, or, with a deep link from a unit card (私下反映), begin a private
    report; in a group, the same as /help."""
    chat = update.effective_chat
    if chat is not None and chat.type == ChatType.PRIVATE and await people.start_private(update, context):
        return
    if chat is not None and chat.type == ChatType.PRIVATE:
        svc = services(context)
        user = actor(update)
        message = update.effective_message
        assert message is not None
        welcome = reply_notice(update, message, for_role(update, context, welcome=True))
        async with svc.store.transaction(update=update.update_id) as tx:  # reachable by DM, and the welcome
            await tx.set_private_chat(user.id, user.name, svc.clock.now())
            await put(tx, welcome, now=svc.clock.now())
        return
    await help_text(update, context)


async def help_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/help: by role (resident, unit head, leader), in the asker's language; in a unit
    group, with the 私下反映 button."""
    node = chat_node(update, context)
    link = render.private_link(context.bot.username, node.id) if node and node.tier == UNIT else None
    keyboard = [[(say("button.private"), render.URL_PREFIX + link)]] if link else None
    await reply(update, context, for_role(update, context, buttons=keyboard))


async def not_bound(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Work commands in a chat outside the tree: nothing is logged, but say why."""
    await reply(update, context, say("err.not_bound"))


async def private_work(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Work commands in a private chat: say where they belong, not "not registered"."""
    await reply(update, context, say("err.private_work"))


async def summary_now(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/summary: the last seven days for this chat's node (against the seven before),
    as the weekly bulletin reads."""
    svc = services(context)
    node = chat_node(update, context)
    message = update.effective_message
    assert node is not None and message is not None
    now = svc.clock.now()
    period = bulletin.weekly_period(now, kind=bulletin.Kind.RECENT, tz=svc.config.tz)
    chart = node.tier != UNIT  # a community's and the station's get the bulletin's chart, too
    figures = await service.period_figures(svc.store, svc.tree, period, history=chart)
    # Worded when sent, from these figures (bot/text/render.py's _summary, and the chart as a
    # bulletin's); parts a short one does not need are not sent.
    view = bulletin.view(node, svc.tree, figures, period)
    notices: list[Notice] = [reply_notice(update, message, {"answer": "summary", "bulletin": view, "part": part})
                             for part in range(SUMMARY_PARTS)]
    if chart:  # after the text, drawn and paced by the delivery worker like a bulletin's
        notices.append(Chart.of_summary(message.chat_id, message.message_id, view))
    await send(context, *notices, update=update.update_id)


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log with the traceback first; then a short apology where someone is waiting."""
    log.error("error while handling an update", exc_info=context.error)
    if isinstance(update, Update) and update.effective_message is not None:
        svc = context.application.bot_data.get("services")
        if svc is not None:
            sorry = reply_notice(update, update.effective_message, say("err.internal"), quote=None)
            try:
                await send(context, sorry, update=None)  # the failed update counts a try (bot/telegram/inbox.py)
            except Exception:  # the database may be what failed: then say so outside the outbox
                log.debug("could not queue the apology", exc_info=True)
                svc.delivery.apologise(sorry.chat, sorry.data, sorry.reply_to)
