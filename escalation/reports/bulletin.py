"""Bulletins: what a unit, a community and the station read each week and each month.

Pure functions from figures to messages and a chart description; nothing here does I/O.
Each figure is shown with its change from the period before (↑/↓, → when unchanged).
Community and station bulletins rank units by stars (五星评比); the station's also names
the matters still open at the station and the units that let matters go up unclaimed
(通报), worst first.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from bot.text.i18n import Texts
from bot.tree import COMMUNITY, STATION, UNIT, Node, Tree
from escalation import summary
from escalation.reports import stars as star_rating
from escalation.reports.safety import SafetyFigures
from escalation.summary import Figures, half_up, percent, rank, split_message

WEEK = 7 * 86400.0
CHART_WEEKS = 8  # the chart shows matters per week over this many weeks up to the period's end
RANK_SHOWN = 10  # a long ranking shows the best and the worst this many
LISTED = 20  # matters and units named in a 通报 section, at most
CHART_UNITS = 20  # the chart shows every unit up to this many, else the best and worst half each
CHART_CATEGORIES = 8  # categories drawn in the chart; the rest are summed under "other"
OTHER = "other"


class Kind:
    WEEKLY = "weekly"
    MONTHLY = "monthly"
    RECENT = "recent"  # /summary: the seven days up to now


@dataclass(frozen=True)
class Period:
    """[start, end), compared with [prev_start, start)."""

    kind: str
    start: float
    end: float
    prev_start: float
    month: tuple[int, int] | None = None  # (year, month) of a monthly bulletin
    chart_end: float | None = None  # the chart's last week ends here (a weekly bulletin's moment)
    tz: ZoneInfo | None = None  # weeks are calendar weeks in this zone (7 × 24 h without one)

    def chart_weeks(self) -> list[float]:
        """The ends of the chart's CHART_WEEKS weeks, oldest first. They are the weekly
        bulletin's weeks, so a monthly chart shows the same bars as the weekly ones."""
        anchor = self.chart_end if self.chart_end is not None else self.end
        return [weeks_before(anchor, CHART_WEEKS - 1 - i, self.tz) for i in range(CHART_WEEKS)]

    def week_start(self, week_end: float) -> float:
        return weeks_before(week_end, 1, self.tz)


def weeks_before(moment: float, weeks: int, tz: ZoneInfo | None) -> float:
    """The same local time ``weeks`` weeks earlier: a week across a daylight-saving change
    is 7 days of the calendar, not 7 × 86,400 s."""
    if tz is None:
        return moment - weeks * WEEK
    return (datetime.fromtimestamp(moment, tz) - timedelta(days=7 * weeks)).timestamp()


def weekly_period(end: float, kind: str = Kind.WEEKLY, tz: ZoneInfo | None = None) -> Period:
    return Period(kind, weeks_before(end, 1, tz), end, weeks_before(end, 2, tz), tz=tz)


def monthly_period(fire: float, tz: ZoneInfo) -> Period:
    """The calendar month before the one ``fire`` falls in (local time), compared with
    the month before that."""
    local = datetime.fromtimestamp(fire, tz)
    this_month = datetime(local.year, local.month, 1, tzinfo=tz)
    last = this_month - timedelta(days=1)
    start = datetime(last.year, last.month, 1, tzinfo=tz)
    before = start - timedelta(days=1)
    prev_start = datetime(before.year, before.month, 1, tzinfo=tz)
    return Period(Kind.MONTHLY, start.timestamp(), this_month.timestamp(), prev_start.timestamp(),
                  month=(last.year, last.month), tz=tz)


@dataclass
class PeriodFigures:
    """Every unit's figures for the period and the one before, and the chart's history:
    for each of its CHART_WEEKS weeks, oldest first, the matters reported per category at
    each community and station (week_sums)."""

    current: dict[str, Figures]
    previous: dict[str, Figures]
    history: list[dict[str, dict[str, int]]] = field(default_factory=list)
    # node → the figures the bulletin of the period before published: what is compared with
    published: dict[str, Figures] | None = None
    safety: SafetyFigures | None = None  # the month's 群众安全感 polls (monthly bulletins only)
    _totals: dict[tuple[str, bool], Figures] = field(default_factory=dict, repr=False)
    _stars: dict[str, int | None] = field(default_factory=dict, repr=False)
    _by_node: dict[str, dict[str, list[int]]] | None = field(default=None, repr=False)
    _ranked: dict[str, list[tuple[str, int | None]]] = field(default_factory=dict, repr=False)

    def total(self, tree: Tree, node_id: str, previous: bool = False) -> Figures:
        """A node's figures (its units' summed), computed once."""
        key = (node_id, previous)
        if previous and self.published is not None:
            return self.published.get(node_id) or Figures()
        if key not in self._totals:
            units = self.previous if previous else self.current
            node = tree.nodes[node_id]
            if node.tier == COMMUNITY or node.tier == STATION:
                total = Figures()
                for child in node.children:
                    total.add(self.total(tree, child, previous))
                self._totals[key] = total
            else:
                self._totals[key] = units[node_id]
        return self._totals[key]

    def shown(self, tree: Tree, station_id: str | None = None) -> dict[str, Any]:
        """Every node's figures (of one station's, with ``station_id``) as a bulletin of this
        period shows them, to keep as published."""
        nodes = tree.nodes if station_id is None else tree.station_nodes(station_id)
        return {node_id: summary.shown(self.total(tree, node_id)) for node_id in nodes}

    def stars(self, unit_id: str) -> int | None:
        if unit_id not in self._stars:
            self._stars[unit_id] = star_rating.stars(self.current[unit_id])
        return self._stars[unit_id]

    def weekly_by_category(self, tree: Tree, node_id: str) -> dict[str, list[int]]:
        """category → matters reported per chart week, for a community or the station."""
        if self._by_node is None:
            by_node: dict[str, dict[str, list[int]]] = {}
            for week, sums in enumerate(self.history[:CHART_WEEKS]):
                for node, categories in sums.items():
                    series = by_node.setdefault(node, {})
                    for category, count in categories.items():
                        series.setdefault(category, [0] * CHART_WEEKS)[week] += count
            self._by_node = by_node
        return self._by_node.get(node_id, {})


def week_sums(tree: Tree, counts: Iterable[tuple[str, str, int]]) -> dict[str, dict[str, int]]:
    """A week's (unit, category, matters reported) rows summed per category for each
    community and station (the nodes with a chart). A unit since removed from config.yaml
    is in none."""
    community_of = {u.id: u.parent_id for u in tree.units()}.get
    summed: dict[tuple[str | None, str], int] = {}  # (community, category) → matters
    for unit_id, category, count in counts:  # a town's week is some 20,000 of these
        key = (community_of(unit_id), category)
        summed[key] = summed.get(key, 0) + count
    station_of = {c.id: c.parent_id for c in tree.communities()}
    out: dict[str, dict[str, int]] = {}
    for (community, category), count in summed.items():
        if community is not None:
            for node in (community, station_of[community]):
                if node is not None:
                    categories = out.setdefault(node, {})
                    categories[category] = categories.get(category, 0) + count
    return out


@dataclass
class Bulletin:
    node_id: str
    messages: list[str]
    chart: dict | None = None  # a chart description for reports.charts, tiers 1 and 2


# --- words ---------------------------------------------------------------------------
@lru_cache(maxsize=1024)
def category_name(key: str, t: Texts) -> str:
    """The category's name (from config.yaml) in the chat's language; a key no longer in
    config.yaml is shown as it is."""
    return t.category(key) if key in t.category_keys() else key


@lru_cache(maxsize=1024)
def category_label(key: str, t: Texts) -> str:
    """category_name, escaped for HTML: a town's bulletins show some 20,000 of them."""
    return escape(category_name(key, t))


@lru_cache(maxsize=64)
def _time(ts: float, t: Texts) -> str:
    """t.time, once per moment: every bulletin of a period shows the same two."""
    return t.time(ts)


def period_label(period: Period, t: Texts) -> str:
    if period.month is not None:
        return t("bulletin.month", year=period.month[0], month=period.month[1])
    return t("bulletin.span", start=_time(period.start, t), end=_time(period.end, t))


def _arrow(diff: float, text: str) -> str:
    if diff > 0:
        return f" ↑{text}"
    if diff < 0:
        return f" ↓{text}"
    return " →"


def count_with_change(current: int, previous: int) -> str:
    """``12 ↑3``, ``9 ↓2``, ``4 →``; nothing added when both are zero."""
    if current == previous == 0:
        return "0"
    return f"{current}{_arrow(current - previous, str(abs(current - previous)))}"


def rate_with_change(current: float | None, previous: float | None, t: Texts) -> str:
    """``85% ↑5个百分点``; — when there is nothing to take a share of."""
    if current is None:
        return t("summary.none")
    shown = f"{percent(current)}%"
    if previous is None:
        return shown
    diff = percent(current) - percent(previous)  # points between the two values as shown
    return shown + _arrow(diff, t("bulletin.points", n=abs(diff)))


def duration_with_change(current: float | None, previous: float | None, t: Texts) -> str:
    if current is None:
        return t("summary.none")
    shown = t.duration(current)
    if previous is None:
        return shown
    diff = current - previous
    if abs(diff) < 60:  # under a minute is no change worth an arrow
        return shown + " →"
    return shown + _arrow(diff, t.duration(abs(diff)))


def _title(node: Node, period: Period, t: Texts) -> str:
    level = {STATION: "station", COMMUNITY: "community"}.get(node.tier, "unit")
    if period.kind == Kind.MONTHLY:
        return t(f"bulletin.monthly_{level}_title", node=escape(node.name), month=period_label(period, t))
    prefix = "recent" if period.kind == Kind.RECENT else "summary"  # /summary's rolling days are no 周报
    return t(f"{prefix}.{level}_title", node=escape(node.name), start=_time(period.start, t), end=_time(period.end, t))


def figure_lines(cur: Figures, prev: Figures, t: Texts, period: Period, public: bool = False) -> list[str]:
    """A node's own figures, each with its change from the period before (``public``: for a
    unit group, whose categories leave private reports out)."""
    lines = [
        t("bulletin.figures", new=count_with_change(cur.new, prev.new),
          resolved=count_with_change(cur.resolved, prev.resolved),
          open=count_with_change(cur.open, prev.open), overdue=count_with_change(cur.overdue, prev.overdue)),
        t("bulletin.escalations", community=count_with_change(cur.to_community, prev.to_community),
          station=count_with_change(cur.to_station, prev.to_station),
          in_unit=rate_with_change(cur.in_unit_rate, prev.in_unit_rate, t)),
        t("bulletin.medians", claim=duration_with_change(cur.median_claim, prev.median_claim, t),
          resolve=duration_with_change(cur.median_resolve, prev.median_resolve, t)),
    ]
    if cur.rated:
        lines.append(t("bulletin.satisfaction", rate=rate_with_change(cur.satisfaction, prev.satisfaction, t),
                       rated=cur.rated, satisfied=cur.ratings.get("satisfied", 0),
                       basic=cur.ratings.get("basic", 0), unsatisfied=cur.ratings.get("unsatisfied", 0)))
    else:
        lines.append(t("bulletin.satisfaction_none"))
    lines.append(categories_line(cur, prev, t, public))
    return lines


def categories_line(cur: Figures, prev: Figures, t: Texts, public: bool = False) -> str:
    now, before = (cur.public_categories, prev.public_categories) if public else (cur.categories, prev.categories)
    if not now:
        return t("bulletin.categories", items=t("summary.none"))
    ordered = sorted(now.items(), key=lambda item: (-item[1], item[0]))
    items = t("bulletin.sep").join(
        f"{category_label(key, t)} {count_with_change(count, before.get(key, 0))}"
        for key, count in ordered
    )
    return t("bulletin.categories", items=items)


def _legend(period: Period, t: Texts) -> str:
    return t(f"bulletin.legend_{period.kind}")


# --- the bulletins ---------------------------------------------------------------------
def render(node: Node, tree: Tree, figs: PeriodFigures, t: Texts, period: Period) -> list[str]:
    """The bulletin a node's chat gets, as messages within Telegram's length limit."""
    cur = figs.total(tree, node.id)
    prev = figs.total(tree, node.id, previous=True)
    lines = [_title(node, period, t), *figure_lines(cur, prev, t, period, public=node.tier == UNIT)]
    if node.tier not in (COMMUNITY, STATION):
        count = figs.stars(node.id)
        stars = star_rating.show(count) if count is not None or not cur.new else t("bulletin.stars_closed")
        lines.append(t("bulletin.stars", stars=stars))
    if figs.safety is not None:  # beside the stars, not part of them
        lines.append(_safety_line(node, tree, figs.safety, t))
    lines.append(_legend(period, t))
    if node.tier == COMMUNITY:
        lines += ["", t("bulletin.ranking")]
        lines += _ranking(node, tree, figs, t, with_community=False)
    elif node.tier == STATION:
        lines += ["", t("bulletin.communities")]
        for community_id in node.children:
            lines.append(_community_row(tree.nodes[community_id], tree, figs, t))
        lines += ["", t("bulletin.ranking"), _star_counts(node, tree, figs, t)]
        lines += _ranking(node, tree, figs, t, with_community=True)
        lines += ["", *_at_station(cur, tree, t, period)]
        lines += ["", *_unclaimed(node, tree, figs, t)]
    return split_message(lines)


def _unit_label(unit: Node, tree: Tree, with_community: bool) -> str:
    if not with_community:
        return unit.name
    return f"{tree.nodes[unit.parent_id or ''].name} · {unit.name}"


def ranked_units(node: Node, tree: Tree, figs: PeriodFigures) -> list[tuple[str, int | None]]:
    """The node's units by stars (most first), ties by the figures' ranking, unrated last
    (once per node: the ranking, the star counts and the chart all ask)."""
    if node.id not in figs._ranked:
        units = {u.id: figs.current[u.id] for u in tree.units_under(node.id)}
        figs._ranked[node.id] = star_rating.ranked(units, rank(units), figs.stars)
    return figs._ranked[node.id]


def _ranking(node: Node, tree: Tree, figs: PeriodFigures, t: Texts, with_community: bool) -> list[str]:
    ranked = list(enumerate(ranked_units(node, tree, figs), 1))
    if len(ranked) > 3 * RANK_SHOWN:
        ranked = [*ranked[:RANK_SHOWN], (0, ("", None)), *ranked[-RANK_SHOWN:]]
    lines = []
    for place, (unit_id, count) in ranked:
        if not place:
            lines.append("……")
            continue
        unit = tree.nodes[unit_id]
        fig = figs.current[unit_id]
        label = escape(_unit_label(unit, tree, with_community))
        if count is None and not fig.new:
            lines.append(t("bulletin.unit_row_empty", rank=f"{place}. ", unit=label))
            continue
        if count is None:  # matters came in, but none is left to judge: say why there are no stars
            lines.append(t("bulletin.unit_row_closed", rank=f"{place}. ", unit=label, new=fig.new,
                           resolved=fig.resolved, open=fig.open, overdue=fig.overdue))
            continue
        prev = figs.total(tree, unit_id, previous=True)
        lines.append(t("bulletin.unit_row", rank=f"{place}. ", stars=star_rating.show(count), unit=label,
                       new=fig.new, resolved=fig.resolved, open=fig.open, overdue=fig.overdue,
                       in_unit=rate_with_change(fig.in_unit_rate, prev.in_unit_rate, t)))
    if figs.safety is not None:
        safety = figs.safety
        lines = [line if line == "……" else line + _safety_suffix(unit_id, tree, safety, t)
                 for line, (_, (unit_id, _)) in zip(lines, ranked, strict=True)]
    return lines


def _community_row(community: Node, tree: Tree, figs: PeriodFigures, t: Texts) -> str:
    cur = figs.total(tree, community.id)
    counts = [c for c in (figs.stars(u.id) for u in tree.units_under(community.id)) if c]
    average = f"{half_up(sum(counts) / len(counts), 1):.1f}" if counts else t("summary.none")
    row = t("bulletin.community_row", community=escape(community.name), new=cur.new, resolved=cur.resolved,
            open=cur.open, overdue=cur.overdue, in_unit=rate_with_change(cur.in_unit_rate, None, t),
            stars=average)
    return row + _safety_suffix(community.id, tree, figs.safety, t) if figs.safety is not None else row


# --- 群众安全感 (issue 16): beside the stars, never part of them -----------------------------
def _safety_rate(node_id: str, tree: Tree, safety: SafetyFigures, t: Texts) -> str | None:
    """The node's share feeling safe with its change from the month before, as shown; None
    under ``min_answers`` answers."""
    current = safety.rate(tree, node_id)
    if current is None:
        return None
    return rate_with_change(current, safety.rate(tree, node_id, previous=True), t)


def _safety_line(node: Node, tree: Tree, safety: SafetyFigures, t: Texts) -> str:
    """The node's own line; "—" under ``min_answers`` answers."""
    _, answers = safety.pooled(tree, node.id)
    rate = _safety_rate(node.id, tree, safety, t)
    if rate is None:
        return t("safety.line_few", answers=answers, min=safety.min_answers)
    return t("safety.line", rate=rate, answers=answers)


def _safety_suffix(node_id: str, tree: Tree, safety: SafetyFigures, t: Texts) -> str:
    """Appended to a unit's or a community's row of a ranking: beside the stars, not in them."""
    return t("safety.row", rate=_safety_rate(node_id, tree, safety, t) or t("summary.none"))


def _star_counts(node: Node, tree: Tree, figs: PeriodFigures, t: Texts) -> str:
    tally = {n: 0 for n in (5, 4, 3, 2, 1, None)}
    for _, count in ranked_units(node, tree, figs):
        tally[count] += 1
    return t("bulletin.star_counts", s5=tally[5], s4=tally[4], s3=tally[3], s2=tally[2], s1=tally[1],
             none=tally[None])


def _at_station(cur: Figures, tree: Tree, t: Texts, period: Period) -> list[str]:
    """通报 1: matters open at the end of the period that had gone up to the station,
    longest at the station first."""
    if not cur.at_station:
        return [t("bulletin.at_station_none")]
    ordered = sorted(cur.at_station, key=lambda m: (m.reached_station_at, m.matter_id))
    lines = [t("bulletin.at_station_title", count=len(ordered))]
    for m in ordered[:LISTED]:
        unit = tree.nodes[m.unit_id]
        lines.append(t("bulletin.at_station_item", id=m.matter_id, unit=escape(_unit_label(unit, tree, True)),
                       category=escape(category_name(m.category, t)),
                       waited=t.duration(period.end - m.reached_station_at),
                       age=t.duration(period.end - m.created_at)))
    if len(ordered) > LISTED:
        lines.append(t("bulletin.more", count=len(ordered) - LISTED))
    return lines


def _unclaimed(node: Node, tree: Tree, figs: PeriodFigures, t: Texts) -> list[str]:
    """通报 2: units that let matters go up to the community unclaimed, most first."""
    units = [u for u in tree.units_under(node.id) if figs.current[u.id].unclaimed_up]
    if not units:
        return [t("bulletin.unclaimed_none")]
    units.sort(key=lambda u: (-figs.current[u.id].unclaimed_up, -figs.current[u.id].overdue, u.id))
    lines = [t("bulletin.unclaimed_title", count=len(units))]
    for unit in units[:LISTED]:
        lines.append(t("bulletin.unclaimed_item", unit=escape(_unit_label(unit, tree, True)),
                       n=figs.current[unit.id].unclaimed_up))
    if len(units) > LISTED:
        lines.append(t("bulletin.more", count=len(units) - LISTED))
    return lines


# --- the chart's description --------------------------------------------------------------
def chart_spec(node: Node, tree: Tree, figs: PeriodFigures, t: Texts, period: Period) -> dict:
    """What reports.charts draws for a community or the station: matters reported per
    week over CHART_WEEKS weeks stacked by category, and a bar per unit of resolved vs
    open (every unit up to CHART_UNITS, else the best and the worst by stars). Plain
    JSON-able data, so it can wait in the outbox."""
    weeks = [period.week_start(end) for end in period.chart_weeks()]
    per_category: dict[str, list[int]] = {}
    for key, values in figs.weekly_by_category(tree, node.id).items():
        known = per_category.get(key)
        per_category[key] = values if known is None else [a + b for a, b in zip(known, values, strict=True)]
    ordered = sorted(per_category.items(), key=lambda item: (item[0] == OTHER, -sum(item[1]), item[0]))
    if len(ordered) > CHART_CATEGORIES:  # the smallest, and "other" itself, drawn as one "other"
        rest = [sum(values) for values in zip(*(v for _, v in ordered[CHART_CATEGORIES - 1 :]), strict=True)]
        ordered = [*ordered[: CHART_CATEGORIES - 1], (OTHER, rest)]
    series = [{"label": category_name(key, t), "values": values} for key, values in ordered]

    ranked = [(u, c) for u, c in ranked_units(node, tree, figs) if c is not None]
    half = CHART_UNITS // 2
    shown = ranked if len(ranked) <= CHART_UNITS else [*ranked[:half], ("", None), *ranked[-half:]]
    with_community = node.tier == STATION
    units = []
    for unit_id, count in shown:
        if not unit_id:
            units.append({"label": "……", "resolved": 0, "open": 0, "gap": True})
            continue
        fig = figs.current[unit_id]
        label = f"{_unit_label(tree.nodes[unit_id], tree, with_community)} {star_rating.show(count)}"
        units.append({"label": label, "resolved": fig.resolved, "open": fig.open})
    units_title = (t("chart.units_title", period=period_label(period, t)) if len(ranked) <= CHART_UNITS
                   else t("chart.units_title_top", n=half, period=period_label(period, t)))
    return {
        "title": t("chart.title", node=node.name, period=period_label(period, t)),
        "weeks_title": t("chart.weeks_title", n=CHART_WEEKS),
        "weeks": [datetime.fromtimestamp(w, t.tz).strftime("%m-%d") for w in weeks],
        "series": series,
        "units_title": units_title,
        "units": units,
        "resolved": t("chart.resolved"),
        "open": t("chart.open"),
        "count": t("chart.count"),
        "week_of": t("chart.week_of"),
        "empty": t("chart.empty"),
    }


def chart_caption(node: Node, t: Texts, period: Period) -> str:
    return t("bulletin.chart_caption", node=escape(node.name), period=period_label(period, t))


def build(tree: Tree, figs: PeriodFigures, t: Texts, period: Period, nodes: list[Node]) -> list[Bulletin]:
    """The bulletins of ``nodes``: messages for all, a chart for communities and the station."""
    out = []
    for node in nodes:
        chart = chart_spec(node, tree, figs, t, period) if node.tier in (STATION, COMMUNITY) else None
        out.append(Bulletin(node.id, render(node, tree, figs, t, period), chart))
    return out


# --- what a bulletin is made of, kept until it is sent (issue 13) ---------------------------
# A bulletin waits in the outbox as its figures, not its words: bot/text/render.py composes
# it when it is sent, in the chat's language then. ``view`` keeps what ``render`` and
# ``chart_spec`` read for one node (plain JSON); ``from_view`` gives it back as a
# PeriodFigures that reads the same. A node's own figures are kept whole; its units' and
# communities' only as far as rows, stars and ranks read them.
_COUNTS = ("new", "resolved", "open", "overdue", "escalated", "to_community", "to_station", "resolved_in_unit",
           "unclaimed_up")
_RATINGS = ("satisfied", "basic", "unsatisfied")


def _row(fig: Figures) -> list[int]:
    return [getattr(fig, name) for name in _COUNTS] + [fig.ratings.get(key, 0) for key in _RATINGS]


def _from_row(row: list[int]) -> Figures:
    fig = Figures(**dict(zip(_COUNTS, row, strict=False)))
    fig.ratings = {key: n for key, n in zip(_RATINGS, row[len(_COUNTS):], strict=True) if n}
    return fig


def _whole(fig: Figures) -> dict[str, Any]:
    return summary.shown(fig) | {
        "private_categories": fig.private_categories,
        "at_station": [[m.matter_id, m.unit_id, m.category, m.created_at, m.reached_station_at]
                       for m in fig.at_station],
    }


def _from_whole(data: dict[str, Any]) -> Figures:
    fig = summary.from_shown(data)
    fig.private_categories = dict(data.get("private_categories") or {})
    fig.at_station = [summary.AtStation(*m) for m in data.get("at_station") or ()]
    return fig


def view(node: Node, tree: Tree, figs: PeriodFigures, period: Period) -> dict[str, Any]:
    """What ``node``'s bulletin and chart are made of, in no language (JSON-able)."""
    units = [u.id for u in tree.units_under(node.id)] if node.tier in (STATION, COMMUNITY) else []
    return {
        "node": node.id,
        "period": [period.kind, period.start, period.end, period.prev_start, period.month, period.chart_end,
                   period.tz.key if period.tz is not None else None],
        "current": _whole(figs.total(tree, node.id)),
        "previous": _whole(figs.total(tree, node.id, previous=True)),
        "units": {u: [_row(figs.current[u]), _row(figs.total(tree, u, previous=True))] for u in units},
        "communities": {c: _row(figs.total(tree, c)) for c in node.children} if node.tier == STATION else {},
        "history": figs.weekly_by_category(tree, node.id) if units else {},
        "safety": _safety_view(node, tree, figs.safety) if figs.safety is not None else None,
    }


def from_view(data: dict[str, Any], tree: Tree) -> tuple[Node, PeriodFigures, Period]:
    """The node, figures and period of a bulletin kept by ``view``."""
    kind, start, end, prev_start, month, chart_end, tz = data["period"]
    period = Period(kind, start, end, prev_start, tuple(month) if month else None, chart_end,
                    ZoneInfo(tz) if tz else None)
    node = tree.nodes[data["node"]]
    current, previous = _from_whole(data["current"]), _from_whole(data["previous"])
    units = {u: _from_row(now) for u, (now, _) in data["units"].items()}
    figs = PeriodFigures(
        units or {node.id: current}, {}, published={node.id: previous} | {
            u: _from_row(before) for u, (_, before) in data["units"].items()},
        _totals={(node.id, False): current} | {(c, False): _from_row(row) for c, row in data["communities"].items()},
        _by_node={node.id: data["history"]},
    )
    if data.get("safety") is not None:
        figs.safety = _safety_from_view(data["safety"])
    return node, figs, period


def _safety_view(node: Node, tree: Tree, safety: SafetyFigures) -> dict[str, Any]:
    """The polls the node's bulletin reads: its units' (safe, answers), this month and the one
    before; a community's and the town's figures pool them when composed."""
    units = [u.id for u in tree.units_under(node.id)]
    return {"min": safety.min_answers,
            "current": {u: list(safety.current[u]) for u in units if u in safety.current},
            "previous": {u: list(safety.previous[u]) for u in units if u in safety.previous}}


def _safety_from_view(data: dict[str, Any]) -> SafetyFigures:
    return SafetyFigures({u: (safe, answers) for u, (safe, answers) in data["current"].items()},
                         {u: (safe, answers) for u, (safe, answers) in data["previous"].items()}, data["min"])


def messages(data: dict[str, Any], tree: Tree, t: Texts) -> list[str]:
    """The messages of a bulletin kept by ``view``, in ``t``'s language."""
    node, figs, period = from_view(data, tree)
    return render(node, tree, figs, t, period)


def chart(data: dict[str, Any], tree: Tree, t: Texts) -> tuple[str, dict]:
    """The caption and the chart description of a bulletin kept by ``view``."""
    node, figs, period = from_view(data, tree)
    return chart_caption(node, t, period), chart_spec(node, tree, figs, t, period)
