"""Heads and leaders work matters: the "/command N" family, /list, /show and the buttons."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from html import escape

from telegram import Message, Update
from telegram.constants import ChatType
from telegram.ext import ContextTypes

from bot import outbox, visibility
from bot.matters import MAX_TEXT, RATINGS, Ack, Actor, Outcome, Result
from bot.roles import Role, role
from bot.services import Services
from bot.store import PURGED, Event, Matter
from bot.text import render
from bot.text.i18n import Texts
from bot.tree import Node
from bot.visibility import GROUPS, Audience, Piece
from escalation.notify import MAX_ATTACHMENTS
from escalation.policy import State
from escalation.summary import split_message
from handlers import people
from handlers.common import (
    ack_for,
    actor,
    chat_node,
    command_text,
    matter_number,
    on_its_keyboard,
    parse_until,
    refusal,
    reply,
    reply_notice,
    send,
    services,
    texts_for,
)


class Words(Enum):
    """What a command takes after the matter number."""

    NONE = "none"
    OPTIONAL = "optional"
    REQUIRED = "required"


Act = Callable[[Services, int, Actor, Node, str, Ack], Awaitable[Result | None]]


@dataclass(frozen=True)
class MatterCommand:
    words: Words
    act: Act


async def _suspend(svc: Services, number: int, who: Actor, node: Node, text: str, ack: Ack) -> Result | None:
    when, _, reason = text.partition(" ")
    until = parse_until(when, svc.clock.now(), svc.config.tz)
    if until is None or not reason.strip():
        return None
    return await svc.matters.suspend(number, who, node, until, reason.strip(), ack=ack)


# Every "/command N [words]" a head or leader gives about one matter.
COMMANDS: dict[str, MatterCommand] = {
    "claim": MatterCommand(Words.NONE, lambda s, n, a, node, _, ack: s.matters.claim(n, a, node, ack=ack)),
    "resolve": MatterCommand(Words.OPTIONAL, lambda s, n, a, node, x, ack: s.matters.resolve(n, a, node, x, ack=ack)),
    "note": MatterCommand(Words.REQUIRED, lambda s, n, a, node, x, ack: s.matters.note(n, a, node, x, ack=ack)),
    "close": MatterCommand(
        Words.REQUIRED, lambda s, n, a, node, x, ack: s.matters.close(n, a, node, State.UNRESOLVABLE, x, ack=ack)
    ),
    "refer": MatterCommand(
        Words.REQUIRED, lambda s, n, a, node, x, ack: s.matters.close(n, a, node, State.REFERRED, x, ack=ack)
    ),
    "suspend": MatterCommand(Words.REQUIRED, _suspend),
    "resume": MatterCommand(Words.NONE, lambda s, n, a, node, _, ack: s.matters.resume(n, a, node, ack=ack)),
    "escalate": MatterCommand(
        Words.REQUIRED, lambda s, n, a, node, x, ack: s.matters.escalate(n, a, node, x, ack=ack)
    ),
    "return": MatterCommand(
        Words.REQUIRED, lambda s, n, a, node, x, ack: s.matters.return_down(n, a, node, x, ack=ack)
    ),
    "takeover": MatterCommand(Words.NONE, lambda s, n, a, node, _, ack: s.matters.takeover(n, a, node, ack=ack)),
    "reopen": MatterCommand(Words.REQUIRED, lambda s, n, a, node, x, ack: s.matters.reopen(n, a, node, x, ack=ack)),
}


def matter_command(name: str) -> Callable[[Update, ContextTypes.DEFAULT_TYPE], Awaitable[None]]:
    """The handler for ``/name N [words]``: parse, check, act, and answer any refusal."""
    command = COMMANDS[name]

    async def handle(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        svc = services(context)
        message = update.effective_message
        assert message is not None
        number = matter_number(context.args[0] if context.args else None)
        words = (command_text(message).split(maxsplit=1)[1:] or [""])[0].strip()
        if (
            number is None
            or (command.words == Words.NONE and words)
            or (command.words == Words.REQUIRED and not words)
        ):
            await reply(update, context, texts_for(update, context)(f"usage.{name}"))
            return
        if len(words) > MAX_TEXT:
            await reply(update, context, texts_for(update, context)("err.text_too_long", max=MAX_TEXT))
            return
        node = chat_node(update, context)
        assert node is not None
        result = await command.act(svc, number, actor(update), node, words, ack_for(update, context))
        if result is None:
            await reply(update, context, texts_for(update, context)(f"usage.{name}"))
        elif result.outcome != Outcome.OK:
            await reply(update, context, refusal(svc, texts_for(update, context), result, number))

    handle.__name__ = f"{name}_command"
    return handle


async def list_open(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/list: open matters of this chat's node and everything under it, overdue first."""
    svc = services(context)
    node = chat_node(update, context)
    assert node is not None
    units = [u.id for u in svc.tree.units_under(node.id)]
    async with svc.store.read() as tx:
        matters = await tx.open_matters(units)
    text = render.matter_list(
        node.name, matters, svc.tree, texts_for(update, context), svc.clock.now(), audience=GROUPS[node.tier]
    )
    await reply(update, context, text)


async def show(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/show N in a group: details, the rules it runs under, its timeline, and what is
    attached, as that group may read them (bot/visibility.py)."""
    svc = services(context)
    t = texts_for(update, context)
    number = matter_number(context.args[0] if context.args else None)
    if number is None:
        await reply(update, context, t("usage.show"))
        return
    node = chat_node(update, context)
    assert node is not None
    async with svc.store.read() as tx:
        matter = await tx.matter(number)
        events = await tx.events(number) if matter else []
        attached = await tx.attachments(number) if matter else []
    if matter is None:
        await reply(update, context, t("err.no_matter", id=number))
        return
    if not svc.tree.contains(node.id, matter.unit_id):
        await reply(update, context, t("err.other_unit", id=number, unit=escape(svc.tree.name_of(matter.unit_id))))
        return
    await _show(update, context, t, svc, matter, events, attached, GROUPS[node.tier])


async def show_private(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/show N in a private chat: in full, with every timeline entry, for a head of the
    matter's unit or a leader above it; the public entries for its reporter; else nothing."""
    svc = services(context)
    t = texts_for(update, context)
    number = matter_number(context.args[0] if context.args else None)
    if number is None:
        await reply(update, context, t("usage.show"))
        return
    async with svc.store.read() as tx:
        matter = await tx.matter(number)
        events = await tx.events(number) if matter else []
        attached = await tx.attachments(number) if matter else []
    user = actor(update)
    audience = visibility.of_chat(svc.tree, user.id, matter) if matter is not None else None
    if matter is None or audience is None:  # nor whether it exists: say who may read it
        await reply(update, context, t("privacy.show_not_yours", id=number))
        return
    await _show(update, context, t, svc, matter, events, attached, audience)


async def _show(
    update: Update, context: ContextTypes.DEFAULT_TYPE, t: Texts, svc: Services, matter: Matter, events: list[Event],
    attached: list[tuple[str, str]], audience: Audience,
) -> None:
    text = render.details(matter, events, svc.tree, t, len(attached), audience=audience)
    media = attached if visibility.may_see(Piece.ATTACHMENTS, audience, matter.private) else []
    if media:
        kinds = Counter(kind for kind, _ in media)
        text += "\n" + t("show.attachments", items=" · ".join(f"{t(f'attachment.{k}')} {n}" for k, n in kinds.items()))
    message = update.effective_message
    assert message is not None
    notices: list[outbox.Notice] = [reply_notice(update, message, part) for part in split_message(text.split("\n"))]
    # The attachments answer the message in a group only, as PTB's reply_photo does by default.
    under = message.message_id if message.chat.type != ChatType.PRIVATE else None
    kept = [a for a in media if a[1] != PURGED][:MAX_ATTACHMENTS]  # none once cleared
    notices += [
        outbox.ShownAttachment(update.update_id, index, message.chat_id, kind, file, f"#{matter.id}", under)
        for index, (kind, file) in enumerate(kept)
    ]
    await send(context, *notices, update=update.update_id)


async def _show_categories(update: Update, context: ContextTypes.DEFAULT_TYPE, number: int) -> None:
    """分类 on a card: the card's buttons become the category list (the reporter or a head)."""
    svc = services(context)
    query = update.callback_query
    assert query is not None
    t = texts_for(update, context)
    async with svc.store.read() as tx:
        matter = await tx.matter(number)
    user = actor(update)
    if matter is None or matter.closed:
        await query.answer(render.plain(t("err.stale_button")), show_alert=True)
    elif role(svc.tree, user.id, matter.unit_id, reporter_id=matter.reporter_id) == Role.NOBODY:
        await query.answer(render.plain(t("err.not_allowed")), show_alert=True)
    else:
        await query.answer(render.plain(t("card.pick_category")))
        if isinstance(query.message, Message):
            await send(context, outbox.EditKeyboard(update.update_id, query.message.chat_id,
                                                    query.message.message_id, render.category_buttons(matter, t)),
                       update=update.update_id)


async def button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """认领 / 接手 / 解决 on a card or an escalation message."""
    svc = services(context)
    query = update.callback_query
    assert query is not None
    parsed = render.parse_callback(query.data)
    node = chat_node(update, context)
    chat = update.effective_chat
    if node is None and chat is not None and chat.type == ChatType.PRIVATE:
        node = svc.tree.station  # a leader's DM copy: permission alone decides, as in the group
    forged_rating = parsed is not None and parsed[0] == "rate" and parsed[2] not in RATINGS
    # These two rewrite the message pressed on: only from that message's own buttons.
    forged = parsed is not None and parsed[0] in ("rate", "cats") and not on_its_keyboard(update)
    if parsed is None or node is None or forged_rating or forged:
        await query.answer(render.plain(texts_for(update, context)("err.stale_button")), show_alert=True)
        return
    action, number, arg = parsed
    if action == "claim":
        result = await svc.matters.claim(number, actor(update), node, update=update.update_id)
        done = texts_for(update, context)("ok.claimed", id=number)
    elif action == "resolve":
        result = await svc.matters.resolve(number, actor(update), node, update=update.update_id)
        done = texts_for(update, context)("ok.resolved", id=number)
    elif action == "rate":
        await people.rate(update, context, number, arg or "")
        return
    elif action == "cats":
        await _show_categories(update, context, number)
        return
    else:
        result = await svc.matters.categorize(number, actor(update), node, arg or "other",
                                                update=update.update_id)
        t = texts_for(update, context)
        done = t("ok.categorized", id=number, category=t.category(arg or "other"))
    if result.outcome == Outcome.OK:
        await query.answer(render.plain(done))
    else:
        await query.answer(render.plain(refusal(svc, texts_for(update, context), result, number)), show_alert=True)
