"""One role model (issue 13): bot/roles.py says who someone is at a node and what they may
do there; every role at every node of the test town, and a check that the helpers it
replaced are gone and that handlers and the domain compute no role from the tree."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from bot import broadcasts
from bot.roles import Act, Role, may, role, staff
from bot.tree import Tree
from tests.conftest import (
    HEAD1,
    HEAD2,
    HEAD3,
    POLICE,
    POLICE2,
    RESIDENT,
    RESIDENT2,
    ROOT,
    SECRETARY,
    STAFF,
    parse_town,
    town,
)

SECRETARY2, HEAD4 = 24, 34  # c2's secretary and u4's head (ids only in the test town)
NODES = ("st", "c1", "u1", "u2", "c2", "u3", "u4")
S, P, SE, H, N = Role.STAFF, Role.POLICE, Role.SECRETARY, Role.HEAD, Role.NOBODY

# Who each person is at each node, in NODES' order: the highest post at the node or above.
TABLE: dict[int, tuple[Role, ...]] = {
    STAFF: (S, S, S, S, S, S, S),
    POLICE: (N, P, P, P, N, N, N),
    SECRETARY: (N, SE, SE, SE, N, N, N),
    POLICE2: (N, N, N, N, P, P, P),
    SECRETARY2: (N, N, N, N, SE, SE, SE),
    HEAD1: (N, N, H, N, N, N, N),
    HEAD2: (N, N, N, H, N, N, N),
    HEAD3: (N, N, N, N, N, H, N),
    HEAD4: (N, N, N, N, N, N, H),
    RESIDENT: (N, N, N, N, N, N, N),
}


@pytest.fixture(scope="module")
def tree() -> Tree:
    return Tree(parse_town())


@pytest.mark.parametrize("person", TABLE)
def test_every_role_at_every_node(tree: Tree, person: int) -> None:
    assert tuple(role(tree, person, node) for node in NODES) == TABLE[person]


def test_the_reporter_is_a_role_only_without_a_post(tree: Tree) -> None:
    assert role(tree, RESIDENT, "u1", reporter_id=RESIDENT) == Role.REPORTER
    assert role(tree, RESIDENT2, "u1", reporter_id=RESIDENT) == Role.NOBODY
    assert role(tree, HEAD1, "u1", reporter_id=HEAD1) == Role.HEAD  # a head reporting in their own unit
    assert role(tree, HEAD2, "u1", reporter_id=HEAD2) == Role.REPORTER  # … or in another one
    assert role(tree, STAFF, "u3", reporter_id=STAFF) == Role.STAFF


def test_the_highest_post_anywhere(tree: Tree) -> None:
    """Without a node (/help in private, who the abuse limits spare)."""
    assert [role(tree, p) for p in (STAFF, POLICE, SECRETARY2, HEAD4, RESIDENT)] == [S, P, SE, H, N]


def test_several_posts_the_highest_above_the_node_counts() -> None:
    raw = town()
    c2 = raw["station"]["communities"][1]
    c2["secretaries"] = [HEAD1]  # u1's head is also c2's secretary
    c2["units"][1]["heads"] = [STAFF]  # and station staff head u4
    tree = Tree(parse_town(station=raw["station"]))
    assert [role(tree, HEAD1, node) for node in NODES] == [N, N, H, N, SE, SE, SE]
    assert role(tree, HEAD1) == SE
    assert [role(tree, STAFF, node) for node in NODES] == [S] * len(NODES)
    assert role(tree, SECRETARY2, "u3") == N  # replaced as c2's secretary
    assert role(tree, POLICE, "u1") == P and role(tree, HEAD4, "u4") == N


def test_tiers_are_what_authority_takes(tree: Tree) -> None:
    """``role(…).tier`` is bot/authority.py's actor tier: the highest tier led at or above."""
    assert [r.tier for r in Role] == [1, 2, 2, 3, None, None, None]
    assert [r.leads for r in Role] == [True, True, True, True, False, False, False]
    assert role(tree, POLICE, "u1").tier == 2 and role(tree, POLICE, "u3").tier is None


def test_a_node_gone_from_config_has_no_one(tree: Tree) -> None:
    assert role(tree, STAFF, "gone") == Role.NOBODY
    assert role(tree, RESIDENT, "gone", reporter_id=RESIDENT) == Role.REPORTER
    assert not any(may(tree, STAFF, act, "gone") for act in Act)


LEADS = (Act.WORK, Act.BIND, Act.LANGUAGE, Act.EXPORT, Act.HELD)


@pytest.mark.parametrize("person", TABLE)
def test_what_each_role_may_do_at_each_node(tree: Tree, person: int) -> None:
    for node, who in zip(NODES, TABLE[person], strict=True):
        for act in LEADS:  # any post at the node or above
            assert may(tree, person, act, node) == (who != N), (person, act, node)
        # A notice goes down from a station's or community's group, sent by its leaders.
        assert may(tree, person, Act.BROADCAST, node) == (who != N and node in ("st", "c1", "c2")), (person, node)
        assert may(tree, person, Act.KEEP_WATCH, node) == (person == STAFF), (person, node)


def test_broadcast_and_the_watch_in_words(tree: Tree) -> None:
    assert may(tree, POLICE, Act.BROADCAST, "c1") and not may(tree, POLICE, Act.BROADCAST, "u1")
    assert not may(tree, POLICE, Act.BROADCAST, "st") and not may(tree, HEAD1, Act.BROADCAST, "u1")
    assert may(tree, STAFF, Act.BROADCAST, "c2") and may(tree, STAFF, Act.KEEP_WATCH, "st")
    assert not may(tree, POLICE, Act.KEEP_WATCH, "st")
    assert [p.id for p in staff(tree, tree.stations[0].id)] == [STAFF]


# --- the helpers it replaced are gone, and nobody else computes a role ---------------------
REPLACED = {"leads", "may_act", "leader_tier", "_is_staff", "may_broadcast"}
PRODUCT = ("bot", "handlers", "escalation")


def _sources() -> list[tuple[Path, ast.Module]]:
    files = sorted(p for top in PRODUCT for p in (ROOT / top).rglob("*.py"))
    return [(p, ast.parse(p.read_text(), str(p))) for p in files]


def _name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        return node.name
    return None


def test_the_replaced_helpers_are_gone() -> None:
    from handlers import duty

    assert not any(hasattr(Tree, name) for name in REPLACED)
    assert not hasattr(broadcasts, "may_broadcast") and not hasattr(duty, "_is_staff")
    for path, tree in _sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _name(node.func) == "leads":  # Role.leads is a property
                pytest.fail(f"{path.relative_to(ROOT)}:{node.lineno} calls leads()")
            name = _name(node)
            if name in REPLACED - {"leads"}:
                pytest.fail(f"{path.relative_to(ROOT)}:{node.lineno} uses {name}")


def _iterates_leaders(node: ast.AST) -> bool:
    gens = getattr(node, "generators", [])
    return any(isinstance(g.iter, ast.Attribute) and g.iter.attr == "leaders" for g in gens)


def test_no_one_computes_a_role_from_the_tree() -> None:
    """Handlers read no post of the tree at all; elsewhere, only bot/roles.py and
    bot/tree.py read ``Tree.posts``, and nothing asks "is this id among a node's leaders"
    (``any(p.id == … for p in node.leaders)``, a set of leaders' ids) — they name people."""
    for path, tree in _sources():
        where = path.relative_to(ROOT).as_posix()
        if where in ("bot/roles.py", "bot/tree.py"):
            continue
        for node in ast.walk(tree):
            name = _name(node)
            if where.startswith("handlers/") and name in ("leaders", "posts", "lineage"):
                pytest.fail(f"{where}:{node.lineno}: a handler reads {name}; ask bot/roles.py")
            if name == "posts" and isinstance(node, ast.Attribute):
                pytest.fail(f"{where}:{node.lineno} reads Tree.posts; ask bot/roles.py")
            if isinstance(node, ast.Call) and _name(node.func) in ("any", "all") and node.args:
                node = node.args[0]  # any(p.id == … for p in node.leaders)
            elif not isinstance(node, ast.SetComp | ast.DictComp):  # {p.id for p in node.leaders}
                continue
            if _iterates_leaders(node):
                pytest.fail(f"{where}:{node.lineno} computes who leads; ask bot/roles.py")

