"""How long a city's weekly bulletins take: 20,000 units in 10 stations (issue 17).

The same rows as bench/bulletins.py's generator makes (its ``populate``), over a city of
``--stations`` stations of 2,000 units each (100 communities of 20). Times the weekly run as
the sweep does it (escalation/weekly.py): the figures counted once for the city, then each
station's bulletins built, queued and its figures published in a transaction of its own.
Printed as a multiple of one bare SQL pass over the week's matters (bench/bulletins.py's
``bare_pass``), and beside the same run for the same 20,000 units as ONE station: what
splitting a city into stations costs. Each run works on its own copy of the database. Not a
test: run it with

    python bench/city_bulletins.py [--stations 10] [--per-week 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bulletins import END, WEEK, bare_pass, bare_pass_cpu, exists, populate
from bot.config import parse_config
from bot.store import Store
from bot.text import render
from bot.text.i18n import Languages
from bot.tree import Tree
from escalation import weekly
from escalation.officers import Targets
from escalation.reports import bulletin, service

PER_STATION = 2000
PER_COMMUNITY = 20


def city(stations: int, as_one: bool = False) -> dict[str, Any]:
    """``stations`` stations of PER_STATION units each; ``as_one``: the same units under one station."""
    items = []
    for s in range(stations):
        communities = []
        for c in range(PER_STATION // PER_COMMUNITY):
            cid = f"s{s}c{c}"
            communities.append({
                "id": cid, "name": f"第{s}所第{c}社区", "kind": "village", "chat_id": -10_000_000 - s * 1000 - c,
                "police": [10_000_000 + s * 1000 + c], "secretaries": [20_000_000 + s * 1000 + c],
                "units": [{"id": f"{cid}u{u}", "name": f"第{c}社区第{u}网格", "kind": "village",
                           "chat_id": -20_000_000 - (s * 1000 + c) * PER_COMMUNITY - u,
                           "heads": [30_000_000 + (s * 1000 + c) * PER_COMMUNITY + u]}
                          for u in range(PER_COMMUNITY)],
            })
        items.append({"id": f"s{s}", "name": f"第{s}派出所", "chat_id": -1 - s, "staff": [1 + s],
                      "communities": communities})
    raw: dict[str, Any] = {
        "database": ":memory:",
        "deadlines": {"unit": {"claim": "2h", "resolve": "2d"}, "community": {"claim": "4h", "resolve": "3d"},
                      "station": {"claim": "2h", "resolve": "5d", "repeat": "1d"}},
    }
    if as_one:
        raw["station"] = {**items[0], "communities": [c for st in items for c in st["communities"]]}
    else:
        raw["stations"] = items
    return raw


async def weekly_run(path: Path, tree: Tree, langs: Languages, queue: bool) -> tuple[float, float, int]:
    """Seconds (wall, CPU) for the week's bulletins, and how many outbox items they made.
    Last week's were published (a running bot). ``queue``: as the sweep sends them (each
    station's built, queued and published in its own transaction); else only computed (the
    figures and what every bulletin is made of, as bench/bulletins.py times a town)."""
    store = await Store.open(path)
    try:
        last_period = bulletin.weekly_period(END - WEEK)
        last = await service.period_figures(store, tree, last_period, now=END - WEEK)  # counts the chart's weeks
        async with store.transaction() as tx:
            await service.publish(tx, tree, last, last_period, END - WEEK)
        words = render.BulletinWords(langs, tree)
        began, cpu = time.perf_counter(), time.process_time()
        if not queue:
            figures = await service.period_figures(store, tree, bulletin.weekly_period(END), now=END)
            views = service.bulletins(tree, figures, bulletin.weekly_period(END))
            return time.perf_counter() - began, time.process_time() - cpu, len(views)
        sent = await weekly._send(store, tree, words, weekly.SCHEDULE, END, bulletin.weekly_period(END), END,
                                  targets=Targets())
        wall, cpu = time.perf_counter() - began, time.process_time() - cpu
        assert sent
        async with store.read() as tx:
            queued = len(await tx.outbox_due(END + 1e9, limit=10_000_000))
        return wall, cpu, queued
    finally:
        await store.close()


async def main(args: argparse.Namespace) -> None:
    os.umask(0o077)  # the copies are made private, as Store.open asks of a database
    split = Tree(parse_config(city(args.stations)))
    whole = Tree(parse_config(city(args.stations, as_one=True)))
    langs = Languages("zh", parse_config(city(1)).tz)
    units = [u.id for u in split.units()]
    with tempfile.TemporaryDirectory() as folder:
        cache = Path(os.environ.get("BENCH_CACHE") or os.environ.get("TMPDIR") or tempfile.gettempdir(),
                     "tierbot-bench", f"city3-{args.stations}-{args.per_week}-{args.weeks}.sqlite3")
        began = time.perf_counter()
        if not exists(cache):
            store = await Store.open(cache.with_suffix(".tmp"))
            await store.close()
            populate(cache.with_suffix(".tmp"), units, args.per_week, args.weeks,
                     parse_config(city(1)).rules_for("other").to_json())
            cache.with_suffix(".tmp").rename(cache)
        print(f"city: {len(units):,} units in {args.stations} stations of {PER_STATION:,}; "
              f"{args.per_week * args.weeks:,} matters over {args.weeks} weeks "
              f"({time.perf_counter() - began:.1f}s to make or copy)")
        period = bulletin.weekly_period(END)
        runs = [(name, tree, queue) for queue in (False, True) for name, tree in (("split", split), ("whole", whole))]
        results: dict[tuple[str, bool], list[tuple[float, float, int]]] = {(n, q): [] for n, _, q in runs}
        for round_ in range(args.rounds):  # taking turns, so that the machine's load falls on all alike
            for name, tree, queue in runs:
                path = Path(folder) / f"{name}{round_}.sqlite3"
                shutil.copyfile(cache, path)
                results[name, queue].append(await weekly_run(path, tree, langs, queue))
                path.unlink()
        shutil.copyfile(cache, Path(folder) / "bare.sqlite3")
        bare = min(bare_pass(Path(folder) / "bare.sqlite3", period.start, period.end) for _ in range(3))
        bare_cpu = min(bare_pass_cpu(Path(folder) / "bare.sqlite3", period.start, period.end) for _ in range(3))
        print(f"one bare SQL pass over the week's matters (count per unit): {bare:.3f}s (CPU {bare_cpu:.3f}s)")
        for queue, what, items in ((False, "computed (figures + what each bulletin is made of)", "bulletins"),
                                   (True, "sent as the sweep does (also queued and published)", "outbox items")):
            for name, label in (("split", f"{args.stations} stations"), ("whole", "one station, same units")):
                wall = min(r[0] for r in results[name, queue])
                cpu = min(r[1] for r in results[name, queue])
                print(f"the week's bulletins {what}, {label}: {wall:.2f}s (best of {args.rounds}), "
                      f"{results[name, queue][0][2]:,} {items}; {wall / bare:.1f}× the bare pass "
                      f"(CPU {cpu:.2f}s, {cpu / bare_cpu:.1f}×)")
            ratio = min(r[0] for r in results["split", queue]) / min(r[0] for r in results["whole", queue])
            print(f"  {args.stations} stations vs one: {ratio:.2f}× the time")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stations", type=int, default=10)
    parser.add_argument("--per-week", type=int, default=200_000, help="matters reported in the city each week")
    parser.add_argument("--weeks", type=int, default=bulletin.CHART_WEEKS)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="2 stations, 20,000 matters a week")
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.stations, arguments.per_week = 2, 20_000
    asyncio.run(main(arguments))
