"""The weekly safety notice's buttons (发布 / 修改 / 不发) and the officer's new text, sent
as a reply to the bot's prompt (bot/village_notice.py)."""

from __future__ import annotations

import re

from telegram import Update
from telegram.ext import ContextTypes

from bot.broadcasts import MAX_TEXT
from bot.outbox import Reply, Say, say
from bot.village_notice import CALLBACK, Answer, Decision, VillageNotices
from handlers import screening
from handlers.common import ack_for, actor, pressed_on_its_message, reply_notice, services, toast

PATTERN = f"^{CALLBACK}(pub|edit|skip):([0-9]{{1,9}})$"
_DATA = re.compile(PATTERN)


def _notices(context: ContextTypes.DEFAULT_TYPE) -> VillageNotices:
    svc = services(context)
    return VillageNotices(svc.store, svc.tree, svc.clock, svc.config.notice)


def _refusal(update: Update, context: ContextTypes.DEFAULT_TYPE, decision: Decision, notice_id: int) -> Say | None:
    match decision.answer:
        case Answer.OK:
            return None
        case Answer.NOT_FOUND:
            return say("vn.not_found")
        case Answer.NOT_ALLOWED:
            return say("vn.not_allowed")
        case Answer.DECIDED:
            return say("vn.decided", id=notice_id)
        case Answer.TOO_LONG:
            return say("vn.too_long", max=MAX_TEXT)
        case Answer.NO_TARGETS:
            return say("vn.no_targets")


async def button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if (own := await pressed_on_its_message(update, context, _DATA)) is None:
        return
    match, pressed = own
    action, notice_id = match.group(1), int(match.group(2))
    notices, who = _notices(context), actor(update)
    if action == "pub":
        decision = await notices.publish(notice_id, who, pressed, ack_for(update, context).language,
                                         update=update.update_id)
    elif action == "skip":
        decision = await notices.skip(notice_id, who, pressed, update=update.update_id)
    else:
        decision = await notices.ask_for_text(notice_id, who, pressed, update.update_id)
    refusal = _refusal(update, context, decision, notice_id)
    if refusal is not None:
        await toast(update, context, refusal, alert=True)
    elif update.callback_query is not None:
        await update.callback_query.answer()


async def new_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A reply in a community's group: a screening's finding or the draft's new text if it
    answers one of our prompts; any other reply is not ours to handle."""
    message = update.effective_message
    answered = message.reply_to_message if message is not None else None
    if message is None or answered is None or answered.from_user is None or answered.from_user.id != context.bot.id:
        return
    svc = services(context)
    async with svc.store.read() as tx:  # whose prompt it answers decides who writes the update's one transaction
        finding = await tx.screening_of_prompt(message.chat_id, answered.message_id)
        notice_id = None if finding is not None else await tx.notice_of_prompt(message.chat_id, answered.message_id)
    if finding is not None:
        await screening.finding_text(update, context, *finding)
        return
    if notice_id is None:
        return

    def answer(decision: Decision) -> Reply:
        said = _refusal(update, context, decision, notice_id) or say("vn.edited", id=notice_id)
        return reply_notice(update, message, said)

    await _notices(context).replace_text(notice_id, actor(update), message.text or "", update.update_id, answer)
