"""群众安全感 (sense of safety): the share of a month's poll answers that say 很安全 or 比较安全.

A pure function of the polls' counts (issue 16). It is shown in the monthly bulletin beside
the stars and is no part of them: a unit's heads cannot answer for the town's crime trends.
A community's and the town's figures pool the answers of their units' polls. Fewer than
``safety_poll.min_answers`` answers make no figure (shown "—"), at any level.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.store import SafetyCount
from bot.tree import Tree

SAFE_OPTIONS = 2  # the first two options, 很安全 and 比较安全, count as feeling safe


def month_key(year: int, month: int) -> str:
    """The poll's month as stored: "2026-12"."""
    return f"{year:04d}-{month:02d}"


def month_before(year: int, month: int) -> tuple[int, int]:
    return (year - 1, 12) if month == 1 else (year, month - 1)


def safe_and_answers(counts: list[int], answers: int) -> tuple[int, int]:
    """(answers saying safe, answers) of one poll."""
    return sum(counts[:SAFE_OPTIONS]), answers


@dataclass
class SafetyFigures:
    """Each unit's (safe, answers) in the bulletin's month and the month before."""

    current: dict[str, tuple[int, int]]
    previous: dict[str, tuple[int, int]]
    min_answers: int
    _pooled: dict[tuple[str, bool], tuple[int, int]] = field(default_factory=dict, repr=False)

    @classmethod
    def of_months(cls, counts: list[SafetyCount], month: str, before: str, min_answers: int) -> SafetyFigures:
        current = {c.unit_id: safe_and_answers(c.counts, c.answers) for c in counts if c.month == month}
        previous = {c.unit_id: safe_and_answers(c.counts, c.answers) for c in counts if c.month == before}
        return cls(current, previous, min_answers)

    def pooled(self, tree: Tree, node_id: str, previous: bool = False) -> tuple[int, int]:
        """(safe, answers) of the node's units' polls together."""
        key = (node_id, previous)
        if key not in self._pooled:
            by_unit = self.previous if previous else self.current
            safe = answers = 0
            for unit in tree.units_under(node_id):
                unit_safe, unit_answers = by_unit.get(unit.id, (0, 0))
                safe += unit_safe
                answers += unit_answers
            self._pooled[key] = (safe, answers)
        return self._pooled[key]

    def rate(self, tree: Tree, node_id: str, previous: bool = False) -> float | None:
        """The share that feel safe; None with fewer than ``min_answers`` answers."""
        safe, answers = self.pooled(tree, node_id, previous)
        return rate(safe, answers, self.min_answers)


def rate(safe: int, answers: int, min_answers: int) -> float | None:
    if answers < max(1, min_answers):
        return None
    return safe / answers
