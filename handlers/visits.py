"""Visit logs (走访日志, issue 16): /visit in a private chat writes one, step by step;
/visits in a community's or the station's group lists the week's (or one officer's
month), with a button per entry that sends its photos again (抽查). The steps and what
they ask are bot/visits.py's; who may is bot/roles.py's (Act.VISIT)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from telegram import Message, Update
from telegram.constants import ChatType
from telegram.ext import ContextTypes

from bot import outbox, visits
from bot.matters import MAX_TEXT, Actor
from bot.outbox import Say, local_time, said, say
from bot.roles import Act, may
from bot.services import Services
from bot.store import Tx, Visit
from bot.tree import UNIT
from handlers.common import actor, chat_node, command_text, services
from handlers.report import PROMPT_TTL, visible

log = logging.getLogger(__name__)

PERIODS = {"week": "week", "本周": "week", "周": "week", "month": "month", "本月": "month", "月": "month"}
LIST_ITEMS = 40  # entries in one /visits answer (Telegram's 4,096 characters)
SPOT_BUTTONS = 24


def _data(update: Update, data: dict[str, Any]) -> dict[str, Any]:
    """An answer's data, with the asker's Telegram language for a chat that chose none."""
    user = update.effective_user
    return {**data, "lang": user.language_code} if user is not None and user.language_code else data


def _answer(update: Update, message: Message, data: dict[str, Any], quote: bool = False) -> outbox.Reply:
    return outbox.Reply(update.update_id, message.chat_id, _data(update, data), message.message_id if quote else None)


def _edit(update: Update, message: Message, data: dict[str, Any]) -> outbox.EditText:
    return outbox.EditText(update.update_id, message.chat_id, message.message_id, _data(update, data))


def _first(line: Say, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with ``line`` said before its own words."""
    return {**data, "say": [line.data(), *data.get("say", [])]}


async def _put(svc: Services, tx: Tx, *notices: outbox.Notice) -> None:
    await outbox.put(tx, *notices, now=svc.clock.now())


async def _reply(update: Update, context: ContextTypes.DEFAULT_TYPE, data: dict[str, Any]) -> None:
    svc = services(context)
    message = update.effective_message
    assert message is not None
    async with svc.store.transaction(update=update.update_id) as tx:
        await _put(svc, tx, _answer(update, message, data, quote=message.chat.type != ChatType.PRIVATE))


# --- writing an entry, in a private chat ---------------------------------------------
async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/visit, or /visit 5户 帮王大爷代缴水费: open an entry (or resume the unfinished one)."""
    svc = services(context)
    message = update.effective_message
    assert message is not None
    user = actor(update)
    mine = visits.communities_for(svc.tree, user.id) if user.person else []
    if not mine:
        await _reply(update, context, said(say("visit.not_allowed")))
        return
    text = command_text(message)
    one_line = visits.parse_one_line(text) if text else None
    if text and one_line is None:
        await _reply(update, context, said(say("visit.usage")))
        return
    now = svc.clock.now()
    async with svc.store.transaction(update=update.update_id) as tx:
        visit = await tx.open_visit(user.id)
        if visit is not None:  # one at a time: the unfinished one first
            resumed = say("visit.resumed", started=local_time(visit.started_at))
            data = _first(resumed, visits.question(visit, svc.tree, mine))
        else:
            values: dict[str, Any] = {"step": visits.COMMUNITY}
            if one_line is not None:
                values.update(households=one_line[0], deed=one_line[1])
            if len(mine) == 1:
                values.update(community_id=mine[0].id, step=visits.UNITS)
            name = svc.tree.person_name(user.id) or user.name  # the name config.yaml gives the post
            visit = await tx.visit(await tx.start_visit(user.id, name, message.chat_id, now, **values))
            assert visit is not None
            data = visits.question(visit, svc.tree, mine)
            if one_line is not None:
                data = _first(say("visit.started_one_line", households=one_line[0]), data)
        await tx.set_prompt(message.chat_id, user.id, now, kind=visits.PROMPT)  # the conversation in this chat
        await tx.set_private_chat(user.id, user.name, now)  # DMs reach them now (a finding's receipt, copies)
        await _put(svc, tx, _answer(update, message, data))
    log.info("visit %s in progress (community %s, step %s)", visit.id, visit.community_id or "-", visit.step)


async def elsewhere(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/visit in a group: it is written in a private chat with the bot."""
    await _reply(update, context, said(say("visit.in_private")))


async def take(update: Update, context: ContextTypes.DEFAULT_TYPE) -> bool:
    """A text, photo or place in a private chat: the next step of the sender's unfinished
    entry, unless another question of the bot's (a private report, why not satisfied) is
    pending there. False when it is not the entry's (the caller goes on)."""
    svc = services(context)
    message = update.effective_message
    if message is None or message.chat.type != ChatType.PRIVATE or update.effective_user is None:
        return False
    user = actor(update)
    async with svc.store.read() as tx:
        pending = await tx.prompt(message.chat_id, user.id, svc.clock.now() - PROMPT_TTL)
        if pending is not None and pending.kind != visits.PROMPT:
            return False
        visit = await tx.open_visit(user.id)
    if visit is None:
        return False
    if not _still_allowed(svc, visit):  # no step of it; their message goes on as anyone's
        return False
    await _step(update, context, svc, message, visit)
    return True


def _still_allowed(svc: Services, visit: Visit) -> bool:
    """Whether the one writing ``visit`` may still log visits for its community (any, before
    one is chosen): an entry outlives a restart, and config.yaml may have changed meanwhile."""
    mine = [c.id for c in visits.communities_for(svc.tree, visit.user_id)]
    return visit.community_id in mine if visit.community_id else bool(mine)


async def _step(update: Update, context: ContextTypes.DEFAULT_TYPE, svc: Services, message: Message,
                visit: Visit) -> None:
    now = svc.clock.now()
    text = (message.text or "").strip()
    kept: Say | None = None
    values: dict[str, Any] = {}
    async with svc.store.transaction(update=update.update_id) as tx:
        if message.photo:
            count = await tx.add_visit_photo(visit.id, message.photo[-1].file_id, now)
            kept = say("visit.photo_kept", count=count)
        elif message.location is not None:
            venue = message.venue
            place = " ".join(p for p in (venue.title, venue.address) if p) if venue is not None else None
            values.update(latitude=message.location.latitude, longitude=message.location.longitude, place=place)
            kept = say("visit.place_kept")
        elif not visible(text):
            kept = say("visit.use_buttons")
        elif visit.step == visits.HOUSEHOLDS:
            households = visits.parse_households(text)
            if households is None:
                kept = say("visit.bad_households", max=visits.MAX_HOUSEHOLDS)
            else:
                values.update(households=households, step=visits.following(visit, visits.HOUSEHOLDS))
        elif visit.step == visits.DEED:
            values.update(deed=text[: visits.MAX_TEXT], step=visits.following(visit, visits.DEED))
        elif visit.step == visits.FINDINGS:
            none = text in ("无", "没有", "none", "None", "no")
            values.update(findings=None if none else text[: visits.MAX_TEXT], step=visits.MEDIA)
        else:  # a step answered with a button, or the media step
            kept = say("visit.use_buttons")
        if values:
            await tx.update_visit(visit.id, now, **values)
        elif kept is not None:
            await tx.update_visit(visit.id, now)  # still being written: the 24 h run from now
        current = await tx.visit(visit.id)
        assert current is not None
        data = visits.question(current, svc.tree, visits.communities_for(svc.tree, visit.user_id))
        if kept is not None and not (current.step == visits.MEDIA and (message.photo or message.location)):
            data = _first(kept, data)  # at the media step its own question counts them
        await tx.set_prompt(message.chat_id, visit.user_id, now, kind=visits.PROMPT)
        await _put(svc, tx, _answer(update, message, data))


async def button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """The entry's buttons: a community, a unit (ticked or not), 下一步, 无, 完成, 放弃; and
    after it, 转为事项 (in which unit) and the private/public toggle."""
    svc = services(context)
    query = update.callback_query
    assert query is not None
    await query.answer()
    parsed = visits.parse_callback(query.data)
    message = query.message if isinstance(query.message, Message) else None
    if parsed is None or message is None:
        return
    visit_id, action, arg = parsed
    user = actor(update)
    now = svc.clock.now()
    async with svc.store.transaction(update=update.update_id) as tx:
        visit = await tx.visit(visit_id)
        if visit is None or visit.user_id != user.id or message.chat_id != visit.chat_id:
            # …or its data on a message elsewhere: it would edit that one (a group's post, a card)
            await _put(svc, tx, _answer(update, message, said(say("visit.stale"))))
            return
        if not _still_allowed(svc, visit):  # taken off config.yaml since: their old buttons do nothing
            await _put(svc, tx, _answer(update, message, said(say("visit.not_allowed"))))
            return
        await _put(svc, tx, *await _press(svc, tx, update, message, visit, action, arg, now))


async def _press(svc: Services, tx: Tx, update: Update, message: Message, visit: Visit, action: str, arg: str,
                 now: float) -> list[outbox.Notice]:
    """What a button does to the entry, in its transaction; the notices to queue."""
    tree = svc.tree
    mine = visits.communities_for(tree, visit.user_id)
    step = visit.step

    def again() -> list[outbox.Notice]:  # a button of a step already past: ask what is asked now
        if visit.finished_at is not None:
            return [_answer(update, message, said(say("visit.stale")))]
        return [_answer(update, message, _first(say("visit.stale"), visits.question(visit, tree, mine)))]

    if action == "x" and visit.finished_at is None:
        await tx.drop_visit(visit.id)
        await tx.take_prompt(message.chat_id, visit.user_id, 0.0)
        return [_edit(update, message, said(say("visit.discarded")))]
    if action == "c" and step == visits.COMMUNITY and any(c.id == arg for c in mine):
        await tx.update_visit(visit.id, now, community_id=arg, step=visits.UNITS)
    elif action == "u" and step == visits.UNITS and arg in (tree.nodes[visit.community_id].children
                                                         if visit.community_id in tree.nodes else ()):
        units = [u for u in visit.units if u != arg] if arg in visit.units else [*visit.units, arg]
        await tx.update_visit(visit.id, now, units=units)
    elif action == "n" and step == visits.UNITS:
        if not visit.units:
            return [_answer(update, message, _first(say("visit.pick_units"), visits.question(visit, tree, mine)))]
        await tx.update_visit(visit.id, now, step=visits.following(visit, visits.UNITS))
        moved = await tx.visit(visit.id)
        assert moved is not None
        return [_edit(update, message, said(say("visit.units_chosen", units=visits.unit_names(tree, visit.units)))),
                _answer(update, message, visits.question(moved, tree, mine))]
    elif action == "f" and step == visits.FINDINGS:
        await tx.update_visit(visit.id, now, findings=None, step=visits.MEDIA)
        moved = await tx.visit(visit.id)
        assert moved is not None
        return [_edit(update, message, said(say("visit.findings_none"))),
                _answer(update, message, visits.question(moved, tree, mine))]
    elif action == "d" and step == visits.MEDIA and visit.finished_at is None:
        done = await visits.finish(tx, tree, visit, now)
        await tx.take_prompt(message.chat_id, visit.user_id, 0.0)
        return [_edit(update, message, visits.finished_answer(done))]
    elif action == "t" and step == visits.DONE and visit.findings:
        return [_edit(update, message, visits.finished_answer(visit, private=arg != "g"))]
    elif action == "m" and step == visits.DONE and visit.findings and arg in ("p", "g"):
        if len(visit.units) > 1:
            return [_edit(update, message, visits.unit_choice(visit, tree, arg))]
        return await _convert(svc, tx, update, message, visit, arg + visit.units[0], now)
    elif action == "k" and step == visits.DONE and visit.findings and arg[:1] in ("p", "g") and arg[1:] in visit.units:
        return await _convert(svc, tx, update, message, visit, arg, now)
    else:
        return again()
    moved = await tx.visit(visit.id)
    assert moved is not None
    return [_edit(update, message, visits.question(moved, tree, mine))]


async def _convert(svc: Services, tx: Tx, update: Update, message: Message, visit: Visit, choice: str,
                   now: float) -> list[outbox.Notice]:
    """转为事项: the finding becomes a matter of the unit, reported by the one who visited (as
    the entry names them), private unless they chose public (a household's problem is not
    the whole group's), logged as every officer's finding is (Matters.log_found), with the
    visit named on it, in the transaction that marks the entry converted."""
    unit = svc.tree.get(choice[1:])
    if unit is None or unit.tier != UNIT or not visit.findings:
        return [_answer(update, message, said(say("visit.stale")))]
    private = choice[0] == "p" or svc.tree.chat_of(unit.id) is None  # no group to post in: private
    matter_id = await svc.matters.log_found(tx, unit, Actor(visit.user_id, visit.user_name), visit.findings[:MAX_TEXT],
                                            private, now)
    await tx.update_matter(matter_id, visit_id=visit.id)
    # …and on its timeline (/show, the ledger): the visit's number, no one's words.
    await tx.add_event(matter_id, now, "from_visit", actor_id=visit.user_id, actor_name=visit.user_name,
                       tier=UNIT, detail=f"#{visit.id}")
    await tx.update_visit(visit.id, now, step=visits.CONVERTED)
    log.info("visit %s: its finding is matter %s in %s (%s)", visit.id, matter_id, unit.id,
             "private" if private else "public")
    mode = say("visit.mode_private" if private else "visit.mode_public")
    return [_edit(update, message, said(say("visit.finished", id=visit.id),
                                        say("visit.converted", id=matter_id, unit=unit.name, mode=mode)))]


# --- /visits in a community's or the station's group -----------------------------------
def period_start(period: str, now: float, tz: Any) -> float:
    """This week (from Monday 00:00) or this month (from the 1st), local time."""
    today = datetime.fromtimestamp(now, tz).replace(hour=0, minute=0, second=0, microsecond=0)
    first = today.replace(day=1) if period == "month" else today - timedelta(days=today.weekday())
    return first.timestamp()


async def list_visits(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/visits [姓名] [week|month]: the entries under this group's node, by who wrote them,
    each with a button that sends its photos again (抽查)."""
    svc = services(context)
    node = chat_node(update, context)
    assert node is not None
    if node.tier == UNIT:
        await _reply(update, context, said(say("visit.list_where")))
        return
    if not may(svc.tree, actor(update).id, Act.VISIT, node.id):
        await _reply(update, context, said(say("visit.list_not_allowed", node=node.name)))
        return
    args = list(context.args or [])
    period = PERIODS.get(args[-1].lower(), "") if args else ""
    if period:
        args = args[:-1]
    period = period or "week"
    name = " ".join(args).strip()
    now = svc.clock.now()
    start = period_start(period, now, svc.config.tz)
    communities = [c.id for c in svc.tree.communities() if svc.tree.contains(node.id, c.id)]
    async with svc.store.read() as tx:
        found = await tx.visits_between(start, now + 1, communities)
    if name:
        found = [v for v in found if name in v.user_name or name in (svc.tree.person_name(v.user_id) or "")]
    when = say(f"visit.period_{period}", start=local_time(start))
    if not found:
        await _reply(update, context, said(say("visit.list_empty", node=node.name, period=when,
                                               who=say("visit.list_who", name=name) if name else "")))
        return
    lines = [say("visit.list_header", node=node.name, period=when, count=len(found),
                 households=sum(v.households or 0 for v in found),
                 who=say("visit.list_who", name=name) if name else "")]
    shown = 0
    for group in visits.by_person(found):
        lines.append(say("visit.list_person", name=group.name, visits=len(group.visits),
                         households=group.households, findings=group.findings))
        for v in group.visits:
            if shown >= LIST_ITEMS:
                break
            shown += 1
            lines.append(say("visit.list_item", id=v.id, at=local_time(v.finished_at or v.updated_at),
                             units=visits.unit_names(svc.tree, v.units), households=v.households or 0,
                             deed=(v.deed or "")[:40], photos=v.photos,
                             findings=say("visit.list_found") if v.findings else ""))
    if shown < len(found):
        lines.append(say("visit.list_more", count=len(found) - shown))
    spot = [(f"📷 #{v.id}", f"{visits.SPOT_CHECK}{v.id}") for v in found if v.photos][:SPOT_BUTTONS]
    await _reply(update, context, said(*lines, buttons=[spot[i : i + 4] for i in range(0, len(spot), 4)]))


async def list_elsewhere(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """/visits outside a community's or the station's group."""
    await _reply(update, context, said(say("visit.list_where")))


async def spot_check(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """An entry's 📷 button under /visits: its photos, sent again to this group (抽查)."""
    svc = services(context)
    query = update.callback_query
    assert query is not None
    await query.answer()
    message = query.message if isinstance(query.message, Message) else None
    number = (query.data or "").removeprefix(visits.SPOT_CHECK)
    node = chat_node(update, context)
    if message is None or node is None or not number.isdecimal() or len(number) > 9:
        return
    async with svc.store.transaction(update=update.update_id) as tx:
        visit = await tx.visit(int(number))
        if visit is None or visit.finished_at is None or not svc.tree.contains(node.id, visit.community_id or ""):
            await _put(svc, tx, _answer(update, message, said(say("visit.stale"))))
            return
        if not may(svc.tree, actor(update).id, Act.VISIT, node.id):
            await _put(svc, tx, _answer(update, message, said(say("visit.list_not_allowed", node=node.name))))
            return
        photos = await tx.visit_photos(visit.id)
        if not photos:
            await _put(svc, tx, _answer(update, message, said(say("visit.no_photos", id=visit.id))))
            return
        await _put(svc, tx, *[
            outbox.VisitPhoto(visit.id, index, update.update_id, message.chat_id, file_id, _data(update, said(
                say("visit.photo_caption", id=visit.id, index=index, count=len(photos), name=visit.user_name,
                    at=local_time(visit.finished_at)))))
            for index, file_id in enumerate(photos, 1)
        ])
