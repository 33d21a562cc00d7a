"""Who hears of a matter, where, and when.

A ping tells a tier's chat about a matter: it climbed there, is still overdue, a deadline
is near, a claim went idle, it was returned, or it is urgent. Pings to one chat in one
go become one message. In quiet hours, pings for non-urgent matters are held and released
together at the end, one message per chat. Tier-1 pings name the officer on duty; leaders
who asked for it (``dm: true``) and have opened a private chat with the bot get a copy.
Everything is queued inside the caller's transaction.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from bot import outbox, visibility
from bot.config import Config, parse_span
from bot.outbox import put
from bot.store import Matter, Tx
from bot.text import render
from bot.text.i18n import Languages
from bot.tree import STATION, UNIT, Tree
from escalation import duty, quiet


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


def _pairs(pings: list[Ping]) -> tuple[tuple[int, int], ...]:
    """The (matter, event) pairs that name a ping's message."""
    return tuple((p.matter.id, p.event_id) for p in pings)


def target_chat(tree: Tree, unit_id: str, tier: int) -> int | None:
    """The chat of the node responsible at ``tier``; if it has none, the nearest above."""
    for level in range(tier, 0, -1):
        chat = tree.chat_of(tree.at_tier(unit_id, level).id)
        if chat is not None:
            return chat
    return None


class Notifier:
    def __init__(self, tree: Tree, langs: Languages, config: Config) -> None:
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
            await self._queue(tx, chat, chat_pings, now)

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
            await self._queue(tx, chat, chat_pings, now, key_prefix=f"held{int(now)}")  # ids restart
        for chat, chat_pings in over_limit.items():
            text, keyboard = render.over_limit(chat_pings, self.tree, self.langs.for_chat(chat))
            await put(tx, outbox.Ping(f"overlimit{int(now)}", chat, _pairs(chat_pings), text, keyboard), now=now)
        await tx.drop_held_pings([row.id for row in held])
        return len(held)

    async def _queue(self, tx: Tx, chat: int, pings: list[Ping], now: float, key_prefix: str = "ping") -> None:
        node = self.tree.node_for_chat(chat)
        tier = node.tier if node else pings[0].tier
        leaders = list(node.leaders) if node else []
        on_watch: list[int] = []
        if tier == STATION:
            on_watch = duty.on_duty(self.config.duty, await tx.duty_overrides(now), now, self.config.tz)
        unit_group = node is not None and node.tier == UNIT  # sees no text of private matters
        audience = visibility.GROUPS[tier] if node is not None else visibility.Audience.UNIT
        text, keyboard = render.pings(pings, self.tree, self.langs.for_chat(chat), now, leaders, on_watch,
                                      audience=audience)
        message = outbox.Ping(key_prefix, chat, _pairs(pings), text, keyboard)
        notices: list[outbox.Notice] = [message]
        # Telegram notifies nobody in a message with over 50 mentions: the rest of a large
        # group of leaders is named in follow-ups of at most MAX_MENTIONS each.
        rest = leaders[render.MAX_MENTIONS :]
        for part in range(0, len(rest), render.MAX_MENTIONS):
            names = render.people(rest[part : part + render.MAX_MENTIONS])
            notices.append(outbox.Mentions(message, part, self.langs.for_chat(chat)("esc.leaders", leaders=names)))
        if not unit_group:  # photos, voice notes and places travel up with the matter
            forwarded = pings[:MAX_FORWARDED_MATTERS]
            attached_to = await tx.attachments_of([p.matter.id for p in forwarded])
            for ping in forwarded:
                attached = attached_to.get(ping.matter.id, [])
                for index, (kind, media) in enumerate(attached[:MAX_ATTACHMENTS]):
                    notices.append(outbox.Attachment(message, ping.matter.id, index, kind, media, f"#{ping.matter.id}"))
        # Copies by private message: the group stays the source of truth. A leader reads in
        # private what the unit group may not (a private matter's text).
        for person in leaders:
            if person.dm and await tx.has_private_chat(person.id):
                dm_text = text
                if any(visibility.redacted(audience, p.matter.private) for p in pings):
                    dm_text, _ = render.pings(pings, self.tree, self.langs.for_chat(person.id), now, leaders,
                                              on_watch, audience=visibility.Audience.LEADER_DM)
                notices.append(outbox.PingCopy(message, person.id, dm_text, keyboard))
        await put(tx, *notices, now=now)
