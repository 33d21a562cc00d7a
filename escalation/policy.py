"""The escalation policy: what is due, who is next, and when to look again.

Plain functions over plain data; time is always an argument (unix seconds). Nothing here
knows about Telegram or SQL.

A matter sits at one tier at a time (3 unit, 2 community, 1 station). At each tier it must
be claimed within that tier's claim window and resolved within its resolve window, both
counted from when it arrived at the tier. Missing either sends it one tier up, where the
clocks start again and it waits to be taken over. At the station (tier 1) there is no one
above: the station is pinged when its deadline passes, then again every ``repeat`` while
the matter stays unresolved, never more often.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum

from bot.config import Deadlines

TOP_TIER = 1


class State(StrEnum):
    OPEN = "open"  # waiting to be claimed at its current tier
    CLAIMED = "claimed"  # someone is working on it at its current tier
    RESOLVED = "resolved"


class Reason(StrEnum):
    UNCLAIMED = "unclaimed"
    UNRESOLVED = "unresolved"


class Action(StrEnum):
    ESCALATE = "escalate"  # move one tier up and notify that tier
    REPING = "reping"  # already at the top: remind the station again


@dataclass(frozen=True)
class TierRule:
    claim: float
    resolve: float


@dataclass(frozen=True)
class Rules:
    """The deadlines a matter runs under, copied onto it when reported (a snapshot), so
    editing config.yaml changes new matters, not those in flight."""

    tiers: dict[int, TierRule]
    repeat: float

    @classmethod
    def from_config(cls, deadlines: Deadlines) -> Rules:
        return cls(
            tiers={
                3: TierRule(deadlines.unit.claim, deadlines.unit.resolve),
                2: TierRule(deadlines.community.claim, deadlines.community.resolve),
                1: TierRule(deadlines.station.claim, deadlines.station.resolve),
            },
            repeat=deadlines.station.repeat,
        )

    def to_json(self) -> str:
        tiers = {str(t): [r.claim, r.resolve] for t, r in self.tiers.items()}
        return json.dumps({"tiers": tiers, "repeat": self.repeat}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Rules:
        data = json.loads(text)
        tiers = {int(t): TierRule(c, r) for t, (c, r) in data["tiers"].items()}
        return cls(tiers=tiers, repeat=data["repeat"])


@dataclass(frozen=True)
class Clock:
    """The parts of a matter that its deadlines depend on."""

    state: State
    tier: int
    tier_since: float  # when it arrived at its current tier
    last_ping_at: float | None = None  # last overdue ping at the top tier


@dataclass(frozen=True)
class Step:
    action: Action
    reason: Reason
    to_tier: int
    overdue_since: float


def claim_due(clock: Clock, rules: Rules) -> float | None:
    if clock.state != State.OPEN:
        return None
    return clock.tier_since + rules.tiers[clock.tier].claim


def resolve_due(clock: Clock, rules: Rules) -> float | None:
    if clock.state == State.RESOLVED:
        return None
    return clock.tier_since + rules.tiers[clock.tier].resolve


def _overdue(clock: Clock, rules: Rules) -> tuple[float, Reason] | None:
    """The earliest deadline of the current tier, and why it matters."""
    candidates = []
    claim = claim_due(clock, rules)
    if claim is not None:
        candidates.append((claim, Reason.UNCLAIMED))
    resolve = resolve_due(clock, rules)
    if resolve is not None:
        candidates.append((resolve, Reason.UNRESOLVED))
    return min(candidates) if candidates else None


def next_check(clock: Clock, rules: Rules) -> float | None:
    """When the sweep must next look at this matter; None once nothing can fall due."""
    overdue = _overdue(clock, rules)
    if overdue is None:
        return None
    due, _ = overdue
    if clock.tier == TOP_TIER and clock.last_ping_at is not None:
        return max(due, clock.last_ping_at + rules.repeat)
    return due


def step(clock: Clock, rules: Rules, now: float) -> Step | None:
    """What to do with the matter at ``now``, or None if nothing is due yet."""
    due = next_check(clock, rules)
    if due is None or now < due:
        return None
    overdue_since, reason = _overdue(clock, rules)  # type: ignore[misc]  # not None: due is set
    if clock.tier > TOP_TIER:
        return Step(Action.ESCALATE, reason, clock.tier - 1, overdue_since)
    return Step(Action.REPING, reason, TOP_TIER, overdue_since)


def after(clock: Clock, taken: Step, now: float) -> Clock:
    """The matter's clock once ``taken`` has been carried out at ``now``."""
    if taken.action == Action.ESCALATE:
        return Clock(State.OPEN, taken.to_tier, tier_since=now, last_ping_at=None)
    return Clock(clock.state, clock.tier, clock.tier_since, last_ping_at=now)
