"""A matter's notices carry data and are composed when they are sent (issue 13), and a unit
group gets fewer messages per matter (issue 14): reactions for a head's commands, 👀 on a
claimed report, one message per outcome for the reporter."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from tests.conftest import HEAD1, ROOT, U1_CHAT
from tests.test_privacy import report_privately, start_dm


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
