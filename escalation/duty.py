"""The station's duty roster (值班值守): who is on watch now, and who is next.

A weekly rotation from config, and overrides set with /duty (someone takes the watch
now, until the end of the current shift). Plain functions; time is an argument.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bot.config import DutyShift, parse_clock
from bot.store import DutyOverride

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Watch:
    user_id: int
    start: float
    end: float


def watches(shifts: list[DutyShift], around: float, tz: ZoneInfo, days: int = 8) -> list[Watch]:
    """The rotation's concrete shifts from a day before ``around`` to ``days`` after."""
    local = datetime.fromtimestamp(around, tz).replace(hour=0, minute=0, second=0, microsecond=0)
    out = []
    for offset in range(-1, days):
        day = local + timedelta(days=offset)
        name = DAYS[day.weekday()]
        for shift in shifts:
            if name not in shift.days:
                continue
            start = (day + timedelta(minutes=parse_clock(shift.start)))
            end_minutes = parse_clock(shift.end)
            end_day = day if end_minutes > parse_clock(shift.start) else day + timedelta(days=1)
            end = (end_day + timedelta(minutes=end_minutes))
            out.append(Watch(shift.user, start.timestamp(), end.timestamp()))
    return sorted(out, key=lambda w: (w.start, w.user_id))


def on_duty(shifts: list[DutyShift], overrides: list[DutyOverride], now: float, tz: ZoneInfo) -> list[int]:
    """Who is on watch at ``now``: an override if one is in force, else the rotation."""
    taken = [o.user_id for o in overrides if o.start <= now < o.until]
    if taken:
        return [taken[-1]]
    return list(dict.fromkeys(w.user_id for w in watches(shifts, now, tz) if w.start <= now < w.end))


def next_watch(shifts: list[DutyShift], now: float, tz: ZoneInfo) -> Watch | None:
    """The next shift to start after ``now`` with someone not already on watch."""
    current = set(on_duty(shifts, [], now, tz))
    return next((w for w in watches(shifts, now, tz) if w.start > now and w.user_id not in current), None)


def watch_end(shifts: list[DutyShift], now: float, tz: ZoneInfo) -> float:
    """When the current shift ends (an override lasts until then); 12 h without a roster."""
    ends = [w.end for w in watches(shifts, now, tz) if w.start <= now < w.end]
    return min(ends) if ends else now + 12 * 3600
