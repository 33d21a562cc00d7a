"""A matter's notices carry data and are composed when they are sent (issue 13), and a unit
group gets fewer messages per matter (issue 14): reactions for a head's commands, 👀 on a
claimed report, one message per outcome for the reporter."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from bot.dev.fakeapi import buttons
from tests.conftest import HEAD1, RESIDENT, ROOT, U1_CHAT, Running, parse_town, town
from tests.postgres import rows
from tests.test_privacy import report_privately, start_dm

pytestmark = pytest.mark.both_engines  # on SQLite and on PostgreSQL (issue 17)


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_matters_decides_who_hears_what_and_composes_no_words() -> None:
    """bot/matters.py imports neither the catalog (bot.text.i18n, the locales) nor the renderer."""
    imported = _imports(ROOT / "bot" / "matters.py")
    assert not {name for name in imported if name == "bot.text" or name.startswith("bot.text.")}, imported


async def test_a_heads_card_copy_is_composed_from_the_matter_as_it_is_when_sent(make_bot: Any) -> None:
    """A private matter's card copy that waited (the head's chat answered 500) shows the
    claim made meanwhile: it is composed when it goes out, not when it was queued."""
    async with make_bot() as bot:
        await start_dm(bot, HEAD1)
        bot.api.fail("sendMessage", chat_id=HEAD1, status=500)
        await report_privately(bot, 1)
        await bot.api.wait_for(lambda: any(c.params.get("chat_id") == HEAD1 and c.status == 500
                                           for c in bot.api.calls_to("sendMessage")))
        bot.say(U1_CHAT, HEAD1, "/claim 1")
        await bot.wait_bot(U1_CHAT, "处理中")
        bot.clock.advance(5)  # the copy's retry falls due
        copy = await bot.wait_bot(HEAD1, "#1")
        assert "🛠 处理中" in copy.text and "认领人：" in copy.text, copy.text


# --- fewer messages in a unit group (issue 14) ---------------------------------------------
async def _report(bot: Running, text: str = "楼道堆放杂物，有消防隐患") -> tuple[dict[str, Any], Any]:
    """A resident reports in the unit group: their message and the card answering it."""
    sent = bot.say(U1_CHAT, RESIDENT, f"/report {text}")
    card = await bot.api.wait_for(
        lambda: next((m for m in bot.api.bot_messages(U1_CHAT) if m.reply_to == sent["message_id"]), None))
    return sent, card


async def test_a_heads_commands_are_acknowledged_with_a_reaction_not_a_message(make_bot: Any) -> None:
    """/claim, /note, /resolve, /close and /refer: 👍 on the command, the card edited, and no
    new message in the group besides the reporter's one outcome message."""
    async with make_bot() as bot:
        report, card = await _report(bot)
        await bot.done(U1_CHAT, bot.say(U1_CHAT, HEAD1, "/claim 1"))
        # The reporter sees 👀 on their report: someone is on it.
        await bot.api.wait_for(lambda: bot.api.reactions(U1_CHAT, report["message_id"]) == ["👀"])
        await bot.api.wait_for(lambda: "处理中" in (card.text or ""))
        await bot.done(U1_CHAT, bot.say(U1_CHAT, HEAD1, "/note 1 已上门了解"))
        await bot.settle()
        assert [m.message_id for m in bot.api.bot_messages(U1_CHAT)] == [card.message_id], "only the card so far"
        second, _ = await _report(bot, "井盖丢了")
        third, _ = await _report(bot, "拖欠工资")
        await bot.done(U1_CHAT, bot.say(U1_CHAT, HEAD1, "/close 2 双方拒绝调解"))
        await bot.done(U1_CHAT, bot.say(U1_CHAT, HEAD1, "/refer 3 已引导至劳动监察大队"))
        await bot.settle()
        texts = bot.bot_texts(U1_CHAT)
        # Three cards and the reporter told once per outcome, with the reason and no buttons.
        assert len(texts) == 5, texts
        closed = next(m for m in bot.api.bot_messages(U1_CHAT) if "认定本级无法解决：双方拒绝调解" in (m.text or ""))
        referred = next(m for m in bot.api.bot_messages(U1_CHAT) if "转交：已引导至劳动监察大队" in (m.text or ""))
        assert not buttons(closed) and not buttons(referred)
        assert (closed.reply_to, referred.reply_to) == (second["message_id"], third["message_id"])
        assert not any(c.params.get("chat_id") == U1_CHAT and "已认领事项" in str(c.params.get("text"))
                       for c in bot.api.calls_to("sendMessage"))


async def test_a_group_that_disallows_reactions_gets_the_short_reply_instead(make_bot: Any) -> None:
    """Telegram answers 400 REACTION_INVALID: today's short answer goes under the command, in
    the language of the person who gave it; the 👀 on a report has no stand-in."""
    async with make_bot() as bot:
        bot.api.disallow_reactions(U1_CHAT)
        report, _ = await _report(bot)
        claim = bot.say(U1_CHAT, HEAD1, "/claim 1")
        answer = await bot.wait_bot(U1_CHAT, "已认领事项 #1")
        assert answer.reply_to == claim["message_id"]
        english = bot.api.send_text(U1_CHAT, bot.api.user(HEAD1, "蒋建国", language_code="en"), "/note 1 on my way")
        noted = await bot.wait_bot(U1_CHAT, "Progress noted on matter #1.")
        assert noted.reply_to == english["message_id"]
        await bot.settle()
        assert bot.api.reactions(U1_CHAT, report["message_id"]) == []
        assert len(bot.api.bot_messages(U1_CHAT)) == 3  # the card and the two answers
        keys = [key for (key,) in await rows(bot.config.database, "SELECT key FROM outbox WHERE kind = 'answer'")]
        assert len(keys) == 2 and all(key.startswith("ack:") for key in keys)  # as a command's answer always was


async def test_the_reporter_hears_of_a_claim_only_if_the_town_asks_for_it(make_bot: Any) -> None:
    assert parse_town().notify.reporter_on_claim is False
    async with make_bot(town(notify={"reporter_on_claim": True})) as bot:
        report, _ = await _report(bot)
        await bot.done(U1_CHAT, bot.say(U1_CHAT, HEAD1, "/claim 1"))
        told = await bot.wait_bot(U1_CHAT, "已由 用户31 认领，正在处理")
        assert told.reply_to == report["message_id"]
        await bot.api.wait_for(lambda: bot.api.reactions(U1_CHAT, report["message_id"]) == ["👀"])


async def test_a_resolve_tells_the_reporter_once_with_the_rating_buttons_and_the_thanks_edit_it(
    make_bot: Any,
) -> None:
    """report → claim → resolve → rate: the unit group gets the card and one message (goal:
    at most 3); the rating's thanks edits that message; the resolution is rated once."""
    async with make_bot() as bot:
        report, card = await _report(bot)
        bot.api.press_button(U1_CHAT, bot.user(HEAD1, "蒋建国"), card.message_id, "v1:claim:1")
        await bot.api.wait_for(lambda: bot.api.reactions(U1_CHAT, report["message_id"]) == ["👀"])
        await bot.done(U1_CHAT, bot.say(U1_CHAT, HEAD1, "/resolve 1 已上门清理"))
        told = await bot.wait_bot(U1_CHAT, "已由 用户31 解决：已上门清理")
        assert "请评价处理结果（3天内有效）" in told.text and told.reply_to == report["message_id"]
        assert [label for label, _ in buttons(told)] == ["满意", "基本满意", "不满意"]
        bot.api.press_button(U1_CHAT, bot.user(RESIDENT), told.message_id, "v1:rate:1:satisfied")
        await bot.api.wait_for(lambda: "感谢您的评价：满意" in (told.text or ""))
        await bot.settle()
        assert len(bot.api.bot_messages(U1_CHAT)) == 2, bot.bot_texts(U1_CHAT)
        bot.api.press_button(U1_CHAT, bot.user(RESIDENT), told.message_id, "v1:rate:1:basic")
        await bot.api.wait_for(lambda: any(a.get("show_alert") for a in bot.api.callback_answers))
        async with bot.svc.store.read() as tx:
            assert [e.kind for e in await tx.events(1)].count("rated") == 1
