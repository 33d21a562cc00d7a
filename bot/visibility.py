"""Who may read what of a matter: the one place that decides it (pure; see README, Privacy).

Audiences are the chats a matter can be shown in: the unit group, the community group, the
station group, a leader's private chat with the bot (a head of the matter's unit or a
leader above it) and the reporter's private chat.

Pieces of a matter: the report text, the reporter, the names of those who worked it, its
category, its outcome (resolution or close reason), its attachments, and a leader's words
addressed to the chat being told (an escalation reason, a return instruction).

- An ordinary matter was reported in the unit group: every audience sees every piece.
- A private matter (私下反映): the unit group sees that it exists, its state and the tier
  that holds it — no piece at all, and no timeline. Every other audience sees every piece.

Timeline entries have a level: the lowest tier whose group may read them (3: public).
Reported, claimed, resolved (what was done), closed, withdrawn, rated, … are public. A
person's words written at tier 2 or 1 (notes, escalation and suspension reasons, reopening
reasons) are internal to that tier and above; returns are addressed to the tier they go
to, takeovers belong to the tier that took over. A leader's private chat sees every entry;
the reporter's private chat only public ones, never a return or a takeover.
"""

from __future__ import annotations

from enum import StrEnum

from bot import roles
from bot.store import Event, Matter
from bot.tree import COMMUNITY, STATION, UNIT, Tree


class Audience(StrEnum):
    UNIT = "unit"  # the unit's group
    COMMUNITY = "community"  # the community's group
    STATION = "station"  # the station's group
    LEADER_DM = "leader_dm"  # a private chat with a head of the unit or a leader above it
    REPORTER_DM = "reporter_dm"  # the reporter's private chat


class Piece(StrEnum):
    TEXT = "text"  # what was reported
    REPORTER = "reporter"  # who reported it
    NAMES = "names"  # who claimed, resolved, closed it
    CATEGORY = "category"
    OUTCOME = "outcome"  # the resolution, or the reason it was closed or referred
    ATTACHMENTS = "attachments"
    WORDS = "words"  # a leader's words addressed to this chat: a reason, a return instruction


GROUP_TIER = {Audience.UNIT: UNIT, Audience.COMMUNITY: COMMUNITY, Audience.STATION: STATION}
GROUPS = {tier: audience for audience, tier in GROUP_TIER.items()}
PUBLIC = UNIT  # the level of an entry every chat may read

# Entries that carry a person's words: internal when written at tier 2 or 1.
WORDS_KINDS = frozenset({"note", "suspended", "reopened", "escalated"})
# Entries addressed to a tier (returned: the tier it went to; taken_over: the tier that took it).
ADDRESSED_KINDS = frozenset({"returned", "taken_over"})


# What each audience may NOT read, by (audience, private matter?); anything else it may.
HIDDEN: dict[tuple[Audience, bool], frozenset[Piece]] = {
    (Audience.UNIT, True): frozenset(Piece),
}


def may_see(piece: Piece, audience: Audience, private: bool) -> bool:
    """Whether ``audience`` may read ``piece`` of a matter (private or not)."""
    return piece not in HIDDEN.get((audience, private), frozenset())


def redacted(audience: Audience, private: bool) -> bool:
    """The unit group's view of a private matter: its number, state and tier, nothing else."""
    return private and audience == Audience.UNIT


def writer_tier(tree: Tree, actor_id: int | None, unit_id: str) -> int:
    """The tier a person acts at on this unit's matters: the highest they lead (1 station,
    2 community), else 3 (a unit head, the reporter, a resident)."""
    return (roles.role(tree, actor_id, unit_id).tier if actor_id is not None else None) or UNIT


def entry_level(event: Event, tree: Tree, unit_id: str) -> int:
    """The lowest tier whose group may read this timeline entry (3: every chat)."""
    if event.kind in ADDRESSED_KINDS:
        return event.tier or STATION
    if event.kind not in WORDS_KINDS or event.actor_id is None:  # the sweep writes no one's words
        return PUBLIC
    written = writer_tier(tree, event.actor_id, unit_id)
    if event.kind == "escalated":  # its tier is where it went; it was written one below
        return min(written, (event.tier or STATION) + 1)
    if event.kind == "reopened":  # its tier is where it went (older rows: the lower of that and the writer's)
        return written
    # Older rows hold the matter's tier, newer ones the writer's: the lower of the two.
    return min(written, event.tier or PUBLIC)


def entry_visible(event: Event, matter: Matter, tree: Tree, audience: Audience) -> bool:
    if audience == Audience.LEADER_DM:
        return True
    if redacted(audience, matter.private):
        return False
    level = entry_level(event, tree, matter.unit_id)
    if audience == Audience.REPORTER_DM:
        return level == PUBLIC and event.kind not in ADDRESSED_KINDS
    return GROUP_TIER[audience] <= level


def timeline(events: list[Event], matter: Matter, tree: Tree, audience: Audience) -> list[Event]:
    return [e for e in events if entry_visible(e, matter, tree, audience)]


def of_chat(tree: Tree, chat_id: int, matter: Matter) -> Audience | None:
    """Who reads ``chat_id``: a group of the tree by its tier; a private chat (its id is the
    person's) by who the person is to this matter; None for anyone else. A group outside the
    tree counts as a unit group: the strictest."""
    node = tree.node_for_chat(chat_id)
    if node is not None:
        return GROUPS[node.tier]
    if chat_id < 0:
        return Audience.UNIT
    if roles.may(tree, chat_id, roles.Act.WORK, matter.unit_id):
        return Audience.LEADER_DM
    if chat_id == matter.reporter_id:
        return Audience.REPORTER_DM
    return None
