"""Heads and leaders work matters: /claim, /resolve, /note, /list, /show and the buttons."""

from __future__ import annotations

from html import escape

from telegram import Update
from telegram.ext import ContextTypes

from bot import render
from bot.matters import MAX_TEXT, Ack, Outcome
from handlers.common import actor, chat_node, command_text, matter_number, refusal, reply, services


def _ack(update: Update) -> Ack:
    message = update.effective_message
    assert message is not None
    return Ack(message.chat_id, message.message_id, update.update_id)


async def claim(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/claim N"""
    svc = services(context)
    number = matter_number(context.args[0] if context.args else None)
    if number is None or len(context.args or []) != 1:
        await reply(update, svc.texts("usage.claim"))
        return
    node = chat_node(update, context)
    assert node is not None
    result = await svc.matters.claim(number, actor(update), node, ack=_ack(update))
    if result.outcome != Outcome.OK:
        await reply(update, refusal(svc, result, number))


async def resolve(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/resolve N <what was done>"""
    svc = services(context)
    message = update.effective_message
    assert message is not None
    number = matter_number(context.args[0] if context.args else None)
    if number is None:
        await reply(update, svc.texts("usage.resolve"))
        return
    resolution = command_text(message).split(maxsplit=1)[1:] or [""]
    if len(resolution[0]) > MAX_TEXT:
        await reply(update, svc.texts("err.text_too_long", max=MAX_TEXT))
        return
    node = chat_node(update, context)
    assert node is not None
    result = await svc.matters.resolve(number, actor(update), node, resolution[0].strip(), ack=_ack(update))
    if result.outcome != Outcome.OK:
        await reply(update, refusal(svc, result, number))


async def note(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/note N <progress>"""
    svc = services(context)
    message = update.effective_message
    assert message is not None
    number = matter_number(context.args[0] if context.args else None)
    text = (command_text(message).split(maxsplit=1)[1:] or [""])[0].strip()
    if number is None or not text:
        await reply(update, svc.texts("usage.note"))
        return
    if len(text) > MAX_TEXT:
        await reply(update, svc.texts("err.text_too_long", max=MAX_TEXT))
        return
    node = chat_node(update, context)
    assert node is not None
    result = await svc.matters.note(number, actor(update), node, text, ack=_ack(update))
    if result.outcome != Outcome.OK:
        await reply(update, refusal(svc, result, number))


async def list_open(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/list: open matters of this chat's node and everything under it, overdue first."""
    svc = services(context)
    node = chat_node(update, context)
    assert node is not None
    units = [u.id for u in svc.tree.units_under(node.id)]
    async with svc.store.read() as tx:
        matters = await tx.open_matters(units)
    await reply(update, render.matter_list(node.name, matters, svc.tree, svc.texts, svc.clock.now()))


async def show(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/show N: details, the rules it runs under, and its timeline."""
    svc = services(context)
    number = matter_number(context.args[0] if context.args else None)
    if number is None:
        await reply(update, svc.texts("usage.show"))
        return
    node = chat_node(update, context)
    assert node is not None
    async with svc.store.read() as tx:
        matter = await tx.matter(number)
        events = await tx.events(number) if matter else []
        attachments = await tx.attachment_count(number) if matter else 0
    if matter is None:
        await reply(update, svc.texts("err.no_matter", id=number))
    elif not svc.tree.contains(node.id, matter.unit_id):
        unit = escape(svc.tree.nodes[matter.unit_id].name)
        await reply(update, svc.texts("err.other_unit", id=number, unit=unit))
    else:
        await reply(update, render.details(matter, events, svc.tree, svc.texts, attachments))


async def button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """认领 / 接手 / 解决 on a card or an escalation message."""
    svc = services(context)
    query = update.callback_query
    assert query is not None
    parsed = render.parse_callback(query.data)
    node = chat_node(update, context)
    if parsed is None or node is None:
        await query.answer(render.plain(svc.texts("err.stale_button")), show_alert=True)
        return
    action, number = parsed
    if action == "claim":
        result = await svc.matters.claim(number, actor(update), node)
    else:
        result = await svc.matters.resolve(number, actor(update), node)
    if result.outcome == Outcome.OK:
        done = "ok.claimed" if action == "claim" else "ok.resolved"
        await query.answer(render.plain(svc.texts(done, id=number)))
    else:
        await query.answer(render.plain(refusal(svc, result, number)), show_alert=True)
