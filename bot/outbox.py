"""Typed notices: the one way a message is queued for Telegram.

The domain decides *who hears what* by building notices; ``put`` writes them to the outbox
table in the caller's transaction (so a change and the messages it causes commit together),
and the delivery worker (bot/telegram/delivery.py) sends each by its ``Kind``. Every notice builds
its own idempotency key: a retry of the same change builds the same key, and the outbox
ignores a key it already holds, so nothing is ever queued twice.

The keys are the ones the bot has always written (an outbox of an older version is read as
before). A notice carries no words of its own: it carries what they are made of (its
``data``: catalog keys and their values, the matters it names), and bot/text/render.py
composes its text and buttons when it is sent, in the chat's language and from the state
as it is then. Notices written by an older version kept their text; they are sent as they
are. A card is rendered then too, and a chart drawn then.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from bot.store import OutboxItem, Tx

# Rows of (label, callback data or render.URL_PREFIX + a link); or {"force_reply": true, …}
# for a reply that asks the person to answer it.
Keyboard = tuple[tuple[tuple[str, str], ...], ...] | list[list[tuple[str, str]]] | dict[str, bool]
# A row of the outbox table: key, chat, kind, matter, text, markup (JSON), reply to, media,
# data (JSON), not before, created at.
Row = tuple[str, int, str, int | None, str | None, str | None, int | None, str | None, str | None, float, float]

BROADCAST_PREFIX = "bc:"  # a broadcast's copies: bc:<broadcast>:<chat>


class Kind(StrEnum):
    """What a notice is; stored in the outbox's ``kind`` column, so values never change."""

    MESSAGE = "message"  # plain text written by an older version
    CARD = "card"  # a matter's card in its chat: rendered when sent, edited in place later
    CARD_COPY = "card_copy"  # a private matter's card in a head's private chat
    RECEIPT = "receipt"  # a private reporter's receipt
    REPORTER = "reporter"  # the reporter told of a claim, a resolution, …
    URGENT = "urgent"  # an urgent matter: the reporter told that 110 was alerted
    UNSATISFIED = "unsatisfied"  # the heads told that the reporter is not satisfied
    WHY = "why"  # … and the reporter's reason
    OUTCOME = "outcome"  # how a private matter ended, to those who may read it
    INSTRUCTION = "instruction"  # a community's instruction, to a unit's heads by DM
    RATING = "rating"  # the reporter asked to rate a resolution
    PING = "ping"  # a tier's chat told of matters (escalated, overdue, held, over the limit)
    MENTIONS = "mentions"  # a ping's follow-up naming the leaders beyond Telegram's 50
    PING_COPY = "ping_copy"  # a leader's private copy of a ping
    PHOTO = "photo"  # an attachment forwarded with a ping (file id in ``media``)
    VOICE = "voice"
    LOCATION = "location"  # "lat,lon" in ``media``
    ANSWER = "answer"  # the answer to a command or a button, under the message that asked
    HELD = "held"  # a report held by the limits: the reporter told when to try again
    BROADCAST = "broadcast"  # a broadcast's copy in a unit group (text, or a photo and caption)
    BROADCAST_QUEUED = "broadcast_queued"  # the sender told how many groups it goes to
    BROADCAST_REPORT = "broadcast_report"  # the sender told how it went, once all were tried
    UNREACHABLE = "unreachable"  # the station told that a group is out of reach
    BULLETIN = "bulletin"  # one message of a weekly or monthly bulletin
    CHART = "chart"  # a bulletin's chart: a spec drawn into a PNG when it is sent
    OPS = "ops"  # an operator's notice (another process polls with this token)
    REPLY = "reply"  # a handler's answer or refusal, in the update's own transaction
    EDIT_TEXT = "edit_text"  # one of the bot's messages rewritten (a rating's thanks)
    EDIT_KEYBOARD = "edit_keyboard"  # one of the bot's messages given other buttons (a card's categories)
    DOCUMENT = "document"  # a file made for the asker (the /export ledger)
    # --- the weekly safety notice to the village (issue 16) ---
    NOTICE_DRAFT = "notice_draft"  # a community's draft, for its officer: 发布 / 修改 / 不发
    NOTICE_PROMPT = "notice_prompt"  # "reply with the new text" (ForceReply); its message id finds the draft
    NOTICE_LATE = "notice_late"  # the station's bulletin: communities whose notice was not published in time
    # --- the weekly screening for disputes (issue 16) ---
    SCREENING_ASK = "screening_ask"  # a community asked for the week's screening: 零报告 / 上报发现
    SCREENING_REMIND = "screening_remind"  # … reminded once before the deadline
    SCREENING_UNITS = "screening_units"  # which unit was the finding in?
    SCREENING_PROMPT = "screening_prompt"  # "reply with what you found" (ForceReply); its message id finds it
    FINDING = "finding"  # one finding, to become a matter or be noted as handled
    # --- the officers' section of the bulletins (issue 16) ---
    OFFICERS = "officers"  # a node's officers: visits against the targets, screening; a month's assessment
    # --- issue 16: the monthly sense-of-safety poll (群众安全感) ---
    SAFETY_POLL = "safety_poll"  # an anonymous poll in a unit group (its words composed when it is sent)
    STOP_POLL = "stop_poll"  # that poll closed (its message id in reply_to)
    VIEW = "view"  # a message about a matter outside its card (a ping, a DM copy) edited to follow it
    REACTION = "reaction"  # an emoji on a message: a command done, a report taken up
    # --- visit logs (issue 16) ---
    VISIT = "visit"  # a finished visit log entry (走访日志) posted to its community's group
    VISIT_NOTE = "visit_note"  # the one writing a visit log told something outside an update (dropped after 24 h)


# Messages about matters that follow them once sent (issue 14): a ping in a group, its DM
# copies and a private matter's card in a head's DM. Telegram's message id is kept as a view
# (bot/views.py) and edited whenever one of its matters changes.
LIVE = frozenset({Kind.PING, Kind.PING_COPY, Kind.CARD_COPY})


MEDIA = frozenset({Kind.PHOTO, Kind.VOICE, Kind.LOCATION})


def kind_of(item: OutboxItem) -> Kind:
    """An outbox row's kind; rows written before the kinds were typed say "message" or
    "photo", and a broadcast's copy among them is known by its key."""
    try:
        kind = Kind(item.kind)
    except ValueError:
        kind = Kind.MESSAGE
    if kind in (Kind.MESSAGE, Kind.PHOTO) and item.key.startswith(BROADCAST_PREFIX):
        return Kind.BROADCAST
    return kind


@dataclass(frozen=True)
class Say:
    """Words to be composed when they are sent, in the chat's language: a catalog key and
    its values. A value that holds a person's text is escaped by whoever puts it here."""

    key: str
    values: dict[str, Any] = field(default_factory=dict)

    def data(self) -> list[Any]:
        return [self.key, {name: {"say": v.data()} if isinstance(v, Say) else v for name, v in self.values.items()}]


def say(key: str, **values: Any) -> Say:
    """Words: a catalog key and its values (see bot/text/render.py's ``words`` for what a
    value may be; a plain string is escaped there)."""
    return Say(key, values)


# Values of words that are not plain text (bot/text/render.py's ``words`` composes them).
def mention(user_id: int, name: str | None) -> dict[str, Any]:
    return {"mention": [user_id, name]}


def people(persons: list[tuple[int, str | None]]) -> dict[str, Any]:
    """Mentions of several people (Telegram notifies the first forty)."""
    return {"people": [list(p) for p in persons]}


def local_time(at: float) -> dict[str, Any]:
    return {"time": at}


def local_date(at: float) -> dict[str, Any]:
    return {"date": at}


def duration(seconds: float) -> dict[str, Any]:
    return {"duration": seconds}


def category(key: str) -> dict[str, Any]:
    return {"category": key}


def said(*parts: Say, buttons: list[list[tuple[Say | str, str]]] | None = None) -> dict[str, Any]:
    """The data of a notice that is only words: its lines, and buttons of (label, callback);
    a label that is a plain string is shown as it is (a unit's name)."""
    data: dict[str, Any] = {"say": [part.data() for part in parts]}
    if buttons:
        data["buttons"] = [[[label if isinstance(label, str) else label.data(), callback] for label, callback in row]
                           for row in buttons]
    return data


class Notice:
    """What every notice has: a chat, a kind and a key. The optional parts (text, buttons,
    the message it answers, a matter, a medium, the renderer's ``data``) are read by name
    when it is written."""

    kind: ClassVar[Kind]
    chat: int

    @property
    def key(self) -> str:
        raise NotImplementedError

    def row(self, now: float) -> Row:
        markup = getattr(self, "markup", None)
        data = getattr(self, "data", None)
        return (
            self.key, self.chat, str(self.kind), getattr(self, "matter_id", None), getattr(self, "text", None),
            json.dumps(markup, ensure_ascii=False) if markup else None,
            getattr(self, "reply_to", None), getattr(self, "media", None),
            json.dumps(data, ensure_ascii=False, separators=(",", ":")) if data is not None else None, now, now,
        )


async def put(tx: Tx, *notices: Notice, now: float) -> None:
    """Queue ``notices`` in ``tx``, the transaction of the change that causes them; a key
    already queued is ignored."""
    if notices:
        await tx.outbox_insert([n.row(now) for n in notices])


def _digest(pings: tuple[tuple[int, int], ...]) -> str:
    return ",".join(f"{matter}e{event}" for matter, event in pings[:20])


# --- a matter's card and news ----------------------------------------------------------
@dataclass(frozen=True)
class Card(Notice):
    """Post or refresh a matter's card; ``tag`` names the change (``e<event>``, the sweep's
    ``s<stamp>``, ``new``), so that each change refreshes it once."""

    kind: ClassVar[Kind] = Kind.CARD
    matter_id: int
    chat: int
    tag: str
    reply_to: int | None = None

    @property
    def key(self) -> str:
        return f"card:{self.matter_id}:{self.tag}"


@dataclass(frozen=True)
class CardCopy(Notice):
    """A private matter's card in a head's private chat, composed from the matter as it is
    when it is sent."""

    kind: ClassVar[Kind] = Kind.CARD_COPY
    matter_id: int
    chat: int  # the head's private chat

    @property
    def data(self) -> dict[str, Any]:
        return {"matter": self.matter_id}

    @property
    def key(self) -> str:
        return f"dmcard:{self.matter_id}:{self.chat}"


@dataclass(frozen=True)
class Receipt(Notice):
    kind: ClassVar[Kind] = Kind.RECEIPT
    matter_id: int
    chat: int
    data: dict[str, Any]  # said(…): its words
    reply_to: int | None = None

    @property
    def key(self) -> str:
        return f"receipt:{self.matter_id}"


@dataclass(frozen=True)
class ReporterNotice(Notice):
    kind: ClassVar[Kind] = Kind.REPORTER
    matter_id: int
    event: int
    chat: int
    data: dict[str, Any]  # said(…): its words
    reply_to: int | None = None

    @property
    def key(self) -> str:
        return f"reporter:{self.matter_id}:e{self.event}"


@dataclass(frozen=True)
class UrgentAlert(Notice):
    kind: ClassVar[Kind] = Kind.URGENT
    matter_id: int
    chat: int
    data: dict[str, Any]  # said(…): its words
    reply_to: int | None = None

    @property
    def key(self) -> str:
        return f"urgent110:{self.matter_id}"


@dataclass(frozen=True)
class Unsatisfied(Notice):
    """The heads (or the tier above that reopened it) told the reporter is not satisfied,
    composed from the matter as it is when sent. ``per_chat``: a private matter's news goes
    to several chats, one key each; ``tier``: the tier it was reopened at."""

    kind: ClassVar[Kind] = Kind.UNSATISFIED
    matter_id: int
    event: int
    chat: int
    tier: int
    per_chat: bool = False

    @property
    def data(self) -> dict[str, Any]:
        return {"matter": self.matter_id, "tier": self.tier, "private": self.per_chat}

    @property
    def key(self) -> str:
        base = f"unsatisfied:{self.matter_id}:e{self.event}"
        return f"{base}:{self.chat}" if self.per_chat else base


@dataclass(frozen=True)
class UnsatisfiedWhy(Notice):
    kind: ClassVar[Kind] = Kind.WHY
    matter_id: int
    event: int
    chat: int
    data: dict[str, Any]  # said(…): its words

    @property
    def key(self) -> str:
        return f"why:{self.matter_id}:e{self.event}:{self.chat}"


@dataclass(frozen=True)
class Outcome(Notice):
    kind: ClassVar[Kind] = Kind.OUTCOME
    matter_id: int
    event: int
    chat: int
    data: dict[str, Any]  # said(…): its words

    @property
    def key(self) -> str:
        return f"outcome:{self.matter_id}:e{self.event}:{self.chat}"


@dataclass(frozen=True)
class Instruction(Notice):
    """A ping about a private matter, to one of its heads by DM (the group reads none of
    it), composed from the matter as it is when sent. ``ping``: its kind, tier, reason and note."""

    kind: ClassVar[Kind] = Kind.INSTRUCTION
    matter_id: int
    event: int
    chat: int  # the head's private chat
    ping: tuple[str, int, str, str | None]

    @property
    def data(self) -> dict[str, Any]:
        kind, tier, reason, note = self.ping
        return {"matter": self.matter_id, "ping": {"kind": kind, "tier": tier, "reason": reason, "note": note,
                                                   "event": self.event}}

    @property
    def key(self) -> str:
        return f"instruct:{self.matter_id}:e{self.event}:{self.chat}"


@dataclass(frozen=True)
class RatingRequest(Notice):
    """The reporter asked to rate a resolution, with the rating buttons, composed from the
    matter as it is when sent; ``data`` holds the words said before the question."""

    kind: ClassVar[Kind] = Kind.RATING
    matter_id: int
    event: int
    chat: int
    data: dict[str, Any]
    reply_to: int | None = None

    @property
    def key(self) -> str:
        return f"rate:{self.matter_id}:e{self.event}"


# --- pings ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Ping(Notice):
    """One message to a chat about several matters. ``batch`` is "ping", or a release's
    ``held<time>`` / ``overlimit<time>`` (event ids restart there); ``pings`` the (matter,
    event) pairs, the first twenty of which name it. ``data``: what the renderer composes
    it from (escalation/notify.py's ``ping_data``: the matters, why each is told, who)."""

    kind: ClassVar[Kind] = Kind.PING
    batch: str
    chat: int
    pings: tuple[tuple[int, int], ...]
    data: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def matter_id(self) -> int:
        return self.pings[0][0]

    @property
    def key(self) -> str:
        return f"{self.batch}:{self.chat}:{_digest(self.pings)}"


@dataclass(frozen=True)
class Mentions(Notice):
    """A ping's follow-up naming the leaders past Telegram's 50 mentions a message."""

    kind: ClassVar[Kind] = Kind.MENTIONS
    ping: Ping
    part: int
    leaders: tuple[tuple[int, str | None], ...]  # (user id, name)

    @property
    def data(self) -> dict[str, Any]:
        return {"leaders": [list(person) for person in self.leaders]}

    @property
    def chat(self) -> int:  # type: ignore[override]
        return self.ping.chat

    @property
    def matter_id(self) -> int:
        return self.ping.matter_id

    @property
    def key(self) -> str:
        return f"{self.ping.key}:m{self.part}"


@dataclass(frozen=True)
class Attachment(Notice):
    """A matter's photo, voice note or place, forwarded after a ping about it."""

    ping: Ping
    matter_id: int
    index: int
    medium: str  # photo, voice, location
    media: str

    @property
    def data(self) -> dict[str, Any]:  # its caption: the matter's number
        return said(say("view.attachment", id=self.matter_id))

    @property
    def kind(self) -> Kind:  # type: ignore[override]
        return Kind(self.medium)

    @property
    def chat(self) -> int:  # type: ignore[override]
        return self.ping.chat

    @property
    def key(self) -> str:
        return f"{self.ping.key}:{self.matter_id}:a{self.index}"


@dataclass(frozen=True)
class PingCopy(Notice):
    """A leader's private copy of a ping: the same data, read as a leader's DM reads it."""

    kind: ClassVar[Kind] = Kind.PING_COPY
    ping: Ping
    chat: int  # the leader's private chat

    @property
    def data(self) -> dict[str, Any]:
        return {**self.ping.data, "audience": "leader_dm"}

    @property
    def key(self) -> str:
        return f"dm:{self.chat}:{self.ping.key}"


@dataclass(frozen=True)
class ViewRefresh(Notice):
    """Edit a view (``view``: the key of the notice that posted it) to show its matters as
    they are now; ``tag`` names the change (as a card's). It waits ``DELAY`` seconds, and
    delivery sends one refresh of a view for all those then waiting, so that many changes
    within a second make one edit."""

    kind: ClassVar[Kind] = Kind.VIEW
    DELAY: ClassVar[float] = 1.0
    view: str
    chat: int
    tag: str

    @property
    def data(self) -> dict[str, Any]:
        return {"view": self.view}

    @property
    def key(self) -> str:
        return f"view:{self.view}:{self.tag}"

    def row(self, now: float) -> Row:
        return (*super().row(now)[:9], now + self.DELAY, now)


# --- answers ----------------------------------------------------------------------------
@dataclass(frozen=True)
class CommandAnswer(Notice):
    """A command confirmed, under its message; ``data``: said(…), with ``"lang"`` the
    language of the person who gave it (see ``answered_in``)."""

    kind: ClassVar[Kind] = Kind.ANSWER
    update_id: int
    chat: int
    data: dict[str, Any]
    reply_to: int | None = None

    @property
    def key(self) -> str:
        return f"ack:{self.update_id}"


@dataclass(frozen=True)
class HeldNotice(Notice):
    """A report held by the limits: the reporter told, under it, when to try again."""

    kind: ClassVar[Kind] = Kind.HELD
    held_id: int
    chat: int
    reason: str  # bot/limits.py's HELD_HOURLY, HELD_NONMEMBER
    reporter_id: int
    reporter_name: str
    limit: int
    again: float
    reply_to: int | None = None

    @property
    def data(self) -> dict[str, Any]:
        return said(say(f"limits.held_{self.reason}", reporter=mention(self.reporter_id, self.reporter_name),
                        limit=self.limit, at=local_time(self.again)))

    @property
    def key(self) -> str:
        return f"held:{self.held_id}"


@dataclass(frozen=True)
class Reaction(Notice):
    """An emoji put on a message (setMessageReaction): 👍 on a head's command that the card's
    edit already answers, 👀 on a report someone claimed. ``fallback``: a CommandAnswer's
    data, queued under ``update_id``'s key (``ack:…``) in the transaction that records the
    failure if the chat refuses reactions; None: nothing instead. ``tag`` names it."""

    kind: ClassVar[Kind] = Kind.REACTION
    tag: str
    chat: int
    message_id: int
    emoji: str
    fallback: dict[str, Any] | None = None
    update_id: int | None = None

    @property
    def reply_to(self) -> int:
        return self.message_id

    @property
    def data(self) -> dict[str, Any]:
        return {"emoji": self.emoji, "fallback": self.fallback, "update": self.update_id}

    @property
    def key(self) -> str:
        return f"reaction:{self.tag}"


# --- broadcasts -------------------------------------------------------------------------
@dataclass(frozen=True)
class BroadcastCopy(Notice):
    """A broadcast's copy in a unit group: the sender's own ``words`` (raw, as typed),
    under a heading naming ``node_id`` that bot/text/render.py composes when it is sent."""

    kind: ClassVar[Kind] = Kind.BROADCAST
    broadcast_id: int
    chat: int
    node_id: str
    words: str  # the caption, with a photo
    media: str | None = None  # a photo's file id

    @property
    def data(self) -> dict[str, Any]:
        return {"node": self.node_id, "words": self.words}

    @property
    def key(self) -> str:
        return f"{BROADCAST_PREFIX}{self.broadcast_id}:{self.chat}"


@dataclass(frozen=True)
class BroadcastQueued(Notice):
    """The sender told how many groups it goes to; ``language``: the sender's, for a chat
    that chose none (as every answer to a person)."""

    kind: ClassVar[Kind] = Kind.BROADCAST_QUEUED
    broadcast_id: int
    chat: int
    count: int
    language: str | None = None
    reply_to: int | None = None

    @property
    def data(self) -> dict[str, Any]:
        return said(say("broadcast.queued", id=self.broadcast_id, count=self.count)) | {"language": self.language}

    @property
    def key(self) -> str:
        return f"bca:{self.broadcast_id}"


@dataclass(frozen=True)
class BroadcastReport(Notice):
    """How a broadcast went: ``failed`` names the units whose groups it did not reach."""

    kind: ClassVar[Kind] = Kind.BROADCAST_REPORT
    broadcast_id: int
    chat: int
    sender_id: int
    sender_name: str | None
    delivered: int
    failed: tuple[str, ...] = ()
    language: str | None = None
    reply_to: int | None = None

    @property
    def data(self) -> dict[str, Any]:
        return {"report": {"id": self.broadcast_id, "sender": mention(self.sender_id, self.sender_name),
                           "delivered": self.delivered, "failed": list(self.failed)}, "language": self.language}

    @property
    def key(self) -> str:
        return f"bcr:{self.broadcast_id}"


# --- operations and bulletins -----------------------------------------------------------
@dataclass(frozen=True)
class UnreachableNotice(Notice):
    kind: ClassVar[Kind] = Kind.UNREACHABLE
    lost_chat: int
    at: float
    chat: int  # the station's
    node_name: str

    @property
    def data(self) -> dict[str, Any]:
        return said(say("unreachable", node=self.node_name, chat_id=self.lost_chat))

    @property
    def key(self) -> str:
        return f"unreachable:{self.lost_chat}:{int(self.at)}"


@dataclass(frozen=True)
class OpsNotice(Notice):
    kind: ClassVar[Kind] = Kind.OPS
    topic: str  # "conflict"
    pid: int
    at: float
    chat: int

    @property
    def data(self) -> dict[str, Any]:
        return said(say(f"ops.{self.topic}"))

    @property
    def key(self) -> str:
        return f"ops.{self.topic}:{self.pid}:{int(self.at)}:{self.chat}"  # one to each station (issue 17)


@dataclass(frozen=True)
class BulletinPart(Notice):
    """Message ``part`` of ``parts`` of a node's bulletin; ``batch`` names the run
    ("weekly:<period>"). ``bulletin``: what it is made of (escalation/reports/bulletin.view),
    composed when it is sent."""

    kind: ClassVar[Kind] = Kind.BULLETIN
    batch: str
    node_id: str
    part: int
    chat: int
    bulletin: dict[str, Any]
    parts: int = 1

    @property
    def data(self) -> dict[str, Any]:
        return {"bulletin": self.bulletin, "part": self.part, "parts": self.parts}

    @property
    def key(self) -> str:
        return f"{self.batch}:{self.node_id}:{self.part}"


@dataclass(frozen=True)
class Chart(Notice):
    """A chart (escalation/reports/bulletin.chart_spec) drawn when it is sent; ``name`` is
    its key: see ``of_bulletin`` and ``of_summary``. A bulletin's chart, and /summary's, carries
    what the bulletin is made of, and its caption and chart are composed when it is sent; one
    queued by an older version, its ``caption`` and ``spec`` as they were made then."""

    kind: ClassVar[Kind] = Kind.CHART
    name: str
    chat: int
    caption: str | None = None
    spec: dict | None = None
    bulletin: dict[str, Any] | None = None

    @classmethod
    def of_bulletin(cls, batch: str, node_id: str, chat: int, bulletin: dict[str, Any]) -> Chart:
        return cls(f"{batch}:{node_id}:chart", chat, bulletin=bulletin)

    @classmethod
    def of_summary(cls, chat: int, message_id: int, bulletin: dict[str, Any]) -> Chart:
        return cls(f"summary:{chat}:{message_id}", chat, bulletin=bulletin)

    @property
    def key(self) -> str:
        return self.name

    @property
    def data(self) -> dict[str, Any] | None:
        return {"chart": self.bulletin} if self.bulletin is not None else None

    @property
    def text(self) -> str | None:  # what the delivery worker reads back (bot/telegram/delivery.py's _draw_chart)
        if self.bulletin is not None:
            return None  # composed when sent (bot/text/render.py), into the same JSON
        return json.dumps({"caption": self.caption, "chart": self.spec}, ensure_ascii=False)


# --- a handler's answers (queued in the update's transaction, sent at once) ------------------
@dataclass(frozen=True)
class Reply(Notice):
    """A handler's answer or refusal to update ``update_id``: its ``data`` (words, or an
    answer composed from the matters it names; see bot/text/render.py). An update may be
    answered with several messages: each is named by its data, so a replayed update queues
    none of them twice. ``markup``: a request to answer it ({"force_reply": …}), if any."""

    kind: ClassVar[Kind] = Kind.REPLY
    update_id: int
    chat: int
    data: dict[str, Any]
    reply_to: int | None = None
    markup: Keyboard | None = None

    @property
    def key(self) -> str:
        return f"reply:{self.update_id}:{digest(self.data)}"


def digest(data: Any) -> str:
    """A short name for a notice's data: the same data, the same name."""
    canonical = json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.blake2s(canonical.encode(), digest_size=6).hexdigest()


@dataclass(frozen=True)
class ShownAttachment(Notice):
    """A matter's photo, voice note or place, sent with /show's answer; ``data``: its caption."""

    update_id: int
    index: int
    chat: int
    medium: str  # photo, voice, location
    media: str
    data: dict[str, Any]
    reply_to: int | None = None

    @property
    def kind(self) -> Kind:  # type: ignore[override]
        return Kind(self.medium)

    @property
    def key(self) -> str:
        return f"reply:{self.update_id}:a{self.index}"


@dataclass(frozen=True)
class EditText(Notice):
    """One of the bot's messages rewritten (``data``: its new words); the outbox keeps its
    id where a reply's is."""

    kind: ClassVar[Kind] = Kind.EDIT_TEXT
    update_id: int
    chat: int
    message_id: int
    data: dict[str, Any]

    @property
    def reply_to(self) -> int:
        return self.message_id

    @property
    def key(self) -> str:
        return f"edit:{self.update_id}:{self.message_id}"


@dataclass(frozen=True)
class EditKeyboard(Notice):
    """One of the bot's messages given other buttons (``data``: what they are composed from)."""

    kind: ClassVar[Kind] = Kind.EDIT_KEYBOARD
    update_id: int
    chat: int
    message_id: int
    data: dict[str, Any]

    @property
    def reply_to(self) -> int:
        return self.message_id

    @property
    def key(self) -> str:
        return f"keyboard:{self.update_id}:{self.message_id}"


@dataclass(frozen=True)
class Document(Notice):
    """A file sent in answer to update ``update_id``, with its caption (``data``); the outbox
    keeps it (name and base64 bytes, as JSON) only until it is sent (Tx.outbox_sent drops it)."""

    kind: ClassVar[Kind] = Kind.DOCUMENT
    update_id: int
    chat: int
    filename: str
    content: bytes
    data: dict[str, Any]
    reply_to: int | None = None

    @property
    def media(self) -> str:
        return json.dumps({"name": self.filename, "data": base64.b64encode(self.content).decode()})

    @property
    def key(self) -> str:
        return f"document:{self.update_id}"


def document_file(media: str) -> tuple[str, bytes]:
    """A Document's file name and bytes, as the outbox keeps them."""
    stored = json.loads(media)
    return stored["name"], base64.b64decode(stored["data"])


# --- the weekly safety notice to the village (issue 16) ------------------------------------
@dataclass(frozen=True)
class NoticeDraft(Notice):
    """A community's weekly safety notice as its group sees it, posted once."""

    kind: ClassVar[Kind] = Kind.NOTICE_DRAFT
    notice_id: int
    chat: int
    data: dict[str, Any]

    @property
    def key(self) -> str:
        return f"vn:{self.notice_id}"


@dataclass(frozen=True)
class NoticeDraftEdit(Notice):
    """The draft's message rewritten: a new text (``tag`` the update that brought it), or
    its decision (``tag`` the state)."""

    kind: ClassVar[Kind] = Kind.EDIT_TEXT
    notice_id: int
    chat: int
    message_id: int
    tag: str
    data: dict[str, Any]

    @property
    def reply_to(self) -> int:
        return self.message_id

    @property
    def key(self) -> str:
        return f"vnedit:{self.notice_id}:{self.tag}"


@dataclass(frozen=True)
class NoticePrompt(Notice):
    """Asks the officer for the notice's new text, as a reply to this message."""

    kind: ClassVar[Kind] = Kind.NOTICE_PROMPT
    notice_id: int
    update_id: int
    chat: int
    data: dict[str, Any]
    reply_to: int | None = None
    markup: Keyboard | None = None

    @property
    def key(self) -> str:
        return f"vnask:{self.notice_id}:{self.update_id}"


@dataclass(frozen=True)
class NoticesLate(Notice):
    """The officers' lines of the station's weekly bulletin: the communities whose safety
    notice was not published within a day, and those whose screening had no answer by its
    deadline; ``batch`` is the bulletin's."""

    kind: ClassVar[Kind] = Kind.NOTICE_LATE
    batch: str
    node_id: str
    chat: int
    names: tuple[str, ...]
    unscreened: tuple[str, ...] = ()  # communities whose weekly screening had no answer by its deadline

    @property
    def data(self) -> dict[str, Any]:
        return {"names": list(self.names), "unscreened": list(self.unscreened)}

    @property
    def key(self) -> str:
        return f"{self.batch}:{self.node_id}:notices"


@dataclass(frozen=True)
class OfficersPart(Notice):
    """Message ``part`` of a node's officers' section (escalation/officers.section), after
    its bulletin in the same batch."""

    kind: ClassVar[Kind] = Kind.OFFICERS
    batch: str
    node_id: str
    chat: int
    data: dict[str, Any]

    @property
    def key(self) -> str:
        return f"{self.batch}:{self.node_id}:officers:{self.data['part']}"


# --- the weekly screening for disputes (issue 16) -------------------------------------------
@dataclass(frozen=True)
class ScreeningAsk(Notice):
    kind: ClassVar[Kind] = Kind.SCREENING_ASK
    screening_id: int
    chat: int
    data: dict[str, Any]

    @property
    def key(self) -> str:
        return f"sc:{self.screening_id}"


@dataclass(frozen=True)
class ScreeningAskEdit(Notice):
    """The question's message rewritten as the screening stands (``tag``: what changed)."""

    kind: ClassVar[Kind] = Kind.EDIT_TEXT
    screening_id: int
    chat: int
    message_id: int
    tag: str
    data: dict[str, Any]

    @property
    def reply_to(self) -> int:
        return self.message_id

    @property
    def key(self) -> str:
        return f"scedit:{self.screening_id}:{self.tag}"


@dataclass(frozen=True)
class ScreeningReminder(Notice):
    kind: ClassVar[Kind] = Kind.SCREENING_REMIND
    screening_id: int
    chat: int
    data: dict[str, Any]
    reply_to: int | None = None

    @property
    def key(self) -> str:
        return f"scremind:{self.screening_id}"


@dataclass(frozen=True)
class ScreeningUnits(Notice):
    kind: ClassVar[Kind] = Kind.SCREENING_UNITS
    screening_id: int
    update_id: int
    chat: int
    data: dict[str, Any]
    reply_to: int | None = None

    @property
    def key(self) -> str:
        return f"scunits:{self.screening_id}:{self.update_id}"


@dataclass(frozen=True)
class ScreeningPrompt(Notice):
    kind: ClassVar[Kind] = Kind.SCREENING_PROMPT
    screening_id: int
    unit_id: str
    update_id: int
    chat: int
    data: dict[str, Any]
    reply_to: int | None = None
    markup: Keyboard | None = None

    @property
    def key(self) -> str:
        return f"scask:{self.screening_id}:{self.unit_id}:{self.update_id}"


@dataclass(frozen=True)
class FindingCard(Notice):
    kind: ClassVar[Kind] = Kind.FINDING
    finding_id: int
    chat: int
    data: dict[str, Any]

    @property
    def key(self) -> str:
        return f"finding:{self.finding_id}"


@dataclass(frozen=True)
class FindingEdit(Notice):
    kind: ClassVar[Kind] = Kind.EDIT_TEXT
    finding_id: int
    chat: int
    message_id: int
    data: dict[str, Any]

    @property
    def reply_to(self) -> int:
        return self.message_id

    @property
    def key(self) -> str:
        return f"findingedit:{self.finding_id}"


# --- issue 16: the monthly sense-of-safety poll (群众安全感) ---------------------------------
SAFETY_PREFIX = "safety:"  # every unit group's poll goes out at once: bulk, like a broadcast


@dataclass(frozen=True)
class SafetyPoll(Notice):
    """The month's anonymous poll in a unit group (sendPoll); its message and poll ids are
    recorded on its safety_polls row when Telegram takes it. Its words are config.yaml's
    ``safety_poll.question`` and ``options``, or (None) the catalog's in the chat's language,
    composed when it is sent (bot/text/render.py's ``safety_poll``)."""

    kind: ClassVar[Kind] = Kind.SAFETY_POLL
    month: str  # "2026-12", local
    unit_id: str
    chat: int
    question: str | None = None
    options: tuple[str, ...] | None = None

    @property
    def data(self) -> dict[str, Any]:
        return {"question": self.question, "options": list(self.options) if self.options else None}

    @property
    def key(self) -> str:
        return f"{SAFETY_PREFIX}poll:{self.month}:{self.unit_id}"


@dataclass(frozen=True)
class StopPoll(Notice):
    """Close the month's poll (stopPoll); its final counts are recorded when Telegram answers."""

    kind: ClassVar[Kind] = Kind.STOP_POLL
    month: str
    unit_id: str
    chat: int
    message_id: int

    @property
    def reply_to(self) -> int:
        return self.message_id

    @property
    def key(self) -> str:
        return f"{SAFETY_PREFIX}stop:{self.month}:{self.unit_id}"


def safety_of_key(key: str) -> tuple[str, str]:
    """(month, unit id) of a SafetyPoll's or a StopPoll's key."""
    _, _, month, unit_id = key.split(":", 3)
    return month, unit_id


# --- visit logs (走访日志, issue 16): composed when sent, like every new notice; the guided
# entry's answers and edits are Reply and EditText ----------------------------------------
@dataclass(frozen=True)
class VisitPost(Notice):
    """A finished entry in its community's group; ``data``: the entry (render.py composes it)."""

    kind: ClassVar[Kind] = Kind.VISIT
    visit_id: int
    chat: int
    data: dict[str, Any]

    @property
    def key(self) -> str:
        return f"vpost:{self.visit_id}:{self.chat}"


@dataclass(frozen=True)
class VisitPlace(Notice):
    """Where a visit was, after its post: a Telegram location, which every client shows on
    its own map (no outside map link: their coordinate systems differ in China)."""

    kind: ClassVar[Kind] = Kind.LOCATION
    visit_id: int
    chat: int
    latitude: float
    longitude: float

    @property
    def media(self) -> str:
        return f"{self.latitude},{self.longitude}"

    @property
    def key(self) -> str:
        return f"vplace:{self.visit_id}:{self.chat}"


@dataclass(frozen=True)
class VisitPhoto(Notice):
    """A visit's photo sent again for a spot check (抽查), asked by update ``update_id``."""

    kind: ClassVar[Kind] = Kind.PHOTO
    visit_id: int
    index: int
    update_id: int
    chat: int
    media: str  # Telegram's file id
    data: dict[str, Any]  # the caption

    @property
    def key(self) -> str:
        return f"vphoto:{self.visit_id}:{self.index}:{self.update_id}"


@dataclass(frozen=True)
class VisitNote(Notice):
    """The one writing an entry told something outside an update (the sweep dropped it)."""

    kind: ClassVar[Kind] = Kind.VISIT_NOTE
    visit_id: int
    topic: str  # "dropped"
    chat: int
    data: dict[str, Any]

    @property
    def key(self) -> str:
        return f"vnote:{self.visit_id}:{self.topic}"
