"""Residents report matters in their unit's group: /report, a photo captioned /report, a
message starting with 上报 or #纠纷, or the answer to "what happened?"."""

from __future__ import annotations

import re
import unicodedata

from telegram import ForceReply, Update
from telegram.ext import ContextTypes

from bot import outbox
from bot.matters import MAX_TEXT
from bot.outbox import mention, say
from bot.tree import UNIT
from handlers.common import actor, chat_node, command_text, reply, reply_notice, services
from handlers.limits import limit_key

KEYWORD = re.compile(r"^\s*(?:上报|#纠纷)[\s:：,，]*")
CAPTION_COMMAND = re.compile(r"^/report(?:@(\w+))?(?:\s|$)", re.IGNORECASE)
PROMPT_TTL = 15 * 60  # seconds an unanswered "what happened?" stays open
# Characters that show nothing yet are not whitespace to str.strip() nor format characters:
# Hangul and Braille fillers, the combining grapheme joiner, Khmer and Mongolian ones.
_BLANK = frozenset("\u034f\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u2800\u3164\uffa0")


def _invisible(c: str) -> bool:
    if c.isspace() or c in _BLANK or unicodedata.category(c) in ("Cf", "Cc", "Zs", "Zl", "Zp"):
        return True  # Cf: zero-width space and joiners, word joiner, BOM, bidi marks, …
    return "\ufe00" <= c <= "\ufe0f" or "\U000e0100" <= c <= "\U000e01ef"  # variation selectors


def visible(text: str) -> bool:
    """Whether the text has something to read: not only spaces and invisible characters."""
    return not all(_invisible(c) for c in text)


async def report_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/report <what happened>; /report alone asks and takes the reply."""
    message = update.effective_message
    assert message is not None
    text = command_text(message)
    if visible(text):
        await _log(update, context, text)
        return
    svc = services(context)
    user = actor(update)
    question = say("report.ask", user=mention(user.id, user.name))
    ask = reply_notice(update, message, question, reply_markup=ForceReply(selective=True))
    async with svc.store.transaction(update=update.update_id) as tx:  # the prompt and the question in one
        await tx.set_prompt(message.chat_id, user.id, svc.clock.now())
        await outbox.put(tx, ask, now=svc.clock.now())


async def report_photo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A photo whose caption starts with /report (or /report@thisbot)."""
    message = update.effective_message
    assert message is not None and message.photo
    match = CAPTION_COMMAND.match(message.caption or "")
    if match is None or (match.group(1) and match.group(1).lower() != (context.bot.username or "").lower()):
        return
    text = command_text(message)
    text = text if visible(text) else services(context).texts("report.photo_only")
    await _log(update, context, text, photo_file_id=message.photo[-1].file_id)


async def report_keyword(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """上报 … / #纠纷 … in a group where the bot sees all messages."""
    message = update.effective_message
    assert message is not None and message.text
    await _log(update, context, KEYWORD.sub("", message.text, count=1))


async def prompt_answer(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A resident's next message after "what happened?" is their report."""
    message = update.effective_message
    assert message is not None and message.text
    svc = services(context)
    async with svc.store.read() as tx:
        asked = await tx.prompt(message.chat_id, actor(update).id, svc.clock.now() - PROMPT_TTL)
    if asked is None:
        return
    if asked.kind == "report":  # the report's own transaction consumes the question
        await _log(update, context, message.text, answers_prompt=True)
    elif asked.kind == "unsatisfied" and asked.matter_id:
        await svc.matters.explain(asked.matter_id, actor(update), message.chat_id, message.text[:MAX_TEXT],
                                  update=update.update_id)


async def report_elsewhere(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/report outside a unit group: say where to report instead of logging nothing silently."""
    node = chat_node(update, context)
    if node is None:
        await reply(update, context, say("report.unbound"))
    else:
        await reply(update, context, say("report.not_unit", tier=say(f"tier.{node.tier}")))


async def report_text_ok(update: Update, context: ContextTypes.DEFAULT_TYPE, text: str) -> bool:
    """Whether a report's text can be logged; if not, the reporter is told why."""
    if not visible(text):  # "", spaces, or only zero-width characters
        await reply(update, context, say("report.empty"))
        return False
    if len(text) > MAX_TEXT:
        await reply(update, context, say("report.too_long", max=MAX_TEXT))
        return False
    return True


async def _log(
    update: Update,
    context: ContextTypes.DEFAULT_TYPE,
    text: str,
    photo_file_id: str | None = None,
    answers_prompt: bool = False,
) -> None:
    svc = services(context)
    message = update.effective_message
    unit = chat_node(update, context)
    assert message is not None and unit is not None and unit.tier == UNIT
    text = text.strip()
    if not await report_text_ok(update, context, text):
        return
    # The card is the answer: the delivery worker posts it as a reply to this message
    # (over a limit, the polite answer saying when to report again).
    await svc.matters.report(
        unit, message.chat_id, actor(update), text, message.message_id, photo_file_id, answers_prompt,
        limit_key=limit_key(update, svc), update=update.update_id,
    )
