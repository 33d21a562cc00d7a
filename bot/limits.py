"""Abuse limits (issue 10): reports per person per hour, urgent alerts per person per day,
private reports per day from someone Telegram does not show as a member of the unit's group.

Limits apply to residents only: anyone who leads a node of the tree (heads, officers,
secretaries, station staff) has none. A person is counted by a key: their user id, or for
an anonymous group admin or a channel's post the message's ``sender_chat`` id (every
anonymous admin of every group shares one user id, 1087968824).

The database is the count (so a restart or a second process does not reset or multiply
it). A group report must not cost a trip to SQLite, though, so the hourly limit is decided
where the report is written: the group commit asks, in the write transaction that inserts
a batch (SQLite's one writer: no other process can write in between), how many reports
each person in the batch has made in the last hour, one query per batch, and writes those
over the limit as held reports with the polite answer instead of matters with cards
(``over_limit``). ``ReportCounter`` keeps the last hour's reports per key in memory,
loaded at start: a report it already counts over the limit is held at once. A private
report is decided in its own transaction, by the same rule.
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


def over_limit(prior: dict[int, list[float]], batch: list[tuple[int, float]], limit: int,
               window: float) -> list[float | None]:
    """For each report of a batch, in order, given as (key, when): None if it fits ``limit``
    within ``window``, else when the person may report again. ``prior``: when the reports
    already counted against each key were made. Every report of the batch counts for those
    after it, held or not (spamming on does not help)."""
    times = {key: sorted(at) for key, at in prior.items()}
    answers: list[float | None] = []
    for key, at in batch:
        kept = [t for t in times.get(key, []) if t >= at - window]
        answers.append(retry_at(kept, limit, window))
        times[key] = sorted([*kept, at])
    return answers


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

    def replace(self, key: int, times: list[float]) -> None:
        """What the database counted: it knows other processes' reports too."""
        self._times[key] = deque(sorted(times))

    def add(self, key: int, at: float) -> None:
        self._times.setdefault(key, deque()).append(at)
        if at - self._pruned > HOUR and len(self._times) > 1000:  # forget people quiet for an hour
            self._pruned = at
            self._times = {k: v for k, v in self._times.items() if v and v[-1] >= at - HOUR}
