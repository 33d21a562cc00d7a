"""Weekly figures per unit, rolled up per community and for the town, and their text.

Figures for a period [start, end):
- new: reported in the period;  resolved: resolved in the period;
- open: reported before the end and not resolved by then;
- overdue: open at the end and escalated at least once (it missed a deadline);
- escalated: matters escalated at least once during the period;
- median time to claim / to resolve: over matters first claimed / resolved in the period,
  measured from the report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from statistics import median

from bot.i18n import Texts
from bot.storage import SummaryFacts
from bot.tree import COMMUNITY, STATION, Node, Tree


@dataclass
class Figures:
    new: int = 0
    resolved: int = 0
    open: int = 0
    overdue: int = 0
    escalated: int = 0
    claim_times: list[float] = field(default_factory=list)
    resolve_times: list[float] = field(default_factory=list)

    @property
    def median_claim(self) -> float | None:
        return median(self.claim_times) if self.claim_times else None

    @property
    def median_resolve(self) -> float | None:
        return median(self.resolve_times) if self.resolve_times else None

    def add(self, other: Figures) -> None:
        self.new += other.new
        self.resolved += other.resolved
        self.open += other.open
        self.overdue += other.overdue
        self.escalated += other.escalated
        self.claim_times += other.claim_times
        self.resolve_times += other.resolve_times


def unit_figures(
    facts: list[SummaryFacts], escalated: dict[str, int], unit_ids: list[str], start: float, end: float
) -> dict[str, Figures]:
    """Every unit's figures; units without matters get zeros, not absence."""
    out = {unit_id: Figures(escalated=escalated.get(unit_id, 0)) for unit_id in unit_ids}
    for f in facts:
        fig = out.get(f.unit_id)
        if fig is None:  # a unit since removed from config.yaml
            continue
        if start <= f.created_at < end:
            fig.new += 1
        if f.resolved_at is not None and start <= f.resolved_at < end:
            fig.resolved += 1
            fig.resolve_times.append(f.resolved_at - f.created_at)
        closed_at = f.closed_at if f.closed_at is not None else f.resolved_at
        if f.created_at < end and (closed_at is None or closed_at >= end):
            fig.open += 1
            if f.escalated_at is not None and f.escalated_at < end:
                fig.overdue += 1
        if f.first_claimed_at is not None and start <= f.first_claimed_at < end:
            fig.claim_times.append(f.first_claimed_at - f.created_at)
    return out


def rollup(tree: Tree, node_id: str, units: dict[str, Figures]) -> Figures:
    total = Figures()
    for unit in tree.units_under(node_id):
        total.add(units[unit.id])
    return total


def rank(units: dict[str, Figures]) -> list[str]:
    """Best first: fewest overdue, then fewest escalated, then most resolved, then fewest open."""
    return sorted(units, key=lambda u: (units[u].overdue, units[u].escalated, -units[u].resolved, units[u].open, u))


RANK_SHOWN = 10  # a big town's ranking shows the best and the worst this many


def render(node: Node, tree: Tree, units: dict[str, Figures], t: Texts, start: float, end: float) -> list[str]:
    """The summary a node's chat gets, as messages: its own figures, plus its units for
    tiers 1 and 2."""
    title_key = {STATION: "summary.station_title", COMMUNITY: "summary.community_title"}.get(
        node.tier, "summary.unit_title"
    )
    total = rollup(tree, node.id, units)
    lines = [
        t(title_key, node=escape(node.name), start=t.time(start), end=t.time(end)),
        _figures_line(total, t),
        _medians_line(total, t),
    ]
    if node.tier == COMMUNITY:
        lines += ["", t("summary.units")]
        for unit in tree.units_under(node.id):
            lines.append(_row(unit.name, units[unit.id], t, rank=""))
    elif node.tier == STATION:
        lines += ["", t("summary.ranking")]
        ranked = list(enumerate(rank({u.id: units[u.id] for u in tree.units_under(node.id)}), 1))
        if len(ranked) > 3 * RANK_SHOWN:
            ranked = [*ranked[:RANK_SHOWN], (0, ""), *ranked[-RANK_SHOWN:]]
        for place, unit_id in ranked:
            if not place:
                lines.append("……")
                continue
            unit = tree.nodes[unit_id]
            community = tree.nodes[unit.parent_id or ""]
            lines.append(_row(f"{community.name} · {unit.name}", units[unit_id], t, rank=f"{place}. "))
    return split_message(lines)


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


def _figures_line(fig: Figures, t: Texts) -> str:
    return t("summary.figures", new=fig.new, resolved=fig.resolved, open=fig.open,
             overdue=fig.overdue, escalated=fig.escalated)


def _medians_line(fig: Figures, t: Texts) -> str:
    def show(value: float | None) -> str:
        return t.duration(value) if value is not None else t("summary.none")

    return t("summary.medians", claim=show(fig.median_claim), resolve=show(fig.median_resolve))


def _row(name: str, fig: Figures, t: Texts, rank: str) -> str:
    return t("summary.row", rank=rank, unit=escape(name), new=fig.new, resolved=fig.resolved,
             open=fig.open, overdue=fig.overdue, escalated=fig.escalated)
