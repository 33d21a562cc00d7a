"""All SQL lives here: the schema and its migrations, and named queries.

One aiosqlite connection, guarded by a lock so that the handlers, the sweep and the
delivery worker never interleave inside one transaction. Rows become small dataclasses at
this boundary. Times are unix seconds (UTC).

Group commit: every query is a trip to aiosqlite's thread, and the trips, not SQLite,
are most of what a write costs. So the writes that come by the thousand under load, a
report logged in a unit group, a message marked sent and an update that changed nothing
marked done, are queued instead (``queue_report``, ``queue_sent``, ``queue_done``);
whatever is queued is written in one transaction, a few trips for any number, as soon as
the event loop is free. Every other read or write
first commits what is queued, so nobody ever sees the store without it. A queued report
is safe before its commit: its update waits in the inbox, not done, until then. The
commit also decides the hourly report limit, counting every process's rows in its write
transaction: a report over it is written as held, with its answer (bot/limits.py).

A queued send is not safe: if the process dies before its commit, the message is sent
again after the restart. So the sends waiting to be recorded are bounded: each outbox send
takes a slot (``SendSlot``) just before it goes out, and gives it back when its record is
committed (or when Telegram did not take it). There are ``connections + SENT_BATCH`` slots:
the sends in flight, and a batch of 16 waiting for the group commit, which starts as soon as
the store is free (a few milliseconds) and writes them all. A crash repeats at most that many.

Several workers on one PostgreSQL database (issue 18). Each process has its own connection and
this lock; between processes, a write transaction (``BEGIN IMMEDIATE``) takes the writers' lock
(bot/store/dialect.py ``WRITE_LOCK``), as SQLite has one writer at a time. That is correct but
puts every write of every worker in one line. What relies on it:

- the hourly report limit, counted over every process's reports in the group commit's write
  transaction (and a private report's), and the daily urgent alerts counted in categorize's;
- matter numbers: every matter is inserted under it (a report's group commit, a released held
  report, an officer's finding), so numbers are committed in order and follow ``created_at``,
  which the figures' "first matter since" and the ledger read;
- schedule runs (bulletins, polls, screenings, village notices) need it less: their effect and
  their ``INSERT OR IGNORE`` run row commit together, and on PostgreSQL a second worker's insert
  of the same run waits for the first's commit and then inserts nothing;
- what quiet hours held: released by one worker at a time, so a chat gets one message.

What does without it (``transaction(row_locks=True)``) locks the rows it acts on instead,
first: a sweep batch takes its due matters ``FOR UPDATE SKIP LOCKED`` (several workers' batches
run side by side, each matter in one of them), a state change reads its matter ``FOR UPDATE``
(bot/matters.py ``_act``; rating and categorize read it so too, under the writers' lock as
well). Lock order: the writers' lock (if taken), then the matter row, then anything else; a
row-locked transaction never waits for the writers' lock and the sweep never waits for a
matter, so the rows left to meet in a cycle are the few that two matters' messages share.
PostgreSQL aborts such a deadlock (or a serialization failure) in one of them, which is then
run again whole (``retrying``).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import aiosqlite

from bot import limits, logs
from bot.config import is_postgres
from bot.store.queries import Tx
from bot.store.rows import QueuedReport, Sent
from bot.store.schema import MAX_TRIES, MIGRATIONS, MIN_SQLITE, SCHEMA_VERSION, SENT_BATCH, SchemaTooNew

if TYPE_CHECKING:
    from bot.store.postgres import Connection as PgConnection
    from bot.store.workers import Fence

log = logging.getLogger(__name__)
T = TypeVar("T")

class LeaseLost(RuntimeError):
    """This worker no longer holds the sender's lease (several workers on PostgreSQL, issue 18:
    bot/store/workers.py): it sends nothing more, and what it sent is not marked by it."""


class SecondWrite(RuntimeError):
    """A programming error: a handler opened a second write transaction for its update. An
    update's effects, its answers and "done" commit together, in one (``Store.transaction``)."""


class Signals:
    """What the store tells the delivery worker. Each needs the other (the worker reads and
    writes through the store; the store wakes it after a commit that queued messages and hands
    it the reports that would not commit), so this is made with the store and given to the
    worker when it is built (bot/app.py): neither is told of the other afterwards."""

    def __init__(self) -> None:
        self.queued = asyncio.Event()  # a commit queued messages: deliver now, not at the next idle tick
        self.lost: list[QueuedReport] = []  # reports that failed to commit, to apologise for (queued is set)

    def report_lost(self, report: QueuedReport) -> None:
        self.lost.append(report)
        self.queued.set()


class SendSlot:
    """The right of one outbox send to be accepted by Telegram before it is recorded.

    bot/telegram/delivery.py makes one per item and puts it in ``sending`` for the Bot API calls it
    makes; bot/telegram/ratelimit.py takes it just before a call goes out (after any rate-limit wait,
    so a chat waiting out its limits holds none) and gives it back if the call failed."""

    __slots__ = ("_may_send", "_slots", "held")

    def __init__(self, slots: asyncio.Semaphore, may_send: Callable[[], bool] | None = None) -> None:
        self._slots = slots
        self._may_send = may_send
        self.held = False

    async def take(self) -> None:
        # Several workers: right before it goes out, a send is refused to a worker whose lease ran out.
        if self._may_send is not None and not self._may_send():
            raise LeaseLost("the delivery lease ran out before this send")
        if not self.held:
            await self._slots.acquire()
            self.held = True

    def give_back(self) -> None:
        if self.held:
            self.held = False
            self._slots.release()

    def hand_over(self) -> SendSlot:
        """A new owner of the slot held (the group commit); this one holds nothing more."""
        other = SendSlot(self._slots, self._may_send)
        other.held, self.held = self.held, False
        return other


# The outbox send the current task is making, if any (see SendSlot).
sending: ContextVar[SendSlot | None] = ContextVar("sending", default=None)


class Store:
    def __init__(self, conn: aiosqlite.Connection | PgConnection, signals: Signals | None = None,
                 now: Callable[[], float] = time.time, connections: int = 8) -> None:
        self._conn = conn
        # What a ROLLBACK may raise and be ignored (SQLite: "no transaction" after a cancelled BEGIN).
        self._rollback_errors: tuple[type[BaseException], ...] = (sqlite3.Error,)
        # What a transaction may be aborted with and run again (Store.retrying): none on SQLite's one writer.
        self._retry_errors: tuple[type[BaseException], ...] = getattr(conn, "retry", ())
        self._lock = asyncio.Lock()
        self.signals = signals or Signals()
        self.handled: set[int] = set()  # updates whose effects are committed, or queued to be
        self.started: set[int] = set()  # updates this run has begun to handle
        self.done_upto = 0  # the highest update id in the inbox at start: newer ones are new
        self._reports: list[QueuedReport] = []
        self._sent: list[Sent] = []
        self._sent_slots: list[SendSlot] = []  # given back once their sends are recorded
        # Sends in flight at most (the bot's connections): at most this many plus SENT_BATCH go unrecorded.
        self._slots = asyncio.Semaphore(connections + SENT_BATCH)
        self._done: list[int] = []  # updates that changed nothing
        self._fenced_off = False  # the last group commit failed on the sender's fence
        self._last_error = ""
        self._committer: asyncio.Task[None] | None = None
        self.now = now  # the inbox's clock: the app's
        self.failing: dict[int, str] = {}  # updates whose handler raised, with the error
        self.bot_id = 0  # the inbox's bot (issue 18); the app sets it once Telegram said who it is
        self.tries_counted: set[int] = set()  # updates whose try was counted, for the webhook (issue 18)
        self._admits: list[tuple[int, str | None, asyncio.Future[bool]]] = []  # posted updates (webhook)
        # Several workers on PostgreSQL (issue 18, bot/store/workers.py): the schema's NOTIFY
        # channel; the sender's fence, checked where messages are marked sent; and whether
        # this worker may send now (its lease). None on SQLite: one process, nothing to tell.
        self.channel: str | None = None
        self.fence: Fence | None = None
        self.may_send: Callable[[], bool] | None = None

    @classmethod
    async def open(cls, path: str | Path, signals: Signals | None = None, now: Callable[[], float] = time.time,
                   connections: int = 8) -> Store:
        """SQLite at a file path; PostgreSQL at a postgresql:// URL (issue 17)."""
        if is_postgres(str(path)):
            return await cls._open_postgres(str(path), signals, now, connections)
        if sqlite3.sqlite_version_info < MIN_SQLITE:
            raise RuntimeError(
                f"tierbot needs SQLite {'.'.join(map(str, MIN_SQLITE))} or newer (for RETURNING); "
                f"this Python has {sqlite3.sqlite_version}"
            )
        path = Path(path)
        if str(path) != ":memory:":
            _private_file(path)
        conn = await aiosqlite.connect(path, isolation_level=None)
        try:
            for pragma in (
                "PRAGMA journal_mode=WAL",
                "PRAGMA synchronous=NORMAL",
                "PRAGMA foreign_keys=ON",
                "PRAGMA busy_timeout=5000",
                # What is deleted (a done update's payload, cleared personal data) is zeroed
                # where that costs no extra write, rather than lingering in free space.
                "PRAGMA secure_delete=FAST",
            ):
                await conn.execute(pragma)
            store = cls(conn, signals, now, connections)
            await store._migrate()
        except BaseException:
            await conn.close()  # else its thread keeps the process alive after the error
            raise
        if str(path) != ":memory:":
            _warn_if_shared(path)
        return store

    @classmethod
    async def _open_postgres(cls, url: str, signals: Signals | None, now: Callable[[], float],
                             connections: int) -> Store:
        from bot.store import postgres  # asyncpg only for those who use it

        conn = await postgres.Connection.connect(url)
        try:
            await postgres.migrate(conn.raw)
        except BaseException:
            await conn.close()
            raise
        from bot.store import workers

        store = cls(conn, signals, now, connections)
        store._rollback_errors = postgres.ERRORS
        store.channel = workers.quoted(workers.channel(await conn.raw.fetchval("SELECT current_schema()")))
        return store

    @property
    def engine(self) -> str:
        return "sqlite" if isinstance(self._conn, aiosqlite.Connection) else "postgres"

    async def quick_check(self) -> str | None:
        """SQLite's quick integrity check (a damaged or truncated file): the first problem, or None."""
        if self.engine != "sqlite":
            return None  # a server's own business (PostgreSQL has no file to be truncated)
        async with self._lock, self._conn.execute("PRAGMA quick_check(1)") as cur:
            (result,) = await cur.fetchone()  # type: ignore[misc]
        return None if result == "ok" else str(result)

    async def close(self) -> None:
        async with self._lock:
            await self._write_queued()
            await self._conn.close()

    async def _migrate(self) -> None:
        async with self._conn.execute("PRAGMA user_version") as cur:
            (version,) = await cur.fetchone()  # type: ignore[misc]
        if version > SCHEMA_VERSION:
            raise SchemaTooNew(f"made by a newer tierbot: schema {version}, this one knows {SCHEMA_VERSION}")
        for number in range(version, SCHEMA_VERSION):
            await self._conn.execute("BEGIN IMMEDIATE")
            # Statement by statement: executescript() would commit half-way.
            for statement in statements(MIGRATIONS[number]):
                await self._conn.execute(statement)
            await self._conn.execute(f"PRAGMA user_version = {number + 1}")
            await self._conn.execute("COMMIT")

    @asynccontextmanager
    async def transaction(self, update: int | None = None, *, row_locks: bool = False) -> AsyncIterator[Tx]:
        """One write transaction: everything inside commits together or not at all.

        ``row_locks``: on PostgreSQL, the transaction does without the writers' lock
        (``WRITE_LOCK``) and locks the rows it acts on itself, first (a sweep batch's due
        matters, a state change's matter): see the module's docstring. SQLite ignores it.

        ``update``: the Telegram update a handler is handling (bot/telegram/inbox.py). It is
        marked done in this transaction, so its effects, its answers and "done" commit together;
        an update has one such transaction (or one queued report), and a second is refused
        (SecondWrite) before it writes anything."""
        if update is not None and update in self.handled:
            raise SecondWrite(f"update {update} already has its write transaction")
        async with self._lock:
            await self._write_queued()
            if update is not None and update in self.handled:  # the same, once the lock is ours
                raise SecondWrite(f"update {update} already has its write transaction")
            async with self._atomic(write_lock=not row_locks) as tx:
                yield tx
                if update is not None:
                    await tx.inbox_done([update], self.now())
            if update is not None:
                self.handled.add(update)
        if tx.enqueued:
            self.signals.queued.set()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Tx]:
        """Queries only; holds the lock so reads never see half a transaction."""
        async with self._lock:
            await self._write_queued()
            yield Tx(self._conn, self.bot_id)

    def queue_report(self, report: QueuedReport) -> None:
        """Log a group report in the next group commit (see the module's docstring)."""
        if report.update_id is not None:
            if report.update_id in self.handled:
                raise SecondWrite(f"update {report.update_id} already has its write transaction")
            self.handled.add(report.update_id)
        self._reports.append(report)
        self._commit_soon()

    def queue_done(self, update_id: int) -> None:
        """Mark an update that changed nothing done in the next group commit."""
        self._done.append(update_id)
        self.handled.add(update_id)
        self._commit_soon()

    async def admit(self, update_id: int, payload: str | None) -> bool:
        """A posted update into the inbox (webhook mode, issue 18), in the next group commit
        (with the updates posted meanwhile and whatever else is queued). True if it is new;
        False if it was there (posted before)."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._admits.append((update_id, payload, future))
        self._commit_soon()
        return await asyncio.shield(future)  # a request cancelled must not cancel the others'

    async def flush(self) -> None:
        """Return once what is queued now is committed (a webhook answers once its update's
        effect is in). The group commit under way writes until nothing is queued, and waits for
        any other writer holding the store, which writes what is queued first: so its end is
        the moment. Nothing queued: no group commit to wait for."""
        committer = self._committer
        if committer is not None and not committer.done():
            await asyncio.shield(committer)

    def send_slot(self) -> SendSlot:
        return SendSlot(self._slots, self.may_send)

    def queue_sent(self, sent: Sent, slot: SendSlot | None = None) -> None:
        """Record an outbox item as sent in the next group commit; its slot is given back
        then."""
        self._sent.append(sent)
        if slot is not None and slot.held:
            self._sent_slots.append(slot.hand_over())
        self._commit_soon()

    def _commit_soon(self) -> None:
        if self._committer is None or self._committer.done():
            # A fresh context: the task must not inherit its caller's outbox send (``sending``).
            self._committer = asyncio.get_running_loop().create_task(
                self._commit_queued(), name="tierbot-group-commit", context=contextvars.Context()
            )

    async def _commit_queued(self) -> None:
        async with self._lock:
            await self._write_queued()

    async def _write_queued(self) -> None:
        """Commit whatever is queued; the caller holds the lock. The write is shielded: a
        caller cancelled meanwhile (delivery stopping, say) must not take with it what
        others queued, such as messages Telegram has already accepted.

        Returns only when nothing is queued: between the write's end and this caller's
        turn, others may queue more (a send just accepted), and a reader must see it
        recorded, or the delivery worker would find that message still due and send it
        again."""
        cancelled = False
        while self._queued:
            writing = asyncio.get_running_loop().create_task(self._write_all(), context=contextvars.Context())
            while not writing.done():
                try:
                    await asyncio.shield(writing)
                except asyncio.CancelledError:
                    cancelled = True
            writing.result()
            if cancelled:
                raise asyncio.CancelledError

    @property
    def _queued(self) -> bool:
        return bool(self._reports or self._sent or self._done or self._admits)

    async def _write_all(self) -> None:
        while self._queued:
            reports, self._reports = self._reports, []
            sent, self._sent = self._sent, []
            slots, self._sent_slots = self._sent_slots, []
            done, self._done = self._done, []
            admits, self._admits = self._admits, []
            try:
                if await self._try_write(reports, sent, done, quiet=True, admits=admits):
                    continue
                if self._fenced_off:  # another worker sends now: these sends are its to repeat
                    log.warning("delivery lease lost: %d send(s) not marked; the new sender repeats them", len(sent))
                    sent = []
                if admits and not await self._try_write([], [], [], admits=admits):
                    for _, _, future in admits:  # answered 5xx: Telegram posts them again
                        if not future.done():
                            future.set_exception(RuntimeError(f"inbox: {self._last_error}"))
                # One bad row must not sink the others: each alone.
                for report in reports:
                    if not await self._try_write([report], [], []):
                        if report.update_id is not None:
                            await self._count_try(report.update_id, self._last_error)
                        self.signals.report_lost(report)
                for one in sent:
                    await self._try_write([], [one], [])
                if done:
                    await self._try_write([], [], done)
            finally:  # recorded (or beyond recording): the next sends may go
                for slot in slots:
                    slot.give_back()
                for _, _, future in admits:  # never left waiting (the write cancelled, say)
                    if not future.done():
                        future.set_exception(RuntimeError("inbox: the group commit did not finish"))

    async def _try_write(self, reports: list[QueuedReport], sent: list[Sent], done: list[int],
                         quiet: bool = False,
                         admits: list[tuple[int, str | None, asyncio.Future[bool]]] | None = None) -> bool:
        self._fenced_off = False
        try:
            async with self._atomic() as tx:
                new = await tx.inbox_add_new([(u, p) for u, p, _ in admits], self.now()) if admits else set()
                admitted = await self._hold_over_limit(tx, reports) if reports else reports
                if admitted:
                    ids = await tx.insert_reports(admitted)
                    for (matter_id, _), report in zip(ids, admitted, strict=True):
                        tx.log_event("reported", matter=matter_id, node=report.matter["unit_id"])
                await tx.inbox_done([r.update_id for r in reports if r.update_id is not None] + done, self.now())
                if sent:
                    await tx.outbox_sent(sent)
        except asyncio.CancelledError:
            raise
        except LeaseLost:
            self._fenced_off = True
            return False
        except Exception as exc:
            # A report left behind stays in the inbox, not done: the next start tries it again.
            self._last_error = describe_error(exc)
            if not quiet:  # ids only: a report's text and its reporter's name stay out of the log
                log.exception("could not commit %d report(s) (updates %s), %d sent, %d done", len(reports),
                              [r.update_id for r in reports], len(sent), len(done))
            return False
        for update_id, _, future in admits or ():
            if not future.done():
                future.set_result(update_id in new)
        if reports:
            self.signals.queued.set()
        return True

    async def _hold_over_limit(self, tx: Tx, reports: list[QueuedReport]) -> list[QueuedReport]:
        """Inside the batch's write transaction: hold the reports over their hourly limit
        (bot/limits.py), each answered politely; returns the others, to be logged. One
        query for the whole batch, and none if nobody in it is limited."""
        limited = [r for r in reports if r.per_hour is not None and r.matter.get("limit_key") is not None]
        if not limited:
            return reports
        since = min(r.matter["created_at"] for r in limited) - limits.HOUR
        prior = await tx.limit_times({r.matter["limit_key"] for r in limited}, since)
        held: dict[int, float] = {}  # id(report): when its reporter may report again
        for per_hour in {r.per_hour for r in limited if r.per_hour is not None}:
            batch = [r for r in limited if r.per_hour == per_hour]
            answers = limits.over_limit(prior, [(r.matter["limit_key"], r.matter["created_at"]) for r in batch],
                                        per_hour, limits.HOUR)
            held.update((id(r), again) for r, again in zip(batch, answers, strict=True) if again is not None)
        if not held:
            return reports
        for report in reports:
            if (again := held.get(id(report))) is not None:
                held_id = await tx.hold_queued(report, again)
                log.info("report held at commit: unit %s, key %s, held report %s (hourly)",
                         report.matter["unit_id"], report.matter["limit_key"], held_id)
        return [r for r in reports if id(r) not in held]

    async def _count_try(self, update_id: int, error: str) -> None:
        """An update that could not be handled: one try more; failed after the last. The
        caller holds the lock."""
        try:
            async with self._atomic() as tx:
                tries = await tx.inbox_try_failed(update_id, error, self.now())
            self.tries_counted.add(update_id)
        except Exception:
            log.exception("could not count a try of update %s", update_id)
            return
        if tries >= MAX_TRIES:
            log.error("update %s failed %d times (%s); given up", update_id, tries, error)
        else:
            log.warning("update %s failed (%s), try %d of %d; tried again at the next start",
                        update_id, error, tries, MAX_TRIES)

    async def count_try(self, update_id: int, error: str) -> None:
        async with self._lock:
            await self._write_queued()
            await self._count_try(update_id, error)

    async def retrying(self, attempt: Callable[[], Awaitable[T]], tries: int = 5) -> T:
        """``attempt`` (a whole transaction), run again when PostgreSQL aborted it as a deadlock
        or a serialization failure between workers: nothing of it was committed."""
        for left in range(tries - 1, -1, -1):
            try:
                return await attempt()
            except self._retry_errors as exc:
                if not left:
                    raise
                log.warning("transaction aborted (%s); run again", type(exc).__name__)
                await asyncio.sleep(0.01 * (tries - left))  # the other side commits meanwhile
        raise AssertionError("unreachable")

    @asynccontextmanager
    async def _atomic(self, write_lock: bool = True) -> AsyncIterator[Tx]:
        """BEGIN … COMMIT, or ROLLBACK on any error; the caller holds the lock. Without
        ``write_lock`` a PostgreSQL transaction is a plain BEGIN (no WRITE_LOCK)."""
        tx = Tx(self._conn, self.bot_id)
        tx.fence = self.fence
        try:
            await self._conn.execute("BEGIN IMMEDIATE" if write_lock or not tx.postgres else "BEGIN")
            yield tx
        except BaseException:
            # Also after a cancel during BEGIN: aiosqlite runs it anyway, and this ROLLBACK,
            # queued behind it, ends what it began ("no transaction" if it began nothing).
            with contextlib.suppress(*self._rollback_errors):
                await self._conn.execute("ROLLBACK")
            raise
        notices = (["queued"] if tx.enqueued else []) + sorted(tx.changed)
        if notices and self.channel is not None:
            # Every worker hears it once this commits (bot/store/workers.py), in the COMMIT's own trip.
            await self._conn.execute("".join(f"NOTIFY {self.channel}, '{n}'; " for n in notices) + "COMMIT")
        else:
            await self._conn.execute("COMMIT")
        for name, values in tx.logged:  # only now: a change rolled back is never logged
            logs.event(name, **values)


def describe_error(exc: BaseException) -> str:
    """What went wrong, for the inbox and the log: the exception's kind and where it was
    raised; the message only from SQLite and the OS, whose words never quote a report."""
    where, ours = "", str(Path(__file__).resolve().parents[2])
    tb = exc.__traceback__
    while tb is not None:  # the innermost frame of tierbot's own code, else the innermost
        path = tb.tb_frame.f_code.co_filename
        if not where or (path.startswith(ours) and "site-packages" not in path):
            where = f" at {Path(path).name}:{tb.tb_lineno}"
        tb = tb.tb_next
    said = f": {exc}" if isinstance(exc, sqlite3.Error | OSError) or _quotes_no_row(exc) else ""
    return f"{type(exc).__name__}{said}{where}"[:300]


def _quotes_no_row(exc: BaseException) -> bool:
    """PostgreSQL's message, its DETAIL dropped (postgres.quiet), names constraints and
    columns as SQLite's does; only a data exception (class 22) quotes the value it refused."""
    sqlstate = getattr(exc, "sqlstate", None)  # asyncpg's server errors (no import: asyncpg is optional)
    return isinstance(sqlstate, str) and not sqlstate.startswith("22")


def _private_file(path: Path) -> None:
    """The database holds residents' reports: a new file is the bot user's alone (0600; SQLite
    gives its -wal and -shm the same mode), in a folder of its own (0700) when the bot makes
    it."""
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)
        path.parent.chmod(0o700)  # mkdir's mode passes through the umask
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _warn_if_shared(path: Path) -> None:
    """An existing file open to others is the operator's choice to revisit: a warning, once
    the file has opened as a database (a file that will not open has its own one line)."""
    shared: list[str] = []
    for name in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError):
            if (mode := name.stat().st_mode & 0o777) & 0o066:
                shared.append(f"{name} (mode {mode:o})")
    if shared:
        log.warning("readable or writable by other users: %s; chmod 600 them", ", ".join(shared))


def statements(script: str) -> Iterable[str]:
    return (s.strip() for s in script.split(";") if s.strip())


def file_uri(path: Path, read_only: bool) -> str:
    return path.resolve().as_uri() + ("?mode=ro" if read_only else "")


@asynccontextmanager
async def read_only(path: str | Path) -> AsyncIterator[Tx]:
    """A read-only connection to a database a running bot may be writing (`tierbot status`):
    one snapshot for every query (WAL: the bot is never blocked), no migration, no lock.
    On PostgreSQL the same: one read-only snapshot on a connection of its own."""
    if is_postgres(str(path)):
        from bot.store import postgres

        async with postgres.read_only(str(path)) as tx:
            yield tx
        return
    conn = await aiosqlite.connect(file_uri(Path(path), read_only=True), uri=True, isolation_level=None)
    try:
        await conn.execute("PRAGMA busy_timeout=5000")
        await conn.execute("BEGIN")
        yield Tx(conn)
    finally:
        await conn.close()
