"""Review of what landed for issues 13, 14 and 16: each test here failed on the code before
its fix (see the commit that adds it)."""

from __future__ import annotations

import copy
from typing import Any

from tests.conftest import C1_CHAT, HEAD1, POLICE, RESIDENT, U1_CHAT
from tests.test_views import act, dm_town, followed, matter_is, start_dm

SECRET = "丈夫酒后打人，请不要在群里说"


async def _private_report(bot: Any) -> None:
    bot.api.add_chat(RESIDENT, None, "private")
    bot.api.send_text(RESIDENT, bot.user(RESIDENT, "王芳"), "/start p_u1")
    await bot.wait_bot(RESIDENT, "私下反映")
    bot.api.send_text(RESIDENT, bot.user(RESIDENT, "王芳"), SECRET)


async def test_a_head_taken_off_the_unit_no_longer_reads_its_private_matter_in_the_dm_copy(
    make_bot: Any, tmp_path: Any
) -> None:
    """A head's DM card of a private matter follows the matter; once config.yaml no longer
    names them a head (moved away), the refresh must not bring them its resolution."""
    raw = dm_town()
    async with make_bot(raw) as bot:
        await start_dm(bot, HEAD1)
        await _private_report(bot)
        head_card = await bot.wait_bot(HEAD1, SECRET)
        clock = bot.clock
    moved = copy.deepcopy(raw)
    moved["station"]["communities"][0]["units"][0]["heads"] = [{"id": 35, "name": "新组长"}]
    async with make_bot(moved, clock=clock) as bot:
        act(bot, C1_CHAT, (POLICE, "王警官"), "/resolve 1 已上门调解，双方签订协议")
        await matter_is(bot, 1, lambda m: m.state == "resolved")
        await followed(bot)
        await bot.settle()
        seen = "\n".join(str(c.params.get("text") or "") for c in bot.api.calls if c.params.get("chat_id") == HEAD1)
        assert "签订协议" not in seen, "the resolution reached a former head"
        assert "签订协议" not in (head_card.text or "")
        assert U1_CHAT
