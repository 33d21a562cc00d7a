"""How long computing every bulletin takes for a big town.

A town of 2,000 units in 100 communities, 100,000 matters reported in the week (and as
many in each of the seven weeks before, for the comparison and the chart), with
escalations, ratings and categories. Prints the time to gather the figures and build
every bulletin (texts and chart descriptions for all 2,101 chats), then, separately, the
time to queue them and to draw one chart (charts are drawn by the delivery worker as it
sends them, paced with the sends). Not a test: run it with

    python bench/bulletins.py [--units 2000] [--per-week 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from operator import itemgetter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.config import parse_config
from bot.outbox import Kind, put
from bot.store import Store
from bot.text import render
from bot.text.i18n import Languages
from bot.tree import Tree
from escalation.reports import bulletin, charts, service

WEEK = 7 * 86400.0
CATEGORIES = ["neighbour", "family", "landlord", "wages", "property", "safety", "fraud", "order", "traffic",
              "help", "other"]
END = 1_796_000_000.0  # a Monday morning in 2026
ROUNDS = 5  # timed runs of each; the fastest counts, as with timeit (the machine's other load only ever adds)
RATING_LABELS = {"satisfied": "满意", "basic": "基本满意", "unsatisfied": "不满意"}  # as "rated" events record them


def bare_pass(path: Path, start: float, end: float) -> float:
    """Seconds for one bare SQL pass over the week's matters (those that existed in it),
    counted per unit: the floor any figures from the database stand on."""
    conn = sqlite3.connect(path)
    times = []
    for hint in ("", "NOT INDEXED"):  # the planner's choice and a plain scan: the faster is the floor
        began = time.perf_counter()
        conn.execute(
            f"SELECT unit_id, count(*) FROM matters {hint} WHERE created_at < ? "
            "AND (closed_at IS NULL OR closed_at >= ?) GROUP BY unit_id", (end, start),
        ).fetchall()
        times.append(time.perf_counter() - began)
    conn.close()
    return min(times)


def bare_pass_cpu(path: Path, start: float, end: float) -> float:
    """The CPU seconds of bare_pass's faster plan: on a machine shared with other work,
    wall time swings with their load more than CPU time does."""
    conn = sqlite3.connect(path)
    times = []
    for hint in ("", "NOT INDEXED"):
        began = time.process_time()
        conn.execute(
            f"SELECT unit_id, count(*) FROM matters {hint} WHERE created_at < ? "
            "AND (closed_at IS NULL OR closed_at >= ?) GROUP BY unit_id", (end, start),
        ).fetchall()
        times.append(time.process_time() - began)
    conn.close()
    return min(times)


def town(units: int, per_community: int = 20) -> dict:
    communities = []
    for c in range(units // per_community):
        communities.append({
            "id": f"c{c}", "name": f"第{c}社区", "kind": "village", "chat_id": -100000 - c,
            "police": [10_000 + c], "secretaries": [20_000 + c],
            "units": [{"id": f"c{c}u{u}", "name": f"第{c}社区第{u}网格", "kind": "village",
                       "chat_id": -200000 - c * per_community - u, "heads": [30_000 + c * per_community + u]}
                      for u in range(per_community)],
        })
    return {
        "database": ":memory:",
        "deadlines": {"unit": {"claim": "2h", "resolve": "2d"}, "community": {"claim": "4h", "resolve": "3d"},
                      "station": {"claim": "2h", "resolve": "5d", "repeat": "1d"}},
        "station": {"id": "st", "name": "苏溪派出所", "chat_id": -1, "staff": [1], "communities": communities},
    }


def populate(path: Path, unit_ids: list[str], per_week: int, weeks: int, rules: str) -> int:
    """Matters over ``weeks`` weeks up to END, straight through sqlite3 (fast)."""
    rng = random.Random(5)
    conn = sqlite3.connect(path)
    matters, events = [], []
    matter_id = 0
    for week in range(weeks):
        week_start = END - (weeks - week) * WEEK
        for _ in range(per_week):
            matter_id += 1
            unit = rng.choice(unit_ids)
            created = week_start + rng.random() * WEEK
            claimed = created + rng.expovariate(1 / 3600)
            fate = rng.random()
            top_tier, escalated_at, resolved = 3, None, created + rng.expovariate(1 / 20000)
            if fate < 0.15:  # up to the community, some to the station
                escalated_at = created + 7200
                events.append((matter_id, escalated_at, "escalated", 2))  # by the sweep: no actor
                top_tier = 2
                resolved = escalated_at + rng.expovariate(1 / 200000)
                if fate < 0.03 and escalated_at + 3 * 86400 < resolved:  # nothing moves once closed
                    events.append((matter_id, escalated_at + 3 * 86400, "escalated", 1))
                    top_tier = 1
            if rng.random() < 0.05 or resolved > END:
                resolved = None
            if resolved is not None and claimed > resolved:  # resolved before anyone claimed it
                claimed = None
            rating = rng.choice(["satisfied", "satisfied", "basic", "unsatisfied"]) if resolved and fate > 0.5 else None
            state = "resolved" if resolved else "open"
            if resolved:  # the timeline the figures read: resolves and ratings are events
                events.append((matter_id, resolved, "resolved", top_tier, 1))
                if rating:
                    events.append((matter_id, resolved + 3600, "rated", top_tier, 1, RATING_LABELS[rating]))
            matters.append((matter_id, unit, -1, 1, "居民", "事项", state, top_tier, top_tier, created, rules,
                            created, claimed, escalated_at, resolved, rng.choice(CATEGORIES), rating,
                            resolved + 3600 if rating and resolved else None, resolved))
    conn.executemany(
        "INSERT INTO matters (id, unit_id, chat_id, reporter_id, reporter_name, text, state, tier, top_tier, "
        "tier_since, rules, created_at, first_claimed_at, escalated_at, resolved_at, category, rating, rated_at, "
        "closed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", matters)
    conn.executemany("INSERT INTO events (matter_id, at, kind, tier, actor_id, detail) VALUES (?, ?, ?, ?, ?, ?)",
                     [(*e, None, None)[:6] for e in events])
    # as the store keeps each rating it writes (bot/store/queries.add_event): with its unit
    conn.execute("INSERT INTO ratings (at, event_id, matter_id, unit_id, label) SELECT e.at, e.id, e.matter_id, "
                 "m.unit_id, e.detail FROM events e JOIN matters m ON m.id = e.matter_id WHERE e.kind = 'rated'")
    conn.commit()
    conn.close()
    return matter_id


def as_sent(tree: Tree, langs: Languages, views: dict[str, Any]) -> list[bulletin.Bulletin]:
    """Every bulletin's messages and chart as the delivery worker composes them when it
    sends them (bot/text/render.py), from the data the outbox keeps."""
    out: dict[str, bulletin.Bulletin] = {}
    for notice in service.notices(tree, render.BulletinWords(langs, tree), views, "bench"):
        data = json.loads(notice.row(END)[8] or "null")  # as the outbox keeps it
        scene = render.Scene(tree, langs.for_chat(notice.chat), END, notice.chat)
        text, _ = render.compose(notice.kind, data, scene)
        node_id = data["chart"]["node"] if notice.kind == Kind.CHART else data["bulletin"]["node"]
        item = out.setdefault(node_id, bulletin.Bulletin(node_id, []))
        if notice.kind == Kind.CHART:
            item.chart = json.loads(text)["chart"]
        else:
            item.messages.append(text)
    return list(out.values())


def exists(path: Path) -> bool:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.exists()


def write(path: str, text: str) -> None:
    Path(path).write_text(text)


async def main(args: argparse.Namespace) -> bytes:
    """Runs the benchmark; returns the station's chart."""
    config = parse_config(town(args.units))
    tree = Tree(config)
    langs = Languages("zh", config.tz)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.sqlite3"
        # The town is kept between runs (it takes a while to make); each run works on a copy.
        cache = Path(os.environ.get("TMPDIR") or tempfile.gettempdir(), "tierbot-bench",
                     f"town4-{args.units}-{args.per_week}-{args.weeks}.sqlite3")
        began = time.perf_counter()
        if not exists(cache):
            store = await Store.open(cache.with_suffix(".tmp"))
            await store.close()
            populate(cache.with_suffix(".tmp"), [u.id for u in tree.units()], args.per_week, args.weeks,
                     config.rules_for("other").to_json())
            cache.with_suffix(".tmp").rename(cache)
        shutil.copyfile(cache, path)
        total = args.per_week * args.weeks
        print(f"town: {args.units} units, {len(list(tree.communities()))} communities; "
              f"{total:,} matters over {args.weeks} weeks ({time.perf_counter() - began:.1f}s to make or copy)")
        store = await Store.open(path)
        period = bulletin.weekly_period(END)

        began = time.perf_counter()
        await service.period_figures(store, tree, period, now=None)
        cold = time.perf_counter() - began
        # A running bot counted the earlier weeks for last week's chart: do that (untimed).
        last_period = bulletin.weekly_period(END - WEEK)
        last = await service.period_figures(store, tree, last_period, now=END - WEEK)

        async def timed() -> tuple[Any, list[Any], float, float, float]:
            began, cpu = time.perf_counter(), time.process_time()
            figures = await service.period_figures(store, tree, period, now=END)
            gathered = time.perf_counter() - began
            items = service.bulletins(tree, figures, period)  # what each is made of: composed when sent
            return figures, items, time.perf_counter() - began, gathered, time.process_time() - cpu

        # The first week after an upgrade: last week's bulletin was not published, so the
        # week before is counted again from the timeline, to compare with.
        _, first_items, first_computed, first_gathered, _ = await timed()
        # Every later week: a running bot published last week's bulletin, and compares with that.
        async with store.transaction() as tx:
            await service.publish(tx, tree, last, last_period, END - WEEK)
        runs = [await timed() for _ in range(ROUNDS)]  # the best, as of the bare pass below
        figures, items, computed, gathered, _ = min(runs, key=itemgetter(2))
        cpu = min(run[4] for run in runs)
        began, cpu_began = time.perf_counter(), time.process_time()
        sent = as_sent(tree, langs, items)
        composing, composing_cpu = time.perf_counter() - began, time.process_time() - cpu_began
        if args.dump:  # every bulletin as sent, to compare the figures before and after a change
            write(args.dump, json.dumps([[[b.node_id, b.messages, b.chart] for b in bulletins]
                                         for bulletins in (as_sent(tree, langs, first_items), sent)],
                                        ensure_ascii=False, indent=0))
        items = sent
        week = sum(f.new for f in figures.current.values())
        messages = sum(len(b.messages) for b in items)
        charts_count = sum(b.chart is not None for b in items)
        print(f"computing every bulletin: {computed:.2f}s (figures {gathered:.2f}s, what the texts and charts are "
              f"made of {computed - gathered:.2f}s) — {week:,} matters in the week, {len(items)} bulletins, "
              f"{messages} messages, {charts_count} chart descriptions; CPU time {cpu:.2f}s")
        print(f"  (the first week after an upgrade, with last week's bulletin not published and so counted "
              f"again: {first_computed:.2f}s, figures {first_gathered:.2f}s; the figures on a fresh database, "
              f"with all {bulletin.CHART_WEEKS} chart weeks still to count: {cold:.2f}s)")
        bare = min(bare_pass(path, period.start, period.end) for _ in range(ROUNDS))
        print(f"one bare SQL pass over the week's matters (count per unit): {bare:.3f}s; every bulletin took "
              f"{computed / bare:.1f}× that (goal ≤ 3×), the figures alone {gathered / bare:.1f}×; "
              f"the first week after an upgrade {first_computed / bare:.1f}×")
        bare_cpu = min(bare_pass_cpu(path, period.start, period.end) for _ in range(ROUNDS))
        print(f"  (in CPU time, which the machine's other load moves less: every bulletin {cpu:.2f}s, the bare "
              f"pass {bare_cpu:.3f}s, {cpu / bare_cpu:.1f}×)")

        print(f"composing their texts and charts' words as they are sent (bot/text/render.py): {composing:.2f}s "
              f"(CPU {composing_cpu:.2f}s), spread over the sends")
        views = service.bulletins(tree, figures, period)
        began = time.perf_counter()
        async with store.transaction() as tx:
            await put(tx, *service.notices(tree, render.BulletinWords(langs, tree), views, "bench"), now=END)
        print(f"queueing them in the outbox: {time.perf_counter() - began:.2f}s")
        await store.close()

        station = next(b for b in items if b.node_id == tree.stations[0].id)
        charts.render_png(station.chart or {})  # the first one loads the font
        began = time.perf_counter()
        png = charts.render_png(station.chart or {})
        per_chart = time.perf_counter() - began
        print(f"drawing one chart: {per_chart:.2f}s ({len(png) // 1024} KB); {charts_count} charts are drawn "
              f"by the delivery worker as it sends them, about {charts_count * per_chart:.0f}s in all, "
              "spread over the sends")
        print(f"\nthe station's bulletin ({len(station.messages)} message(s)), first part:\n")
        print(station.messages[0][:1500])
        return png


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=2000)
    parser.add_argument("--per-week", type=int, default=100_000)
    parser.add_argument("--weeks", type=int, default=bulletin.CHART_WEEKS)
    parser.add_argument("--chart", default=None, help="also write the station's chart to this PNG file")
    parser.add_argument("--dump", default=None, help="write every bulletin (texts, charts) to this JSON file")
    parser.add_argument("--quick", action="store_true", help="a small town (200 units, 10,000 a week)")
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.units, arguments.per_week = 200, 10_000
    chart = asyncio.run(main(arguments))
    if arguments.chart:
        Path(arguments.chart).write_bytes(chart)
        print(f"\nthe station's chart: {arguments.chart}")
