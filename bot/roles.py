"""Who someone is at a node of the tree: the one role model.

A person's role at a node is the highest post they hold at it or above it (config.yaml's
posts): station staff lead the whole town (tier 1), a community's police officer or
secretary its units (tier 2), a unit's head that unit (tier 3); a community's grid worker
holds a post but leads nothing (they log visits). Someone with no post
there is the matter's reporter, if asked about a matter they reported, or nobody.

``role`` answers who someone is; ``may`` what they may do at a node outside one matter
(work its matters, bind a chat to it, …). What a role may do to one matter at the tier
that holds it is bot/authority.py's table, which takes ``role(…).tier``. Handlers, the
domain and bot/visibility.py ask these; none compute a role from the tree themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

from bot.config import Person
from bot.tree import COMMUNITY, STATION, UNIT, Node, Tree


class Role(StrEnum):
    # Highest first: where someone holds several posts above a node, the first one counts.
    STAFF = "staff"  # station staff, its head among them
    POLICE = "police"  # a community's police officer (社区民警)
    SECRETARY = "secretary"  # a community's party secretary (村书记)
    HEAD = "head"  # a unit's head
    # A community's grid worker (网格员): logs visits, leads nothing (no tier). Below a head,
    # so that a head who is also a grid worker keeps leading their unit.
    GRID_WORKER = "grid_worker"
    REPORTER = "reporter"  # the matter's reporter, with no post at or above its unit
    NOBODY = "nobody"  # a resident, a stranger, an anonymous admin or a channel

    @property
    def tier(self) -> int | None:
        """The tier this role leads at, None for no post: what bot/authority.py's ``decide``
        calls the actor's tier."""
        return _TIERS.get(self)

    @property
    def leads(self) -> bool:
        return self.tier is not None


_TIERS = {Role.STAFF: STATION, Role.POLICE: COMMUNITY, Role.SECRETARY: COMMUNITY, Role.HEAD: UNIT}
_RANK = list(Role)


def role(tree: Tree, user_id: int, node_id: str | None = None, *, reporter_id: int | None = None) -> Role:
    """``user_id``'s role at ``node_id``: the highest post they hold at it or above (a node
    gone from config.yaml: none), else REPORTER if they are ``reporter_id``, else NOBODY.
    Without a node: the highest post they hold anywhere in the tree."""
    posts = tree.posts.get(user_id, [])
    if posts and node_id is not None:
        above = {n.id for n in tree.lineage(node_id)}
        posts = [(node, post) for node, post in posts if node in above]
    if posts:
        return min((Role(post) for _, post in posts), key=_RANK.index)
    return Role.REPORTER if user_id == reporter_id else Role.NOBODY


class Act(StrEnum):
    """What someone does at a node besides one action on one matter (bot/authority.py)."""

    WORK = "work"  # work the node's matters at all; read a private one in full, in a private chat
    BIND = "bind"  # make a chat the node's group (/bind)
    LANGUAGE = "language"  # switch the node's group's language (/lang)
    EXPORT = "export"  # take the node's ledger (/export)
    HELD = "held"  # list the reports held over a limit, and turn one into a matter (/held)
    BROADCAST = "broadcast"  # a notice to every unit group below (/broadcast)
    KEEP_WATCH = "keep_watch"  # take or hand over the station's watch (/duty)
    SCREEN = "screen"  # answer a community's weekly screening for disputes (issue 16)
    VISIT = "visit"  # log a visit (/visit) for a community; list a community's or the town's (/visits)


def _leads(who: Role, node: Node) -> bool:
    return who.leads


# What each act asks of the actor's role at the node.
_NEEDS: dict[Act, Callable[[Role, Node], bool]] = {
    Act.WORK: _leads,
    Act.BIND: _leads,
    Act.LANGUAGE: _leads,
    Act.EXPORT: _leads,
    Act.HELD: _leads,
    Act.BROADCAST: lambda who, node: who.leads and node.tier <= COMMUNITY,  # from a station's or community's group
    Act.KEEP_WATCH: lambda who, node: who == Role.STAFF,
    Act.SCREEN: lambda who, node: who.leads and node.tier == COMMUNITY,  # its officers, or the station's staff
    # Its community's officers, secretaries and grid workers, and the station's staff; at
    # the station, its staff (the town's visits).
    Act.VISIT: lambda who, node: node.tier <= COMMUNITY and (who.leads or who == Role.GRID_WORKER),
}


def may(tree: Tree, user_id: int, act: Act, node_id: str) -> bool:
    """Whether ``user_id`` may do ``act`` at ``node_id`` (a node gone from config.yaml: no one)."""
    node = tree.get(node_id)
    return node is not None and _NEEDS[act](role(tree, user_id, node_id), node)


def staff(tree: Tree, station_id: str) -> tuple[Person, ...]:
    """A station's staff: who keeps its watch (/duty names them)."""
    return tree.nodes[station_id].leaders
