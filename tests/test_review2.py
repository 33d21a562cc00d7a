"""Review of what landed for issues 13, 14 and 16: each test here failed on the code before
its fix (see the commit that adds it)."""

from __future__ import annotations

import copy
from typing import Any

from tests.conftest import C1_CHAT, HEAD1, POLICE, RESIDENT
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


async def test_a_forged_press_of_the_officers_buttons_on_another_message_changes_nothing(make_bot: Any) -> None:
    """A client may send any callback data with any of the bot's messages: 发布/不发 of one
    community's notice, or its screening's 零报告, pressed on the other community's message,
    must not decide it (nor rewrite a message of that chat by the pressed one's id)."""
    from tests.conftest import C2_CHAT, STAFF
    from tests.test_screening import THURSDAY_18
    from tests.test_village_notice import DRAFT, FRIDAY_16, ON, _buttons

    async with make_bot(ON) as bot:
        bot.clock.set(THURSDAY_18 + 1)
        ask1 = await bot.wait_bot(C1_CHAT, "本周矛盾纠纷排查")
        ask2 = await bot.wait_bot(C2_CHAT, "本周矛盾纠纷排查")
        bot.clock.set(FRIDAY_16 + 1)
        draft1 = await bot.wait_bot(C1_CHAT, DRAFT)
        draft2 = await bot.wait_bot(C2_CHAT, DRAFT)
        chief = bot.user(STAFF, "陈所长")  # may decide both communities' notices
        skip1 = next(d for d in _buttons(draft1) if d.startswith("vn:skip:"))
        zero1 = next(d for d in _buttons(ask1) if d.startswith("sc:zero:"))
        bot.api.press_button(C2_CHAT, chief, draft2.message_id, skip1)
        bot.api.press_button(C2_CHAT, chief, ask2.message_id, zero1)
        await bot.api.wait_for(lambda: len(bot.api.calls_to("answerCallbackQuery")) == 2 or None)
        await bot.settle()
        async with bot.svc.store.read() as tx:
            notice = await tx.village_notice(int(skip1.split(":")[2]))
            screening = await tx.screening(int(zero1.split(":")[2]))
        assert notice is not None and notice.state == "draft"
        assert screening is not None and screening.state == "asked"
        assert not bot.api.calls_to("editMessageText")


def test_the_demos_community_post_shows_the_station_holds_the_matter() -> None:
    """`tierbot demo` printed its transcript before the community's post had followed matter
    #2 up to the station: a first reader saw it still 社区负责, with its buttons."""
    import os
    import re

    from tests.test_wording import tierbot

    done = tierbot("demo", env={**os.environ})
    assert done.returncode == 0, done.stderr
    community = re.search(r"== 蒋母塘村 \(.*?\n(.*?)\n\n== ", done.stdout, flags=re.S)
    assert community is not None, done.stdout
    post = next(block for block in community.group(1).split("\n[") if "事项 #2 上报至社区" in block)
    assert "📍 当前：⏳ 待认领 · 派出所负责" in post, post


async def test_a_units_name_on_the_screenings_button_is_shown_as_written(make_bot: Any) -> None:
    """Button labels are plain text to Telegram: a name escaped for HTML showed `&amp;`."""
    from tests.test_screening import ON, THURSDAY_18
    from tests.test_screening import _buttons as data_of

    raw = copy.deepcopy(ON)
    raw["station"]["communities"][0]["units"][0]["name"] = "A&B <商铺>"
    async with make_bot(raw) as bot:
        bot.clock.set(THURSDAY_18 + 1)
        ask = await bot.wait_bot(C1_CHAT, "本周矛盾纠纷排查")
        bot.api.press_button(C1_CHAT, bot.user(POLICE, "王警官"), ask.message_id, data_of(ask)[1])
        chooser = await bot.wait_bot(C1_CHAT, "在哪个单元")
        labels = [b["text"] for row in chooser.reply_markup["inline_keyboard"] for b in row]
        assert labels[0] == "A&B <商铺>", labels


async def test_the_rating_thanks_keeps_the_resolution_it_answers(make_bot: Any) -> None:
    """The rating's thanks edited the reporter's one message down to "感谢您的评价": a private
    reporter lost the only word they had of how their matter was resolved."""
    async with make_bot(dm_town()) as bot:
        await _private_report(bot)
        await bot.wait_bot(C1_CHAT, "私下反映的事项 #1")
        act(bot, C1_CHAT, (POLICE, "王警官"), "/resolve 1 已上门调解，双方签订协议")
        told = await bot.wait_bot(RESIDENT, "签订协议")
        assert "请评价处理结果" in told.text
        bot.api.press_button(RESIDENT, bot.user(RESIDENT, "王芳"), told.message_id, "v1:rate:1:satisfied")
        await bot.api.wait_for(lambda: "感谢您的评价：满意" in (told.text or ""))
        assert "已上门调解，双方签订协议" in told.text and "请评价处理结果" not in told.text
        assert not told.reply_markup or not told.reply_markup.get("inline_keyboard")


def test_config_yamls_commented_notice_closing_is_under_notice() -> None:
    """config.yaml showed `# closing: …` under `screening:` (a merge put it there): an operator
    uncommenting it got a config error instead of the notice's closing line."""
    import yaml

    from bot.config import parse_config
    from tests.conftest import ROOT

    text = (ROOT / "config.yaml").read_text(encoding="utf-8")
    assert "  # closing:" in text
    raw = yaml.safe_load(text.replace("  # closing:", "  closing:"))
    assert parse_config(raw).notice.closing


async def test_a_screening_findings_words_go_with_the_personal_data_they_became(make_bot: Any) -> None:
    """retention.personal_data cleared a matter's text but kept it, word for word, in the
    screening finding it was made from, and a finding put on record kept its words for good."""
    from bot import retention
    from bot.store.schema import PURGED
    from tests.conftest import HEAD2, U2_CHAT
    from tests.test_screening import ON, THURSDAY_18
    from tests.test_screening import _buttons as data_of

    async def finding(bot: Any, police: dict[str, Any], unit: int, words: str) -> Any:
        ask = next(m for m in bot.api.bot_messages(C1_CHAT) if "本周矛盾纠纷排查" in (m.text or ""))
        choosers = bot.count_bot(C1_CHAT, "在哪个单元")
        bot.api.press_button(C1_CHAT, police, ask.message_id, data_of(ask)[-1])
        await bot.api.wait_for(lambda: bot.count_bot(C1_CHAT, "在哪个单元") == choosers + 1 or None)
        chooser = [m for m in bot.api.bot_messages(C1_CHAT) if "在哪个单元" in (m.text or "")][-1]
        bot.api.press_button(C1_CHAT, police, chooser.message_id, data_of(chooser)[unit])
        prompts = [m for m in bot.api.bot_messages(C1_CHAT) if "发现的矛盾纠纷（" in (m.text or "")]
        await bot.api.wait_for(lambda: len([m for m in bot.api.bot_messages(C1_CHAT)
                                            if "发现的矛盾纠纷（" in (m.text or "")]) > len(prompts) or None)
        prompt = [m for m in bot.api.bot_messages(C1_CHAT) if "发现的矛盾纠纷（" in (m.text or "")][-1]
        bot.say(C1_CHAT, POLICE, words, reply_to_message_id=prompt.message_id)
        return await bot.wait_bot(C1_CHAT, words)

    async with make_bot(ON) as bot:
        bot.clock.set(THURSDAY_18 + 1)
        await bot.wait_bot(C1_CHAT, "本周矛盾纠纷排查")
        police = bot.user(POLICE, "王警官")
        card = await finding(bot, police, 1, "张家儿子长期殴打老人")
        bot.api.press_button(C1_CHAT, police, card.message_id, data_of(card)[0])  # 转为事项
        await matter_is(bot, 1, lambda m: m.private)
        card2 = await finding(bot, police, 0, "两户为停车位争吵")
        bot.api.press_button(C1_CHAT, police, card2.message_id, data_of(card2)[1])  # 已化解
        act(bot, U2_CHAT, (HEAD2, "周明"), "/resolve 1 已调解")
        await matter_is(bot, 1, lambda m: m.state == "resolved")
        await bot.settle()
        await retention.purge(bot.svc.store, bot.clock.now() + 1, bot.clock.now())
        async with bot.svc.store.read() as tx:
            matter, first, second = await tx.matter(1), await tx.finding(1), await tx.finding(2)
        assert matter is not None and matter.text == PURGED
        assert first is not None and first.text == PURGED
        assert second is not None and second.text == PURGED


def test_the_repository_tracks_no_virtualenv() -> None:
    """A merge committed .venv as a symlink to /work/main/.venv ('.venv/' in .gitignore
    matches only a directory): a fresh clone's `make` found a dangling .venv and stopped."""
    import shutil
    import subprocess

    import pytest

    from tests.conftest import ROOT

    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = subprocess.run(["git", "ls-files", "--", ".venv"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert tracked.stdout == ""
    ignored = subprocess.run(["git", "check-ignore", "--no-index", "-q", ".venv"], cwd=ROOT)
    assert ignored.returncode == 0, ".venv (a directory or a symlink) is ignored"
