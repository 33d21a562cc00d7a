"""Leaders ask for reports: /export sends the ledger (台账) of their community or town."""

from __future__ import annotations

import asyncio

from telegram import Update
from telegram.ext import ContextTypes

from bot import outbox
from bot.outbox import local_time, said, say
from bot.roles import Act, may
from bot.tree import UNIT
from escalation.reports import ledger, service
from handlers.common import actor, chat_node, reply, send, services


async def export(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/export week | month | FROM TO — in a community's or the station's group, by a
    leader of it (or above): the ledger as an XLSX file."""
    svc = services(context)
    t = svc.texts
    node = chat_node(update, context)
    message = update.effective_message
    assert node is not None and message is not None
    if node.tier == UNIT:
        await reply(update, context, say("export.not_leader_chat"))
        return
    if not may(svc.tree, actor(update).id, Act.EXPORT, node.id):
        await reply(update, context, say("export.not_allowed", node=node.name))
        return
    try:
        start, end = ledger.parse_range(list(context.args or []), svc.clock.now(), svc.config.tz)
    except ledger.UsageError:
        await reply(update, context, say("export.usage"))
        return
    except ValueError:
        await reply(update, context, say("export.bad_dates", max=ledger.MAX_DAYS))
        return
    data = await service.load_ledger(svc.store, svc.tree, node, start, end)
    content = await asyncio.to_thread(ledger.to_xlsx, data, svc.tree, t)  # a big town's month takes a while
    caption = said(say("export.caption", node=node.name, start=local_time(start), end=local_time(end),
                       count=len(data.matters)))
    await send(context, outbox.Document(update.update_id, message.chat_id, f"{ledger.file_stem(data, t)}.xlsx",
                                        content, caption, message.message_id), update=update.update_id)
