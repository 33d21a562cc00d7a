"""Sweep cost against history on PostgreSQL (issue 17): one sweep of 100 due matters over
10,000, 1,000,000 and 10,000,000 matters (1% open), in a town of 2,000 units.

As bench/sweep_history.py does for SQLite: the sweep must cost what is due, found through
the next_due partial index, not what is stored. Goal: the largest within 2× the smallest.
The matters are generated on the server (INSERT … SELECT generate_series, the secondary
indexes dropped meanwhile and rebuilt after, then ANALYZE); only matters, not their
timelines and sent messages (the sweep reads neither). Each figure is the median of several
sweeps of the same 100 due matters, put back as they were between runs; each size is in a
schema of its own and the sizes take turns, so that the machine's load weighs on each alike.

Needs a server: TIERBOT_BENCH_POSTGRES (else TIERBOT_TEST_POSTGRES); 10,000,000 matters take
some 5 GB, so a server of its own: ``.ci/postgres.sh .venv/bin/python bench/sweep_postgres.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import time

import asyncpg
from _common import POSTGRES, QUICK, PostgresSchema, header, median, parse, town, verdict

from bot.store import Store
from bot.text.i18n import Languages
from bot.tree import Tree
from escalation import policy
from escalation.notify import Notifier
from escalation.policy import State
from escalation.sweep import sweep

SIZES = [1_000, 10_000, 100_000] if QUICK else [10_000, 1_000_000, 10_000_000]
RUNS = 9
DUE = 100
OPEN_SHARE = 0.01
SPAN = 365 * 86400.0
NOW = 1_795_000_000.0
RESET_FIELDS = ("state", "tier", "top_tier", "tier_since", "claim_since", "last_ping_at", "reminded_upto",
                "next_due", "escalated_at")
TEXT = "楼道堆放大量纸箱杂物，有消防隐患"

# Resolved matters, ids first..last of a history of ``total``, spread over the year before NOW.
FILL = """
INSERT INTO matters (id, unit_id, chat_id, report_message_id, reporter_id, reporter_name, text, state, tier,
    top_tier, tier_since, next_due, rules, created_at, first_claimed_at, claimed_by, claimed_by_name, claimed_at,
    resolved_at, resolved_by, resolved_by_name, resolution, card_chat_id, card_message_id, category, closed_at,
    claim_since)
SELECT g, ($3::text[])[u], ($4::bigint[])[u], 2 * g - 1, 700000 + g % 5000, '居民' || (700000 + g % 5000),
    $5 || '（' || g || '）', 'resolved', 3, 3, t, NULL, $6, t, t + 600, ($7::bigint[])[u], '组长', t + 600,
    t + 3600, ($7::bigint[])[u], '组长', '已处理', ($4::bigint[])[u], 2 * g, 'other', t + 3600, t
FROM generate_series($1::bigint, $2::bigint) g,
    LATERAL (SELECT 1 + (g * 7919) % array_length($3::text[], 1) AS u,
                    $8::float8 - $9::float8 * (1 - g::float8 / $10::float8) AS t) x
"""


async def build(conn: asyncpg.Connection, first: int, size: int, raw: dict, claim: float) -> None:
    """Matters ``first``..``size``, resolved, then the latest 1% opened and 100 of them made
    due at NOW."""
    units = [u for c in raw["station"]["communities"] for u in c["units"]]
    indexes = await conn.fetch("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'matters' "
                               "AND schemaname = current_schema() AND indexname NOT LIKE '%pkey'")
    for index in indexes:
        await conn.execute(f"DROP INDEX {index['indexname']}")
    step = 1_000_000
    for start in range(first, size + 1, step):
        await conn.execute(FILL, start, min(size, start + step - 1), [u["id"] for u in units],
                           [u["chat_id"] for u in units], TEXT, RULES_JSON, [u["heads"][0]["id"] for u in units],
                           NOW, SPAN, float(size))
    for index in indexes:
        await conn.execute(index["indexdef"])
    opened = max(DUE, round(size * OPEN_SHARE))
    # Open, their claim deadline still ahead.
    await conn.execute(
        "UPDATE matters SET state = 'open', resolved_at = NULL, closed_at = NULL, first_claimed_at = NULL, "
        "claimed_by = NULL, claimed_by_name = NULL, claimed_at = NULL, resolved_by = NULL, resolved_by_name = NULL, "
        "resolution = NULL, created_at = $2 - (id % 1000) * $3 / 1000 * 0.9, "
        "tier_since = $2 - (id % 1000) * $3 / 1000 * 0.9, claim_since = $2 - (id % 1000) * $3 / 1000 * 0.9, "
        "next_due = $2 - (id % 1000) * $3 / 1000 * 0.9 + $3 WHERE id > $1",
        size - opened, NOW, claim)
    rnd = random.Random(6)
    due = []
    for matter_id in rnd.sample(range(size - opened + 1, size + 1), DUE):
        since = NOW - claim - rnd.random() * 600
        due.append((since, policy.next_check(policy.Clock(State.OPEN, 3, since), RULES), matter_id))
    await conn.executemany(
        "UPDATE matters SET created_at = $1, tier_since = $1, claim_since = $1, next_due = $2 WHERE id = $3", due)
    await conn.execute("ANALYZE matters")


class Sweeps:
    """Sweeps of one history's DUE matters, each put back as it was after it."""

    def __init__(self, url: str, notifier: Notifier) -> None:
        self.url, self.notifier = url, notifier
        self.busy: list[float] = []
        self.idle: list[float] = []
        self.taken = 0

    async def __aenter__(self) -> Sweeps:
        self.plain = await asyncpg.connect(self.url)  # the bench's own SQL, outside the bot's store
        self.saved = [tuple(r) for r in await self.plain.fetch(
            f"SELECT {', '.join(RESET_FIELDS)}, id FROM matters WHERE next_due <= $1", NOW)]
        self.max_event = await self.plain.fetchval("SELECT coalesce(max(id), 0) FROM events")
        self.max_outbox = await self.plain.fetchval("SELECT coalesce(max(id), 0) FROM outbox")
        self.store = await Store.open(self.url)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.store.close()
        await self.plain.close()

    async def once(self) -> None:
        started = time.perf_counter()
        self.taken = await sweep(self.store, self.notifier, NOW)
        self.busy.append(time.perf_counter() - started)
        started = time.perf_counter()
        again = await sweep(self.store, self.notifier, NOW)
        self.idle.append(time.perf_counter() - started)
        assert again == 0, "a second sweep at the same moment must do nothing"
        async with self.plain.transaction():
            await self.plain.executemany(
                f"UPDATE matters SET {', '.join(f'{f} = ${n}' for n, f in enumerate(RESET_FIELDS, 1))} "
                f"WHERE id = ${len(RESET_FIELDS) + 1}", self.saved)
            await self.plain.execute("DELETE FROM view_matters")
            await self.plain.execute("DELETE FROM views")
            await self.plain.execute("DELETE FROM events WHERE id > $1", self.max_event)
            await self.plain.execute("DELETE FROM outbox WHERE id > $1", self.max_outbox)


async def run(raw: dict, notifier: Notifier, claim: float) -> dict[int, float]:
    """Each size in a schema of its own, built first; then the sweeps of all sizes taking
    turns, so that the machine's load weighs on each alike."""
    async with contextlib.AsyncExitStack() as stack:
        urls: dict[int, str] = {}
        for size in SIZES:
            url = urls[size] = await stack.enter_async_context(PostgresSchema())
            store = await Store.open(url)  # the real schema and migrations
            await store.close()
            conn = await asyncpg.connect(url)
            try:
                started = time.perf_counter()
                await build(conn, 1, size, raw, claim)
                megabytes = await conn.fetchval("SELECT pg_total_relation_size('matters')") / 1e6
                plan = "\n".join(r[0] for r in await conn.fetch(
                    "EXPLAIN SELECT id FROM matters WHERE next_due IS NOT NULL AND next_due <= $1 "
                    "ORDER BY next_due LIMIT 200", NOW))
            finally:
                await conn.close()
            # The due ones found through the partial index (a table of a few pages is read whole).
            via = "matters_due" if "matters_due" in plan else "a table scan"
            print(f"  {size:>10,} matters: {megabytes:,.0f} MB with indexes, ready in "
                  f"{time.perf_counter() - started:.0f} s; the due found via {via}", flush=True)
        sweeps = {size: await stack.enter_async_context(Sweeps(urls[size], notifier)) for size in SIZES}
        for _ in range(RUNS):
            for size in SIZES:
                await sweeps[size].once()
        for size, done in sweeps.items():
            assert done.taken == DUE, f"expected {DUE} escalations, got {done.taken}"
            print(f"  {size:>10,} matters: sweep of {DUE} due {median(done.busy) * 1000:7.1f} ms · "
                  f"idle sweep {median(done.idle) * 1000:6.2f} ms", flush=True)
        return {size: median(done.busy) * 1000 for size, done in sweeps.items()}


def main() -> int:
    global RULES, RULES_JSON
    header(f"Sweep cost against history on PostgreSQL (2,000 units; 1% open; {DUE} due)")
    if not POSTGRES:
        print("  skipped: TIERBOT_BENCH_POSTGRES (or TIERBOT_TEST_POSTGRES) is not set")
        return 0
    raw = town(2000, 80, "unused")
    config = parse(raw)
    RULES = config.rules_for("other")
    RULES_JSON = RULES.to_json()
    notifier = Notifier(Tree(config), Languages(config.language, config.tz), config)
    results = asyncio.run(run(raw, notifier, RULES.tiers[3].claim))
    small, large = results[SIZES[0]], results[SIZES[-1]]
    print(f"  goal: {SIZES[-1]:,} within 2× {SIZES[0]:,}: {large / small:.2f}× → {verdict(large <= 2 * small)}")
    return 0


RULES = None
RULES_JSON = ""

if __name__ == "__main__":
    sys.exit(main())
