"""The inbox: no report is lost to a crash.

python-telegram-bot confirms fetched updates on its next ``getUpdates`` call, before the
handlers have necessarily run, so a process killed mid-handler would lose them. Here the
request layer that performs ``getUpdates`` writes every fetched update to SQLite before
returning it (so before it can be confirmed); an update is marked done in the same
transaction as its effects; and whatever is not done is replayed at the next start.
Processing is idempotent by ``update_id``: an update already done is skipped.

Only what replay needs is kept (issue 10): the payload until the update is done, then the
id alone for duplicate detection (pruned after a week); an update from a group outside
the tree is stored as its id only from the start. An update that cannot be stored as it
came (a lone surrogate in button data) is stored, and handled, with the character
replaced; one whose handling fails counts a try, is replayed at the next start, and after
the third failure is marked failed and left behind (issue 11).
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from telegram import Update
from telegram.error import TelegramError
from telegram.ext import Application, ApplicationHandlerStop, ContextTypes
from telegram.request import HTTPXRequest, RequestData

from bot.store import Store, describe_error
from bot.tree import Tree

log = logging.getLogger(__name__)

_SURROGATE = re.compile("[\\ud800-\\udfff]")  # unpaired only: JSON's surrogate pairs decode to one character
# The parts of an update that carry its chat.
_CHAT_CARRIERS = ("message", "edited_message", "channel_post", "edited_channel_post", "my_chat_member",
                  "chat_member", "chat_join_request", "message_reaction")

class InboxRequest(HTTPXRequest):
    """PTB's HTTP request for getUpdates, writing what it fetched to the inbox first."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(connection_pool_size=1, **kwargs)  # type: ignore[arg-type]
        self.store: Store | None = None  # set once the database is open
        self.tree: Tree | None = None

    async def do_request(
        self, url: str, method: str, request_data: RequestData | None = None, *args: object, **kwargs: object
    ) -> tuple[int, bytes]:
        code, payload = await super().do_request(url, method, request_data, *args, **kwargs)  # type: ignore[arg-type]
        if code == 200 and url.endswith("/getUpdates") and self.store is not None:
            body = json.loads(payload)
            updates = body.get("result") or []
            if updates:
                rows, cleaned = [], False
                for i, update in enumerate(updates):
                    text = json.dumps(update, ensure_ascii=False)
                    if _SURROGATE.search(text) is not None:
                        # SQLite (UTF-8) cannot take it, and neither could a reply quoting it.
                        updates[i] = update = _replace_surrogates(update)
                        text, cleaned = json.dumps(update, ensure_ascii=False), True
                        log.warning("update %s had unencodable characters; replaced", update["update_id"])
                    rows.append((update["update_id"], text if self._replay_needs(update) else None))
                await self._store(self.store, rows)
                if cleaned:  # the handlers see what the inbox holds
                    payload = json.dumps(body, ensure_ascii=False).encode()
        return code, payload

    def _replay_needs(self, update: dict[str, Any]) -> bool:
        return replay_needs(update, self.tree)

    @staticmethod
    async def _store(store: Store, rows: list[tuple[int, str | None]]) -> None:
        """All at once; should that fail, one by one, and an update that will not go in is
        kept as its id alone: it is still handled now, only a crash would lose it. Were
        even that refused, the error goes to PTB, which fetches the batch again."""
        now = store.now()
        try:
            async with store.transaction() as tx:
                await tx.inbox_add(rows, now)
            return
        except Exception:
            if len(rows) == 1 and rows[0][1] is None:
                raise
        for update_id, text in rows:
            try:
                async with store.transaction() as tx:
                    await tx.inbox_add([(update_id, text)], now)
            except Exception as exc:
                log.warning("update %s could not be stored (%s); its id only", update_id, describe_error(exc))
                async with store.transaction() as tx:
                    await tx.inbox_add([(update_id, None)], now)


def replay_needs(update: dict[str, Any], tree: Tree | None) -> bool:
    """Private chats and the tree's groups; a group outside the tree leaves its id only."""
    chat = _chat(update)
    if chat is None:  # a poll's counts name nobody; the bot only hears of its own polls
        return "poll" in update
    if chat.get("type") == "private" or tree is None:
        return True
    return tree.node_for_chat(chat.get("id", 0)) is not None


def inbox_row(update: dict[str, Any], tree: Tree | None) -> tuple[dict[str, Any], str | None]:
    """A posted update as the inbox keeps it (webhook mode, issue 18), as ``InboxRequest``
    does a fetched one: lone surrogates replaced (the handlers see the same), and the payload
    only where a replay needs it."""
    text = json.dumps(update, ensure_ascii=False)
    if _SURROGATE.search(text) is not None:
        update = _replace_surrogates(update)
        text = json.dumps(update, ensure_ascii=False)
        log.warning("update %s had unencodable characters; replaced", update.get("update_id"))
    return update, text if replay_needs(update, tree) else None


def _chat(update: dict[str, Any]) -> dict[str, Any] | None:
    for key in _CHAT_CARRIERS:
        if isinstance(part := update.get(key), dict):
            return part.get("chat")
    if isinstance(query := update.get("callback_query"), dict) and isinstance(query.get("message"), dict):
        return query["message"].get("chat")
    return None


def _replace_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {k: _replace_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_surrogates(v) for v in value]
    return value


async def open_update(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """First handler group: skip an update already done; remember that this one has begun.
    Its handler passes its id to the one write transaction it makes (``Store.transaction``)."""
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


async def close_update(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Last handler group: an update that changed nothing (a /list, chatter) is done too;
    one whose handler failed before its effect was committed counts a try instead."""
    if not isinstance(update, Update):
        return
    store: Store = context.application.bot_data["services"].store
    error = store.failing.pop(update.update_id, None)
    if update.update_id not in store.handled:
        if error is not None:
            await store.count_try(update.update_id, error)
        else:
            store.queue_done(update.update_id)
    store.handled.discard(update.update_id)


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """An error handler: remember which update failed, and how, for close_update. Not when
    Telegram refused a call the handler made (a stale button, a deleted message): it would
    refuse it again, so that update is done, as one that changed nothing."""
    error = context.error
    if isinstance(update, Update) and error is not None and not isinstance(error, TelegramError):
        services = context.application.bot_data.get("services")
        if services is not None:
            services.store.failing[update.update_id] = describe_error(error)


async def replay(app: Application, store: Store, queue: bool = True) -> int:
    """Queue, in order, the updates fetched before a crash but never done (``queue`` False:
    only learn the newest id)."""
    async with store.read() as tx:
        store.done_upto = await tx.inbox_last_id()
        if not queue:
            return 0
        pending = await tx.inbox_pending()
    if id_only := [update_id for update_id, payload in pending if payload is None]:
        async with store.transaction() as tx:  # nothing to replay: a chat outside the tree
            await tx.inbox_done(id_only, store.now())
    pending = [(update_id, payload) for update_id, payload in pending if payload is not None]
    for _, payload in pending:
        update = Update.de_json(json.loads(payload), app.bot)
        if update is not None:
            await app.update_queue.put(update)
    if pending:
        log.warning("replaying %d update(s) not handled before the last stop", len(pending))
    return len(pending)
