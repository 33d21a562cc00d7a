"""Shared by the handlers: chat filters, who is acting, and replying."""

from __future__ import annotations

from datetime import datetime
from html import escape
from zoneinfo import ZoneInfo

from telegram import ForceReply, InlineKeyboardMarkup, Message, Update
from telegram.constants import ChatType
from telegram.ext import ContextTypes, filters

from bot import outbox, visibility
from bot.config import parse_duration
from bot.matters import Ack, Actor, Outcome, Result
from bot.services import Services, services
from bot.text import render
from bot.text.i18n import Texts
from bot.tree import UNIT, Node, Tree
from bot.visibility import Audience, Piece

__all__ = [
    "BoundChat",
    "UnitChat",
    "ack_for",
    "actor",
    "chat_node",
    "command_text",
    "keyboard",
    "matter_number",
    "on_its_keyboard",
    "parse_until",
    "refusal",
    "reply",
    "reply_notice",
    "send",
    "services",
    "texts_for",
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
    return Ack(message.chat_id, message.message_id, update.update_id, texts_for(update, context).language)


def texts_for(update: object, context: ContextTypes.DEFAULT_TYPE) -> Texts:
    """The language to answer this update in: the chat's, else the person's, else the default."""
    langs = services(context).langs
    if not isinstance(update, Update):
        return langs.for_chat(None)
    chat, user = update.effective_chat, update.effective_user
    return langs.for_user(chat.id if chat else None, user.language_code if user else None)


def refusal(svc: Services, t: Texts, result: Result, matter_id: int) -> str:
    """The polite answer for an outcome other than OK."""
    matter = result.matter
    match result.outcome:
        case Outcome.NOT_FOUND:
            return t("err.no_matter", id=matter_id)
        case Outcome.OTHER_UNIT:
            unit = svc.tree.name_of(matter.unit_id) if matter else "?"
            return t("err.other_unit", id=matter_id, unit=escape(unit))
        case Outcome.NOT_ALLOWED:
            return t("err.not_allowed")
        case Outcome.ALREADY_CLAIMED:
            # A refusal may be read by a unit group, which never learns who works a private matter.
            if matter is not None and not visibility.may_see(Piece.NAMES, Audience.UNIT, matter.private):
                return t("privacy.already_claimed", id=matter_id)
            return t("err.already_claimed", id=matter_id, who=escape((matter.claimed_by_name if matter else "") or ""))
        case Outcome.ALREADY_RESOLVED:
            return t("err.already_resolved", id=matter_id)
        case Outcome.AT_TOP:
            return t("err.at_top", id=matter_id)
        case Outcome.AT_UNIT:
            return t("err.at_unit", id=matter_id)
        case Outcome.NOT_CLOSED:
            return t("err.not_closed", id=matter_id)
        case Outcome.NOT_SUSPENDED:
            return t("err.not_suspended", id=matter_id)
        case Outcome.SUSPENDED:
            return t("err.suspended", id=matter_id)
        case Outcome.HELD_ABOVE:
            key = "err.closed_above" if matter is not None and matter.closed else "err.held_above"
            return t(key, id=matter_id, tier=t(f"tier.{result.tier or (matter.tier if matter else 1)}"))
        case Outcome.NOT_REPORTER:
            return t("err.not_reporter")
        case Outcome.NOT_A_PERSON:
            return t("err.not_a_person")
        case Outcome.TOO_LONG:
            return t("err.suspend_too_long", max=t.duration(svc.config.suspend.max))
    return t("err.internal")


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


def keyboard(markup: InlineKeyboardMarkup | ForceReply | None) -> outbox.Keyboard | None:
    """PTB's reply markup as the outbox keeps it (see bot/telegram/delivery.py's keyboard_markup)."""
    if isinstance(markup, ForceReply):
        return {"force_reply": True, "selective": bool(markup.selective)}
    if markup is None:
        return None
    return [[(b.text, b.callback_data if isinstance(b.callback_data, str) else render.URL_PREFIX + (b.url or ""))
             for b in row] for row in markup.inline_keyboard]


async def send(context: ContextTypes.DEFAULT_TYPE, *notices: outbox.Notice, update: int | None) -> None:
    """Queue a handler's answers in the write transaction of its ``update``, which marks it
    done (None: of no update, as for an apology, the update to be tried again); the delivery
    worker, woken by the commit, sends them at once."""
    svc = services(context)
    async with svc.store.transaction(update=update) as tx:
        await outbox.put(tx, *notices, now=svc.clock.now())


async def reply(
    update: Update, context: ContextTypes.DEFAULT_TYPE, text: str,
    reply_markup: InlineKeyboardMarkup | ForceReply | None = None, quote: bool | None = True,
) -> None:
    """Answer the update's message, under it (``quote=None``: only in a group, as PTB's
    reply_text does by default), through the outbox."""
    message = update.effective_message
    if message is not None:
        await send(context, reply_notice(update, message, text, reply_markup, quote), update=update.update_id)


def reply_notice(
    update: Update, message: Message, text: str, reply_markup: InlineKeyboardMarkup | ForceReply | None = None,
    quote: bool | None = True,
) -> outbox.Reply:
    under = quote if quote is not None else message.chat.type != ChatType.PRIVATE
    return outbox.Reply(update.update_id, message.chat_id, text, message.message_id if under else None,
                        keyboard(reply_markup))
