"""Abuse limits (issue 10): reports per person per hour, urgent alerts per person per day,
private reports per day from someone Telegram does not show as a member of the unit's group.

Limits apply to residents only: anyone who leads a node of the tree (heads, officers,
secretaries, station staff) has none. A person is counted by a key: their user id, or for
an anonymous group admin or a channel's post the message's ``sender_chat`` id (every
anonymous admin of every group shares one user id, 1087968824).

The database is the count (so a restart or a second process does not reset or multiply
it). A group report must not cost a trip to SQLite, though: ``ReportCounter`` keeps the
last hour's reports per key in memory, loaded from the database at start, and only the
report that would use up a person's hourly quota, and those after it, ask the database
(committed rows plus the group-commit queue, one trip).
"""

from __future__ import annotations

from collections import deque

HOUR = 3600.0
DAY = 86400.0
ANONYMOUS_ADMIN = 1087968824  # the user Telegram shows for a group's anonymous admins ("Group")

MEMBER, NONMEMBER, UNVERIFIED = "member", "nonmember", "unverified"
HELD_HOURLY, HELD_NONMEMBER = "hourly", "nonmember"


def retry_at(times: list[float], limit: int, window: float) -> float | None:
    """None if one more report fits ``limit`` within ``window``, given the times (oldest
    first, all inside the window) of those counted; else when the next one will fit."""
    if len(times) < limit:
        return None
    return times[len(times) - limit] + window


class ReportCounter:
    """The last hour's reports per key, in memory (see the module's docstring)."""

    def __init__(self, per_hour: int) -> None:
        self.per_hour = per_hour
        self._times: dict[int, deque[float]] = {}
        self._pruned = 0.0

    def load(self, rows: list[tuple[int, float]]) -> None:
        self._times = {}
        for key, at in sorted(rows, key=lambda r: r[1]):
            self._times.setdefault(key, deque()).append(at)

    def times(self, key: int, now: float) -> list[float]:
        kept = self._times.get(key)
        if not kept:
            return []
        while kept and kept[0] < now - HOUR:
            kept.popleft()
        return list(kept)

    def near(self, key: int, now: float) -> bool:
        """Whether one more report would use up this person's quota: then the database
        decides (it also knows what another process logged)."""
        return len(self.times(key, now)) + 1 >= self.per_hour

    def replace(self, key: int, times: list[float]) -> None:
        """What the database counted: it knows other processes' reports too."""
        self._times[key] = deque(sorted(times))

    def add(self, key: int, at: float) -> None:
        self._times.setdefault(key, deque()).append(at)
        if at - self._pruned > HOUR and len(self._times) > 1000:  # forget people quiet for an hour
            self._pruned = at
            self._times = {k: v for k, v in self._times.items() if v and v[-1] >= at - HOUR}
