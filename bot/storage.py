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
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import os
import sqlite3
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, NamedTuple

import aiosqlite

from bot import limits, logs
from bot.outbox import Card, HeldNotice
from escalation.policy import CLOSED, Clock, Rules, State, next_check

log = logging.getLogger(__name__)

# The Telegram update being handled in this task (see bot/inbox.py). A write transaction
# committed while it is set marks that update done, so its effects and "done" commit
# together. Handlers therefore make one write transaction per update: their effect.
current_update: ContextVar[int | None] = ContextVar("current_update", default=None)

MIN_SQLITE = (3, 35)  # INSERT … RETURNING
SENT_BATCH = 16  # accepted sends that may wait for the group commit beyond those in flight
ROWS_PER_INSERT = 200  # rows in one INSERT: well within SQLite's limit on parameters
IDS_PER_QUERY = 5000  # numbers in one "id IN (…)": within SQLite's limit of 32,766 parameters
MAX_TRIES = 3  # an update that could not be handled this often is marked failed (issue 11)
PURGED = "（已清除）"  # what personal data reads as once its retention period is over (issue 10)
# Timeline entries whose detail is the bot's own words (a category's name, a rating, an
# attachment's kind), not a person's: kept when personal data is cleared.
_OWN_WORDS_EVENTS = ("categorized", "rated", "attached")

# Each entry moves the schema one version up; never edit one that has shipped.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE matters (
        id INTEGER PRIMARY KEY,
        unit_id TEXT NOT NULL,
        chat_id INTEGER NOT NULL,
        report_message_id INTEGER,
        reporter_id INTEGER NOT NULL,
        reporter_name TEXT NOT NULL,
        text TEXT NOT NULL,
        state TEXT NOT NULL,
        tier INTEGER NOT NULL,
        top_tier INTEGER NOT NULL,
        tier_since REAL NOT NULL,
        last_ping_at REAL,
        next_due REAL,
        rules TEXT NOT NULL,
        created_at REAL NOT NULL,
        first_claimed_at REAL,
        claimed_by INTEGER,
        claimed_by_name TEXT,
        claimed_at REAL,
        escalated_at REAL,
        resolved_at REAL,
        resolved_by INTEGER,
        resolved_by_name TEXT,
        resolution TEXT,
        card_chat_id INTEGER,
        card_message_id INTEGER,
        category TEXT NOT NULL DEFAULT 'other',
        urgent INTEGER NOT NULL DEFAULT 0,
        private INTEGER NOT NULL DEFAULT 0,
        rating TEXT,
        rated_at REAL,
        category_set INTEGER NOT NULL DEFAULT 0,
        claim_since REAL,
        reminded_upto REAL,
        last_activity_at REAL,
        idle_reminded_at REAL,
        suspended_at REAL,
        suspended_until REAL,
        closed_at REAL,
        close_reason TEXT
    );
    CREATE INDEX matters_due ON matters(next_due) WHERE next_due IS NOT NULL;
    CREATE INDEX matters_unit_state ON matters(unit_id, state);
    CREATE INDEX matters_created ON matters(created_at);
    CREATE INDEX matters_open_or_resolved ON matters(resolved_at);
    CREATE INDEX matters_closed ON matters(closed_at);
    CREATE INDEX matters_card ON matters(card_chat_id, card_message_id);
    CREATE INDEX matters_report ON matters(chat_id, report_message_id);
    CREATE INDEX matters_reporter ON matters(reporter_id);

    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        matter_id INTEGER NOT NULL REFERENCES matters(id),
        at REAL NOT NULL,
        actor_id INTEGER,
        actor_name TEXT,
        kind TEXT NOT NULL,
        tier INTEGER,
        detail TEXT
    );
    CREATE INDEX events_matter ON events(matter_id);
    CREATE INDEX events_kind_at ON events(kind, at);

    CREATE TABLE attachments (
        id INTEGER PRIMARY KEY,
        matter_id INTEGER NOT NULL REFERENCES matters(id),
        kind TEXT NOT NULL,
        file_id TEXT NOT NULL,
        added_by INTEGER,
        at REAL NOT NULL
    );
    CREATE INDEX attachments_matter ON attachments(matter_id);

    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        chat_id INTEGER NOT NULL,
        kind TEXT NOT NULL,
        matter_id INTEGER REFERENCES matters(id),
        text TEXT,
        markup TEXT,
        reply_to INTEGER,
        media TEXT,
        state TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        not_before REAL NOT NULL,
        created_at REAL NOT NULL,
        sent_at REAL,
        message_id INTEGER,
        error TEXT
    );
    CREATE INDEX outbox_pending ON outbox(not_before) WHERE state = 'pending';

    CREATE TABLE chats (
        chat_id INTEGER PRIMARY KEY,
        node_id TEXT,
        bound_by INTEGER,
        bound_at REAL,
        unreachable_at REAL,
        language TEXT
    );

    CREATE TABLE prompts (
        chat_id INTEGER NOT NULL,
        user_id INTEGER NOT NULL,
        asked_at REAL NOT NULL,
        kind TEXT NOT NULL DEFAULT 'report',
        unit_id TEXT,
        matter_id INTEGER,
        draft TEXT,
        PRIMARY KEY (chat_id, user_id)
    );

    CREATE TABLE held_pings (
        id INTEGER PRIMARY KEY,
        chat_id INTEGER NOT NULL,
        matter_id INTEGER NOT NULL REFERENCES matters(id),
        kind TEXT NOT NULL,
        tier INTEGER NOT NULL,
        reason TEXT NOT NULL,
        at REAL NOT NULL,
        release_at REAL NOT NULL
    );
    CREATE INDEX held_pings_release ON held_pings(release_at);

    CREATE TABLE users (
        user_id INTEGER PRIMARY KEY,
        name TEXT,
        private_chat INTEGER NOT NULL DEFAULT 0,
        language TEXT,
        updated_at REAL
    );

    CREATE TABLE duty_overrides (
        id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL,
        name TEXT,
        start REAL NOT NULL,
        until REAL NOT NULL,
        set_by INTEGER,
        set_at REAL NOT NULL
    );
    CREATE INDEX duty_overrides_until ON duty_overrides(until);

    CREATE TABLE inbox (
        update_id INTEGER PRIMARY KEY,
        payload TEXT NOT NULL,
        received_at REAL NOT NULL,
        done_at REAL
    );
    CREATE INDEX inbox_pending ON inbox(update_id) WHERE done_at IS NULL;

    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );

    CREATE TABLE schedule_runs (
        name TEXT NOT NULL,
        period TEXT NOT NULL,
        ran_at REAL NOT NULL,
        PRIMARY KEY (name, period)
    );
    """,
    # 2 (issue 5, bulletins): matters reported per unit and category in each bulletin week,
    # counted once when a chart first needs that week (a week's reports never change), so a
    # chart's eight weeks do not re-count a big town's history every time. ``counts`` is
    # JSON: [[unit_id, category, reported], ...].
    """
    CREATE TABLE week_counts (
        week_end REAL PRIMARY KEY,
        counts TEXT NOT NULL
    );
    """,
    # 3: broadcasts (一点发起、全网响应): a notice from a station or community to its unit
    # groups, each target's message in the outbox under its own key; the sender's delivery
    # report is queued once, when the last target's outcome is recorded.
    """
    CREATE TABLE broadcasts (
        id INTEGER PRIMARY KEY,
        node_id TEXT NOT NULL,
        chat_id INTEGER NOT NULL,
        message_id INTEGER,
        sender_id INTEGER NOT NULL,
        sender_name TEXT NOT NULL,
        text TEXT NOT NULL,
        photo TEXT,
        language TEXT NOT NULL,
        targets INTEGER NOT NULL,
        created_at REAL NOT NULL,
        reported_at REAL
    );
    CREATE INDEX broadcasts_unreported ON broadcasts(id) WHERE reported_at IS NULL;

    CREATE TABLE broadcast_targets (
        broadcast_id INTEGER NOT NULL REFERENCES broadcasts(id),
        unit_id TEXT NOT NULL,
        chat_id INTEGER NOT NULL,
        outbox_key TEXT NOT NULL,
        PRIMARY KEY (broadcast_id, unit_id)
    );
    CREATE INDEX broadcast_targets_chat ON broadcast_targets(chat_id);
    """,
    # 4 (issue 10, abuse limits): whom a report counts against (the person, or the
    # sender_chat of an anonymous admin or channel post), whether Telegram shows a private
    # reporter as a member of the unit's group, and when a matter first alerted as urgent.
    # Reports over a limit are kept in held_reports (not matters: no figure sees them)
    # until a head turns one into a matter. Older matters have no limit_key: they count
    # against nobody, which forgets at most an hour's and a day's reports at the upgrade.
    """
    ALTER TABLE matters ADD COLUMN limit_key INTEGER;
    ALTER TABLE matters ADD COLUMN membership TEXT;
    ALTER TABLE matters ADD COLUMN urgent_at REAL;
    CREATE INDEX matters_limit ON matters(limit_key, created_at) WHERE limit_key IS NOT NULL;
    CREATE INDEX matters_limit_urgent ON matters(limit_key, urgent_at) WHERE urgent_at IS NOT NULL;

    CREATE TABLE held_reports (
        id INTEGER PRIMARY KEY,
        unit_id TEXT NOT NULL,
        chat_id INTEGER NOT NULL,
        message_id INTEGER,
        reporter_id INTEGER NOT NULL,
        reporter_name TEXT NOT NULL,
        limit_key INTEGER NOT NULL,
        text TEXT NOT NULL,
        photo TEXT,
        private INTEGER NOT NULL DEFAULT 0,
        membership TEXT,
        reason TEXT NOT NULL,
        created_at REAL NOT NULL,
        matter_id INTEGER REFERENCES matters(id),
        released_by INTEGER,
        released_at REAL
    );
    CREATE INDEX held_reports_key ON held_reports(limit_key, created_at);
    CREATE INDEX held_reports_waiting ON held_reports(unit_id, id) WHERE matter_id IS NULL;
    """,
    # 5 (issue 12, figures): each published bulletin's figures, per node, so the next period
    # is compared with what was shown (JSON, see escalation/reports/service.py); and the first
    # claim re-read from the timeline, since a resolve without a claim used to set it.
    """
    CREATE TABLE published_figures (
        schedule TEXT NOT NULL,
        period_start REAL NOT NULL,
        period_end REAL NOT NULL,
        figures TEXT NOT NULL,
        published_at REAL NOT NULL,
        PRIMARY KEY (schedule, period_start, period_end)
    );
    UPDATE matters SET first_claimed_at = (SELECT min(e.at) FROM events e WHERE e.matter_id = matters.id
        AND e.kind IN ('claimed', 'taken_over'));
    """,
    # 6 (issue 10, data kept no longer than needed; issue 11, the poisoned update): an
    # update's payload is kept only until it is done (NULL after, and from chats outside
    # the tree never stored), so it may be NULL; an update that cannot be handled counts
    # its tries and, after the last, is marked failed with its error. Payloads of updates
    # already done go now. Matters whose personal data was cleared say when.
    """
    CREATE TABLE inbox_new (
        update_id INTEGER PRIMARY KEY,
        payload TEXT,
        received_at REAL NOT NULL,
        done_at REAL,
        tries INTEGER NOT NULL DEFAULT 0,
        failed_at REAL,
        error TEXT
    );
    INSERT INTO inbox_new (update_id, payload, received_at, done_at)
        SELECT update_id, CASE WHEN done_at IS NULL THEN payload END, received_at, done_at FROM inbox;
    DROP TABLE inbox;
    ALTER TABLE inbox_new RENAME TO inbox;
    CREATE INDEX inbox_pending ON inbox(update_id) WHERE done_at IS NULL;
    CREATE INDEX inbox_failed ON inbox(failed_at) WHERE failed_at IS NOT NULL;

    ALTER TABLE matters ADD COLUMN purged_at REAL;
    CREATE INDEX matters_unpurged ON matters(closed_at) WHERE purged_at IS NULL;
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)


class SchemaTooNew(RuntimeError):
    """The database was written by a newer tierbot; refuse rather than corrupt it."""


@dataclass
class Matter:
    id: int
    unit_id: str
    chat_id: int
    report_message_id: int | None
    reporter_id: int
    reporter_name: str
    text: str
    state: State
    tier: int
    top_tier: int
    tier_since: float
    last_ping_at: float | None
    next_due: float | None
    rules: str
    created_at: float
    first_claimed_at: float | None
    claimed_by: int | None
    claimed_by_name: str | None
    claimed_at: float | None
    escalated_at: float | None
    resolved_at: float | None
    resolved_by: int | None
    resolved_by_name: str | None
    resolution: str | None
    card_chat_id: int | None
    card_message_id: int | None
    category: str = "other"  # a key of the category list (issue: categories and urgency)
    urgent: bool = False
    private: bool = False  # reported privately: the unit group sees only that it exists
    rating: str | None = None  # the reporter's satisfaction: satisfied / basic / unsatisfied
    rated_at: float | None = None
    category_set: bool = False  # someone picked the category (else it shows as "other")
    claim_since: float | None = None
    reminded_upto: float | None = None
    last_activity_at: float | None = None
    idle_reminded_at: float | None = None
    suspended_at: float | None = None
    suspended_until: float | None = None
    closed_at: float | None = None  # resolved, unresolvable, referred or cancelled
    close_reason: str | None = None
    limit_key: int | None = None  # whom it counts against (bot/limits.py); None: nobody
    membership: str | None = None  # a private reporter in the unit's group: member / nonmember / unverified

    @property
    def clock(self) -> Clock:
        return Clock(
            State(self.state), self.tier, self.tier_since, self.claim_since, self.last_ping_at,
            self.reminded_upto, self.last_activity_at, self.idle_reminded_at, self.suspended_at,
            self.suspended_until,
        )

    @property
    def closed(self) -> bool:
        return self.state in CLOSED

    @property
    def policy_rules(self) -> Rules:
        return Rules.from_json(self.rules)


@dataclass
class Event:
    matter_id: int
    at: float
    actor_id: int | None
    actor_name: str | None
    kind: str
    tier: int | None
    detail: str | None


@dataclass
class OutboxItem:
    id: int
    key: str
    chat_id: int
    kind: str  # a bot.outbox.Kind's value (read it with outbox.kind_of)
    matter_id: int | None
    text: str | None  # a message's text, a medium's caption
    markup: str | None
    reply_to: int | None
    attempts: int
    media: str | None = None  # a photo's or voice note's file id, a location's "lat,lon"


class SummaryFacts(NamedTuple):
    """One matter's history as the summaries, bulletins and ledgers see it (a tuple: a big
    town's week is a quarter of a million of them). Built from the timeline by
    ``escalation.summary.facts``; a matter that never left its unit and was never reopened
    is read from its columns, which then say all its timeline says."""

    unit_id: str
    created_at: float
    first_claimed_at: float | None  # the first claim event (a claim or a takeover), never a resolve
    resolved_at: float | None
    escalated_at: float | None  # the first missed deadline (超期), not a deliberate move up
    id: int = 0
    category: str = "other"
    top_tier: int = 3
    reached_community_at: float | None = None  # first arrived at tier 2, in any way
    reached_station_at: float | None = None  # first arrived at tier 1, in any way
    unclaimed_up_at: float | None = None  # a missed deadline sent it to the community unclaimed
    closed_at: float | None = None  # resolved or otherwise closed (resolved_at: resolved only)
    # From the timeline when the matter moved or was reopened (None: derived from the above):
    closes: tuple[tuple[float, str | None], ...] | None = None  # (at, state closed in; None: reopened)
    resolves: tuple[tuple[float, int], ...] | None = None  # (at, highest tier reached by then)
    moves: tuple[tuple[float, int], ...] | None = None  # (at, tier arrived at), whenever its tier changed

    private: bool = False  # reported privately: its category is not shown to its unit group

class TimelineRow(NamedTuple):
    """A timeline event as the figures replay it."""

    matter_id: int
    at: float
    kind: str
    tier: int | None
    by_deadline: bool  # written by the sweep (a missed deadline), not by a person
    detail: str | None = None


@dataclass
class Prompt:
    """What the bot is waiting for from a person in a chat."""

    kind: str  # "report": what happened? · "private": a private report to unit_id ·
    # "choose_unit": which unit (draft holds the text) · "unsatisfied": why (matter_id)
    unit_id: str | None
    matter_id: int | None
    draft: str | None


@dataclass
class HeldPing:
    id: int
    chat_id: int
    matter_id: int
    kind: str
    tier: int
    reason: str


@dataclass
class HeldReport:
    """A report over a limit, kept until a head turns it into a matter (/held)."""

    id: int
    unit_id: str
    chat_id: int  # where it was sent: the unit's group, or the reporter's private chat
    message_id: int | None
    reporter_id: int
    reporter_name: str
    limit_key: int
    text: str
    photo: str | None
    private: bool
    membership: str | None
    reason: str  # "hourly" or "nonmember"
    created_at: float
    matter_id: int | None = None


_HELD_COLUMNS = [f.name for f in fields(HeldReport)]


@dataclass
class DutyOverride:
    """Someone took the station's watch with /duty, until ``until``."""

    user_id: int
    start: float
    until: float


@dataclass
class Broadcast:
    """A notice a station or community sent down to its unit groups (/broadcast)."""

    id: int
    node_id: str
    chat_id: int  # where it was sent from: the delivery report goes there
    message_id: int | None  # the /broadcast message, which the report answers
    sender_id: int
    sender_name: str
    text: str
    photo: str | None  # a Telegram file id
    language: str  # the sender was answered in it; so is the report
    targets: int
    created_at: float
    reported_at: float | None


@dataclass
class BroadcastOutcome:
    """Where one target of a broadcast stands: pending, sent or failed."""

    unit_id: str
    chat_id: int
    state: str


_MATTER_COLUMNS = [f.name for f in fields(Matter)]
_MATTER_SELECT = "SELECT " + ", ".join(_MATTER_COLUMNS) + " FROM matters"


@dataclass
class Purged:
    """What one clearing of personal data changed (counts only: they are logged)."""

    matters: int = 0
    events: int = 0
    attachments: int = 0
    messages: int = 0
    prompts: int = 0
    users: int = 0
    held: int = 0  # reports held back by the abuse limits

    def add(self, other: Purged) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@dataclass(frozen=True)
class QueuedReport:
    """A report to be logged; from a unit group, it is queued and committed with those that
    came with it (Store.queue_report)."""

    update_id: int | None  # marked done in the same transaction
    matter: dict[str, Any]  # the new matters row
    reply_to: int | None  # the report's message: its card answers it
    photo_file_id: str | None = None
    prompt_chat: int | None = None  # it answers "what happened?" asked there: consumed with it
    # The hourly limit the group commit holds it to (bot/limits.py; None: none), and its
    # answer if it is held, given when the person may report again.
    per_hour: int | None = None
    held_answer: Callable[[float], str] | None = None


@dataclass(frozen=True)
class Sent:
    """An outbox item Telegram accepted, waiting to be recorded as sent."""

    item_id: int
    at: float
    message_id: int | None
    card: tuple[int, int, int] | None = None  # a new card: (matter, chat, message), kept on the matter


def _matter(row: Sequence[Any]) -> Matter:
    matter = Matter(*row)
    matter.state = State(matter.state)
    matter.urgent = bool(matter.urgent)
    matter.private = bool(matter.private)
    matter.category_set = bool(matter.category_set)
    return matter


def _held(row: Sequence[Any]) -> HeldReport:
    held = HeldReport(*row)
    held.private = bool(held.private)
    return held


def clock_columns(clock: Clock, rules: Rules) -> dict[str, Any]:
    """The matter columns a clock maps to, with the sweep's next look."""
    return {
        "state": clock.state.value,
        "tier": clock.tier,
        "tier_since": clock.tier_since,
        "claim_since": clock.claim_since,
        "last_ping_at": clock.last_ping_at,
        "reminded_upto": clock.reminded_upto,
        "last_activity_at": clock.last_activity_at,
        "idle_reminded_at": clock.idle_reminded_at,
        "suspended_at": clock.suspended_at,
        "suspended_until": clock.suspended_until,
        "next_due": next_check(clock, rules),
    }


class SendSlot:
    """The right of one outbox send to be accepted by Telegram before it is recorded.

    bot/delivery.py makes one per item and puts it in ``sending`` for the Bot API calls it
    makes; bot/ratelimit.py takes it just before a call goes out (after any rate-limit wait,
    so a chat waiting out its limits holds none) and gives it back if the call failed."""

    __slots__ = ("_slots", "held")

    def __init__(self, slots: asyncio.Semaphore) -> None:
        self._slots = slots
        self.held = False

    async def take(self) -> None:
        if not self.held:
            await self._slots.acquire()
            self.held = True

    def give_back(self) -> None:
        if self.held:
            self.held = False
            self._slots.release()

    def hand_over(self) -> SendSlot:
        """A new owner of the slot held (the group commit); this one holds nothing more."""
        other = SendSlot(self._slots)
        other.held, self.held = self.held, False
        return other


# The outbox send the current task is making, if any (see SendSlot).
sending: ContextVar[SendSlot | None] = ContextVar("sending", default=None)


class Store:
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self._lock = asyncio.Lock()
        self.on_enqueue: Callable[[], None] | None = None  # told after a commit that queued messages
        self.on_lost: Callable[[QueuedReport], None] | None = None  # told of a report that failed to commit
        self.handled: set[int] = set()  # updates whose effects are committed, or queued to be
        self.started: set[int] = set()  # updates this run has begun to handle
        self.done_upto = 0  # the highest update id in the inbox at start: newer ones are new
        self._reports: list[QueuedReport] = []
        self._sent: list[Sent] = []
        self._sent_slots: list[SendSlot] = []  # given back once their sends are recorded
        self._slots = asyncio.Semaphore(8 + SENT_BATCH)
        self._done: list[int] = []  # updates that changed nothing
        self._last_error = ""
        self._committer: asyncio.Task[None] | None = None
        self.now: Callable[[], float] = time.time  # the inbox's clock; the app sets its own
        self.failing: dict[int, str] = {}  # updates whose handler raised, with the error

    @classmethod
    async def open(cls, path: str | Path) -> Store:
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
            store = cls(conn)
            await store._migrate()
        except BaseException:
            await conn.close()  # else its thread keeps the process alive after the error
            raise
        if str(path) != ":memory:":
            _warn_if_shared(path)
        return store

    async def quick_check(self) -> str | None:
        """SQLite's quick integrity check (a damaged or truncated file): the first problem, or None."""
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
            for statement in _statements(MIGRATIONS[number]):
                await self._conn.execute(statement)
            await self._conn.execute(f"PRAGMA user_version = {number + 1}")
            await self._conn.execute("COMMIT")

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        """One write transaction: everything inside commits together or not at all."""
        async with self._lock:
            await self._write_queued()
            update_id = current_update.get()
            async with self._atomic() as tx:
                yield tx
                if update_id is not None:
                    await tx.inbox_done([update_id], self.now())
            if update_id is not None:
                self.handled.add(update_id)
        if tx.enqueued and self.on_enqueue is not None:
            self.on_enqueue()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Tx]:
        """Queries only; holds the lock so reads never see half a transaction."""
        async with self._lock:
            await self._write_queued()
            yield Tx(self._conn)

    def queue_report(self, report: QueuedReport) -> None:
        """Log a group report in the next group commit (see the module's docstring)."""
        self._reports.append(report)
        if report.update_id is not None:
            self.handled.add(report.update_id)
        self._commit_soon()

    def queue_done(self, update_id: int) -> None:
        """Mark an update that changed nothing done in the next group commit."""
        self._done.append(update_id)
        self.handled.add(update_id)
        self._commit_soon()

    def bound_unrecorded(self, connections: int) -> None:
        """Sends in flight at most: at most this many plus SENT_BATCH go unrecorded."""
        self._slots = asyncio.Semaphore(connections + SENT_BATCH)

    def send_slot(self) -> SendSlot:
        return SendSlot(self._slots)

    def queue_sent(self, sent: Sent, slot: SendSlot | None = None) -> None:
        """Record an outbox item as sent in the next group commit; its slot is given back
        then."""
        self._sent.append(sent)
        if slot is not None and slot.held:
            self._sent_slots.append(slot.hand_over())
        self._commit_soon()

    def _commit_soon(self) -> None:
        if self._committer is None or self._committer.done():
            # A fresh context: the task must not inherit the handler's current update.
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
        return bool(self._reports or self._sent or self._done)

    async def _write_all(self) -> None:
        while self._queued:
            reports, self._reports = self._reports, []
            sent, self._sent = self._sent, []
            slots, self._sent_slots = self._sent_slots, []
            done, self._done = self._done, []
            try:
                if await self._try_write(reports, sent, done, quiet=True):
                    continue
                # One bad row must not sink the others: each alone.
                for report in reports:
                    if not await self._try_write([report], [], []):
                        if report.update_id is not None:
                            await self._count_try(report.update_id, self._last_error)
                        if self.on_lost is not None:
                            self.on_lost(report)
                for one in sent:
                    await self._try_write([], [one], [])
                if done:
                    await self._try_write([], [], done)
            finally:  # recorded (or beyond recording): the next sends may go
                for slot in slots:
                    slot.give_back()

    async def _try_write(self, reports: list[QueuedReport], sent: list[Sent], done: list[int],
                         quiet: bool = False) -> bool:
        try:
            async with self._atomic() as tx:
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
        except Exception as exc:
            # A report left behind stays in the inbox, not done: the next start tries it again.
            self._last_error = describe_error(exc)
            if not quiet:  # ids only: a report's text and its reporter's name stay out of the log
                log.exception("could not commit %d report(s) (updates %s), %d sent, %d done", len(reports),
                              [r.update_id for r in reports], len(sent), len(done))
            return False
        if reports and self.on_enqueue is not None:
            self.on_enqueue()
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

    @asynccontextmanager
    async def _atomic(self) -> AsyncIterator[Tx]:
        """BEGIN … COMMIT, or ROLLBACK on any error; the caller holds the lock."""
        tx = Tx(self._conn)
        try:
            await self._conn.execute("BEGIN IMMEDIATE")
            yield tx
        except BaseException:
            # Also after a cancel during BEGIN: aiosqlite runs it anyway, and this ROLLBACK,
            # queued behind it, ends what it began ("no transaction" if it began nothing).
            with contextlib.suppress(sqlite3.Error):
                await self._conn.execute("ROLLBACK")
            raise
        await self._conn.execute("COMMIT")
        for name, values in tx.logged:  # only now: a change rolled back is never logged
            logs.event(name, **values)


def describe_error(exc: BaseException) -> str:
    """What went wrong, for the inbox and the log: the exception's kind and where it was
    raised; the message only from SQLite and the OS, whose words never quote a report."""
    where, ours = "", str(Path(__file__).resolve().parent.parent)
    tb = exc.__traceback__
    while tb is not None:  # the innermost frame of tierbot's own code, else the innermost
        path = tb.tb_frame.f_code.co_filename
        if not where or (path.startswith(ours) and "site-packages" not in path):
            where = f" at {Path(path).name}:{tb.tb_lineno}"
        tb = tb.tb_next
    said = f": {exc}" if isinstance(exc, sqlite3.Error | OSError) else ""
    return f"{type(exc).__name__}{said}{where}"[:300]


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


def _statements(script: str) -> Iterable[str]:
    return (s.strip() for s in script.split(";") if s.strip())


class Tx:
    """Named queries, used inside Store.transaction() or Store.read()."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self.enqueued = False
        self.logged: list[tuple[str, dict[str, Any]]] = []  # events to log once committed

    def log_event(self, name: str, **fields: Any) -> None:
        """An event for the operator's log (see bot/logs.py), written after the commit."""
        self.logged.append((name, fields))

    # One trip to aiosqlite's thread per query: a cursor would take three (execute, fetch,
    # close), and the trips, not SQLite, are most of what a query costs here.
    async def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = await self._conn.execute_fetchall(sql, params)
        return next(iter(rows), None)

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(await self._conn.execute_fetchall(sql, params))

    # --- matters -----------------------------------------------------------------
    async def matter(self, matter_id: int) -> Matter | None:
        row = await self._one(f"{_MATTER_SELECT} WHERE id = ?", (matter_id,))
        return _matter(row) if row else None

    async def insert_reports(self, reports: list[QueuedReport]) -> list[tuple[int, int]]:
        """Reports, each with its "reported" event, photo and card, in a few trips whatever
        their number. Returns each one's matter and event ids, in order."""
        matter_ids = await self._insert_many("matters", [r.matter for r in reports])
        pairs = list(zip(matter_ids, reports, strict=True))
        event_ids = await self._insert_many("events", [
            {"matter_id": i, "at": r.matter["created_at"], "actor_id": r.matter["reporter_id"],
             "actor_name": r.matter["reporter_name"], "kind": "reported", "tier": r.matter["top_tier"]}
            for i, r in pairs
        ])
        if photos := [(i, r) for i, r in pairs if r.photo_file_id]:
            await self._conn.executemany(
                "INSERT INTO attachments (matter_id, kind, file_id, added_by, at) VALUES (?, 'photo', ?, ?, ?)",
                [(i, r.photo_file_id, r.matter["reporter_id"], r.matter["created_at"]) for i, r in photos],
            )
        if answers := [r for r in reports if r.prompt_chat is not None]:
            await self._conn.executemany(
                "DELETE FROM prompts WHERE chat_id = ? AND user_id = ?",
                [(r.prompt_chat, r.matter["reporter_id"]) for r in answers],
            )
        await self.outbox_insert(
            [Card(i, r.matter["chat_id"], "new", r.reply_to).row(r.matter["created_at"]) for i, r in pairs]
        )
        return list(zip(matter_ids, event_ids, strict=True))

    async def _insert_many(self, table: str, rows: list[dict[str, Any]]) -> list[int]:
        """Rows with the same columns, a few hundred to a statement; their new ids, in order."""
        ids: list[int] = []
        for start in range(0, len(rows), ROWS_PER_INSERT):
            chunk = rows[start : start + ROWS_PER_INSERT]
            columns = list(chunk[0])
            marks = "(" + ", ".join("?" for _ in columns) + ")"
            returned = await self._all(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join(marks for _ in chunk)} RETURNING id",
                [row[c] for row in chunk for c in columns],
            )
            # New rowids are handed out in insertion order; RETURNING's own order is unspecified.
            ids.extend(sorted(r[0] for r in returned))
        return ids

    async def cards_of(self, matter_ids: list[int]) -> dict[int, tuple[Matter, int]]:
        """Matters and how many attachments each has (what their cards show), in one query."""
        if not matter_ids:
            return {}
        marks = ", ".join("?" for _ in matter_ids)
        rows = await self._all(
            f"SELECT {', '.join(_MATTER_COLUMNS)}, "
            "(SELECT count(*) FROM attachments WHERE attachments.matter_id = matters.id) "
            f"FROM matters WHERE id IN ({marks})",
            tuple(matter_ids),
        )
        return {row[0]: (_matter(row[:-1]), int(row[-1])) for row in rows}

    async def update_matter(self, matter_id: int, **values: Any) -> None:
        assignments = ", ".join(f"{column} = ?" for column in values)
        await self._conn.execute(
            f"UPDATE matters SET {assignments} WHERE id = ?", (*values.values(), matter_id)
        )

    async def update_matters(self, changes: list[tuple[int, dict[str, Any]]]) -> None:
        """Many matters' changes in as few trips as there are kinds of change (the sweep)."""
        groups: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
        for matter_id, values in changes:
            groups.setdefault(tuple(values), []).append((*values.values(), matter_id))
        for columns, rows in groups.items():
            assignments = ", ".join(f"{column} = ?" for column in columns)
            await self._conn.executemany(f"UPDATE matters SET {assignments} WHERE id = ?", rows)

    async def due_matters(self, now: float, limit: int = 500) -> list[Matter]:
        rows = await self._all(
            f"{_MATTER_SELECT} WHERE next_due IS NOT NULL AND next_due <= ? "
            "ORDER BY next_due LIMIT ?",
            (now, limit),
        )
        return [_matter(r) for r in rows]

    async def open_matters(self, unit_ids: Sequence[str]) -> list[Matter]:
        marks = ", ".join("?" for _ in unit_ids)
        rows = await self._all(
            f"{_MATTER_SELECT} WHERE unit_id IN ({marks}) AND state IN ('open', 'claimed') ORDER BY id",
            tuple(unit_ids),
        )
        return [_matter(r) for r in rows]

    # --- timeline ----------------------------------------------------------------
    async def add_event(
        self,
        matter_id: int,
        at: float,
        kind: str,
        *,
        actor_id: int | None = None,
        actor_name: str | None = None,
        tier: int | None = None,
        detail: str | None = None,
    ) -> int:
        cur = await self._conn.execute(
            "INSERT INTO events (matter_id, at, actor_id, actor_name, kind, tier, detail) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (matter_id, at, actor_id, actor_name, kind, tier, detail),
        )
        return cur.lastrowid  # type: ignore[return-value]

    async def add_events(self, events: list[Event]) -> None:
        """Many timeline rows in one trip (the sweep's; it needs no ids back)."""
        await self._conn.executemany(
            "INSERT INTO events (matter_id, at, actor_id, actor_name, kind, tier, detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(e.matter_id, e.at, e.actor_id, e.actor_name, e.kind, e.tier, e.detail) for e in events],
        )

    async def events(self, matter_id: int) -> list[Event]:
        rows = await self._all(
            "SELECT matter_id, at, actor_id, actor_name, kind, tier, detail FROM events "
            "WHERE matter_id = ? ORDER BY id",
            (matter_id,),
        )
        return [Event(*r) for r in rows]

    async def add_attachment(
        self, matter_id: int, kind: str, file_id: str, added_by: int, at: float
    ) -> None:
        """A photo, voice note (Telegram file ids) or location ("lat,lon") on a matter."""
        await self._conn.execute(
            "INSERT INTO attachments (matter_id, kind, file_id, added_by, at) VALUES (?, ?, ?, ?, ?)",
            (matter_id, kind, file_id, added_by, at),
        )

    async def outbox_insert(self, rows: list[tuple]) -> None:
        """Outbox rows (bot/outbox.py's ``Row``: only ``outbox.put`` writes them) in one
        trip; keys already queued are ignored, so retries never queue twice."""
        if rows:
            cur = await self._conn.executemany(
                "INSERT OR IGNORE INTO outbox (key, chat_id, kind, matter_id, text, markup, "
                "reply_to, media, not_before, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            self.enqueued = self.enqueued or cur.rowcount > 0

    async def attachments_of(self, matter_ids: list[int]) -> dict[int, list[tuple[str, str]]]:
        """What is attached to each of these matters, in one query."""
        if not matter_ids:
            return {}
        marks = ", ".join("?" for _ in matter_ids)
        rows = await self._all(
            f"SELECT matter_id, kind, file_id FROM attachments WHERE matter_id IN ({marks}) ORDER BY id",
            tuple(matter_ids),
        )
        out: dict[int, list[tuple[str, str]]] = {}
        for matter_id, kind, file_id in rows:
            out.setdefault(matter_id, []).append((kind, file_id))
        return out

    async def outbox_due(
        self, now: float, limit: int = 50, skip_chats: Sequence[int] = (),
        bulk_prefix: str | Sequence[str] | None = None,
    ) -> list[OutboxItem]:
        """What is due to be sent, oldest first, leaving out chats already being served.
        Items whose key starts with ``bulk_prefix`` (or one of them: a broadcast's or the
        bulletins' thousands) come after all others, so that no card or escalation waits a
        minute behind them."""
        skip = f"AND chat_id NOT IN ({', '.join('?' for _ in skip_chats)}) " if skip_chats else ""
        prefixes = [bulk_prefix] if isinstance(bulk_prefix, str) else list(bulk_prefix or ())
        bulk = f"({' OR '.join('substr(key, 1, ?) = ?' for _ in prefixes)}), " if prefixes else ""
        rows = await self._all(
            "SELECT id, key, chat_id, kind, matter_id, text, markup, reply_to, attempts, media "
            f"FROM outbox WHERE state = 'pending' AND not_before <= ? {skip}ORDER BY {bulk}id LIMIT ?",
            (now, *skip_chats, *(x for p in prefixes for x in (len(p), p)), limit),
        )
        return [OutboxItem(*r) for r in rows]

    async def outbox_retry_now(self, now: float) -> None:
        """At start: whatever was waiting for a retry is tried again at once."""
        await self._conn.execute(
            "UPDATE outbox SET not_before = ? WHERE state = 'pending' AND not_before > ?", (now, now)
        )

    async def outbox_sent(self, sent: list[Sent]) -> None:
        """Items Telegram accepted, and the places of the new cards among them."""
        # A file made for the asker (a ledger, with names in it) is not kept once it is sent.
        await self._conn.executemany(
            "UPDATE outbox SET state = 'sent', sent_at = ?, message_id = ?, "
            "media = CASE WHEN kind = 'document' THEN NULL ELSE media END WHERE id = ?",
            [(s.at, s.message_id, s.item_id) for s in sent],
        )
        if cards := [s for s in sent if s.card is not None]:
            await self._conn.executemany(
                "UPDATE matters SET card_chat_id = ?, card_message_id = ? WHERE id = ?",
                [(chat, message, matter) for matter, chat, message in (s.card for s in cards if s.card)],
            )

    async def outbox_retry(self, item_id: int, not_before: float, error: str) -> None:
        await self._conn.execute(
            "UPDATE outbox SET attempts = attempts + 1, not_before = ?, error = ? WHERE id = ?",
            (not_before, error, item_id),
        )

    async def outbox_failed(self, item_id: int, error: str) -> None:
        await self._conn.execute(
            "UPDATE outbox SET state = 'failed', attempts = attempts + 1, error = ?, "
            "media = CASE WHEN kind = 'document' THEN NULL ELSE media END WHERE id = ?",
            (error, item_id),
        )

    async def fail_pending_for_chat(self, chat_id: int, error: str) -> None:
        await self._conn.execute(
            "UPDATE outbox SET state = 'failed', error = ? WHERE chat_id = ? AND state = 'pending'",
            (error, chat_id),
        )

    # --- chats -------------------------------------------------------------------
    async def bind_chat(self, chat_id: int, node_id: str, user_id: int, now: float) -> None:
        # A node has one chat: binding a new one releases the old.
        await self._conn.execute("UPDATE chats SET node_id = NULL WHERE node_id = ?", (node_id,))
        await self._conn.execute(
            "INSERT INTO chats (chat_id, node_id, bound_by, bound_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(chat_id) DO UPDATE SET node_id = excluded.node_id, "
            "bound_by = excluded.bound_by, bound_at = excluded.bound_at, unreachable_at = NULL",
            (chat_id, node_id, user_id, now),
        )

    async def move_chat(self, old_chat: int, new_chat: int) -> None:
        """A group's new id (it became a supergroup): pending messages, cards and its language follow it."""
        await self._conn.execute(
            "UPDATE outbox SET chat_id = ? WHERE chat_id = ? AND state = 'pending'", (new_chat, old_chat)
        )
        await self._conn.execute("UPDATE matters SET chat_id = ? WHERE chat_id = ?", (new_chat, old_chat))
        # A report held over a limit becomes a matter there later: its card goes to the new id.
        await self._conn.execute("UPDATE held_reports SET chat_id = ? WHERE chat_id = ?", (new_chat, old_chat))
        await self._conn.execute(
            "UPDATE matters SET card_chat_id = NULL, card_message_id = NULL WHERE card_chat_id = ?", (old_chat,)
        )
        await self._conn.execute(  # the group's language goes with it
            "INSERT INTO chats (chat_id, language) SELECT ?, language FROM chats "
            "WHERE chat_id = ? AND language IS NOT NULL "
            "ON CONFLICT(chat_id) DO UPDATE SET language = excluded.language",
            (new_chat, old_chat),
        )

    async def bindings(self) -> dict[int, str]:
        rows = await self._all("SELECT chat_id, node_id FROM chats WHERE node_id IS NOT NULL")
        return {chat_id: node_id for chat_id, node_id in rows}

    async def set_chat_language(self, chat_id: int, language: str) -> None:
        await self._conn.execute(
            "INSERT INTO chats (chat_id, language) VALUES (?, ?) "
            "ON CONFLICT(chat_id) DO UPDATE SET language = excluded.language",
            (chat_id, language),
        )

    async def chat_languages(self) -> dict[int, str]:
        rows = await self._all("SELECT chat_id, language FROM chats WHERE language IS NOT NULL")
        return {chat_id: language for chat_id, language in rows}

    async def mark_unreachable(self, chat_id: int, now: float) -> bool:
        """Returns True only the first time, so the station is told once."""
        cur = await self._conn.execute(
            "INSERT INTO chats (chat_id, unreachable_at) VALUES (?, ?) "
            "ON CONFLICT(chat_id) DO UPDATE SET unreachable_at = excluded.unreachable_at "
            "WHERE chats.unreachable_at IS NULL",
            (chat_id, now),
        )
        return cur.rowcount == 1

    async def unreachable_chats(self) -> set[int]:
        rows = await self._all("SELECT chat_id FROM chats WHERE unreachable_at IS NOT NULL")
        return {r[0] for r in rows}

    # --- "/report" alone: waiting for the text -----------------------------------
    async def set_prompt(
        self,
        chat_id: int,
        user_id: int,
        now: float,
        kind: str = "report",
        unit_id: str | None = None,
        matter_id: int | None = None,
        draft: str | None = None,
    ) -> None:
        """Remember that the bot asked this person something in this chat (one at a time)."""
        await self._conn.execute(
            "INSERT OR REPLACE INTO prompts (chat_id, user_id, asked_at, kind, unit_id, matter_id, draft) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (chat_id, user_id, now, kind, unit_id, matter_id, draft),
        )

    async def prompt(self, chat_id: int, user_id: int, since: float) -> Prompt | None:
        row = await self._one(
            "SELECT kind, unit_id, matter_id, draft FROM prompts WHERE chat_id = ? AND user_id = ? AND asked_at >= ?",
            (chat_id, user_id, since),
        )
        return Prompt(*row) if row else None

    async def take_prompt(self, chat_id: int, user_id: int, since: float) -> bool:
        """Consume a pending prompt asked after ``since``."""
        cur = await self._conn.execute(
            "DELETE FROM prompts WHERE chat_id = ? AND user_id = ? AND asked_at >= ?",
            (chat_id, user_id, since),
        )
        return cur.rowcount == 1

    # --- a person's own matters, and what is attached ----------------------------
    async def matters_of(self, reporter_id: int, limit: int = 20) -> list[Matter]:
        rows = await self._all(
            f"{_MATTER_SELECT} WHERE reporter_id = ? ORDER BY id DESC LIMIT ?", (reporter_id, limit)
        )
        return [_matter(r) for r in rows]

    async def reported_units(self, reporter_id: int) -> list[str]:
        rows = await self._all(
            "SELECT unit_id FROM matters WHERE reporter_id = ? GROUP BY unit_id ORDER BY max(id) DESC LIMIT 8",
            (reporter_id,),
        )
        return [r[0] for r in rows]

    async def matter_by_message(self, chat_id: int, message_id: int) -> Matter | None:
        """The matter whose card, or whose report, is this message."""
        row = await self._one(
            f"{_MATTER_SELECT} WHERE (card_chat_id = ? AND card_message_id = ?) "
            "OR (chat_id = ? AND report_message_id = ?)",
            (chat_id, message_id, chat_id, message_id),
        )
        return _matter(row) if row else None

    async def attachments(self, matter_id: int) -> list[tuple[str, str]]:
        """(kind, file id or "lat,lon") of everything attached to a matter, oldest first."""
        return await self._all("SELECT kind, file_id FROM attachments WHERE matter_id = ? ORDER BY id", (matter_id,))

    # --- abuse limits (issue 10) -------------------------------------------------
    async def report_times(self, key: int, since: float, nonmember: bool = False) -> list[float]:
        """When the reports counting against ``key`` since ``since`` were made (matters
        and reports still held), oldest first; ``nonmember``: only private reports from
        someone Telegram does not show as a member of the unit's group."""
        extra = " AND membership = 'nonmember'" if nonmember else ""
        rows = await self._all(
            f"SELECT created_at FROM matters WHERE limit_key = ? AND created_at >= ?{extra} "
            f"UNION ALL SELECT created_at FROM held_reports WHERE limit_key = ? AND created_at >= ? "
            f"AND matter_id IS NULL{extra} ORDER BY 1",
            (key, since, key, since),
        )
        return [r[0] for r in rows]

    async def limit_times(self, keys: Iterable[int], since: float) -> dict[int, list[float]]:
        """When the reports counting against each of ``keys`` since ``since`` were made
        (matters and reports still held), in one query."""
        keys = list(keys)
        marks = ", ".join("?" for _ in keys)
        rows = await self._all(
            f"SELECT limit_key, created_at FROM matters WHERE limit_key IN ({marks}) AND created_at >= ? "
            f"UNION ALL SELECT limit_key, created_at FROM held_reports WHERE limit_key IN ({marks}) "
            "AND created_at >= ? AND matter_id IS NULL",
            (*keys, since, *keys, since),
        )
        times: dict[int, list[float]] = {}
        for key, at in rows:
            times.setdefault(key, []).append(at)
        return times

    async def hold_queued(self, report: QueuedReport, again: float) -> int:
        """A queued group report over the hourly limit: held, not a matter, and answered
        with ``report.held_answer`` (as its card would have been); a prompt it answers is
        consumed. Returns the held report's id."""
        row = report.matter
        held_id = await self.hold_report({
            "unit_id": row["unit_id"], "chat_id": row["chat_id"], "message_id": report.reply_to,
            "reporter_id": row["reporter_id"], "reporter_name": row["reporter_name"], "limit_key": row["limit_key"],
            "text": row["text"], "photo": report.photo_file_id, "private": row.get("private", 0),
            "membership": row.get("membership"), "reason": limits.HELD_HOURLY, "created_at": row["created_at"],
        })
        assert report.held_answer is not None
        await self.outbox_insert([HeldNotice(held_id, row["chat_id"], report.held_answer(again),
                                             reply_to=report.reply_to).row(row["created_at"])])
        if report.prompt_chat is not None:
            await self._conn.execute("DELETE FROM prompts WHERE chat_id = ? AND user_id = ?",
                                     (report.prompt_chat, row["reporter_id"]))
        return held_id

    async def recent_reports(self, since: float) -> list[tuple[int, float]]:
        """(limit key, when) of every report since ``since``: the limits' memory at start."""
        return await self._all(
            "SELECT limit_key, created_at FROM matters WHERE created_at >= ? AND limit_key IS NOT NULL "
            "UNION ALL SELECT limit_key, created_at FROM held_reports WHERE created_at >= ? AND matter_id IS NULL",
            (since, since),
        )

    async def urgent_alerts(self, key: int, since: float) -> int:
        """How many of this person's matters first alerted as urgent since ``since``."""
        (count,) = await self._one(
            "SELECT count(*) FROM matters WHERE limit_key = ? AND urgent_at >= ?", (key, since)
        )
        return int(count)

    async def hold_report(self, held: dict[str, Any]) -> int:
        columns = list(held)
        cur = await self._conn.execute(
            f"INSERT INTO held_reports ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})",
            [held[c] for c in columns],
        )
        return cur.lastrowid  # type: ignore[return-value]

    async def held_report(self, held_id: int) -> HeldReport | None:
        row = await self._one(f"SELECT {', '.join(_HELD_COLUMNS)} FROM held_reports WHERE id = ?", (held_id,))
        return _held(row) if row else None

    async def held_reports(self, unit_ids: Sequence[str], limit: int = 20) -> list[HeldReport]:
        """Reports still held for these units, newest first."""
        marks = ", ".join("?" for _ in unit_ids)
        rows = await self._all(
            f"SELECT {', '.join(_HELD_COLUMNS)} FROM held_reports "
            f"WHERE matter_id IS NULL AND unit_id IN ({marks}) ORDER BY id DESC LIMIT ?",
            (*unit_ids, limit),
        )
        return [_held(r) for r in rows]

    async def release_held(self, held_id: int, matter_id: int, by: int, now: float) -> bool:
        """Returns True only the first time: one held report becomes one matter."""
        cur = await self._conn.execute(
            "UPDATE held_reports SET matter_id = ?, released_by = ?, released_at = ? "
            "WHERE id = ? AND matter_id IS NULL",
            (matter_id, by, now, held_id),
        )
        return cur.rowcount == 1

    # --- schedules ---------------------------------------------------------------
    async def first_started(self, now: float) -> float:
        """When this database first served a bot (set once, at the first start)."""
        await self._conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('first_started', ?)", (repr(now),))
        (value,) = await self._one("SELECT value FROM meta WHERE key = 'first_started'")
        return float(value)

    async def schedule_ran(self, name: str, period: str) -> bool:
        row = await self._one(
            "SELECT 1 FROM schedule_runs WHERE name = ? AND period = ?", (name, period)
        )
        return row is not None

    async def mark_schedule(self, name: str, period: str, now: float) -> bool:
        cur = await self._conn.execute(
            "INSERT OR IGNORE INTO schedule_runs (name, period, ran_at) VALUES (?, ?, ?)",
            (name, period, now),
        )
        return cur.rowcount == 1

    # --- quiet hours ---------------------------------------------------------------
    async def hold_ping(
        self, chat_id: int, matter_id: int, kind: str, tier: int, reason: str, now: float, release_at: float
    ) -> None:
        await self._conn.execute(
            "INSERT INTO held_pings (chat_id, matter_id, kind, tier, reason, at, release_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (chat_id, matter_id, kind, tier, reason, now, release_at),
        )

    async def held_pings_due(self, now: float) -> list[HeldPing]:
        rows = await self._all(
            "SELECT id, chat_id, matter_id, kind, tier, reason FROM held_pings WHERE release_at <= ? ORDER BY id",
            (now,),
        )
        return [HeldPing(*r) for r in rows]

    async def drop_held_pings(self, ids: list[int]) -> None:
        await self._conn.executemany("DELETE FROM held_pings WHERE id = ?", [(i,) for i in ids])

    # --- people ------------------------------------------------------------------
    async def set_private_chat(self, user_id: int, name: str, now: float) -> None:
        """The user opened a private chat with the bot (/start): DMs can reach them."""
        await self._conn.execute(
            "INSERT INTO users (user_id, name, private_chat, updated_at) VALUES (?, ?, 1, ?) "
            "ON CONFLICT(user_id) DO UPDATE SET name = excluded.name, private_chat = 1, "
            "updated_at = excluded.updated_at",
            (user_id, name, now),
        )

    async def has_private_chat(self, user_id: int) -> bool:
        row = await self._one("SELECT private_chat FROM users WHERE user_id = ?", (user_id,))
        return bool(row and row[0])

    async def add_duty_override(self, user_id: int, name: str, start: float, until: float, by: int) -> None:
        await self._conn.execute(
            "INSERT INTO duty_overrides (user_id, name, start, until, set_by, set_at) VALUES (?, ?, ?, ?, ?, ?)",
            (user_id, name, start, until, by, start),
        )

    async def duty_overrides(self, now: float) -> list[DutyOverride]:
        rows = await self._all(
            "SELECT user_id, start, until FROM duty_overrides WHERE until > ? ORDER BY set_at, id", (now,)
        )
        return [DutyOverride(*r) for r in rows]

    # --- inbox -------------------------------------------------------------------
    async def inbox_add(self, updates: list[tuple[int, str | None]], now: float | None = None) -> None:
        """Fetched updates, each with its payload, or None when replay will not need it."""
        now = time.time() if now is None else now
        await self._conn.executemany(
            "INSERT OR IGNORE INTO inbox (update_id, payload, received_at) VALUES (?, ?, ?)",
            [(update_id, payload, now) for update_id, payload in updates],
        )

    async def inbox_done(self, update_ids: list[int], now: float) -> None:
        """Done: only the id stays (duplicate detection), never what it said."""
        if update_ids:
            await self._conn.executemany(
                "UPDATE inbox SET done_at = ?, payload = NULL WHERE update_id = ? AND done_at IS NULL",
                [(now, update_id) for update_id in update_ids],
            )

    async def inbox_try_failed(self, update_id: int, error: str, now: float) -> int:
        """One more failed try of a pending update; after MAX_TRIES it is failed (and done,
        its payload dropped). Returns the tries so far (0 if it is not pending)."""
        row = await self._one(
            "UPDATE inbox SET tries = tries + 1, error = ? WHERE update_id = ? AND done_at IS NULL RETURNING tries",
            (error, update_id),
        )
        tries = int(row[0]) if row else 0
        if tries >= MAX_TRIES:
            await self._conn.execute(
                "UPDATE inbox SET failed_at = ?, done_at = ?, payload = NULL WHERE update_id = ?",
                (now, now, update_id),
            )
        return tries

    async def inbox_failed(self, limit: int = 50) -> list[tuple[int, float, str]]:
        """Updates given up on, newest first: (update id, when, error)."""
        return await self._all(
            "SELECT update_id, failed_at, coalesce(error, '') FROM inbox WHERE failed_at IS NOT NULL "
            "ORDER BY failed_at DESC, update_id DESC LIMIT ?",
            (limit,),
        )

    async def inbox_failed_count(self) -> int:
        """Updates given up on after repeated failures (``tierbot status`` shows it)."""
        (count,) = await self._one("SELECT count(*) FROM inbox WHERE failed_at IS NOT NULL")
        return int(count)

    async def inbox_is_done(self, update_id: int) -> bool:
        row = await self._one("SELECT done_at FROM inbox WHERE update_id = ?", (update_id,))
        return row is not None and row[0] is not None

    async def inbox_last_id(self) -> int:
        (last,) = await self._one("SELECT coalesce(max(update_id), 0) FROM inbox")
        return int(last)

    async def inbox_pending(self) -> list[tuple[int, str | None]]:
        """Updates not done, in order; the payload is None for those kept as an id only."""
        return await self._all("SELECT update_id, payload FROM inbox WHERE done_at IS NULL ORDER BY update_id")

    async def outbox_prune(self, before: float) -> None:
        """Forget messages sent or given up on long ago (keys stay unique meanwhile)."""
        await self._conn.execute("DELETE FROM outbox WHERE state != 'pending' AND created_at < ?", (before,))

    async def inbox_prune(self, before: float) -> None:
        """Forget updates done (or failed) long ago; the newest is kept so ids stay known."""
        await self._conn.execute(
            "DELETE FROM inbox WHERE done_at < ? AND update_id < (SELECT max(update_id) FROM inbox)", (before,)
        )

    # --- personal data retention (issue 10) ---------------------------------------
    async def purge_matters(self, before: float, now: float, limit: int = 500) -> Purged:
        """Clear the personal data of up to ``limit`` matters closed before ``before``: the
        reporter's name and id, the texts (report, resolution, reason, notes), attachments'
        file ids, the messages about them and questions pending on them. Figures (times,
        tiers, categories, ratings, counts) stay, and each matter's timeline says so."""
        rows = await self._all(
            "SELECT id FROM matters WHERE closed_at < ? AND purged_at IS NULL ORDER BY closed_at LIMIT ?",
            (before, limit),
        )
        ids = [r[0] for r in rows]
        if not ids:
            return Purged()
        marks = ", ".join("?" for _ in ids)
        own = "actor_id = (SELECT reporter_id FROM matters WHERE matters.id = events.matter_id)"
        words = ", ".join(f"'{k}'" for k in _OWN_WORDS_EVENTS)
        free = f"detail IS NOT NULL AND actor_id IS NOT NULL AND kind NOT IN ({words})"
        events = await self._conn.execute(
            f"UPDATE events SET detail = CASE WHEN {free} THEN ? ELSE detail END, "
            f"actor_name = CASE WHEN {own} THEN ? ELSE actor_name END, "
            # 0, not NULL: a NULL actor means the sweep wrote it, and the figures count that apart.
            f"actor_id = CASE WHEN {own} THEN 0 ELSE actor_id END "
            f"WHERE matter_id IN ({marks}) AND (({free}) OR {own})",
            (PURGED, PURGED, *ids),
        )
        attachments = await self._conn.execute(
            "UPDATE attachments SET file_id = ?, added_by = CASE WHEN added_by = "
            "(SELECT reporter_id FROM matters WHERE matters.id = attachments.matter_id) THEN NULL ELSE added_by END "
            f"WHERE matter_id IN ({marks})",
            (PURGED, *ids),
        )
        messages = await self._conn.execute(
            "UPDATE outbox SET text = CASE WHEN text IS NULL THEN NULL ELSE ? END, "
            "markup = NULL, media = CASE WHEN media IS NULL THEN NULL ELSE ? END "
            f"WHERE matter_id IN ({marks}) AND state != 'pending' AND (text IS NOT NULL OR media IS NOT NULL)",
            (PURGED, PURGED, *ids),
        )
        prompts = await self._conn.execute(f"DELETE FROM prompts WHERE matter_id IN ({marks})", ids)
        await self._conn.execute(
            "UPDATE matters SET reporter_id = 0, reporter_name = ?, text = ?, "
            "resolution = CASE WHEN resolution IS NULL THEN NULL ELSE ? END, "
            "close_reason = CASE WHEN close_reason IS NULL THEN NULL ELSE ? END, "
            "claimed_by_name = CASE WHEN claimed_by = reporter_id THEN ? ELSE claimed_by_name END, "
            "claimed_by = CASE WHEN claimed_by = reporter_id THEN NULL ELSE claimed_by END, "
            "resolved_by_name = CASE WHEN resolved_by = reporter_id THEN ? ELSE resolved_by_name END, "
            "resolved_by = CASE WHEN resolved_by = reporter_id THEN NULL ELSE resolved_by END, "
            f"limit_key = NULL, purged_at = ? WHERE id IN ({marks})",
            (PURGED, PURGED, PURGED, PURGED, PURGED, PURGED, now, *ids),
        )
        await self._conn.executemany(
            "INSERT INTO events (matter_id, at, kind) VALUES (?, ?, 'purged')", [(i, now) for i in ids]
        )
        return Purged(len(ids), events.rowcount, attachments.rowcount, messages.rowcount, prompts.rowcount)

    async def purge_people(self, before: float) -> Purged:
        """Questions left unanswered since before ``before``, the names of people not seen
        since (kept only to know who opened a private chat), and reports held back by the
        abuse limits since then."""
        prompts = await self._conn.execute("DELETE FROM prompts WHERE asked_at < ?", (before,))
        users = await self._conn.execute(
            "UPDATE users SET name = ? WHERE updated_at < ? AND name IS NOT NULL AND name != ?",
            (PURGED, before, PURGED),
        )
        held = await self._conn.execute(
            "UPDATE held_reports SET reporter_id = 0, reporter_name = ?, limit_key = 0, text = ?, photo = NULL "
            "WHERE created_at < ? AND text != ?",
            (PURGED, PURGED, before, PURGED),
        )
        return Purged(prompts=prompts.rowcount, users=users.rowcount, held=held.rowcount)

    # --- summaries ---------------------------------------------------------------
    async def summary_matters(self, start: float, end: float) -> tuple[list[Any], list[TimelineRow]]:
        """Matters that existed at some point in [start, end): created before the end and
        not closed for good before the start, as SummaryFacts rows from their columns (with
        ``escalated_at`` in place of the first missed deadline); and the timeline of those
        that ever went above their unit or were reopened since ``start`` (their columns
        alone cannot say where they stood when: escalation.summary.facts replays them)."""
        columns = ("m.unit_id, m.created_at, m.first_claimed_at, m.resolved_at, m.escalated_at, m.id, "
                   "m.category, m.top_tier, NULL, NULL, NULL, m.closed_at, NULL, NULL, NULL, m.private")
        # Matters are numbered in the order they are reported: those reported since the
        # start are read in one sequential pass; older ones (closed since the start, or
        # still open) through the closed_at index. Each part applies the whole condition,
        # so the split is exact whatever the order; it only makes a big town fast.
        first = await self._first_reported_since(start)
        rows = await self._all(
            f"SELECT {columns} FROM matters m WHERE m.id >= ? AND +m.created_at < ? "
            "AND (m.closed_at IS NULL OR m.closed_at >= ?) "
            f"UNION ALL SELECT {columns} FROM matters m INDEXED BY matters_closed "
            "WHERE m.closed_at >= ? AND m.id < ? AND m.created_at < ? "
            f"UNION ALL SELECT {columns} FROM matters m INDEXED BY matters_closed "
            "WHERE m.closed_at IS NULL AND m.id < ? AND m.created_at < ?",
            (first, end, start, start, first, end, first, end),
        )
        reopened = {r[0] for r in await self._all(
            "SELECT DISTINCT matter_id FROM events WHERE kind = 'reopened' AND at >= ?", (start,))}
        moved = [r[5] for r in rows if r[4] is not None or r[5] in reopened]
        return rows, await self.timelines(moved)

    async def timelines(self, matter_ids: list[int]) -> list[TimelineRow]:
        """The events that say where the given matters stood when, by matter and in order:
        arrivals, closes, reopens and missed deadlines."""
        kinds = "'escalated', 'taken_over', 'returned', 'reopened', 'resolved', 'unresolvable', 'referred', " \
                "'cancelled', 'reping'"
        rows: list[Any] = []
        for start in range(0, len(matter_ids), IDS_PER_QUERY):
            chunk = matter_ids[start : start + IDS_PER_QUERY]
            rows += await self._all(
                "SELECT e.matter_id, e.at, e.kind, e.tier, e.actor_id IS NULL, NULL FROM events e "
                f"INDEXED BY events_matter WHERE e.matter_id IN ({', '.join('?' for _ in chunk)}) "
                f"AND e.kind IN ({kinds}) ORDER BY e.matter_id, e.id",
                chunk,
            )
        return [TimelineRow(m, at, kind, tier, bool(sweep), text) for m, at, kind, tier, sweep, text in rows]

    async def ratings_given(self, start: float, middle: float, end: float) -> list[tuple[str, str | None, float, int]]:
        """Ratings given in [start, middle) and in [middle, end), counted per unit and label:
        (unit, label, when the first of them was given, how many). Ratings are events,
        counted when they were given, whatever became of their matter since."""
        rows = await self._all(
            "SELECT m.unit_id, e.detail, min(e.at), count(*) FROM events e INDEXED BY events_kind_at "
            "JOIN matters m ON m.id = e.matter_id WHERE e.kind = 'rated' AND e.at >= ? AND e.at < ? "
            "GROUP BY m.unit_id, e.detail, e.at >= ?",
            (start, end, middle),
        )
        return [(unit_id, detail, at, int(n)) for unit_id, detail, at, n in rows]

    async def _first_reported_since(self, at: float) -> int:
        """The number of the first matter reported at or after ``at`` (or the next number)."""
        (first,) = await self._one(
            "SELECT coalesce((SELECT min(id) FROM matters WHERE created_at >= ?), "
            "(SELECT coalesce(max(id), 0) + 1 FROM matters))",
            (at,),
        )
        return int(first)

    async def escalated_between(self, start: float, end: float) -> dict[str, int]:
        """Per unit, how many matters were escalated in [start, end)."""
        rows = await self._all(
            "SELECT m.unit_id, count(DISTINCT e.matter_id) FROM events e "
            "JOIN matters m ON m.id = e.matter_id "
            "WHERE e.kind = 'escalated' AND e.at >= ? AND e.at < ? GROUP BY m.unit_id",
            (start, end),
        )
        return {unit_id: count for unit_id, count in rows}

    # --- bulletins and ledgers (issue 5) -------------------------------------------
    async def week_counts(self, week_end: float) -> list[list[Any]] | None:
        """(unit, category, matters reported) in the week ending at ``week_end``, as
        counted before; None if that week has not been counted yet."""
        row = await self._one("SELECT counts FROM week_counts WHERE week_end = ?", (week_end,))
        return None if row is None else json.loads(row[0])

    async def count_week(self, start: float, end: float) -> list[tuple[str, str, int]]:
        """(unit, category, matters reported) in [start, end), counted now."""
        first = await self._first_reported_since(start)
        rows = await self._all(
            "SELECT unit_id, category, count(*) FROM ("
            "SELECT unit_id, category FROM matters WHERE id >= ? AND +created_at >= ? AND +created_at < ? "
            "UNION ALL SELECT unit_id, category FROM matters WHERE id < ? AND created_at >= ? AND created_at < ?"
            ") GROUP BY unit_id, category",
            (first, start, end, first, start, end),
        )
        return [(unit, category, int(n)) for unit, category, n in rows]

    async def save_week_counts(self, week_end: float, counts: list[tuple[str, str, int]]) -> None:
        await self._conn.execute(
            "INSERT OR IGNORE INTO week_counts (week_end, counts) VALUES (?, ?)",
            (week_end, json.dumps(counts, ensure_ascii=False, separators=(",", ":"))),
        )

    async def ledger_matters(self, start: float, end: float) -> list[Matter]:
        """Every matter that existed at some point in [start, end), by number: the ledger."""
        rows = await self._all(
            f"{_MATTER_SELECT} WHERE created_at < ? AND (closed_at IS NULL OR closed_at >= ?) ORDER BY id",
            (end, start),
        )
        return [_matter(r) for r in rows]

    async def ledger_events(self, matter_ids: list[int]) -> dict[int, list[Event]]:
        """The timelines of a ledger's matters, by matter, each in order; a query per
        IDS_PER_QUERY matters."""
        out: dict[int, list[Event]] = {}
        for start in range(0, len(matter_ids), IDS_PER_QUERY):
            chunk = matter_ids[start : start + IDS_PER_QUERY]
            rows = await self._all(
                "SELECT matter_id, at, actor_id, actor_name, kind, tier, detail FROM events INDEXED BY events_matter "
                f"WHERE matter_id IN ({', '.join('?' for _ in chunk)}) ORDER BY matter_id, id",
                chunk,
            )
            for r in rows:
                out.setdefault(r[0], []).append(Event(*r))
        return out

    async def save_published(self, schedule: str, start: float, end: float, figures: str, now: float) -> None:
        """A bulletin's figures as published (JSON), once per schedule and period."""
        await self._conn.execute(
            "INSERT OR IGNORE INTO published_figures (schedule, period_start, period_end, figures, published_at) "
            "VALUES (?, ?, ?, ?, ?)",
            (schedule, start, end, figures, now),
        )

    async def published(self, schedule: str, start: float, end: float) -> str | None:
        """The figures a bulletin of [start, end) published, if one did."""
        row = await self._one(
            "SELECT figures FROM published_figures WHERE schedule = ? AND period_start = ? AND period_end = ?",
            (schedule, start, end),
        )
        return None if row is None else str(row[0])

    # --- broadcasts (/broadcast) ---------------------------------------------------
    async def insert_broadcast(
        self,
        node_id: str,
        chat_id: int,
        message_id: int | None,
        sender_id: int,
        sender_name: str,
        text: str,
        photo: str | None,
        language: str,
        targets: int,
        now: float,
    ) -> int:
        cur = await self._conn.execute(
            "INSERT INTO broadcasts (node_id, chat_id, message_id, sender_id, sender_name, text, photo, "
            "language, targets, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (node_id, chat_id, message_id, sender_id, sender_name, text, photo, language, targets, now),
        )
        return cur.lastrowid  # type: ignore[return-value]

    async def add_broadcast_target(self, broadcast_id: int, unit_id: str, chat_id: int, outbox_key: str) -> None:
        await self._conn.execute(
            "INSERT INTO broadcast_targets (broadcast_id, unit_id, chat_id, outbox_key) VALUES (?, ?, ?, ?)",
            (broadcast_id, unit_id, chat_id, outbox_key),
        )

    async def broadcast(self, broadcast_id: int) -> Broadcast | None:
        row = await self._one(
            "SELECT id, node_id, chat_id, message_id, sender_id, sender_name, text, photo, language, targets, "
            "created_at, reported_at FROM broadcasts WHERE id = ?",
            (broadcast_id,),
        )
        return Broadcast(*row) if row else None

    async def broadcast_pending(self, broadcast_id: int) -> bool:
        """Whether some target of the broadcast has not been tried to the end yet."""
        row = await self._one(
            "SELECT 1 FROM broadcast_targets t JOIN outbox o ON o.key = t.outbox_key "
            "WHERE t.broadcast_id = ? AND o.state = 'pending' LIMIT 1",
            (broadcast_id,),
        )
        return row is not None

    async def broadcast_outcomes(self, broadcast_id: int) -> list[BroadcastOutcome]:
        """Every target with its outbox state; a target with no outbox row counts as failed."""
        rows = await self._all(
            "SELECT t.unit_id, t.chat_id, coalesce(o.state, 'failed') FROM broadcast_targets t "
            "LEFT JOIN outbox o ON o.key = t.outbox_key WHERE t.broadcast_id = ? ORDER BY t.rowid",
            (broadcast_id,),
        )
        return [BroadcastOutcome(*r) for r in rows]

    async def unreported_broadcasts_to(self, chat_id: int) -> list[int]:
        """Broadcasts still waiting for their report that have a target in this chat."""
        rows = await self._all(
            "SELECT DISTINCT t.broadcast_id FROM broadcast_targets t JOIN broadcasts b ON b.id = t.broadcast_id "
            "WHERE t.chat_id = ? AND b.reported_at IS NULL ORDER BY t.broadcast_id",
            (chat_id,),
        )
        return [r[0] for r in rows]

    async def mark_broadcast_reported(self, broadcast_id: int, now: float) -> bool:
        """Returns True only the first time."""
        cur = await self._conn.execute(
            "UPDATE broadcasts SET reported_at = ? WHERE id = ? AND reported_at IS NULL", (now, broadcast_id)
        )
        return cur.rowcount == 1

    # --- command menus: what was last set, so a restart does not set 2,000 menus again --
    async def meta_values(self, prefix: str) -> dict[str, str]:
        rows = await self._all(
            "SELECT key, value FROM meta WHERE key >= ? AND key < ?", (prefix, prefix + "\U0010ffff")
        )
        return {key: value for key, value in rows}

    async def set_meta(self, key: str, value: str) -> None:
        await self._conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    async def delete_meta(self, prefix: str) -> None:
        await self._conn.execute("DELETE FROM meta WHERE key >= ? AND key < ?", (prefix, prefix + "\U0010ffff"))

    # --- tierbot status (issue 11) ------------------------------------------------
    async def schema_version(self) -> int:
        (version,) = await self._one("PRAGMA user_version")
        return int(version)

    async def open_by_tier(self) -> dict[int, int]:
        """Matters not closed, per tier they stand at."""
        rows = await self._all("SELECT tier, count(*) FROM matters WHERE state IN ('open', 'claimed') GROUP BY tier")
        return {int(tier): int(n) for tier, n in rows}

    async def running_matters(self) -> list[Matter]:
        """Matters whose clocks run (open or claimed, not suspended): those that can be overdue."""
        rows = await self._all(f"{_MATTER_SELECT} WHERE state IN ('open', 'claimed') AND suspended_until IS NULL")
        return [_matter(r) for r in rows]

    async def outbox_backlog(self) -> tuple[int, float | None, str | None]:
        """Messages waiting to be sent: how many, and the oldest one's queuing time and key."""
        (count,) = await self._one("SELECT count(*) FROM outbox WHERE state = 'pending'")
        oldest = await self._one(
            "SELECT created_at, key FROM outbox INDEXED BY outbox_pending WHERE state = 'pending' "
            "ORDER BY created_at, id LIMIT 1"
        )
        return int(count), (oldest[0] if oldest else None), (oldest[1] if oldest else None)

    async def meta_value(self, key: str) -> str | None:
        row = await self._one("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else str(row[0])


LAST_SWEEP = "last_sweep"  # meta: when the sweep last ran to its end (unix seconds), for `tierbot status`


def _file_uri(path: Path, read_only: bool) -> str:
    return path.resolve().as_uri() + ("?mode=ro" if read_only else "")


@asynccontextmanager
async def read_only(path: str | Path) -> AsyncIterator[Tx]:
    """A read-only connection to a database a running bot may be writing (`tierbot status`):
    one snapshot for every query (WAL: the bot is never blocked), no migration, no lock."""
    conn = await aiosqlite.connect(_file_uri(Path(path), read_only=True), uri=True, isolation_level=None)
    try:
        await conn.execute("PRAGMA busy_timeout=5000")
        await conn.execute("BEGIN")
        yield Tx(conn)
    finally:
        await conn.close()


# --- backup and restore (issue 11): plain sqlite3, as they run from the command line -----
class BadCopy(Exception):
    """A file that is not a sound tierbot database this code can open; nothing was changed."""


def check_copy(path: Path) -> int:
    """Integrity check and schema version of a database file; its version, or BadCopy."""
    try:
        conn = sqlite3.connect(_file_uri(path, read_only=True), uri=True)
        try:
            problems = [row[0] for row in conn.execute("PRAGMA integrity_check")]
            (version,) = conn.execute("PRAGMA user_version").fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise BadCopy(f"{path}: not a readable SQLite database ({exc})") from exc
    if problems != ["ok"]:
        raise BadCopy(f"{path}: integrity check failed: {'; '.join(problems[:5])}")
    if version < 1:
        raise BadCopy(f"{path}: not a tierbot database (schema version 0)")
    if version > SCHEMA_VERSION:
        raise BadCopy(f"{path}: made by a newer tierbot (schema {version}, this one knows {SCHEMA_VERSION})")
    return int(version)


def copy_database(source: Path, out: Path) -> None:
    """A consistent copy of ``source`` at ``out``, readable by its owner only (0600), taken
    with SQLite's online backup API: all pages in one step, so in one read snapshot; in WAL
    mode a running bot goes on writing meanwhile. Written beside ``out`` and renamed, so
    ``out`` is never half a copy."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, part = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)  # mode 0600
    os.close(fd)
    try:
        src = sqlite3.connect(_file_uri(source, read_only=True), uri=True)
        try:
            src.execute("PRAGMA busy_timeout=5000")
            dst = sqlite3.connect(part)
            try:
                src.backup(dst)
                dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
            finally:
                dst.close()
        finally:
            src.close()
        os.replace(part, out)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(part)
        raise
    folder = os.open(out.parent, os.O_RDONLY)
    try:  # the rename itself survives a power cut
        os.fsync(folder)
    finally:
        os.close(folder)


def database_files(path: Path) -> list[Path]:
    """The database and the files SQLite keeps beside it."""
    return [path, *(path.with_name(path.name + suffix) for suffix in ("-wal", "-shm", "-journal"))]
