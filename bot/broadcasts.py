"""Broadcasts (一点发起、全网响应): a station or community pushes a notice — an anti-fraud
warning, a safety notice — down to every unit group below it.

One transaction records the broadcast, queues one outbox message per target chat (key
``bc:<id>:<chat>``: the sender's words, under a heading bot/text/render.py composes in that
chat's language when it is sent) and the sender's acknowledgement. The
delivery worker paces the messages (PTB's AIORateLimiter) and applies its retry and
unreachable rules; in the transaction that records a target's last outcome it calls
``settled``, which queues the delivery report — delivered N, failed M, naming the failed
groups — once every target has been tried, under the unique key ``bcr:<id>``.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot import outbox
from bot.clock import Clock
from bot.matters import Actor
from bot.outbox import put
from bot.store import Store, Tx
from bot.tree import Node, Tree

MAX_TEXT = 3000  # what a leader may write in a text notice (the header needs the rest)
MAX_CAPTION = 800  # … and under a photo
KEY_PREFIX = outbox.BROADCAST_PREFIX


@dataclass(frozen=True)
class Queued:
    id: int
    targets: int


def targets(tree: Tree, node: Node) -> list[tuple[Node, int]]:
    """Every unit below the node that has a group, with that group's chat id."""
    found = []
    for unit in tree.units_under(node.id):
        chat = tree.chat_of(unit.id)
        if chat is not None:
            found.append((unit, chat))
    return found


class Broadcasts:
    def __init__(self, store: Store, tree: Tree, clock: Clock) -> None:
        self.store = store
        self.tree = tree
        self.clock = clock

    async def send(
        self, node: Node, chat_id: int, message_id: int | None, sender: Actor, text: str, photo: str | None,
        language: str, update: int | None = None,
    ) -> Queued | None:
        """Queue the notice to every unit group below ``node``; None if there is none."""
        now = self.clock.now()
        async with self.store.transaction(update=update) as tx:
            return await self.queue(tx, node, chat_id, message_id, sender, text, photo, language, now)

    async def queue(
        self, tx: Tx, node: Node, chat_id: int, message_id: int | None, sender: Actor, text: str, photo: str | None,
        language: str, now: float,
    ) -> Queued | None:
        """``send`` in the caller's transaction (the weekly safety notice's 发布 records its
        decision with it)."""
        to = targets(self.tree, node)
        if not to:
            return None
        broadcast_id = await tx.insert_broadcast(
            node.id, chat_id, message_id, sender.id, sender.name, text, photo, language, len(to), now
        )
        for unit, chat in to:
            copy = outbox.BroadcastCopy(broadcast_id, chat, node.id, text, photo)
            await put(tx, copy, now=now)
            await tx.add_broadcast_target(broadcast_id, unit.id, chat, copy.key)
        await put(tx, outbox.BroadcastQueued(broadcast_id, chat_id, len(to), language, reply_to=message_id), now=now)
        tx.log_event("broadcast_queued", broadcast=broadcast_id, node=node.id, targets=len(to))
        return Queued(broadcast_id, len(to))


async def settled(
    tx: Tx, tree: Tree, langs: object, now: float, *, key: str | None = None, chat_id: int | None = None
) -> None:
    """The delivery worker's hook for Kind.BROADCAST (registered in bot/app.py): one of a
    broadcast's copies reached its last outcome (``key``), or every pending item of a chat
    was given up (``chat_id``): queue the report of each broadcast now fully tried. (The
    tree and the languages are every hook's arguments; the report's words are the renderer's.)"""
    if key is not None:
        if not key.startswith(KEY_PREFIX):
            return
        ids = [int(key.split(":")[1])]
    else:
        assert chat_id is not None
        ids = await tx.unreported_broadcasts_to(chat_id)
    for broadcast_id in ids:
        await report_if_done(tx, broadcast_id, now)


async def report_if_done(tx: Tx, broadcast_id: int, now: float) -> bool:
    """Queue the delivery report if every target has been tried and none was reported yet."""
    broadcast = await tx.broadcast(broadcast_id)
    if broadcast is None or broadcast.reported_at is not None or await tx.broadcast_pending(broadcast_id):
        return False
    outcomes = await tx.broadcast_outcomes(broadcast_id)
    failed = tuple(o.unit_id for o in outcomes if o.state != "sent")
    await put(tx, outbox.BroadcastReport(broadcast.id, broadcast.chat_id, broadcast.sender_id, broadcast.sender_name,
                                         len(outcomes) - len(failed), failed, broadcast.language,
                                         broadcast.message_id), now=now)
    first = await tx.mark_broadcast_reported(broadcast.id, now)
    if first:
        tx.log_event("broadcast_settled", broadcast=broadcast.id, node=broadcast.node_id,
                     delivered=len(outcomes) - len(failed), failed=len(failed))
    return first
