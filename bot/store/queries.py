"""Named queries: ``Tx``, used inside Store.transaction() or Store.read(). All SQL is here
and in the schema."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import aiosqlite

from bot import limits
from bot.outbox import LIVE, Card, HeldNotice, Kind
from bot.store.dialect import sqlite_form, sqlite_query
from bot.store.rows import (
    FINDING_COLUMNS,
    HELD_COLUMNS,
    MATTER_COLUMNS,
    MATTER_SELECT,
    SCREENING_COLUMNS,
    VILLAGE_NOTICE_COLUMNS,
    VISIT_COLUMNS,
    Broadcast,
    BroadcastOutcome,
    DutyOverride,
    Event,
    FindingRow,
    HeldPing,
    HeldReport,
    Matter,
    OutboxItem,
    Prompt,
    Purged,
    QueuedReport,
    SafetyCount,
    SafetyPollDue,
    ScreeningRow,
    Sent,
    TimelineRow,
    View,
    VillageNoticeRow,
    Visit,
    held_from_row,
    matter_from_row,
    visit_from_row,
)
from bot.store.schema import IDS_PER_QUERY, MAX_TRIES, OWN_WORDS_EVENTS, PURGED, ROWS_PER_INSERT, TIMELINE_KINDS

if TYPE_CHECKING:
    from bot.store.workers import Fence


class Tx:
    """Named queries, used inside Store.transaction() or Store.read()."""

    def __init__(self, conn: aiosqlite.Connection | SqliteSpelling, bot_id: int | None = None) -> None:
        # SQLite reads the canonical spelling through SqliteSpelling; PostgreSQL's connection
        # (bot/store/postgres.py) reads it as it is.
        self._conn = SqliteSpelling(conn) if isinstance(conn, aiosqlite.Connection) else conn
        # The inbox's bot (issue 18: update ids are per bot); None in a look from outside (tierbot
        # status, inbox), which reads every bot's updates.
        self.bot_id = bot_id
        # Where the engines differ (row locks, planner hints, JSON) a query branches on this.
        self.postgres = getattr(conn, "engine", "sqlite") == "postgres"
        self.enqueued = False
        # In-memory copies this transaction changed ("bindings", "languages"): other workers
        # reload them once it commits (bot/store/workers.py).
        self.changed: set[str] = set()
        # The sender's lease (several workers, bot/store/workers.py): checked where messages are marked sent.
        self.fence: Fence | None = None
        self.logged: list[tuple[str, dict[str, Any]]] = []  # events to log once committed

    async def _fenced(self) -> None:
        """Several workers: only the sender's lease holder settles outbox items (LeaseLost else)."""
        if self.fence is not None:
            await self.fence.check(self._conn)

    def log_event(self, name: str, **fields: Any) -> None:
        """An event for the operator's log (see bot/logs.py), written after the commit."""
        self.logged.append((name, fields))

    # --- where the engines differ: one small branch each -------------------------
    def _indexed_by(self, index: str) -> str:
        """SQLite's planner hint, where its planner would pick a worse index; PostgreSQL has
        no hints (and its statistics choose these indexes by themselves)."""
        return "" if self.postgres else f" INDEXED BY {index}"

    def _json_matters(self, column: str, alias: str) -> str:
        """A FROM item: each matter id in a JSON column's "matters" array (bot/outbox.py), as
        ``alias.value``; nothing where it holds no array."""
        if self.postgres:
            array = f"({column})::jsonb -> 'matters'"
            return (f"LATERAL (SELECT e::bigint AS value FROM jsonb_array_elements_text(CASE WHEN "
                    f"jsonb_typeof({array}) = 'array' THEN {array} ELSE '[]' END) e) {alias}")
        return f"json_each({column}, '$.matters') {alias}"

    def _json_is_array(self, column: str, key: str) -> str:
        """Whether a JSON column's ``key`` holds an array (both call it 'array'; their other names differ)."""
        if self.postgres:
            return f"jsonb_typeof(({column})::jsonb -> '{key}') = 'array'"
        return f"json_type({column}, '$.{key}') = 'array'"

    def _json_text(self, column: str, key: str) -> str:
        """A JSON column's text value at ``key``."""
        return f"(({column})::jsonb ->> '{key}')" if self.postgres else f"json_extract({column}, '$.{key}')"

    # One trip to aiosqlite's thread per query: a cursor would take three (execute, fetch,
    # close), and the trips, not SQLite, are most of what a query costs here.
    async def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = await self._conn.execute_fetchall(sql, params)
        return next(iter(rows), None)

    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return list(await self._conn.execute_fetchall(sql, params))

    # --- matters -----------------------------------------------------------------
    async def matter(self, matter_id: int) -> Matter | None:
        row = await self._one(f"{MATTER_SELECT} WHERE id = $1", (matter_id,))
        return matter_from_row(row) if row else None

    async def matter_for_update(self, matter_id: int) -> Matter | None:
        """The matter, its row locked until the commit (PostgreSQL): a state change reads it
        first, so that another worker's change or sweep waits for this one, then sees it
        (SQLite's one writer already does that)."""
        lock = " FOR UPDATE" if self.postgres else ""
        row = await self._one(f"{MATTER_SELECT} WHERE id = $1{lock}", (matter_id,))
        return matter_from_row(row) if row else None

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
                "INSERT INTO attachments (matter_id, kind, file_id, added_by, at) VALUES ($1, 'photo', $2, $3, $4)",
                [(i, r.photo_file_id, r.matter["reporter_id"], r.matter["created_at"]) for i, r in photos],
            )
        if answers := [r for r in reports if r.prompt_chat is not None]:
            await self._conn.executemany(
                "DELETE FROM prompts WHERE chat_id = $1 AND user_id = $2",
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
            width = len(columns)
            rows_sql = ", ".join(
                "(" + ", ".join(f"${r * width + c + 1}" for c in range(width)) + ")" for r in range(len(chunk)))
            returned = await self._all(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES {rows_sql} RETURNING id",
                [row[c] for row in chunk for c in columns],
            )
            # New rowids are handed out in insertion order; RETURNING's own order is unspecified.
            ids.extend(sorted(r[0] for r in returned))
        return ids

    async def cards_of(self, matter_ids: list[int]) -> dict[int, tuple[Matter, int]]:
        """Matters and how many attachments each has (what their cards show), in one query."""
        if not matter_ids:
            return {}
        rows = await self._all(
            f"SELECT {', '.join(MATTER_COLUMNS)}, "
            "(SELECT count(*) FROM attachments WHERE attachments.matter_id = matters.id) "
            "FROM matters WHERE id = ANY($1)",
            (list(matter_ids),),
        )
        return {row[0]: (matter_from_row(row[:-1]), int(row[-1])) for row in rows}

    async def update_matter(self, matter_id: int, **values: Any) -> None:
        assignments = ", ".join(f"{column} = ${n}" for n, column in enumerate(values, start=1))
        await self._conn.execute(
            f"UPDATE matters SET {assignments} WHERE id = ${len(values) + 1}", (*values.values(), matter_id)
        )

    async def update_matters(self, changes: list[tuple[int, dict[str, Any]]]) -> None:
        """Many matters' changes in as few trips as there are kinds of change (the sweep)."""
        groups: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
        for matter_id, values in changes:
            groups.setdefault(tuple(values), []).append((*values.values(), matter_id))
        for columns, rows in groups.items():
            assignments = ", ".join(f"{column} = ${n}" for n, column in enumerate(columns, start=1))
            await self._conn.executemany(f"UPDATE matters SET {assignments} WHERE id = ${len(columns) + 1}", rows)

    async def due_matters(self, now: float, limit: int = 500) -> list[Matter]:
        """What is due, oldest first. On PostgreSQL the rows are locked until the commit and
        those another worker's sweep or state change holds are passed over: several workers
        sweep side by side, each matter stepped by one of them (escalation/sweep.py)."""
        lock = " FOR UPDATE SKIP LOCKED" if self.postgres else ""
        rows = await self._all(
            f"{MATTER_SELECT} WHERE next_due IS NOT NULL AND next_due <= $1 "
            f"ORDER BY next_due LIMIT $2{lock}",
            (now, limit),
        )
        return [matter_from_row(r) for r in rows]

    async def open_matters(self, unit_ids: Sequence[str]) -> list[Matter]:
        rows = await self._all(
            f"{MATTER_SELECT} WHERE unit_id = ANY($1) AND state IN ('open', 'claimed') ORDER BY id",
            (list(unit_ids),),
        )
        return [matter_from_row(r) for r in rows]

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
        """One timeline row; a rating is also kept in ``ratings`` with its matter's unit, as
        an index the figures count from (schema migration 19)."""
        (event_id,) = await self._one(
            "INSERT INTO events (matter_id, at, actor_id, actor_name, kind, tier, detail) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            (matter_id, at, actor_id, actor_name, kind, tier, detail),
        )
        if kind == "rated":
            await self._conn.execute(
                "INSERT INTO ratings (at, event_id, matter_id, unit_id, label) "
                "SELECT $1, $2, id, unit_id, $3 FROM matters WHERE id = $4",
                (at, event_id, detail, matter_id),
            )
        return int(event_id)

    async def add_events(self, events: list[Event]) -> None:
        """Many timeline rows in one trip (the sweep's; it needs no ids back, and gives no
        ratings: add_event keeps those)."""
        if any(e.kind == "rated" for e in events):
            raise ValueError("a rating is written with add_event, which keeps it in ratings too")
        await self._conn.executemany(
            "INSERT INTO events (matter_id, at, actor_id, actor_name, kind, tier, detail) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7)",
            [(e.matter_id, e.at, e.actor_id, e.actor_name, e.kind, e.tier, e.detail) for e in events],
        )

    async def events(self, matter_id: int) -> list[Event]:
        rows = await self._all(
            "SELECT matter_id, at, actor_id, actor_name, kind, tier, detail FROM events "
            "WHERE matter_id = $1 ORDER BY id",
            (matter_id,),
        )
        return [Event(*r) for r in rows]

    async def add_attachment(
        self, matter_id: int, kind: str, file_id: str, added_by: int, at: float
    ) -> None:
        """A photo, voice note (Telegram file ids) or location ("lat,lon") on a matter."""
        await self._conn.execute(
            "INSERT INTO attachments (matter_id, kind, file_id, added_by, at) VALUES ($1, $2, $3, $4, $5)",
            (matter_id, kind, file_id, added_by, at),
        )

    async def outbox_insert(self, rows: list[tuple]) -> None:
        """Outbox rows (bot/outbox.py's ``Row``: only ``outbox.put`` writes them) in one
        trip; keys already queued are ignored, so retries never queue twice."""
        if rows:
            cur = await self._conn.executemany(
                "INSERT INTO outbox (key, chat_id, kind, matter_id, text, markup, "
                "reply_to, media, data, not_before, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) "
                "ON CONFLICT DO NOTHING",
                rows,
            )
            self.enqueued = self.enqueued or cur.rowcount > 0

    async def attachments_of(self, matter_ids: list[int]) -> dict[int, list[tuple[str, str]]]:
        """What is attached to each of these matters, in one query."""
        if not matter_ids:
            return {}
        rows = await self._all(
            "SELECT matter_id, kind, file_id FROM attachments WHERE matter_id = ANY($1) ORDER BY id",
            (list(matter_ids),),
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
        prefixes = [bulk_prefix] if isinstance(bulk_prefix, str) else list(bulk_prefix or ())
        # Each prefix's length and text, numbered after now, limit and the chats skipped.
        bulk = " OR ".join(f"substr(key, 1, ${4 + 2 * i}) = ${5 + 2 * i}" for i in range(len(prefixes)))
        rows = await self._all(
            "SELECT id, key, chat_id, kind, matter_id, text, markup, reply_to, attempts, media, data "
            "FROM outbox WHERE state = 'pending' AND not_before <= $1 AND NOT (chat_id = ANY($3)) "
            f"ORDER BY {f'({bulk}), ' if bulk else ''}id LIMIT $2",
            (now, limit, list(skip_chats), *(x for p in prefixes for x in (len(p), p))),
        )
        return [OutboxItem(*r) for r in rows]

    async def outbox_retry_now(self, now: float) -> None:
        """At start: whatever was waiting for a retry is tried again at once."""
        await self._conn.execute(
            "UPDATE outbox SET not_before = $1 WHERE state = 'pending' AND not_before > $2", (now, now)
        )

    async def outbox_sent(self, sent: list[Sent]) -> None:
        """Items Telegram accepted, and the places of the new cards among them; refused
        (LeaseLost) to a sender whose lease another worker has taken since."""
        # Several workers: the lease is a condition of the UPDATE (no trip of its own), asked
        # about only when rows were left unmarked.
        guard, lease = (self.fence.guard, self.fence.params) if self.fence is not None else ("", ())
        # A file made for the asker (a ledger, with names in it) is not kept once it is sent.
        marked = await self._conn.executemany(
            "UPDATE outbox SET state = 'sent', sent_at = $1, message_id = $2, "
            f"media = CASE WHEN kind = 'document' THEN NULL ELSE media END WHERE id = $3{guard}",
            [(s.at, s.message_id, s.item_id, *lease) for s in sent],
        )
        if self.fence is not None and marked.rowcount < len(sent):
            await self._fenced()
        if cards := [s for s in sent if s.card is not None]:
            await self._conn.executemany(
                "UPDATE matters SET card_chat_id = $1, card_message_id = $2 WHERE id = $3",
                [(chat, message, matter) for matter, chat, message in (s.card for s in cards if s.card)],
            )
        await self._record_views([s.item_id for s in sent if s.view])

    async def _record_views(self, item_ids: list[int]) -> None:
        """The messages among these that follow their matters (bot/outbox.py's LIVE kinds,
        composed from data, or a private matter's card copy) become views: their message
        ids, what they were composed from, and the matters they name (the row's own and
        its data's ``matters``)."""
        if not item_ids:
            return
        recorded = await self._all(
            "INSERT INTO views (key, chat_id, message_id, kind, data, created_at) "
            "SELECT key, chat_id, message_id, kind, data, sent_at FROM outbox "
            "WHERE id = ANY($1) AND message_id IS NOT NULL AND kind = ANY($2) "
            "AND (data IS NOT NULL OR kind = $3) ON CONFLICT DO NOTHING RETURNING key",
            (list(item_ids), sorted(LIVE), Kind.CARD_COPY.value),
        )
        if not recorded:
            return
        keys = [r[0] for r in recorded]
        await self._conn.execute(
            "INSERT INTO view_matters (matter_id, view_key) "
            "SELECT matter_id, key FROM outbox WHERE key = ANY($1) AND matter_id IS NOT NULL "
            f"UNION SELECT j.value, o.key FROM outbox o, {self._json_matters('o.data', 'j')} "
            f"WHERE o.key = ANY($1) AND o.data IS NOT NULL AND {self._json_is_array('o.data', 'matters')} "
            "ON CONFLICT DO NOTHING",
            (keys,),
        )

    # --- views (issue 14: every message about a matter follows it) -----------------
    async def live_views(self, matter_ids: Sequence[int]) -> list[tuple[str, int]]:
        """(key, chat) of every message about these matters that is to follow them: the
        views recorded and not dead, and the LIVE notices not yet recorded (being sent
        now, or waiting: a change committed meanwhile must not be missed)."""
        if not matter_ids:
            return []
        rows: list[tuple[str, int]] = []
        for start in range(0, len(matter_ids), IDS_PER_QUERY // 2):
            ids = list(matter_ids[start : start + IDS_PER_QUERY // 2])
            rows += await self._all(
                "SELECT v.key, v.chat_id FROM view_matters m JOIN views v ON v.key = m.view_key "
                "WHERE m.matter_id = ANY($1) AND v.dead IS NULL "
                "UNION SELECT o.key, o.chat_id FROM outbox o "
                "WHERE o.state = 'pending' AND o.kind = ANY($2) AND (o.matter_id = ANY($1) "
                f"OR (o.data IS NOT NULL AND {self._json_is_array('o.data', 'matters')} AND EXISTS "
                f"(SELECT 1 FROM {self._json_matters('o.data', 'j')} WHERE j.value = ANY($1))))",
                (ids, sorted(LIVE)),
            )
        return sorted(set(rows))

    async def views(self, keys: Sequence[str]) -> dict[str, View]:
        """The views of these keys, with the matters each names."""
        if not keys:
            return {}
        # A row per view and matter it names, gathered here: one query, and no aggregate to spell
        # twice (group_concat; string_agg only from SQLite 3.44).
        rows = await self._all(
            "SELECT v.key, v.chat_id, v.message_id, v.kind, v.data, v.dead, m.matter_id "
            "FROM views v LEFT JOIN view_matters m ON m.view_key = v.key WHERE v.key = ANY($1)",
            (list(keys),),
        )
        found: dict[str, tuple[Any, ...]] = {}
        named: dict[str, list[int]] = {}
        for key, chat, message, kind, data, dead, matter in rows:
            found.setdefault(key, (chat, message, kind, data, dead))
            if matter is not None:
                named.setdefault(key, []).append(int(matter))
        return {key: View(key, chat, message, kind, data, tuple(sorted(named.get(key, ()))), dead)
                for key, (chat, message, kind, data, dead) in found.items()}

    async def waiting_refreshes(self, keys: Sequence[str]) -> dict[str, list[int]]:
        """The refreshes of these views still waiting (due or not), by view: one edit will do for all."""
        if not keys:
            return {}
        view = self._json_text("data", "view")
        rows = await self._all(
            f"SELECT id, {view} FROM outbox WHERE state = 'pending' AND kind = $1 AND {view} = ANY($2)",
            (Kind.VIEW.value, list(keys)),
        )
        out: dict[str, list[int]] = {}
        for item_id, key in rows:
            out.setdefault(key, []).append(item_id)
        return out

    async def outbox_done(self, item_ids: Sequence[int], now: float, why: str) -> None:
        """Items that need no sending: a view's refresh another one covers, or one whose
        view is gone."""
        if item_ids:
            await self._fenced()
            await self._conn.execute(
                "UPDATE outbox SET state = 'sent', sent_at = $1, error = $2 WHERE id = ANY($3) AND state = 'pending'",
                (now, why, list(item_ids)),
            )

    async def view_dead(self, key: str, why: str) -> None:
        await self._conn.execute("UPDATE views SET dead = $1 WHERE key = $2 AND dead IS NULL", (why, key))

    async def views_dead_in(self, chat_id: int, why: str) -> None:
        """Every view in a chat the bot can no longer write to (or that moved to a new id)."""
        await self._conn.execute("UPDATE views SET dead = $1 WHERE chat_id = $2 AND dead IS NULL", (why, chat_id))

    async def outbox_retry(self, item_id: int, not_before: float, error: str) -> None:
        await self._conn.execute(
            "UPDATE outbox SET attempts = attempts + 1, not_before = $1, error = $2 WHERE id = $3",
            (not_before, error, item_id),
        )

    async def outbox_failed(self, item_id: int, error: str) -> None:
        await self._fenced()
        await self._conn.execute(
            "UPDATE outbox SET state = 'failed', attempts = attempts + 1, error = $1, "
            "media = CASE WHEN kind = 'document' THEN NULL ELSE media END WHERE id = $2",
            (error, item_id),
        )

    async def fail_pending_for_chat(self, chat_id: int, error: str) -> None:
        await self._fenced()
        await self._conn.execute(
            "UPDATE outbox SET state = 'failed', error = $1 WHERE chat_id = $2 AND state = 'pending'",
            (error, chat_id),
        )

    # --- chats -------------------------------------------------------------------
    async def bind_chat(self, chat_id: int, node_id: str, user_id: int, now: float) -> None:
        self.changed.add("bindings")
        # A node has one chat: binding a new one releases the old.
        await self._conn.execute("UPDATE chats SET node_id = NULL WHERE node_id = $1", (node_id,))
        await self._conn.execute(
            "INSERT INTO chats (chat_id, node_id, bound_by, bound_at) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT(chat_id) DO UPDATE SET node_id = excluded.node_id, "
            "bound_by = excluded.bound_by, bound_at = excluded.bound_at, unreachable_at = NULL",
            (chat_id, node_id, user_id, now),
        )

    async def move_chat(self, old_chat: int, new_chat: int) -> None:
        """A group's new id (it became a supergroup): pending messages, cards and its language follow it."""
        self.changed.update(("bindings", "languages"))
        await self._conn.execute(
            "UPDATE outbox SET chat_id = $1 WHERE chat_id = $2 AND state = 'pending'", (new_chat, old_chat)
        )
        await self._conn.execute("UPDATE matters SET chat_id = $1 WHERE chat_id = $2", (new_chat, old_chat))
        # A report held over a limit becomes a matter there later: its card goes to the new id.
        await self._conn.execute("UPDATE held_reports SET chat_id = $1 WHERE chat_id = $2", (new_chat, old_chat))
        await self._conn.execute(
            "UPDATE matters SET card_chat_id = NULL, card_message_id = NULL WHERE card_chat_id = $1", (old_chat,)
        )
        await self.views_dead_in(old_chat, "migrated")  # the old group's messages cannot be edited
        await self._conn.execute(  # the group's language goes with it
            "INSERT INTO chats (chat_id, language) SELECT $1, language FROM chats "
            "WHERE chat_id = $2 AND language IS NOT NULL "
            "ON CONFLICT(chat_id) DO UPDATE SET language = excluded.language",
            (new_chat, old_chat),
        )
        # ... and leaves the old id, as in memory (bot/text/i18n.py): a worker reloading the
        # languages (issue 18) would otherwise give the dead id its language back.
        await self._conn.execute("UPDATE chats SET language = NULL WHERE chat_id = $1", (old_chat,))

    async def bindings(self) -> dict[int, str]:
        rows = await self._all("SELECT chat_id, node_id FROM chats WHERE node_id IS NOT NULL")
        return {chat_id: node_id for chat_id, node_id in rows}

    async def set_chat_language(self, chat_id: int, language: str) -> None:
        self.changed.add("languages")
        await self._conn.execute(
            "INSERT INTO chats (chat_id, language) VALUES ($1, $2) "
            "ON CONFLICT(chat_id) DO UPDATE SET language = excluded.language",
            (chat_id, language),
        )

    async def chat_languages(self) -> dict[int, str]:
        rows = await self._all("SELECT chat_id, language FROM chats WHERE language IS NOT NULL")
        return {chat_id: language for chat_id, language in rows}

    async def mark_unreachable(self, chat_id: int, now: float) -> bool:
        """Returns True only the first time, so the station is told once."""
        cur = await self._conn.execute(
            "INSERT INTO chats (chat_id, unreachable_at) VALUES ($1, $2) "
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
            "INSERT INTO prompts (chat_id, user_id, asked_at, kind, unit_id, matter_id, draft) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (chat_id, user_id) DO UPDATE SET "
            "asked_at = excluded.asked_at, kind = excluded.kind, unit_id = excluded.unit_id, "
            "matter_id = excluded.matter_id, draft = excluded.draft",
            (chat_id, user_id, now, kind, unit_id, matter_id, draft),
        )

    async def prompt(self, chat_id: int, user_id: int, since: float) -> Prompt | None:
        row = await self._one(
            "SELECT kind, unit_id, matter_id, draft FROM prompts WHERE chat_id = $1 AND user_id = $2 "
            "AND asked_at >= $3",
            (chat_id, user_id, since),
        )
        return Prompt(*row) if row else None

    async def take_prompt(self, chat_id: int, user_id: int, since: float) -> bool:
        """Consume a pending prompt asked after ``since``."""
        cur = await self._conn.execute(
            "DELETE FROM prompts WHERE chat_id = $1 AND user_id = $2 AND asked_at >= $3",
            (chat_id, user_id, since),
        )
        return cur.rowcount == 1

    # --- a person's own matters, and what is attached ----------------------------
    async def matters_of(self, reporter_id: int, limit: int = 20) -> list[Matter]:
        rows = await self._all(
            f"{MATTER_SELECT} WHERE reporter_id = $1 ORDER BY id DESC LIMIT $2", (reporter_id, limit)
        )
        return [matter_from_row(r) for r in rows]

    async def reported_units(self, reporter_id: int) -> list[str]:
        rows = await self._all(
            "SELECT unit_id FROM matters WHERE reporter_id = $1 GROUP BY unit_id ORDER BY max(id) DESC LIMIT 8",
            (reporter_id,),
        )
        return [r[0] for r in rows]

    async def matter_by_message(self, chat_id: int, message_id: int) -> Matter | None:
        """The matter whose card, or whose report, is this message."""
        row = await self._one(
            f"{MATTER_SELECT} WHERE (card_chat_id = $1 AND card_message_id = $2) "
            "OR (chat_id = $3 AND report_message_id = $4)",
            (chat_id, message_id, chat_id, message_id),
        )
        return matter_from_row(row) if row else None

    async def attachments(self, matter_id: int) -> list[tuple[str, str]]:
        """(kind, file id or "lat,lon") of everything attached to a matter, oldest first."""
        return await self._all("SELECT kind, file_id FROM attachments WHERE matter_id = $1 ORDER BY id", (matter_id,))

    # --- abuse limits (issue 10) -------------------------------------------------
    async def report_times(self, key: int, since: float, nonmember: bool = False) -> list[float]:
        """When the reports counting against ``key`` since ``since`` were made (matters
        and reports still held), oldest first; ``nonmember``: only private reports from
        someone Telegram does not show as a member of the unit's group."""
        extra = " AND membership = 'nonmember'" if nonmember else ""
        rows = await self._all(
            f"SELECT created_at FROM matters WHERE limit_key = $1 AND created_at >= $2{extra} "
            f"UNION ALL SELECT created_at FROM held_reports WHERE limit_key = $1 AND created_at >= $2 "
            f"AND matter_id IS NULL{extra} ORDER BY 1",
            (key, since),
        )
        return [r[0] for r in rows]

    async def limit_times(self, keys: Iterable[int], since: float) -> dict[int, list[float]]:
        """When the reports counting against each of ``keys`` since ``since`` were made
        (matters and reports still held), in one query."""
        keys = list(keys)
        rows = await self._all(
            "SELECT limit_key, created_at FROM matters WHERE limit_key = ANY($1) AND created_at >= $2 "
            "UNION ALL SELECT limit_key, created_at FROM held_reports WHERE limit_key = ANY($1) "
            "AND created_at >= $2 AND matter_id IS NULL",
            (keys, since),
        )
        times: dict[int, list[float]] = {}
        for key, at in rows:
            times.setdefault(key, []).append(at)
        return times

    async def hold_queued(self, report: QueuedReport, again: float) -> int:
        """A queued group report over the hourly limit: held, not a matter, and answered
        with a HeldNotice (as its card would have been); a prompt it answers is
        consumed. Returns the held report's id."""
        row = report.matter
        held_id = await self.hold_report({
            "unit_id": row["unit_id"], "chat_id": row["chat_id"], "message_id": report.reply_to,
            "reporter_id": row["reporter_id"], "reporter_name": row["reporter_name"], "limit_key": row["limit_key"],
            "text": row["text"], "photo": report.photo_file_id, "private": row.get("private", 0),
            "membership": row.get("membership"), "reason": limits.HELD_HOURLY, "created_at": row["created_at"],
        })
        assert report.per_hour is not None
        await self.outbox_insert([HeldNotice(
            held_id, row["chat_id"], limits.HELD_HOURLY, row["reporter_id"], row["reporter_name"], report.per_hour,
            again, reply_to=report.reply_to,
        ).row(row["created_at"])])
        if report.prompt_chat is not None:
            await self._conn.execute("DELETE FROM prompts WHERE chat_id = $1 AND user_id = $2",
                                     (report.prompt_chat, row["reporter_id"]))
        return held_id

    async def recent_reports(self, since: float) -> list[tuple[int, float]]:
        """(limit key, when) of every report since ``since``: the limits' memory at start."""
        return await self._all(
            "SELECT limit_key, created_at FROM matters WHERE created_at >= $1 AND limit_key IS NOT NULL "
            "UNION ALL SELECT limit_key, created_at FROM held_reports WHERE created_at >= $2 AND matter_id IS NULL",
            (since, since),
        )

    async def urgent_alerts(self, key: int, since: float) -> int:
        """How many of this person's matters first alerted as urgent since ``since``."""
        (count,) = await self._one(
            "SELECT count(*) FROM matters WHERE limit_key = $1 AND urgent_at >= $2", (key, since)
        )
        return int(count)

    async def hold_report(self, held: dict[str, Any]) -> int:
        columns = list(held)
        (held_id,) = await self._one(
            f"INSERT INTO held_reports ({', '.join(columns)}) "
            f"VALUES ({', '.join(f'${n}' for n in range(1, len(columns) + 1))}) RETURNING id",
            [held[c] for c in columns],
        )
        return int(held_id)

    async def held_report(self, held_id: int) -> HeldReport | None:
        row = await self._one(f"SELECT {', '.join(HELD_COLUMNS)} FROM held_reports WHERE id = $1", (held_id,))
        return held_from_row(row) if row else None

    async def held_reports(self, unit_ids: Sequence[str], limit: int = 20) -> list[HeldReport]:
        """Reports still held for these units, newest first."""
        rows = await self._all(
            f"SELECT {', '.join(HELD_COLUMNS)} FROM held_reports "
            "WHERE matter_id IS NULL AND unit_id = ANY($1) ORDER BY id DESC LIMIT $2",
            (list(unit_ids), limit),
        )
        return [held_from_row(r) for r in rows]

    async def release_held(self, held_id: int, matter_id: int, by: int, now: float) -> bool:
        """Returns True only the first time: one held report becomes one matter."""
        cur = await self._conn.execute(
            "UPDATE held_reports SET matter_id = $1, released_by = $2, released_at = $3 "
            "WHERE id = $4 AND matter_id IS NULL",
            (matter_id, by, now, held_id),
        )
        return cur.rowcount == 1

    # --- schedules ---------------------------------------------------------------
    async def first_started(self, now: float) -> float:
        """When this database first served a bot (set once, at the first start)."""
        await self._conn.execute("INSERT INTO meta (key, value) VALUES ('first_started', $1) "
                                 "ON CONFLICT DO NOTHING", (repr(now),))
        (value,) = await self._one("SELECT value FROM meta WHERE key = 'first_started'")
        return float(value)

    async def schedule_ran(self, name: str, period: str, station: str = "") -> bool:
        """Whether the run of ``name`` for ``period`` went out: for ``station``, or city-wide ('')."""
        row = await self._one(
            "SELECT 1 FROM schedule_runs WHERE name = $1 AND period = $2 AND station = $3", (name, period, station)
        )
        return row is not None

    async def mark_schedule(self, name: str, period: str, now: float, station: str = "") -> bool:
        cur = await self._conn.execute(
            "INSERT INTO schedule_runs (name, period, station, ran_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            (name, period, station, now),
        )
        return cur.rowcount == 1

    async def adopt_town_rows(self, station: str, schedules: Sequence[str]) -> None:
        """A town's rows from before stations (station '') are its one station's (issue 17):
        run at start when the config has exactly one station; a no-op once done."""
        await self._conn.execute(
            "UPDATE schedule_runs SET station = $1 WHERE station = '' AND name = ANY($2)", (station, list(schedules))
        )
        for table in ("week_counts", "published_figures", "duty_overrides"):
            await self._conn.execute(f"UPDATE {table} SET station = $1 WHERE station = ''", (station,))

    # --- quiet hours ---------------------------------------------------------------
    async def hold_ping(
        self, chat_id: int, matter_id: int, kind: str, tier: int, reason: str, now: float, release_at: float
    ) -> None:
        await self._conn.execute(
            "INSERT INTO held_pings (chat_id, matter_id, kind, tier, reason, at, release_at) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7)",
            (chat_id, matter_id, kind, tier, reason, now, release_at),
        )

    async def held_pings_due(self, now: float) -> list[HeldPing]:
        rows = await self._all(
            "SELECT id, chat_id, matter_id, kind, tier, reason FROM held_pings WHERE release_at <= $1 ORDER BY id",
            (now,),
        )
        return [HeldPing(*r) for r in rows]

    async def drop_held_pings(self, ids: list[int]) -> None:
        await self._conn.executemany("DELETE FROM held_pings WHERE id = $1", [(i,) for i in ids])

    # --- people ------------------------------------------------------------------
    async def set_private_chat(self, user_id: int, name: str, now: float) -> None:
        """The user opened a private chat with the bot (/start): DMs can reach them."""
        await self._conn.execute(
            "INSERT INTO users (user_id, name, private_chat, updated_at) VALUES ($1, $2, 1, $3) "
            "ON CONFLICT(user_id) DO UPDATE SET name = excluded.name, private_chat = 1, "
            "updated_at = excluded.updated_at",
            (user_id, name, now),
        )

    async def has_private_chat(self, user_id: int) -> bool:
        row = await self._one("SELECT private_chat FROM users WHERE user_id = $1", (user_id,))
        return bool(row and row[0])

    async def add_duty_override(
        self, user_id: int, name: str, start: float, until: float, by: int, station: str
    ) -> None:
        await self._conn.execute(
            "INSERT INTO duty_overrides (user_id, name, start, until, set_by, set_at, station) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7)",
            (user_id, name, start, until, by, start, station),
        )

    async def duty_overrides(self, now: float, station: str) -> list[DutyOverride]:
        """Who took ``station``'s watch and until when, still in force at ``now``."""
        rows = await self._all(
            "SELECT user_id, start, until FROM duty_overrides WHERE until > $1 AND station = $2 ORDER BY set_at, id",
            (now, station),
        )
        return [DutyOverride(*r) for r in rows]

    # --- inbox -------------------------------------------------------------------
    async def inbox_add(self, updates: list[tuple[int, str | None]], now: float | None = None) -> None:
        """Fetched updates, each with its payload, or None when replay will not need it."""
        now = time.time() if now is None else now
        await self._conn.executemany(
            "INSERT INTO inbox (bot_id, update_id, payload, received_at) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT DO NOTHING",
            [(self.bot_id or 0, update_id, payload, now) for update_id, payload in updates],
        )

    async def inbox_add_new(self, updates: list[tuple[int, str | None]], now: float) -> set[int]:
        """Posted updates (webhook mode, issue 18), as ``inbox_add``; returns the ids that were
        not there yet (the others were posted before: Telegram posts again until answered)."""
        new: set[int] = set()
        for start in range(0, len(updates), ROWS_PER_INSERT):
            chunk = updates[start : start + ROWS_PER_INSERT]
            marks = ", ".join(f"(${4 * r + 1}, ${4 * r + 2}, ${4 * r + 3}, ${4 * r + 4})" for r in range(len(chunk)))
            rows = await self._all(
                f"INSERT INTO inbox (bot_id, update_id, payload, received_at) VALUES {marks} "
                "ON CONFLICT DO NOTHING RETURNING update_id",
                [v for update_id, payload in chunk for v in (self.bot_id or 0, update_id, payload, now)],
            )
            new.update(int(r[0]) for r in rows)
        return new

    async def inbox_adopt(self) -> int:
        """The updates stored before the inbox was keyed by bot (bot 0) become this bot's."""
        cur = await self._conn.execute("UPDATE inbox SET bot_id = $1 WHERE bot_id = 0", (self.bot_id or 0,))
        return cur.rowcount

    async def inbox_done(self, update_ids: list[int], now: float) -> None:
        """Done: only the id stays (duplicate detection), never what it said."""
        if update_ids:
            await self._conn.executemany(
                "UPDATE inbox SET done_at = $1, payload = NULL WHERE bot_id = $2 AND update_id = $3 "
                "AND done_at IS NULL",
                [(now, self.bot_id or 0, update_id) for update_id in update_ids],
            )

    async def inbox_try_failed(self, update_id: int, error: str, now: float) -> int:
        """One more failed try of a pending update; after MAX_TRIES it is failed (and done,
        its payload dropped). Returns the tries so far (0 if it is not pending)."""
        row = await self._one(
            "UPDATE inbox SET tries = tries + 1, error = $1 WHERE bot_id = $2 AND update_id = $3 AND done_at IS NULL "
            "RETURNING tries",
            (error, self.bot_id or 0, update_id),
        )
        tries = int(row[0]) if row else 0
        if tries >= MAX_TRIES:
            await self._conn.execute(
                "UPDATE inbox SET failed_at = $1, done_at = $2, payload = NULL WHERE bot_id = $3 AND update_id = $4",
                (now, now, self.bot_id or 0, update_id),
            )
        return tries

    async def inbox_failed(self, limit: int = 50) -> list[tuple[int, float, str]]:
        """Updates given up on, newest first: (update id, when, error)."""
        return await self._all(
            "SELECT update_id, failed_at, coalesce(error, '') FROM inbox WHERE failed_at IS NOT NULL "
            "ORDER BY failed_at DESC, update_id DESC LIMIT $1",
            (limit,),
        )

    async def inbox_failed_count(self) -> int:
        """Updates given up on after repeated failures (``tierbot status`` shows it)."""
        (count,) = await self._one("SELECT count(*) FROM inbox WHERE failed_at IS NOT NULL")
        return int(count)

    async def inbox_is_done(self, update_id: int) -> bool:
        row = await self._one("SELECT done_at FROM inbox WHERE bot_id = $1 AND update_id = $2",
                              (self.bot_id or 0, update_id))
        return row is not None and row[0] is not None

    async def inbox_last_id(self) -> int:
        if self.bot_id is not None:
            (last,) = await self._one("SELECT coalesce(max(update_id), 0) FROM inbox WHERE bot_id = $1", (self.bot_id,))
            return int(last)
        (last,) = await self._one("SELECT coalesce(max(update_id), 0) FROM inbox")
        return int(last)

    async def inbox_pending(self) -> list[tuple[int, str | None]]:
        """Updates not done, in order; the payload is None for those kept as an id only."""
        if self.bot_id is not None:
            return await self._all("SELECT update_id, payload FROM inbox WHERE done_at IS NULL AND bot_id = $1 "
                                   "ORDER BY update_id", (self.bot_id,))
        return await self._all("SELECT update_id, payload FROM inbox WHERE done_at IS NULL ORDER BY update_id")

    async def outbox_prune(self, before: float) -> None:
        """Forget messages sent or given up on long ago (keys stay unique meanwhile)."""
        await self._conn.execute("DELETE FROM outbox WHERE state != 'pending' AND created_at < $1", (before,))

    async def inbox_prune(self, before: float) -> None:
        """Forget updates done (or failed) long ago; each bot's newest is kept so ids stay known."""
        await self._conn.execute(
            "DELETE FROM inbox WHERE done_at < $1 AND update_id < "
            "(SELECT max(i.update_id) FROM inbox i WHERE i.bot_id = inbox.bot_id)", (before,)
        )

    # --- personal data retention (issue 10) ---------------------------------------
    async def purge_matters(self, before: float, now: float, limit: int = 500) -> Purged:
        """Clear the personal data of up to ``limit`` matters closed before ``before``: the
        reporter's name and id, the texts (report, resolution, reason, notes), attachments'
        file ids, the messages about them and questions pending on them. Figures (times,
        tiers, categories, ratings, counts) stay, and each matter's timeline says so."""
        rows = await self._all(
            "SELECT id FROM matters WHERE closed_at < $1 AND purged_at IS NULL ORDER BY closed_at LIMIT $2",
            (before, limit),
        )
        ids = [r[0] for r in rows]
        if not ids:
            return Purged()
        own = "actor_id = (SELECT reporter_id FROM matters WHERE matters.id = events.matter_id)"
        words = ", ".join(f"'{k}'" for k in OWN_WORDS_EVENTS)
        free = f"detail IS NOT NULL AND actor_id IS NOT NULL AND kind NOT IN ({words})"
        events = await self._conn.execute(
            f"UPDATE events SET detail = CASE WHEN {free} THEN $1 ELSE detail END, "
            f"actor_name = CASE WHEN {own} THEN $2 ELSE actor_name END, "
            # 0, not NULL: a NULL actor means the sweep wrote it, and the figures count that apart.
            f"actor_id = CASE WHEN {own} THEN 0 ELSE actor_id END "
            f"WHERE matter_id = ANY($3) AND (({free}) OR {own})",
            (PURGED, PURGED, ids),
        )
        attachments = await self._conn.execute(
            "UPDATE attachments SET file_id = $1, added_by = CASE WHEN added_by = "
            "(SELECT reporter_id FROM matters WHERE matters.id = attachments.matter_id) THEN NULL ELSE added_by END "
            "WHERE matter_id = ANY($2)",
            (PURGED, ids),
        )
        messages = await self._conn.execute(
            # A notice composed when it was sent kept what its words were made of (names, the
            # resolution) in ``data``: cleared as its text would have been.
            "UPDATE outbox SET text = CASE WHEN text IS NULL AND data IS NULL THEN NULL ELSE $1 END, data = NULL, "
            "markup = NULL, media = CASE WHEN media IS NULL THEN NULL ELSE $2 END "
            "WHERE matter_id = ANY($3) AND state != 'pending' "
            "AND (text IS NOT NULL OR media IS NOT NULL OR data IS NOT NULL)",
            (PURGED, PURGED, ids),
        )
        prompts = await self._conn.execute("DELETE FROM prompts WHERE matter_id = ANY($1)", (ids,))
        # A screening's finding made this matter: its words are the matter's (issue 16).
        await self._conn.execute(
            "UPDATE screening_findings SET text = $1 WHERE matter_id = ANY($2) AND text != $1", (PURGED, ids)
        )
        # Views hold what their messages were composed from (a leader's words among it): they go.
        viewed = [r[0] for r in await self._all(
            "SELECT DISTINCT view_key FROM view_matters WHERE matter_id = ANY($1)", (ids,))]
        for start in range(0, len(viewed), IDS_PER_QUERY):
            part = viewed[start : start + IDS_PER_QUERY]
            await self._conn.execute("DELETE FROM view_matters WHERE view_key = ANY($1)", (part,))
            await self._conn.execute("DELETE FROM views WHERE key = ANY($1)", (part,))
        await self._conn.execute(
            "UPDATE matters SET reporter_id = 0, reporter_name = $1, text = $1, "
            "resolution = CASE WHEN resolution IS NULL THEN NULL ELSE $1 END, "
            "close_reason = CASE WHEN close_reason IS NULL THEN NULL ELSE $1 END, "
            "claimed_by_name = CASE WHEN claimed_by = reporter_id THEN $1 ELSE claimed_by_name END, "
            "claimed_by = CASE WHEN claimed_by = reporter_id THEN NULL ELSE claimed_by END, "
            "resolved_by_name = CASE WHEN resolved_by = reporter_id THEN $1 ELSE resolved_by_name END, "
            "resolved_by = CASE WHEN resolved_by = reporter_id THEN NULL ELSE resolved_by END, "
            "limit_key = NULL, purged_at = $2 WHERE id = ANY($3)",
            (PURGED, now, ids),
        )
        await self._conn.executemany(
            "INSERT INTO events (matter_id, at, kind) VALUES ($1, $2, 'purged')", [(i, now) for i in ids]
        )
        return Purged(len(ids), events.rowcount, attachments.rowcount, messages.rowcount, prompts.rowcount)

    async def purge_people(self, before: float) -> Purged:
        """Questions left unanswered since before ``before``, the names of people not seen
        since (kept only to know who opened a private chat), and reports held back by the
        abuse limits since then."""
        prompts = await self._conn.execute("DELETE FROM prompts WHERE asked_at < $1", (before,))
        users = await self._conn.execute(
            "UPDATE users SET name = $1 WHERE updated_at < $2 AND name IS NOT NULL AND name != $3",
            (PURGED, before, PURGED),
        )
        held = await self._conn.execute(
            "UPDATE held_reports SET reporter_id = 0, reporter_name = $1, limit_key = 0, text = $2, photo = NULL "
            "WHERE created_at < $3 AND text != $4",
            (PURGED, PURGED, before, PURGED),
        )
        # A screening's finding put on record (not made a matter) names a household's trouble too.
        await self._conn.execute(
            "UPDATE screening_findings SET text = $1 WHERE matter_id IS NULL AND at < $2 AND text != $3",
            (PURGED, before, PURGED),
        )
        # A visit's words, its place and its photos are a household's too; the officer's name,
        # the units, the day and the counts stay for the figures (issue 16).
        await self._conn.execute(
            "DELETE FROM visit_photos WHERE visit_id IN (SELECT id FROM visits WHERE finished_at < $1)", (before,)
        )
        await self._conn.execute(
            "UPDATE visits SET deed = $1, findings = CASE WHEN findings IS NULL THEN NULL ELSE $1 END, "
            "place = NULL, latitude = NULL, longitude = NULL WHERE finished_at < $2 AND (deed IS NULL OR deed != $1)",
            (PURGED, before),
        )
        return Purged(prompts=prompts.rowcount, users=users.rowcount, held=held.rowcount)

    # --- summaries ---------------------------------------------------------------
    async def summary_matters(self, start: float, end: float) -> tuple[list[Any], list[Any], list[tuple[Any, ...]]]:
        """Matters that existed at some point in [start, end): created before the end and
        not closed for good before the start, as rows (unit_id, created_at, first_claimed_at,
        resolved_at, escalated_at, id, category, top_tier, closed_at, private), in two lists:
        those that never went above their unit and were not reopened since ``start`` (their
        columns say all their timeline says), and the others; and the others' timelines
        (plain tuples in TimelineRow's order), which escalation.summary.facts replays."""
        plain, moved, events, _ = await self._summary_rows(start, end, count_idle=False)
        return plain, moved, events

    async def summary_rows(
        self, start: float, end: float
    ) -> tuple[list[Any], list[Any], list[tuple[Any, ...]], list[tuple[str, int]]]:
        """summary_matters, but the plain matters reported before ``start`` that the window
        touches only by being open at its end (not claimed, resolved or reopened in it) are
        not read one by one: they come last, counted per unit as (unit_id, how many). A big
        town keeps some 30,000 of them, a quarter of the rows a week's bulletins read. They
        are idle in every part of [start, end), so the count holds for any window inside it."""
        return await self._summary_rows(start, end, count_idle=True)

    async def _summary_rows(
        self, start: float, end: float, count_idle: bool
    ) -> tuple[list[Any], list[Any], list[tuple[Any, ...]], list[tuple[str, int]]]:
        columns = ("m.unit_id, m.created_at, m.first_claimed_at, m.resolved_at, m.escalated_at, m.id, "
                   "m.category, m.top_tier, m.closed_at, m.private")
        # Open plain matters reported before the start and idle since: open at the end and
        # nothing else in the window. Each part of the condition is true or false, never
        # NULL, so NOT(idle) is exactly the rest.
        # (Parameters: $1 the first matter reported since the start, $2 the end, $3 the start.)
        idle = ("m.created_at < $3 AND m.escalated_at IS NULL "
                "AND (m.first_claimed_at IS NULL OR m.first_claimed_at < $3 OR m.first_claimed_at >= $2) "
                "AND (m.resolved_at IS NULL OR m.resolved_at >= $2) "
                "AND m.id NOT IN (SELECT matter_id FROM events WHERE kind = 'reopened' AND at >= $3)")
        # Matters are numbered in the order they are reported: those reported since the
        # start are read in one sequential pass; older ones (scattered over the table) from
        # partial covering indexes alone: those closed since the start from
        # matters_closed_figures, those still open from matters_open_figures. Each part
        # applies the whole condition, so the split is exact whatever the order; it only
        # makes a big town fast.
        first = await self._first_reported_since(start)
        rows = await self._all(
            f"SELECT {columns} FROM matters m WHERE m.id >= $1 AND +m.created_at < $2 "
            "AND (+m.closed_at IS NULL OR +m.closed_at >= $3) "  # (+: by number, not through a closed_at index)
            f"UNION ALL SELECT {columns} FROM matters m{self._indexed_by('matters_closed_figures')} "
            "WHERE m.closed_at >= $3 AND m.id < $1 AND m.created_at < $2 "
            f"UNION ALL SELECT {columns} FROM matters m{self._indexed_by('matters_open_figures')} "
            "WHERE m.closed_at IS NULL AND m.id < $1 AND m.created_at < $2"
            + (f" AND NOT ({idle})" if count_idle else ""),
            (first, end, start),
        )
        idle_counts: list[tuple[str, int]] = []
        if count_idle:
            idle_counts = [(unit_id, int(n)) for unit_id, n in await self._all(
                f"SELECT m.unit_id, count(*) FROM matters m{self._indexed_by('matters_open_figures')} "
                f"WHERE m.closed_at IS NULL AND m.id < $1 AND m.created_at < $2 AND {idle} GROUP BY m.unit_id",
                (first, end, start),
            )]
        reopened = {r[0] for r in await self._all(
            "SELECT DISTINCT matter_id FROM events WHERE kind = 'reopened' AND at >= $1", (start,))}
        plain: list[Any] = []
        moved: list[Any] = []
        for row in rows:  # a move up sets escalated_at (bot/matters.py, escalation/sweep.py)
            (plain if row[4] is None and row[5] not in reopened else moved).append(row)
        return plain, moved, await self._timeline_rows([r[5] for r in moved]), idle_counts

    async def timelines(self, matter_ids: list[int]) -> list[TimelineRow]:
        """The events that say where the given matters stood when, by matter and in order:
        arrivals, closes, reopens and missed deadlines."""
        return [TimelineRow(*row) for row in await self._timeline_rows(matter_ids)]

    async def _timeline_rows(self, matter_ids: list[int]) -> list[tuple[Any, ...]]:
        """timelines() as plain tuples (matter, at, kind, tier, by the sweep, None)."""
        rows: list[Any] = []
        for start in range(0, len(matter_ids), IDS_PER_QUERY):
            chunk = matter_ids[start : start + IDS_PER_QUERY]
            rows += await self._all(
                "SELECT e.matter_id, e.at, e.kind, e.tier, e.actor_id IS NULL, NULL FROM events e"
                f"{self._indexed_by('events_timeline')} WHERE e.matter_id = ANY($1) "
                f"AND e.kind IN ({TIMELINE_KINDS}) ORDER BY e.matter_id, e.id",
                (chunk,),
            )
        return rows

    async def ratings_given(self, start: float, middle: float, end: float) -> list[tuple[str, str | None, float, int]]:
        """Ratings given in [start, middle) and in [middle, end), counted per unit and label:
        (unit, label, the start of the part they were given in, how many). Ratings are
        events, counted when they were given, whatever became of their matter since; they
        are read as one range of ``ratings`` (kept in that order, each with its matter's unit)."""
        counts = Counter(map(tuple, await self._all(
            "SELECT unit_id, label, at >= $1 FROM ratings WHERE at >= $2 AND at < $3", (middle, start, end))))
        ordered = sorted(counts, key=lambda k: (k[0], k[1] is not None, k[1] or "", k[2]))
        return [(unit_id, label, middle if later else start, counts[unit_id, label, later])
                for unit_id, label, later in ordered]

    async def _first_reported_since(self, at: float) -> int:
        """The number of the first matter reported at or after ``at`` (or the next number)."""
        # The earliest reported, not the lowest number: one step down the created_at index
        # instead of a walk over the whole period (min(id) reads every entry since ``at``).
        # Numbers follow report times, so the two agree, and the callers are exact either way.
        (first,) = await self._one(
            f"SELECT coalesce((SELECT id FROM matters{self._indexed_by('matters_created')} WHERE created_at >= $1 "
            "ORDER BY created_at LIMIT 1), (SELECT coalesce(max(id), 0) + 1 FROM matters))",
            (at,),
        )
        return int(first)

    async def escalated_between(self, start: float, end: float) -> dict[str, int]:
        """Per unit, how many matters were escalated in [start, end)."""
        rows = await self._all(
            "SELECT m.unit_id, count(DISTINCT e.matter_id) FROM events e "
            "JOIN matters m ON m.id = e.matter_id "
            "WHERE e.kind = 'escalated' AND e.at >= $1 AND e.at < $2 GROUP BY m.unit_id",
            (start, end),
        )
        return {unit_id: count for unit_id, count in rows}

    # --- bulletins and ledgers (issue 5) -------------------------------------------
    async def week_counts(self, week_end: float, stations: Sequence[str]) -> list[list[Any]] | None:
        """(unit, category, matters reported) in the week ending at ``week_end`` in these
        stations' units, as counted before; None if that week has not been counted yet for
        every one of them."""
        kept = await self._kept_week(week_end, stations, "counts")
        return None if kept is None else [row for station in stations for row in json.loads(kept[station])]

    async def week_sums(self, week_end: float, stations: Sequence[str]) -> dict[str, dict[str, Any] | None] | None:
        """The week's counts as summed per node when they were kept (save_week_counts'
        ``sums``), station by station: None for a station's week kept before they were; None
        in all if that week has not been counted yet for every one of them."""
        kept = await self._kept_week(week_end, stations, "sums")
        return None if kept is None else {station: json.loads(text) if text else None for station, text in kept.items()}

    async def _kept_week(self, week_end: float, stations: Sequence[str], column: str) -> dict[str, Any] | None:
        """One column of week_counts for each of these stations, or None if one has no row."""
        kept = dict(await self._all(f"SELECT station, {column} FROM week_counts WHERE week_end = $1", (week_end,)))
        if any(station not in kept for station in stations):
            return None
        return {station: kept[station] for station in stations}

    async def count_week(self, start: float, end: float) -> list[tuple[str, str, int]]:
        """(unit, category, matters reported) in [start, end), counted now."""
        first = await self._first_reported_since(start)
        rows = await self._all(
            "SELECT unit_id, category, count(*) FROM ("
            "SELECT unit_id, category FROM matters WHERE id >= $1 AND +created_at >= $2 AND +created_at < $3 "
            "UNION ALL SELECT unit_id, category FROM matters WHERE id < $4 AND created_at >= $5 AND created_at < $6"
            ") AS week GROUP BY unit_id, category",  # PostgreSQL before 16 wants the alias
            (first, start, end, first, start, end),
        )
        return [(unit, category, int(n)) for unit, category, n in rows]

    async def save_week_counts(self, week_end: float, counts: dict[str, list[tuple[str, str, int]]],
                               sums: dict[str, dict[str, Any]]) -> None:
        """A week's counts, station by station (``counts``: station → its units' rows;
        ``sums``: station → the same summed per node, as week_sums gives them back)."""
        def text(value: Any) -> str:
            return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

        await self._conn.executemany(
            "INSERT INTO week_counts (week_end, station, counts, sums) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            [(week_end, station, text(rows), text(sums[station])) for station, rows in counts.items()],
        )

    async def ledger_matters(self, start: float, end: float) -> list[Matter]:
        """Every matter that existed at some point in [start, end), by number: the ledger."""
        rows = await self._all(
            f"{MATTER_SELECT} WHERE created_at < $1 AND (closed_at IS NULL OR closed_at >= $2) ORDER BY id",
            (end, start),
        )
        return [matter_from_row(r) for r in rows]

    async def ledger_events(self, matter_ids: list[int]) -> dict[int, list[Event]]:
        """The timelines of a ledger's matters, by matter, each in order; a query per
        IDS_PER_QUERY matters."""
        out: dict[int, list[Event]] = {}
        for start in range(0, len(matter_ids), IDS_PER_QUERY):
            chunk = matter_ids[start : start + IDS_PER_QUERY]
            rows = await self._all(
                "SELECT matter_id, at, actor_id, actor_name, kind, tier, detail FROM events"
                f"{self._indexed_by('events_matter')} WHERE matter_id = ANY($1) ORDER BY matter_id, id",
                (chunk,),
            )
            for r in rows:
                out.setdefault(r[0], []).append(Event(*r))
        return out

    async def save_published(
        self, schedule: str, start: float, end: float, figures: str, now: float, station: str
    ) -> None:
        """A station's bulletin figures as published (JSON), once per schedule and period."""
        await self._conn.execute(
            "INSERT INTO published_figures "
            "(schedule, period_start, period_end, station, figures, published_at) VALUES ($1, $2, $3, $4, $5, $6) "
            "ON CONFLICT DO NOTHING",
            (schedule, start, end, station, figures, now),
        )

    async def published(self, schedule: str, start: float, end: float) -> dict[str, str]:
        """The figures the bulletins of [start, end) published, by station."""
        rows = await self._all(
            "SELECT station, figures FROM published_figures WHERE schedule = $1 AND period_start = $2 "
            "AND period_end = $3",
            (schedule, start, end),
        )
        return {str(station): str(figures) for station, figures in rows}

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
        (broadcast_id,) = await self._one(
            "INSERT INTO broadcasts (node_id, chat_id, message_id, sender_id, sender_name, text, photo, "
            "language, targets, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
            (node_id, chat_id, message_id, sender_id, sender_name, text, photo, language, targets, now),
        )
        return int(broadcast_id)

    async def add_broadcast_target(self, broadcast_id: int, unit_id: str, chat_id: int, outbox_key: str) -> None:
        await self._conn.execute(
            "INSERT INTO broadcast_targets (broadcast_id, unit_id, chat_id, outbox_key) VALUES ($1, $2, $3, $4)",
            (broadcast_id, unit_id, chat_id, outbox_key),
        )

    async def broadcast(self, broadcast_id: int) -> Broadcast | None:
        row = await self._one(
            "SELECT id, node_id, chat_id, message_id, sender_id, sender_name, text, photo, language, targets, "
            "created_at, reported_at FROM broadcasts WHERE id = $1",
            (broadcast_id,),
        )
        return Broadcast(*row) if row else None

    async def broadcast_pending(self, broadcast_id: int) -> bool:
        """Whether some target of the broadcast has not been tried to the end yet."""
        row = await self._one(
            "SELECT 1 FROM broadcast_targets t JOIN outbox o ON o.key = t.outbox_key "
            "WHERE t.broadcast_id = $1 AND o.state = 'pending' LIMIT 1",
            (broadcast_id,),
        )
        return row is not None

    async def broadcast_outcomes(self, broadcast_id: int) -> list[BroadcastOutcome]:
        """Every target with its outbox state; a target with no outbox row counts as failed."""
        rows = await self._all(
            "SELECT t.unit_id, t.chat_id, coalesce(o.state, 'failed') FROM broadcast_targets t "
            # In the order they were written: SQLite's rowid; PostgreSQL's ctid, as nothing updates or
            # deletes broadcast_targets (its heap is append-only). A column of its own would say it on both.
            "LEFT JOIN outbox o ON o.key = t.outbox_key WHERE t.broadcast_id = $1 "
            f"ORDER BY t.{'ctid' if self.postgres else 'rowid'}",
            (broadcast_id,),
        )
        return [BroadcastOutcome(*r) for r in rows]

    async def unreported_broadcasts_to(self, chat_id: int) -> list[int]:
        """Broadcasts still waiting for their report that have a target in this chat."""
        rows = await self._all(
            "SELECT DISTINCT t.broadcast_id FROM broadcast_targets t JOIN broadcasts b ON b.id = t.broadcast_id "
            "WHERE t.chat_id = $1 AND b.reported_at IS NULL ORDER BY t.broadcast_id",
            (chat_id,),
        )
        return [r[0] for r in rows]

    async def mark_broadcast_reported(self, broadcast_id: int, now: float) -> bool:
        """Returns True only the first time."""
        cur = await self._conn.execute(
            "UPDATE broadcasts SET reported_at = $1 WHERE id = $2 AND reported_at IS NULL", (now, broadcast_id)
        )
        return cur.rowcount == 1

    # --- command menus: what was last set, so a restart does not set 2,000 menus again --
    async def meta_values(self, prefix: str) -> dict[str, str]:
        rows = await self._all(
            "SELECT key, value FROM meta WHERE key >= $1 AND key < $2", (prefix, prefix + "\U0010ffff")
        )
        return {key: value for key, value in rows}

    async def set_meta(self, key: str, value: str) -> None:
        await self._conn.execute(
            "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    async def delete_meta(self, prefix: str) -> None:
        await self._conn.execute("DELETE FROM meta WHERE key >= $1 AND key < $2", (prefix, prefix + "\U0010ffff"))

    # --- tierbot status (issue 11) ------------------------------------------------
    async def schema_version(self) -> int:
        # PostgreSQL has no PRAGMA user_version: bot/store/postgres.py keeps it in a table.
        (version,) = await self._one("SELECT coalesce(max(version), 0) FROM schema_version" if self.postgres
                                     else "PRAGMA user_version")
        return int(version)

    async def open_by_tier(self) -> dict[int, int]:
        """Matters not closed, per tier they stand at."""
        rows = await self._all("SELECT tier, count(*) FROM matters WHERE state IN ('open', 'claimed') GROUP BY tier")
        return {int(tier): int(n) for tier, n in rows}

    async def running_matters(self) -> list[Matter]:
        """Matters whose clocks run (open or claimed, not suspended): those that can be overdue."""
        rows = await self._all(f"{MATTER_SELECT} WHERE state IN ('open', 'claimed') AND suspended_until IS NULL")
        return [matter_from_row(r) for r in rows]

    async def outbox_backlog(self) -> tuple[int, float | None, str | None]:
        """Messages waiting to be sent: how many, and the oldest one's queuing time and key."""
        (count,) = await self._one("SELECT count(*) FROM outbox WHERE state = 'pending'")
        oldest = await self._one(
            f"SELECT created_at, key FROM outbox{self._indexed_by('outbox_pending')} WHERE state = 'pending' "
            "ORDER BY created_at, id LIMIT 1"
        )
        return int(count), (oldest[0] if oldest else None), (oldest[1] if oldest else None)

    async def meta_value(self, key: str) -> str | None:
        row = await self._one("SELECT value FROM meta WHERE key = $1", (key,))
        return None if row is None else str(row[0])

    # --- the monthly sense-of-safety poll (issue 16) ------------------------------------
    async def safety_polls_add(self, rows: list[tuple[str, str, int, str, float, float]]) -> list[str]:
        """New polls: (unit, month, chat, outbox key, opened at, closes at). A unit has one a
        month: the units whose poll this inserted are returned, the others already had theirs."""
        added = []
        for unit_id, month, chat_id, key, opened, closes in rows:
            cur = await self._conn.execute(
                "INSERT INTO safety_polls (unit_id, month, chat_id, outbox_key, opened_at, closes_at) "
                "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                (unit_id, month, chat_id, key, opened, closes),
            )
            if cur.rowcount == 1:
                added.append(unit_id)
        return added

    async def safety_poll_sent(self, outbox_key: str, message_id: int, poll_id: str) -> None:
        await self._conn.execute(
            "UPDATE safety_polls SET message_id = $1, poll_id = $2 WHERE outbox_key = $3",
            (message_id, poll_id, outbox_key),
        )

    async def safety_poll_counted(self, poll_id: str, counts: list[int], answers: int, now: float) -> bool:
        """The latest counts Telegram reported for an open poll; False if the poll is not
        ours or already closed (its final counts are kept)."""
        cur = await self._conn.execute(
            "UPDATE safety_polls SET counts = $1, answers = $2, counted_at = $3 WHERE poll_id = $4 "
            "AND closed_at IS NULL",
            (json.dumps(counts), answers, now, poll_id),
        )
        return cur.rowcount > 0

    async def safety_polls_due(self, now: float) -> list[SafetyPollDue]:
        """Polls whose time is up, not closed and not yet asked to close."""
        rows = await self._all(
            "SELECT p.id, p.unit_id, p.month, p.chat_id, p.message_id, o.state FROM safety_polls p "
            "LEFT JOIN outbox o ON o.key = p.outbox_key "
            "WHERE p.closed_at IS NULL AND p.stop_queued_at IS NULL AND p.closes_at <= $1",
            (now,),
        )
        return [SafetyPollDue(*r) for r in rows]

    async def safety_polls_stopping(self, ids: list[int], now: float) -> None:
        await self._conn.executemany(
            "UPDATE safety_polls SET stop_queued_at = $1 WHERE id = $2", [(now, poll) for poll in ids]
        )

    async def safety_poll_close(
        self, unit_id: str, month: str, now: float, counts: list[int] | None = None, answers: int | None = None
    ) -> bool:
        """Close a poll, with its final counts when Telegram gave them (else those last
        reported stay); False if it was closed already."""
        if counts is None:
            cur = await self._conn.execute(
                "UPDATE safety_polls SET closed_at = $1 WHERE unit_id = $2 AND month = $3 AND closed_at IS NULL",
                (now, unit_id, month),
            )
        else:
            cur = await self._conn.execute(
                "UPDATE safety_polls SET closed_at = $1, counts = $2, answers = $3, counted_at = $4 "
                "WHERE unit_id = $5 AND month = $6 AND closed_at IS NULL",
                (now, json.dumps(counts), answers or 0, now, unit_id, month),
            )
        return cur.rowcount > 0

    async def safety_polls_close_chat(self, chat_id: int, now: float) -> int:
        """A chat out of reach: its open polls close with the counts last reported."""
        cur = await self._conn.execute(
            "UPDATE safety_polls SET closed_at = $1 WHERE chat_id = $2 AND closed_at IS NULL", (now, chat_id)
        )
        return cur.rowcount

    async def safety_counts(self, months: Sequence[str]) -> list[SafetyCount]:
        """Every unit's poll of these months (one nobody answered yet counts nothing)."""
        rows = await self._all(
            "SELECT unit_id, month, counts, answers FROM safety_polls WHERE month = ANY($1)", (list(months),)
        )
        return [SafetyCount(unit, month, [int(n) for n in json.loads(counts or "[]")], int(answers))
                for unit, month, counts, answers in rows]

    # --- visit logs (走访日志, issue 16) -------------------------------------------
    async def open_visit(self, user_id: int) -> Visit | None:
        """The person's unfinished entry, if any (one at a time)."""
        row = await self._one(f"{VISIT_SELECT} WHERE user_id = $1 AND finished_at IS NULL ORDER BY id DESC LIMIT 1",
                              (user_id,))
        return visit_from_row(row) if row else None

    async def visit(self, visit_id: int) -> Visit | None:
        row = await self._one(f"{VISIT_SELECT} WHERE id = $1", (visit_id,))
        return visit_from_row(row) if row else None

    async def start_visit(self, user_id: int, user_name: str, chat_id: int, now: float, **values: Any) -> int:
        """A new entry; ``values``: the columns already known (community_id, step, households, deed)."""
        columns = {"user_id": user_id, "user_name": user_name, "chat_id": chat_id, "started_at": now,
                   "updated_at": now, **values}
        if "units" in columns:
            columns["units"] = json.dumps(columns["units"])
        (visit_id,) = await self._one(
            f"INSERT INTO visits ({', '.join(columns)}) "
            f"VALUES ({', '.join(f'${n}' for n in range(1, len(columns) + 1))}) RETURNING id",
            list(columns.values()),
        )
        return int(visit_id)

    async def update_visit(self, visit_id: int, now: float, **values: Any) -> None:
        """Write a step of an entry (and when: 24 h of silence after it drop an unfinished one)."""
        if "units" in values:
            values["units"] = json.dumps(values["units"])
        values["updated_at"] = now
        assignments = ", ".join(f"{column} = ${n}" for n, column in enumerate(values, start=1))
        await self._conn.execute(f"UPDATE visits SET {assignments} WHERE id = ${len(values) + 1}",
                                 (*values.values(), visit_id))

    async def add_visit_photo(self, visit_id: int, file_id: str, now: float) -> int:
        """A photo of an entry; returns how many it has now."""
        (count,) = await self._one(
            "UPDATE visits SET photos = photos + 1, updated_at = $1 WHERE id = $2 RETURNING photos", (now, visit_id)
        )
        await self._conn.execute("INSERT INTO visit_photos (visit_id, position, file_id, at) VALUES ($1, $2, $3, $4)",
                                 (visit_id, int(count), file_id, now))
        return int(count)

    async def visit_photos(self, visit_id: int) -> list[str]:
        rows = await self._all("SELECT file_id FROM visit_photos WHERE visit_id = $1 ORDER BY position", (visit_id,))
        return [r[0] for r in rows]

    async def stale_visits(self, before: float) -> list[Visit]:
        """Unfinished entries whose last step was before ``before``."""
        rows = await self._all(f"{VISIT_SELECT} WHERE finished_at IS NULL AND updated_at < $1", (before,))
        return [visit_from_row(r) for r in rows]

    async def drop_visit(self, visit_id: int, before: float | None = None) -> bool:
        """Delete an unfinished entry and its photos (with ``before``: only if its last step
        was before then); False if it was finished, answered or gone meanwhile."""
        row = await self._one("SELECT updated_at FROM visits WHERE id = $1 AND finished_at IS NULL", (visit_id,))
        if row is None or (before is not None and row[0] >= before):
            return False
        await self._conn.execute("DELETE FROM visit_photos WHERE visit_id = $1", (visit_id,))
        await self._conn.execute("DELETE FROM visits WHERE id = $1", (visit_id,))
        return True

    async def visits_between(self, start: float, end: float, community_ids: Sequence[str] | None = None,
                             user_id: int | None = None) -> list[Visit]:
        """Finished entries with ``start <= finished_at < end``, oldest first; optionally of
        these communities only, or of one person."""
        sql, params = f"{VISIT_SELECT} WHERE finished_at >= $1 AND finished_at < $2", [start, end]
        if community_ids is not None:
            params.append(list(community_ids))
            sql += f" AND community_id = ANY(${len(params)})"
        if user_id is not None:
            params.append(user_id)
            sql += f" AND user_id = ${len(params)}"
        return [visit_from_row(r) for r in await self._all(sql + " ORDER BY finished_at, id", params)]

    async def visit_matters(self, visit_id: int) -> list[int]:
        """The matters made from a visit's finding (转为事项)."""
        rows = await self._all("SELECT id FROM matters WHERE visit_id = $1 ORDER BY id", (visit_id,))
        return [int(r[0]) for r in rows]


    # --- the weekly safety notice to the village (issue 16) ----------------------------
    async def insert_village_notice(self, community_id: str, week: str, chat_id: int, text: str,
                                    now: float) -> int | None:
        """A community's draft for the week; None if that week's was already drafted."""
        row = await self._one(
            "INSERT INTO village_notices (community_id, week, chat_id, text, drafted_at) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING id",
            (community_id, week, chat_id, text, now),
        )
        return None if row is None else int(row[0])

    async def village_notice(self, notice_id: int) -> VillageNoticeRow | None:
        row = await self._one(
            f"SELECT {', '.join(VILLAGE_NOTICE_COLUMNS)} FROM village_notices WHERE id = $1", (notice_id,)
        )
        return VillageNoticeRow(*row) if row else None

    async def decide_village_notice(self, notice_id: int, state: str, now: float, by: int, by_name: str,
                                    broadcast_id: int | None = None) -> bool:
        """Publish or skip a draft; False if it was no longer a draft (a second tap)."""
        cur = await self._conn.execute(
            "UPDATE village_notices SET state = $1, decided_at = $2, decided_by = $3, decided_by_name = $4, "
            "broadcast_id = $5 WHERE id = $6 AND state = 'draft'",
            (state, now, by, by_name, broadcast_id, notice_id),
        )
        return cur.rowcount == 1

    async def set_village_notice_text(self, notice_id: int, text: str) -> bool:
        cur = await self._conn.execute(
            "UPDATE village_notices SET text = $1 WHERE id = $2 AND state = 'draft'", (text, notice_id)
        )
        return cur.rowcount == 1

    async def set_village_notice_message(self, notice_id: int, message_id: int) -> None:
        await self._conn.execute(
            "UPDATE village_notices SET draft_message_id = $1 WHERE id = $2", (message_id, notice_id)
        )

    async def notice_of_prompt(self, chat_id: int, message_id: int) -> int | None:
        """The notice a "send the new text" prompt (key ``vnask:<notice>:<update>``) asked about."""
        row = await self._one(
            "SELECT key FROM outbox WHERE chat_id = $1 AND message_id = $2 AND kind = 'notice_prompt'",
            (chat_id, message_id),
        )
        return None if row is None else int(str(row[0]).split(":")[1])

    async def village_notices_late(self, start: float, end: float, grace: float) -> list[str]:
        """Communities whose notice was due to be published (drafted + ``grace``) within
        [start, end) and was not published by then."""
        rows = await self._all(
            "SELECT community_id FROM village_notices WHERE drafted_at + $1 >= $2 AND drafted_at + $3 < $4 "
            "AND NOT (state = 'published' AND decided_at <= drafted_at + $5) ORDER BY community_id",
            (grace, start, grace, end, grace),
        )
        return [str(r[0]) for r in rows]


    # --- the weekly screening for disputes (issue 16) -----------------------------------
    async def insert_screening(self, community_id: str, week: str, chat_id: int, now: float,
                               due_at: float) -> int | None:
        row = await self._one(
            "INSERT INTO screenings (community_id, week, chat_id, asked_at, due_at) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING id",
            (community_id, week, chat_id, now, due_at),
        )
        return None if row is None else int(row[0])

    async def screening(self, screening_id: int) -> ScreeningRow | None:
        row = await self._one(f"SELECT {', '.join(SCREENING_COLUMNS)} FROM screenings WHERE id = $1", (screening_id,))
        return ScreeningRow(*row) if row else None

    async def screenings_to_remind(self, now: float, ahead: float) -> list[ScreeningRow]:
        rows = await self._all(
            f"SELECT {', '.join(SCREENING_COLUMNS)} FROM screenings WHERE state = 'asked' "
            "AND reminded_at IS NULL AND due_at > $1 AND due_at - $2 <= $3 ORDER BY id",
            (now, ahead, now),
        )
        return [ScreeningRow(*r) for r in rows]

    async def mark_screening_reminded(self, screening_id: int, now: float) -> bool:
        cur = await self._conn.execute(
            "UPDATE screenings SET reminded_at = $1 WHERE id = $2 AND reminded_at IS NULL", (now, screening_id)
        )
        return cur.rowcount == 1

    async def answer_screening(self, screening_id: int, state: str, now: float, by: int, by_name: str) -> bool:
        """A zero-report, or the first finding; False if it was answered already."""
        cur = await self._conn.execute(
            "UPDATE screenings SET state = $1, answered_at = $2, answered_by = $3, answered_by_name = $4 "
            "WHERE id = $5 AND state = 'asked'",
            (state, now, by, by_name, screening_id),
        )
        return cur.rowcount == 1

    async def set_screening_message(self, screening_id: int, message_id: int) -> None:
        await self._conn.execute("UPDATE screenings SET ask_message_id = $1 WHERE id = $2", (message_id, screening_id))

    async def add_finding(self, screening_id: int, unit_id: str, text: str, by: int, by_name: str,
                          now: float) -> int:
        row = await self._one(
            "INSERT INTO screening_findings (screening_id, unit_id, text, by_id, by_name, at) "
            "VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            (screening_id, unit_id, text, by, by_name, now),
        )
        return int(row[0])

    async def finding(self, finding_id: int) -> FindingRow | None:
        row = await self._one(
            f"SELECT {', '.join(FINDING_COLUMNS)} FROM screening_findings WHERE id = $1", (finding_id,)
        )
        return FindingRow(*row) if row else None

    async def findings_of(self, screening_id: int) -> list[FindingRow]:
        rows = await self._all(
            f"SELECT {', '.join(FINDING_COLUMNS)} FROM screening_findings WHERE screening_id = $1 ORDER BY id",
            (screening_id,),
        )
        return [FindingRow(*r) for r in rows]

    async def decide_finding(self, finding_id: int, outcome: str, now: float, matter_id: int | None) -> bool:
        cur = await self._conn.execute(
            "UPDATE screening_findings SET outcome = $1, decided_at = $2, matter_id = $3 "
            "WHERE id = $4 AND outcome IS NULL",
            (outcome, now, matter_id, finding_id),
        )
        return cur.rowcount == 1

    async def screening_of_prompt(self, chat_id: int, message_id: int) -> tuple[int, str] | None:
        """The screening and unit a "describe what you found" prompt (key
        ``scask:<screening>:<unit>:<update>``) asked about."""
        row = await self._one(
            "SELECT key FROM outbox WHERE chat_id = $1 AND message_id = $2 AND kind = 'screening_prompt'",
            (chat_id, message_id),
        )
        if row is None:
            return None
        _, screening_id, unit_id, _ = str(row[0]).split(":", 3)
        return int(screening_id), unit_id

    async def screenings_missing(self, start: float, end: float) -> list[str]:
        """Communities whose screening due in [start, end) was not answered by its deadline."""
        rows = await self._all(
            "SELECT community_id FROM screenings WHERE due_at >= $1 AND due_at < $2 "
            "AND (answered_at IS NULL OR answered_at > due_at) ORDER BY community_id",
            (start, end),
        )
        return [str(r[0]) for r in rows]

    async def screenings_between(self, start: float, end: float) -> list[tuple[ScreeningRow, int, int, int]]:
        """Every screening due in [start, end), with its findings: all, made matters, put on
        record (the ledger's 排查 sheet)."""
        rows = await self._all(
            f"SELECT {', '.join('s.' + c for c in SCREENING_COLUMNS)}, count(f.id), "
            "count(CASE WHEN f.outcome = 'matter' THEN 1 END), count(CASE WHEN f.outcome = 'handled' THEN 1 END) "
            "FROM screenings s LEFT JOIN screening_findings f ON f.screening_id = s.id "
            "WHERE s.due_at >= $1 AND s.due_at < $2 GROUP BY s.id ORDER BY s.due_at, s.community_id",
            (start, end),
        )
        return [(ScreeningRow(*r[:-3]), int(r[-3]), int(r[-2]), int(r[-1])) for r in rows]



class SqliteSpelling:
    """aiosqlite's connection, as Tx uses it, reading the canonical spelling (``$n`` → ``?n``,
    a list compared with ``= ANY($n)`` → ``IN (?, …)``: bot/store/dialect.py's sqlite_form);
    no trip of its own."""

    __slots__ = ("raw",)

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.raw = conn

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> Any:
        return self.raw.execute(*sqlite_form(sql, parameters))

    def execute_fetchall(self, sql: str, parameters: Sequence[Any] = ()) -> Any:
        return self.raw.execute_fetchall(*sqlite_form(sql, parameters))

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]]) -> Any:
        return self.raw.executemany(sqlite_query(sql), parameters)


VISIT_SELECT = "SELECT " + ", ".join(VISIT_COLUMNS) + " FROM visits"
LAST_SWEEP = "last_sweep"  # meta: when the sweep last ran to its end (unix seconds), for `tierbot status`
