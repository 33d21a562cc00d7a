"""The escalation policy as plain functions, with time passed in."""

from __future__ import annotations

from escalation.policy import Action, Clock, Reason, Rules, State, TierRule, after, next_check, step

H = 3600.0
RULES = Rules(
    tiers={3: TierRule(claim=1 * H, resolve=24 * H), 2: TierRule(2 * H, 48 * H), 1: TierRule(3 * H, 72 * H)},
    repeat=6 * H,
)
T0 = 1_000_000.0


def test_nothing_due_before_the_unit_claim_deadline() -> None:
    clock = Clock(State.OPEN, 3, T0)
    assert next_check(clock, RULES) == T0 + 1 * H
    assert step(clock, RULES, T0 + 1 * H - 1) is None


def test_unclaimed_at_the_unit_goes_to_the_community() -> None:
    taken = step(Clock(State.OPEN, 3, T0), RULES, T0 + 1 * H)
    assert taken is not None
    assert (taken.action, taken.reason, taken.to_tier) == (Action.ESCALATE, Reason.UNCLAIMED, 2)


def test_claimed_but_unresolved_goes_up_at_the_resolve_deadline() -> None:
    clock = Clock(State.CLAIMED, 3, T0)
    assert next_check(clock, RULES) == T0 + 24 * H
    assert step(clock, RULES, T0 + 23 * H) is None
    taken = step(clock, RULES, T0 + 24 * H)
    assert taken is not None and taken.reason == Reason.UNRESOLVED and taken.to_tier == 2


def test_each_tier_uses_its_own_windows_from_arrival() -> None:
    arrived = T0 + 5 * H
    at_community = after(Clock(State.OPEN, 3, T0), step(Clock(State.OPEN, 3, T0), RULES, arrived), arrived)
    assert at_community == Clock(State.OPEN, 2, arrived, None)
    assert next_check(at_community, RULES) == arrived + 2 * H  # the community's claim window
    taken = step(at_community, RULES, arrived + 2 * H)
    assert taken is not None and taken.to_tier == 1
    at_station = after(at_community, taken, arrived + 2 * H)
    assert next_check(at_station, RULES) == arrived + 2 * H + 3 * H  # the station's claim window


def test_the_top_repings_at_the_repeat_interval_never_more_often() -> None:
    station = Clock(State.OPEN, 1, T0)
    due = T0 + 3 * H
    first = step(station, RULES, due)
    assert first is not None and first.action == Action.REPING and first.to_tier == 1
    pinged = after(station, first, due)
    assert pinged.last_ping_at == due
    assert step(pinged, RULES, due + 6 * H - 1) is None  # not before the repeat interval
    assert next_check(pinged, RULES) == due + 6 * H
    second = step(pinged, RULES, due + 6 * H)
    assert second is not None and second.action == Action.REPING
    # Claimed at the station after a ping: the next ping waits for the resolve deadline.
    claimed = Clock(State.CLAIMED, 1, T0, last_ping_at=due)
    assert next_check(claimed, RULES) == T0 + 72 * H


def test_a_late_sweep_acts_once_and_schedules_from_now() -> None:
    # The bot was down for two days: the unit's deadline passed long ago.
    late = T0 + 48 * H
    taken = step(Clock(State.OPEN, 3, T0), RULES, late)
    assert taken is not None and taken.to_tier == 2 and taken.overdue_since == T0 + 1 * H
    moved = after(Clock(State.OPEN, 3, T0), taken, late)
    assert step(moved, RULES, late) is None  # one step, not a cascade to the station


def test_nothing_is_due_after_resolve() -> None:
    for tier in (3, 2, 1):
        clock = Clock(State.RESOLVED, tier, T0, last_ping_at=T0)
        assert next_check(clock, RULES) is None
        assert step(clock, RULES, T0 + 1000 * H) is None


def test_rules_survive_the_snapshot_round_trip() -> None:
    assert Rules.from_json(RULES.to_json()) == RULES
