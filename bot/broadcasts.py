"""Broadcasts (一点发起、全网响应): a station or community pushes a notice — an anti-fraud
warning, a safety notice — down to every unit group below it.

One transaction records the broadcast, queues one outbox message per target chat (key
``bc:<id>:<chat>``, in that chat's language) and the sender's acknowledgement. The
delivery worker paces the messages (PTB's AIORateLimiter) and applies its retry and
unreachable rules; in the transaction that records a target's last outcome it calls
``settled``, which queues the delivery report — delivered N, failed M, naming the failed
groups — once every target has been tried, under the unique key ``bcr:<id>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from bot import outbox
from bot.clock import Clock
from bot.matters import Actor
from bot.outbox import put
from bot.store import Store, Tx
from bot.text import render
from bot.text.i18n import Languages, Texts
from bot.tree import COMMUNITY, Node, Tree

TELEGRAM_TEXT = 4096  # characters in a message
TELEGRAM_CAPTION = 1024  # characters in a photo's caption
MAX_TEXT = 3000  # what a leader may write in a text notice (the header needs the rest)
MAX_CAPTION = 800  # … and under a photo
MAX_NAMED = 60  # failed groups named in a report; the rest are counted
KEY_PREFIX = outbox.BROADCAST_PREFIX


@dataclass(frozen=True)
class Queued:
    id: int
    targets: int


def may_broadcast(tree: Tree, user_id: int, node: Node | None) -> bool:
    """Leaders of a station or community (or of a node above it), from that node's chat."""
    return node is not None and node.tier <= COMMUNITY and tree.leads(user_id, node.id)


def notice(t: Texts, node: Node, text: str) -> str:
    """What a unit group reads: a header naming who sends it, then the leader's words."""
    header = t("broadcast.notice", node=escape(node.name))
    return f"{header}\n{escape(text)}" if text else header


def fits(langs: Languages, node: Node, text: str, photo: bool) -> bool:
    """Whether the notice fits one Telegram message (or caption) in every language."""
    if len(text) > (MAX_CAPTION if photo else MAX_TEXT):
        return False
    limit = TELEGRAM_CAPTION if photo else TELEGRAM_TEXT
    return all(len(notice(t, node, text)) <= limit for t in langs.texts.values())


def targets(tree: Tree, node: Node) -> list[tuple[Node, int]]:
    """Every unit below the node that has a group, with that group's chat id."""
    found = []
    for unit in tree.units_under(node.id):
        chat = tree.chat_of(unit.id)
        if chat is not None:
            found.append((unit, chat))
    return found


class Broadcasts:
    def __init__(self, store: Store, tree: Tree, langs: Languages, clock: Clock) -> None:
        self.store = store
        self.tree = tree
        self.langs = langs
        self.clock = clock

    async def send(
        self, node: Node, chat_id: int, message_id: int | None, sender: Actor, text: str, photo: str | None,
        language: str, update: int | None = None,
    ) -> Queued | None:
        """Queue the notice to every unit group below ``node``, in ``update``'s transaction; None if
        there is none."""
        to = targets(self.tree, node)
        if not to:
            return None
        now = self.clock.now()
        async with self.store.transaction(update=update) as tx:
            broadcast_id = await tx.insert_broadcast(
                node.id, chat_id, message_id, sender.id, sender.name, text, photo, language, len(to), now
            )
            for unit, chat in to:
                copy = outbox.BroadcastCopy(broadcast_id, chat, notice(self.langs.for_chat(chat), node, text), photo)
                await put(tx, copy, now=now)
                await tx.add_broadcast_target(broadcast_id, unit.id, chat, copy.key)
            t = self.langs.get(language)
            await put(tx, outbox.BroadcastQueued(
                broadcast_id, chat_id, reply_to=message_id, text=t("broadcast.queued", id=broadcast_id, count=len(to)),
            ), now=now)
            tx.log_event("broadcast_queued", broadcast=broadcast_id, node=node.id, targets=len(to))
        return Queued(broadcast_id, len(to))


async def settled(
    tx: Tx, tree: Tree, langs: Languages, now: float, *, key: str | None = None, chat_id: int | None = None
) -> None:
    """The delivery worker's hook for Kind.BROADCAST (registered in bot/app.py): one of a
    broadcast's copies reached its last outcome (``key``), or every pending item of a chat
    was given up (``chat_id``): queue the report of each broadcast now fully tried."""
    if key is not None:
        if not key.startswith(KEY_PREFIX):
            return
        ids = [int(key.split(":")[1])]
    else:
        assert chat_id is not None
        ids = await tx.unreported_broadcasts_to(chat_id)
    for broadcast_id in ids:
        await report_if_done(tx, tree, langs, broadcast_id, now)


async def report_if_done(tx: Tx, tree: Tree, langs: Languages, broadcast_id: int, now: float) -> bool:
    """Queue the delivery report if every target has been tried and none was reported yet."""
    broadcast = await tx.broadcast(broadcast_id)
    if broadcast is None or broadcast.reported_at is not None or await tx.broadcast_pending(broadcast_id):
        return False
    outcomes = await tx.broadcast_outcomes(broadcast_id)
    failed = [o for o in outcomes if o.state != "sent"]
    t = langs.get(broadcast.language)
    lines = [
        t(
            "broadcast.report", sender=render.mention(broadcast.sender_id, broadcast.sender_name),
            id=broadcast.id, delivered=len(outcomes) - len(failed), failed=len(failed),
        )
    ]
    if failed:
        names = [escape(tree.nodes[o.unit_id].name if o.unit_id in tree.nodes else o.unit_id) for o in failed]
        lines.append(t("broadcast.failed", units=t("broadcast.sep").join(names[:MAX_NAMED])))
        if len(names) > MAX_NAMED:
            lines.append(t("broadcast.failed_more", count=len(names) - MAX_NAMED))
    await put(tx, outbox.BroadcastReport(broadcast.id, broadcast.chat_id, "\n".join(lines), broadcast.message_id),
              now=now)
    first = await tx.mark_broadcast_reported(broadcast.id, now)
    if first:
        tx.log_event("broadcast_settled", broadcast=broadcast.id, node=broadcast.node_id,
                     delivered=len(outcomes) - len(failed), failed=len(failed))
    return first
