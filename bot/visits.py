"""Visit logs (走访日志, issue 16): what officers and grid workers do on foot.

An entry is written in a private chat with the bot, one step at a time: which community
(only theirs; skipped when there is one), which units (several), how many households, the
practical thing done (办实事), what was found (optional), then photos and a place, and
完成. Each step is written to the ``visits`` row as it is answered, so an unfinished entry
survives a restart and is resumed by the next /visit or message; 24 h after its last step
the sweep drops it and says so. A finished entry is posted to its community's group, with
the place as a Telegram location after it, in the transaction that finishes it.

Pure rules here (the steps, what each asks, parsing the one-line start); the handlers
(handlers/visits.py) parse updates, ask bot/roles.py, and queue what these build.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from bot import outbox
from bot.outbox import Say, local_time, said, say
from bot.roles import Act, may
from bot.store import Store, Tx, Visit
from bot.tree import Node, Tree

log = logging.getLogger(__name__)

TTL = 24 * 3600.0  # an unfinished entry is dropped this long after its last step
PROMPT = "visit"  # the prompts row's kind while an entry is the conversation in a private chat
MAX_HOUSEHOLDS = 9999
MAX_TEXT = 2000  # characters of a deed or a finding (a matter made of it takes up to 4,000)
# Buttons' data (the renderer's "v1" version, spelled here: the domain imports no renderer).
CALLBACK = "v1:vs:"  # + visit id : action [: argument]
SPOT_CHECK = "v1:vp:"  # + visit id: send its photos again (抽查)

# The steps, in order; "done" once finished, "converted" once its finding became a matter.
COMMUNITY, UNITS, HOUSEHOLDS, DEED, FINDINGS, MEDIA = "community", "units", "households", "deed", "findings", "media"
DONE, CONVERTED = "done", "converted"
ORDER = (COMMUNITY, UNITS, HOUSEHOLDS, DEED, FINDINGS, MEDIA)

# "/visit 5户 帮王大爷代缴水费", "/visit 5 户 …", "/visit 5户帮…"
_ONE_LINE = re.compile(r"^\s*(\d{1,6})(?:\s*户|\s)\s*(.*)$", re.DOTALL)  # 户 or a space: not "3月"


def callback(visit_id: int, action: str, arg: str = "") -> str:
    return f"{CALLBACK}{visit_id}:{action}" + (f":{arg}" if arg else "")


def parse_callback(data: str | None) -> tuple[int, str, str] | None:
    """``v1:vs:12:u:u1`` → (12, "u", "u1"); anything else → None."""
    parts = (data or "").removeprefix(CALLBACK).split(":", 2)
    if not (data or "").startswith(CALLBACK) or len(parts) < 2 or not parts[0].isdecimal() or len(parts[0]) > 9:
        return None
    return int(parts[0]), parts[1], parts[2] if len(parts) == 3 else ""


def communities_for(tree: Tree, user_id: int) -> list[Node]:
    """The communities this person may log visits for (bot/roles.py's Act.VISIT)."""
    return [c for c in tree.communities() if may(tree, user_id, Act.VISIT, c.id)]


def parse_households(text: str) -> int | None:
    """"5", "5户", "５ 户" → 5; anything else (or 0, or past 9999) → None."""
    match = re.fullmatch(r"\s*(\d{1,6})\s*户?\s*", text)
    if match is None:
        return None
    count = int(match.group(1))
    return count if 0 < count <= MAX_HOUSEHOLDS else None


def parse_one_line(text: str) -> tuple[int, str] | None:
    """``5户 帮王大爷代缴水费`` → (5, "帮王大爷代缴水费"); None when it is not that shape."""
    match = _ONE_LINE.match(text)
    if match is None or not match.group(2).strip():
        return None
    count = int(match.group(1))
    return (count, match.group(2).strip()[:MAX_TEXT]) if 0 < count <= MAX_HOUSEHOLDS else None


def following(visit: Visit, answered: str) -> str:
    """The step after ``answered``, past those already filled (the one-line start fills the
    households and the deed). Photos and the place are optional: the media step is the last."""
    for step in ORDER[ORDER.index(answered) + 1 :]:
        if (step == HOUSEHOLDS and visit.households is not None) or (step == DEED and visit.deed is not None):
            continue
        return step
    return MEDIA


def _discard_row(visit_id: int) -> list[tuple[Say | str, str]]:
    return [(say("visit.button_discard"), callback(visit_id, "x"))]


def question(visit: Visit, tree: Tree, communities: list[Node] | None = None) -> dict[str, Any]:
    """The words and buttons that ask the entry's next step."""
    step = visit.step
    vid = visit.id
    if step == COMMUNITY:
        rows: list[list[tuple[Say | str, str]]] = [[(c.name, callback(vid, "c", c.id))] for c in communities or []]
        return said(say("visit.ask_community"), buttons=[*rows, _discard_row(vid)])
    if step == UNITS:
        community = tree.nodes.get(visit.community_id or "")
        units = [tree.nodes[u] for u in community.children if u in tree.nodes] if community else []
        labels = [(("✅ " if u.id in visit.units else "") + u.name, callback(vid, "u", u.id)) for u in units]
        rows = [labels[i : i + 2] for i in range(0, len(labels), 2)]
        parts = [say("visit.ask_units", community=community.name if community else "")]
        if visit.units:
            parts.append(say("visit.units_chosen", units=unit_names(tree, visit.units)))
        return said(*parts, buttons=[*rows, [(say("visit.button_next"), callback(vid, "n"))], _discard_row(vid)])
    if step == HOUSEHOLDS:
        return said(say("visit.ask_households"), buttons=[_discard_row(vid)])
    if step == DEED:
        return said(say("visit.ask_deed"), buttons=[_discard_row(vid)])
    if step == FINDINGS:
        return said(say("visit.ask_findings"),
                    buttons=[[(say("visit.button_none"), callback(vid, "f"))], _discard_row(vid)])
    return said(say("visit.ask_media", photos=visit.photos,
                    place=say("visit.place_yes" if visit.latitude is not None else "visit.place_no")),
                buttons=[[(say("visit.button_done"), callback(vid, "d"))], _discard_row(vid)])


def unit_names(tree: Tree, unit_ids: list[str]) -> str:
    return "、".join(tree.name_of(u) for u in unit_ids)


def entry(visit: Visit) -> dict[str, Any]:
    """What a finished entry's post is composed from (bot/text/render.py's Kind.VISIT)."""
    return {"visit": {
        "id": visit.id, "name": visit.user_name, "at": visit.finished_at or visit.updated_at,
        "community": visit.community_id, "units": visit.units, "households": visit.households,
        "deed": visit.deed, "findings": visit.findings, "photos": visit.photos,
        "located": visit.latitude is not None,
    }}


def finished_answer(visit: Visit, private: bool = True) -> dict[str, Any]:
    """What the one who finished an entry reads: it is posted; a finding can become a
    matter (转为事项), private unless toggled."""
    parts = [say("visit.finished", id=visit.id)]
    if not visit.findings or visit.step == CONVERTED:
        return said(*parts)
    mode = "p" if private else "g"
    parts.append(say("visit.convert_hint", mode=say("visit.mode_private" if private else "visit.mode_public")))
    return said(*parts, buttons=[
        [(say("visit.button_convert"), callback(visit.id, "m", mode))],
        [(say("visit.button_make_public" if private else "visit.button_make_private"),
          callback(visit.id, "t", "g" if private else "p"))],
    ])


def unit_choice(visit: Visit, tree: Tree, mode: str) -> dict[str, Any]:
    """转为事项 from a visit of several units: in which one."""
    return said(say("visit.convert_which"),
                buttons=[[(tree.name_of(u), callback(visit.id, "k", mode + u))] for u in visit.units])


async def finish(tx: Tx, tree: Tree, visit: Visit, now: float) -> Visit:
    """完成: the entry is finished, posted to its community's group with its place after it."""
    await tx.update_visit(visit.id, now, step=DONE, finished_at=now)
    done = await tx.visit(visit.id)
    assert done is not None
    chat = tree.chat_of(done.community_id or "")
    if chat is not None:
        notices: list[outbox.Notice] = [outbox.VisitPost(done.id, chat, entry(done))]
        if done.latitude is not None and done.longitude is not None:
            notices.append(outbox.VisitPlace(done.id, chat, done.latitude, done.longitude))
        await outbox.put(tx, *notices, now=now)
    tx.log_event("visit_finished", visit=done.id, node=done.community_id, photos=done.photos)
    return done


async def expire(store: Store, now: float) -> int:
    """The sweep: drop entries left unfinished 24 h after their last step, each with a note
    to the one writing it. Returns how many were dropped."""
    dropped = 0
    async with store.read() as tx:  # most sweeps find none: no write transaction for them
        stale = await tx.stale_visits(now - TTL)
    if not stale:
        return 0
    async with store.transaction() as tx:
        for visit in stale:  # each re-checked in the transaction: one finished meanwhile stays
            if await tx.drop_visit(visit.id, before=now - TTL):
                await tx.take_prompt(visit.chat_id, visit.user_id, 0.0)
                await outbox.put(tx, outbox.VisitNote(visit.id, "dropped", visit.chat_id, said(
                    say("visit.dropped", started=local_time(visit.started_at), photos=visit.photos))), now=now)
                dropped += 1
    if dropped:
        log.info("%d unfinished visit log entr(y/ies) dropped after 24 h", dropped)
    return dropped


@dataclass(frozen=True)
class Listed:
    """/visits: the entries of a period, by the one who wrote them."""

    name: str
    user_id: int
    visits: list[Visit]

    @property
    def households(self) -> int:
        return sum(v.households or 0 for v in self.visits)

    @property
    def findings(self) -> int:
        return sum(1 for v in self.visits if v.findings)


def by_person(visits: list[Visit]) -> list[Listed]:
    """Entries grouped by who wrote them, most visits first."""
    groups: dict[int, list[Visit]] = {}
    for v in visits:
        groups.setdefault(v.user_id, []).append(v)
    listed = [Listed(vs[-1].user_name, uid, vs) for uid, vs in groups.items()]
    return sorted(listed, key=lambda g: (-len(g.visits), g.name))
