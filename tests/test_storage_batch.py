"""The batch writes the sweep uses behave like their one-at-a-time versions."""

from __future__ import annotations

from pathlib import Path

from bot.storage import Event, Outgoing, Store


async def _matter(store: Store) -> int:
    async with store.transaction() as tx:
        return await tx.insert_matter(
            unit_id="u1", chat_id=-1, reporter_id=9, reporter_name="r", text="t", state="open", tier=3,
            top_tier=3, tier_since=0.0, next_due=10.0, rules="{}", created_at=0.0,
        )


async def test_batched_events_get_the_ids_sqlite_would_give(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "db.sqlite3")
    try:
        matter_id = await _matter(store)
        async with store.transaction() as tx:
            first = await tx.add_event(matter_id, 1.0, "reported")
            ids = await tx.add_events([Event(matter_id, 2.0, None, None, "escalated", 2, "a"),
                                       Event(matter_id, 3.0, None, None, "reping", 1, "b")])
            after = await tx.add_event(matter_id, 4.0, "note")
        assert ids == [first + 1, first + 2] and after == first + 3
        async with store.read() as tx:
            assert [e.kind for e in await tx.events(matter_id)] == ["reported", "escalated", "reping", "note"]
    finally:
        await store.close()


async def test_enqueue_many_ignores_keys_already_queued(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "db.sqlite3")
    told: list[bool] = []
    store.on_enqueue = lambda: told.append(True)
    try:
        async with store.transaction() as tx:
            assert await tx.enqueue("k1", -1, 1.0, text="one")
        async with store.transaction() as tx:
            new = await tx.enqueue_many([Outgoing("k1", -1, 2.0, text="again"),
                                         Outgoing("k2", -1, 2.0, text="two", markup=[[("b", "v1:claim:1")]])])
        assert new == 1 and told == [True, True]
        async with store.transaction() as tx:
            assert await tx.enqueue_many([Outgoing("k2", -1, 3.0, text="two")]) == 0
        assert told == [True, True]  # nothing new: the delivery worker is not woken
        async with store.read() as tx:
            due = await tx.outbox_due(10.0)
        assert [(i.key, i.text, i.markup) for i in due] == [
            ("k1", "one", None), ("k2", "two", '[[["b", "v1:claim:1"]]]'),
        ]
    finally:
        await store.close()


async def test_update_matters_applies_each_set_of_columns(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "db.sqlite3")
    try:
        a, b = await _matter(store), await _matter(store)
        async with store.transaction() as tx:
            await tx.update_matters([(a, {"next_due": 20.0}), (b, {"tier": 2, "next_due": None})])
            ma, mb = await tx.matter(a), await tx.matter(b)
        assert ma is not None and (ma.tier, ma.next_due) == (3, 20.0)
        assert mb is not None and (mb.tier, mb.next_due) == (2, None)
    finally:
        await store.close()
