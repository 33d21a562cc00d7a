"""The residents' own side: private reports (私下反映), photos, voice notes and places
added to a matter, ratings (群众满意度), /my and /cancel."""

from __future__ import annotations

from telegram import ForceReply, Message, Update
from telegram.constants import ChatType
from telegram.ext import ContextTypes

from bot import outbox
from bot import visits as visit_log
from bot.matters import MAX_TEXT, Outcome
from bot.outbox import said, say
from bot.roles import Act, may
from bot.services import Services
from bot.text import render
from bot.tree import UNIT, Node
from handlers import visits
from handlers.common import (
    Buttons,
    ack_for,
    actor,
    chat_node,
    language_code,
    matter_number,
    refusal,
    reply,
    reply_notice,
    services,
    toast,
)
from handlers.limits import limit_key, membership
from handlers.report import PROMPT_TTL, report_text_ok, visible

UNIT_CHOICE = f"{render.CALLBACK_VERSION}:pu:"  # + unit id: "this private report is about that unit"
DEEP_LINK = "p_"  # /start p_<unit id>: the 私下反映 button under every unit card


# --- private reports ---------------------------------------------------------------
async def start_private(update: Update, context: ContextTypes.DEFAULT_TYPE) -> bool:
    """/start p_<unit>: begin a private report to that unit. False if not such a link."""
    args = context.args or []
    if not args or not args[0].startswith(DEEP_LINK):
        return False
    svc = services(context)
    unit = svc.tree.get(args[0].removeprefix(DEEP_LINK))
    if unit is None or unit.tier != UNIT:
        return False
    await _ask_private(update, context, svc, unit)
    return True


async def report_private(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/report in a private chat: which unit is it about? (the text, if any, waits)."""
    svc = services(context)
    message = update.effective_message
    assert message is not None
    text = (message.text or "").split(maxsplit=1)[1:]
    user = actor(update)
    async with svc.store.transaction(update=update.update_id) as tx:  # the prompt and the question in one
        await tx.set_prompt(message.chat_id, user.id, svc.clock.now(), kind="choose_unit",
                            draft=text[0].strip() if text else None)
        recent = await tx.reported_units(user.id)
        units = [svc.tree.nodes[u] for u in recent if u in svc.tree.nodes]
        units += [u for u in svc.tree.units() if may(svc.tree, user.id, Act.WORK, u.id) and u not in units]
        choose = reply_notice(update, message, say("private.choose"), reply_markup=_unit_buttons(units[:8]))
        await outbox.put(tx, choose, now=svc.clock.now())


async def choose_unit(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A unit picked for a private report."""
    svc = services(context)
    query = update.callback_query
    assert query is not None
    unit = svc.tree.get((query.data or "").removeprefix(UNIT_CHOICE))
    if unit is None or unit.tier != UNIT:
        await toast(update, context, say("err.stale_button"), alert=True)
        return
    await query.answer()
    message = update.effective_message
    assert message is not None
    async with svc.store.read() as tx:
        pending = await tx.prompt(message.chat_id, actor(update).id, svc.clock.now() - PROMPT_TTL)
    if pending is not None and pending.kind == "choose_unit" and pending.draft:
        await _log_private(update, context, svc, unit, pending.draft, None, answers_prompt=True)
    else:
        await _ask_private(update, context, svc, unit)


async def private_message(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Text or a photo in a private chat: the report asked for, a unit name to search for,
    or why a resolved matter was unsatisfying."""
    if await visits.take(update, context):  # the next step of an unfinished visit log entry
        return
    svc = services(context)
    message = update.effective_message
    assert message is not None
    user = actor(update)
    async with svc.store.read() as tx:
        pending = await tx.prompt(message.chat_id, user.id, svc.clock.now() - PROMPT_TTL)
    if pending is not None and pending.kind == visit_log.PROMPT:  # the entry it asked for is gone
        pending = None
    text = (message.text or message.caption or "").strip()
    photo = message.photo[-1].file_id if message.photo else None
    if pending is None and photo and (message.reply_to_message or (message.caption or "").startswith("#")):
        await attachment(update, context)  # e.g. a fraud victim's screenshot for matter #N
    elif pending is None:
        await reply(update, context, say("private.welcome"))
    elif pending.kind == "private" and pending.unit_id in svc.tree.nodes:
        await _log_private(update, context, svc, svc.tree.nodes[pending.unit_id], text, photo, answers_prompt=True)
    elif pending.kind == "choose_unit" and text:
        found = [u for u in svc.tree.units() if text in u.name][:8]
        if found:
            await reply(update, context, say("private.choose"), reply_markup=_unit_buttons(found))
        else:
            await reply(update, context, say("private.no_match", query=text[:40]))
    elif pending.kind == "unsatisfied" and pending.matter_id and text:
        await svc.matters.explain(pending.matter_id, user, message.chat_id, text[:MAX_TEXT], update=update.update_id)


async def _ask_private(update: Update, context: ContextTypes.DEFAULT_TYPE, svc: Services, unit: Node) -> None:
    message = update.effective_message
    assert message is not None
    user = actor(update)
    ask = reply_notice(update, message, say("private.start", unit=unit.name), reply_markup=ForceReply(), quote=None)
    async with svc.store.transaction(update=update.update_id) as tx:  # the prompt and the question in one
        await tx.set_private_chat(user.id, user.name, svc.clock.now())
        await tx.set_prompt(message.chat_id, user.id, svc.clock.now(), kind="private", unit_id=unit.id)
        await outbox.put(tx, ask, now=svc.clock.now())


async def _log_private(
    update: Update, context: ContextTypes.DEFAULT_TYPE, svc: Services, unit: Node, text: str,
    photo: str | None, answers_prompt: bool,
) -> None:
    message = update.effective_message
    assert message is not None
    if not visible(text) and photo:  # the matter's own text, in the reporter's language
        text = svc.langs.for_user(message.chat_id, language_code(update))("report.photo_only")
    if not await report_text_ok(update, context, text):
        return
    user = actor(update)
    reply_id = message.message_id if message.chat.type == ChatType.PRIVATE and message.text else None
    # A resident's private report asks Telegram whether they are in the unit's group (a
    # round trip on private reports only): 非本群成员 reports are marked and limited.
    key = limit_key(update, svc)
    member = None if key is None else await membership(context.bot, svc.tree.chat_of(unit.id), user.id)
    await svc.matters.report(unit, message.chat_id, user, text, reply_id, photo, answers_prompt, private=True,
                             limit_key=key, membership=member, update=update.update_id)


def _unit_buttons(units: list[Node]) -> Buttons | None:
    return [[(u.name, UNIT_CHOICE + u.id)] for u in units] or None


# --- photos, voice notes, places -----------------------------------------------------
async def attachment(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """A photo, voice note or location replying to a matter's card (or its report), or a
    photo captioned #N: attached to that matter."""
    svc = services(context)
    message = update.effective_message
    assert message is not None
    if message.location is not None and message.reply_to_message is None and await visits.take(update, context):
        return  # a place shared in private for an unfinished visit log entry
    caption = (message.caption or "").split(maxsplit=1)
    # Only "#N" names a matter: a caption such as "1 号井盖丢了" is about something else.
    number = matter_number(caption[0]) if caption and caption[0].startswith(("#", "＃")) else None
    async with svc.store.read() as tx:
        target = (
            await tx.matter_by_message(message.chat_id, message.reply_to_message.message_id)
            if message.reply_to_message
            else None
        )
    if target is None and number is None:
        return  # a photo in the group about something else
    kind, media = _medium(message)
    chat = chat_node(update, context)
    result = await svc.matters.attach(
        target.id if target else number or 0, actor(update), chat, kind, media,
        ack=ack_for(update, context),
    )
    if result.outcome != Outcome.OK:
        number = result.matter.id if result.matter else 0
        await reply(update, context, refusal(svc, result, number))


def _medium(message: Message) -> tuple[str, str]:
    if message.photo:
        return "photo", message.photo[-1].file_id
    if message.voice:
        return "voice", message.voice.file_id
    assert message.location is not None
    return "location", f"{message.location.latitude},{message.location.longitude}"


# --- ratings -----------------------------------------------------------------------
async def rate(update: Update, context: ContextTypes.DEFAULT_TYPE, number: int, rating: str) -> None:
    """满意 / 基本满意 / 不满意 under a resolved matter (called by the button handler)."""
    svc = services(context)
    query = update.callback_query
    assert query is not None and query.message is not None
    thanks = say("rating.thanks", rating=say(f"rating.{rating}"))
    notices: list[outbox.Notice] = []  # queued with the rating, if it is taken
    if isinstance(query.message, Message):
        asked = query.message
        # The thanks takes the place of the request to rate (its last line), under what the
        # message told: in a private chat it is the reporter's only word of the resolution.
        told = "\n".join((asked.text or "").splitlines()[:-1])
        words = said(say("rating.told", text=told), thanks) if told else said(thanks)
        notices.append(outbox.EditText(update.update_id, asked.chat_id, asked.message_id, words))
        if rating == "unsatisfied":
            notices.append(reply_notice(update, asked, say("rating.why", id=number),
                                        reply_markup=ForceReply(selective=True), quote=None))
    result = await svc.matters.rate(number, actor(update), rating, ask_why_in=query.message.chat.id,
                                    update=update.update_id, thanks=notices)
    if result.outcome != Outcome.OK:
        key = {Outcome.NOT_ALLOWED: "rating.not_yours", Outcome.EXPIRED: "rating.expired"}.get(
            result.outcome, "rating.done"
        )
        await toast(update, context, say(key), alert=True)
        return
    await toast(update, context, thanks)


# --- one's own matters ---------------------------------------------------------------
async def my_matters(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/my: the caller's matters and where they stand (private ones only in private)."""
    svc = services(context)
    chat = update.effective_chat
    in_private = chat is not None and chat.type == ChatType.PRIVATE
    async with svc.store.read() as tx:
        mine = [m for m in await tx.matters_of(actor(update).id) if in_private or not m.private]
    if not mine:
        await reply(update, context, say("my.empty"))
        return
    await reply(update, context, {"answer": "my", "matters": [m.id for m in mine]})  # composed as they are when sent


async def cancel(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/cancel N: the reporter withdraws their own open matter."""
    svc = services(context)
    message = update.effective_message
    assert message is not None
    number = matter_number(context.args[0] if context.args else None)
    if number is None:
        await reply(update, context, say("usage.cancel"))
        return
    result = await svc.matters.cancel(number, actor(update), chat_node(update, context), ack=ack_for(update, context))
    # Held above, the wish went to the tier that holds it, and the answer saying so with it.
    if result.outcome not in (Outcome.OK, Outcome.HELD_ABOVE):
        await reply(update, context, refusal(svc, result, number))
