"""The inbox: no report is lost to a crash.

python-telegram-bot confirms fetched updates on its next ``getUpdates`` call, before the
handlers have necessarily run, so a process killed mid-handler would lose them. Here the
request layer that performs ``getUpdates`` writes every fetched update to SQLite before
returning it (so before it can be confirmed); an update is marked done in the same
transaction as its effects; and whatever is not done is replayed at the next start.
Processing is idempotent by ``update_id``: an update already done is skipped.
"""

from __future__ import annotations

import json
import logging

from telegram import Update
from telegram.ext import Application, ApplicationHandlerStop, ContextTypes
from telegram.request import HTTPXRequest, RequestData

from bot.storage import Store, current_update

log = logging.getLogger(__name__)

class InboxRequest(HTTPXRequest):
    """PTB's HTTP request for getUpdates, writing what it fetched to the inbox first."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(connection_pool_size=1, **kwargs)  # type: ignore[arg-type]
        self.store: Store | None = None  # set once the database is open

    async def do_request(
        self, url: str, method: str, request_data: RequestData | None = None, *args: object, **kwargs: object
    ) -> tuple[int, bytes]:
        code, payload = await super().do_request(url, method, request_data, *args, **kwargs)  # type: ignore[arg-type]
        if code == 200 and url.endswith("/getUpdates") and self.store is not None:
            updates = json.loads(payload).get("result") or []
            if updates:
                async with self.store.transaction() as tx:
                    await tx.inbox_add([(u["update_id"], json.dumps(u, ensure_ascii=False)) for u in updates])
        return code, payload


async def open_update(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """First handler group: skip an update already done; remember which one is running."""
    if not isinstance(update, Update):
        return
    store: Store = context.application.bot_data["services"].store
    if update.update_id in store.started:  # a replayed update fetched again: once is enough
        raise ApplicationHandlerStop
    if update.update_id <= store.done_upto:  # only an id a past run saw can be done already
        async with store.read() as tx:
            if await tx.inbox_is_done(update.update_id):
                raise ApplicationHandlerStop
    if len(store.started) > 100_000:  # duplicates arrive within seconds; forget old ids
        store.started.clear()
    store.started.add(update.update_id)
    current_update.set(update.update_id)


async def close_update(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Last handler group: an update that changed nothing (a /list, chatter) is done too."""
    if not isinstance(update, Update):
        return
    store: Store = context.application.bot_data["services"].store
    if update.update_id not in store.handled:
        store.queue_done(update.update_id)
    store.handled.discard(update.update_id)
    current_update.set(None)


async def replay(app: Application, store: Store) -> int:
    """Queue, in order, the updates fetched before a crash but never done."""
    async with store.read() as tx:
        pending = await tx.inbox_pending()
        store.done_upto = await tx.inbox_last_id()
    for _, payload in pending:
        update = Update.de_json(json.loads(payload), app.bot)
        if update is not None:
            await app.update_queue.put(update)
    if pending:
        log.warning("replaying %d update(s) not handled before the last stop", len(pending))
    return len(pending)
