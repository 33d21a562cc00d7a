"""Several workers on one PostgreSQL (issue 18): what they tell each other, through the
database alone. PostgreSQL only: on SQLite there is one process and none of this is made.

Each worker keeps one connection of its own beside the store's (``Workers``), for:

- the sender's lease: Telegram's limits are per token, so exactly one worker sends at a
  time. The lease is a row (``delivery_lease``) with a holder, a generation and an expiry
  in the database's clock; the holder renews it every third of ``delivery.lease`` for two
  thirds of it, so a worker that dies is replaced within ``delivery.lease``. A row rather
  than an advisory lock: a worker that hangs (not dead, its connection alive) loses it as
  well, and the generation fences what it does when it wakes: marking a message sent checks
  the holder and generation in the same transaction (``fence``), so a former holder cannot;
- the flood waits Telegram set per chat (bot/telegram/ratelimit.py), kept in ``flood_waits``
  in the database's clock, read by a new holder so that it honours them;
- LISTEN: a commit that queued messages or changed an in-memory copy (bindings, chat
  languages) NOTIFYs in the same transaction (bot/store/store.py), and every worker hears
  it here: the sender wakes, the others reload that copy. The channel and the lease row are
  the schema's own, so workers of other towns (or tests) on the same server never meet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import asyncpg

from bot.store.store import LeaseLost

log = logging.getLogger(__name__)

LEASE = "delivery"
NOW = "extract(epoch FROM clock_timestamp())::float8"  # the database's clock, the same for every worker
# Take the lease if it is free or expired, or renew it if it is ours; a new holder's
# generation is one more. Returns the generation, or nothing if another holds it.
ACQUIRE = f"""
    INSERT INTO delivery_lease AS l (name, holder, generation, expires_at) VALUES ($1, $2, 1, {NOW} + $3::float8)
    ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at,
        generation = l.generation + CASE WHEN l.holder = EXCLUDED.holder THEN 0 ELSE 1 END
    WHERE l.holder = EXCLUDED.holder OR l.expires_at <= {NOW}
    RETURNING generation"""
# The one process on its database (it holds the single-instance guard, bot/lock.py): a holder
# that is not this run is a dead one (a crash leaves its lease to run out), so take it at once
# rather than keep a restarted bot's messages waiting out the lease; the generation still moves.
ACQUIRE_SOLE = ACQUIRE.replace(f"WHERE l.holder = EXCLUDED.holder OR l.expires_at <= {NOW}", "")
RELEASE = "UPDATE delivery_lease SET expires_at = 0 WHERE name = $1 AND holder = $2"
# In the store's transaction that marks messages sent: still ours? (FOR SHARE: a takeover waits for that commit.)
FENCE = "SELECT 1 FROM delivery_lease WHERE name = $1 AND holder = $2 AND generation = $3 FOR SHARE"
# The same, as a condition of the marking UPDATE itself: no trip of its own.
# A condition for the sent marks' UPDATE, its parameters numbered after the UPDATE's three.
GUARD = " AND EXISTS (SELECT 1 FROM delivery_lease WHERE name = $4 AND holder = $5 AND generation = $6 FOR SHARE)"
FLOOD = f"""
    INSERT INTO flood_waits (chat_id, until) VALUES ($1, {NOW} + $2::float8)
    ON CONFLICT (chat_id) DO UPDATE SET until = greatest(flood_waits.until, EXCLUDED.until)"""
FLOODS = f"SELECT chat_id, until - {NOW} FROM flood_waits WHERE until > {NOW}"
FLOODS_PRUNE = f"DELETE FROM flood_waits WHERE until <= {NOW}"
EVERY_CHAT = 0  # flood_waits' chat for a wait that pauses every chat


def channel(schema: str) -> str:
    """The schema's NOTIFY channel (PostgreSQL cuts names at 63 bytes, LISTEN and NOTIFY alike)."""
    return f"tierbot_{schema}"[:63]


def quoted(name: str) -> str:
    """A channel as an identifier in a NOTIFY statement."""
    return '"' + name.replace('"', '""') + '"'


Heard = Callable[[str], None]  # a notice's words after its first


@dataclass(frozen=True)
class Fence:
    """A sender's lease as it held it (bot/store/queries.py checks it where outbox items are
    settled): ``guard`` and ``params`` make a statement's condition of it, ``check`` a query."""

    holder: str
    generation: int

    guard: ClassVar[str] = GUARD

    @property
    def params(self) -> tuple[str, str, int]:
        return (LEASE, self.holder, self.generation)

    async def check(self, conn: Any) -> None:
        """LeaseLost if the lease is no longer this one."""
        if not await conn.execute_fetchall(FENCE, self.params):
            raise LeaseLost(f"the delivery lease of generation {self.generation} is no longer this worker's")


class Workers:
    """A worker's side connection: the lease, the flood waits, and what the others tell it."""

    def __init__(self, url: str, lease: float, monotonic: Callable[[], float] = time.monotonic,
                 sole: bool = False) -> None:
        self.url = url
        self.lease = lease
        self.sole = sole  # the only worker (it holds the single-instance guard): it takes the lease at once
        # This worker, this run; its host and process first, so that an operator (or a test)
        # reading delivery_lease sees which worker sends.
        self.holder = f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:16]}"
        self.generation: int | None = None  # the lease's, while this worker holds it
        self._valid_until = 0.0  # monotonic: the lease is surely ours until then
        self._now = monotonic
        self._conn: asyncpg.Connection | None = None
        self._use = asyncio.Lock()  # one query at a time: asyncpg refuses a second in flight
        self._channel = ""
        self._heard: dict[str, Heard] = {}
        self._reconnected: list[Callable[[], None]] = []
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def renew_every(self) -> float:
        return self.lease / 3

    @property
    def ttl(self) -> float:
        """How long one renewal holds: two thirds of the lease, so that a standby that looks
        every third of it takes over within the lease after the holder's last renewal."""
        return self.lease * 2 / 3

    @classmethod
    async def connect(cls, url: str, lease: float, sole: bool = False) -> Workers:
        workers = cls(url, lease, sole=sole)
        await workers._connect()
        return workers

    async def _connect(self) -> None:
        conn = await asyncpg.connect(self.url)
        try:
            self._channel = channel(await conn.fetchval("SELECT current_schema()"))
            await conn.add_listener(self._channel, self._notified)
        except BaseException:
            await conn.close()
            raise
        self._conn = conn

    async def _ensure(self) -> asyncpg.Connection:
        """The side connection, made again if it was lost (the copies are reloaded then:
        what was said meanwhile was not heard)."""
        if self._conn is not None and not self._conn.is_closed():
            return self._conn
        await self._connect()
        log.warning("workers: side connection to the database made again")
        for reload in self._reconnected:
            reload()
        assert self._conn is not None
        return self._conn

    @property
    def server_pid(self) -> int | None:
        """The side connection's server process (``pg_stat_activity``), while it is open."""
        return None if self._conn is None or self._conn.is_closed() else self._conn.get_server_pid()

    # --- what the others say -----------------------------------------------------------
    def on(self, word: str, heard: Heard, reconnected: Callable[[], None] | None = None) -> None:
        """Call ``heard`` (with the rest of the notice) for every notice that begins with
        ``word``; and ``reconnected`` after the connection was lost and made again."""
        self._heard[word] = heard
        if reconnected is not None:
            self._reconnected.append(reconnected)

    def _notified(self, conn: object, pid: int, channel: str, payload: str) -> None:
        word, _, rest = payload.partition(" ")
        heard = self._heard.get(word)
        if heard is not None:
            try:
                heard(rest)
            except Exception:
                log.exception("workers: notice %r not taken", word)

    def tell(self, payload: str) -> None:
        """Say something to every worker, outside any transaction (a copy that is in memory only)."""
        self._spawn(self._tell(payload))

    async def _tell(self, payload: str) -> None:
        async with self._use:
            conn = await self._ensure()
            await conn.execute("SELECT pg_notify($1, $2)", self._channel, payload)

    # --- the lease ---------------------------------------------------------------------
    def held(self) -> bool:
        """Whether this worker surely holds the lease now (renewed within its time)."""
        return self.generation is not None and self._now() < self._valid_until

    async def hold(self) -> bool:
        """Take the lease, or renew it; whether it is held. A failure (the database out of
        reach) is a lease not held."""
        asked = self._now()
        try:
            async with self._use:
                conn = await self._ensure()
                generation = await conn.fetchval(ACQUIRE_SOLE if self.sole else ACQUIRE, LEASE, self.holder, self.ttl)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            log.warning("delivery lease: not renewed (%s)", type(exc).__name__)
            generation = None
        if generation is None:
            self.generation = None
            return False
        if generation != self.generation:
            log.info("delivery lease taken: generation %s", generation)
        self.generation = int(generation)
        # Counted from before the request: the row's expiry (the database's clock) is later still.
        self._valid_until = asked + self.ttl
        return True

    async def release(self) -> None:
        """Give the lease up at a clean stop, so that another takes over at once."""
        if self.generation is None or self._conn is None or self._conn.is_closed():
            return
        self.generation = None
        with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            async with self._use:
                await self._conn.execute(RELEASE, LEASE, self.holder)

    def fence(self) -> Fence:
        """What marking messages sent checks in its transaction (bot/store/queries.py's
        ``Tx.outbox_sent``): this worker's generation, fixed now, must still hold the lease."""
        return Fence(self.holder, self.generation if self.generation is not None else -1)

    # --- flood waits -------------------------------------------------------------------
    def note_flood(self, chat: int | str | None, seconds: float) -> None:
        """A 429 told this sender to wait: kept for whoever sends next (a chat that is an
        @username is not kept; tierbot's chats are ids)."""
        if chat is None or isinstance(chat, int):
            self._spawn(self._note_flood(EVERY_CHAT if chat is None else chat, seconds))

    async def _note_flood(self, chat: int, seconds: float) -> None:
        async with self._use:
            conn = await self._ensure()
            await conn.execute(FLOOD, chat, seconds)

    async def flood_waits(self) -> dict[int | None, float]:
        """The flood waits still running: chat (None: every chat) → seconds left."""
        async with self._use:
            conn = await self._ensure()
            await conn.execute(FLOODS_PRUNE)
            rows = await conn.fetch(FLOODS)
        return {(None if chat == EVERY_CHAT else chat): float(left) for chat, left in rows}

    # ---------------------------------------------------------------------------------
    def _spawn(self, work: Awaitable[None]) -> None:
        async def logged() -> None:
            try:
                await work
            except Exception as exc:
                log.warning("workers: %s", type(exc).__name__)

        task = asyncio.get_running_loop().create_task(logged())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self, release: bool = True) -> None:
        """Stop; ``release``: give the lease up first (a clean stop)."""
        if release:
            await self.release()
        for task in list(self._tasks):
            task.cancel()
        if self._conn is not None:
            with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await self._conn.close(timeout=2)
        self.generation = None

    def kill(self) -> None:
        """Drop the connection at once, releasing nothing: as the process dying would (tests)."""
        for task in list(self._tasks):
            task.cancel()
        if self._conn is not None:
            self._conn.terminate()
        self.generation = None
