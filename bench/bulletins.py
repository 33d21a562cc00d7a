"""Weekly bulletins at town scale: 2,000 units in 80 communities, 100,000 matters in the
week. Times what the weekly summary computes: the figures (escalation.weekly.figures_for)
and every unit's, community's and the station's text (escalation.summary.render).
Goal: under 2 s for all of it. For information, also the whole weekly run once
(escalation.weekly.send_due), which also queues the 2,081 messages.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from _common import QUICK, fresh_copy, header, history, median, parse, town, verdict
from apscheduler.triggers.cron import CronTrigger

from bot.i18n import Texts
from bot.storage import Store
from bot.tree import Tree
from escalation import summary, weekly

UNITS, COMMUNITIES = 2_000, 80
MATTERS = 10_000 if QUICK else 100_000
RUNS = 5
END = 1_794_790_800.0  # Monday 16 November 2026, 09:00 in the town: a weekly summary is due (fixed, so cached)


async def measure(
    path: Path, tree: Tree, texts: Texts, trigger: CronTrigger
) -> tuple[list[float], list[float], int, int, float]:
    """Per run: seconds for the figures and for the texts; the messages and characters; and
    the seconds of one whole weekly run."""
    store = await Store.open(path)
    figures_s: list[float] = []
    render_s: list[float] = []
    messages = characters = 0
    start = END - weekly.WEEK
    try:
        for _ in range(RUNS):
            began = time.perf_counter()
            units = await weekly.figures_for(store, tree, start, END)
            figured = time.perf_counter()
            texts_out = [text for node in tree.nodes.values()
                         for text in summary.render(node, tree, units, texts, start, END)]
            render_s.append(time.perf_counter() - figured)
            figures_s.append(figured - began)
            messages, characters = len(texts_out), sum(len(t) for t in texts_out)
        began = time.perf_counter()
        assert await weekly.send_due(store, tree, texts, trigger, END + 60)
        whole = time.perf_counter() - began
    finally:
        await store.close()
    return figures_s, render_s, messages, characters, whole


def main() -> int:
    header(f"Weekly bulletins ({UNITS:,} units in {COMMUNITIES} communities, {MATTERS:,} matters in the week)")
    raw = town(UNITS, COMMUNITIES, "unused")
    config = parse(raw)
    tree, texts = Tree(config), Texts(config.language, config.tz)
    started = time.perf_counter()
    source = history(raw, MATTERS, END, span_days=7, due_now=0)
    built = time.perf_counter() - started
    with tempfile.TemporaryDirectory(prefix="tierbot-bench-") as folder:
        work = fresh_copy(source, Path(folder) / "bulletins.sqlite3")
        figures_s, render_s, messages, characters, whole = asyncio.run(
            measure(work, tree, texts, config.weekly_trigger())
        )
    figures, render = median(figures_s), median(render_s)
    total = median([f + r for f, r in zip(figures_s, render_s, strict=True)])
    print(f"  figures (SQL + per-unit sums): {figures * 1000:7.0f} ms")
    print(f"  texts for {len(tree.nodes):,} nodes:      {render * 1000:7.0f} ms   ({messages:,} messages, "
          f"{characters / 1e6:.1f} M characters)")
    print(f"  total: {total * 1000:.0f} ms (median of {RUNS}; database ready in {built:.1f} s)")
    print(f"  for information, the whole weekly run (figures, texts, {messages:,} messages queued): "
          f"{whole * 1000:.0f} ms")
    print(f"  goal: < 2 s: {verdict(total < 2)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
