"""The escalation policy as plain functions, with time passed in."""

from __future__ import annotations

from escalation.policy import (
    Action,
    Clock,
    Reason,
    Rules,
    State,
    TierRule,
    after,
    arrive,
    claimed,
    next_check,
    noted,
    resume,
    step,
    suspend,
)

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
    assert at_community == arrive(2, arrived)
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
    assert taken is not None and taken.to_tier == 2 and taken.at == T0 + 1 * H
    moved = after(Clock(State.OPEN, 3, T0), taken, late)
    assert step(moved, RULES, late) is None  # one step, not a cascade to the station


def test_nothing_is_due_after_resolve() -> None:
    for tier in (3, 2, 1):
        clock = Clock(State.RESOLVED, tier, T0, last_ping_at=T0)
        assert next_check(clock, RULES) is None
        assert step(clock, RULES, T0 + 1000 * H) is None


def test_rules_survive_the_snapshot_round_trip() -> None:
    assert Rules.from_json(RULES.to_json()) == RULES


# --- reminders, idle claims, suspension ----------------------------------------------
REMINDING = Rules(tiers=RULES.tiers, repeat=RULES.repeat, remind_before=0.5 * H, idle_remind=4 * H, idle_unclaim=2 * H)


def test_a_reminder_comes_before_each_deadline_once() -> None:
    clock = arrive(3, T0)
    first = step(clock, REMINDING, T0 + 0.5 * H)
    assert first is not None and first.action == Action.REMIND and first.deadline == T0 + 1 * H
    reminded = after(clock, first, T0 + 0.5 * H)
    assert step(reminded, REMINDING, T0 + 0.9 * H) is None  # once per deadline
    # Claimed in time: the next reminder is for the resolve deadline, half an hour before it.
    working = claimed(reminded, T0 + 0.9 * H)
    assert next_check(working, REMINDING) == min(T0 + 23.5 * H, T0 + 0.9 * H + 4 * H)


def test_no_reminder_when_the_window_is_shorter_than_the_lead() -> None:
    short = Rules(tiers={3: TierRule(0.25 * H, 24 * H), 2: RULES.tiers[2], 1: RULES.tiers[1]}, repeat=H,
                  remind_before=0.5 * H)
    taken = step(arrive(3, T0), short, T0 + 0.25 * H)
    assert taken is not None and taken.action == Action.ESCALATE


def test_an_overdue_deadline_beats_the_reminder_it_missed() -> None:
    taken = step(arrive(3, T0), REMINDING, T0 + 5 * H)  # the bot was down through both
    assert taken is not None and taken.action == Action.ESCALATE


def test_an_idle_claim_reminds_the_claimer_then_is_released() -> None:
    working = claimed(arrive(3, T0), T0 + 0.2 * H)
    quiet = working
    nudge = step(quiet, REMINDING, T0 + 4.2 * H)
    assert nudge is not None and nudge.action == Action.IDLE_REMIND
    nudged = after(quiet, nudge, T0 + 4.2 * H)
    assert step(nudged, REMINDING, T0 + 6.1 * H) is None
    release = step(nudged, REMINDING, T0 + 6.2 * H)
    assert release is not None and release.action == Action.UNCLAIM
    released = after(nudged, release, T0 + 6.2 * H)
    assert released.state == State.OPEN and released.claim_since == T0 + 6.2 * H
    # The claim window restarts; the resolve window still counts from arrival.
    assert next_check(released, Rules(RULES.tiers, RULES.repeat)) == T0 + 7.2 * H


def test_a_note_counts_as_news() -> None:
    working = claimed(arrive(3, T0), T0)
    busy = noted(working, T0 + 3 * H)
    taken = step(busy, REMINDING, T0 + 4.5 * H)
    assert taken is None or taken.action != Action.IDLE_REMIND
    assert step(busy, REMINDING, T0 + 7 * H).action == Action.IDLE_REMIND  # type: ignore[union-attr]


def test_suspension_stops_the_clocks_and_resumes_where_they_stood() -> None:
    clock = arrive(3, T0)
    paused = suspend(clock, T0 + 0.5 * H, until=T0 + 48 * H)
    assert next_check(paused, RULES) == T0 + 48 * H  # nothing falls due while suspended
    assert step(paused, RULES, T0 + 47 * H) is None
    wake = step(paused, RULES, T0 + 48 * H)
    assert wake is not None and wake.action == Action.RESUME
    resumed = after(paused, wake, T0 + 48 * H)
    assert resumed.suspended_until is None
    # Half an hour of the claim window was used before the pause; half an hour remains.
    assert next_check(resumed, RULES) == T0 + 48.5 * H
    assert resume(resumed, T0 + 50 * H) == resumed  # resuming twice changes nothing


def test_rules_include_reminders_and_idle_in_the_snapshot() -> None:
    assert Rules.from_json(REMINDING.to_json()) == REMINDING


# --- quiet hours, the duty roster, category rules (pure, with time passed in) -----------
def test_quiet_hours_across_midnight() -> None:
    from datetime import datetime

    from bot.config import parse_span
    from escalation.quiet import quiet_until
    from tests.conftest import TZ

    span = parse_span("22:00-07:00")
    at = lambda h, m=0, d=24: datetime(2026, 11, d, h, m, tzinfo=TZ).timestamp()  # noqa: E731
    assert quiet_until(at(21, 59), span, TZ) is None
    assert quiet_until(at(22, 0), span, TZ) == at(7, 0, 25)
    assert quiet_until(at(3, 30, 25), span, TZ) == at(7, 0, 25)
    assert quiet_until(at(7, 0, 25), span, TZ) is None
    assert quiet_until(at(12, 0), parse_span("12:00-13:30"), TZ) == at(13, 30)
    assert quiet_until(at(12, 0), None, TZ) is None


def test_the_duty_roster_with_an_override() -> None:
    from datetime import datetime

    from bot.config import DutyShift
    from bot.store import DutyOverride
    from escalation.duty import next_watch, on_duty, watch_end
    from tests.conftest import TZ

    week = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    shifts = [DutyShift(user=1, days=week, start="08:00", end="20:00"),
              DutyShift(user=2, days=week, start="20:00", end="08:00")]
    noon = datetime(2026, 11, 24, 12, 0, tzinfo=TZ).timestamp()
    night = datetime(2026, 11, 25, 2, 0, tzinfo=TZ).timestamp()
    assert on_duty(shifts, [], noon, TZ) == [1]
    assert on_duty(shifts, [], night, TZ) == [2]  # the night shift runs past midnight
    upcoming = next_watch(shifts, noon, TZ)
    assert upcoming is not None and upcoming.user_id == 2
    assert upcoming.start == datetime(2026, 11, 24, 20, 0, tzinfo=TZ).timestamp()
    end = watch_end(shifts, noon, TZ)
    assert end == upcoming.start
    assert on_duty(shifts, [DutyOverride(3, noon, end)], noon + 60, TZ) == [3]
    assert on_duty(shifts, [DutyOverride(3, noon, end)], end + 60, TZ) == [2]
    assert on_duty([], [], noon, TZ) == []


def test_a_category_brings_its_own_deadlines_and_keeps_the_rest() -> None:
    from tests.conftest import parse_town

    config = parse_town(categories=[
        {"key": "fraud", "zh": "诈骗", "en": "Fraud", "urgent": True,
         "deadlines": {"unit": {"claim": "10m", "resolve": "2h"}}},
        {"key": "other", "zh": "其他", "en": "Other"},
    ], reminders={"before": "15m"})
    fraud, other = config.rules_for("fraud"), config.rules_for("other")
    assert fraud.tiers[3] == TierRule(600, 7200) and fraud.tiers[2] == other.tiers[2]
    assert other.tiers[3] == TierRule(3600, 86400) and fraud.remind_before == 900
    assert config.rules_for("gone-from-config") == other  # an unknown key is "other"
