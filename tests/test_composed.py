"""Issue 13: bot/text/render.py is the only place that turns a notice into words. Outside the
handlers (checked with them), no module of the bot or of the escalation imports the catalog
or the renderer to compose a message, but those listed here, each for its reason; and the
notices converted so far are composed in the chat's language when they are sent."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from bot import runner
from tests.conftest import ROOT, STAFF, STATION_CHAT

WORDS = {"bot.text.i18n", "bot.text.render", "bot.text.locale", "bot.text.locale.zh", "bot.text.locale.en"}

# Who may import the catalog or the renderer, and why.
ALLOWED = {
    "bot/text/render.py": "the renderer itself",
    "bot/text/i18n.py": "the catalog itself",
    "bot/telegram/delivery.py": "composes each notice as it sends it, in the chat's language",
    "bot/app.py": "builds the languages and hands the renderer's bulletin words to the sweep",
    "bot/services.py": "holds the languages for the handlers (typed)",
    "bot/telegram/menus.py": "setMyCommands at start, called directly (issue 13 allows it): its own words",
    "bot/ops.py": "`tierbot status` prints to the terminal, not to Telegram",
    "bot/cli.py": "the command line prints to the terminal, not to Telegram",
    "bot/dev/demo.py": "the demo narrates to the terminal",
    "escalation/reports/bulletin.py": "the bulletins' text functions: the renderer's helpers, called when sent",
    "escalation/reports/ledger.py": "the ledger file's words (a document, not a message)",
    "escalation/summary.py": "reads the rating labels the timeline recorded (parsing, not composing)",
}


def imports_words(path: Path) -> set[str]:
    """The catalog and renderer modules ``path`` imports, at any depth of its code."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
            found |= names & WORDS
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names} & WORDS
    return found


def test_only_the_renderer_and_its_helpers_import_the_catalog_or_the_renderer() -> None:
    modules = [p for folder in ("bot", "escalation") for p in sorted((ROOT / folder).rglob("*.py"))]
    offenders = {
        str(path.relative_to(ROOT)): sorted(found)
        for path in modules if (found := imports_words(path)) and str(path.relative_to(ROOT)) not in ALLOWED
    }
    assert offenders == {}, "compose words in bot/text/render.py, when the notice is sent"
    for name in ("bot/broadcasts.py", "escalation/reports/service.py", "escalation/weekly.py", "bot/runner.py",
                 "escalation/sweep.py"):
        assert name not in ALLOWED and (ROOT / name).is_file()


def test_the_check_sees_every_way_of_importing(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    for line, expected in [("from bot.text import render", {"bot.text.render"}),
                           ("from bot.text.i18n import Texts", {"bot.text.i18n"}),
                           ("def f():\n    import bot.text.render", {"bot.text.render"}),
                           ("from bot.text.locale import zh", {"bot.text.locale", "bot.text.locale.zh"}),
                           ("from bot.text import something_else", set())]:
        source.write_text(line)
        assert imports_words(source) == expected, line


async def test_the_operators_notice_is_composed_in_the_stations_language_when_sent(make_bot: Any) -> None:
    """Another process polls with this token: the station is told in the language its chat
    reads when the notice goes out, not when it was queued."""
    async with make_bot() as bot:
        bot.api.fail("sendMessage", chat_id=STATION_CHAT, status=500)
        await runner.tell_station_of_conflict(bot.app)
        async with bot.svc.store.read() as tx:
            (row,) = await tx.outbox_due(bot.clock.now() + 1e9, limit=5)
        assert row.text is None and row.data
        bot.say(STATION_CHAT, STAFF, "/lang en")
        await bot.settle()
        bot.clock.advance(5)
        notice = await bot.wait_bot(STATION_CHAT, "Another program is receiving this bot's messages")
        assert "Telegram answered 409 Conflict" in notice.text
        assert bot.count_bot(STATION_CHAT, "另有一个程序") == 0
