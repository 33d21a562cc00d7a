"""The bulletins' figures read fast (issue 12, speed): ratings from a covering index with
their units from the week's rows, escalations from the timelines already read. Each
shortcut must give what the plain queries give, on the smallest case of each."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from bot.config import parse_config
from bot.store import MIGRATIONS, Event, Store
from bot.tree import Tree
from escalation.reports import bulletin, service
from escalation.summary import escalated_between
from tests.conftest import parse_town, town

RATINGS_MIGRATION = next(m for m in MIGRATIONS if "CREATE TABLE ratings" in m)
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
    """The ratings are counted as one range of ``ratings``, each with its matter's unit:
    those kept as the migration found them and those add_event keeps as they are given,
    whatever became of their matter (#1 closed before the period)."""
    path = tmp_path / "t.sqlite3"
    await (await _town(path)).close()  # its events written straight: as a database before migration 19
    with closing(sqlite3.connect(path)) as db:
        db.executescript(  # back to version 18: what migrations 19 and 20 made, undone
            "DROP TABLE ratings; CREATE INDEX events_kind_at_matter ON events(kind, at, matter_id, detail); "
            "DROP INDEX events_timeline; DROP INDEX matters_closed_figures; "
            f"PRAGMA user_version = {MIGRATIONS.index(RATINGS_MIGRATION)}")
    store = await Store.open(path)  # migration 19 keeps the ratings it finds
    try:
        async with store.transaction() as tx:
            await tx.add_event(4, MIDDLE + 20 * H, "rated", actor_id=1, tier=2, detail="不满意")  # given now
        async with store.read() as tx:
            counted = await tx.ratings_given(START, MIDDLE, END)
            plan = await tx._all("EXPLAIN QUERY PLAN SELECT unit_id, label, at >= $1 FROM ratings "
                                 "WHERE at >= $2 AND at < $3", (0, 1, 2))
    finally:
        await store.close()
    expected = [("u1", "基本满意", MIDDLE, 1), ("u1", "满意", START, 1), ("u2", "不满意", START, 1),
                ("u2", "不满意", MIDDLE, 1), ("u2", "满意", MIDDLE, 1)]
    assert sorted(counted) == expected
    assert "SEARCH ratings USING PRIMARY KEY (at>? AND at<?)" in str(plan)  # one range, nothing else read


async def test_the_sweeps_batch_writes_no_rating(tmp_path: Path) -> None:
    """add_events (the sweep's) keeps no ratings: a rating written there would go uncounted."""
    store = await Store.open(tmp_path / "t.sqlite3")
    try:
        async with store.transaction() as tx:
            with pytest.raises(ValueError, match="add_event"):
                await tx.add_events([Event(1, START, None, None, "rated", 3, "满意")])
    finally:
        await store.close()


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


async def test_kept_week_sums_are_read_back_only_while_the_units_are_where_they_were(tmp_path: Path) -> None:
    """A counted week is kept summed per community and station (migration 18) and read back
    as kept while each unit is in the community it was summed under; once a unit has moved
    (or for a week kept before the sums were), the week's unit rows are summed again, for
    the tree as it is now."""
    store = await _town(tmp_path / "t.sqlite3")  # u1 has #1 and #3, u2 has #2 and #4
    before = Tree(parse_town())  # u1 and u2 in c1
    raw = town()
    raw["station"]["communities"][1]["units"].append(raw["station"]["communities"][0]["units"].pop(0))
    moved = Tree(parse_config(raw))  # u1 now in c2
    period = bulletin.weekly_period(END + 2 * H)

    async def counted(tree: Tree) -> list[dict[str, dict[str, int]]]:
        async with store.read() as tx:
            return [bulletin.week_sums(tree, await tx.count_week(period.week_start(end), end))
                    for end in period.chart_weeks()]

    try:
        first = await service.chart_history(store, period, END + 2 * H, before)  # counts and keeps every week
        async with store.read() as tx:
            kept = await tx.week_sums(period.chart_weeks()[-1], ["st"])
        again = await service.chart_history(store, period, END + 2 * H, before)
        after_move = await service.chart_history(store, period, END + 2 * H, moved)
        async with store.transaction() as tx:
            await tx._conn.execute("UPDATE week_counts SET sums = NULL")  # as kept before migration 18
        old_rows = await service.chart_history(store, period, END + 2 * H, before)
        expected_before, expected_moved = await counted(before), await counted(moved)
    finally:
        await store.close()
    assert kept is not None and kept["st"]["key"] == service.chart_key(before, "st")
    assert first == again == old_rows == expected_before
    assert after_move == expected_moved != expected_before
    assert any(week.get("c2", {}).get("other") for week in after_move)  # u1's matters went with it
