"""Shared by the handlers: chat filters, who is acting, and replying."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from telegram import ForceReply, Message, Update
from telegram.constants import ChatType
from telegram.ext import ContextTypes, filters

from bot import outbox, visibility
from bot.config import parse_duration
from bot.matters import Ack, Actor, Outcome, Result
from bot.outbox import Say, duration, said, say
from bot.services import Services, services
from bot.text import render
from bot.tree import UNIT, Node, Tree
from bot.visibility import Audience, Piece

__all__ = [
    "BoundChat",
    "UnitChat",
    "ack_for",
    "actor",
    "chat_node",
    "command_text",
    "language_code",
    "matter_number",
    "on_its_keyboard",
    "parse_until",
    "pressed_on_its_message",
    "refusal",
    "reply",
    "reply_notice",
    "send",
    "services",
    "toast",
]


class BoundChat(filters.MessageFilter):
    """Messages in a chat that belongs to the tree (bound in config or with /bind)."""

    def __init__(self, tree: Tree) -> None:
        super().__init__(name="BoundChat")
        self.tree = tree

    def filter(self, message: Message) -> bool:
        return self.tree.node_for_chat(message.chat.id) is not None


class UnitChat(filters.MessageFilter):
    """Messages in a tier-3 unit's group: where residents report."""

    def __init__(self, tree: Tree) -> None:
        super().__init__(name="UnitChat")
        self.tree = tree

    def filter(self, message: Message) -> bool:
        node = self.tree.node_for_chat(message.chat.id)
        return node is not None and node.tier == UNIT


def actor(update: Update) -> Actor:
    """Who sent the update. An anonymous admin (the group itself as ``sender_chat``, user
    "Group") or a linked channel's post (user 777000) is not a person: it is keyed by that
    chat, so two anonymous admins never pass for one resident, and named by its title."""
    message = update.effective_message
    sender = message.sender_chat if message is not None and update.callback_query is None else None
    if sender is not None:
        return Actor(sender.id, sender.title or sender.username or str(sender.id), person=False)
    user = update.effective_user
    assert user is not None
    return Actor(user.id, user.full_name or (f"@{user.username}" if user.username else str(user.id)))


def on_its_keyboard(update: Update) -> bool:
    """Whether the button pressed is one of the message's own. A client may send any callback
    data with any message of the bot; a button that edits the message it sits on (a rating,
    分类) must not let a forged press rewrite another message, e.g. another matter's card."""
    query = update.callback_query
    markup = getattr(query.message, "reply_markup", None) if query is not None else None
    if query is None or markup is None:
        return False
    return any(b.callback_data == query.data for row in markup.inline_keyboard for b in row)


def chat_node(update: Update, context: ContextTypes.DEFAULT_TYPE) -> Node | None:
    chat = update.effective_chat
    return services(context).tree.node_for_chat(chat.id) if chat else None


def matter_number(word: str | None) -> int | None:
    """'12', '#12' or a Chinese keyboard's '＃１２' → 12; anything else → None.
    Decimal digits only: "²".isdigit() is true, but int() refuses it."""
    word = (word or "").lstrip("#＃")
    return int(word) if word.isdecimal() and len(word) < 10 else None


def command_text(message: Message) -> str:
    """The text after the command word, newlines kept (``context.args`` splits them away)."""
    text = message.text or message.caption or ""
    parts = text.split(maxsplit=1)
    return parts[1].strip() if len(parts) > 1 else ""


def ack_for(update: Update, context: ContextTypes.DEFAULT_TYPE) -> Ack:
    """Where and in what language to confirm the command this update carries."""
    message = update.effective_message
    assert message is not None
    language = services(context).langs.for_user(message.chat_id, language_code(update)).language
    return Ack(message.chat_id, message.message_id, update.update_id, language)


def language_code(update: object) -> str | None:
    """The Telegram language of the person who sent the update: what an answer is composed in
    where the chat chose no language of its own (bot/telegram/delivery.py)."""
    user = update.effective_user if isinstance(update, Update) else None
    return user.language_code if user is not None else None


def refusal(svc: Services, result: Result, matter_id: int) -> Say:
    """The polite answer for an outcome other than OK."""
    matter = result.matter
    match result.outcome:
        case Outcome.NOT_FOUND:
            return say("err.no_matter", id=matter_id)
        case Outcome.OTHER_UNIT:
            unit = svc.tree.name_of(matter.unit_id) if matter else "?"
            return say("err.other_unit", id=matter_id, unit=unit)
        case Outcome.NOT_ALLOWED:
            return say("err.not_allowed")
        case Outcome.ALREADY_CLAIMED:
            # A refusal may be read by a unit group, which never learns who works a private matter.
            if matter is not None and not visibility.may_see(Piece.NAMES, Audience.UNIT, matter.private):
                return say("privacy.already_claimed", id=matter_id)
            return say("err.already_claimed", id=matter_id, who=(matter.claimed_by_name if matter else "") or "")
        case Outcome.ALREADY_RESOLVED:
            return say("err.already_resolved", id=matter_id)
        case Outcome.AT_TOP:
            return say("err.at_top", id=matter_id)
        case Outcome.AT_UNIT:
            return say("err.at_unit", id=matter_id)
        case Outcome.NOT_CLOSED:
            return say("err.not_closed", id=matter_id)
        case Outcome.NOT_SUSPENDED:
            return say("err.not_suspended", id=matter_id)
        case Outcome.SUSPENDED:
            return say("err.suspended", id=matter_id)
        case Outcome.HELD_ABOVE:
            key = "err.closed_above" if matter is not None and matter.closed else "err.held_above"
            return say(key, id=matter_id, tier=say(f"tier.{result.tier or (matter.tier if matter else 1)}"))
        case Outcome.NOT_REPORTER:
            return say("err.not_reporter")
        case Outcome.NOT_A_PERSON:
            return say("err.not_a_person")
        case Outcome.TOO_LONG:
            return say("err.suspend_too_long", max=duration(svc.config.suspend.max))
    return say("err.internal")


def parse_until(word: str, now: float, tz: ZoneInfo) -> float | None:
    """When a suspension ends: a date (2026-12-01, 12-01: 08:00 that day, local time) or a
    duration from now (3d, 12h). None if it is neither, or not in the future."""
    try:
        return now + parse_duration(word)
    except ValueError:
        pass
    today = datetime.fromtimestamp(now, tz)
    for pattern in ("%Y-%m-%d", "%m-%d"):
        try:
            day = datetime.strptime(word, pattern)
        except ValueError:
            continue
        year = day.year if pattern == "%Y-%m-%d" else today.year
        until = datetime(year, day.month, day.day, 8, 0, tzinfo=tz).timestamp()
        if pattern == "%m-%d" and until <= now:
            until = datetime(year + 1, day.month, day.day, 8, 0, tzinfo=tz).timestamp()
        return until if until > now else None
    return None


async def send(context: ContextTypes.DEFAULT_TYPE, *notices: outbox.Notice, update: int | None) -> None:
    """Queue a handler's answers in the write transaction of its ``update``, which marks it
    done (None: of no update, as for an apology, the update to be tried again); the delivery
    worker, woken by the commit, sends them at once."""
    svc = services(context)
    async with svc.store.transaction(update=update) as tx:
        await outbox.put(tx, *notices, now=svc.clock.now())


Buttons = list[list[tuple[Say | str, str]]]  # rows of (label, callback data or render.URL_PREFIX + a link)


async def reply(
    update: Update, context: ContextTypes.DEFAULT_TYPE, words: Say | dict[str, Any],
    reply_markup: Buttons | ForceReply | None = None, quote: bool | None = True,
) -> None:
    """Answer the update's message, under it (``quote=None``: only in a group, as PTB's
    reply_text does by default), through the outbox: ``words`` are composed when it is sent."""
    message = update.effective_message
    if message is not None:
        await send(context, reply_notice(update, message, words, reply_markup, quote), update=update.update_id)


def reply_notice(
    update: Update, message: Message, words: Say | dict[str, Any], reply_markup: Buttons | ForceReply | None = None,
    quote: bool | None = True,
) -> outbox.Reply:
    """An answer's notice: ``words`` (catalog words, or the data of an answer with a composer
    of its own: bot/text/render.py), its buttons, and the asker's language."""
    under = quote if quote is not None else message.chat.type != ChatType.PRIVATE
    data = said(words, buttons=reply_markup if isinstance(reply_markup, list) else None) \
        if isinstance(words, Say) else dict(words)
    code = language_code(update)
    if code:
        data["language"] = code
    force = {"force_reply": True, "selective": bool(reply_markup.selective)} \
        if isinstance(reply_markup, ForceReply) else None
    return outbox.Reply(update.update_id, message.chat_id, data, message.message_id if under else None, force)


async def pressed_on_its_message(
    update: Update, context: ContextTypes.DEFAULT_TYPE, pattern: re.Pattern[str]
) -> tuple[re.Match[str], int | None] | None:
    """A button that rewrites the message it sits on (the officers' messages): its data
    matched against ``pattern``, and the message to rewrite. Data not on that message's own
    keyboard is a forgery and is refused; a message whose buttons are gone (pressed again
    after the edit) gives None to rewrite. None when the press is answered here already."""
    query = update.callback_query
    assert query is not None
    match = pattern.match(query.data or "")
    message = query.message if isinstance(query.message, Message) else None
    if match is None or message is None:
        await query.answer()
        return None
    if message.reply_markup is not None and not on_its_keyboard(update):
        await toast(update, context, say("err.stale_button"), alert=True)
        return None
    return match, message.message_id if message.reply_markup is not None else None


async def toast(update: Update, context: ContextTypes.DEFAULT_TYPE, words: Say, alert: bool = False) -> None:
    """Answer a button at once (answerCallbackQuery: no message, so not through the outbox),
    in the language of the one who pressed it."""
    query = update.callback_query
    assert query is not None
    chat = update.effective_chat
    text = render.toast(services(context).langs, chat.id if chat else None, language_code(update), words)
    await query.answer(text, show_alert=alert)
