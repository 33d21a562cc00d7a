"""Every view of a matter follows it (issue 14).

A matter is seen in more places than its card: each ping about it in a unit's, community's
or station's group (an escalation, an urgent alert, a re-ping, a return…), each leader's DM
copy of one, and a private matter's card in its heads' DMs. Once Telegram takes one, its
message id is kept as a *view* (bot/store's ``views``, recorded with the send). Whenever a
matter changes, where its card's refresh is queued, ``follow`` queues a refresh of every
live view of it; the delivery worker edits each, composed as it first was but with its
matters as they are then (state, who holds it, buttons only for what is still open), as
the chat may read it (bot/visibility.py). A refresh waits a second, and one edit serves
every refresh of that view then waiting, so a burst of changes makes one edit a view.
"""

from __future__ import annotations

from collections.abc import Iterable

from bot import outbox
from bot.store import Tx


async def follow(tx: Tx, matter_ids: Iterable[int], now: float, tag: str) -> None:
    """In the change's transaction: refresh every live view of these matters; ``tag``
    names the change (``e<event>``, or the sweep's ``s<stamp>``), so a view is refreshed
    once for it however often the change is retried."""
    targets = await tx.live_views(sorted(set(matter_ids)))
    await outbox.put(tx, *(outbox.ViewRefresh(key, chat, tag) for key, chat in targets), now=now)
