"""All SQL lives here: the schema and its migrations, and named queries.

One aiosqlite connection, guarded by a lock so that the handlers, the sweep and the
delivery worker never interleave inside one transaction. Rows become small dataclasses at
this boundary. Times are unix seconds (UTC).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import aiosqlite

from escalation.policy import Clock, Rules, State

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
        rated_at REAL
    );
    CREATE INDEX matters_due ON matters(next_due) WHERE next_due IS NOT NULL;
    CREATE INDEX matters_unit_state ON matters(unit_id, state);
    CREATE INDEX matters_created ON matters(created_at);
    CREATE INDEX matters_open_or_resolved ON matters(resolved_at);

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
        unreachable_at REAL
    );

    CREATE TABLE prompts (
        chat_id INTEGER NOT NULL,
        user_id INTEGER NOT NULL,
        asked_at REAL NOT NULL,
        PRIMARY KEY (chat_id, user_id)
    );

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

    @property
    def clock(self) -> Clock:
        return Clock(State(self.state), self.tier, self.tier_since, self.last_ping_at)

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
    kind: str  # "message" (text as stored) or "card" (a matter's card, sent or edited)
    matter_id: int | None
    text: str | None
    markup: str | None
    reply_to: int | None
    attempts: int


@dataclass
class Outgoing:
    """A message to queue (see ``Tx.enqueue``), for queueing several in one go."""

    key: str
    chat_id: int
    now: float
    kind: str = "message"
    matter_id: int | None = None
    text: str | None = None
    markup: list[list[tuple[str, str]]] | None = None
    reply_to: int | None = None

    def row(self) -> tuple[Any, ...]:
        markup = json.dumps(self.markup, ensure_ascii=False) if self.markup else None
        return (self.key, self.chat_id, self.kind, self.matter_id, self.text, markup, self.reply_to,
                self.now, self.now)


@dataclass
class SummaryFacts:
    """One matter as the weekly summary sees it."""

    unit_id: str
    created_at: float
    first_claimed_at: float | None
    resolved_at: float | None
    escalated_at: float | None


_MATTER_COLUMNS = [f.name for f in fields(Matter)]
_MATTER_SELECT = "SELECT " + ", ".join(_MATTER_COLUMNS) + " FROM matters"


def _matter(row: Sequence[Any]) -> Matter:
    matter = Matter(*row)
    matter.state = State(matter.state)
    matter.urgent = bool(matter.urgent)
    matter.private = bool(matter.private)
    return matter


class Store:
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self._lock = asyncio.Lock()
        self.on_enqueue: Callable[[], None] | None = None  # told after a commit that queued messages

    @classmethod
    async def open(cls, path: str | Path) -> Store:
        path = Path(path)
        if str(path) != ":memory:":
            path.parent.mkdir(parents=True, exist_ok=True)
        conn = await aiosqlite.connect(path, isolation_level=None)
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA synchronous=NORMAL",
            "PRAGMA foreign_keys=ON",
            "PRAGMA busy_timeout=5000",
        ):
            await conn.execute(pragma)
        store = cls(conn)
        await store._migrate()
        return store

    async def close(self) -> None:
        async with self._lock:
            await self._conn.close()

    async def _migrate(self) -> None:
        async with self._conn.execute("PRAGMA user_version") as cur:
            (version,) = await cur.fetchone()  # type: ignore[misc]
        if version > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"the database is at schema version {version}, but this tierbot knows only "
                f"up to {SCHEMA_VERSION}; upgrade tierbot or use another database file"
            )
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
            await self._conn.execute("BEGIN IMMEDIATE")
            tx = Tx(self._conn)
            try:
                yield tx
            except BaseException:
                await self._conn.execute("ROLLBACK")
                raise
            await self._conn.execute("COMMIT")
        if tx.enqueued and self.on_enqueue is not None:
            self.on_enqueue()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[Tx]:
        """Queries only; holds the lock so reads never see half a transaction."""
        async with self._lock:
            yield Tx(self._conn)


_ENQUEUE = (
    "INSERT OR IGNORE INTO outbox (key, chat_id, kind, matter_id, text, markup, reply_to, not_before, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _statements(script: str) -> Iterable[str]:
    return (s.strip() for s in script.split(";") if s.strip())


class Tx:
    """Named queries, used inside Store.transaction() or Store.read()."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self.enqueued = False

    # One trip to aiosqlite's thread per query: a cursor would take three (execute, fetch,
    # close), and the trips, not SQLite, are most of what a query costs here.
    async def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = await self._conn.execute_fetchall(sql, params)
        return next(iter(rows), None)

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(await self._conn.execute_fetchall(sql, params))

    # --- matters -----------------------------------------------------------------
    async def insert_matter(self, **values: Any) -> int:
        columns = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        cur = await self._conn.execute(
            f"INSERT INTO matters ({columns}) VALUES ({marks})", tuple(values.values())
        )
        return cur.lastrowid  # type: ignore[return-value]

    async def matter(self, matter_id: int) -> Matter | None:
        row = await self._one(f"{_MATTER_SELECT} WHERE id = ?", (matter_id,))
        return _matter(row) if row else None

    async def card_matters(self, matter_ids: Sequence[int]) -> dict[int, tuple[Matter, int]]:
        """Matters with their number of attachments (what their cards show), by id, in one query."""
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

    async def update_matters(self, changes: Sequence[tuple[int, dict[str, Any]]]) -> None:
        """Several matters' changes, in one trip per set of columns changed."""
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
            f"{_MATTER_SELECT} WHERE unit_id IN ({marks}) AND state != 'resolved' ORDER BY id",
            tuple(unit_ids),
        )
        return [_matter(r) for r in rows]

    async def matter_by_report(self, chat_id: int, message_id: int) -> Matter | None:
        row = await self._one(
            f"{_MATTER_SELECT} WHERE chat_id = ? AND report_message_id = ?", (chat_id, message_id)
        )
        return _matter(row) if row else None

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

    async def add_events(self, events: Sequence[Event]) -> list[int]:
        """Several events in two trips; returns their ids, in order. The ids are chosen
        here, not by SQLite, so that they are known without a trip per event; the write
        transaction the caller holds keeps them free."""
        (last,) = await self._one("SELECT coalesce(max(id), 0) FROM events")
        ids = list(range(last + 1, last + 1 + len(events)))
        await self._conn.executemany(
            "INSERT INTO events (id, matter_id, at, actor_id, actor_name, kind, tier, detail) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (i, e.matter_id, e.at, e.actor_id, e.actor_name, e.kind, e.tier, e.detail)
                for i, e in zip(ids, events, strict=True)
            ],
        )
        return ids

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
        await self._conn.execute(
            "INSERT INTO attachments (matter_id, kind, file_id, added_by, at) VALUES (?, ?, ?, ?, ?)",
            (matter_id, kind, file_id, added_by, at),
        )

    async def attachment_count(self, matter_id: int) -> int:
        (count,) = await self._one("SELECT count(*) FROM attachments WHERE matter_id = ?", (matter_id,))
        return int(count)

    # --- outbox ------------------------------------------------------------------
    async def enqueue(
        self,
        key: str,
        chat_id: int,
        now: float,
        *,
        kind: str = "message",
        matter_id: int | None = None,
        text: str | None = None,
        markup: list[list[tuple[str, str]]] | None = None,
        reply_to: int | None = None,
    ) -> bool:
        """Queue a notification; a key already queued is ignored (so retries never
        queue twice). Returns whether it was new."""
        item = Outgoing(key, chat_id, now, kind, matter_id, text, markup, reply_to)
        cur = await self._conn.execute(_ENQUEUE, item.row())
        self.enqueued = self.enqueued or cur.rowcount == 1
        return cur.rowcount == 1

    async def enqueue_many(self, items: Sequence[Outgoing]) -> int:
        """Queue several notifications in one trip, as ``enqueue`` would; returns how many were new."""
        if not items:
            return 0
        cur = await self._conn.executemany(_ENQUEUE, [item.row() for item in items])
        self.enqueued = self.enqueued or cur.rowcount > 0
        return cur.rowcount

    async def outbox_due(self, now: float, limit: int = 50) -> list[OutboxItem]:
        rows = await self._all(
            "SELECT id, key, chat_id, kind, matter_id, text, markup, reply_to, attempts "
            "FROM outbox WHERE state = 'pending' AND not_before <= ? ORDER BY id LIMIT ?",
            (now, limit),
        )
        return [OutboxItem(*r) for r in rows]

    async def outbox_next_time(self) -> float | None:
        (at,) = await self._one("SELECT min(not_before) FROM outbox WHERE state = 'pending'")
        return at

    async def outbox_done(self, item_id: int, now: float, message_id: int | None) -> None:
        await self._conn.execute(
            "UPDATE outbox SET state = 'sent', sent_at = ?, message_id = ? WHERE id = ?",
            (now, message_id, item_id),
        )

    async def outbox_done_many(self, done: Sequence[tuple[int, float, int | None]]) -> None:
        """(item id, sent at, message id) for several items, in one trip."""
        await self._conn.executemany(
            "UPDATE outbox SET state = 'sent', sent_at = ?, message_id = ? WHERE id = ?",
            [(now, message_id, item_id) for item_id, now, message_id in done],
        )

    async def outbox_retry(self, item_id: int, not_before: float, error: str) -> None:
        await self._conn.execute(
            "UPDATE outbox SET attempts = attempts + 1, not_before = ?, error = ? WHERE id = ?",
            (not_before, error, item_id),
        )

    async def outbox_failed(self, item_id: int, error: str) -> None:
        await self._conn.execute(
            "UPDATE outbox SET state = 'failed', attempts = attempts + 1, error = ? WHERE id = ?",
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

    async def bindings(self) -> dict[int, str]:
        rows = await self._all("SELECT chat_id, node_id FROM chats WHERE node_id IS NOT NULL")
        return {chat_id: node_id for chat_id, node_id in rows}

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
    async def set_prompt(self, chat_id: int, user_id: int, now: float) -> None:
        await self._conn.execute(
            "INSERT OR REPLACE INTO prompts (chat_id, user_id, asked_at) VALUES (?, ?, ?)",
            (chat_id, user_id, now),
        )

    async def take_prompt(self, chat_id: int, user_id: int, since: float) -> bool:
        """Consume a pending prompt asked after ``since``."""
        cur = await self._conn.execute(
            "DELETE FROM prompts WHERE chat_id = ? AND user_id = ? AND asked_at >= ?",
            (chat_id, user_id, since),
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

    # --- summaries ---------------------------------------------------------------
    async def summary_facts(self, start: float, end: float) -> list[SummaryFacts]:
        """Matters that existed at some point in [start, end): created before the end
        and not resolved before the start."""
        rows = await self._all(
            "SELECT unit_id, created_at, first_claimed_at, resolved_at, escalated_at "
            "FROM matters WHERE created_at < ? AND (resolved_at IS NULL OR resolved_at >= ?)",
            (end, start),
        )
        return [SummaryFacts(*r) for r in rows]

    async def escalated_between(self, start: float, end: float) -> dict[str, int]:
        """Per unit, how many matters were escalated in [start, end)."""
        rows = await self._all(
            "SELECT m.unit_id, count(DISTINCT e.matter_id) FROM events e "
            "JOIN matters m ON m.id = e.matter_id "
            "WHERE e.kind = 'escalated' AND e.at >= ? AND e.at < ? GROUP BY m.unit_id",
            (start, end),
        )
        return {unit_id: count for unit_id, count in rows}
