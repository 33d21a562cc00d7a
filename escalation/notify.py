"""Who hears of a matter, where, and when.

A ping tells a tier's chat about a matter: it climbed there, is still overdue, a deadline
is near, a claim went idle, it was returned, or it is urgent. Pings to one chat in one
go become one message. In quiet hours, pings for non-urgent matters are held and released
together at the end, one message per chat. Tier-1 pings name the officer on duty; leaders
who asked for it (``dm: true``) and have opened a private chat with the bot get a copy.
Everything is queued inside the caller's transaction. A ping carries what it is about
(``ping_data``), not words: bot/text/render.py composes it when it is sent, and again
whenever one of its matters changes (bot/views.py), from the matters as they are then.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from bot import outbox, visibility
from bot.config import Config, Person, parse_span
from bot.outbox import put
from bot.store import Matter, Tx
from bot.tree import STATION, UNIT, Tree
from escalation import duty, policy, quiet


@dataclass(frozen=True)
class Ping:
    matter: Matter  # as it stands after the change
    kind: str  # escalated, reping, remind, idle, unclaimed, resumed, returned, urgent
    tier: int  # the tier being told
    reason: str  # unclaimed, unresolved, idle, …: a key under "reason."
    event_id: int  # unique for this change of this matter: its event id, or the sweep's stamp
    note: str | None = None  # a person's words: a reason, instructions (escaped when shown)


MAX_ATTACHMENTS = 5  # forwarded per matter with a ping; /show lists them all
MAX_FORWARDED_MATTERS = 3  # a digest of many matters forwards the first few's attachments
MAX_MENTIONS = 40  # Telegram notifies nobody in a message with more than 50 mentions
# A digest's matters per message: a line each, so that the message stays well within
# Telegram's 4,096 characters when many fall due at once (a sweep batch takes 200).
MAX_DIGEST = 20


def _pairs(pings: list[Ping]) -> tuple[tuple[int, int], ...]:
    """The (matter, event) pairs that name a ping's message."""
    return tuple((p.matter.id, p.event_id) for p in pings)


def ping_data(
    pings: list[Ping], now: float, audience: visibility.Audience, leaders: list[Person] | tuple[Person, ...] = (),
    on_watch: list[int] | tuple[int, ...] = (), style: str | None = None,
) -> dict[str, Any]:
    """What a ping's message is composed from (bot/text/render.py's ``_ping``): the matters
    it names, why each is told (with what its title needs as of ``now``, so that the words
    stay those of the moment when the view is refreshed later), who reads the chat and who
    is named."""
    told: list[dict[str, Any]] = []
    for ping in pings:
        entry: dict[str, Any] = {"matter": ping.matter.id, "kind": ping.kind, "tier": ping.tier,
                                 "reason": ping.reason}
        if ping.note:
            entry["note"] = ping.note
        if ping.kind == "reping":
            entry["overdue"] = now - policy.overdue_since(ping.matter.clock, ping.matter.policy_rules, now)
        elif ping.kind == "remind":
            entry["due"] = policy.next_deadline(ping.matter.clock, ping.matter.policy_rules, now)
        elif ping.kind == "resolved_below":
            entry["who"] = ping.matter.resolved_by_name or ""
        told.append(entry)
    data: dict[str, Any] = {
        "matters": list(dict.fromkeys(p.matter.id for p in pings)), "pings": told, "at": now,
        "audience": audience.value,
    }
    if leaders:
        data["leaders"] = [[p.id, p.name] for p in leaders]
    if on_watch:
        data["on_watch"] = list(on_watch)
    if style:
        data["style"] = style
    return data




def target_chat(tree: Tree, unit_id: str, tier: int) -> int | None:
    """The chat of the node responsible at ``tier``; if it has none, the nearest above."""
    for level in range(tier, 0, -1):
        chat = tree.chat_of(tree.at_tier(unit_id, level).id)
        if chat is not None:
            return chat
    return None


class Notifier:
    # ``langs``: the chats' languages, which only escalation/sweep.py still reads from here
    # (for the timeline's reason); a ping's words are composed when it is sent.
    def __init__(self, tree: Tree, langs: Any, config: Config) -> None:
        self.tree = tree
        self.langs = langs
        self.config = config
        self.quiet_span = parse_span(config.quiet_hours) if config.quiet_hours else None

    async def send(self, tx: Tx, pings: list[Ping], now: float, may_hold: bool = True) -> None:
        """Queue ``pings``: grouped per chat, held in quiet hours unless urgent."""
        hold_until = quiet.quiet_until(now, self.quiet_span, self.config.tz) if may_hold else None
        by_chat: dict[int, list[Ping]] = defaultdict(list)
        for ping in pings:
            chat = target_chat(self.tree, ping.matter.unit_id, ping.tier)
            if chat is None:
                continue
            if hold_until is not None and not ping.matter.urgent:
                await tx.hold_ping(chat, ping.matter.id, ping.kind, ping.tier, ping.reason, now, hold_until)
            else:
                by_chat[chat].append(ping)
        for chat, chat_pings in by_chat.items():
            for part in range(0, len(chat_pings), MAX_DIGEST):
                await self._queue(tx, chat, chat_pings[part : part + MAX_DIGEST], now)

    async def defer(self, tx: Tx, pings: list[Ping], now: float) -> None:
        """Urgent alerts past the reporter's daily limit (bot/limits.py): due at once, but
        sent by the next sweep as one line each in one message per chat."""
        for ping in pings:
            chat = target_chat(self.tree, ping.matter.unit_id, ping.tier)
            if chat is not None:
                await tx.hold_ping(chat, ping.matter.id, ping.kind, ping.tier, ping.reason, now, now)

    async def release(self, tx: Tx, now: float) -> int:
        """Send what quiet hours held, one message per chat. Returns how many pings."""
        held = await tx.held_pings_due(now)
        if not held:
            return 0
        by_chat: dict[int, list[Ping]] = defaultdict(list)
        over_limit: dict[int, list[Ping]] = defaultdict(list)
        for row in held:
            matter = await tx.matter(row.matter_id)
            if matter is not None and not matter.closed:  # settled overnight: nothing to say
                chats = over_limit if row.kind == "urgent_over" else by_chat
                chats[row.chat_id].append(Ping(matter, row.kind, row.tier, row.reason, row.id))
        for chat, chat_pings in by_chat.items():
            for part in range(0, len(chat_pings), MAX_DIGEST):
                await self._queue(tx, chat, chat_pings[part : part + MAX_DIGEST], now,
                                  key_prefix=f"held{int(now)}")  # ids restart
        for chat, chat_pings in over_limit.items():
            data = ping_data(chat_pings, now, self._audience(chat), style="over_limit")
            await put(tx, outbox.Ping(f"overlimit{int(now)}", chat, _pairs(chat_pings), data), now=now)
        await tx.drop_held_pings([row.id for row in held])
        return len(held)

    def _audience(self, chat: int) -> visibility.Audience:
        node = self.tree.node_for_chat(chat)
        return visibility.GROUPS[node.tier] if node is not None else visibility.Audience.UNIT

    async def _queue(self, tx: Tx, chat: int, pings: list[Ping], now: float, key_prefix: str = "ping") -> None:
        node = self.tree.node_for_chat(chat)
        tier = node.tier if node else pings[0].tier
        leaders = list(node.leaders) if node else []
        on_watch: list[int] = []
        station = (node or self.tree.station_of(pings[0].matter.unit_id)) if tier == STATION else None
        if station is not None:  # the watch of this station (a city has several, issue 17)
            overrides = await tx.duty_overrides(now, station.id)
            on_watch = duty.on_duty(self.tree.duty.get(station.id, []), overrides, now, self.config.tz)
        unit_group = node is not None and node.tier == UNIT  # sees no text of private matters
        data = ping_data(pings, now, self._audience(chat), leaders[:MAX_MENTIONS], on_watch)
        message = outbox.Ping(key_prefix, chat, _pairs(pings), data)
        notices: list[outbox.Notice] = [message]
        # Telegram notifies nobody in a message with over 50 mentions: the rest of a large
        # group of leaders is named in follow-ups of at most MAX_MENTIONS each.
        rest = leaders[MAX_MENTIONS:]
        for part in range(0, len(rest), MAX_MENTIONS):
            named = tuple((p.id, p.name) for p in rest[part : part + MAX_MENTIONS])
            notices.append(outbox.Mentions(message, part, named))
        if not unit_group:  # photos, voice notes and places travel up with the matter
            forwarded = pings[:MAX_FORWARDED_MATTERS]
            attached_to = await tx.attachments_of([p.matter.id for p in forwarded])
            for ping in forwarded:
                attached = attached_to.get(ping.matter.id, [])
                for index, (kind, media) in enumerate(attached[:MAX_ATTACHMENTS]):
                    notices.append(outbox.Attachment(message, ping.matter.id, index, kind, media))
        # Copies by private message: the group stays the source of truth. A leader reads in
        # private what the unit group may not (a private matter's text).
        for person in leaders:
            if person.dm and await tx.has_private_chat(person.id):
                notices.append(outbox.PingCopy(message, person.id))
        await put(tx, *notices, now=now)
