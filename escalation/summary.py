"""Figures per unit for a period, rolled up per community and for the town (pure).
The bulletins that show them are in reports/bulletin.py.

Figures for a period [start, end):
- new: reported in the period;  resolved: resolved in the period;
- open: reported before the end and not resolved by then;
- overdue: open at the end and escalated at least once (it missed a deadline);
- escalated: matters escalated at least once during the period;
- median time to claim / to resolve: over matters first claimed / resolved in the period,
  measured from the report;
- to community / to station: matters that first reached tier 2 / tier 1 in the period;
- resolved in the unit (小事不出村): resolved in the period without ever leaving the unit;
- unclaimed up: matters that went up to the community in the period before anyone in the
  unit claimed them (a unit that lets matters sit is named in the station's bulletin);
- satisfaction: the reporters' ratings given in the period (of the matters the period's
  facts hold: resolved since the period before began, or open — a rating given more than a
  period after its matter was resolved is not counted); the rate is
  (satisfied + basic) / rated, as 群众满意度 is usually counted;
- by category: matters reported in the period, per category key;
- at the station: matters open at the end that had reached the station, with when.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from statistics import median

from bot.storage import SummaryFacts
from bot.tree import UNIT, Tree


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
        return median(self.claim_times) if self.claim_times else None

    @property
    def median_resolve(self) -> float | None:
        return median(self.resolve_times) if self.resolve_times else None

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

    @property
    def empty(self) -> bool:
        """Nothing happened and nothing was waiting: there is nothing to judge."""
        return not (self.new or self.judged or self.rated)

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


@dataclass(frozen=True, slots=True)
class AtStation:
    """A matter still open at the end of the period that had gone up to the station."""

    matter_id: int
    unit_id: str
    category: str
    created_at: float
    reached_station_at: float


def unit_figures(
    facts: list[SummaryFacts], escalated: dict[str, int], unit_ids: list[str], start: float, end: float
) -> dict[str, Figures]:
    """Every unit's figures; units without matters get zeros, not absence."""
    out = {unit_id: Figures(escalated=escalated.get(unit_id, 0)) for unit_id in unit_ids}
    for f in facts:
        # One unpacking per matter: a big town's week is a quarter of a million of them.
        (unit_id, created, claimed, resolved, escalated_at, matter_id, category, top_tier, to_community,
         to_station, rating, rated_at, closed, private) = f
        closed = closed if closed is not None else resolved
        fig = out.get(unit_id)
        if fig is None or created >= end:  # a unit since removed from config.yaml; a later matter
            continue
        if created >= start:
            fig.new += 1
            fig.categories[category] = fig.categories.get(category, 0) + 1
            if private:
                fig.private_categories[category] = fig.private_categories.get(category, 0) + 1
        if closed is None or closed >= end:
            fig.open += 1
            if escalated_at is not None and escalated_at < end:
                fig.overdue += 1
                if to_station is not None and to_station < end:
                    fig.at_station.append(AtStation(matter_id, unit_id, category, created, to_station))
        elif resolved is not None and start <= resolved < end:  # closed otherwise: never "resolved"
            fig.resolved += 1
            fig.resolve_times.append(resolved - created)
            if top_tier == UNIT:
                fig.resolved_in_unit += 1
        if claimed is not None and start <= claimed < end:
            fig.claim_times.append(claimed - created)
        if escalated_at is not None:
            if to_community is not None and start <= to_community < end:
                fig.to_community += 1
                if claimed is None or claimed > to_community:
                    fig.unclaimed_up += 1
            if to_station is not None and start <= to_station < end:
                fig.to_station += 1
        if rated_at is not None and rating and start <= rated_at < end:
            fig.ratings[rating] = fig.ratings.get(rating, 0) + 1
    return out


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
