"""The officers' section of the bulletins (issue 16): what each officer did on foot.

Pure functions from visit log entries, the weekly screenings and the targets to one row per
officer per community; nothing here does I/O. Targets (seed 002, 一村一警): each community's
police officer works in the village ``days_per_week`` days a week, visiting at least
``households_per_visit`` households each time. Only a community's police are held to them
and ranked; its secretaries', grid workers' and the station staff's visits are counted and
shown after them, unranked.

A day counts toward the target when the officer finished a visit of at least
``households_per_visit`` households in that community that day (a local date, in the
town's zone): two short visits on one day do not add up to one full one, since the target
is "at least five households each time". ``days`` shows every day with a visit.

The monthly assessment counts the month's weeks in which the target was met: the weeks of
the weekly bulletins that went out in the month (each week ends at a weekly bulletin's
moment; a week belongs to the month its bulletin went out in, so each week is assessed in
exactly one month and is over when the month's bulletin goes out).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from escalation.reports.bulletin import Period, weeks_before

POLICE = "police"
UNRANKED_ORDER = ("secretary", "grid_worker", "staff")  # the community's own people first, the station's last
ROWS_PER_MESSAGE = 15  # officers' lines in one message: 15 of the longest (a month, in English) stay within 4,096


class VisitLike(Protocol):
    """A finished visit log entry, as bot/store/rows.Visit has it."""

    user_id: int
    user_name: str
    community_id: str | None
    households: int | None
    findings: str | None
    finished_at: float | None


@dataclass(frozen=True)
class Targets:
    days_per_week: int = 1
    households_per_visit: int = 5


@dataclass(frozen=True)
class Officer:
    """A community's police officer: held to the targets, listed even without a visit."""

    community_id: str
    user_id: int
    name: str


@dataclass
class Tally:
    days: int = 0  # distinct local dates with a finished visit
    target_days: int = 0  # … with a visit of at least households_per_visit households
    visits: int = 0
    households: int = 0
    findings: int = 0  # visits that recorded a finding


@dataclass(frozen=True)
class Screening:
    """A community's weekly screenings due in the period: asked, answered by their
    deadline, and the findings reported."""

    asked: int = 0
    done: int = 0
    findings: int = 0


@dataclass
class Row:
    community_id: str
    user_id: int
    name: str
    role: str  # bot/roles.Role's value: police, secretary, grid_worker, staff…
    ranked: bool
    now: Tally = field(default_factory=Tally)
    before: Tally = field(default_factory=Tally)  # the period before, for ↑↓
    met: bool | None = None  # ranked only: the week's target met (a month: met every week)
    weeks_met: int | None = None  # a month: the weeks whose target was met …
    weeks: int | None = None  # … of this many

    def data(self) -> dict[str, Any]:
        return asdict(self)


def local_day(at: float, tz: ZoneInfo) -> date:
    return datetime.fromtimestamp(at, tz).date()


Key = tuple[str, int]  # (community id, user id)


def tallies(visits: Iterable[VisitLike], start: float, end: float, tz: ZoneInfo, targets: Targets) -> dict[Key, Tally]:
    """Each (community, person)'s visits finished in [start, end)."""
    out: dict[Key, Tally] = {}
    days: dict[Key, set[date]] = {}
    full_days: dict[Key, set[date]] = {}
    for visit in visits:
        at = visit.finished_at
        if at is None or visit.community_id is None or not start <= at < end:
            continue
        key = (visit.community_id, visit.user_id)
        tally = out.setdefault(key, Tally())
        households = visit.households or 0
        tally.visits += 1
        tally.households += households
        tally.findings += bool((visit.findings or "").strip())
        day = local_day(at, tz)
        days.setdefault(key, set()).add(day)
        if households >= targets.households_per_visit:
            full_days.setdefault(key, set()).add(day)
    for key, tally in out.items():
        tally.days = len(days.get(key, ()))
        tally.target_days = len(full_days.get(key, ()))
    return out


def met(tally: Tally, targets: Targets) -> bool:
    return tally.target_days >= targets.days_per_week


def month_weeks(period: Period) -> list[tuple[float, float]]:
    """The weeks assessed in a month: those ending at a weekly bulletin's moment within it
    (``period.chart_end``, the last one; the month's end without one), oldest first."""
    anchor = period.chart_end if period.chart_end is not None else period.end
    weeks: list[tuple[float, float]] = []
    end = anchor
    while end > period.start:
        start = weeks_before(end, 1, period.tz)
        weeks.append((start, end))
        end = start
    return weeks[::-1]


def rows(
    officers: Sequence[Officer], visits: Sequence[VisitLike], period: Period, tz: ZoneInfo, targets: Targets,
    role_of: Callable[[str, int], str], weeks: Sequence[tuple[float, float]] = (),
) -> list[Row]:
    """One row per community's police officer, and per other person who logged a visit in
    the period or the one before; ``weeks`` (a month's, see ``month_weeks``): the weekly
    targets met in each. ``role_of(community, user)``: the person's role there."""
    now = tallies(visits, period.start, period.end, tz, targets)
    before = tallies(visits, period.prev_start, period.start, tz, targets)
    by_week = [tallies(visits, start, end, tz, targets) for start, end in weeks]
    names = {(v.community_id, v.user_id): v.user_name for v in visits if v.community_id is not None}
    out: list[Row] = []
    police = set()
    for officer in officers:
        key = (officer.community_id, officer.user_id)
        police.add(key)
        row = Row(officer.community_id, officer.user_id, officer.name, POLICE, True,
                  now.get(key, Tally()), before.get(key, Tally()))
        if weeks:
            row.weeks = len(weeks)
            row.weeks_met = sum(met(week.get(key, Tally()), targets) for week in by_week)
            row.met = row.weeks_met == row.weeks
        else:
            row.met = met(row.now, targets)
        out.append(row)
    for key in sorted(set(now) | set(before)):
        if key in police:
            continue
        community, user = key
        out.append(Row(community, user, names.get(key, str(user)), role_of(community, user), False,
                       now.get(key, Tally()), before.get(key, Tally())))
    return out


def ordered(rows: Iterable[Row], communities: Sequence[str]) -> list[Row]:
    """The ranked first, those below target first (the furthest below first), then those
    who met it (the most done first); then everyone else, by community and role."""
    place = {c: i for i, c in enumerate(communities)}

    def key(row: Row) -> tuple[Any, ...]:
        where = place.get(row.community_id, len(place))
        if not row.ranked:
            rank = UNRANKED_ORDER.index(row.role) if row.role in UNRANKED_ORDER else len(UNRANKED_ORDER)
            return (2, where, rank, row.name, row.user_id)
        done = (row.weeks_met or 0, row.now.target_days, row.now.households, row.now.visits)
        return (1 if row.met else 0, tuple(-n for n in done) if row.met else done, where, row.name, row.user_id)

    return sorted(rows, key=key)


def screenings(answers: Iterable[tuple[str, bool, int]]) -> dict[str, Screening]:
    """Each community's screenings from (community, answered by its deadline, findings)."""
    out: dict[str, Screening] = {}
    for community, in_time, findings in answers:
        was = out.get(community, Screening())
        out[community] = Screening(was.asked + 1, was.done + in_time, was.findings + findings)
    return out


def section(rows: Sequence[Row], communities: Sequence[str], screened: dict[str, Screening], targets: Targets,
            kind: str) -> list[dict[str, Any]]:
    """A node's officers' section, for the renderer: its rows (those of ``communities``,
    in order) cut into messages of ROWS_PER_MESSAGE; empty if it has none."""
    mine = ordered([r for r in rows if r.community_id in set(communities)], communities)
    if not mine:
        return []
    chunks = [mine[i:i + ROWS_PER_MESSAGE] for i in range(0, len(mine), ROWS_PER_MESSAGE)]
    shown = {c: asdict(s) for c, s in screened.items() if c in set(communities)}
    return [{"kind": kind, "targets": asdict(targets), "part": i, "parts": len(chunks),
             "rows": [r.data() for r in chunk], "screenings": shown, "with_community": len(communities) > 1}
            for i, chunk in enumerate(chunks)]
