"""The typed way out (bot/outbox.py): notices, their keys, delivery by kind, settlement hooks,
and that nothing else writes to the outbox or talks to Telegram."""

from __future__ import annotations

import ast
import sqlite3
from pathlib import Path
from typing import Any

from bot import outbox
from bot.outbox import Kind
from bot.store import OutboxItem
from tests.conftest import HEAD1, ROOT, STAFF, STATION_CHAT, U1_CHAT, U2_CHAT, U3_CHAT


def test_each_notice_builds_the_key_the_outbox_has_always_held() -> None:
    """Keys are what makes a retry queue nothing twice; an outbox written by the version
    before the notices were typed must be matched by the same keys."""
    ping = outbox.Ping("ping", -5, ((7, 3), (8, 4)), {})
    cases: list[tuple[outbox.Notice, str, Kind]] = [
        (outbox.Card(7, -5, "e3"), "card:7:e3", Kind.CARD),
        (outbox.Card(7, -5, "new", 12), "card:7:new", Kind.CARD),
        (outbox.CardCopy(7, 42), "dmcard:7:42", Kind.CARD_COPY),
        (outbox.Receipt(7, 42, {}), "receipt:7", Kind.RECEIPT),
        (outbox.ReporterNotice(7, 3, -5, {}), "reporter:7:e3", Kind.REPORTER),
        (outbox.UrgentAlert(7, -5, {}), "urgent110:7", Kind.URGENT),
        (outbox.Unsatisfied(7, 3, -5, 3), "unsatisfied:7:e3", Kind.UNSATISFIED),
        (outbox.Unsatisfied(7, 3, -5, 3, per_chat=True), "unsatisfied:7:e3:-5", Kind.UNSATISFIED),
        (outbox.UnsatisfiedWhy(7, 3, -5, {}), "why:7:e3:-5", Kind.WHY),
        (outbox.Outcome(7, 3, -5, {}), "outcome:7:e3:-5", Kind.OUTCOME),
        (outbox.Instruction(7, 3, 42, ("returned", 3, "returned", None)), "instruct:7:e3:42", Kind.INSTRUCTION),
        (outbox.RatingRequest(7, 3, -5, {}), "rate:7:e3", Kind.RATING),
        (ping, "ping:-5:7e3,8e4", Kind.PING),
        (outbox.Mentions(ping, 50, ((21, "王警官"),)), "ping:-5:7e3,8e4:m50", Kind.MENTIONS),
        (outbox.Attachment(ping, 8, 1, "voice", "v1"), "ping:-5:7e3,8e4:8:a1", Kind.VOICE),
        (outbox.PingCopy(ping, 42), "dm:42:ping:-5:7e3,8e4", Kind.PING_COPY),
        (outbox.ViewRefresh("dm:42:ping:-5:7e3,8e4", 42, "e9"), "view:dm:42:ping:-5:7e3,8e4:e9", Kind.VIEW),
        (outbox.CommandAnswer(900, -5, {}), "ack:900", Kind.ANSWER),
        (outbox.HeldNotice(4, -5, "hourly", 901, "居民", 5, 1000.0), "held:4", Kind.HELD),
        (outbox.Reaction("u900", -5, 12, "👍"), "reaction:u900", Kind.REACTION),
        (outbox.BroadcastCopy(2, -5, "c1", "…", "ph"), "bc:2:-5", Kind.BROADCAST),
        (outbox.BroadcastQueued(2, -1, 20), "bca:2", Kind.BROADCAST_QUEUED),
        (outbox.BroadcastReport(2, -1, 42, "王警官", 19, ("u2",)), "bcr:2", Kind.BROADCAST_REPORT),
        (outbox.UnreachableNotice(-5, 1000.7, -1, "c1"), "unreachable:-5:1000", Kind.UNREACHABLE),
        (outbox.OpsNotice("conflict", 77, 1000.7, -1), "ops.conflict:77:1000", Kind.OPS),
        (outbox.BulletinPart("weekly:2026-W48", "c1", 0, -5, {"node": "c1"}, 2), "weekly:2026-W48:c1:0", Kind.BULLETIN),
        (outbox.Chart.of_bulletin("weekly:2026-W48", "c1", -5, {"node": "c1"}), "weekly:2026-W48:c1:chart", Kind.CHART),
        (outbox.Chart.of_summary(-5, 31, "…", {}), "summary:-5:31", Kind.CHART),
    ]
    for notice, key, kind in cases:
        row = notice.row(1.0)
        assert (notice.key, notice.kind, row[0], row[1], row[2]) == (key, kind, key, notice.chat, kind.value)
    assert outbox.Mentions(ping, 50, ()).row(1.0)[3] == 7, "a ping's follow-up belongs to its first matter"
    assert outbox.ViewRefresh("ping:-5:7e3", -5, "e9").row(1.0)[9:] == (2.0, 1.0), "a view's refresh waits a second"


def test_rows_written_before_the_kinds_were_typed_are_read_by_their_key() -> None:
    def item(kind: str, key: str) -> OutboxItem:
        return OutboxItem(1, key, -5, kind, None, "…", None, None, 0)

    assert outbox.kind_of(item("message", "bc:3:-5")) == Kind.BROADCAST
    assert outbox.kind_of(item("photo", "bc:3:-5")) == Kind.BROADCAST
    assert outbox.kind_of(item("photo", "ping:-5:7e3:7:a0")) == Kind.PHOTO
    assert outbox.kind_of(item("message", "reporter:7:e3")) == Kind.MESSAGE
    assert outbox.kind_of(item("chart", "summary:-5:31")) == Kind.CHART


async def test_a_broadcast_queued_by_the_old_version_is_still_reported_after_the_upgrade(
    make_bot: Any, tmp_path: Path
) -> None:
    """A copy written as kind "message" (as before) and sent after the upgrade still
    settles its broadcast: the hook is found by the row's kind as read from its key."""
    database = tmp_path / "old.sqlite3"
    async with make_bot(database=database) as bot:
        bot.api.fail("sendMessage", chat_id=U3_CHAT, status=500)  # retried later (the clock stands still)
        bot.say(STATION_CHAT, STAFF, "/broadcast 今晚有暴雨，请注意防汛")
        await bot.wait_bot(U1_CHAT, "今晚有暴雨")
        await bot.wait_bot(U2_CHAT, "今晚有暴雨")
        await bot.settle()
    with sqlite3.connect(database) as conn:  # what the version before typed notices wrote
        changed = conn.execute("UPDATE outbox SET kind = 'message' WHERE key LIKE 'bc:%' AND state = 'pending'")
        assert changed.rowcount == 1
    async with make_bot(database=database) as bot:
        report = await bot.wait_bot(STATION_CHAT, "已发送完毕")
        assert "送达 3 个群，未送达 0 个" in report.text


async def test_a_kinds_settlement_hook_runs_in_the_transaction_that_records_its_outcome(make_bot: Any) -> None:
    """Delivery knows no broadcast: it calls whatever hook was registered for the kind,
    with the key of the item that reached its last outcome."""
    async with make_bot() as bot:
        seen: list[tuple[str | None, bool]] = []

        async def hook(tx: Any, tree: Any, langs: Any, now: float, *, key: str | None = None,
                       chat_id: int | None = None) -> None:
            seen.append((key, tx is not None))

        bot.svc.delivery.settle[Kind.OPS] = hook
        async with bot.svc.store.transaction() as tx:
            await outbox.put(tx, outbox.OpsNotice("conflict", 1, 5.0, STATION_CHAT), now=bot.clock.now())
        await bot.wait_bot(STATION_CHAT, "另有一个程序")
        await bot.settle()
        assert seen == [("ops.conflict:1:5", True)]
        async with bot.svc.store.read() as tx:
            assert await tx.outbox_due(bot.clock.now() + 1e9, limit=5) == []


# --- one way out, checked on the source --------------------------------------------------
PRODUCT = [p for folder in ("bot", "escalation", "handlers") for p in sorted((ROOT / folder).rglob("*.py"))]
SENDS = {
    "send_message", "send_photo", "send_voice", "send_location", "send_document", "send_media_group",
    "edit_message_text", "edit_message_reply_markup", "edit_message_caption", "set_message_reaction",
    "forward_message", "copy_message", "delete_message", "reply_text", "reply_photo", "reply_document",
    "reply_html", "edit_text", "edit_reply_markup", "set_reaction",
}


def _calls(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        (node.func.attr, node.lineno)
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    ]


def test_only_put_writes_to_the_outbox() -> None:
    """No module queues a row by hand: every notice is typed and goes through outbox.put."""
    offenders = [
        f"{path.relative_to(ROOT)}:{line} {name}"
        for path in PRODUCT if path.name not in ("outbox.py", "queries.py")
        for name, line in _calls(path) if name in ("outbox_insert", "enqueue", "enqueue_cards")
    ]
    assert offenders == []


def test_the_delivery_worker_knows_no_broadcast_and_kinds_are_not_literals() -> None:
    source = (ROOT / "bot" / "telegram" / "delivery.py").read_text(encoding="utf-8")
    imported = {alias.name for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ImportFrom)
                for alias in node.names} | {node.module for node in ast.walk(ast.parse(source))
                                            if isinstance(node, ast.ImportFrom)}
    assert "broadcasts" not in imported and "bot.broadcasts" not in imported
    literals = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path in PRODUCT if path.name not in ("outbox.py", "fakeapi.py")  # the fake API is Telegram's side
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Compare)
        and any(isinstance(c, ast.Constant) and c.value in {"chart", "card", "photo"} for c in node.comparators)
    ]
    assert literals == [], "compare with a Kind, not its value"


def test_nothing_but_the_delivery_worker_sends_edits_or_reacts() -> None:
    """Handlers, the domain and the reports send, edit and react only through the outbox:
    only the delivery worker calls those methods of the Bot (or of a Message, which calls
    the Bot). Handlers may still answer a button (answerCallbackQuery) directly."""
    allowed = {"delivery.py", "fakeapi.py", "demo.py"}  # the fake API is Telegram's side; the demo drives it
    offenders = [
        f"{path.relative_to(ROOT)}:{line} {name}"
        for path in PRODUCT if path.name not in allowed
        for name, line in _calls(path) if name in SENDS
    ]
    assert offenders == []


async def test_a_command_answer_is_queued_with_its_update_and_survives_a_failed_send(make_bot: Any) -> None:
    """/list's answer is an outbox row written in the transaction that marks its update
    done; a send Telegram fails is retried like any other, not lost with the handler."""
    async with make_bot() as bot:
        bot.api.fail("sendMessage", chat_id=U1_CHAT, status=500)
        sent = bot.say(U1_CHAT, HEAD1, "/list")
        await bot.settle()
        assert bot.api.bot_messages(U1_CHAT) == []
        async with bot.svc.store.read() as tx:
            (item,) = await tx.outbox_due(bot.clock.now() + 1e9, limit=5)
            update_id = int(item.key.split(":")[1])  # reply:<update>:<its words' digest>
            assert await tx.inbox_is_done(update_id)
        assert (item.kind, item.chat_id, item.reply_to) == ("reply", U1_CHAT, sent["message_id"])
        bot.clock.advance(5)
        answer = await bot.wait_bot(U1_CHAT, "")
        assert answer.reply_to == sent["message_id"] and answer.text


def test_a_notice_carries_what_its_words_are_made_of_and_is_composed_when_sent() -> None:
    """A notice keeps the renderer's input, not text: its words are composed at send time,
    in the language of the chat it goes to, with a person's text escaped there."""
    from zoneinfo import ZoneInfo

    from bot.text import render
    from bot.text.i18n import Texts

    notice = outbox.UnreachableNotice(-5, 1000.0, -1, "<b>蒋母塘村</b>")
    row = notice.row(1.0)
    assert row[4] is None, "no text is kept: it is composed when sent"
    data = notice.data
    tz = ZoneInfo("Asia/Shanghai")
    zh = render.compose(Kind.UNREACHABLE, data, render.Scene(None, Texts("zh", tz), 0.0, -1))  # type: ignore[arg-type]
    en = render.compose(Kind.UNREACHABLE, data, render.Scene(None, Texts("en", tz), 0.0, -1))  # type: ignore[arg-type]
    assert zh[0].startswith("⚠️ 无法向 &lt;b&gt;蒋母塘村&lt;/b&gt; 的群（ID -5）") and zh[1] is None
    assert en[0].startswith("⚠️ Cannot send to &lt;b&gt;蒋母塘村&lt;/b&gt;'s group (id -5)")
    nested = outbox.said(outbox.say("unreachable", node=outbox.say("dur.s", n=3), chat_id=outbox.duration(60)),
                         buttons=[[(outbox.say("dur.s", n=1), "v1:x:1")]])
    text, buttons = render.compose("anything", nested, render.Scene(None, Texts("en", tz), 0.0, -1))  # type: ignore[arg-type]
    assert "Cannot send to 3 s's group (id 1 min)" in text and buttons == [[("1 s", "v1:x:1")]]
