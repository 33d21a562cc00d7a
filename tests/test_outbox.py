"""The typed way out (bot/outbox.py): notices, their keys, delivery by kind, settlement hooks,
and that nothing else writes to the outbox or talks to Telegram."""

from __future__ import annotations

import ast
import dataclasses
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from bot import outbox
from bot.outbox import Kind
from bot.store import OutboxItem, Tx
from bot.text.locale import en
from tests.conftest import HEAD1, RESIDENT, ROOT, STAFF, STATION_CHAT, U1_CHAT, U2_CHAT, U3_CHAT
from tests.postgres import rows

pytestmark = pytest.mark.both_engines  # on SQLite and on PostgreSQL (issue 17)


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
        (outbox.OpsNotice("conflict", 77, 1000.7, -1), "ops.conflict:77:1000:-1", Kind.OPS),
        (outbox.BulletinPart("weekly:2026-W48", "c1", 0, -5, {"node": "c1"}, 2), "weekly:2026-W48:c1:0", Kind.BULLETIN),
        (outbox.Chart.of_bulletin("weekly:2026-W48", "c1", -5, {"node": "c1"}), "weekly:2026-W48:c1:chart", Kind.CHART),
        (outbox.Chart.of_summary(-5, 31, {"node": "c1"}), "summary:-5:31", Kind.CHART),
        (outbox.ShownAttachment(900, 1, -5, "photo", "ph", {}), "reply:900:a1", Kind.PHOTO),
        (outbox.EditText(900, -5, 12, {}), "edit:900:12", Kind.EDIT_TEXT),
        (outbox.EditKeyboard(900, -5, 12, {}), "keyboard:900:12", Kind.EDIT_KEYBOARD),
        (outbox.Document(900, -5, "a.xlsx", b"", {}), "document:900", Kind.DOCUMENT),
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


async def test_a_broadcast_queued_by_the_old_version_is_still_reported_after_the_upgrade(make_bot: Any) -> None:
    """A copy written as kind "message" (as before) and sent after the upgrade still
    settles its broadcast: the hook is found by the row's kind as read from its key."""
    async with make_bot() as bot:
        bot.api.fail("sendMessage", chat_id=U3_CHAT, status=500)  # retried later (the clock stands still)
        bot.say(STATION_CHAT, STAFF, "/broadcast 今晚有暴雨，请注意防汛")
        await bot.wait_bot(U1_CHAT, "今晚有暴雨")
        await bot.wait_bot(U2_CHAT, "今晚有暴雨")
        await bot.settle()
        database = bot.config.database
    changed = await rows(database,  # what the version before typed notices wrote
                         "UPDATE outbox SET kind = 'message' WHERE key LIKE 'bc:%' AND state = 'pending' RETURNING id")
    assert len(changed) == 1
    async with make_bot() as bot:  # the same database
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
        assert seen == [(f"ops.conflict:1:5:{STATION_CHAT}", True)]
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


# Handlers that may import the catalog, and why. (Outside the handlers, tests/test_composed.py
# checks the rest of bot/ and escalation/.)
CATALOG_IN_HANDLERS = {
    "handlers/language.py": "which languages there are, to read /lang's argument",
}


def _imports_catalog(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        if any(name.startswith(("bot.text.i18n", "bot.text.locale")) for name in names):
            return True
    return False


def test_no_handler_imports_the_catalog() -> None:
    """Words are composed in one place, bot/text/render.py, when a notice is sent (issue 13).
    A handler allowed otherwise says why; an allowance no longer needed is taken back."""
    importers = {str(path.relative_to(ROOT)) for path in sorted((ROOT / "handlers").glob("*.py"))
                 if _imports_catalog(path)}
    assert importers == set(CATALOG_IN_HANDLERS)


# What handlers may use of the renderer: no words, only callback data, links, limits and a toast.
RENDER_FOR_HANDLERS = {"CALLBACK_VERSION", "URL_PREFIX", "parse_callback", "private_link", "listed", "toast",
                       "SHOW_PARTS", "SHOW_EVENTS", "SUMMARY_PARTS", "broadcast_fits"}


# Handlers' functions that may hold a language's words, and why.
WORDS_IN_HANDLERS = {
    ("handlers/reports.py", "export"): "the ledger file's own headings (a file; its caption is data)",
}


def test_handlers_queue_what_their_answers_are_made_of_not_words() -> None:
    """A handler's answers carry data, never text (the notices it queues have no text to
    give), and no handler words anything: no catalog lookup, no renderer function that
    composes. The one exception: a photo sent alone is reported as "(photo)", which is the
    matter's own text in the database, not a message."""
    for notice in (outbox.Reply, outbox.EditText, outbox.EditKeyboard, outbox.Document, outbox.ShownAttachment):
        fields = {f.name for f in dataclasses.fields(notice)}
        assert "data" in fields and not fields & {"text", "caption"}, notice
    offenders = []
    for path in sorted((ROOT / "handlers").glob("*.py")):
        module = ast.parse(path.read_text(encoding="utf-8"))
        allowed = {id(n) for f in ast.walk(module)
                   if isinstance(f, ast.AsyncFunctionDef | ast.FunctionDef)
                   and (str(path.relative_to(ROOT)), f.name) in WORDS_IN_HANDLERS for n in ast.walk(f)}
        for node in ast.walk(module):
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "render" \
                    and node.attr not in RENDER_FOR_HANDLERS:
                offenders.append(f"{where} render.{node.attr}")
            if isinstance(node, ast.ImportFrom) and node.module == "bot.text.render":
                offenders += [f"{where} {a.name}" for a in node.names if a.name not in RENDER_FOR_HANDLERS]
            if isinstance(node, ast.Name) and node.id in ("texts_for", "Texts", "t") and id(node) not in allowed:
                offenders.append(f"{where} {node.id}")
            if isinstance(node, ast.Call) and (isinstance(node.func, ast.Call) or (
                    isinstance(node.func, ast.Attribute) and node.func.attr == "texts")):  # langs.for_user(…)(key)
                key = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else None
                if key != "report.photo_only":
                    offenders.append(f"{where} a catalog lookup")
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


def test_a_replys_key_is_made_of_its_update_and_its_data() -> None:
    """A replayed update builds the same answers, hence the same keys: none is queued twice.
    Two different answers to one update are two keys."""
    first = outbox.Reply(900, -5, outbox.said(outbox.say("err.no_matter", id=7)), 12)
    again = outbox.Reply(900, -5, outbox.said(outbox.say("err.no_matter", id=7)), 12)
    other = outbox.Reply(900, -5, outbox.said(outbox.say("err.no_matter", id=8)), 12)
    assert first.key == again.key and first.key.startswith("reply:900:") and other.key != first.key
    row = first.row(1.0)
    assert row[4] is None and row[8] is not None and '"err.no_matter"' in row[8], "words, not text"
    shown = {"answer": "show", "matters": [7], "part": 0}
    assert outbox.Reply(900, -5, shown).key != outbox.Reply(900, -5, {**shown, "part": 1}).key


async def test_an_answer_is_worded_when_it_is_sent_from_the_matters_as_they_are_then(make_bot: Any) -> None:
    """/list's answer is queued as the matters it names: held up by Telegram while the chat
    switches to English and the matter is claimed, it goes out in English, as claimed."""
    async with make_bot() as bot:
        bot.say(U1_CHAT, RESIDENT, "/report 楼道堆放杂物")
        await bot.wait_bot(U1_CHAT, "楼道堆放杂物")
        await bot.settle()
        bot.api.fail("sendMessage", chat_id=U1_CHAT, status=500)
        bot.say(U1_CHAT, HEAD1, "/list")
        await bot.settle()
        assert bot.count_bot(U1_CHAT, "未结事项") == 0, "not sent yet"
        bot.say(U1_CHAT, HEAD1, "/lang en")
        bot.say(U1_CHAT, HEAD1, "/claim 1")
        await bot.settle()
        bot.clock.advance(5)
        listed = await bot.wait_bot(U1_CHAT, "open matter(s)")
        assert "#1 🛠 in progress" in listed.text and "待认领" not in listed.text


async def test_a_show_answer_sends_only_the_parts_its_text_needs(make_bot: Any) -> None:
    async with make_bot() as bot:
        bot.say(U1_CHAT, RESIDENT, "/report 楼道堆放杂物")
        await bot.wait_bot(U1_CHAT, "楼道堆放杂物")
        before = len(bot.api.bot_messages(U1_CHAT))
        bot.say(U1_CHAT, HEAD1, "/show 1")
        await bot.wait_bot(U1_CHAT, "时间线")
        await bot.settle()
        assert len(bot.api.bot_messages(U1_CHAT)) == before + 1
        async with bot.svc.store.read() as tx:
            assert await tx.outbox_due(bot.clock.now() + 1e9, limit=5) == [], "the parts not needed are done with"


async def test_an_apology_the_database_will_not_take_is_worded_and_sent_at_once(
    make_bot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the outbox itself fails, the handler's apology cannot wait for it: it is worded
    from the same data, in the asker's language, and sent directly."""
    async with make_bot() as bot:
        async def broken(self: Tx, rows: list[tuple], *args: Any, **kwargs: Any) -> None:
            raise sqlite3.OperationalError("disk I/O error")

        monkeypatch.setattr(Tx, "outbox_insert", broken)
        bot.api.send_text(U1_CHAT, bot.api.user(HEAD1, "组长", language_code="en"), "/list")
        await bot.wait_bot(U1_CHAT, en.MESSAGES["err.internal"])


async def test_an_answer_keeps_nothing_its_chat_may_not_read(make_bot: Any) -> None:
    """/held in a unit group about a private report: the outbox keeps neither its text nor
    who sent it (not only the message leaves them out)."""
    from tests.test_review import SECRET, held_private_report, start_dm, town

    async with make_bot(town(limits={"private_nonmember_per_day": 1})) as bot:
        await start_dm(bot, HEAD1)
        await held_private_report(bot)
        bot.say(U1_CHAT, HEAD1, "/held")
        await bot.wait_bot(U1_CHAT, "暂存的反映 1 条")
        [(data,)] = await rows(bot.config.database,
                               "SELECT data FROM outbox WHERE chat_id = ? AND data LIKE '%\"held\"%'", (U1_CHAT,))
        assert SECRET not in data and "用户901" not in data and "nonmember" not in data
