"""Telegram's limits, per chat: 30 messages a second overall, 20 a minute per group, and a
429's flood wait kept to the chat it came from.

PTB's ``AIORateLimiter`` pauses every request after any 429, so a 45 s flood wait in one
unit group would hold up a card in another unit and an escalation to the station for 45 s.
Telegram's flood waits are mostly per chat (a group's 20 a minute), so here a 429 pauses
only requests to that chat. Two cases still pause everything, since they say the bot as a
whole is over its limit: a 429 on a call with no chat, and 429s from 3 or more chats within
10 seconds.

Telegram counts messages as they arrive, a few milliseconds (or, on a loaded machine, tens
of them) apart from when they left, so pacing exactly at the limit would now and then
provoke a 429. The overall limit is an aiolimiter bucket paced at ``PACE`` (95%) of
``overall_per_second`` that holds ``CATCH_UP`` (2) messages, so that a send the busy event
loop made late lets the next go at once (with a bucket of one, the lost milliseconds add
up: 0.87 × 30 a second instead of 0.94 in bench/send_rate.py); a group's limit is exact: at most
``group_per_minute`` in any minute (a burst of 20 cards goes at once), with half a second's
guard at the window's edge.

An outbox send takes its ``SendSlot`` (bot/store/) here, after every wait, right before
it goes out: a chat waiting out its limits holds no slot, and others' sends go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from aiolimiter import AsyncLimiter
from telegram._utils.types import JSONDict
from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter

from bot.store import sending

log = logging.getLogger(__name__)

WIDE_CHATS = 3  # 429s from this many chats ...
WIDE_WINDOW = 10.0  # ... within this many seconds pause every chat
MAX_GROUP_LIMITERS = 512  # idle groups' windows are dropped beyond this many
PACE = 0.95  # of the overall rate: headroom for arrival jitter
CATCH_UP = 2  # messages the overall bucket holds: a send made late lets the next go at once
GROUP_GUARD = 0.5  # seconds added to a group's window

ChatKey = int | str


class ChatRateLimiter(BaseRateLimiter[int]):
    """``rate_limit_args`` (an int), if given, replaces ``max_retries`` for one call."""

    def __init__(
        self,
        overall_per_second: float = 30,
        group_per_minute: float = 20,
        max_retries: int = 3,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        # Evenly spaced at the paced rate; the bucket's second place lets a late send catch up.
        self._overall = AsyncLimiter(CATCH_UP, CATCH_UP / (overall_per_second * PACE)) if overall_per_second else None
        self._group_rate = max(1, int(group_per_minute)) if group_per_minute else 0
        self._groups: dict[ChatKey, deque[float]] = {}  # a group's last sends (monotonic)
        self._max_retries = max_retries
        self._now = monotonic
        self._chat_until: dict[ChatKey, float] = {}  # chat → paused until (monotonic)
        self._all_until = 0.0  # every request paused until
        self._recent: deque[tuple[float, ChatKey]] = deque()  # 429s of the last WIDE_WINDOW
        # Several workers (issue 18): told of every flood wait, to keep it for the next sender.
        self.on_flood: Callable[[ChatKey | None, float], None] | None = None

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to close."""

    def paused_until(self, chat: ChatKey | None) -> float:
        """When requests to ``chat`` (None: a call with no chat) may go again (monotonic)."""
        until = self._all_until
        if chat is not None:
            until = max(until, self._chat_until.get(chat, 0.0))
        return until

    def pause(self, chat: ChatKey | None, seconds: float) -> None:
        """Honour a flood wait another sender was given (None: every chat), ``seconds`` left of it."""
        until = self._now() + seconds
        if chat is None:
            self._all_until = max(self._all_until, until)
        else:
            self._chat_until[chat] = max(self._chat_until.get(chat, 0.0), until)

    async def _group_turn(self, group: ChatKey) -> deque[float]:
        """Wait until a send to the group keeps it within ``group_per_minute`` in any minute;
        the caller notes the send's time in the deque returned when the send goes out."""
        sent = self._groups.get(group)
        if sent is None:
            if len(self._groups) > MAX_GROUP_LIMITERS:  # forget groups quiet for a minute
                quiet = self._now() - 60
                for key, old in list(self._groups.items()):
                    if not old or old[-1] < quiet:
                        del self._groups[key]
            sent = self._groups[group] = deque(maxlen=self._group_rate)
        # Others may have sent meanwhile: look again after each wait.
        while len(sent) == sent.maxlen and (wait := sent[0] + 60 + GROUP_GUARD - self._now()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(wait)
        return sent

    async def _wait_pause(self, chat: ChatKey | None) -> None:
        # Sleep to the deadline, then look again: another 429 may have moved it meanwhile.
        while (wait := self.paused_until(chat) - self._now()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(wait)
        if chat is not None:
            self._chat_until.pop(chat, None)

    def _flood(self, chat: ChatKey | None, seconds: float) -> None:
        """Note a 429 and pause what it concerns."""
        now = self._now()
        until = now + seconds + 0.1
        while self._recent and self._recent[0][0] < now - WIDE_WINDOW:
            self._recent.popleft()
        if chat is not None:
            self._recent.append((now, chat))
        wide = chat is None or len({c for _, c in self._recent}) >= WIDE_CHATS
        if wide:
            self._all_until = max(self._all_until, until)
            log.warning("flood wait of %.0f s for every chat (429 from %s)", seconds,
                        "a call with no chat" if chat is None else f"{len({c for _, c in self._recent})} chats")
        else:
            self._chat_until[chat] = max(self._chat_until.get(chat, 0.0), until)  # type: ignore[index]
            log.info("flood wait of %.0f s for chat %s", seconds, chat)
        if self.on_flood is not None:
            self.on_flood(None if wide else chat, seconds + 0.1)

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | JSONDict | list[JSONDict]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> bool | JSONDict | list[JSONDict]:
        max_retries = self._max_retries if rate_limit_args is None else rate_limit_args
        chat: ChatKey | None = data.get("chat_id")
        with contextlib.suppress(ValueError, TypeError):
            chat = int(chat)  # type: ignore[arg-type]
        # Groups and channels have negative ids (or an @username); private chats positive.
        group = chat if (isinstance(chat, int) and chat < 0) or isinstance(chat, str) else None
        for attempt in range(max_retries + 1):
            await self._wait_pause(chat)
            try:
                group_sent = await self._group_turn(group) if group is not None and self._group_rate else None
                if chat is not None and self._overall is not None:
                    await self._overall.acquire()
                # A pause may have begun while this waited for its turn.
                await self._wait_pause(chat)
                slot = sending.get()
                if slot is not None:  # an outbox send: at most so many go unrecorded
                    await slot.take()
                if group_sent is not None:  # counted from when it goes, not from when it queued
                    group_sent.append(self._now())
                try:
                    return await callback(*args, **kwargs)
                except BaseException:
                    if slot is not None:  # not taken by Telegram: the slot is free again
                        slot.give_back()
                    raise
            except RetryAfter as exc:
                self._flood(chat, exc._retry_after.total_seconds())
                if attempt == max_retries:
                    raise
        raise AssertionError("unreachable")
