"""The five-star rating of units (五星评比): a pure function of a unit's period figures.

score = weighted mean of the parts that apply
    on time        0.5   (resolved without leaving the unit + open and not overdue) / (resolved + open)
    in the unit    0.3   resolved without leaving the unit / resolved        (when something was resolved)
    satisfaction   0.2   (satisfied + basic) / rated                          (when someone rated)
stars: score ≥ 0.90 → 5, ≥ 0.75 → 4, ≥ 0.60 → 3, ≥ 0.40 → 2, else 1;
and a unit with a matter that reached the station in the period gets at most 3 stars
(大事不出镇: the station should not be where a unit's matters end up).
A unit with nothing to judge (no matter reported, resolved, open or rated) gets no stars
(shown "—"), not five.
"""

from __future__ import annotations

from collections.abc import Callable

from escalation.summary import Figures

WEIGHTS = {"on_time": 0.5, "in_unit": 0.3, "satisfaction": 0.2}
THRESHOLDS = ((0.90, 5), (0.75, 4), (0.60, 3), (0.40, 2))
STATION_CAP = 3
MAX_STARS = 5


def score(fig: Figures) -> float | None:
    """The unit's score in [0, 1], or None when there is nothing to judge."""
    parts: list[tuple[float, float]] = []
    if fig.judged:
        parts.append((WEIGHTS["on_time"], fig.on_time / fig.judged))
    if fig.in_unit_rate is not None:
        parts.append((WEIGHTS["in_unit"], fig.in_unit_rate))
    if fig.satisfaction is not None:
        parts.append((WEIGHTS["satisfaction"], fig.satisfaction))
    if not parts:
        return None
    return sum(weight * value for weight, value in parts) / sum(weight for weight, _ in parts)


def stars(fig: Figures) -> int | None:
    """1–5 stars, or None (shown "—") for a unit with nothing to judge."""
    value = score(fig)
    if value is None:
        return None
    count = next((n for threshold, n in THRESHOLDS if value >= threshold - 1e-9), 1)
    if fig.to_station:
        count = min(count, STATION_CAP)
    return count


def show(count: int | None, none: str = "—") -> str:
    """★★★★☆; ``none`` for a unit without stars."""
    if count is None:
        return none
    return "★" * count + "☆" * (MAX_STARS - count)


def ranked(
    units: dict[str, Figures], tie_break: list[str], stars_of: Callable[[str], int | None] | None = None
) -> list[tuple[str, int | None]]:
    """Units by stars, most first; ties keep the order of ``tie_break`` (the figures'
    ranking); units without stars last. ``stars_of`` may supply (cached) stars."""
    place = {unit_id: i for i, unit_id in enumerate(tie_break)}
    rated = [(unit_id, stars_of(unit_id) if stars_of else stars(fig)) for unit_id, fig in units.items()]
    return sorted(rated, key=lambda item: (item[1] is None, -(item[1] or 0), place.get(item[0], len(place))))
