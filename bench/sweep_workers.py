"""Three workers vs one on one sweep of 100,000 due matters, on PostgreSQL (issue 18).

Each worker is a process of its own (``python bench/sweep_workers.py --worker URL``), as each
`tierbot run` of a city is: its own connection, Store and event loop. All open their store
and build the town first; then, at one signal, each runs one sweep at the same moment, and
the figure is the time from the signal until the last has finished. Every matter is due
once (unclaimed past the unit's window: each escalates to its community once); afterwards
the database is checked: each matter escalated exactly once (its one "escalated" event and
its one card), none left due. Each run starts from a fresh schema with the same 100,000
matters (COPY), runs alternate 1 and 3 workers, and the figure is the median per count.

    TIERBOT_TEST_POSTGRES=postgresql://… python bench/sweep_workers.py [--quick] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
from _common import MATTER_FIELDS, QUICK, _matter_rows, header, parse, town

from bot.store import Store
from bot.text.i18n import Languages
from bot.tree import Tree
from escalation.notify import Notifier
from escalation.sweep import sweep

SCRIPT = Path(__file__).resolve()
HERE = SCRIPT.parent
MATTERS = 10_000 if QUICK else 100_000
UNITS, COMMUNITIES = 2000, 80
NOW = 1_795_000_000.0


def server() -> str:
    url = os.environ.get("TIERBOT_BENCH_POSTGRES") or os.environ.get("TIERBOT_TEST_POSTGRES") or ""
    if not url:
        sys.exit("set TIERBOT_BENCH_POSTGRES (or TIERBOT_TEST_POSTGRES) to a PostgreSQL server's URL")
    return url


def with_schema(url: str, schema: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}search_path={schema}"


@asynccontextmanager
async def fresh_schema(url: str) -> AsyncIterator[str]:
    """A new schema holding the town's MATTERS due matters, dropped afterwards."""
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(url)
    try:
        await admin.execute(f"CREATE SCHEMA {schema}")
        there = with_schema(url, schema)
        store = await Store.open(there)  # the real schema, from the store's own migrations
        await store.close()
        raw = town(UNITS, COMMUNITIES, there)
        rows = _matter_rows(raw, parse(raw).rules_for("other"), MATTERS, NOW, 30, 1.0, MATTERS, random.Random(18))
        conn = await asyncpg.connect(there)
        try:
            await conn.copy_records_to_table("matters", records=[r.matter for r in rows], columns=list(MATTER_FIELDS))
            await conn.execute("ANALYZE matters")
        finally:
            await conn.close()
        yield there
    finally:
        await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.close()


async def check(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        return {
            "escalated": await conn.fetchval("SELECT count(DISTINCT matter_id) FROM events WHERE kind = 'escalated'"),
            "twice": await conn.fetchval("SELECT count(*) FROM (SELECT matter_id FROM events WHERE kind = 'escalated' "
                                         "GROUP BY matter_id HAVING count(*) > 1) t"),
            "cards": await conn.fetchval("SELECT count(*) FROM outbox WHERE kind = 'card'"),
            "left": await conn.fetchval("SELECT count(*) FROM matters WHERE next_due <= $1", NOW),
        }
    finally:
        await conn.close()


async def run(url: str, workers: int) -> tuple[float, list[int]]:
    """Seconds from the signal until every worker's sweep has ended; each one's steps."""
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, str(SCRIPT), "--worker", url,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=HERE.parent,
        )
        for _ in range(workers)
    ]
    for proc in procs:
        assert proc.stdout is not None
        assert (await proc.stdout.readline()).strip() == b"ready"
    started = time.perf_counter()
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()
    outs = await asyncio.gather(*(proc.communicate() for proc in procs))
    took = time.perf_counter() - started
    assert all(proc.returncode == 0 for proc in procs), "a worker failed"
    return took, [json.loads(out.decode())["taken"] for out, _ in outs]


async def worker(url: str) -> None:
    config = parse(town(UNITS, COMMUNITIES, url))
    notifier = Notifier(Tree(config), Languages(config.language, config.tz), config)
    store = await Store.open(url)
    try:
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        taken = await sweep(store, notifier, NOW)
    finally:
        await store.close()
    print(json.dumps({"taken": taken}), flush=True)


async def main(rounds: int) -> int:
    url = server()
    header(f"Sweep of {MATTERS:,} due matters on PostgreSQL: 3 worker processes vs 1 ({UNITS:,} units)")
    times: dict[int, list[float]] = {1: [], 3: []}
    for _ in range(rounds):
        for workers in (1, 3):
            async with fresh_schema(url) as there:
                took, taken = await run(there, workers)
                found = await check(there)
            assert sum(taken) == MATTERS, f"{sum(taken)} steps taken, not {MATTERS}"
            assert found == {"escalated": MATTERS, "twice": 0, "cards": MATTERS, "left": 0}, found
            times[workers].append(took)
            print(f"  {workers} worker(s): {took:6.2f} s ({MATTERS / took:,.0f} matters/s), steps per worker "
                  f"{taken}; each matter escalated once, none left due", flush=True)
    one, three = statistics.median(times[1]), statistics.median(times[3])
    print(f"  median: 1 worker {one:.2f} s, 3 workers {three:.2f} s → {one / three:.2f}× faster "
          f"(on {os.cpu_count()} cores, the PostgreSQL server on the same machine)")
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.worker:
        asyncio.run(worker(args.worker))
        sys.exit(0)
    sys.exit(asyncio.run(main(args.rounds)))
