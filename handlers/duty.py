"""The station's watch (值班值守): /duty shows it; /duty <who> or the button changes it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from telegram import Message, MessageEntity, Update
from telegram.ext import ContextTypes

from bot.outbox import Notice, put, say
from bot.roles import Act, may, staff
from bot.services import Services
from bot.store import Tx
from bot.text import render
from bot.tree import Node
from escalation import duty
from handlers.common import actor, chat_node, reply, reply_notice, services, toast

TAKE_WATCH = f"{render.CALLBACK_VERSION}:duty"


def _staff_name(svc: Services, user_id: int) -> str:
    return svc.tree.person_name(user_id) or str(user_id)


def _station(update: Update, context: ContextTypes.DEFAULT_TYPE) -> Node:
    """Whose watch /duty is about (a city has several stations, issue 17): the station of the
    chat it is sent in; in a private chat, the sender's own (else the first)."""
    svc = services(context)
    node = chat_node(update, context)
    station = svc.tree.station_of(node.id) if node is not None else None
    if station is None and update.effective_user is not None:
        station = svc.tree.staff_station(update.effective_user.id)
    return station or svc.tree.stations[0]


async def _roster(svc: Services, station: Node, tx: Tx | None = None, button: bool = False) -> dict[str, Any]:
    """Who is on ``station``'s watch now and next (render.py's _duty words it), with 我来值班
    if ``button``; read in ``tx`` when given (the one that changed it)."""
    now = svc.clock.now()
    if tx is not None:
        overrides = await tx.duty_overrides(now, station.id)
    else:
        async with svc.store.read() as tx:
            overrides = await tx.duty_overrides(now, station.id)
    shifts = svc.tree.duty[station.id]
    current = duty.on_duty(shifts, overrides, now, svc.config.tz)
    roster: dict[str, Any] = {"answer": "duty", "now": [[u, _staff_name(svc, u)] for u in current]}
    upcoming = duty.next_watch(shifts, now, svc.config.tz)
    if upcoming is not None:
        roster["next"] = [upcoming.user_id, _staff_name(svc, upcoming.user_id), upcoming.start]
    if button:
        roster["buttons"] = [[[say("button.take_watch").data(), TAKE_WATCH]]]
    return roster


async def show_or_set(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/duty: who is on watch now and next. /duty <who>: station staff hand the watch over."""
    svc = services(context)
    message = update.effective_message
    assert message is not None
    station = _station(update, context)
    target = _target(svc, station, message, context.args or [])
    if target is None and context.args:
        await reply(update, context, say("duty.unknown"))
        return
    if target is not None:
        await _take(update, context, svc, station, target)
        return
    await reply(update, context, await _roster(svc, station, button=True))


async def take_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """我来值班: a station staff member takes the watch now."""
    svc = services(context)
    query = update.callback_query
    assert query is not None
    user = actor(update)
    station = _station(update, context)
    if not may(svc.tree, user.id, Act.KEEP_WATCH, station.id):
        await toast(update, context, say("duty.not_staff"), alert=True)
        return
    asked = query.message if isinstance(query.message, Message) else None
    await _set(svc, station, user.id, user.id, update.update_id,
               None if asked is None else lambda roster: reply_notice(update, asked, roster, quote=None))
    await toast(update, context, say("duty.taken", who=_staff_name(svc, user.id)))


async def _take(update: Update, context: ContextTypes.DEFAULT_TYPE, svc: Services, station: Node,
                target: int) -> None:
    user = actor(update)
    if not all(may(svc.tree, who, Act.KEEP_WATCH, station.id) for who in (user.id, target)):
        await reply(update, context, say("duty.not_staff"))
        return
    message = update.effective_message
    assert message is not None
    await _set(svc, station, target, user.id, update.update_id, lambda roster: reply_notice(update, message, roster))


async def _set(svc: Services, station: Node, user_id: int, by: int, update: int,
               answer: Callable[[dict[str, Any]], Notice] | None) -> None:
    """Hand ``station``'s watch over and answer with the roster that shows it, in the update's one transaction."""
    now = svc.clock.now()
    until = duty.watch_end(svc.tree.duty[station.id], now, svc.config.tz)
    async with svc.store.transaction(update=update) as tx:
        await tx.add_duty_override(user_id, _staff_name(svc, user_id), now, until, by, station.id)
        if answer is not None:
            await put(tx, answer(await _roster(svc, station, tx)), now=now)


def _target(svc: Services, station: Node, message: Message, args: list[str]) -> int | None:
    """Whom /duty names: a reply, a mention, a user id, or a staff member's name."""
    if message.reply_to_message and message.reply_to_message.from_user and not args:
        return None  # a bare /duty in reply to someone still just shows the roster
    for entity in message.entities or ():
        if entity.type == MessageEntity.TEXT_MENTION and entity.user:
            return entity.user.id
    if not args:
        return None
    word = args[0].lstrip("@")
    if word.isdecimal() and len(word) < 20:  # a user id; "²" is a digit int() refuses
        return int(word)
    named = {p.name: p.id for p in staff(svc.tree, station.id) if p.name}
    # @username: Telegram gives bots no lookup, so only staff the bot has heard from.
    return named.get(word) or svc.usernames.get(word.lower())


async def remember_staff(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Station staff's @usernames, as they write, so that "/duty @name" can find them."""
    user = update.effective_user
    if user is None or not user.username:
        return
    svc = services(context)
    if any(may(svc.tree, user.id, Act.KEEP_WATCH, st.id) for st in svc.tree.stations):
        name = user.username.lower()
        workers = context.application.bot_data.get("workers")
        if workers is not None and svc.usernames.get(name) != user.id:  # other workers learn it too (issue 18)
            workers.tell(f"username {name} {user.id}")
        svc.usernames[name] = user.id
