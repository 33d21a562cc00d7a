"""Quiet hours: pings for non-urgent matters that fall inside are held to the end.

Deadlines keep running in wall-clock time; only the messages wait.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo


def quiet_until(now: float, span: tuple[int, int] | None, tz: ZoneInfo) -> float | None:
    """If ``now`` is inside the quiet span (minutes after local midnight, start to end,
    possibly across midnight), the moment it ends; else None."""
    if span is None:
        return None
    start, end = span
    local = datetime.fromtimestamp(now, tz)
    minute = local.hour * 60 + local.minute
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if start < end:
        inside, end_day = start <= minute < end, midnight
    else:  # across midnight: 22:00-07:00
        inside = minute >= start or minute < end
        end_day = midnight + timedelta(days=1) if minute >= start else midnight
    if not inside:
        return None
    # Wall-clock arithmetic in the zone, then back to an instant (DST-safe enough for CN).
    ends = (end_day + timedelta(minutes=end)).replace(tzinfo=None)
    return ends.replace(tzinfo=tz).timestamp()
