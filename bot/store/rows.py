"""Rows as small dataclasses: what the queries give back and take."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any, NamedTuple

from escalation.policy import CLOSED, Clock, Rules, State, next_check


@dataclass
class Matter:
    id: int
    unit_id: str
    chat_id: int
    report_message_id: int | None
    reporter_id: int
    reporter_name: str
    text: str
    state: State
    tier: int
    top_tier: int
    tier_since: float
    last_ping_at: float | None
    next_due: float | None
    rules: str
    created_at: float
    first_claimed_at: float | None
    claimed_by: int | None
    claimed_by_name: str | None
    claimed_at: float | None
    escalated_at: float | None
    resolved_at: float | None
    resolved_by: int | None
    resolved_by_name: str | None
    resolution: str | None
    card_chat_id: int | None
    card_message_id: int | None
    category: str = "other"  # a key of the category list (issue: categories and urgency)
    urgent: bool = False
    private: bool = False  # reported privately: the unit group sees only that it exists
    rating: str | None = None  # the reporter's satisfaction: satisfied / basic / unsatisfied
    rated_at: float | None = None
    category_set: bool = False  # someone picked the category (else it shows as "other")
    claim_since: float | None = None
    reminded_upto: float | None = None
    last_activity_at: float | None = None
    idle_reminded_at: float | None = None
    suspended_at: float | None = None
    suspended_until: float | None = None
    closed_at: float | None = None  # resolved, unresolvable, referred or cancelled
    close_reason: str | None = None
    limit_key: int | None = None  # whom it counts against (bot/limits.py); None: nobody
    membership: str | None = None  # a private reporter in the unit's group: member / nonmember / unverified

    @property
    def clock(self) -> Clock:
        return Clock(
            State(self.state), self.tier, self.tier_since, self.claim_since, self.last_ping_at,
            self.reminded_upto, self.last_activity_at, self.idle_reminded_at, self.suspended_at,
            self.suspended_until,
        )

    @property
    def closed(self) -> bool:
        return self.state in CLOSED

    @property
    def policy_rules(self) -> Rules:
        return Rules.from_json(self.rules)


@dataclass
class Event:
    matter_id: int
    at: float
    actor_id: int | None
    actor_name: str | None
    kind: str
    tier: int | None
    detail: str | None


@dataclass
class OutboxItem:
    id: int
    key: str
    chat_id: int
    kind: str  # a bot.outbox.Kind's value (read it with outbox.kind_of)
    matter_id: int | None
    text: str | None  # a message's text, a medium's caption
    markup: str | None
    reply_to: int | None
    attempts: int
    media: str | None = None  # a photo's or voice note's file id, a location's "lat,lon"
    data: str | None = None  # JSON: what bot/text/render.py composes the words from when it is sent


class SummaryFacts(NamedTuple):
    """One matter's history as the summaries, bulletins and ledgers see it (a tuple: a big
    town's week is a quarter of a million of them). Built from the timeline by
    ``escalation.summary.facts``; a matter that never left its unit and was never reopened
    is read from its columns, which then say all its timeline says."""

    unit_id: str
    created_at: float
    first_claimed_at: float | None  # the first claim event (a claim or a takeover), never a resolve
    resolved_at: float | None
    escalated_at: float | None  # the first missed deadline (超期), not a deliberate move up
    id: int = 0
    category: str = "other"
    top_tier: int = 3
    reached_community_at: float | None = None  # first arrived at tier 2, in any way
    reached_station_at: float | None = None  # first arrived at tier 1, in any way
    unclaimed_up_at: float | None = None  # a missed deadline sent it to the community unclaimed
    closed_at: float | None = None  # resolved or otherwise closed (resolved_at: resolved only)
    # From the timeline when the matter moved or was reopened (None: derived from the above):
    closes: tuple[tuple[float, str | None], ...] | None = None  # (at, state closed in; None: reopened)
    resolves: tuple[tuple[float, int], ...] | None = None  # (at, highest tier reached by then)
    moves: tuple[tuple[float, int], ...] | None = None  # (at, tier arrived at), whenever its tier changed

    private: bool = False  # reported privately: its category is not shown to its unit group

class TimelineRow(NamedTuple):
    """A timeline event as the figures replay it."""

    matter_id: int
    at: float
    kind: str
    tier: int | None
    by_deadline: bool  # written by the sweep (a missed deadline), not by a person
    detail: str | None = None


@dataclass
class Prompt:
    """What the bot is waiting for from a person in a chat."""

    kind: str  # "report": what happened? · "private": a private report to unit_id ·
    # "choose_unit": which unit (draft holds the text) · "unsatisfied": why (matter_id)
    unit_id: str | None
    matter_id: int | None
    draft: str | None


@dataclass
class Visit:
    """A visit log entry (走访日志, issue 16): who walked where, did what, found what.
    ``step`` is what an unfinished entry waits for (bot/visits.py); a finished one has
    ``finished_at``. ``units``: the unit ids visited."""

    id: int
    user_id: int
    user_name: str
    chat_id: int  # the private chat it is written in
    community_id: str | None
    step: str
    units: list[str]
    households: int | None
    deed: str | None
    findings: str | None
    latitude: float | None
    longitude: float | None
    place: str | None  # a venue's title and address, as sent
    photos: int
    started_at: float
    updated_at: float
    finished_at: float | None


VISIT_COLUMNS = [f.name for f in fields(Visit)]


def visit_from_row(row: Sequence[Any]) -> Visit:
    values = dict(zip(VISIT_COLUMNS, row, strict=True))
    values["units"] = json.loads(values["units"] or "[]")
    return Visit(**values)


@dataclass
class HeldPing:
    id: int
    chat_id: int
    matter_id: int
    kind: str
    tier: int
    reason: str


@dataclass
class HeldReport:
    """A report over a limit, kept until a head turns it into a matter (/held)."""

    id: int
    unit_id: str
    chat_id: int  # where it was sent: the unit's group, or the reporter's private chat
    message_id: int | None
    reporter_id: int
    reporter_name: str
    limit_key: int
    text: str
    photo: str | None
    private: bool
    membership: str | None
    reason: str  # "hourly" or "nonmember"
    created_at: float
    matter_id: int | None = None


HELD_COLUMNS = [f.name for f in fields(HeldReport)]


@dataclass
class DutyOverride:
    """Someone took the station's watch with /duty, until ``until``."""

    user_id: int
    start: float
    until: float


@dataclass
class Broadcast:
    """A notice a station or community sent down to its unit groups (/broadcast)."""

    id: int
    node_id: str
    chat_id: int  # where it was sent from: the delivery report goes there
    message_id: int | None  # the /broadcast message, which the report answers
    sender_id: int
    sender_name: str
    text: str
    photo: str | None  # a Telegram file id
    language: str  # the sender was answered in it; so is the report
    targets: int
    created_at: float
    reported_at: float | None


@dataclass
class BroadcastOutcome:
    """Where one target of a broadcast stands: pending, sent or failed."""

    unit_id: str
    chat_id: int
    state: str


MATTER_COLUMNS = [f.name for f in fields(Matter)]
MATTER_SELECT = "SELECT " + ", ".join(MATTER_COLUMNS) + " FROM matters"


@dataclass
class Purged:
    """What one clearing of personal data changed (counts only: they are logged)."""

    matters: int = 0
    events: int = 0
    attachments: int = 0
    messages: int = 0
    prompts: int = 0
    users: int = 0
    held: int = 0  # reports held back by the abuse limits

    def add(self, other: Purged) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@dataclass(frozen=True)
class QueuedReport:
    """A report to be logged; from a unit group, it is queued and committed with those that
    came with it (Store.queue_report)."""

    update_id: int | None  # marked done in the same transaction
    matter: dict[str, Any]  # the new matters row
    reply_to: int | None  # the report's message: its card answers it
    photo_file_id: str | None = None
    prompt_chat: int | None = None  # it answers "what happened?" asked there: consumed with it
    # The hourly limit the group commit holds it to (bot/limits.py; None: none); if it is held,
    # the reporter is told when they may report again (outbox.HeldNotice).
    per_hour: int | None = None


@dataclass(frozen=True)
class Sent:
    """An outbox item Telegram accepted, waiting to be recorded as sent."""

    item_id: int
    at: float
    message_id: int | None
    card: tuple[int, int, int] | None = None  # a new card: (matter, chat, message), kept on the matter
    view: bool = False  # a message that follows its matters (bot/outbox.py's LIVE): kept as a view


@dataclass(frozen=True)
class View:
    """A message about matters outside their cards (bot/views.py): where it is, what it was
    composed from (its notice's kind and data) and the matters it names."""

    key: str  # the outbox key of the notice that posted it
    chat_id: int
    message_id: int
    kind: str
    data: str | None
    matters: tuple[int, ...]
    dead: str | None = None


def matter_from_row(row: Sequence[Any]) -> Matter:
    matter = Matter(*row)
    matter.state = State(matter.state)
    matter.urgent = bool(matter.urgent)
    matter.private = bool(matter.private)
    matter.category_set = bool(matter.category_set)
    return matter


def held_from_row(row: Sequence[Any]) -> HeldReport:
    held = HeldReport(*row)
    held.private = bool(held.private)
    return held


def clock_columns(clock: Clock, rules: Rules) -> dict[str, Any]:
    """The matter columns a clock maps to, with the sweep's next look."""
    return {
        "state": clock.state.value,
        "tier": clock.tier,
        "tier_since": clock.tier_since,
        "claim_since": clock.claim_since,
        "last_ping_at": clock.last_ping_at,
        "reminded_upto": clock.reminded_upto,
        "last_activity_at": clock.last_activity_at,
        "idle_reminded_at": clock.idle_reminded_at,
        "suspended_at": clock.suspended_at,
        "suspended_until": clock.suspended_until,
        "next_due": next_check(clock, rules),
    }


@dataclass
class VillageNoticeRow:
    """A community's weekly safety notice (治安通报): its draft or final text, and what was done with it."""

    id: int
    community_id: str
    week: str
    chat_id: int
    text: str
    state: str  # draft | published | skipped
    drafted_at: float
    draft_message_id: int | None
    decided_at: float | None
    decided_by: int | None
    decided_by_name: str | None
    broadcast_id: int | None


VILLAGE_NOTICE_COLUMNS = [f.name for f in fields(VillageNoticeRow)]


@dataclass
class ScreeningRow:
    """A community's weekly screening for disputes (矛盾纠纷排查): asked, then a zero-report or findings."""

    id: int
    community_id: str
    week: str
    chat_id: int
    asked_at: float
    due_at: float
    state: str  # asked | zero | found
    answered_at: float | None
    answered_by: int | None
    answered_by_name: str | None
    reminded_at: float | None
    ask_message_id: int | None


SCREENING_COLUMNS = [f.name for f in fields(ScreeningRow)]


@dataclass
class FindingRow:
    """One dispute a screening found, in a unit: to become a matter, or noted as handled."""

    id: int
    screening_id: int
    unit_id: str
    text: str
    by_id: int
    by_name: str
    at: float
    outcome: str | None  # None: not decided · matter · handled
    matter_id: int | None
    decided_at: float | None


FINDING_COLUMNS = [f.name for f in fields(FindingRow)]


# --- issue 16: the monthly sense-of-safety poll (群众安全感) ---------------------------------
@dataclass
class SafetyPollDue:
    """A unit's poll whose time is up and that is not closed yet."""

    id: int
    unit_id: str
    month: str
    chat_id: int
    message_id: int | None  # None: not sent (yet)
    outbox_state: str | None  # its sendPoll's: pending, sent, failed (None: no longer in the outbox)


@dataclass
class SafetyCount:
    """A unit's poll of a month: voters per option, in the options' order, and answers."""

    unit_id: str
    month: str
    counts: list[int]
    answers: int
