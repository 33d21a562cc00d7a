"""Gathering a period's figures from the database and queueing bulletins in the outbox.

A bulletin is queued as what it is made of (escalation/reports/bulletin.view: the node's
figures, in no language): bot/text/render.py composes its messages when they are sent, in
the chat's language then. How many messages it takes is counted when it is queued (each is
its own outbox item, sent exactly once). A community's or the station's chart goes as an
outbox item of kind Kind.CHART (bot/outbox.py), composed and drawn into a PNG when it is
sent, so drawing is paced with the sends (AIORateLimiter) and a bulletin's chart is queued,
like its text, exactly once.
"""

from __future__ import annotations

import gc
import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from bot import outbox
from bot.config import Config
from bot.store import Store, Tx
from bot.tree import COMMUNITY, STATION, Node, Tree
from escalation.reports import bulletin, ledger
from escalation.reports.bulletin import Period, PeriodFigures
from escalation.reports.ledger import Ledger
from escalation.reports.safety import SafetyFigures, month_before, month_key
from escalation.summary import Figures, escalated_between, facts, from_shown, unit_figures


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: a big town's bulletins allocate a quarter of a
    million small objects and no cycles, and the collector would walk them again and again
    (a quarter of the time). Restored afterwards; cycles made meanwhile are found then.
    What was made meanwhile and is still alive goes to the oldest generation unwalked
    (freeze, then unfreeze): re-enabled as it is, the first collection would walk all of it
    at once (a tenth of a second for a big town), though most of it is freed by reference
    counting once the bulletins are queued; the oldest generation's next walk sees the rest."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            if not gc.get_freeze_count():  # nobody else keeps objects frozen (unfreeze would thaw them)
                gc.freeze()
                gc.unfreeze()
            gc.enable()


async def period_figures(store: Store, tree: Tree, period: Period, history: bool = True,
                         now: float | None = None) -> PeriodFigures:
    """Every unit's figures for the period and the one before, and (``history``) the
    chart's weeks. Weeks that ended by ``now`` are counted once and kept. Where the period
    before was published (every week but the first), it is compared as published and not
    counted again: then only this period's matters are read, half as many."""
    was_published = await published(store, tree, period)
    since = period.prev_start if was_published is None else period.start
    with gc_paused():
        async with store.read() as tx:
            plain, moved, events, idle = await tx.summary_rows(since, period.end)
            ratings = await tx.ratings_given(since, period.start, period.end)
        matters = facts(moved, events)
        unit_ids = [u.id for u in tree.units()]
        current = unit_figures(matters, escalated_between(moved, events, period.start, period.end), unit_ids,
                               period.start, period.end, ratings, plain, idle)
        previous = ({} if was_published is not None else
                    unit_figures(matters, escalated_between(moved, events, period.prev_start, period.start),
                                 unit_ids, period.prev_start, period.start, ratings, plain, idle))
        del plain, moved, events, matters
        known = {}
        if period.kind != bulletin.Kind.MONTHLY and period.start == period.week_start(period.end):
            # a week: every matter reported in it (and the week before, if counted) is in the facts
            known = {period.end: _reported(current)}
            if was_published is None:
                known[period.start] = _reported(previous)
        chart = await chart_history(store, period, now, tree, known) if history else []
        figures = PeriodFigures(current, previous, chart)
    figures.published = was_published
    return figures


async def safety_figures(store: Store, period: Period, min_answers: int) -> SafetyFigures | None:
    """The 群众安全感 polls of a monthly bulletin's month and of the month before (issue 16);
    None for a month without a poll (the bot came later, or polls were off): no line then."""
    if period.month is None:
        return None
    month, before = month_key(*period.month), month_key(*month_before(*period.month))
    async with store.read() as tx:
        counts = await tx.safety_counts([month, before])
    if not any(c.month == month for c in counts):
        return None
    return SafetyFigures.of_months(counts, month, before, min_answers)


async def published(store: Store, tree: Tree, period: Period) -> dict[str, Figures] | None:
    """What the bulletins of the period before published, node by node: an arrow compares two
    numbers someone was shown. None where none was, or where one of the stations' was not
    (a station added since): then the period before is recomputed from the timeline as it
    stood at its end, for every station alike."""
    if period.kind not in (bulletin.Kind.WEEKLY, bulletin.Kind.MONTHLY):
        return None
    async with store.read() as tx:
        by_station = await tx.published(period.kind, period.prev_start, period.start)
    if any(st.id not in by_station for st in tree.stations):
        return None
    return {node_id: from_shown(shown) for st in tree.stations
            for node_id, shown in json.loads(by_station[st.id]).items()}


async def publish(tx: Tx, tree: Tree, figures: PeriodFigures, period: Period, now: float,
                  station_id: str | None = None) -> None:
    """Keep what this period's bulletins show (of one station's, or of every station), for
    the next period to compare with."""
    for st in tree.stations:
        if station_id is None or st.id == station_id:
            data = json.dumps(figures.shown(tree, st.id), ensure_ascii=False, separators=(",", ":"))
            await tx.save_published(period.kind, period.start, period.end, data, now, st.id)


def _reported(units: dict[str, Figures]) -> list[Any]:
    return [(unit_id, category, n) for unit_id, fig in units.items() for category, n in fig.categories.items()]


async def chart_history(
    store: Store, period: Period, now: float | None, tree: Tree, known: dict[float, list[Any]] | None = None,
) -> list[dict[str, dict[str, int]]]:
    """For each of the chart's CHART_WEEKS weeks, the matters reported per category at
    each community and station (bulletin.week_sums); ``known`` weeks (by their end) are
    (unit, category, reported) rows taken as given. A week that is over is counted once
    and kept station by station (issue 17), both as its units' rows and summed; the sums
    are read back while the units are where they were when they were summed (chart_key),
    else the rows are summed again. Units gone from config.yaml are no station's, and no
    chart's."""
    keys = {st.id: chart_key(tree, st.id) for st in tree.stations}
    out: list[dict[str, dict[str, int]]] = []
    for week_end in period.chart_weeks():
        async with store.read() as tx:
            kept = await tx.week_sums(week_end, list(keys))
            if kept is not None and any(s is None or s.get("key") != keys[st] for st, s in kept.items()):
                counts = await tx.week_counts(week_end, list(keys))
                kept = None if counts is None else _sums_by_station(tree, bulletin.week_sums(tree, counts), keys)
        if kept is not None:
            out.append({node: sums for s in kept.values() for node, sums in s["sums"].items()})
            continue
        counts = (known or {}).get(week_end)
        if counts is None:
            async with store.read() as tx:
                counts = list(await tx.count_week(period.week_start(week_end), week_end))
        sums = bulletin.week_sums(tree, counts)
        if now is not None and week_end <= now:  # a week that is over never changes
            async with store.transaction() as tx:
                await tx.save_week_counts(week_end, _by_station(tree, counts), _sums_by_station(tree, sums, keys))
        out.append(sums)
    return out


def chart_key(tree: Tree, station_id: str) -> str:
    """Which community each of the station's units is in, as one short key: a week's sums
    kept under another key were summed for units since moved."""
    places = sorted(f"{u.id}\t{u.parent_id}" for u in tree.units_under(station_id))
    return hashlib.blake2b("\n".join(places).encode(), digest_size=12).hexdigest()


def _sums_by_station(tree: Tree, sums: dict[str, dict[str, int]], keys: dict[str, str]) -> dict[str, dict[str, Any]]:
    """A week's sums station by station, each with the key of the places they were summed
    under (``keys``: chart_key by station)."""
    out: dict[str, dict[str, Any]] = {st: {"key": key, "sums": {}} for st, key in keys.items()}
    for node_id, categories in sums.items():
        station = tree.station_of(node_id)
        if station is not None:
            out[station.id]["sums"][node_id] = categories
    return out


def _by_station(tree: Tree, counts: list[Any]) -> dict[str, list[Any]]:
    """A week's (unit, category, reported) rows, station by station (every station has a list)."""
    station_of = {c.id: c.parent_id for c in tree.communities()}
    unit_station = {u.id: station_of[u.parent_id] for u in tree.units() if u.parent_id in station_of}
    out: dict[str, list[Any]] = {st.id: [] for st in tree.stations}
    for row in counts:
        station = unit_station.get(row[0])
        if station is not None:
            out[station].append(row)
    return out


class Words(Protocol):
    """What queueing bulletins asks of the renderer (bot/text/render.py's BulletinWords),
    given by whoever runs it: the town's timezone, and how many messages a node's bulletin
    (``view``) takes in a chat's language now."""

    tz: ZoneInfo

    def parts(self, chat: int, view: dict[str, Any]) -> int: ...


def bulletins(tree: Tree, figs: PeriodFigures, period: Period) -> dict[str, dict[str, Any]]:
    """What the bulletin of every node that has a chat is made of (bulletin.view), by node."""
    with gc_paused():
        return {node.id: bulletin.view(node, tree, figs, period)
                for node in tree.nodes.values() if tree.chat_of(node.id) is not None}


def notices(tree: Tree, words: Words, views: dict[str, dict[str, Any]], key: str) -> list[outbox.Notice]:
    """Each bulletin's messages, then its chart, to its node's chat: for ``outbox.put``."""
    out: list[outbox.Notice] = []
    for node_id, view in views.items():
        chat = tree.chat_of(node_id)
        if chat is None:
            continue
        parts = words.parts(chat, view)
        out += [outbox.BulletinPart(key, node_id, part, chat, view, parts) for part in range(parts)]
        if tree.nodes[node_id].tier in (STATION, COMMUNITY):  # they get a chart too
            out.append(outbox.Chart.of_bulletin(key, node_id, chat, view))
    return out


async def load_ledger(store: Store, tree: Tree, node: Node, start: float, end: float) -> Ledger:
    """The ledger of ``node`` for [start, end): its matters and its units' figures."""
    async with store.read() as tx:
        matters = ledger.select(await tx.ledger_matters(start, end), tree, node)
        events = await tx.ledger_events([m.id for m in matters])
        visits = await tx.visits_between(start, end, [c.id for c in tree.communities() if tree.contains(node.id, c.id)])
        screenings = [s for s in await tx.screenings_between(start, end) if tree.contains(node.id, s[0].community_id)]
    period = Period("ledger", start, end, start - (end - start))
    figures = await period_figures(store, tree, period, history=False)
    return Ledger(node, start, end, ledger.as_of(matters, events, end), figures, events,
                  {m.id: m.state for m in matters}, screenings, visits)


async def export_file(config: Config, node_id: str, start: float, end: float, csv: bool) -> tuple[bytes, int]:
    """``tierbot export``: the ledger as XLSX (or CSV) bytes, and how many matters it holds."""
    tree = Tree(config)
    texts = ledger.texts(config)
    store = await Store.open(config.database)
    try:
        data = await load_ledger(store, tree, tree.nodes[node_id], start, end)
    finally:
        await store.close()
    content = ledger.to_csv(data, tree, texts) if csv else ledger.to_xlsx(data, tree, texts)
    return content, len(data.matters)
