"""The town as a tree: station (tier 1) → communities (tier 2) → units (tier 3); a city is
several such trees, one per station (issue 17).

Built once from the config; plain data with lookups, no I/O. Chat bindings made at run
time with /bind are kept in the database and laid over the config's chat ids.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from bot.config import Config, DutyShift, Person

STATION, COMMUNITY, UNIT = 1, 2, 3


@dataclass(frozen=True)
class Node:
    id: str
    name: str
    tier: int
    kind: str | None
    parent_id: str | None
    config_chat_id: int | None
    leaders: tuple[Person, ...]
    children: tuple[str, ...] = field(default=())


class Tree:
    def __init__(self, config: Config) -> None:
        nodes: dict[str, Node] = {}
        posts: list[tuple[int, str, str]] = []
        self.grid_workers: dict[str, tuple[Person, ...]] = {}
        # A city has several stations (issue 17); each is a tree of its own, ids unique city-wide.
        for st in config.stations:
            for community in st.communities:
                for unit in community.units:
                    nodes[unit.id] = Node(
                        unit.id, unit.name, UNIT, unit.kind.value, community.id, unit.chat_id,
                        tuple(unit.heads),
                    )
                nodes[community.id] = Node(
                    community.id, community.name, COMMUNITY, community.kind.value, st.id,
                    community.chat_id, tuple(community.police) + tuple(community.secretaries),
                    tuple(u.id for u in community.units),
                )
            nodes[st.id] = Node(
                st.id, st.name, STATION, None, None, st.chat_id, tuple(st.staff),
                tuple(c.id for c in st.communities),
            )
            # Who holds which post where, as config.yaml says (bot/roles.py reads it):
            # user id → (node id, "staff" | "police" | "secretary" | "grid_worker" | "head").
            posts += [(p.id, st.id, "staff") for p in st.staff]
            for community in st.communities:
                posts += [(p.id, community.id, "police") for p in community.police]
                posts += [(p.id, community.id, "secretary") for p in community.secretaries]
                posts += [(p.id, community.id, "grid_worker") for p in community.grid_workers]
                posts += [(p.id, unit.id, "head") for unit in community.units for p in unit.heads]
            # Grid workers are no node's leaders: kept apart, for their names.
            self.grid_workers.update({c.id: tuple(c.grid_workers) for c in st.communities})
        self.nodes = nodes
        self.stations: list[Node] = [nodes[st.id] for st in config.stations]
        # Each station's own duty roster (a town's top-level duty: is its one station's).
        self.duty: dict[str, list[DutyShift]] = {st.id: list(st.duty) for st in config.stations}
        self.posts: dict[int, list[tuple[str, str]]] = {}
        for user_id, node_id, post in posts:
            self.posts.setdefault(user_id, []).append((node_id, post))
        self._bound: dict[int, str] = {}
        self._chat_of: dict[str, int] = {}
        self.set_bindings({})

    def station_of(self, node_id: str) -> Node | None:
        """The station a unit, community or station belongs to (None: gone from config.yaml)."""
        lineage = self.lineage(node_id)
        return lineage[-1] if lineage else None

    def station_nodes(self, station_id: str) -> list[str]:
        """The ids of a station and of every node under it."""
        station = self.nodes[station_id]
        return [station_id, *(x for c in station.children for x in (c, *self.nodes[c].children))]

    def staff_station(self, user_id: int) -> Node | None:
        """The (first) station whose staff ``user_id`` is: theirs in a private chat."""
        return next((self.nodes[n] for n, post in self.posts.get(user_id, ()) if post == "staff"), None)

    # --- chats ---------------------------------------------------------------------
    def set_bindings(self, bindings: dict[int, str]) -> None:
        """Chat → node bindings from the database, laid over the config's chat ids."""
        chat_of = {n.id: n.config_chat_id for n in self.nodes.values() if n.config_chat_id}
        for chat_id, node_id in bindings.items():
            if node_id in self.nodes:
                chat_of[node_id] = chat_id
        self._chat_of = chat_of
        self._bound = {chat: node for node, chat in chat_of.items()}

    def node_for_chat(self, chat_id: int) -> Node | None:
        node_id = self._bound.get(chat_id)
        return self.nodes[node_id] if node_id else None

    def chat_of(self, node_id: str) -> int | None:
        return self._chat_of.get(node_id)

    # --- structure -----------------------------------------------------------------
    def get(self, node_id: str) -> Node | None:
        return self.nodes.get(node_id)

    def lineage(self, node_id: str) -> list[Node]:
        """The node and its ancestors, bottom up: unit, community, station."""
        out: list[Node] = []
        current: str | None = node_id if node_id in self.nodes else None  # gone from config: no one
        while current is not None:
            node = self.nodes[current]
            out.append(node)
            current = node.parent_id
        return out

    def at_tier(self, unit_id: str, tier: int) -> Node:
        """The node responsible for a unit's matter at ``tier``."""
        return next(n for n in self.lineage(unit_id) if n.tier == tier)

    def name_of(self, node_id: str) -> str:
        """A node's name; a node since removed from config.yaml shows its id."""
        node = self.nodes.get(node_id)
        return node.name if node else node_id

    def contains(self, ancestor_id: str, node_id: str) -> bool:
        return any(n.id == ancestor_id for n in self.lineage(node_id))

    def units_under(self, node_id: str) -> list[Node]:
        node = self.nodes[node_id]
        if node.tier == UNIT:
            return [node]
        return [u for child in node.children for u in self.units_under(child)]

    def units(self) -> Iterator[Node]:
        return (n for n in self.nodes.values() if n.tier == UNIT)

    def communities(self) -> Iterator[Node]:
        return (n for n in self.nodes.values() if n.tier == COMMUNITY)

    # --- people (who may do what: bot/roles.py) -----------------------------------
    def person_name(self, user_id: int) -> str | None:
        for node in self.nodes.values():
            for person in (*node.leaders, *self.grid_workers.get(node.id, ())):
                if person.id == user_id and person.name:
                    return person.name
        return None
