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

from bot import render
from bot.clock import Clock
from bot.i18n import Languages, Texts
from bot.matters import Actor
from bot.storage import Store, Tx
from bot.tree import COMMUNITY, Node, Tree

TELEGRAM_TEXT = 4096  # characters in a message
TELEGRAM_CAPTION = 1024  # characters in a photo's caption
MAX_TEXT = 3000  # what a leader may write in a text notice (the header needs the rest)
MAX_CAPTION = 800  # … and under a photo
MAX_NAMED = 60  # failed groups named in a report; the rest are counted
KEY_PREFIX = "bc:"


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
        language: str,
    ) -> Queued | None:
        """Queue the notice to every unit group below ``node``; None if there is none."""
        to = targets(self.tree, node)
        if not to:
            return None
        now = self.clock.now()
        async with self.store.transaction() as tx:
            broadcast_id = await tx.insert_broadcast(
                node.id, chat_id, message_id, sender.id, sender.name, text, photo, language, len(to), now
            )
            for unit, chat in to:
                key = f"{KEY_PREFIX}{broadcast_id}:{chat}"
                body = notice(self.langs.for_chat(chat), node, text)
                if photo:
                    await tx.enqueue(key, chat, now, kind="photo", text=body, media=photo)
                else:
                    await tx.enqueue(key, chat, now, text=body)
                await tx.add_broadcast_target(broadcast_id, unit.id, chat, key)
            t = self.langs.get(language)
            await tx.enqueue(
                f"bca:{broadcast_id}", chat_id, now, reply_to=message_id,
                text=t("broadcast.queued", id=broadcast_id, count=len(to)),
            )
            tx.log_event("broadcast_queued", broadcast=broadcast_id, node=node.id, targets=len(to))
        return Queued(broadcast_id, len(to))


def is_target(key: str) -> bool:
    """Whether an outbox item is one of a broadcast's messages."""
    return key.startswith(KEY_PREFIX)


async def settled(
    tx: Tx, tree: Tree, langs: Languages, now: float, *, key: str | None = None, chat_id: int | None = None
) -> None:
    """An outbox item reached its last outcome (``key``), or every pending item of a chat
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
    await tx.enqueue(
        f"bcr:{broadcast.id}", broadcast.chat_id, now, text="\n".join(lines), reply_to=broadcast.message_id
    )
    first = await tx.mark_broadcast_reported(broadcast.id, now)
    if first:
        tx.log_event("broadcast_settled", broadcast=broadcast.id, node=broadcast.node_id,
                     delivered=len(outcomes) - len(failed), failed=len(failed))
    return first
