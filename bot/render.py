"""Pure functions from matters to what people read: (text, keyboard).

The card's keyboard follows from the matter's state, so a card can be re-rendered and
edited at any moment. Every piece of user text is HTML-escaped here and nowhere else.
"""

from __future__ import annotations

import re
from html import escape, unescape

from bot.config import Person
from bot.i18n import Texts
from bot.storage import Event, Matter
from bot.tree import Tree
from escalation import policy
from escalation.policy import State

# Callback data: a version prefix, an action, a matter id — well under Telegram's 64 bytes.
CALLBACK_VERSION = "v1"
Keyboard = list[list[tuple[str, str]]]  # rows of (label, callback data)

SNIPPET = 300  # how much of a report escalations and lists quote; /show has it all


def callback(action: str, matter_id: int) -> str:
    return f"{CALLBACK_VERSION}:{action}:{matter_id}"


def parse_callback(data: str | None) -> tuple[str, int] | None:
    """``v1:claim:42`` → ("claim", 42); anything else (old, forged) → None."""
    parts = (data or "").split(":")
    if len(parts) != 3 or parts[0] != CALLBACK_VERSION or not parts[2].isdigit():
        return None
    if parts[1] not in ("claim", "resolve"):
        return None
    return parts[1], int(parts[2])


def plain(html_text: str, limit: int = 200) -> str:
    """HTML → plain text, for button toasts (which Telegram shows unformatted)."""
    text = unescape(re.sub(r"<[^>]+>", "", html_text))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def mention(user_id: int, name: str | None) -> str:
    return f'<a href="tg://user?id={user_id}">{escape(name or str(user_id))}</a>'


def people(persons: tuple[Person, ...] | list[Person]) -> str:
    return "、".join(mention(p.id, p.name) for p in persons) or "—"


def snippet(text: str, limit: int = SNIPPET) -> str:
    text = " ".join(text.split()) if len(text) > limit else text
    return escape(text if len(text) <= limit else text[: limit - 1] + "…")


def card(matter: Matter, tree: Tree, t: Texts, attachments: int = 0) -> tuple[str, Keyboard]:
    unit = tree.nodes[matter.unit_id]
    rules = matter.policy_rules
    lines = [
        t("card.title", id=matter.id, unit=escape(unit.name)),
        escape(matter.text),
        "",
        t("card.reporter", reporter=mention(matter.reporter_id, matter.reporter_name)),
        t("card.heads", heads=people(unit.leaders)),
    ]
    if attachments:
        lines.append(t("card.photos", count=attachments))
    if matter.state == State.RESOLVED:
        lines.append(t("card.resolved", who=escape(matter.resolved_by_name or ""), at=t.time(matter.resolved_at or 0)))
        if matter.resolution:
            lines.append(t("card.resolution", text=escape(matter.resolution)))
        return "\n".join(lines), []
    lines.append(t("card.state", state=t(f"state.{matter.state}")))
    if matter.state == State.CLAIMED:
        lines.append(t("card.claimed_by", who=escape(matter.claimed_by_name or "")))
    if matter.tier < 3:
        lines.append(t("card.at_tier", tier=t(f"tier.{matter.tier}")))
    claim_due = policy.claim_due(matter.clock, rules)
    if claim_due is not None:
        lines.append(t("card.claim_due", at=t.time(claim_due)))
    resolve_due = policy.resolve_due(matter.clock, rules)
    if resolve_due is not None:
        lines.append(t("card.resolve_due", at=t.time(resolve_due)))
    return "\n".join(lines), action_buttons(matter, t)


def action_buttons(matter: Matter, t: Texts, takeover: bool = False) -> Keyboard:
    if matter.state == State.RESOLVED:
        return []
    row = []
    if matter.state == State.OPEN:
        row.append((t("button.takeover" if takeover else "button.claim"), callback("claim", matter.id)))
    row.append((t("button.resolve"), callback("resolve", matter.id)))
    return [row]


def escalation(
    matter: Matter, taken: policy.Step, tree: Tree, t: Texts, now: float
) -> tuple[str, Keyboard]:
    """The message a higher tier gets when a matter reaches it, or is still overdue there."""
    unit = tree.nodes[matter.unit_id]
    community = tree.at_tier(matter.unit_id, 2)
    tier_node = tree.at_tier(matter.unit_id, taken.to_tier)
    reason = t(f"reason.{taken.reason}")
    if taken.action == policy.Action.ESCALATE:
        title = t("esc.title", id=matter.id, tier=t(f"tier.{taken.to_tier}"), reason=reason)
    else:
        title = t("esc.reping", id=matter.id, reason=reason, overdue=t.duration(now - taken.overdue_since))
    lines = [
        title,
        t("esc.unit", unit=escape(unit.name), community=escape(community.name)),
        t("esc.reporter", reporter=mention(matter.reporter_id, matter.reporter_name)),
        t("esc.text", text=snippet(matter.text)),
        t("esc.waited", waited=t.duration(now - matter.created_at)),
    ]
    if matter.claimed_by_name and matter.state == State.OPEN:
        lines.append(t("esc.claimed_before", who=escape(matter.claimed_by_name)))
    lines.append(t("esc.leaders", leaders=people(tier_node.leaders)))
    return "\n".join(lines), action_buttons(matter, t, takeover=True)


def matter_list(node_name: str, matters: list[Matter], tree: Tree, t: Texts, now: float, limit: int = 30) -> str:
    """/list: open matters, overdue first, then oldest first."""
    if not matters:
        return t("list.empty", node=escape(node_name))

    def overdue(m: Matter) -> bool:
        return (m.next_due is not None and m.next_due <= now) or m.tier < 3

    ordered = sorted(matters, key=lambda m: (not overdue(m), m.created_at))
    lines = [t("list.header", node=escape(node_name), count=len(matters))]
    for m in ordered[:limit]:
        lines.append(
            t(
                "list.item",
                id=m.id,
                state=t(f"state.{m.state}"),
                overdue=t("list.overdue") if overdue(m) else "",
                unit=escape(tree.nodes[m.unit_id].name),
                text=snippet(m.text, 40),
                age=t.duration(now - m.created_at),
            )
        )
    if len(ordered) > limit:
        lines.append(t("list.more", count=len(ordered) - limit))
    return "\n".join(lines)


def details(matter: Matter, events: list[Event], tree: Tree, t: Texts, attachments: int) -> str:
    """/show N: the card, where it stands, the rules it runs under and its timeline."""
    text, _ = card(matter, tree, t, attachments)
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
    for event in events[-12:]:  # the latest; keeps /show within one message
        what = t(f"event.{event.kind}", tier=t(f"tier.{event.tier}") if event.tier else "")
        actor = f" · {escape(event.actor_name)}" if event.actor_name else ""
        detail = f"：{snippet(event.detail, 100)}" if event.detail else ""
        lines.append(t("event.line", at=t.time(event.at), what=what, actor=actor, detail=detail))
    return "\n".join(lines)
