"""The bulletins' faster paths (issue 12, speed) count what the plain definition counts: on a
generated month of a small town's matters and events (claims, moves up, resolves, other
closes, reopens, ratings; many of them exactly on a period's boundary; matters of a unit
since removed from the config), every week's figures and the week's before, on SQLite and
on PostgreSQL."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from bot.store import Store
from escalation.summary import escalated_between, facts, unit_figures

H = 3600.0
WEEK = 7 * 24 * H
BASE = 1_700_000_000.0
UNITS = ["u1", "u2", "u3", "u4"]  # "gone" reports too: a unit since removed from config.yaml
LABELS = ["满意", "基本满意", "不满意", "satisfied"]


def _month(seed: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Matters over five weeks (and some reported long before, still open), with events."""
    rng = random.Random(seed)
    bounds = [BASE + k * WEEK for k in range(6)]

    def moment(after: float) -> float:
        """A time after ``after``: now and then exactly on a week's boundary."""
        later = [b for b in bounds if b > after]
        if later and rng.random() < 0.2:
            return rng.choice(later[:2])
        return after + rng.expovariate(1 / (rng.choice([2, 30, 200]) * H))

    created_times = sorted([BASE - rng.random() * 6 * WEEK for _ in range(60)]
                           + [BASE + rng.random() * 5 * WEEK for _ in range(340)]
                           + [rng.choice(bounds) for _ in range(20)])
    matters: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for number, created in enumerate(created_times, 1):
        row = {"id": number, "unit_id": rng.choice([*UNITS, *UNITS, "gone"]), "chat_id": -1, "reporter_id": 1,
               "reporter_name": "居民", "text": "事项", "state": "open", "tier": 3, "top_tier": 3,
               "tier_since": created, "rules": "{}", "created_at": created,
               "category": rng.choice(["neighbour", "wages", "other"]), "private": int(rng.random() < 0.1),
               "first_claimed_at": None, "escalated_at": None, "resolved_at": None, "closed_at": None}
        matters.append(row)

        def event(at: float, kind: str, tier: int | None = 3, actor: int | None = 7, detail: str | None = None,
                  matter: int = number) -> None:
            events.append({"matter_id": matter, "at": at, "kind": kind, "tier": tier, "actor_id": actor,
                           "detail": detail})

        at = created
        if rng.random() < 0.6:
            at = row["first_claimed_at"] = moment(created)
            event(at, "claimed")
        if rng.random() < 0.25:  # up to the community by a deadline or by hand, some on to the station
            at = row["escalated_at"] = moment(created)
            event(at, rng.choice(["escalated", "escalated", "taken_over"]), 2, rng.choice([None, 7]))
            row["top_tier"] = row["tier"] = 2
            if rng.random() < 0.3:
                at = moment(at)
                event(at, "escalated", 1, None)
                row["top_tier"] = row["tier"] = 1
        fate = rng.random()
        if fate < 0.65:
            at = row["resolved_at"] = row["closed_at"] = moment(at)
            row["state"] = "resolved"
            event(at, "resolved", row["tier"])
            if rng.random() < 0.1:  # an old row: closed_at was not kept then
                row["closed_at"] = None
            if rng.random() < 0.5:
                event(moment(at), "rated", row["tier"], 1, rng.choice(LABELS))
            if rng.random() < 0.15:  # reopened, and maybe resolved again
                at = moment(at)
                event(at, "reopened", 3)
                row.update(state="open", closed_at=None, resolved_at=None, tier=3)  # as bot/matters.py does
                if rng.random() < 0.5:
                    at = row["resolved_at"] = row["closed_at"] = moment(at)
                    row["state"] = "resolved"
                    event(at, "resolved", 3)
                    event(moment(at), "rated", 3, 1, rng.choice(LABELS))
        elif fate < 0.75:
            kind = rng.choice(["unresolvable", "referred", "cancelled"])
            at = row["closed_at"] = moment(at)
            row["state"] = kind
            event(at, kind, row["tier"])
    return matters, events


async def _figures(tx: Any, start: float, middle: float, end: float, fast: bool) -> tuple[Any, Any]:
    """Each unit's figures for [middle, end) and [start, middle), read as the bulletins read
    them (``fast``) or every matter as a row of its own (summary_matters) and every rating
    joined with its matter."""
    if fast:
        plain, moved, events, idle = await tx.summary_rows(start, end)
    else:
        (plain, moved, events), idle = await tx.summary_matters(start, end), []
    # the fast way reads the ratings kept with their units; the plain one joins each rated event's matter
    ratings = await (tx.ratings_given(start, middle, end) if fast else _ratings_joined(tx, start, middle, end))
    matters = facts(moved, events)
    return tuple(unit_figures(matters, escalated_between(moved, events, a, b), UNITS, a, b, ratings, plain, idle)
                 for a, b in ((middle, end), (start, middle)))


async def _ratings_joined(tx: Any, start: float, middle: float, end: float) -> list[tuple[Any, ...]]:
    """Ratings by definition: every "rated" event in the window, with its matter's unit."""
    counts = Counter(map(tuple, await tx._all(
        "SELECT m.unit_id, e.detail, e.at >= $1 FROM events e JOIN matters m ON m.id = e.matter_id "
        "WHERE e.kind = 'rated' AND e.at >= $2 AND e.at < $3", (middle, start, end))))
    return [(unit_id, label, middle if later else start, n) for (unit_id, label, later), n in counts.items()]


async def test_the_fast_reads_count_as_every_matters_row_does(database_url: str) -> None:
    store = await Store.open(database_url)
    try:
        for seed in range(3):
            matters, events = _month(seed)
            async with store.transaction() as tx:
                for table in ("ratings", "events", "matters"):
                    await tx._conn.execute(f"DELETE FROM {table}")
                await tx._insert_many("matters", matters)
                await tx._insert_many("events", [e for e in events if e["kind"] != "rated"])
                for e in events:  # as bot/matters.py gives them: kept in ratings too
                    if e["kind"] == "rated":
                        await tx.add_event(e["matter_id"], e["at"], "rated", actor_id=e["actor_id"], tier=e["tier"],
                                           detail=e["detail"])
            idle_seen, counted = 0, set()
            async with store.read() as tx:
                for week in range(6):
                    end = BASE + week * WEEK
                    for shift in (0.0, 1.0, -1.0, 5 * H):  # on the boundaries and beside them
                        start, middle, end_ = end - 2 * WEEK + shift, end - WEEK + shift, end + shift
                        fast = await _figures(tx, start, middle, end_, fast=True)
                        plain = await _figures(tx, start, middle, end_, fast=False)
                        assert fast == plain, (seed, week, shift)
                        counted |= {name for figs in fast for f in figs.values() for name in
                                    ("new", "resolved", "open", "overdue", "to_community", "to_station",
                                     "unclaimed_up", "ratings", "claim_times", "at_station") if getattr(f, name)}
                        idle_seen += sum(n for _, n in (await tx.summary_rows(start, end_))[3])
            assert idle_seen > 0  # the matters counted, not read, were there to count
            assert len(counted) == 10  # and every kind of figure had something to count
    finally:
        await store.close()


async def test_the_matters_from_before_and_the_timelines_are_read_from_indexes_alone(
    tmp_path: Any, monkeypatch: Any
) -> None:
    """What the bulletins read besides the period's own matters is read from indexes alone,
    never from the rows: the open matters reported before the period (tens of thousands in
    a big town, scattered over the table) from matters_open_figures, the older ones closed
    in it from matters_closed_figures, and the timelines of those that moved from
    events_timeline."""
    store = await Store.open(tmp_path / "t.sqlite3")
    asked: list[tuple[str, Any]] = []
    try:
        async with store.read() as tx:
            read = tx._all

            async def recording(sql: str, params: Any = ()) -> list[Any]:
                asked.append((sql, params))
                return await read(sql, params)

            monkeypatch.setattr(tx, "_all", recording)
            await tx.summary_rows(BASE, BASE + WEEK)
            await tx.timelines([1, 2])
            monkeypatch.undo()
            plans = {index: [str(await tx._all(f"EXPLAIN QUERY PLAN {sql}", params)) for sql, params in asked
                             if index in sql]
                     for index in ("matters_open_figures", "matters_closed_figures", "events_timeline")}
    finally:
        await store.close()
    # the rows of the open ones not idle in the period, and the count of those idle; the
    # closed ones; the timelines
    assert [len(p) for p in plans.values()] == [2, 1, 1]
    for index, index_plans in plans.items():
        for plan in index_plans:
            assert f"COVERING INDEX {index}" in plan
            assert "SCAN m" not in plan
    # and the period's own matters by number, in one pass (not ORed through two indexes)
    (rows_plan,) = plans["matters_closed_figures"]
    assert "INTEGER PRIMARY KEY (rowid>?)" in rows_plan and "MULTI-INDEX OR" not in rows_plan
