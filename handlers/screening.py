"""The weekly screening's buttons (零报告 / 上报发现 / a unit / 转为事项 / 已化解) and the
officer's description of a finding, sent as a reply to the bot's prompt (bot/screening.py)."""

from __future__ import annotations

import re

from telegram import Update
from telegram.ext import ContextTypes

from bot import outbox
from bot.outbox import Say, say
from bot.screening import CALLBACK, MAX_FINDING, Answer, Reply, Screenings
from handlers.common import actor, pressed_on_its_message, reply_notice, services, toast

PATTERN = f"^{CALLBACK}(zero|find|unit|matter|handled):([0-9]{{1,9}})(?::([0-9]{{1,4}}))?$"
_DATA = re.compile(PATTERN)


def _screenings(context: ContextTypes.DEFAULT_TYPE) -> Screenings:
    svc = services(context)
    return Screenings(svc.store, svc.tree, svc.clock, svc.config.screening, svc.matters)


def _refusal(update: Update, context: ContextTypes.DEFAULT_TYPE, answer: Answer) -> Say | None:
    match answer:
        case Answer.OK:
            return None
        case Answer.NOT_FOUND:
            return say("sc.not_found")
        case Answer.NOT_ALLOWED:
            return say("sc.not_allowed")
        case Answer.ANSWERED:
            return say("sc.answered")
        case Answer.DECIDED:
            return say("sc.decided")
        case Answer.TOO_LONG:
            return say("sc.too_long", max=MAX_FINDING)


async def button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    if (own := await pressed_on_its_message(update, context, _DATA)) is None:
        return
    match, pressed = own
    action, number, extra = match.group(1), int(match.group(2)), match.group(3)
    screenings, who = _screenings(context), actor(update)
    done: Reply
    ok = None
    if action == "zero":
        done = await screenings.zero_report(number, who, pressed, update=update.update_id)
        ok = say("sc.zero_ok")
    elif action == "find":
        done = await screenings.choose_unit(number, who, pressed, update.update_id)
    elif action == "unit" and extra is not None:
        done = await screenings.ask_text(number, int(extra), who, pressed, update.update_id)
    elif action in ("matter", "handled"):
        done = await screenings.decide(number, action == "matter", who, pressed, update=update.update_id)
        ok = say("sc.made_matter", id=done.matter_id) if done.matter_id else say("sc.noted")
    else:
        done = Reply(Answer.NOT_FOUND)
    refusal = _refusal(update, context, done.answer)
    words = refusal or ok
    if words is not None:
        await toast(update, context, words, alert=refusal is not None)
    elif update.callback_query is not None:
        await update.callback_query.answer()


async def finding_text(update: Update, context: ContextTypes.DEFAULT_TYPE, screening_id: int, unit_id: str) -> None:
    """A reply in a community's group that answers the prompt about ``unit_id``: a finding
    (handlers/village_notice.py's ``new_text`` tells whose prompt a reply answers)."""
    message = update.effective_message
    assert message is not None

    def answer(done: Reply) -> outbox.Notice:
        said = _refusal(update, context, done.answer) or say("sc.added")
        return reply_notice(update, message, said)

    await _screenings(context).add_finding(screening_id, unit_id, message.chat_id, actor(update), message.text or "",
                                           update.update_id, answer)
