"""Figures per unit for a period, rolled up per community and for the town (pure).
The bulletins that show them are in reports/bulletin.py.

Figures for a period [start, end), from the timeline as it stood at the end (a later
reopen or move never changes a period that is over):
- new: reported in the period;  resolved: matters with a resolve event in the period;
- open: reported before the end and not closed as of the end (无法解决, 转交 and
  withdrawn matters are closed);
- overdue: open at the end and missed a deadline by then (a deliberate /escalate or a
  takeover from above is a move up, not a missed deadline);
- escalated: matters escalated at least once during the period;
- median time to claim / to resolve: over matters first claimed / resolved in the period,
  measured from the report; the first claim is the first claim event (a claim or a
  takeover), never a resolve;
- to community / to station: matters that first reached tier 2 / tier 1 in the period,
  by any arrival (a missed deadline, /escalate, a takeover);
- resolved in the unit (小事不出村): resolved in the period, never having left the unit;
- unclaimed up: matters that a missed deadline sent to the community in the period before
  anyone had claimed them (a unit that lets matters sit is named in the station's bulletin);
- satisfaction: the reporters' ratings given in the period, whatever became of their
  matter since; the rate is (satisfied + basic) / rated, as 群众满意度 is usually counted;
- by category: matters reported in the period, per category key;
- at the station: matters open at the end that were at the station then, with when they
  last arrived there.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from itertools import groupby
from operator import itemgetter
from typing import Any

from bot.store import SummaryFacts
from bot.text.i18n import CATALOGS
from bot.tree import COMMUNITY, STATION, UNIT, Tree


@dataclass
class Figures:
    new: int = 0
    resolved: int = 0
    open: int = 0
    overdue: int = 0
    escalated: int = 0
    claim_times: list[float] = field(default_factory=list)
    resolve_times: list[float] = field(default_factory=list)
    to_community: int = 0
    to_station: int = 0
    resolved_in_unit: int = 0
    unclaimed_up: int = 0
    ratings: dict[str, int] = field(default_factory=dict)  # satisfied / basic / unsatisfied → count
    categories: dict[str, int] = field(default_factory=dict)  # category key → matters reported
    private_categories: dict[str, int] = field(default_factory=dict)  # the private ones among them
    at_station: list[AtStation] = field(default_factory=list)

    @property
    def public_categories(self) -> dict[str, int]:
        """Matters reported per category, private reports left out: what a unit group may
        read (bot/visibility.py), where one 家庭纠纷 could name a private report."""
        if not self.private_categories:  # most units, most weeks
            return self.categories
        return {key: n - self.private_categories.get(key, 0) for key, n in self.categories.items()
                if n > self.private_categories.get(key, 0)}

    @property
    def median_claim(self) -> float | None:
        return sorted_median(self.claim_times)

    @property
    def median_resolve(self) -> float | None:
        return sorted_median(self.resolve_times)

    @property
    def rated(self) -> int:
        return sum(self.ratings.values())

    @property
    def satisfaction(self) -> float | None:
        """(satisfied + basic) / rated; None when nobody rated."""
        rated = self.rated
        if not rated:
            return None
        return (self.ratings.get("satisfied", 0) + self.ratings.get("basic", 0)) / rated

    @property
    def in_unit_rate(self) -> float | None:
        """小事不出村: the share of matters resolved in the period that never left the unit."""
        return self.resolved_in_unit / self.resolved if self.resolved else None

    @property
    def judged(self) -> int:
        """Matters the period's work is judged on: resolved in it, or open at its end."""
        return self.resolved + self.open

    @property
    def on_time(self) -> int:
        """Of those, the ones that never missed a deadline (by the end of the period)."""
        return self.resolved_in_unit + self.open - self.overdue

    def add(self, other: Figures) -> None:
        self.new += other.new
        self.resolved += other.resolved
        self.open += other.open
        self.overdue += other.overdue
        self.escalated += other.escalated
        self.claim_times += other.claim_times
        self.resolve_times += other.resolve_times
        self.to_community += other.to_community
        self.to_station += other.to_station
        self.resolved_in_unit += other.resolved_in_unit
        self.unclaimed_up += other.unclaimed_up
        for rating, count in other.ratings.items():
            self.ratings[rating] = self.ratings.get(rating, 0) + count
        for category, count in other.categories.items():
            self.categories[category] = self.categories.get(category, 0) + count
        for category, count in other.private_categories.items():
            self.private_categories[category] = self.private_categories.get(category, 0) + count
        self.at_station += other.at_station


def sorted_median(values: list[float]) -> float | None:
    """statistics.median, sorting the list in place: a list is asked for its median more
    than once, and a community's or the town's list is its units' lists end to end, each
    sorted by unit_figures, which sort in a merge (statistics.median sorts a copy each time)."""
    if not values:
        return None
    values.sort()
    n = len(values)
    return values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2


def shown(fig: Figures) -> dict[str, Any]:
    """What a bulletin shows of a node's figures, to keep as published (JSON-able)."""
    return {"new": fig.new, "resolved": fig.resolved, "open": fig.open, "overdue": fig.overdue,
            "escalated": fig.escalated, "to_community": fig.to_community, "to_station": fig.to_station,
            "resolved_in_unit": fig.resolved_in_unit, "unclaimed_up": fig.unclaimed_up,
            "median_claim": fig.median_claim, "median_resolve": fig.median_resolve,
            "ratings": fig.ratings, "categories": fig.categories}


def from_shown(data: dict[str, Any]) -> Figures:
    """Published figures back as Figures (each median as the one time it was)."""
    fig = Figures(**{k: data.get(k, 0) for k in ("new", "resolved", "open", "overdue", "escalated", "to_community",
                                                  "to_station", "resolved_in_unit", "unclaimed_up")})
    fig.claim_times = [data["median_claim"]] if data.get("median_claim") is not None else []
    fig.resolve_times = [data["median_resolve"]] if data.get("median_resolve") is not None else []
    fig.ratings = dict(data.get("ratings") or {})
    fig.categories = dict(data.get("categories") or {})
    return fig


@dataclass(frozen=True, slots=True)
class AtStation:
    """A matter still open at the end of the period that had gone up to the station."""

    matter_id: int
    unit_id: str
    category: str
    created_at: float
    reached_station_at: float  # when it last arrived there


CLOSING = frozenset(("resolved", "unresolvable", "referred", "cancelled"))
ARRIVALS = frozenset(("escalated", "taken_over"))  # a move up, by a deadline or by a person
MOVES = frozenset(("escalated", "taken_over", "returned", "reopened"))  # events that set the matter's tier
MISSED = frozenset(("escalated", "reping"))  # written by the sweep: a deadline passed


def facts(moved: list[Any], events: list[Any]) -> list[SummaryFacts]:
    """The history of each matter that went above its unit or was reopened (rows and
    timelines as bot/store/ summary_matters gives them), replayed from its timeline."""
    # A matter's events come together (ordered by matter): grouped in C.
    timelines = {matter_id: list(timeline) for matter_id, timeline in groupby(events, itemgetter(0))}
    out = []
    for unit_id, created, claimed, resolved, escalated, matter_id, category, top_tier, closed, private in moved:
        timeline = timelines.get(matter_id)
        if timeline is None:  # nothing to replay: as its columns say
            out.append(SummaryFacts(unit_id, created, claimed, resolved, escalated, matter_id, category, top_tier,
                                    closed_at=closed, private=bool(private)))
        else:
            out.append(replay(unit_id, created, claimed, matter_id, category, timeline, bool(private)))
    return out


def escalated_between(moved: list[Any], events: list[Any], start: float, end: float) -> dict[str, int]:
    """Per unit, how many matters were escalated in [start, end), from the timelines that
    summary_matters read (every escalated matter is among them: a move up sets escalated_at)."""
    unit_of = {row[5]: row[0] for row in moved}
    seen: set[int] = set()
    out: dict[str, int] = {}
    for event in events:
        if event[2] == "escalated" and start <= event[1] < end and event[0] not in seen:
            seen.add(event[0])
            unit_id = unit_of[event[0]]
            out[unit_id] = out.get(unit_id, 0) + 1
    return out


def replay(unit_id: str, created: float, claimed: float | None, matter_id: int, category: str,
           timeline: list[Any], private: bool = False) -> SummaryFacts:
    """A matter's history from its timeline (events in order, as TimelineRow or plain tuples)."""
    tier = top = UNIT
    closes: list[tuple[float, str | None]] = []
    resolves: list[tuple[float, int]] = []
    moves: list[tuple[float, int]] = []
    missed = community = station = unclaimed = None
    for _, at, kind, e_tier, by_deadline, _ in timeline:  # (TimelineRow's six fields)
        if kind in ARRIVALS and e_tier is not None:
            if e_tier == COMMUNITY and community is None:
                community = at
            elif e_tier == STATION and station is None:
                station = at
            if e_tier < top:
                top = e_tier
        if by_deadline and kind in MISSED:
            if missed is None:
                missed = at
            if kind == "escalated" and e_tier == COMMUNITY and unclaimed is None and (claimed is None or claimed > at):
                unclaimed = at
        if kind in CLOSING:
            closes.append((at, kind))
            if kind == "resolved":
                resolves.append((at, top))
        elif kind == "reopened":
            closes.append((at, None))
        if kind in MOVES and e_tier is not None and (e_tier != tier or kind == "reopened"):
            moves.append((at, e_tier))  # an arrival: its clocks start again there
            tier = e_tier
    last_resolve = resolves[-1][0] if resolves else None
    return SummaryFacts(unit_id, created, claimed, last_resolve, missed, matter_id, category, top, community, station,
                        unclaimed, None, tuple(closes), tuple(resolves), tuple(moves), private)


def state_at(closes: tuple[tuple[float, str | None], ...], when: float) -> str | None:
    """How the matter stood just before ``when``: the state it was closed in, or None (open)."""
    state = None
    for at, closed in closes:
        if at >= when:
            break
        state = closed
    return state


def tier_at(moves: tuple[tuple[float, int], ...], when: float) -> tuple[int, float | None]:
    """The tier holding the matter just before ``when``, and since when (None: since reported)."""
    tier, since = UNIT, None
    for at, to in moves:
        if at >= when:
            break
        tier, since = to, at
    return tier, since


def rating_key(label: str | None) -> str | None:
    """The rating a "rated" event records (its label in the default language, or the key)."""
    return _RATING_LABELS.get(label or "")


_RATING_LABELS = {key: key for key in ("satisfied", "basic", "unsatisfied")} | {
    catalog[f"rating.{key}"]: key for catalog in CATALOGS.values() for key in ("satisfied", "basic", "unsatisfied")
}


def unit_figures(
    facts: list[SummaryFacts], escalated: dict[str, int], unit_ids: list[str], start: float, end: float,
    ratings: Iterable[tuple[str, str | None, float, int]] = (), plain: Iterable[Any] = (),
    idle: Iterable[tuple[str, int]] = (),
) -> dict[str, Figures]:
    """Every unit's figures, from the timeline as it stood at ``end``; units without
    matters get zeros, not absence. ``ratings``: (unit, label, when, how many) of ratings
    given (a group given in the same period, counted as one row). ``plain``: matters that
    never left their unit and were not reopened, as summary_matters' rows. ``idle``: (unit,
    how many) of plain matters reported before ``start`` and open at ``end`` with nothing
    else in the period (summary_rows counts them instead of reading them)."""
    out = {unit_id: Figures(escalated=escalated.get(unit_id, 0)) for unit_id in unit_ids}
    _add_plain(out, plain, start, end)
    for unit_id, n in idle:
        fig = out.get(unit_id)
        if fig is not None:  # else a unit since removed from config.yaml
            fig.open += n
    for f in facts:
        # One unpacking per matter: a big town's week is a quarter of a million of them.
        (unit_id, created, claimed, resolved, missed, matter_id, category, top_tier, to_community,
         to_station, unclaimed, closed, closes, resolves, moves, private) = f
        fig = out.get(unit_id)
        if fig is None or created >= end:  # a unit since removed from config.yaml; a later matter
            continue
        if created >= start:
            fig.new += 1
            fig.categories[category] = fig.categories.get(category, 0) + 1
            if private:
                fig.private_categories[category] = fig.private_categories.get(category, 0) + 1
        if closes is None:
            closed = closed if closed is not None else resolved
            still_open = closed is None or closed >= end
        else:
            still_open = state_at(closes, end) is None
        if still_open:  # 未结: not closed as of the end (无法解决, 转交 and withdrawn are closed)
            fig.open += 1
            if missed is not None and missed < end:
                fig.overdue += 1
            if moves is None:
                tier, since = (STATION, to_station) if to_station is not None and to_station < end else (UNIT, None)
            else:
                tier, since = tier_at(moves, end)
            if tier == STATION:
                fig.at_station.append(AtStation(matter_id, unit_id, category, created, since or created))
        if resolves is None:
            if resolved is not None and start <= resolved < end:
                fig.resolved += 1
                fig.resolve_times.append(resolved - created)
                if top_tier == UNIT:
                    fig.resolved_in_unit += 1
        else:  # each resolve counts in its period, even if the matter was reopened since
            last = None
            for at, top in resolves:
                if start <= at < end:
                    last = (at, top)
            if last is not None:
                fig.resolved += 1
                fig.resolve_times.append(last[0] - created)
                if last[1] == UNIT:
                    fig.resolved_in_unit += 1
        if claimed is not None and start <= claimed < end:
            fig.claim_times.append(claimed - created)
        if to_community is not None and start <= to_community < end:
            fig.to_community += 1
        if unclaimed is not None and start <= unclaimed < end:
            fig.unclaimed_up += 1
        if to_station is not None and start <= to_station < end:
            fig.to_station += 1
    for unit_id, label, at, count in ratings:
        fig = out.get(unit_id)
        key = rating_key(label)
        if fig is not None and key is not None and start <= at < end:
            fig.ratings[key] = fig.ratings.get(key, 0) + count
    for fig in out.values():  # sorted runs: the medians of their sums sort in a merge (sorted_median)
        fig.claim_times.sort()
        fig.resolve_times.sort()
    return out


def _add_plain(out: dict[str, Figures], rows: Iterable[Any], start: float, end: float) -> None:
    """unit_figures for matters whose columns say all their timeline says: they were never
    above their unit (so never overdue, never at the station) and not reopened since the
    start. One tight loop, as unit_figures' would do: a big town's week is a hundred
    thousand of them."""
    for unit_id, created, claimed, resolved, _, _, category, top_tier, closed, private in rows:
        if created >= end:
            continue
        fig = out.get(unit_id)
        if fig is None:  # a unit since removed from config.yaml
            continue
        if created >= start:
            fig.new += 1
            categories = fig.categories
            categories[category] = categories.get(category, 0) + 1
            if private:
                fig.private_categories[category] = fig.private_categories.get(category, 0) + 1
        if closed is None:
            closed = resolved
        if closed is None or closed >= end:
            fig.open += 1
        if resolved is not None and start <= resolved < end:
            fig.resolved += 1
            fig.resolve_times.append(resolved - created)
            if top_tier == UNIT:
                fig.resolved_in_unit += 1
        if claimed is not None and start <= claimed < end:
            fig.claim_times.append(claimed - created)


@lru_cache(maxsize=65536)  # a town's bulletins round some 20,000 shares, most of them alike
def half_up(value: float, digits: int = 0) -> float:
    """Rounded half up (四舍五入), the one rule for every figure shown: 12.5 → 13, 2.25 → 2.3.
    (Python's round() rounds half to even.) A float's binary noise is rounded away first."""
    quantum = Decimal(1).scaleb(-digits)
    return float(Decimal(repr(round(value, 9))).quantize(quantum, rounding=ROUND_HALF_UP))


def percent(rate: float) -> int:
    """A share as the whole percent shown."""
    return int(half_up(rate * 100))


def rollup(tree: Tree, node_id: str, units: dict[str, Figures]) -> Figures:
    total = Figures()
    for unit in tree.units_under(node_id):
        total.add(units[unit.id])
    return total


def rank(units: dict[str, Figures]) -> list[str]:
    """Best first: fewest overdue, then fewest escalated, then most resolved, then fewest open."""
    return sorted(units, key=lambda u: (units[u].overdue, units[u].escalated, -units[u].resolved, units[u].open, u))


def split_message(lines: list[str], limit: int = 4000) -> list[str]:
    """Join lines into messages within Telegram's 4,096 characters, never mid-line."""
    messages: list[str] = []
    current: list[str] = []
    size = 0
    for line in lines:
        if current and size + len(line) + 1 > limit:
            messages.append("\n".join(current))
            current, size = [], 0
        current.append(line)
        size += len(line) + 1
    if current:
        messages.append("\n".join(current))
    return messages
