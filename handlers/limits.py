"""Abuse limits at the edge (bot/limits.py): whom a report counts against, whether a private
reporter is a member of the unit's group, and /held with its 转为事项 buttons."""

from __future__ import annotations

import logging

from telegram import Bot, Update
from telegram.error import BadRequest, TelegramError
from telegram.ext import ContextTypes

from bot import limits, visibility
from bot.matters import Outcome
from bot.outbox import say
from bot.roles import Act, may
from bot.services import Services
from bot.text import render
from bot.visibility import Piece
from handlers.common import actor, chat_node, reply, services, toast

log = logging.getLogger(__name__)

RELEASE = f"{render.CALLBACK_VERSION}:hr:"  # + held report id: "turn it into a matter"
SHOWN = 10  # held reports /held lists (newest first)


def limit_key(update: Update, svc: Services) -> int | None:
    """Whom this update's report counts against (None: a leader of the tree, no limits).
    An anonymous admin's or a channel's message is counted by its sender_chat."""
    message = update.effective_message
    sender_chat = message.sender_chat.id if message is not None and message.sender_chat else None
    return svc.matters.limit_key(actor(update).id, sender_chat)


async def membership(bot: Bot, chat_id: int | None, user_id: int) -> str:
    """member / nonmember / unverified, as Telegram answers getChatMember. Telegram
    guarantees it only to admins, and some groups hide their members: whatever does not
    say plainly "not a member" is unverified, never nonmember."""
    if chat_id is None:
        return limits.UNVERIFIED
    try:
        member = await bot.get_chat_member(chat_id, user_id)
    except BadRequest as exc:
        if "user not found" in exc.message.lower():
            return limits.NONMEMBER
        log.info("membership in %s unverified: %s", chat_id, exc.message)
        return limits.UNVERIFIED
    except TelegramError as exc:
        log.info("membership in %s unverified: %s", chat_id, type(exc).__name__)
        return limits.UNVERIFIED
    if member.status in ("left", "kicked") or getattr(member, "is_member", True) is False:
        return limits.NONMEMBER
    return limits.MEMBER


async def held_list(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/held: reports held over a limit for this chat's units, each with a 转为事项 button.
    The heads and leaders above; a unit group sees no text or name of a private one."""
    svc = services(context)
    node = chat_node(update, context)
    assert node is not None
    me = actor(update)
    if not me.person:  # an anonymous admin may be anyone: a head must post as themself to see what is held
        await reply(update, context, say("err.not_a_person"))
        return
    if not may(svc.tree, me.id, Act.HELD, node.id):
        await reply(update, context, say("limits.held_not_allowed"))
        return
    async with svc.store.read() as tx:
        held = await tx.held_reports([u.id for u in svc.tree.units_under(node.id)], limit=SHOWN)
    if not held:
        await reply(update, context, say("limits.held_empty"))
        return
    audience = visibility.GROUPS[node.tier]
    reports = []
    for report in held:
        # As for a matter (bot/visibility.py): a unit group reads no text, name or 非本群成员 of a
        # private one, and the answer keeps none of them (render.py's _held words the rest).
        named = visibility.may_see(Piece.REPORTER, audience, report.private)
        reports.append({
            "id": report.id, "at": report.created_at, "unit": report.unit_id,
            "reporter": report.reporter_name if named else None,
            "text": report.text if visibility.may_see(Piece.TEXT, audience, report.private) else None,
            "membership": report.membership if named else None, "button": f"{RELEASE}{report.id}",
        })
    await reply(update, context, {"answer": "held", "reports": reports})


async def release_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """转为事项 under /held: the held report becomes a matter, as if reported normally."""
    svc = services(context)
    query = update.callback_query
    assert query is not None
    number = (query.data or "").removeprefix(RELEASE)
    node = chat_node(update, context)
    if not number.isascii() or not number.isdigit() or len(number) > 12 or node is None:
        await toast(update, context, say("err.stale_button"), alert=True)
        return
    outcome, matter_id = await svc.matters.release_held(int(number), actor(update), node, update=update.update_id)
    if outcome == Outcome.OK:
        await toast(update, context, say("limits.released", held=number, id=matter_id))
        return
    key = {Outcome.ALREADY_RESOLVED: "limits.already_released", Outcome.NOT_ALLOWED: "limits.held_not_allowed"}
    await toast(update, context, say(key.get(outcome, "err.stale_button"), held=number, id=matter_id or 0), alert=True)
