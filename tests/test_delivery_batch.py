"""The delivery worker reads a batch's cards once and records what it sent together; a
card posted early in a batch is edited, not posted again, by a later item of the batch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.clock import ManualClock
from bot.delivery import Delivery
from bot.i18n import Texts
from bot.storage import Store
from bot.tree import Tree
from tests.conftest import START, U1_CHAT, U2_CHAT, parse_town


@dataclass
class _Message:
    chat_id: int
    message_id: int


class RecordingBot:
    """Stands in for PTB's Bot: records sends and edits, never touches a network."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, int | None]] = []
        self._next = 100

    async def send_message(self, chat_id: int, text: str, **kwargs: Any) -> _Message:
        self._next += 1
        self.calls.append(("send", chat_id, None))
        return _Message(chat_id, self._next)

    async def edit_message_text(self, text: str, *, chat_id: int, message_id: int, **kwargs: Any) -> None:
        self.calls.append(("edit", chat_id, message_id))


async def test_one_batch_posts_each_card_once_and_edits_it_after(tmp_path: Path) -> None:
    config = parse_town()
    store = await Store.open(tmp_path / "db.sqlite3")
    clock = ManualClock(START)
    bot = RecordingBot()
    delivery = Delivery(bot, store, Tree(config), Texts("zh", config.tz), clock)  # type: ignore[arg-type]
    try:
        ids = []
        async with store.transaction() as tx:
            for chat, unit in ((U1_CHAT, "u1"), (U2_CHAT, "u2")):
                matter_id = await tx.insert_matter(
                    unit_id=unit, chat_id=chat, report_message_id=7, reporter_id=901, reporter_name="王芳",
                    text="楼道灯坏了", state="open", tier=3, top_tier=3, tier_since=START, next_due=START + 3600,
                    rules='{"tiers":{"3":[3600,86400],"2":[7200,172800],"1":[10800,259200]},"repeat":21600}',
                    created_at=START,
                )
                ids.append(matter_id)
                await tx.enqueue(f"card:{matter_id}:new", chat, START, kind="card", matter_id=matter_id, reply_to=7)
                await tx.enqueue(f"card:{matter_id}:e1", chat, START, kind="card", matter_id=matter_id)
        assert await delivery.deliver_due() == 4
        for chat in (U1_CHAT, U2_CHAT):
            assert [kind for kind, c, _ in bot.calls if c == chat] == ["send", "edit"]
        async with store.read() as tx:
            assert await tx.outbox_due(START + 1e9) == []  # everything recorded as sent
            for matter_id, chat in zip(ids, (U1_CHAT, U2_CHAT), strict=True):
                matter = await tx.matter(matter_id)
                assert matter is not None and matter.card_chat_id == chat
                assert ("edit", chat, matter.card_message_id) in bot.calls
    finally:
        await store.close()
