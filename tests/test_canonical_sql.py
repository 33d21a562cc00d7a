"""The SQL written once, in the canonical spelling (issue 17): ``$n`` parameters, read by
PostgreSQL as they are and by SQLite as ``?n`` (bot/store/dialect.py). Old-style SQL (``?``)
keeps working beside it, translated for PostgreSQL as before."""

from __future__ import annotations

from bot.store import Store
from bot.store.dialect import postgres_query, sqlite_form, sqlite_query


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
