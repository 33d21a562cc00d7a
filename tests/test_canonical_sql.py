"""The SQL written once, in the canonical spelling (issue 17): ``$n`` parameters, read by
PostgreSQL as they are and by SQLite as ``?n`` (bot/store/dialect.py). Old-style SQL (``?``)
keeps working beside it, translated for PostgreSQL as before."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from bot.store import Store, postgres
from bot.store.dialect import is_canonical, postgres_query, sqlite_form, sqlite_query
from tests.conftest import U1_CHAT
from tests.test_postgres_queries import UNIT, answers, report


def test_the_canonical_spelling_is_read_by_each_engine() -> None:
    canonical = "SELECT key FROM meta WHERE value = $2 AND key >= $1 AND key != '$1' AND value != $2"
    assert sqlite_query(canonical) == (
        "SELECT key FROM meta WHERE value = ?2 AND key >= ?1 AND key != '$1' AND value != ?2")
    assert postgres_query(canonical) == canonical
    # Old style: as it is on SQLite, translated on PostgreSQL.
    old = "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)"
    assert sqlite_query(old) == old
    assert postgres_query(old) == "INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT DO NOTHING"


async def test_both_spellings_answer_alike_on_both_engines(database_url: str) -> None:
    store = await Store.open(database_url)
    try:
        async with store.transaction() as tx:
            await tx._conn.execute("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT DO NOTHING", ("a", "1"))
            await tx._conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", ("b", "2"))
            await tx._conn.executemany("INSERT INTO meta (key, value) VALUES ($2, $1) ON CONFLICT DO NOTHING",
                                       [("3", "c"), ("9", "a")])  # parameters out of order; "a" is kept
        async with store.read() as tx:
            # A parameter used twice, and the numbers out of their order.
            canonical = await tx._all("SELECT key, value FROM meta WHERE key IN ($2, $1) OR value = $2 ORDER BY key",
                                      ("a", "c"))
            old = await tx._all("SELECT key, value FROM meta WHERE key IN (?, ?) OR value = ? ORDER BY key",
                                ("c", "a", "c"))
        assert canonical == old == [("a", "1"), ("c", "3")]
    finally:
        await store.close()


def test_a_list_compared_with_any_is_spread_into_an_in_list_for_sqlite() -> None:
    sql = "UPDATE outbox SET sent_at = $1 WHERE id = ANY($2) AND error != $3 AND chat_id = ANY($2) AND key != '$2'"
    assert sqlite_form(sql, (5.0, [7, 8, 9], "x")) == (
        "UPDATE outbox SET sent_at = ?1 WHERE id IN (?2, ?3, ?4) AND error != ?5 AND chat_id IN (?2, ?3, ?4) "
        "AND key != '$2'", [5.0, 7, 8, 9, "x"])
    assert sqlite_form("SELECT 1 WHERE id = ANY($1) AND x = $2", ([], 5)) == ("SELECT 1 WHERE id IN () AND x = ?1", [5])


async def test_a_list_parameter_answers_alike_on_both_engines(database_url: str) -> None:
    store = await Store.open(database_url)
    try:
        async with store.transaction() as tx:
            await tx.set_meta("a", "1")
            await tx.set_meta("b", "2")
            await tx.set_meta("c", "3")
        async with store.read() as tx:
            found = [await tx._all("SELECT key FROM meta WHERE key = ANY($1) AND value != $2 ORDER BY key", (keys, "2"))
                     for keys in (["a", "b", "c", "z"], ["b"], [])]
            left = await tx._all("SELECT key FROM meta WHERE NOT (key = ANY($1)) AND key = ANY($2) ORDER BY key",
                                 ([], ["a", "b"]))
        assert found == [[("a",), ("c",)], [], []] and left == [("a",), ("b",)]
    finally:
        await store.close()


# Calls the shared scenario (tests/test_postgres_queries.py) leaves out.
MORE: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("start_visit", (21, "警官", -200, 1.0), {"community_id": "c1", "step": "deed", "units": ["u1"]}),
    ("update_visit", (1, 2.0), {"deed": "走访", "households": 3}), ("add_visit_photo", (1, "F", 3.0), {}),
    ("visit", (1,), {}), ("open_visit", (21,), {}), ("visit_photos", (1,), {}), ("stale_visits", (9.0,), {}),
    ("update_visit", (1, 4.0), {"finished_at": 4.0}), ("visits_between", (0.0, 9.0), {"community_ids": ["c1"]}),
    ("visits_between", (0.0, 9.0), {"user_id": 21}), ("visit_matters", (1,), {}), ("drop_visit", (1,), {}),
    ("insert_broadcast", ("c1", -200, 5, 21, "p", "hi", None, "zh", 1, 1.0), {}),
    ("add_broadcast_target", (2, UNIT, U1_CHAT, "bc:2:u1"), {}), ("broadcast_outcomes", (2,), {}),
    ("hold_queued", (replace(report("丙", 1200.0, 9), per_hour=1, prompt_chat=U1_CHAT), 5000.0), {}),
]


async def test_every_query_tx_sends_is_in_the_canonical_spelling(postgres_url: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """No query of Tx needs the old spelling's translation any more: each one PostgreSQL gets
    is canonical, or has no parameter and reads the same translated or not. (Only the writers'
    lock, Store's BEGIN IMMEDIATE, is rewritten: the locking branch.)"""
    seen: set[str] = set()

    def recording(sql: str) -> str:
        seen.add(sql)
        return postgres_query(sql)

    monkeypatch.setattr(postgres, "postgres_query", recording)
    await answers(postgres_url)
    store = await Store.open(postgres_url)
    try:
        for name, args, kwargs in MORE:
            async with store.transaction() as tx:
                await getattr(tx, name)(*args, **kwargs)
    finally:
        await store.close()
    assert len(seen) > 150
    old = sorted(sql for sql in seen if not is_canonical(sql) and postgres_query(sql) != sql)
    assert old == ["BEGIN IMMEDIATE"]
