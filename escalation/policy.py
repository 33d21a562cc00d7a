"""The escalation policy: what is due, who is next, and when to look again.

Plain functions over plain data; time is always an argument (unix seconds). Nothing here
knows about Telegram or SQL.

A matter sits at one tier at a time (3 unit, 2 community, 1 station). At each tier it must
be claimed within that tier's claim window and resolved within its resolve window, both
counted from when it arrived at the tier (the claim window restarts if an idle claim is
released). Missing either sends it one tier up, where the clocks start again and it waits
to be taken over. At the station (tier 1) there is no one above: the station is pinged
when its deadline passes, then again every ``repeat`` while the matter stays open, never
more often. Besides:

- a reminder goes to the responsible tier ``remind_before`` each deadline, once per deadline;
- a claimed matter with no news for ``idle_remind`` reminds its claimer; with still no news
  ``idle_unclaim`` later it is released: unclaimed again, with a fresh claim window;
- a suspended matter's clocks stand still until it resumes; they then run on from where
  they stopped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from enum import StrEnum

TOP_TIER = 1


class State(StrEnum):
    OPEN = "open"  # waiting to be claimed at its current tier
    CLAIMED = "claimed"  # someone is working on it at its current tier
    RESOLVED = "resolved"  # 已解决
    UNRESOLVABLE = "unresolvable"  # 无法解决: closed, not resolved, with a reason
    REFERRED = "referred"  # 转交: sent to a court, labour bureau, petitions office…
    CANCELLED = "cancelled"  # withdrawn by the reporter


CLOSED = frozenset({State.RESOLVED, State.UNRESOLVABLE, State.REFERRED, State.CANCELLED})


class Reason(StrEnum):
    UNCLAIMED = "unclaimed"
    UNRESOLVED = "unresolved"
    IDLE = "idle"
    SUSPENSION_OVER = "suspension_over"


class Action(StrEnum):
    ESCALATE = "escalate"  # move one tier up and notify that tier
    REPING = "reping"  # already at the top: remind the station again
    REMIND = "remind"  # a deadline is near: remind the responsible tier
    IDLE_REMIND = "idle_remind"  # claimed, no news: ask the claimer
    UNCLAIM = "unclaim"  # still no news: release the claim
    RESUME = "resume"  # the suspension is over


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
    remind_before: float | None = None
    idle_remind: float | None = None
    idle_unclaim: float | None = None

    def to_json(self) -> str:
        data = {
            "tiers": {str(t): [r.claim, r.resolve] for t, r in self.tiers.items()},
            "repeat": self.repeat,
            "remind_before": self.remind_before,
            "idle_remind": self.idle_remind,
            "idle_unclaim": self.idle_unclaim,
        }
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Rules:
        data = json.loads(text)
        tiers = {int(t): TierRule(c, r) for t, (c, r) in data["tiers"].items()}
        return cls(
            tiers=tiers,
            repeat=data["repeat"],
            remind_before=data.get("remind_before"),
            idle_remind=data.get("idle_remind"),
            idle_unclaim=data.get("idle_unclaim"),
        )


@dataclass(frozen=True)
class Clock:
    """The parts of a matter that its deadlines depend on."""

    state: State
    tier: int
    tier_since: float  # arrived at its current tier: the resolve window counts from here
    claim_since: float | None = None  # the claim window counts from here (default: tier_since)
    last_ping_at: float | None = None  # last overdue ping at the top tier
    reminded_upto: float | None = None  # the latest deadline already reminded of
    last_activity_at: float | None = None  # last claim or progress note
    idle_reminded_at: float | None = None
    suspended_at: float | None = None
    suspended_until: float | None = None

    @property
    def claim_start(self) -> float:
        return self.claim_since if self.claim_since is not None else self.tier_since


@dataclass(frozen=True)
class Step:
    action: Action
    reason: Reason
    to_tier: int
    at: float  # when it fell due (for an overdue step: when the deadline passed)
    deadline: float | None = None  # for a reminder: the deadline it is about


def claim_due(clock: Clock, rules: Rules) -> float | None:
    if clock.state != State.OPEN:
        return None
    return clock.claim_start + rules.tiers[clock.tier].claim


def resolve_due(clock: Clock, rules: Rules) -> float | None:
    if clock.state in CLOSED:
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


def _candidates(clock: Clock, rules: Rules) -> list[Step]:
    """Every step this matter could take next, each with the moment it falls due."""
    if clock.state in CLOSED:
        return []
    if clock.suspended_until is not None:
        return [Step(Action.RESUME, Reason.SUSPENSION_OVER, clock.tier, clock.suspended_until)]
    steps: list[Step] = []
    overdue = _overdue(clock, rules)
    if overdue is not None:
        due, reason = overdue
        if clock.tier > TOP_TIER:
            steps.append(Step(Action.ESCALATE, reason, clock.tier - 1, due))
        else:
            at = due if clock.last_ping_at is None else max(due, clock.last_ping_at + rules.repeat)
            steps.append(Step(Action.REPING, reason, TOP_TIER, at, deadline=due))
    if rules.remind_before:
        deadlines = [
            (deadline, reason, start)
            for deadline, reason, start in (
                (claim_due(clock, rules), Reason.UNCLAIMED, clock.claim_start),
                (resolve_due(clock, rules), Reason.UNRESOLVED, clock.tier_since),
            )
            if deadline is not None and (clock.reminded_upto is None or deadline > clock.reminded_upto)
        ]
        for deadline, reason, start in sorted(deadlines):
            at = deadline - rules.remind_before
            if at > start:  # a window shorter than the lead gets no reminder
                steps.append(Step(Action.REMIND, reason, clock.tier, at, deadline=deadline))
                break  # the earliest deadline first; the next is reminded of after it
    if clock.state == State.CLAIMED and rules.idle_remind:
        quiet_since = clock.last_activity_at or clock.tier_since
        if clock.idle_reminded_at is None or clock.idle_reminded_at < quiet_since:
            steps.append(Step(Action.IDLE_REMIND, Reason.IDLE, clock.tier, quiet_since + rules.idle_remind))
        elif rules.idle_unclaim:
            steps.append(Step(Action.UNCLAIM, Reason.IDLE, clock.tier, clock.idle_reminded_at + rules.idle_unclaim))
    return steps


def next_check(clock: Clock, rules: Rules) -> float | None:
    """When the sweep must next look at this matter; None once nothing can fall due."""
    steps = _candidates(clock, rules)
    return min(s.at for s in steps) if steps else None


_PRIORITY = {
    Action.RESUME: 0,
    Action.ESCALATE: 1,
    Action.REPING: 1,
    Action.UNCLAIM: 2,
    Action.IDLE_REMIND: 3,
    Action.REMIND: 4,
}


def step(clock: Clock, rules: Rules, now: float) -> Step | None:
    """What to do with the matter at ``now``, or None if nothing is due yet.

    When several steps are due at once (the bot was down), the one that matters most goes
    first: an overdue deadline beats the reminder that should have come before it."""
    due = [s for s in _candidates(clock, rules) if s.at <= now]
    if not due:
        return None
    return min(due, key=lambda s: (_PRIORITY[s.action], s.at))


def after(clock: Clock, taken: Step, now: float) -> Clock:
    """The matter's clock once ``taken`` has been carried out at ``now``."""
    match taken.action:
        case Action.ESCALATE:
            return arrive(taken.to_tier, now)
        case Action.REPING:
            return replace(clock, last_ping_at=now)
        case Action.REMIND:
            return replace(clock, reminded_upto=taken.deadline)
        case Action.IDLE_REMIND:
            return replace(clock, idle_reminded_at=now)
        case Action.UNCLAIM:
            return replace(clock, state=State.OPEN, claim_since=now, idle_reminded_at=None)
        case Action.RESUME:
            return resume(clock, now)
    raise AssertionError(taken.action)


# --- what people do, as far as the clocks are concerned -----------------------------
def arrive(tier: int, now: float) -> Clock:
    """A matter reaches ``tier`` (reported, escalated, returned, taken over, reopened)."""
    return Clock(State.OPEN, tier, tier_since=now, claim_since=now)


def claimed(clock: Clock, now: float) -> Clock:
    return replace(clock, state=State.CLAIMED, last_activity_at=now, idle_reminded_at=None)


def noted(clock: Clock, now: float) -> Clock:
    return replace(clock, last_activity_at=now)


def suspend(clock: Clock, now: float, until: float) -> Clock:
    return replace(clock, suspended_at=now, suspended_until=until)


def resume(clock: Clock, now: float) -> Clock:
    """Clocks run on from where they stopped: every start moves by the time suspended."""
    if clock.suspended_at is None:
        return replace(clock, suspended_until=None)
    paused = max(0.0, now - clock.suspended_at)

    def moved(value: float | None) -> float | None:
        return None if value is None else value + paused

    return replace(
        clock,
        tier_since=clock.tier_since + paused,
        claim_since=moved(clock.claim_since),
        last_ping_at=moved(clock.last_ping_at),
        last_activity_at=moved(clock.last_activity_at),
        idle_reminded_at=moved(clock.idle_reminded_at),
        reminded_upto=moved(clock.reminded_upto),
        suspended_at=None,
        suspended_until=None,
    )


def overdue_since(clock: Clock, rules: Rules, now: float) -> float:
    """When the earliest passed deadline of the current tier passed (``now`` if none has)."""
    passed = [d for d in (claim_due(clock, rules), resolve_due(clock, rules)) if d is not None and d <= now]
    return min(passed) if passed else now


def next_deadline(clock: Clock, rules: Rules, now: float) -> float:
    """The current tier's next deadline (the latest passed one if all have passed)."""
    dues = [d for d in (claim_due(clock, rules), resolve_due(clock, rules)) if d]
    upcoming = [d for d in dues if d >= now]
    return min(upcoming or dues or [now])
