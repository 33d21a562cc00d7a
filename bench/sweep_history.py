"""Sweep cost against history: one sweep over databases of 10,000, 100,000 and
1,000,000 matters (1% open, 100 of them due now), in a town of 2,000 units.

The sweep runs every ``sweep_interval`` for the life of the bot, so it must cost what is
due, not what is stored. Goal: under 50 ms at 1,000,000 matters, and within twice the
10,000 figure. Each figure is the median of several sweeps of the same 100 due matters,
put back as they were between runs; "idle" is a sweep with nothing due.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from _common import QUICK, fresh_copy, header, history, median, parse, town, verdict

from bot.store import Store
from bot.text.i18n import Languages
from bot.tree import Tree
from escalation.notify import Notifier
from escalation.sweep import sweep

SIZES = [1_000, 10_000, 100_000] if QUICK else [10_000, 100_000, 1_000_000]
RUNS = 7
DUE = 100
NOW = 1_795_000_000.0  # a fixed moment, so the databases can be cached between runs
# What the sweep changes on a due matter, saved before and put back after each run.
RESET_FIELDS = ("state", "tier", "top_tier", "tier_since", "claim_since", "last_ping_at", "reminded_upto",
                "next_due", "escalated_at")


async def measure(path: Path, notifier: Notifier) -> tuple[float, float, int]:
    """(median ms with DUE matters due, median ms with nothing due, steps taken)."""
    plain = sqlite3.connect(path, isolation_level=None)  # the bench's own SQL, outside the bot's store
    saved = plain.execute(
        f"SELECT {', '.join(RESET_FIELDS)}, id FROM matters WHERE next_due <= ?", (NOW,)
    ).fetchall()
    (max_event,) = plain.execute("SELECT max(id) FROM events").fetchone()
    (max_outbox,) = plain.execute("SELECT max(id) FROM outbox").fetchone()
    store = await Store.open(path)
    busy: list[float] = []
    idle: list[float] = []
    taken = 0
    try:
        for _ in range(RUNS):
            started = time.perf_counter()
            taken = await sweep(store, notifier, NOW)
            busy.append(time.perf_counter() - started)
            started = time.perf_counter()
            again = await sweep(store, notifier, NOW)
            idle.append(time.perf_counter() - started)
            assert again == 0, "a second sweep at the same moment must do nothing"
            plain.execute("BEGIN IMMEDIATE")
            plain.executemany(
                f"UPDATE matters SET {', '.join(f'{f} = ?' for f in RESET_FIELDS)} WHERE id = ?", saved
            )
            plain.execute("DELETE FROM events WHERE id > ?", (max_event,))
            plain.execute("DELETE FROM outbox WHERE id > ?", (max_outbox,))
            plain.execute("COMMIT")
    finally:
        await store.close()
        plain.close()
    return median(busy) * 1000, median(idle) * 1000, taken


def main() -> int:
    header("Sweep cost against history (2,000 units; 1% open; 100 due)")
    raw = town(2000, 80, "unused")
    config = parse(raw)
    tree = Tree(config)
    notifier = Notifier(tree, Languages(config.language, config.tz), config)
    results: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="tierbot-bench-") as folder:
        for size in SIZES:
            started = time.perf_counter()
            source = history(raw, size, NOW, due_now=DUE)
            built = time.perf_counter() - started
            work = fresh_copy(source, Path(folder) / "sweep.sqlite3")
            busy, idle, taken = asyncio.run(measure(work, notifier))
            assert taken == DUE, f"expected {DUE} escalations, got {taken}"
            results[size] = busy
            print(f"  {size:>9,} matters: sweep of {DUE} due {busy:7.1f} ms · idle sweep {idle:6.2f} ms"
                  f"   (database {source.stat().st_size / 1e6:,.0f} MB, ready in {built:.1f} s)", flush=True)
    small, large = results[SIZES[0]], results[SIZES[-1]]
    print(f"  goal: < 50 ms at {SIZES[-1]:,}: {large:.1f} ms → {verdict(large < 50)}")
    print(f"  goal: {SIZES[-1]:,} within 2× {SIZES[0]:,}: {large / small:.2f}× → {verdict(large <= 2 * small)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
