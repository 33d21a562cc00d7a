"""The station's watch (值班值守): /duty shows it; /duty <who> or the button changes it."""

from __future__ import annotations

from collections.abc import Callable
from html import escape

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, MessageEntity, Update
from telegram.ext import ContextTypes

from bot.outbox import Notice, put
from bot.roles import Act, may, staff
from bot.services import Services
from bot.store import Tx
from bot.text import render
from bot.text.i18n import Texts
from escalation import duty
from handlers.common import actor, reply, reply_notice, services, texts_for

TAKE_WATCH = f"{render.CALLBACK_VERSION}:duty"


def _staff_name(svc: Services, user_id: int) -> str:
    return svc.tree.person_name(user_id) or str(user_id)


async def _roster_text(svc: Services, t: Texts, tx: Tx | None = None) -> str:
    """Who is on watch now and next; read in ``tx`` when given (the one that changed it)."""
    now = svc.clock.now()
    if tx is not None:
        overrides = await tx.duty_overrides(now)
    else:
        async with svc.store.read() as tx:
            overrides = await tx.duty_overrides(now)
    current = duty.on_duty(svc.config.duty, overrides, now, svc.config.tz)
    lines = [t("duty.now", who="、".join(render.mention(u, _staff_name(svc, u)) for u in current) or t("duty.nobody"))]
    upcoming = duty.next_watch(svc.config.duty, now, svc.config.tz)
    if upcoming is not None:
        who = render.mention(upcoming.user_id, _staff_name(svc, upcoming.user_id))
        lines.append(t("duty.next", who=who, at=t.time(upcoming.start)))
    return "\n".join(lines)


async def show_or_set(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/duty: who is on watch now and next. /duty <who>: station staff hand the watch over."""
    svc = services(context)
    message = update.effective_message
    assert message is not None
    target = _target(svc, message, context.args or [])
    if target is None and context.args:
        await reply(update, context, texts_for(update, context)("duty.unknown"))
        return
    if target is not None:
        await _take(update, context, svc, target)
        return
    label = texts_for(update, context)("button.take_watch")
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton(label, callback_data=TAKE_WATCH)]])
    await reply(update, context, await _roster_text(svc, texts_for(update, context)), reply_markup=keyboard)


async def take_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """我来值班: a station staff member takes the watch now."""
    svc = services(context)
    query = update.callback_query
    assert query is not None
    user = actor(update)
    if not may(svc.tree, user.id, Act.KEEP_WATCH, svc.tree.station.id):
        await query.answer(render.plain(texts_for(update, context)("duty.not_staff")), show_alert=True)
        return
    asked = query.message if isinstance(query.message, Message) else None
    await _set(svc, user.id, user.id, update.update_id,
               None if asked is None else lambda roster: reply_notice(update, asked, roster, quote=None),
               texts_for(update, context))
    taken = texts_for(update, context)("duty.taken", who=escape(_staff_name(svc, user.id)))
    await query.answer(render.plain(taken))


async def _take(update: Update, context: ContextTypes.DEFAULT_TYPE, svc: Services, target: int) -> None:
    user = actor(update)
    if not all(may(svc.tree, who, Act.KEEP_WATCH, svc.tree.station.id) for who in (user.id, target)):
        await reply(update, context, texts_for(update, context)("duty.not_staff"))
        return
    message = update.effective_message
    assert message is not None
    await _set(svc, target, user.id, update.update_id, lambda roster: reply_notice(update, message, roster),
               texts_for(update, context))


async def _set(svc: Services, user_id: int, by: int, update: int, answer: Callable[[str], Notice] | None,
               t: Texts) -> None:
    """Hand the watch over and answer with the roster that shows it, in the update's one transaction."""
    now = svc.clock.now()
    until = duty.watch_end(svc.config.duty, now, svc.config.tz)
    async with svc.store.transaction(update=update) as tx:
        await tx.add_duty_override(user_id, _staff_name(svc, user_id), now, until, by)
        if answer is not None:
            await put(tx, answer(await _roster_text(svc, t, tx)), now=now)


def _target(svc: Services, message: Message, args: list[str]) -> int | None:
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
    named = {p.name: p.id for p in staff(svc.tree) if p.name}
    # @username: Telegram gives bots no lookup, so only staff the bot has heard from.
    return named.get(word) or svc.usernames.get(word.lower())


async def remember_staff(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Station staff's @usernames, as they write, so that "/duty @name" can find them."""
    user = update.effective_user
    if user is None or not user.username:
        return
    svc = services(context)
    if may(svc.tree, user.id, Act.KEEP_WATCH, svc.tree.station.id):
        svc.usernames[user.username.lower()] = user.id
