"""The bulletins' figures read fast (issue 12, speed): ratings from a covering index with
their units from the week's rows, escalations from the timelines already read. Each
shortcut must give what the plain queries give, on the smallest case of each."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from bot.store import Store
from escalation.summary import escalated_between

H = 3600.0
START = 1_000_000.0
MIDDLE, END = START + 7 * 24 * H, START + 14 * 24 * H


def _matter(matter_id: int, unit: str, created: float, closed: float | None, escalated: float | None = None) -> tuple:
    state = "open" if closed is None else "resolved"
    return (matter_id, unit, -1, 1, "居民", "事项", state, 3 if escalated is None else 2, 3, created, "{}",
            created, None, escalated, closed, "other", closed, None)


async def _town(path: Path) -> Store:
    """#1 (u1) resolved before the period and rated in its first week; #2 (u2) rated in
    each week; #3 (u1) escalated in the second week, then rated; #4 (u2) escalated
    before the period and still open."""
    store = await Store.open(path)
    with closing(sqlite3.connect(path)) as db:
        db.executemany(
            "INSERT INTO matters (id, unit_id, chat_id, reporter_id, reporter_name, text, state, top_tier, tier, "
            "tier_since, rules, created_at, first_claimed_at, escalated_at, resolved_at, category, closed_at, "
            "close_reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [_matter(1, "u1", START - 10 * H, START - 2 * H), _matter(2, "u2", START + H, START + 2 * H),
             _matter(3, "u1", MIDDLE + H, MIDDLE + 9 * H, escalated=MIDDLE + 3 * H),
             _matter(4, "u2", START - 50 * H, None, escalated=START - 40 * H)],
        )
        db.executemany(
            "INSERT INTO events (matter_id, at, kind, tier, detail) VALUES (?, ?, ?, ?, ?)",
            [(1, START - 2 * H, "resolved", 3, None), (1, START + H, "rated", 3, "满意"),
             (2, START + 2 * H, "resolved", 3, None), (2, START + 3 * H, "rated", 3, "不满意"),
             (2, MIDDLE + 3 * H, "rated", 3, "满意"), (3, MIDDLE + 3 * H, "escalated", 2, None),
             (3, MIDDLE + 9 * H, "resolved", 2, None), (3, MIDDLE + 10 * H, "rated", 2, "基本满意"),
             (4, START - 40 * H, "escalated", 2, None)],
        )
        db.commit()
    return store


async def test_ratings_from_the_index_count_as_the_joined_query_does(tmp_path: Path) -> None:
    store = await _town(tmp_path / "t.sqlite3")
    try:
        async with store.read() as tx:
            plain, moved, _ = await tx.summary_matters(START, END)
            units = {row[5]: row[0] for row in plain + moved}
            assert 1 not in units  # closed before the period: its unit comes from its row
            from_rows = await tx.ratings_given(START, MIDDLE, END, units)
            joined = await tx.ratings_given(START, MIDDLE, END)
            plan = await tx._all("EXPLAIN QUERY PLAN SELECT e.matter_id, e.detail FROM events e INDEXED BY "
                                 "events_kind_at_matter WHERE e.kind = 'rated' AND e.at >= ? AND e.at < ?", (0, 1))
    finally:
        await store.close()
    expected = [("u1", "基本满意", MIDDLE, 1), ("u1", "满意", START, 1), ("u2", "不满意", START, 1),
                ("u2", "满意", MIDDLE, 1)]
    assert sorted(from_rows) == sorted(joined) == sorted(expected)
    assert "COVERING INDEX events_kind_at_matter" in str(plan)  # the ratings' rows are never read


async def test_escalations_from_the_timelines_count_as_the_events_do(tmp_path: Path) -> None:
    store = await _town(tmp_path / "t.sqlite3")
    try:
        async with store.read() as tx:
            plain, moved, events = await tx.summary_matters(START, END)
            by_query = [await tx.escalated_between(a, b) for a, b in ((START, MIDDLE), (MIDDLE, END), (0, END))]
    finally:
        await store.close()
    assert sorted(r[5] for r in plain) == [2] and sorted(r[5] for r in moved) == [3, 4]
    by_timeline = [escalated_between(moved, events, a, b) for a, b in ((START, MIDDLE), (MIDDLE, END), (0, END))]
    assert by_timeline == by_query == [{}, {"u1": 1}, {"u1": 1, "u2": 1}]
