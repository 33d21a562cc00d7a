"""The delivery worker: sends what the outbox holds until Telegram takes it.

Notifications are written to the outbox in the transaction that caused them; this worker
sends them through PTB (whose AIORateLimiter keeps within Telegram's limits and waits out
429s), marks each sent, and retries the rest:

- 429 beyond the limiter's retries, timeouts, dropped connections, 5xx → retry with backoff;
- 403 (bot removed) or 400 "chat not found" → the chat is marked unreachable, its pending
  messages dropped, and the station told once; the matters keep escalating;
- chats are served concurrently, each in order, so one slow or broken chat never holds up
  the others.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from dataclasses import dataclass
from html import escape

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Message, ReplyParameters
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TelegramError

from bot import render
from bot.clock import Clock
from bot.i18n import Texts
from bot.storage import Matter, OutboxItem, Store
from bot.tree import Tree

log = logging.getLogger(__name__)

MAX_BACKOFF = 300.0
IDLE_WAIT = 1.0  # look again at least this often, for retries that fall due


def keyboard_markup(rows: list | None) -> InlineKeyboardMarkup | None:
    """Rows of (label, callback data), as rendered or as stored in JSON."""
    if not rows:
        return None
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(label, callback_data=data) for label, data in row] for row in rows]
    )


def _seconds(value: object) -> float:
    """RetryAfter.retry_after is an int or a timedelta, depending on PTB's settings."""
    total = getattr(value, "total_seconds", None)
    return float(total() if callable(total) else value)  # type: ignore[arg-type]


def _gone(exc: TelegramError) -> bool:
    """Whether Telegram says the chat itself is out of reach for good."""
    if isinstance(exc, Forbidden):
        return True
    text = str(exc).lower()
    return isinstance(exc, BadRequest) and ("chat not found" in text or "chat_id is empty" in text)


@dataclass
class _Sent:
    """An item Telegram has taken, to be marked sent (with its card, if it posted one)."""

    item_id: int
    at: float
    message_id: int | None
    card: tuple[int, int, int] | None = None  # (matter id, chat id, message id) of a card just posted
    written: bool = False
    error: BaseException | None = None


class _SentMarks:
    """Marks sent items in the outbox, by group commit: items sent while a write is under
    way go together in the next one. With many chats sending at once that is one
    transaction for many items instead of one each, and each chat still waits for its
    item to be recorded before it sends the next (a card's message id must be stored
    before the card is edited)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._waiting: list[_Sent] = []
        self._lock = asyncio.Lock()

    async def mark(self, sent: _Sent) -> None:
        self._waiting.append(sent)
        async with self._lock:
            if not sent.written and sent.error is None:  # not yet taken by an earlier write
                batch, self._waiting = self._waiting, []
                try:
                    async with self.store.transaction() as tx:
                        await tx.outbox_done_many([(s.item_id, s.at, s.message_id) for s in batch])
                        await tx.update_matters([
                            (matter, {"card_chat_id": chat, "card_message_id": message})
                            for matter, chat, message in (s.card for s in batch if s.card)
                        ])
                except BaseException as exc:
                    for s in batch:
                        s.error = exc
                    raise
                for s in batch:
                    s.written = True
        if sent.error is not None:
            raise sent.error


class Delivery:
    def __init__(self, bot: Bot, store: Store, tree: Tree, texts: Texts, clock: Clock) -> None:
        self.bot = bot
        self.store = store
        self.tree = tree
        self.t = texts
        self.clock = clock
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._sent = _SentMarks(store)

    def wake(self) -> None:
        """Something was queued: look now rather than at the next idle tick."""
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="tierbot-delivery")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                sent = await self.deliver_due()
            except Exception:  # never let one bad batch stop delivery for good
                log.exception("delivery batch failed")
                sent = 0
            if not sent:
                try:
                    await asyncio.wait_for(self._wake.wait(), IDLE_WAIT)
                except TimeoutError:
                    pass

    async def deliver_due(self) -> int:
        """Send everything due now; returns how many items were handled."""
        async with self.store.read() as tx:
            items = await tx.outbox_due(self.clock.now(), limit=100)
            # The batch's cards in one query rather than one each: every query waits its
            # turn at the store, behind the handlers' transactions.
            cards = await tx.card_matters(sorted({i.matter_id for i in items if i.kind == "card" and i.matter_id}))
        by_chat: dict[int, list[OutboxItem]] = defaultdict(list)
        for item in items:
            by_chat[item.chat_id].append(item)
        await asyncio.gather(*(self._deliver_chat(chat_items, cards) for chat_items in by_chat.values()))
        return len(items)

    async def _deliver_chat(self, items: list[OutboxItem], cards: dict[int, tuple[Matter, int]]) -> None:
        for index, item in enumerate(items):
            retry_at = await self._deliver(item, cards)
            if retry_at is not None:  # keep the chat's order: the rest wait behind this one
                async with self.store.transaction() as tx:
                    for later in items[index + 1 :]:
                        await tx.outbox_retry(later.id, retry_at, f"waiting behind {item.key}")
                return

    async def _deliver(self, item: OutboxItem, cards: dict[int, tuple[Matter, int]]) -> float | None:
        """Send one item; None when it is done with, else when to try again."""
        now = self.clock.now()
        card = None
        try:
            if item.kind == "card":
                message_id, card = await self._send_card(item, cards.get(item.matter_id or 0))
            else:
                keyboard = json.loads(item.markup) if item.markup else None
                message_id = (await self._send(item.chat_id, item.text or "", keyboard, item.reply_to)).message_id
        except RetryAfter as exc:
            return await self._retry(item, _seconds(exc.retry_after), exc)
        except (Forbidden, BadRequest) as exc:
            if _gone(exc):
                await self._unreachable(item.chat_id, exc)
            else:  # the message itself is wrong; sending it again will not help
                log.error("outbox %s rejected by Telegram: %s", item.key, exc)
                async with self.store.transaction() as tx:
                    await tx.outbox_failed(item.id, str(exc))
            return None
        except NetworkError as exc:  # includes TimedOut and 5xx answers
            return await self._retry(item, min(MAX_BACKOFF, 2.0**item.attempts), exc)
        await self._sent.mark(_Sent(item.id, now, message_id, card))
        return None

    async def _send(self, chat_id: int, text: str, keyboard: list | None, reply_to: int | None) -> Message:
        reply = ReplyParameters(reply_to, allow_sending_without_reply=True) if reply_to else None
        return await self.bot.send_message(
            chat_id, text, reply_markup=keyboard_markup(keyboard), reply_parameters=reply
        )

    async def _send_card(
        self, item: OutboxItem, found: tuple[Matter, int] | None
    ) -> tuple[int | None, tuple[int, int, int] | None]:
        """Send the matter's card (as read at the start of the batch, with its number of
        attachments) the first time, edit it in place after that. Returns the card's
        message id and, when it was posted, (matter, chat, message) to record.

        The matter may have changed since the batch was read; each change queued its own
        card item, so a later batch shows the latest state."""
        if found is None:
            return None, None
        matter, attachments = found
        text, keyboard = render.card(matter, self.tree, self.t, attachments)
        if matter.card_message_id is not None and matter.card_chat_id is not None:
            try:
                await self.bot.edit_message_text(
                    text, chat_id=matter.card_chat_id, message_id=matter.card_message_id,
                    reply_markup=keyboard_markup(keyboard),
                )
                return matter.card_message_id, None
            except BadRequest as exc:
                if "not modified" in str(exc).lower():
                    return matter.card_message_id, None
                if "not found" not in str(exc).lower() or "chat" in str(exc).lower():
                    raise
                # The card was deleted in the chat: post it again below.
        message = await self._send(matter.chat_id, text, keyboard, item.reply_to or matter.report_message_id)
        # A later item of this batch for the same matter (same chat, so after this one) edits this card.
        matter.card_chat_id, matter.card_message_id = message.chat_id, message.message_id
        return message.message_id, (matter.id, message.chat_id, message.message_id)

    async def _retry(self, item: OutboxItem, delay: float, exc: Exception) -> float:
        log.warning("outbox %s: %s; retrying in %.1fs", item.key, exc, delay)
        retry_at = self.clock.now() + delay
        async with self.store.transaction() as tx:
            await tx.outbox_retry(item.id, retry_at, repr(exc))
        return retry_at

    async def _unreachable(self, chat_id: int, exc: TelegramError) -> None:
        now = self.clock.now()
        log.warning("chat %s unreachable: %s", chat_id, exc)
        async with self.store.transaction() as tx:
            first = await tx.mark_unreachable(chat_id, now)
            await tx.fail_pending_for_chat(chat_id, f"unreachable: {exc}")
            station_chat = self.tree.chat_of(self.tree.station.id)
            if first and station_chat is not None and station_chat != chat_id:
                node = self.tree.node_for_chat(chat_id)
                await tx.enqueue(
                    f"unreachable:{chat_id}:{int(now)}", station_chat, now,
                    text=self.t("unreachable", node=escape(node.name if node else "?"), chat_id=chat_id),
                )
