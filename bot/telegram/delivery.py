"""The delivery worker: sends what the outbox holds until Telegram takes it.

Notifications are written to the outbox in the transaction that caused them; this worker
sends them through PTB (whose rate limiter, bot/telegram/ratelimit.py, keeps within Telegram's
limits and waits out 429s), marks each sent, and retries the rest:

- 429 beyond the limiter's retries, timeouts, dropped connections, 5xx → retry with backoff;
- 403 (bot removed) or 400 "chat not found" → the chat is marked unreachable, its pending
  messages dropped, and the station told once; the matters keep escalating;
- chats are served concurrently, each in order, so one slow or broken chat never holds up
  the others; a broadcast's and the bulletins' messages go after everything else, so a
  card or an escalation never waits behind a town-wide notice;
- a kind may have a settlement hook (given when the worker is built): it runs in the
  transaction that records an item's last outcome, and when a chat's pending items are
  given up. A broadcast's delivery report is queued that way (bot/broadcasts.py).

Each item is sent by its kind (bot/outbox.py's Kind): a card is rendered now and sent or
edited in place, a chart drawn now and sent as a photo, an attachment sent by Telegram file
id, a broadcast's copy as text or a photo with its caption, a view's refresh (bot/views.py)
as an edit of that view, once for every refresh of it then waiting; every other kind is its
text.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, NamedTuple

from telegram import (
    Bot,
    ForceReply,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    InputPollOption,
    Message,
    Poll,
    ReplyParameters,
)
from telegram.error import BadRequest, ChatMigrated, Forbidden, NetworkError, RetryAfter, TelegramError
from telegram.ext import ExtBot
from telegram.request import BaseRequest

from bot import outbox, visibility
from bot.clock import Clock
from bot.outbox import Kind, kind_of, put
from bot.store import LeaseLost, Matter, OutboxItem, QueuedReport, SendSlot, Sent, Store, Tx, sending
from bot.store.rows import View
from bot.telegram.ratelimit import ChatRateLimiter
from bot.text import render
from bot.text.i18n import Languages, Texts
from bot.tree import Tree

if TYPE_CHECKING:
    from bot.store.workers import Workers

log = logging.getLogger(__name__)

MAX_BACKOFF = 300.0
IDLE_WAIT = 1.0  # look again at least this often, for retries that fall due
# Messages that come by the thousand: a broadcast's, and the weekly and monthly bulletins'
# (escalation/weekly.py's schedules). They go after everything else, a second's worth at a time.
BULK = (outbox.BROADCAST_PREFIX, "weekly:", "monthly:", outbox.SAFETY_PREFIX)

# A kind's settlement hook: (tx, tree, languages, now, key= the item settled, or chat_id= the
# chat whose pending items were all given up).
Settle = Callable[..., Awaitable[None]]


def keyboard_markup(rows: list | dict | None) -> InlineKeyboardMarkup | ForceReply | None:
    """Rows of (label, callback data), as rendered or as stored in JSON; or a request to
    answer the message ({"force_reply": true, "selective": …})."""
    if not rows:
        return None
    if isinstance(rows, dict):
        return ForceReply(selective=rows.get("selective")) if rows.get("force_reply") else None
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(label, url=data.removeprefix(render.URL_PREFIX))
                if data.startswith(render.URL_PREFIX)
                else InlineKeyboardButton(label, callback_data=data)
                for label, data in row
            ]
            for row in rows
        ]
    )


def keyboard_json(rows: list | dict | None) -> dict | None:
    """``keyboard_markup(rows).to_dict()``, built directly: a card's buttons go out with every
    card, and PTB's objects cost more to build and serialise than the card's text."""
    if not rows:
        return None
    if isinstance(rows, dict):
        if not rows.get("force_reply"):
            return None
        selective = rows.get("selective")
        return {"force_reply": True} if selective is None else {"force_reply": True, "selective": selective}
    return {"inline_keyboard": [
        [{"text": label, "url": data.removeprefix(render.URL_PREFIX)} if data.startswith(render.URL_PREFIX)
         else {"text": label, "callback_data": data} for label, data in row]
        for row in rows
    ]}


class _Sent(NamedTuple):
    """A message Telegram took: its ids."""

    message_id: int
    chat_id: int


def _named_matters(data: str) -> list[int]:
    """The matters a notice composed when it is sent names besides its own (``"matters"``)."""
    return list(json.loads(data).get("matters", ())) if '"matters"' in data else []


def _view_of(item: OutboxItem) -> str:
    """The view a refresh is for (bot/outbox.py's ViewRefresh)."""
    return str(json.loads(item.data or "{}").get("view", ""))


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


class Delivery:
    def __init__(
        self, bot: Bot, store: Store, tree: Tree, langs: Languages, clock: Clock, bulk_at_once: int = 30,
        settle: Mapping[Kind, Settle] | None = None, lease: Workers | None = None,
    ) -> None:
        self.bot = bot
        self.settle = dict(settle or {})
        self.store = store
        self.tree = tree
        self.langs = langs
        self.clock = clock
        # A broadcast's or the bulletins' messages being sent at once: about a second's worth
        # at Telegram's overall limit, so that a card or an escalation queued meanwhile waits
        # no longer.
        self.bulk_at_once = max(1, bulk_at_once)
        self._wake = store.signals.queued  # set by the store after a commit that queued messages
        self._task: asyncio.Task[None] | None = None
        self._busy: dict[int, asyncio.Task[None]] = {}  # chats being served now
        self._bulk: set[int] = set()  # those of them sending a broadcast's or a bulletin's message
        self._apologies: set[asyncio.Task[None]] = set()
        # Several workers on PostgreSQL (issue 18): this one sends only while it holds the
        # sender's lease (bot/store/workers.py), once it has taken over the flood waits.
        self.lease = lease
        self._sending = lease is None
        self._lease_task: asyncio.Task[None] | None = None
        self.on_gained: Callable[[], None] | None = None  # once per new sender: the command menus (bot/app.py)
        self.started_items = 0  # items this worker has begun to send, since it started
        if lease is not None:
            store.may_send = self.may_send

    def may_send(self) -> bool:
        """Whether this worker is the sender now (always, on one process)."""
        return self.lease is None or (self._sending and self.lease.held())

    async def _keep_lease(self) -> None:
        """Take the sender's lease, or renew it, every third of ``delivery.lease``."""
        assert self.lease is not None
        generation: int | None = None
        while True:
            try:
                was = generation
                generation = self.lease.generation if await self.lease.hold() else None
                if generation is not None and generation != was:
                    await self._gained()
                elif generation is None and was is not None:
                    self._sending = False
                    log.warning("delivery lease lost: this worker no longer sends")
            except Exception:  # never let one failed renewal end the lease's keeping for good
                log.exception("delivery lease: renewal failed")
                self._sending, generation = False, None
            await asyncio.sleep(self.lease.renew_every)

    async def _gained(self) -> None:
        """This worker is the sender now: its marks are fenced on its generation, and it
        honours the flood waits Telegram gave the one before."""
        assert self.lease is not None
        self.store.fence = self.lease.fence()
        limiter = self.bot.rate_limiter if isinstance(self.bot, ExtBot) else None
        waits = await self.lease.flood_waits()
        if isinstance(limiter, ChatRateLimiter):
            for chat, left in waits.items():
                limiter.pause(chat, left)
        if waits:
            log.info("delivery lease: %d flood wait(s) taken over", len(waits))
        # What a sender does as it starts, once per sender rather than once per worker: a worker
        # starting beside the sender must not reset the retry times the sender set.
        async with self.store.transaction() as tx:
            await tx.outbox_retry_now(self.clock.now())
        if self.on_gained is not None:
            self.on_gained()
        self._sending = True
        self._wake.set()

    def wake(self) -> None:
        """Something was queued: look now rather than at the next idle tick."""
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="tierbot-delivery")
        if self.lease is not None:
            self._lease_task = asyncio.create_task(self._keep_lease(), name="tierbot-delivery-lease")

    def report_lost(self, report: QueuedReport) -> None:
        """A report the database would not take: say so at once, outside the outbox (the
        database is what failed), so that the reporter knows to try again. Its update stays
        not-done in the inbox and is handled again at the next start."""
        chat_id = report.matter["chat_id"]
        self.apologise(chat_id, outbox.said(outbox.say("err.internal")), report.reply_to)

    def apologise(self, chat_id: int, data: dict, reply_to: int | None) -> None:
        """An apology that cannot wait for the outbox (the database is what failed), composed
        from its ``data`` as a queued one would be."""
        scene = render.Scene(self.tree, self._texts(chat_id, data), self.clock.now(), chat_id)
        text, _ = render.compose(Kind.REPLY, data, scene)
        task = asyncio.create_task(self._apologise(chat_id, text, reply_to))
        self._apologies.add(task)
        task.add_done_callback(self._apologies.discard)

    async def _apologise(self, chat_id: int, text: str, reply_to: int | None) -> None:
        try:
            await self._send(chat_id, text, None, reply_to)
        except TelegramError:
            log.warning("could not tell chat %s that its report was not saved", chat_id, exc_info=True)

    async def stop(self) -> None:
        tasks = [t for t in (self._task, self._lease_task, *self._busy.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._task = self._lease_task = None
        self._sending = self.lease is None
        self._busy.clear()
        self._bulk.clear()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            lost, self.store.signals.lost[:] = list(self.store.signals.lost), []
            for report in lost:
                self.report_lost(report)
            started = 0
            try:
                if self.may_send():  # several workers: only the lease's holder sends
                    started = await self.deliver_due()
            except LeaseLost:  # lost meanwhile: the new sender takes what this batch held
                pass
            except Exception:  # never let one bad batch stop delivery for good
                log.exception("delivery batch failed")
            if not started:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for loses a cancel that
                # arrives as the event is set, and stop() then waits for this loop forever.
                try:
                    async with asyncio.timeout(IDLE_WAIT):
                        await self._wake.wait()
                except TimeoutError:
                    pass

    async def deliver_due(self) -> int:
        """Start sending what is due, one task per chat, each chat in order. A chat already
        being served (say, waiting out its 20-a-minute limit) is left to its task: others
        do not wait for it. Returns how many items were started."""
        async with self.store.read() as tx:
            items = await tx.outbox_due(
                self.clock.now(), limit=200, skip_chats=list(self._busy), bulk_prefix=BULK
            )
            # Views to refresh, and every refresh of them waiting: read with the matters, so
            # the one edit sent shows every change those refreshes were queued for.
            viewed = sorted({_view_of(i) for i in items if i.kind == Kind.VIEW})
            views = await tx.views(viewed)
            waiting = await tx.waiting_refreshes(viewed)
            # The matters of the cards and of the notices composed now, in one query. A card
            # changed since is queued again behind.
            cards = await tx.cards_of(sorted(
                {i.matter_id for i in items if (i.kind == Kind.CARD or i.data) and i.matter_id}
                | {m for i in items if i.data for m in _named_matters(i.data)}
                | {m for view in views.values() for m in view.matters}
            ))
        if viewed:
            items = await self._one_edit_per_view(items, views, waiting)
        by_chat: dict[int, list[OutboxItem]] = defaultdict(list)
        room = self.bulk_at_once - len(self._bulk)
        for item in items:  # a broadcast's or a bulletin's messages come last, and only so many at once
            if item.key.startswith(BULK):
                if room <= 0:
                    continue
                room -= 1
                self._bulk.add(item.chat_id)
            by_chat[item.chat_id].append(item)
        for chat_id, chat_items in by_chat.items():
            task = asyncio.create_task(self._deliver_chat(chat_items, cards), name=f"tierbot-delivery-{chat_id}")
            self._busy[chat_id] = task
            task.add_done_callback(lambda done, chat=chat_id: self._finished(chat, done))
        started = sum(len(chat_items) for chat_items in by_chat.values())
        self.started_items += started
        return started

    async def _one_edit_per_view(
        self, items: list[OutboxItem], views: dict[str, View], waiting: dict[str, list[int]]
    ) -> list[OutboxItem]:
        """Of the refreshes of one view, the first due is sent and shows its matters as
        just read: every other refresh of that view waiting (due or not) is done with it.
        A refresh of a view that is dead, or not recorded (its message failed, or waits to
        be sent and will be composed then), is done with at once."""
        kept: dict[str, int] = {}
        out: list[OutboxItem] = []
        done: list[int] = []
        for item in items:
            if item.kind != Kind.VIEW:
                out.append(item)
                continue
            key = _view_of(item)
            view = views.get(key)
            if view is None or view.dead is not None or key in kept:
                done.append(item.id)
                continue
            kept[key] = item.id
            data = {"view": key, "of": view.kind, "matters": list(view.matters),
                    "data": json.loads(view.data) if view.data else None}
            out.append(dataclasses.replace(item, data=json.dumps(data, ensure_ascii=False),
                                           reply_to=view.message_id))
        done += [other for key, first in kept.items() for other in waiting.get(key, ()) if other != first]
        if done:
            async with self.store.transaction() as tx:
                await tx.outbox_done(sorted(set(done)), self.clock.now(), "one edit for all: view refreshed or gone")
        return out

    def _finished(self, chat_id: int, task: asyncio.Task[None]) -> None:
        self._busy.pop(chat_id, None)
        self._bulk.discard(chat_id)
        if not task.cancelled() and task.exception() is not None:
            log.error("delivery to chat %s failed", chat_id, exc_info=task.exception())
        self._wake.set()  # that chat may have more waiting

    async def _deliver_chat(self, items: list[OutboxItem], cards: dict[int, tuple[Matter, int]]) -> None:
        for index, item in enumerate(items):
            if not self.may_send():  # the lease was lost: the new sender takes the rest
                return
            try:
                retry_at = await self._deliver(item, cards)
            except LeaseLost:
                return
            if retry_at is not None:  # keep the chat's order: the rest wait behind this one
                async with self.store.transaction() as tx:
                    for later in items[index + 1 :]:
                        await tx.outbox_retry(later.id, retry_at, f"waiting behind {item.key}")
                return

    async def _deliver(self, item: OutboxItem, cards: dict[int, tuple[Matter, int]]) -> float | None:
        """Send one item; None when it is done with, else when to try again. Its calls go
        out holding a slot (see bot/store/'s SendSlot), so that few sends Telegram took
        are ever unrecorded at once."""
        slot = self.store.send_slot()
        token = sending.set(slot)
        try:
            return await self._deliver_item(item, cards, slot)
        finally:
            sending.reset(token)
            slot.give_back()  # unless the group commit has it

    async def _deliver_item(
        self, item: OutboxItem, cards: dict[int, tuple[Matter, int]], slot: SendSlot
    ) -> float | None:
        now = self.clock.now()
        kind = kind_of(item)
        if item.data is not None and kind != Kind.REACTION:  # its words are composed now, from the state now
            item = self._composed(item, kind, cards, now)
            if not item.text and kind in (Kind.REPLY, Kind.EDIT_TEXT):  # nothing to say (a short /show's last parts)
                self.store.queue_sent(Sent(item.id, now, None), slot)
                return None
        photo = None
        if kind == Kind.CHART:  # a bulletin's chart: drawn now, so drawing is paced with sending
            photo = await self._draw_chart(item)
            if photo is None:
                return None
        new_card = None
        poll: Poll | None = None  # a safety poll sent or stopped (issue 16)
        try:
            if kind in (Kind.SAFETY_POLL, Kind.STOP_POLL):
                message_id, poll = await self._poll(item, kind)
            elif kind == Kind.CARD:
                message_id, new_card = await self._send_card(item, cards)
            elif kind in outbox.MEDIA or (kind == Kind.BROADCAST and item.media):
                message_id = (await self._send_media(item, kind)).message_id
            elif photo is not None:
                message_id = (await self.bot.send_photo(item.chat_id, photo[0], caption=photo[1])).message_id
            elif kind == Kind.DOCUMENT:
                name, content = outbox.document_file(item.media or "")
                reply = ReplyParameters(item.reply_to, allow_sending_without_reply=True) if item.reply_to else None
                message_id = (await self.bot.send_document(item.chat_id, InputFile(content, filename=name),
                                                           caption=item.text, reply_parameters=reply)).message_id
            elif kind in (Kind.EDIT_TEXT, Kind.EDIT_KEYBOARD):
                message_id = await self._edit(item, kind)
            elif kind == Kind.VIEW:
                message_id = await self._refresh_view(item)
            elif kind == Kind.REACTION:
                message_id = await self._react(item)
            else:  # every other kind is its text, with its buttons
                keyboard = json.loads(item.markup) if item.markup else None
                message_id = (await self._send(item.chat_id, item.text or "", keyboard, item.reply_to)).message_id
        except RetryAfter as exc:
            return await self._retry(item, _seconds(exc.retry_after), exc)
        except (Forbidden, BadRequest) as exc:
            if _gone(exc):
                await self._unreachable(item.chat_id, exc)
            else:  # the message itself is wrong; sending it again will not help
                log.log(logging.INFO if kind == Kind.REACTION else logging.ERROR,
                        "outbox %s rejected by Telegram: %s", item.key, exc)
                async with self.store.transaction() as tx:
                    await tx.outbox_failed(item.id, str(exc))
                    await self._settled(tx, kind, item, now)
                    if kind == Kind.REACTION:  # the chat takes no reactions: today's short reply instead
                        await self._instead_of_reaction(tx, item, now)
            return None
        except ChatMigrated as exc:  # a group became a supergroup: same group, new id
            await self._migrated(item.chat_id, exc.new_chat_id)
            return None
        except NetworkError as exc:  # includes TimedOut and 5xx answers
            return await self._retry(item, min(MAX_BACKOFF, 2.0**item.attempts), exc)
        except LeaseLost:  # not sent: another worker is the sender now
            raise
        except Exception as exc:  # a bug or an answer we do not know: never retry it forever
            log.exception("outbox %s failed", item.key)
            async with self.store.transaction() as tx:
                await tx.outbox_failed(item.id, repr(exc))
                await self._settled(tx, kind, item, now)
            return None
        sent = Sent(item.id, now, message_id, new_card, view=kind in outbox.LIVE)
        if poll is not None:  # what Telegram made of it is recorded with it
            async with self.store.transaction() as tx:
                await tx.outbox_sent([sent])
                await self._record_poll(tx, kind, item, poll, message_id, now)
        elif kind in self.settle:  # its last outcome is recorded with what its hook queues
            async with self.store.transaction() as tx:
                await tx.outbox_sent([sent])
                await self._settled(tx, kind, item, now)
        else:  # recorded with others in the store's next group commit, within milliseconds
            self.store.queue_sent(sent, slot)
        return None

    def _composed(self, item: OutboxItem, kind: Kind, cards: dict[int, tuple[Matter, int]], now: float) -> OutboxItem:
        data = json.loads(item.data or "null")
        scene = render.Scene(
            self.tree, self._texts(item.chat_id, data), now, item.chat_id,
            {number: matter for number, (matter, _) in cards.items()}, self.bot.username,
        )
        text, keyboard = render.compose(kind, data, scene)
        return dataclasses.replace(item, text=text, markup=json.dumps(keyboard) if keyboard else item.markup)

    # --- issue 16: the monthly sense-of-safety poll (群众安全感) ---
    async def _poll(self, item: OutboxItem, kind: Kind) -> tuple[int | None, Poll | None]:
        """Send a unit's anonymous poll, or stop it (its message id in ``reply_to``): the
        message id and the poll as Telegram has it. Its words are plain text, not HTML: the
        question was composed with the item's data, the answers are composed now."""
        if kind == Kind.STOP_POLL:
            return item.reply_to, await self.bot.stop_poll(item.chat_id, item.reply_to or 0)
        data = json.loads(item.data or "{}")
        _, answers = render.safety_poll(data.get("question"), data.get("options"), self.langs.for_chat(item.chat_id))
        options = [InputPollOption(answer, text_parse_mode=None) for answer in answers]
        message = await self.bot.send_poll(item.chat_id, item.text or "", options, is_anonymous=True,
                                           question_parse_mode=None)
        return message.message_id, message.poll

    @staticmethod
    async def _record_poll(tx: Tx, kind: Kind, item: OutboxItem, poll: Poll, message_id: int | None,
                           now: float) -> None:
        """A poll sent: its ids, to know its updates by and to stop it; a poll stopped: its final counts."""
        if kind == Kind.SAFETY_POLL:
            if message_id is not None:
                await tx.safety_poll_sent(item.key, message_id, poll.id)
            return
        month, unit_id = outbox.safety_of_key(item.key)
        counts = [option.voter_count for option in poll.options]
        if await tx.safety_poll_close(unit_id, month, now, counts, poll.total_voter_count):
            tx.log_event("safety_poll_closed", month=month, node=unit_id, answers=poll.total_voter_count)

    def _texts(self, chat_id: int, data: object) -> Texts:
        """The language a notice is composed in: the chat's; in a chat that chose none, that of
        the person it answers (``data["language"]``, their Telegram language_code), if any."""
        return self.langs.for_user(chat_id, data.get("language") if isinstance(data, dict) else None)

    async def _settled(self, tx: Tx, kind: Kind, item: OutboxItem, now: float) -> None:
        hook = self.settle.get(kind)
        if hook is not None:
            await hook(tx, self.tree, self.langs, now, key=item.key)

    async def _edit(self, item: OutboxItem, kind: Kind) -> int | None:
        """Rewrite one of the bot's messages (its id kept in ``reply_to``): its text, or its buttons."""
        keyboard = keyboard_markup(json.loads(item.markup) if item.markup else None)
        assert not isinstance(keyboard, ForceReply)
        try:
            if kind == Kind.EDIT_TEXT:
                await self.bot.edit_message_text(item.text or "", chat_id=item.chat_id, message_id=item.reply_to,
                                                 reply_markup=keyboard)
            else:
                await self.bot.edit_message_reply_markup(chat_id=item.chat_id, message_id=item.reply_to,
                                                         reply_markup=keyboard)
        except BadRequest as exc:
            if "not modified" not in str(exc).lower():
                raise
        return item.reply_to

    async def _refresh_view(self, item: OutboxItem) -> int | None:
        """Edit a view (its message id in ``reply_to``) to what was just composed; no
        buttons once its matters are closed. "Not modified" is done; a message gone from
        its chat makes the view dead (never tried again)."""
        keyboard = keyboard_markup(json.loads(item.markup) if item.markup else None)
        assert not isinstance(keyboard, ForceReply)
        try:
            await self.bot.edit_message_text(item.text or "", chat_id=item.chat_id, message_id=item.reply_to,
                                             reply_markup=keyboard)
        except BadRequest as exc:
            said = str(exc).lower()
            if "not modified" in said:
                return item.reply_to
            if "message to edit not found" not in said:
                raise
            async with self.store.transaction() as tx:
                await tx.view_dead(_view_of(item), "gone")
            log.info("view %s in chat %s is gone; no longer edited", item.reply_to, item.chat_id)
            return None
        return item.reply_to

    async def _react(self, item: OutboxItem) -> int | None:
        """Put the item's emoji on the message it names (kept in ``reply_to``)."""
        emoji = json.loads(item.data or "{}").get("emoji")
        await self.bot.set_message_reaction(item.chat_id, item.reply_to or 0, reaction=emoji)
        return item.reply_to

    @staticmethod
    async def _instead_of_reaction(tx: Tx, item: OutboxItem, now: float) -> None:
        """A reaction refused (a group that disallows them answers 400): its fallback answer,
        if it has one, under the same message, keyed as the command's answer always was."""
        data = json.loads(item.data or "{}")
        if data.get("fallback") and data.get("update") is not None:
            await put(tx, outbox.CommandAnswer(data["update"], item.chat_id, data["fallback"], item.reply_to), now=now)

    async def _send(self, chat_id: int, text: str, keyboard: list | dict | None, reply_to: int | None) -> _Sent:
        """sendMessage as ``Bot.send_message`` makes it (the app's defaults filled in by PTB,
        through the same rate limiter and errors), its answer kept as JSON: PTB would build a
        Message of it, with the message replied to and the buttons, and only its ids are
        needed. That building cost more CPU than anything else in a report's intake."""
        reply = ReplyParameters(reply_to, allow_sending_without_reply=True) if reply_to else None
        data = {
            "chat_id": chat_id, "text": text, "reply_markup": keyboard_json(keyboard), "reply_parameters": reply,
            # PTB's "not given": the app's Defaults, as send_message leaves them.
            **dict.fromkeys(("parse_mode", "link_preview_options", "disable_notification", "protect_content"),
                            BaseRequest.DEFAULT_NONE),
        }
        answer = await self.bot._post("sendMessage", data)  # Bot.send_message, less the Message
        return _Sent(answer["message_id"], answer["chat"]["id"])

    async def _send_media(self, item: OutboxItem, kind: Kind) -> Message:
        """A photo (a broadcast's, too) or voice note by Telegram file id, or a location ("lat,lon")."""
        reply = ReplyParameters(item.reply_to, allow_sending_without_reply=True) if item.reply_to else None
        if kind == Kind.LOCATION:
            latitude, longitude = (float(x) for x in (item.media or "0,0").split(","))
            return await self.bot.send_location(item.chat_id, latitude, longitude, reply_parameters=reply)
        keyboard = keyboard_markup(json.loads(item.markup) if item.markup else None)
        send = self.bot.send_voice if kind == Kind.VOICE else self.bot.send_photo
        return await send(item.chat_id, item.media or "", caption=item.text, reply_markup=keyboard,
                          reply_parameters=reply)

    async def _send_card(
        self, item: OutboxItem, cards: dict[int, tuple[Matter, int]]
    ) -> tuple[int | None, tuple[int, int, int] | None]:
        """Send the matter's card the first time, edit it in place after that. Returns the
        card's message id and, for a card posted anew, its place (matter, chat, message)."""
        matter, attachments = cards.get(item.matter_id or 0, (None, 0))
        if matter is None:
            return None, None
        in_group = matter.chat_id != matter.reporter_id  # a private report's card may live with its reporter
        # Whoever reads that chat: the unit group, or (no group) the reporter in private.
        audience = visibility.of_chat(self.tree, matter.chat_id, matter) or visibility.Audience.UNIT
        text, keyboard = render.card(
            matter, self.tree, self.langs.for_chat(matter.chat_id), attachments, audience=audience,
            private_link=render.private_link(self.bot.username, matter.unit_id) if in_group else None,
        )
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
        # Later items of this batch edit this card rather than post another.
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
        async with self.store.transaction() as tx:
            first = await tx.mark_unreachable(chat_id, now)
            node = self.tree.node_for_chat(chat_id)  # a person who blocked the bot is no group
            if first:  # once per chat, not once per message dropped
                tx.log_event("unreachable", level=logging.WARNING, chat=chat_id,
                             node=node.id if node is not None else "no node", error=str(exc))
            await tx.fail_pending_for_chat(chat_id, f"unreachable: {exc}")
            await tx.views_dead_in(chat_id, "unreachable")  # its messages are no longer edited
            for hook in self.settle.values():
                await hook(tx, self.tree, self.langs, now, chat_id=chat_id)
            station = self.tree.station_of(node.id) if node is not None else None  # the node's own (issue 17)
            station_chat = self.tree.chat_of(station.id) if station is not None else None
            if first and node is not None and station_chat is not None and station_chat != chat_id:
                await put(tx, outbox.UnreachableNotice(chat_id, now, station_chat, node.name), now=now)

    async def migrated(self, old_chat: int, new_chat: int, update: int | None = None) -> bool:
        """Follow a group to its new id (it became a supergroup): its binding, its language,
        and what waits in the outbox, in the transaction of the ``update`` that said so. Returns
        whether there was anything to move; the second of Telegram's two service messages, or a
        send that fails after them, finds nothing."""
        node = self.tree.node_for_chat(old_chat)
        if node is None and self.langs.chat_language(old_chat) is None:
            async with self.store.transaction(update=update) as tx:  # not ours, or already moved: only stray rows
                await tx.move_chat(old_chat, new_chat)
            return False
        async with self.store.transaction(update=update) as tx:
            await tx.move_chat(old_chat, new_chat)
            if node is not None:
                await tx.bind_chat(new_chat, node.id, 0, self.clock.now())
            bindings = await tx.bindings()
        self.tree.set_bindings(bindings)
        self.langs.move_chat(old_chat, new_chat)
        log.info("chat %s migrated to %s (node %s)", old_chat, new_chat, node.id if node else "-")
        return True

    async def _migrated(self, old_chat: int, new_chat: int) -> None:
        await self.migrated(old_chat, new_chat)

    async def _draw_chart(self, item: OutboxItem) -> tuple[bytes, str] | None:
        """The PNG and caption of a chart item; None (and the item failed) if it cannot be
        drawn, since drawing it again would fail the same way."""
        from escalation.reports import charts  # matplotlib loads only when a chart is due

        try:
            payload = json.loads(item.text or "{}")
            png = await asyncio.to_thread(charts.render_png, payload["chart"])
        except Exception as exc:
            log.exception("outbox %s: cannot draw the chart", item.key)
            async with self.store.transaction() as tx:
                await tx.outbox_failed(item.id, f"chart: {exc!r}")
            return None
        return png, str(payload.get("caption") or "")
