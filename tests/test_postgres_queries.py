"""Every named query (bot/store/queries.py's Tx) on PostgreSQL answers as on SQLite (issue 17).

One scenario of calls, each in its own transaction, run on a SQLite file and on a fresh
PostgreSQL schema; the answers must be equal. SQLite is the reference: the rest of the suite
checks what its answers mean."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bot.store import Event, QueuedReport, Sent, Store
from tests.conftest import U1_CHAT

UNIT, RESIDENT, HEAD = "u1", 901, 31


def report(text: str, at: float, message: int, photo: str | None = None) -> QueuedReport:
    return QueuedReport(None, {
        "unit_id": UNIT, "chat_id": U1_CHAT, "report_message_id": message, "reporter_id": RESIDENT,
        "reporter_name": "居民",
        "text": text, "state": "open", "tier": 3, "top_tier": 3, "tier_since": at, "rules": "{}", "created_at": at,
        "limit_key": RESIDENT, "next_due": at + 10,
    }, message, photo_file_id=photo)


# (method, args, keyword args); outbox ids: 1-2 the cards, 3-6 the rows below.
CALLS: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("matter", (1,), {}), ("cards_of", ([1, 2],), {}),
    ("update_matter", (1,), {"state": "claimed", "claimed_by": HEAD}),
    ("update_matters", ([(1, {"tier": 2}), (2, {"tier": 2})],), {}), ("due_matters", (5000.0,), {}),
    ("open_matters", ([UNIT],), {}), ("add_event", (1, 1001.0, "claimed"), {"actor_id": HEAD}),
    ("add_events", ([Event(1, 1002.0, None, None, "escalated", 2, None)],), {}), ("events", (1,), {}),
    ("add_attachment", (1, "photo", "F1", RESIDENT, 1003.0), {}), ("attachments_of", ([1, 2],), {}),
    ("outbox_due", (5000.0,), {"skip_chats": [-999], "bulk_prefix": ["bc:", "bl:"]}),
    ("outbox_retry_now", (5000.0,), {}), ("outbox_sent", ([Sent(1, 2000.0, 55, card=(1, U1_CHAT, 55))],), {}),
    ("outbox_sent", ([Sent(5, 2000.0, 77, view=True)],), {}),  # a ping naming matters 1 and 2 becomes a view
    ("live_views", ([1, 2],), {}), ("views", (["k3"],), {}), ("waiting_refreshes", (["k3"],), {}),
    ("outbox_done", ([99], 1.0, "x"), {}), ("view_dead", ("k3", "gone"), {}), ("live_views", ([1, 2],), {}),
    ("views_dead_in", (U1_CHAT, "gone"), {}), ("outbox_retry", (2, 3000.0, "e"), {}), ("outbox_failed", (2, "e"), {}),
    ("fail_pending_for_chat", (-999, "e"), {}), ("bind_chat", (U1_CHAT, UNIT, HEAD, 1.0), {}),
    ("move_chat", (U1_CHAT, -2001), {}), ("bindings", (), {}), ("set_chat_language", (-2001, "en"), {}),
    ("chat_languages", (), {}), ("mark_unreachable", (-2001, 5.0), {}), ("mark_unreachable", (-2001, 6.0), {}),
    ("unreachable_chats", (), {}), ("set_prompt", (U1_CHAT, RESIDENT, 1.0), {}),
    ("set_prompt", (U1_CHAT, RESIDENT, 2.0), {"kind": "note", "matter_id": 1}),  # INSERT OR REPLACE
    ("prompt", (U1_CHAT, RESIDENT, 0.0), {}), ("take_prompt", (U1_CHAT, RESIDENT, 0.0), {}),
    ("matters_of", (RESIDENT,), {}), ("reported_units", (RESIDENT,), {}), ("matter_by_message", (-2001, 7), {}),
    ("attachments", (1,), {}), ("report_times", (RESIDENT, 0.0), {}), ("report_times", (RESIDENT, 0.0, True), {}),
    ("limit_times", ([RESIDENT], 0.0), {}), ("recent_reports", (0.0,), {}), ("urgent_alerts", (RESIDENT, 0.0), {}),
    ("hold_report", ({"unit_id": UNIT, "chat_id": U1_CHAT, "reporter_id": RESIDENT, "reporter_name": "居民",
                      "limit_key": RESIDENT, "text": "t", "reason": "hourly", "created_at": 1.0},), {}),
    ("held_report", (1,), {}), ("held_reports", ([UNIT],), {}), ("release_held", (1, 1, HEAD, 2.0), {}),
    ("release_held", (1, 1, HEAD, 2.0), {}), ("first_started", (1.0,), {}), ("first_started", (2.0,), {}),
    ("schedule_ran", ("s", "p"), {}), ("mark_schedule", ("s", "p", 1.0), {}), ("mark_schedule", ("s", "p", 1.0), {}),
    ("mark_schedule", ("s", "p", 1.0, "st2"), {}), ("schedule_ran", ("s", "p", "st2"), {}),
    ("hold_ping", (U1_CHAT, 1, "ping", 3, "quiet", 1.0, 2.0), {}), ("held_pings_due", (5.0,), {}),
    ("drop_held_pings", ([1],), {}), ("set_private_chat", (RESIDENT, "居民", 1.0), {}),
    ("has_private_chat", (RESIDENT,), {}), ("add_duty_override", (21, "n", 1.0, 9.0, 11, "st2"), {}),
    ("duty_overrides", (0.0, "st2"), {}), ("duty_overrides", (0.0, "st1"), {}),
    ("inbox_add", ([(1, "{}"), (2, None)], 1.0), {}), ("inbox_done", ([1], 2.0), {}),
    ("inbox_try_failed", (2, "E", 3.0), {}), ("inbox_try_failed", (2, "E", 3.0), {}),
    ("inbox_try_failed", (2, "E", 3.0), {}), ("inbox_failed", (), {}), ("inbox_failed_count", (), {}),
    ("inbox_is_done", (1,), {}), ("inbox_last_id", (), {}), ("inbox_pending", (), {}), ("outbox_prune", (0.0,), {}),
    ("inbox_prune", (0.0,), {}), ("summary_matters", (0.0, 9999.0), {}), ("timelines", ([1, 2],), {}),
    ("ratings_given", (0.0, 500.0, 9999.0), {}), ("escalated_between", (0.0, 9999.0), {}),
    ("week_counts", (7.0, ["st1"]), {}), ("count_week", (0.0, 9999.0), {}),
    ("save_week_counts", (7.0, {"st1": [(UNIT, "other", 2)], "st2": []},
                          {"st1": {"key": "k", "sums": {"st1": {"other": 2}}}, "st2": {"key": "k2", "sums": {}}}), {}),
    ("week_counts", (7.0, ["st1", "st2"]), {}), ("week_counts", (7.0, ["st1", "st3"]), {}),
    ("week_sums", (7.0, ["st1", "st2"]), {}), ("week_sums", (7.0, ["st1", "st3"]), {}),
    ("ledger_matters", (0.0, 9999.0), {}), ("ledger_events", ([1, 2],), {}),
    ("save_published", ("w", 0.0, 1.0, "{}", 2.0, "st1"), {}),
    ("save_published", ("w", 0.0, 1.0, "{}", 2.0, "st2"), {}),
    ("published", ("w", 0.0, 1.0), {}), ("adopt_town_rows", ("st1", ["s"]), {}),
    ("insert_broadcast", ("c1", -200, 5, 21, "p", "hi", None, "zh", 2, 1.0), {}),
    ("add_broadcast_target", (1, UNIT, U1_CHAT, "bc:1:u1"), {}), ("broadcast", (1,), {}),
    ("broadcast_pending", (1,), {}), ("unreported_broadcasts_to", (U1_CHAT,), {}),
    ("mark_broadcast_reported", (1, 2.0), {}), ("set_meta", ("menu:a", "1"), {}), ("set_meta", ("menu:a", "2"), {}),
    ("meta_values", ("menu:",), {}), ("meta_value", ("menu:a",), {}), ("delete_meta", ("menu:",), {}),
    ("meta_values", ("menu:",), {}), ("schema_version", (), {}), ("open_by_tier", (), {}), ("running_matters", (), {}),
    ("outbox_backlog", (), {}), ("safety_polls_add", ([(UNIT, "2026-11", U1_CHAT, "poll:u1", 1.0, 9.0)],), {}),
    ("safety_polls_add", ([(UNIT, "2026-11", U1_CHAT, "poll:u1", 1.0, 9.0)],), {}),
    ("safety_poll_sent", ("poll:u1", 5, "P1"), {}), ("safety_poll_counted", ("P1", [1, 2], 3, 2.0), {}),
    ("safety_polls_due", (10.0,), {}), ("safety_polls_stopping", ([1], 10.0), {}),
    ("safety_poll_close", (UNIT, "2026-11", 11.0), {}), ("safety_polls_close_chat", (U1_CHAT, 12.0), {}),
    ("safety_counts", (["2026-11"],), {}), ("insert_village_notice", ("c1", "2026-W48", -200, "t", 1.0), {}),
    ("insert_village_notice", ("c1", "2026-W48", -200, "t", 1.0), {}), ("village_notice", (1,), {}),
    ("set_village_notice_text", (1, "t2"), {}), ("set_village_notice_message", (1, 9), {}),
    ("decide_village_notice", (1, "published", 2.0, 21, "p"), {}), ("notice_of_prompt", (-200, 9), {}),
    ("village_notices_late", (0.0, 9999.0, 10.0), {}), ("insert_screening", ("c1", "2026-W48", -200, 1.0, 100.0), {}),
    ("screening", (1,), {}), ("screenings_to_remind", (50.0, 60.0), {}), ("mark_screening_reminded", (1, 50.0), {}),
    ("answer_screening", (1, "findings", 60.0, 22, "s"), {}), ("set_screening_message", (1, 5), {}),
    ("add_finding", (1, UNIT, "f", 22, "s", 61.0), {}), ("finding", (1,), {}), ("findings_of", (1,), {}),
    ("decide_finding", (1, "matter", 62.0, 1), {}), ("screening_of_prompt", (-200, 5), {}),
    ("screenings_missing", (0.0, 9999.0), {}), ("screenings_between", (0.0, 9999.0), {}),
    ("update_matter", (1,), {"state": "resolved", "resolved_at": 5.0, "closed_at": 5.0}),
    ("purge_matters", (99999.0, 99999.0), {}), ("purge_people", (99999.0,), {}), ("matter", (1,), {}),
]
# No ORDER BY: in the order each engine reads them (every caller sorts or counts).
UNORDERED = {"recent_reports", "summary_matters", "running_matters"}


async def answers(database: str) -> list[tuple[str, Any]]:
    store = await Store.open(database)
    out: list[tuple[str, Any]] = []
    try:
        async with store.transaction() as tx:
            await tx.insert_reports([report("甲", 1000.0, 7, photo="PH"), report("乙", 1100.0, 8)])
            await tx.outbox_insert([
                ("k1", U1_CHAT, "message", 1, "hi", None, None, None, None, 1.0, 1.0),
                ("k2", U1_CHAT, "message", 2, "hi", None, None, None, json.dumps({"matters": [1]}), 1.0, 1.0),
                ("k3", U1_CHAT, "ping", 1, None, None, None, None, json.dumps({"matters": [1, 2]}), 1.0, 1.0),
                ("k4", U1_CHAT, "view", None, None, None, None, None, json.dumps({"view": "k3"}), 1.0, 1.0),
            ])
        for name, args, kwargs in CALLS:
            async with store.transaction() as tx:
                answer = await getattr(tx, name)(*args, **kwargs)
            out.append((name, sorted(answer[0] if name == "summary_matters" else answer, key=repr)
                        if name in UNORDERED else answer))
    finally:
        await store.close()
    return out


async def test_every_query_answers_on_postgresql_as_on_sqlite(postgres_url: str, tmp_path: Path) -> None:
    sqlite = await answers(str(tmp_path / "town.sqlite3"))
    postgres = await answers(postgres_url)
    for (name, expected), (_, got) in zip(sqlite, postgres, strict=True):
        assert got == expected, name
    # The scenario reaches what it is about: views recorded from JSON, found, refreshed.
    found = dict(sqlite)
    assert found["views"]["k3"].matters == (1, 2) and found["waiting_refreshes"] == {"k3": [6]}
    assert found["count_week"] == [(UNIT, "other", 2)] and found["prompt"] is not None


async def test_a_broadcasts_outcomes_come_in_the_order_of_its_targets(database_url: str) -> None:
    """SQLite reads them by rowid; PostgreSQL by ctid (Tx.broadcast_outcomes' branch)."""
    store = await Store.open(database_url)
    try:
        async with store.transaction() as tx:
            await tx.insert_broadcast("c1", -200, 5, 21, "警官", "通知", None, "zh", 2, 1.0)
            await tx.add_broadcast_target(1, "u2", -202, "bc:1:u2")
            await tx.add_broadcast_target(1, "u1", -201, "bc:1:u1")
            await tx.add_broadcast_target(1, "u3", -301, "bc:1:u3")
            outcomes = await tx.broadcast_outcomes(1)
        assert [(o.unit_id, o.state) for o in outcomes] == [("u2", "failed"), ("u1", "failed"), ("u3", "failed")]
    finally:
        await store.close()


async def trips_per_commit(database: str, sizes: list[int]) -> list[int]:
    """Queries sent to the database by the group commit of each batch of reports: the calls
    to aiosqlite's thread on SQLite, the statements asyncpg ran on PostgreSQL."""
    store = await Store.open(database)
    sent = 0

    def count(record: object = None) -> None:
        nonlocal sent
        sent += 1

    if store.engine == "postgres":
        store._conn.raw.add_query_logger(count)  # type: ignore[union-attr]
    else:
        conn: Any = store._conn

        def counting(call: Any) -> Any:
            def counted(*args: Any, **kwargs: Any) -> Any:
                count()
                return call(*args, **kwargs)
            return counted

        for name in ("execute", "execute_fetchall", "executemany"):
            setattr(conn, name, counting(getattr(conn, name)))
    out = []
    try:
        for size in sizes:
            before = sent
            for i in range(size):
                store.queue_report(report(f"第{i}件", 1000.0 + i, 100 + i))
            async with store.read():  # waits for the group commit
                pass
            out.append(sent - before)
    finally:
        await store.close()
    return out


async def test_a_batch_of_reports_costs_as_few_trips_on_postgresql_as_on_sqlite(postgres_url: str,
                                                                             tmp_path: Path) -> None:
    """The group commit writes any number of reports in a few trips (bot/store/store.py): on
    PostgreSQL the same few, each query one trip (executemany is asyncpg's pipelined one, the
    writers' lock rides with BEGIN). The first batch of a size prepares its statements."""
    sizes = [1, 30, 1, 30]
    sqlite = await trips_per_commit(str(tmp_path / "town.sqlite3"), sizes)
    postgres = await trips_per_commit(postgres_url, sizes)
    assert sqlite[2] == sqlite[3] == 5  # BEGIN, matters, events, outbox, COMMIT
    assert postgres[2:] == sqlite[2:]
