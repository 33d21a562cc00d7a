"""Pure functions from matters to what people read: (text, keyboard).

The card's keyboard follows from the matter's state, so a card can be re-rendered and
edited at any moment. Every piece of user text is HTML-escaped here and nowhere else.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from html import escape, unescape
from typing import Any

from bot import visibility
from bot.config import Person
from bot.outbox import Kind
from bot.store import Event, Matter
from bot.text.i18n import Languages, Texts
from bot.tree import UNIT, Tree
from bot.visibility import Audience, Piece
from escalation import policy
from escalation.policy import State
from escalation.reports import bulletin
from escalation.summary import split_message

# Callback data: a version prefix, an action, a matter id — well under Telegram's 64 bytes.
CALLBACK_VERSION = "v1"
Keyboard = list[list[tuple[str, str]]]  # rows of (label, callback data)

SNIPPET = 300  # how much of a report escalations and lists quote; /show has it all


def callback(action: str, matter_id: int, arg: str | None = None) -> str:
    return f"{CALLBACK_VERSION}:{action}:{matter_id}" + (f":{arg}" if arg else "")


ACTIONS = ("claim", "resolve", "cat", "cats", "rate")
_NUMBER = re.compile(r"[0-9]{1,9}")  # what we put there; forged data may hold "²" or 23 digits
WITH_ARG = ("cat", "rate")


def parse_callback(data: str | None) -> tuple[str, int, str | None] | None:
    """``v1:claim:42`` → ("claim", 42, None); ``v1:cat:42:fraud`` → ("cat", 42, "fraud");
    anything else (old, forged) → None."""
    parts = (data or "").split(":")
    if len(parts) not in (3, 4) or parts[0] != CALLBACK_VERSION or not _NUMBER.fullmatch(parts[2]):
        return None
    if parts[1] not in ACTIONS or (parts[1] in WITH_ARG) != (len(parts) == 4):
        return None
    return parts[1], int(parts[2]), parts[3] if len(parts) == 4 else None


def plain(html_text: str, limit: int = 200) -> str:
    """HTML → plain text, for button toasts (which Telegram shows unformatted)."""
    text = unescape(re.sub(r"<[^>]+>", "", html_text))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def mention(user_id: int, name: str | None) -> str:
    if user_id < 0:  # an anonymous admin's group or a channel: a chat, not a person to link
        return escape(name or str(user_id))
    return f'<a href="tg://user?id={user_id}">{escape(name or str(user_id))}</a>'


def people(persons: tuple[Person, ...] | list[Person], limit: int = 40) -> str:
    """Mentions, at most ``limit`` (Telegram notifies nobody past 50 in one message)."""
    shown = "、".join(mention(p.id, p.name) for p in persons[:limit]) or "—"
    return shown + (f" +{len(persons) - limit}" if len(persons) > limit else "")


def fit(text: str, limit: int) -> str:
    """User text cut cleanly to ``limit`` characters, then escaped (the full text stays in
    the database and /show)."""
    return escape(text if len(text) <= limit else text[: limit - 1].rstrip() + "…")


def snippet(text: str, limit: int = SNIPPET) -> str:
    text = " ".join(text.split()) if len(text) > limit else text
    return escape(text if len(text) <= limit else text[: limit - 1] + "…")


CARD_TEXT = 2500  # of a report on its card; the rest of the card needs the other 1,500
SHOW_TEXT = 3800  # of a report in /show, whose timeline goes into a second message if need be
SHOW_EVENTS = 12  # the latest timeline entries /show lists


def card(
    matter: Matter,
    tree: Tree,
    t: Texts,
    attachments: int = 0,
    redact: bool = False,
    private_link: str | None = None,
    text_limit: int = CARD_TEXT,
    audience: Audience | None = None,
) -> tuple[str, Keyboard]:
    """A matter's card as ``audience`` may read it (bot/visibility.py decides). ``redact``
    (older callers): the unit group's view. A private matter in its unit group shows that it
    exists and where it stands, not what it says, who said it or who worked it, nor how it
    ended. ``private_link``: the deep link under every unit card for reporting privately."""
    audience = audience or (Audience.UNIT if redact else Audience.COMMUNITY)
    redact = visibility.redacted(audience, matter.private)

    def see(piece: Piece) -> bool:
        return visibility.may_see(piece, audience, matter.private)

    unit = tree.nodes[matter.unit_id]
    rules = matter.policy_rules
    category = t.category(matter.category) + (" 🚨" if matter.urgent else "")
    lines = [t("card.title", id=matter.id, unit=escape(unit.name))]
    if see(Piece.TEXT):
        more = t("card.more", id=matter.id) if len(matter.text) > text_limit else ""
        lines.append(fit(matter.text, text_limit) + more)
    else:
        lines.append(t("card.private"))
    lines.append("")
    if see(Piece.CATEGORY):
        lines.append(t("card.category", category=category))
    if see(Piece.REPORTER):
        lines.append(t("card.reporter", reporter=mention(matter.reporter_id, matter.reporter_name)))
        lines += membership_line(matter, t)  # 非本群成员 / 未核实: only where the reporter is seen
    lines.append(t("card.heads", heads=people(unit.leaders)))
    if attachments and see(Piece.ATTACHMENTS):
        lines.append(t("card.photos", count=attachments))
    if matter.closed:
        at = t.time(matter.closed_at or matter.resolved_at or 0)
        if see(Piece.NAMES):
            lines.append(t(f"card.{matter.state}", who=escape(matter.resolved_by_name or ""), at=at))
        else:
            lines.append(t("privacy.card_closed", state=t(f"state.{matter.state}"), at=at))
        if matter.resolution and see(Piece.OUTCOME):
            lines.append(t("card.resolution", text=escape(matter.resolution)))
        if matter.close_reason and see(Piece.OUTCOME):
            lines.append(t("card.close_reason", text=escape(matter.close_reason)))
        return "\n".join(lines), []
    lines.append(t("card.state", state=t(f"state.{matter.state}")))
    if matter.state == State.CLAIMED and see(Piece.NAMES):
        lines.append(t("card.claimed_by", who=escape(matter.claimed_by_name or "")))
    if matter.tier < 3:
        lines.append(t("card.at_tier", tier=t(f"tier.{matter.tier}")))
    if matter.suspended_until is not None:
        lines.append(t("card.suspended", until=t.date(matter.suspended_until)))
        return "\n".join(lines), action_buttons(matter, t)
    # Held above the unit, the clocks are that tier's: say so, or a head reads them as his own.
    whose = {"tier": t(f"tier.{matter.tier}")} if matter.tier < 3 else {}
    claim_due = policy.claim_due(matter.clock, rules)
    if claim_due is not None:
        lines.append(t("card.tier_claim_due" if whose else "card.claim_due", at=t.time(claim_due), **whose))
    resolve_due = policy.resolve_due(matter.clock, rules)
    if resolve_due is not None:
        lines.append(t("card.tier_resolve_due" if whose else "card.resolve_due", at=t.time(resolve_due), **whose))
    keyboard = action_buttons(matter, t)
    if not matter.category_set and not redact:
        # One button that opens the list: eleven on every card would bury the card.
        keyboard.append([(t("button.categorize"), callback("cats", matter.id))])
    if private_link:
        keyboard.append([(t("button.private"), URL_PREFIX + private_link)])
    return "\n".join(lines), keyboard


URL_PREFIX = "url:"  # a keyboard entry whose data starts so is a link button, not a callback


def private_link(bot_username: str | None, unit_id: str) -> str | None:
    """The deep link that opens a private report to this unit (私下反映)."""
    return f"https://t.me/{bot_username}?start=p_{unit_id}" if bot_username else None


def category_buttons(matter: Matter, t: Texts, per_row: int = 4) -> Keyboard:
    """The category list a card shows once its 分类 button is tapped."""
    buttons = [(t.category(key), callback("cat", matter.id, key)) for key in t.category_keys()]
    return [buttons[i : i + per_row] for i in range(0, len(buttons), per_row)]


def action_buttons(matter: Matter, t: Texts, takeover: bool = False) -> Keyboard:
    if matter.closed:
        return []
    row = []
    if matter.state == State.OPEN:
        row.append((t("button.takeover" if takeover else "button.claim"), callback("claim", matter.id)))
    row.append((t("button.resolve"), callback("resolve", matter.id)))
    return [row]


def pings(
    batch: list[Any], tree: Tree, t: Texts, now: float, leaders: list[Person], on_watch: list[int],
    redact: bool = False, audience: Audience | None = None,
) -> tuple[str, Keyboard]:
    """One message for one chat about one or several matters (see escalation/notify.py).
    ``audience``: who reads the chat (``redact``, older callers: a unit group), which sees
    nothing of a private matter but that it moves (bot/visibility.py)."""
    audience = audience or (Audience.UNIT if redact else Audience.COMMUNITY)
    lines: list[str] = []
    if len(batch) == 1:
        ping = batch[0]
        matter = ping.matter

        def see(piece: Piece) -> bool:
            return visibility.may_see(piece, audience, matter.private)

        unit = tree.nodes[matter.unit_id]
        community = tree.at_tier(matter.unit_id, 2)
        lines += [
            ping_title(ping, t, now, category=see(Piece.CATEGORY)),
            t("esc.unit", unit=escape(unit.name), community=escape(community.name)),
        ]
        if see(Piece.CATEGORY):
            lines.append(t("esc.category", category=t.category(matter.category)))
        lines.append(t("esc.reporter", reporter=mention(matter.reporter_id, matter.reporter_name))
                     if see(Piece.REPORTER) else t("card.private"))
        if see(Piece.REPORTER):
            lines += membership_line(matter, t)
        if see(Piece.TEXT):
            lines.append(t("esc.text", text=snippet(matter.text)))
        if not (ping.kind == "urgent" and now - matter.created_at < 60):  # "已等待：0秒" says nothing
            lines.append(t("esc.waited", waited=t.duration(now - matter.created_at)))
        if ping.note and see(Piece.OUTCOME if ping.kind == "resolved_below" else Piece.WORDS):
            key = "card.resolution" if ping.kind == "resolved_below" else "esc.note"
            lines.append(t(key, note=snippet(ping.note), text=snippet(ping.note)))
        if matter.suspended_until is not None and not matter.closed:  # every tier sees when it resumes
            lines.append(t("card.suspended", until=t.date(matter.suspended_until)))
        if matter.claimed_by_name and matter.state == State.OPEN and see(Piece.NAMES):
            lines.append(t("esc.claimed_before", who=escape(matter.claimed_by_name)))
        if ping.kind == "idle" and matter.claimed_by and see(Piece.NAMES):
            lines.append(t("esc.idle_who", who=mention(matter.claimed_by, matter.claimed_by_name)))
        lines.append(t("view.now", state=standing(matter, t, audience)))
    else:
        lines.append(t("esc.digest", count=len(batch)))
        for ping in batch:
            unit = tree.nodes[ping.matter.unit_id]
            shown = visibility.may_see(Piece.TEXT, audience, ping.matter.private)
            text = snippet(ping.matter.text, 40) if shown else t("card.private")
            paused = ping.matter.suspended_until is not None and not ping.matter.closed
            suffix = t("list.suspended", until=t.date(ping.matter.suspended_until)) if paused else ""
            title = ping_title(ping, t, now, category=visibility.may_see(Piece.CATEGORY, audience, ping.matter.private))
            now_stands = t("view.line_now", id=ping.matter.id, state=standing(ping.matter, t, audience))
            lines.append(f"• {title} · {escape(unit.name)}：{text}{suffix}{now_stands}")
    if all(ping.matter.closed for ping in batch):  # settled: a view asks no one to act any more
        on_watch, leaders = [], []
    if on_watch:
        lines.append(t("esc.on_duty", who="、".join(mention(uid, _name(tree, uid)) for uid in on_watch)))
    if leaders:
        lines.append(t("esc.leaders", leaders=people(leaders[:MAX_MENTIONS], limit=MAX_MENTIONS)))
    keyboard: Keyboard = []
    seen: set[int] = set()
    for ping in batch:
        matter = ping.matter
        if matter.id in seen or matter.closed or len(keyboard) >= MAX_BUTTON_ROWS:
            continue
        seen.add(matter.id)
        row = action_buttons(matter, t, takeover=True)
        keyboard += [[(f"{label} #{matter.id}", data) for label, data in r] for r in row] if len(batch) > 1 else row
    return "\n".join(lines), keyboard


def standing(matter: Matter, t: Texts, audience: Audience) -> str:
    """Where a matter stands now, for the views that follow it (issue 14): its state, the
    tier that holds it and, where names may be read, who has it or closed it."""
    names = visibility.may_see(Piece.NAMES, audience, matter.private)
    parts = [t(f"state.{matter.state}")]
    if matter.closed:
        if names and matter.resolved_by_name and matter.state != State.CANCELLED:
            parts.append(escape(matter.resolved_by_name))
        return " · ".join(parts)
    parts.append(t("view.held", tier=t(f"tier.{matter.tier}")))
    if matter.state == State.CLAIMED and names and matter.claimed_by_name:
        parts.append(escape(matter.claimed_by_name))
    return " · ".join(parts)  # a suspension has its own line (or suffix) in the ping


def over_limit(batch: list[Any], tree: Tree, t: Texts) -> tuple[str, Keyboard]:
    """Urgent matters whose reporters are past their urgent alerts for the day: one line
    each in one message, mentioning nobody (see bot/limits.py)."""
    lines = [t("limits.urgent_over_title", count=len(batch))]
    keyboard: Keyboard = []
    for ping in batch:
        matter = ping.matter
        lines.append(t("limits.urgent_over_line", id=matter.id, category=t.category(matter.category),
                       unit=escape(tree.name_of(matter.unit_id)), reporter=escape(matter.reporter_name),
                       text=snippet(matter.text, 40))
                     + t("view.line_now", id=matter.id, state=standing(matter, t, Audience.COMMUNITY)))
        if matter.closed:
            continue
        if len(keyboard) < MAX_BUTTON_ROWS:
            keyboard += [[(f"{label} #{matter.id}", data) for label, data in row]
                         for row in action_buttons(matter, t, takeover=True)]
    return "\n".join(lines), keyboard


def membership_line(matter: Matter, t: Texts) -> list[str]:
    """非本群成员 / 未核实: what Telegram said of a private reporter, for the heads and above."""
    return [t(f"limits.{matter.membership}")] if matter.membership in ("nonmember", "unverified") else []


MAX_MENTIONS = 40  # Telegram notifies nobody in a message with more than 50 mentions
MAX_BUTTON_ROWS = 8


def ping_title(ping: Any, t: Texts, now: float, category: bool = True) -> str:
    matter = ping.matter
    tier = t(f"tier.{ping.tier}")
    reason = t(f"reason.{ping.reason}") if ping.reason in REASONS else ""
    match ping.kind:
        case "escalated":
            return t("esc.title", id=matter.id, tier=tier, reason=reason or t("reason.manual"))
        case "reping":
            overdue = getattr(ping, "overdue", None)  # as it was when the ping was queued
            overdue = now - policy.overdue_since(matter.clock, matter.policy_rules, now) if overdue is None else overdue
            return t("esc.reping", id=matter.id, reason=reason, overdue=t.duration(overdue))
        case "remind":
            due = getattr(ping, "due", None)  # as it was when the ping was queued
            if due is None:
                due = policy.next_deadline(matter.clock, matter.policy_rules, now)
            return t("esc.remind", id=matter.id, reason=reason, at=t.time(due))
        case "idle":
            return t("esc.idle", id=matter.id)
        case "unclaimed":
            return t("esc.released", id=matter.id)
        case "returned":
            return t("esc.returned", id=matter.id, tier=tier)
        case "resumed":
            return t("esc.resumed", id=matter.id)
        case "urgent":
            return t("esc.urgent", id=matter.id, category=t.category(matter.category) if category else "🔒")
        case "private":
            return t("esc.private", id=matter.id)
        case "resolved_below":
            who = getattr(ping, "who", None)
            who = (matter.resolved_by_name or "") if who is None else who
            return t("esc.resolved_below", id=matter.id, who=escape(who))
        case "suspended":
            return t("esc.suspended", id=matter.id, tier=t(f"tier.{ping.tier + 1}"))  # told: the tier above
        case "cancel_wish":
            return t("esc.cancel_wish", id=matter.id, tier=tier)
        case "unsatisfied":
            return t("esc.unsatisfied", id=matter.id, tier=tier)
        case "reopened":
            return t("esc.reopened", id=matter.id, tier=tier)
    return t("esc.title", id=matter.id, tier=tier, reason=reason)


REASONS = ("unclaimed", "unresolved", "idle", "suspension_over")


def _name(tree: Tree, user_id: int) -> str:
    return tree.person_name(user_id) or str(user_id)


def matter_list(
    node_name: str, matters: list[Matter], tree: Tree, t: Texts, now: float, limit: int = 30, redact: bool = False,
    audience: Audience | None = None,
) -> str:
    """/list: open matters, overdue first, then oldest first, as ``audience`` may read them
    (``redact``, older callers: a unit group)."""
    audience = audience or (Audience.UNIT if redact else Audience.COMMUNITY)
    by_id = {m.id: m for m in matters}
    return listing(node_name, [by_id[m] for m in listed(matters, now, limit)], len(matters), tree, t, now, audience)


def details(
    matter: Matter, events: list[Event], tree: Tree, t: Texts, attachments: int, redact: bool = False,
    audience: Audience | None = None,
) -> str:
    """/show N: the card, where it stands, the rules it runs under and the timeline entries
    ``audience`` may read (``redact``, older callers: a unit group)."""
    audience = audience or (Audience.UNIT if redact else Audience.COMMUNITY)
    text, _ = card(matter, tree, t, attachments, text_limit=SHOW_TEXT, audience=audience)
    if visibility.redacted(audience, matter.private):
        return text
    rules = matter.policy_rules
    d = t.duration
    lines = [
        text,
        t("show.created", at=t.time(matter.created_at)),
        t("show.tier", tier=t(f"tier.{matter.tier}")),
        t(
            "show.rules",
            c3=d(rules.tiers[3].claim), r3=d(rules.tiers[3].resolve),
            c2=d(rules.tiers[2].claim), r2=d(rules.tiers[2].resolve),
            c1=d(rules.tiers[1].claim), r1=d(rules.tiers[1].resolve),
            repeat=d(rules.repeat),
        ),
        "",
        t("show.timeline"),
    ]
    for event in visibility.timeline(events, matter, tree, audience)[-SHOW_EVENTS:]:  # the latest: one message
        what = t(f"event.{event.kind}", tier=t(f"tier.{event.tier}") if event.tier else "")
        actor = f" · {escape(event.actor_name)}" if event.actor_name else ""
        detail = f"：{snippet(event.detail, 100)}" if event.detail else ""
        lines.append(t("event.line", at=t.time(event.at), what=what, actor=actor, detail=detail))
    return "\n".join(lines)


# --- notices composed when they are sent (issue 13) -------------------------------------
# A notice carries what its words are made of (bot/outbox.py's ``data``); the delivery
# worker asks ``compose`` for its text and buttons just before it goes out, in the chat's
# language and from the matters as they are then.
@dataclass(frozen=True)
class Scene:
    """What a notice is composed from when it is sent."""

    tree: Tree
    t: Texts  # the language of the chat it goes to
    now: float
    chat_id: int
    matters: Mapping[int, Matter] = field(default_factory=dict)  # those the notice names, as they are now
    bot_username: str | None = None


Composed = tuple[str, Keyboard | None]
Composer = Callable[[Any, Scene], Composed]
_COMPOSERS: dict[str, Composer] = {}


def composes(*kinds: str) -> Callable[[Composer], Composer]:
    """Register the composer of these notice kinds (bot.outbox.Kind values)."""

    def register(composer: Composer) -> Composer:
        for kind in kinds:
            _COMPOSERS[str(kind)] = composer
        return composer

    return register


def compose(kind: str, data: Any, scene: Scene) -> Composed:
    """A notice's text and buttons. A kind without a composer of its own is its words:
    ``{"say": [[key, values], …], "buttons": [[[[key, values], callback], …], …]}``."""
    if isinstance(data, dict) and "answer" in data:  # a handler's answer with a composer of its own (/list …)
        return _ANSWERS[data["answer"]](data, scene)
    composer = _COMPOSERS.get(str(kind))
    if composer is not None:
        return composer(data, scene)
    return said(data, scene)


def said(data: Any, scene: Scene, sep: str = "\n") -> Composed:
    parts = [words(part, scene) for part in data.get("say", [])]
    text = sep.join(parts)
    # Past Telegram's 4,096 (a busy /visits) the whole answer is refused: its last parts go
    # instead, whole, so no tag is cut (tags and entities counted: within the limit for sure).
    while len(text) > TELEGRAM_TEXT and len(parts) > 1:
        parts.pop()
        text = sep.join([*parts, "…"])
    return text, buttons(data, scene)


def buttons(data: Any, scene: Scene) -> Keyboard | None:
    """A notice's buttons: (label, callback data); a label that is a plain string is shown as it is.
    A label is plain text to Telegram: the escaping its words' values get is undone."""
    rows = [[(label if isinstance(label, str) else unescape(words(label, scene)), callback_data)
             for label, callback_data in row]
            for row in data.get("buttons", [])]
    return rows or None


def words(part: Any, scene: Scene) -> str:
    """One catalog entry, ``[key, values]``, in the scene's language. A value is escaped
    here (it may hold what a person wrote), unless it is itself words (``{"say": part}``),
    a mention (``{"mention": [user id, name]}``), a category (``{"category": key}``), a
    time (``{"time": unix seconds}``), a day (``{"date": unix seconds}``) or a duration
    (``{"duration": seconds}``)."""
    key, values = part
    return scene.t(key, **{name: _value(value, scene) for name, value in values.items()})


def _value(value: Any, scene: Scene) -> Any:
    if isinstance(value, str):
        return escape(value)
    if isinstance(value, dict):
        if "say" in value:
            return words(value["say"], scene)
        if "mention" in value:
            return mention(*value["mention"])
        if "people" in value:
            return "、".join(mention(*p) for p in value["people"][:MAX_MENTIONS]) or "—"
        if "category" in value:
            return escape(scene.t.category(value["category"]))
        if "time" in value:
            return scene.t.time(value["time"])
        if "date" in value:
            return scene.t.date(value["date"])
        if "duration" in value:
            return scene.t.duration(value["duration"])
    return value


# --- the weekly safety notice to the village (issue 16) ------------------------------------
def village_notice_body(t: Texts, figures: Any, closing: str | None) -> str:
    """The draft of a community's weekly notice from its week's figures (escalation/summary.py's
    Figures): what came in, what was settled, the leading kind, any fraud; then the closing
    line. Plain text: it is the officer's to edit, and escaped where it is shown."""
    categories = figures.public_categories  # the notice goes to every unit group: no private report's kind
    lines = [t("vn.body", new=figures.new, resolved=figures.resolved)] if figures.new else [t("vn.quiet")]
    if categories:
        ranked = sorted(categories.items(), key=lambda kv: (-kv[1], kv[0]))
        lines.append(t("vn.by_category", list=t("broadcast.sep").join(f"{t.category(k)} {n}" for k, n in ranked)))
        if len(ranked) == 1 or ranked[0][1] > ranked[1][1]:
            lines.append(t("vn.leading", category=t.category(ranked[0][0]), n=ranked[0][1]))
    if categories.get("fraud"):
        lines.append(t("vn.fraud", n=categories["fraud"]))
    lines.append(closing or t("vn.closing"))
    return "\n".join(lines)


@composes("notice_late")
def _officers_late(data: Any, scene: Scene) -> Composed:
    """The station's bulletin: safety notices not published in time, screenings not answered."""
    lines = []
    for key, names in (("vn.late", data.get("names")), ("sc.missing", data.get("unscreened"))):
        if names:
            lines.append(scene.t(key, names=scene.t("broadcast.sep").join(escape(name) for name in names)))
    return "\n".join(lines), None


# --- the officers' section of the bulletins (issue 16) -------------------------------------
@composes(Kind.OFFICERS)
def _officers(data: dict[str, Any], scene: Scene) -> Composed:
    """A node's officers (escalation/officers.section): the police held to the targets,
    those below first; then the others who visited, unranked. Each figure with its change
    from the period before; a month adds each officer's weeks on target."""
    t, targets = scene.t, data["targets"]
    monthly = data["kind"] == bulletin.Kind.MONTHLY
    lines = [t("off.title_month" if monthly else "off.title", days=targets["days_per_week"],
               households=targets["households_per_visit"]) if data["part"] == 0 else t("off.more")]
    unranked_shown = False
    for row in data["rows"]:
        if not row["ranked"] and not unranked_shown:
            lines.append(t("off.unranked"))
            unranked_shown = True
        lines.append(_officer_line(row, data, scene))
        if row["weeks"] is not None:
            lines.append(t("off.assessment", weeks=row["weeks"], met=row["weeks_met"]))
    return "\n".join(lines), None


OFFICER_ROLES = ("staff", "police", "secretary", "grid_worker")  # roles with a word in the catalog (off.role.*)
OFFICER_NAME = 24  # characters of a name or a community's: a part's lines stay within one message


def _officer_line(row: dict[str, Any], data: dict[str, Any], scene: Scene) -> str:
    t, now, before = scene.t, row["now"], row["before"]
    mark = "•" if not row["ranked"] else ("✅" if row["met"] else "⚠️")
    role = row["role"] if row["role"] in OFFICER_ROLES else "other"
    name = fit(row["name"], OFFICER_NAME) + ("" if row["ranked"] else t("off.role", role=t(f"off.role.{role}")))
    where = t("off.where", community=fit(scene.tree.name_of(row["community_id"]), OFFICER_NAME)) \
        if data["with_community"] else ""
    figures = [bulletin.count_with_change(now[k], before[k]) for k in ("days", "visits", "households", "findings")]
    short = t("off.short_days", households=data["targets"]["households_per_visit"], n=now["target_days"]) \
        if row["ranked"] and now["target_days"] < now["days"] else ""
    return t("off.line", mark=mark, name=name, where=where, days=figures[0], short=short, visits=figures[1],
             households=figures[2], findings=figures[3],
             screening=_screening(data["screenings"].get(row["community_id"]), data["kind"], t))


def _screening(screening: dict[str, int] | None, kind: str, t: Texts) -> str:
    if not screening or not screening["asked"]:
        return t("off.sc.none")
    if kind == bulletin.Kind.MONTHLY:
        return t("off.sc.month", done=screening["done"], asked=screening["asked"])
    if screening["done"] < screening["asked"]:
        return t("off.sc.missing")
    return t("off.sc.found", n=screening["findings"]) if screening["findings"] else t("off.sc.zero")


# --- broadcasts, operations (issue 13) ----------------------------------------------------
TELEGRAM_TEXT = 4096  # characters in a message
TELEGRAM_CAPTION = 1024  # characters in a photo's caption


def broadcast_copy(t: Texts, node_name: str, words: str) -> str:
    """What a unit group reads of a broadcast: a heading naming who sends it, then the
    sender's own words (escaped: shown as typed)."""
    header = t("broadcast.notice", node=escape(node_name))
    return f"{header}\n{escape(words)}" if words else header


def broadcast_fits(langs: Languages, node_name: str, words: str, photo: bool, most: int) -> bool:
    """Whether a broadcast of ``words`` (at most ``most`` characters) fits one Telegram
    message, or a photo's caption, in every language."""
    if len(words) > most:
        return False
    limit = TELEGRAM_CAPTION if photo else TELEGRAM_TEXT
    return all(len(broadcast_copy(t, node_name, words)) <= limit for t in langs.texts.values())


@composes(Kind.BROADCAST)
def _broadcast(data: dict[str, Any], scene: Scene) -> Composed:
    node = scene.tree.nodes.get(data["node"])
    return broadcast_copy(scene.t, node.name if node is not None else data["node"], data["words"]), None


BROADCAST_NAMED = 60  # failed groups named in a report; the rest are counted


@composes(Kind.BROADCAST_REPORT)
def _broadcast_report(data: dict[str, Any], scene: Scene) -> Composed:
    """delivered N, failed M, naming the units whose groups it did not reach."""
    t, report = scene.t, data["report"]
    failed = report["failed"]
    lines = [t("broadcast.report", sender=_value(report["sender"], scene), id=report["id"],
               delivered=report["delivered"], failed=len(failed))]
    if failed:
        names = [escape(scene.tree.nodes[unit].name if unit in scene.tree.nodes else unit) for unit in failed]
        lines.append(t("broadcast.failed", units=t("broadcast.sep").join(names[:BROADCAST_NAMED])))
        if len(names) > BROADCAST_NAMED:
            lines.append(t("broadcast.failed_more", count=len(names) - BROADCAST_NAMED))
    return "\n".join(lines), None


# --- bulletins (issue 13) ------------------------------------------------------------------
# A bulletin waits as its figures (escalation/reports/bulletin.view); its words, and its
# chart's, are composed here when it is sent, by the bulletin's own text functions.
class BulletinWords:
    """What queueing bulletins asks of the words (escalation/reports/service.Words)."""

    def __init__(self, langs: Languages, tree: Tree) -> None:
        self.langs = langs
        self.tree = tree
        self.tz = langs.get(None).tz

    def parts(self, chat: int, view: dict[str, Any]) -> int:
        """How many messages the bulletin takes in the chat's language now: each part is its
        own outbox item. A unit's is a dozen short lines: one message, without counting."""
        if self.tree.nodes[view["node"]].tier == UNIT:
            return 1
        return len(bulletin.messages(view, self.tree, self.langs.for_chat(chat)))


@composes(Kind.BULLETIN)
def _bulletin(data: dict[str, Any], scene: Scene) -> Composed:
    messages = bulletin.messages(data["bulletin"], scene.tree, scene.t)
    part, parts = data["part"], data["parts"]
    if len(messages) != parts:  # the chat changed its language since it was counted: share the lines out
        lines = "\n".join(messages).split("\n")
        text = "\n".join(lines[part * len(lines) // parts : (part + 1) * len(lines) // parts])
        return (text if len(text) <= TELEGRAM_TEXT else text[: TELEGRAM_TEXT - 1] + "…"), None
    return messages[part], None


@composes(Kind.CHART)
def _chart(data: dict[str, Any], scene: Scene) -> Composed:
    """A bulletin's chart: its caption and what reports.charts draws, as the delivery
    worker reads them back ({"caption", "chart"})."""
    caption, spec = bulletin.chart(data["chart"], scene.tree, scene.t)
    return json.dumps({"caption": caption, "chart": spec}, ensure_ascii=False), None


# --- issue 16: the monthly sense-of-safety poll (群众安全感) ---------------------------------
SAFETY_OPTIONS = tuple(f"safety.option{n}" for n in range(1, 6))


def safety_poll(question: str | None, options: list[str] | None, t: Texts) -> tuple[str, tuple[str, ...]]:
    """The poll's question and answers: config.yaml's ``safety_poll`` words, else the
    catalog's in the chat's language. Plain text: a poll's words are not HTML."""
    return question or t("safety.question"), tuple(options or (t(key) for key in SAFETY_OPTIONS))


@composes(Kind.SAFETY_POLL)
def _safety_poll_question(data: Any, scene: Scene) -> Composed:
    """A poll notice's text is its question (its answers: ``safety_poll``, when it is sent)."""
    return safety_poll(data.get("question"), data.get("options"), scene.t)[0], None



# --- pings and the views that follow them (issue 14) --------------------------------------
@dataclass(frozen=True)
class Pinged:
    """One matter of a ping as render.pings reads it, rebuilt from the ping's data
    (escalation/notify.py's ``ping_data``) and the matter as it is now."""

    matter: Matter
    kind: str
    tier: int
    reason: str
    note: str | None = None
    overdue: float | None = None
    due: float | None = None
    who: str | None = None


def _people(pairs: list[list[Any]]) -> list[Person]:
    return [Person(id=user_id, name=name) for user_id, name in pairs]


@composes("ping", "ping_copy")
def _ping(data: Any, scene: Scene) -> Composed:
    """A ping to a tier's chat, or its copy in a leader's DM: the words of the moment it
    was queued (``data["at"]``), each matter's state as it is now, and buttons only for
    the matters still open."""
    batch = [
        Pinged(scene.matters[entry["matter"]], entry["kind"], entry["tier"], entry["reason"], entry.get("note"),
               entry.get("overdue"), entry.get("due"), entry.get("who"))
        for entry in data["pings"] if entry["matter"] in scene.matters
    ]
    if not batch:
        return "", None
    if data.get("style") == "over_limit":
        text, keyboard = over_limit(batch, scene.tree, scene.t)
        return text, keyboard or None
    text, keyboard = pings(batch, scene.tree, scene.t, data["at"], _people(data.get("leaders", [])),
                           data.get("on_watch", []), audience=Audience(data["audience"]))
    return text, keyboard or None


@composes("mentions")
def _mentions(data: Any, scene: Scene) -> Composed:
    return scene.t("esc.leaders", leaders=people(_people(data["leaders"]))), None


@composes("view")
def _view(data: Any, scene: Scene) -> Composed:
    """A view refreshed: composed as the message it edits was (``of``: that notice's kind,
    ``data``: what it was composed from) from its matters as they are now. A private
    matter's card in a head's DM is that head's full card."""
    # Who reads the chat is asked again: config.yaml may have changed since the view was
    # sent (a head moved away, a group rebound), and a chat that may no longer read a
    # private matter gets the unit group's view of it, not its news.
    named = [m for m in (scene.matters.get(i) for i in data["matters"]) if m is not None]
    barred = any(visibility.of_chat(scene.tree, scene.chat_id, m) in (None, Audience.UNIT) for m in named)
    if data["of"] == "card_copy":
        if not named:
            return "", None
        text, keyboard = card(named[0], scene.tree, scene.t, audience=Audience.UNIT if barred else Audience.LEADER_DM)
        return text, keyboard or None
    if barred and isinstance(data["data"], dict) and "audience" in data["data"]:
        return compose(data["of"], {**data["data"], "audience": Audience.UNIT.value}, scene)
    return compose(data["of"], data["data"], scene)


# --- a matter's notices (bot/matters.py decides who hears them; their words are here) -----
@composes("card_copy")
def _card_copy(data: Any, scene: Scene) -> Composed:
    """A private matter's card in a head's private chat, as the matter is now."""
    return card(scene.matters[data["matter"]], scene.tree, scene.t, audience=Audience.LEADER_DM)


@composes("unsatisfied")
def _unsatisfied(data: Any, scene: Scene) -> Composed:
    """The reporter is not satisfied: the heads follow it up, or the tier that reopened it."""
    t, matter = scene.t, scene.matters[data["matter"]]
    unit = scene.tree.nodes[matter.unit_id]
    if data.get("private"):
        return t("privacy.unsatisfied", id=matter.id, unit=escape(unit.name), heads=people(unit.leaders),
                 text=snippet(matter.text), reporter=mention(matter.reporter_id, matter.reporter_name)), None
    if data["tier"] == 3:
        return t("notify.unsatisfied", id=matter.id, heads=people(unit.leaders)), None
    return t("notify.unsatisfied_above", id=matter.id, tier=t(f"tier.{data['tier']}")), None


@composes("instruction")
def _instruction(data: Any, scene: Scene) -> Composed:
    """A private matter handed to its unit, to a head by DM: the ping, as the matter is now."""
    p = data["ping"]
    ping = Pinged(scene.matters[data["matter"]], p["kind"], p["tier"], p["reason"], p["note"])
    return pings([ping], scene.tree, scene.t, scene.now, [], [], audience=Audience.LEADER_DM)


@composes("rating")
def _rating(data: Any, scene: Scene) -> Composed:
    """The reporter asked to rate a resolution: its words, and a button per rating."""
    text, _ = said(data, scene)
    buttons = [[(scene.t(f"rating.{r}"), callback("rate", data["matter"], r)) for r in data["ratings"]]]
    return text, buttons


# --- a handler's answers (issue 13) -------------------------------------------------------
# Handlers queue what an answer is made of (bot/outbox.py's Reply and friends); the words are
# composed here when it is sent. Those that are more than catalog words name their composer
# in ``data["answer"]``.
_ANSWERS: dict[str, Composer] = {}


def answer(name: str) -> Callable[[Composer], Composer]:
    """Register the composer of the answers whose data says ``"answer": name``."""

    def register(composer: Composer) -> Composer:
        _ANSWERS[name] = composer
        return composer

    return register


def toast(langs: Languages, chat_id: int | None, language_code: str | None, part: Any) -> str:
    """The text of a button's toast (answerCallbackQuery, which must answer at once and so is
    not queued): ``part`` (bot.outbox.Say) in the language of the one who pressed, as plain text."""
    t = langs.for_user(chat_id, language_code)
    return plain(words(part.data(), Scene(None, t, 0.0, chat_id or 0)))  # type: ignore[arg-type]


@answer("paragraphs")
def _paragraphs(data: Any, scene: Scene) -> Composed:
    """Words a blank line apart (/help, /start)."""
    return said(data, scene, sep="\n\n")


@answer("list")
def _list(data: Any, scene: Scene) -> Composed:
    """/list: the matters it names, as they are now (the first ``limit``, in its order), of ``count``."""
    shown = [scene.matters[m] for m in data["matters"] if m in scene.matters]
    return listing(scene.tree.name_of(data["node"]), shown, data["count"], scene.tree, scene.t, scene.now,
                   Audience(data["audience"])), None


def listed(matters: list[Matter], now: float, limit: int = 30) -> list[int]:
    """The matters /list shows, in its order: overdue first, then oldest first."""

    def overdue(m: Matter) -> bool:
        return (m.next_due is not None and m.next_due <= now) or m.tier < 3

    return [m.id for m in sorted(matters, key=lambda m: (not overdue(m), m.created_at))[:limit]]


def listing(node_name: str, matters: list[Matter], count: int, tree: Tree, t: Texts, now: float,
            audience: Audience) -> str:
    """/list's words: ``matters`` (already in order) of ``count`` open ones."""
    if not count:
        return t("list.empty", node=escape(node_name))

    def overdue(m: Matter) -> bool:
        return (m.next_due is not None and m.next_due <= now) or m.tier < 3

    lines = [t("list.header", node=escape(node_name), count=count)]
    for m in matters:
        lines.append(
            t(
                "list.item",
                id=m.id,
                state=t(f"state.{m.state}"),
                overdue=t("list.overdue") if overdue(m) else "",
                unit=escape(tree.nodes[m.unit_id].name),
                text=snippet(m.text, 40) if visibility.may_see(Piece.TEXT, audience, m.private) else t("card.private"),
                age=t.duration(now - m.created_at),
            )
            + (t("list.suspended", until=t.date(m.suspended_until)) if m.suspended_until is not None else "")
        )
    if count > len(matters):
        lines.append(t("list.more", count=count - len(matters)))
    return "\n".join(lines)


SHOW_PARTS = 4  # messages queued for a /show; those its text does not need are not sent


@answer("show")
def _show(data: Any, scene: Scene) -> Composed:
    """Part ``part`` of /show N's answer: the matter as it is now, with its timeline (carried
    in ``events``) and what is attached, as ``audience`` may read them; "" past its last part."""
    (number,) = data["matters"]
    matter = scene.matters.get(number)
    if matter is None:
        return "", None
    t = scene.t
    audience = Audience(data["audience"])
    events = [Event(number, *row) for row in data["events"]]
    text = details(matter, events, scene.tree, t, data["attachments"], audience=audience)
    if data.get("attached"):
        text += "\n" + t("show.attachments", items=" · ".join(f"{t(f'attachment.{k}')} {n}"
                                                               for k, n in data["attached"].items()))
    parts = split_message(text.split("\n"))
    return (parts[data["part"]] if data["part"] < len(parts) else ""), None


@answer("categories")
def _categories(data: Any, scene: Scene) -> Composed:
    """A card's buttons become its category list (分类)."""
    (number,) = data["matters"]
    matter = scene.matters.get(number)
    return "", category_buttons(matter, scene.t) if matter is not None else None


@answer("my")
def _my(data: Any, scene: Scene) -> Composed:
    """/my: the asker's matters and where they stand now."""
    t = scene.t
    mine = [scene.matters[m] for m in data["matters"] if m in scene.matters]
    if not mine:
        return t("my.empty"), None
    lines = [t("my.header", count=len(mine))] + [
        t("my.item", id=m.id, state=t(f"state.{m.state}"), unit=escape(scene.tree.name_of(m.unit_id)),
          text=snippet(m.text, 30))
        for m in mine
    ]
    return "\n".join(lines), None


@answer("held")
def _held(data: Any, scene: Scene) -> Composed:
    """/held: the reports held over a limit (carried in ``reports``), each with its 转为事项
    button. What the chat may not read of a private one (handlers/limits.py) is None there."""
    t = scene.t
    lines = [t("limits.held_header", count=len(data["reports"]))]
    rows: Keyboard = []
    for report in data["reports"]:
        flagged = report["membership"] in ("nonmember", "unverified")
        lines.append(t(
            "limits.held_item", id=report["id"], at=t.time(report["at"]),
            unit=escape(scene.tree.name_of(report["unit"])),
            reporter=escape(report["reporter"]) if report["reporter"] is not None else t("limits.held_private"),
            text=snippet(report["text"], 60) if report["text"] is not None else "",
            flag=t(f"limits.flag_{report['membership']}") if flagged else "",
        ))
        rows.append([(t("limits.button_release", id=report["id"]), report["button"])])
    return "\n".join(lines), rows


@answer("duty")
def _duty(data: Any, scene: Scene) -> Composed:
    """/duty: who is on watch now (``now``: [user id, name]) and next (``next``: [user id, name, from])."""
    t = scene.t
    lines = [t("duty.now", who="、".join(mention(u, name) for u, name in data["now"]) or t("duty.nobody"))]
    if data.get("next"):
        user_id, name, start = data["next"]
        lines.append(t("duty.next", who=mention(user_id, name), at=t.time(start)))
    return "\n".join(lines), buttons(data, scene)


SUMMARY_PARTS = 4  # messages queued for a /summary; those its text does not need are not sent


@answer("summary")
def _summary(data: Any, scene: Scene) -> Composed:
    """Part ``part`` of /summary's answer: the node's bulletin (escalation/reports/bulletin.view)
    in the chat's language now; "" past its last part."""
    messages = bulletin.messages(data["bulletin"], scene.tree, scene.t)
    part = data["part"]
    if len(messages) > SUMMARY_PARTS:  # longer than ever seen: its lines shared out over the parts queued
        lines = "\n".join(messages).split("\n")
        text = "\n".join(lines[part * len(lines) // SUMMARY_PARTS : (part + 1) * len(lines) // SUMMARY_PARTS])
        return (text if len(text) <= TELEGRAM_TEXT else text[: TELEGRAM_TEXT - 1] + "…"), None
    return (messages[part] if part < len(messages) else ""), None


# --- visit logs (走访日志, issue 16) --------------------------------------------------------
@composes(Kind.VISIT)
def _visit(data: Any, scene: Scene) -> Composed:
    """A finished visit log entry as its community's group reads it: who, when, which units,
    how many households, what was done, what was found, how many photos (the place follows
    as a Telegram location)."""
    visit, t = data["visit"], scene.t
    units = "、".join(escape(scene.tree.name_of(unit)) for unit in visit["units"]) or "—"
    findings = visit.get("findings")
    lines = [
        t("visit.post_title", id=visit["id"], community=escape(scene.tree.name_of(visit["community"] or ""))),
        t("visit.post_who", who=escape(visit["name"]), at=t.time(visit["at"])),
        t("visit.post_units", units=units),
        t("visit.post_households", count=visit["households"]),
        t("visit.post_deed", text=fit(visit["deed"] or "", 1500)),
        t("visit.post_findings", text=fit(findings, 1500)) if findings else t("visit.post_no_findings"),
        t("visit.post_media", photos=visit["photos"],
          place=t("visit.place_below" if visit.get("located") else "visit.place_none")),
    ]
    return "\n".join(lines), None


