"""Heads and leaders work matters: the "/command N" family, /list, /show and the buttons."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import astuple, dataclass
from enum import Enum

from telegram import Message, Update
from telegram.constants import ChatType
from telegram.ext import ContextTypes

from bot import outbox, visibility
from bot.matters import MAX_TEXT, RATINGS, Ack, Actor, Outcome, Result
from bot.outbox import category, said, say
from bot.roles import Role, role
from bot.services import Services
from bot.store import PURGED, Event, Matter
from bot.text import render
from bot.tree import Node
from bot.visibility import GROUPS, Audience, Piece
from escalation.notify import MAX_ATTACHMENTS
from escalation.policy import State
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
    toast,
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
            await reply(update, context, say(f"usage.{name}"))
            return
        if len(words) > MAX_TEXT:
            await reply(update, context, say("err.text_too_long", max=MAX_TEXT))
            return
        node = chat_node(update, context)
        assert node is not None
        result = await command.act(svc, number, actor(update), node, words, ack_for(update, context))
        if result is None:
            await reply(update, context, say(f"usage.{name}"))
        elif result.outcome != Outcome.OK:
            await reply(update, context, refusal(svc, result, number))

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
    # Composed when sent, from these matters as they are then (bot/text/render.py's _list).
    shown = render.listed(matters, svc.clock.now())
    answer = {"answer": "list", "node": node.id, "matters": shown, "count": len(matters), "audience": GROUPS[node.tier]}
    await reply(update, context, answer)


async def show(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/show N in a group: details, the rules it runs under, its timeline, and what is
    attached, as that group may read them (bot/visibility.py)."""
    svc = services(context)
    number = matter_number(context.args[0] if context.args else None)
    if number is None:
        await reply(update, context, say("usage.show"))
        return
    node = chat_node(update, context)
    assert node is not None
    async with svc.store.read() as tx:
        matter = await tx.matter(number)
        events = await tx.events(number) if matter else []
        attached = await tx.attachments(number) if matter else []
    if matter is None:
        await reply(update, context, say("err.no_matter", id=number))
        return
    if not svc.tree.contains(node.id, matter.unit_id):
        await reply(update, context, say("err.other_unit", id=number, unit=svc.tree.name_of(matter.unit_id)))
        return
    await _show(update, context, matter, events, attached, GROUPS[node.tier])


async def show_private(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/show N in a private chat: in full, with every timeline entry, for a head of the
    matter's unit or a leader above it; the public entries for its reporter; else nothing."""
    svc = services(context)
    number = matter_number(context.args[0] if context.args else None)
    if number is None:
        await reply(update, context, say("usage.show"))
        return
    async with svc.store.read() as tx:
        matter = await tx.matter(number)
        events = await tx.events(number) if matter else []
        attached = await tx.attachments(number) if matter else []
    user = actor(update)
    audience = visibility.of_chat(svc.tree, user.id, matter) if matter is not None else None
    if matter is None or audience is None:  # nor whether it exists: say who may read it
        await reply(update, context, say("privacy.show_not_yours", id=number))
        return
    await _show(update, context, matter, events, attached, audience)


async def _show(
    update: Update, context: ContextTypes.DEFAULT_TYPE, matter: Matter, events: list[Event],
    attached: list[tuple[str, str]], audience: Audience,
) -> None:
    media = attached if visibility.may_see(Piece.ATTACHMENTS, audience, matter.private) else []
    message = update.effective_message
    assert message is not None
    # Composed when sent, from the matter as it is then (bot/text/render.py's _show); a long
    # one takes more than one message: parts it does not need are not sent.
    # It keeps only the timeline entries this chat may read (none where the matter is redacted).
    shown = [] if visibility.redacted(audience, matter.private) else \
        visibility.timeline(events, matter, services(context).tree, audience)[-render.SHOW_EVENTS:]
    answer = {"answer": "show", "matters": [matter.id], "audience": audience, "attachments": len(attached),
              "attached": dict(Counter(kind for kind, _ in media)), "events": [astuple(e)[1:] for e in shown]}
    notices: list[outbox.Notice] = [reply_notice(update, message, {**answer, "part": part})
                                    for part in range(render.SHOW_PARTS)]
    # The attachments answer the message in a group only, as PTB's reply_photo does by default.
    under = message.message_id if message.chat.type != ChatType.PRIVATE else None
    kept = [a for a in media if a[1] != PURGED][:MAX_ATTACHMENTS]  # none once cleared
    notices += [
        outbox.ShownAttachment(update.update_id, index, message.chat_id, kind, file,
                               said(say("show.caption", id=matter.id)), under)
        for index, (kind, file) in enumerate(kept)
    ]
    await send(context, *notices, update=update.update_id)


async def _show_categories(update: Update, context: ContextTypes.DEFAULT_TYPE, number: int) -> None:
    """分类 on a card: the card's buttons become the category list (the reporter or a head)."""
    svc = services(context)
    query = update.callback_query
    assert query is not None
    async with svc.store.read() as tx:
        matter = await tx.matter(number)
    user = actor(update)
    if matter is None or matter.closed:
        await toast(update, context, say("err.stale_button"), alert=True)
    elif role(svc.tree, user.id, matter.unit_id, reporter_id=matter.reporter_id) == Role.NOBODY:
        await toast(update, context, say("err.not_allowed"), alert=True)
    else:
        await toast(update, context, say("card.pick_category"))
        if isinstance(query.message, Message):
            await send(context, outbox.EditKeyboard(update.update_id, query.message.chat_id, query.message.message_id,
                                                    {"answer": "categories", "matters": [matter.id]}),
                       update=update.update_id)


async def button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """认领 / 接手 / 解决 on a card or an escalation message."""
    svc = services(context)
    query = update.callback_query
    assert query is not None
    parsed = render.parse_callback(query.data)
    node = chat_node(update, context)
    chat = update.effective_chat
    if node is None and chat is not None and chat.type == ChatType.PRIVATE and parsed is not None:
        # A leader's DM copy: permission alone decides, as in the group, within the matter's
        # station (a city has several, issue 17).
        async with svc.store.read() as tx:
            matter = await tx.matter(parsed[1])
        node = svc.tree.station_of(matter.unit_id) if matter is not None else None
        node = node or svc.tree.stations[0]  # a matter gone or of a unit gone: refused below as before
    forged_rating = parsed is not None and parsed[0] == "rate" and parsed[2] not in RATINGS
    # These two rewrite the message pressed on: only from that message's own buttons.
    forged = parsed is not None and parsed[0] in ("rate", "cats") and not on_its_keyboard(update)
    if parsed is None or node is None or forged_rating or forged:
        await toast(update, context, say("err.stale_button"), alert=True)
        return
    action, number, arg = parsed
    if action == "claim":
        result = await svc.matters.claim(number, actor(update), node, update=update.update_id)
        done = say("ok.claimed", id=number)
    elif action == "resolve":
        result = await svc.matters.resolve(number, actor(update), node, update=update.update_id)
        done = say("ok.resolved", id=number)
    elif action == "rate":
        await people.rate(update, context, number, arg or "")
        return
    elif action == "cats":
        await _show_categories(update, context, number)
        return
    else:
        result = await svc.matters.categorize(number, actor(update), node, arg or "other",
                                                update=update.update_id)
        done = say("ok.categorized", id=number, category=category(arg or "other"))
    if result.outcome == Outcome.OK:
        await toast(update, context, done)
    else:
        await toast(update, context, refusal(svc, result, number), alert=True)
