"""Personal data kept no longer than needed (issue 10).

``retention.personal_data`` after a matter is closed, its reporter's name and id and its
texts are replaced by （已清除）; its figures stay, so bulletins and ledgers count the same.
The sweep does this as time passes; ``tierbot purge --before DATE`` does it by hand. Each
cleared matter's timeline says so, and one event line (bot/logs.py) gives the counts, never a name.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from bot import logs
from bot.config import Config
from bot.store import Purged, Store

BATCH = 500  # matters per transaction: a first clearing of years of data never holds the bot up long


async def purge(store: Store, before: float, now: float, by_hand: bool = False) -> Purged:
    """Clear what is due: matters closed before ``before``, people not seen since."""
    total = Purged()
    while True:
        async with store.transaction() as tx:
            done = await tx.purge_matters(before, now, BATCH)
            last = done.matters < BATCH
            if last:
                done.add(await tx.purge_people(before))
                total.add(done)
                if _any(total) or by_hand:  # for `tierbot status` and whoever asks later
                    await tx.set_meta("retention:last_purge", json.dumps({"at": now, "before": before, **vars(total)}))
        if last:
            break
        total.add(done)
    if _any(total) or by_hand:
        before_text = datetime.fromtimestamp(before, UTC).strftime("%Y-%m-%d %H:%M UTC")
        logs.event("purged", by="by hand" if by_hand else "retention period", before=before_text, **vars(total))
    return total


def _any(counts: Purged) -> bool:
    return bool(counts.matters or counts.prompts or counts.users or counts.held)


async def purge_file(config: Config, before: float, by_hand: bool = False) -> Purged:
    """The same, on the database file (``tierbot purge``; the bot may be running)."""
    import time

    store = await Store.open(config.database)
    try:
        return await purge(store, before, time.time(), by_hand=by_hand)
    finally:
        await store.close()
