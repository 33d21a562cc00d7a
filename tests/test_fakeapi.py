"""Tests for bot.dev.fakeapi, driven by the real python-telegram-bot client."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from telegram import Bot, BotCommand, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    Conflict,
    EndPointNotFound,
    Forbidden,
    NetworkError,
    RetryAfter,
)
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
)

from bot.dev.fakeapi import FakeBotApi

pytestmark = pytest.mark.asyncio

TOKEN = "123:TEST"
GROUP = -1001


@pytest_asyncio.fixture
async def api() -> AsyncIterator[FakeBotApi]:
    async with FakeBotApi() as server:
        server.add_chat(GROUP, "张家村第一组")
        yield server


@pytest_asyncio.fixture
async def bot(api: FakeBotApi) -> AsyncIterator[Bot]:
    async with Bot(TOKEN, base_url=api.base_url, base_file_url=api.base_file_url) as client:
        yield client


@contextlib.asynccontextmanager
async def running_app(api: FakeBotApi, *handlers: object) -> AsyncIterator[Application]:
    app = (ApplicationBuilder().token(TOKEN).base_url(api.base_url)
           .base_file_url(api.base_file_url).build())
    for handler in handlers:
        app.add_handler(handler)  # type: ignore[arg-type]
    await app.initialize()
    assert app.updater is not None
    await app.updater.start_polling(poll_interval=0, timeout=1)
    await app.start()
    try:
        yield app
    finally:
        await app.updater.stop()
        await app.stop()
        await app.shutdown()


async def echo_start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.message is not None
    await update.message.reply_text("你好 " + " ".join(context.args or []))


async def test_command_reply_round_trip(api: FakeBotApi) -> None:
    wang = api.user(501, "王芳", "wangfang")
    async with running_app(api, CommandHandler("start", echo_start)):
        sent = api.send_text(GROUP, wang, "/start@tierbot_demo_bot hi")
        assert sent["entities"] == [{"type": "bot_command", "offset": 0, "length": 23}]
        reply = (await api.wait_for(lambda: api.bot_messages(GROUP)))[0]
    assert reply.text == "你好 hi"
    assert reply.reply_to == sent["message_id"] == 1
    assert reply.message_id == 2
    assert [m.from_bot for m in api.messages(GROUP)] == [False, True]
    methods = [c.method for c in api.calls]
    assert {"getMe", "deleteWebhook", "getUpdates", "sendMessage"} <= set(methods)
    assert "王芳: /start@tierbot_demo_bot hi" in api.transcript()


async def test_button_press_and_callback_answer(api: FakeBotApi) -> None:
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("认领 Claim", callback_data="claim"),
                                      InlineKeyboardButton("解决 Resolve", callback_data="res")]])

    async def menu(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None
        await update.message.reply_html("<b>工单</b> #7 &lt;new&gt;", reply_markup=keyboard)

    async def pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None and query.message is not None
        await query.answer("已认领", show_alert=True)
        await query.edit_message_text(f"claimed: {query.data} by {query.from_user.first_name}")

    li = api.user(502, "李雷")
    async with running_app(api, CommandHandler("menu", menu), CallbackQueryHandler(pressed)):
        api.send_text(GROUP, li, "/menu")
        msg = (await api.wait_for(lambda: api.bot_messages(GROUP)))[0]
        assert api.buttons(msg) == [("认领 Claim", "claim"), ("解决 Resolve", "res")]
        assert (msg.text, msg.source) == ("工单 #7 <new>", "<b>工单</b> #7 &lt;new&gt;")
        assert "[认领 Claim] [解决 Resolve]" in api.transcript()
        assert "工单 #7 <new>" in api.transcript()
        query_id = api.press_button(GROUP, li, msg.message_id, "claim")
        await api.wait_for(lambda: msg.edits)
    assert api.callback_answers == [
        {"callback_query_id": query_id, "text": "已认领", "show_alert": True}]
    assert msg.text == msg.source == "claimed: claim by 李雷"
    assert msg.reply_markup is None  # editing without markup removes the keyboard
    assert "(edited)" in api.transcript([GROUP], names={502: "Li Lei"})
    assert "Li Lei: /menu" in api.transcript([GROUP], names={502: "Li Lei"})


async def test_edit_message_text(api: FakeBotApi, bot: Bot) -> None:
    sent = await bot.send_message(GROUP, "v1")
    edited = await bot.edit_message_text("v2", GROUP, sent.message_id)
    assert isinstance(edited, type(sent)) and edited.text == "v2" and edited.edit_date
    assert api.bot_messages(GROUP)[0].edits == 1
    with pytest.raises(BadRequest, match=r"(?i)message is not modified"):
        await bot.edit_message_text("v2", GROUP, sent.message_id)
    with pytest.raises(BadRequest, match=r"(?i)message to edit not found"):
        await bot.edit_message_text("v3", GROUP, 999)
    with pytest.raises(BadRequest, match=r"(?i)can.t parse entities"):
        await bot.send_message(GROUP, "<b>unclosed", parse_mode=ParseMode.HTML)
    assert await bot.delete_message(GROUP, sent.message_id)
    assert api.messages(GROUP)[0].deleted


async def test_chat_not_found_and_kicked(api: FakeBotApi, bot: Bot) -> None:
    with pytest.raises(BadRequest, match=r"(?i)chat not found"):
        await bot.send_message(-999, "hello")
    api.remove_bot_from(GROUP)
    with pytest.raises(Forbidden, match=r"(?i)bot was kicked from the supergroup chat"):
        await bot.send_message(GROUP, "hello")
    assert api.calls[-1].status == 403


@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
async def test_get_chat_member_answers_what_the_test_set(api: FakeBotApi, bot: Bot) -> None:
    from bot.dev.fakeapi import ApiError

    assert (await bot.get_chat_member(GROUP, 501)).status == "member"  # unset: a member
    api.set_member(GROUP, 502, "left")
    api.set_member(GROUP, 503, "kicked")
    api.set_member(GROUP, 504, ApiError(400, "Bad Request: user not found"))
    api.set_member(GROUP, 505, ApiError(400, "Bad Request: member list is inaccessible"))
    assert (await bot.get_chat_member(GROUP, 502)).status == "left"
    assert (await bot.get_chat_member(GROUP, 503)).status == "kicked"
    with pytest.raises(BadRequest, match="User not found"):
        await bot.get_chat_member(GROUP, 504)
    with pytest.raises(BadRequest, match="inaccessible"):
        await bot.get_chat_member(GROUP, 505)
    with pytest.raises(BadRequest, match="Chat not found"):
        await bot.get_chat_member(-999, 501)


async def test_injected_faults(api: FakeBotApi, bot: Bot) -> None:
    api.fail("sendMessage", retry_after=1)
    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(GROUP, "a")
    assert caught.value.retry_after == dt.timedelta(seconds=1)  # PTB_TIMEDELTA is on (bot/__init__.py)
    api.fail("sendMessage", chat_id=GROUP, status=500)
    with pytest.raises(NetworkError, match="Internal Server Error"):
        await bot.send_message(GROUP, "b")
    api.fail("sendMessage", drop=True)
    with pytest.raises(NetworkError):  # TimedOut is a NetworkError too
        await bot.send_message(GROUP, "c")
    assert (await bot.send_message(GROUP, "d")).text == "d"
    sends = [(c.status, c.fault) for c in api.calls if c.method == "sendMessage"]
    assert sends == [(429, True), (500, True), (0, True), (200, False)]
    assert [m.text for m in api.bot_messages(GROUP)] == ["d"]


async def test_enforced_limits_answer_429_beyond_telegrams_rates(api: FakeBotApi, bot: Bot) -> None:
    api.enforce_limits(per_second=5, group_per_minute=3)
    for chat in (-2001, -2002, 2003):
        api.add_chat(chat)
    for _ in range(3):  # a group's first 3 go at once...
        await bot.send_message(GROUP, "通知")
    with pytest.raises(RetryAfter) as caught:  # ...the 4th within the minute does not
        await bot.send_message(GROUP, "通知")
    assert caught.value.retry_after in (20, dt.timedelta(seconds=20))  # one message's worth of 3 a minute
    await bot.send_message(-2001, "通知")  # other groups have their own minute
    await bot.send_message(2003, "私聊")
    with pytest.raises(RetryAfter):  # but the bot as a whole: 5 taken in this second
        await bot.send_message(-2002, "通知")
    assert len(api.flood_answers) == 2 and len(api.bot_messages(GROUP)) == 3
    assert not api.bot_messages(-2002)  # a message answered 429 is not taken
    await bot.get_me()  # calls that put nothing in a chat are not counted
    await asyncio.sleep(0.25)  # the overall bucket drains 5 a second
    await bot.send_message(-2002, "通知")


async def test_limits_are_not_enforced_unless_asked(api: FakeBotApi, bot: Bot) -> None:
    for _ in range(40):
        await bot.send_message(GROUP, "通知")
    assert not api.flood_answers


async def test_send_document_and_download(api: FakeBotApi, bot: Bot) -> None:
    sent = await bot.send_document(GROUP, b"\x00weekly\xff", filename="周报.csv", caption="周报")
    msg = api.bot_messages(GROUP)[0]
    assert (msg.document_name, msg.document_bytes, msg.text) == ("周报.csv", b"\x00weekly\xff",
                                                                 "周报")
    assert sent.document is not None and sent.document.file_name == "周报.csv"
    tg_file = await bot.get_file(sent.document.file_id)
    assert bytes(await tg_file.download_as_bytearray()) == b"\x00weekly\xff"
    photo = await bot.send_photo(GROUP, b"jpegbytes", caption="<i>pic</i>", parse_mode="HTML")
    assert photo.photo and photo.caption == "pic" and api.bot_messages(GROUP)[1].photo
    assert "📎 周报.csv (8 bytes) 周报" in api.transcript()


async def test_injected_photo_and_forward_copy(api: FakeBotApi, bot: Bot) -> None:
    zhao = api.user(503, "赵六")
    api.send_photo(GROUP, zhao, "/report 屋顶漏水", file_id="roof")
    (update,) = await bot.get_updates()
    assert update.message is not None and update.message.photo[-1].file_id == "roof"
    assert update.message.caption_entities[0].type == "bot_command"
    api.add_chat(42, "Admin", type="private")
    fwd = await bot.forward_message(42, GROUP, update.message.message_id)
    assert fwd.forward_origin is not None and fwd.photo and fwd.caption == "/report 屋顶漏水"
    copied = await bot.copy_message(42, GROUP, update.message.message_id, caption="copy")
    assert [m.text for m in api.messages(42)] == ["/report 屋顶漏水", "copy"]
    assert copied.message_id == 2


async def test_offset_confirmation_and_redelivery(api: FakeBotApi, bot: Bot) -> None:
    api.send_text(GROUP, api.user(504, "钱七"), "/start again")
    first = await bot.get_updates(timeout=0)
    assert [u.update_id for u in first] == [1]
    assert [u["update_id"] for u in api.pending_updates()] == [1]
    async with running_app(api, CommandHandler("start", echo_start)):  # not confirmed yet
        await api.wait_for(lambda: api.bot_messages(GROUP))
    assert await bot.get_updates(offset=2, timeout=0) == ()
    assert api.pending_updates() == []
    assert api.bot_messages(GROUP)[0].text == "你好 again"


async def test_long_poll_wakes_up_and_does_not_block(api: FakeBotApi, bot: Bot) -> None:
    poll = asyncio.create_task(bot.get_updates(timeout=5))
    await api.wait_for(lambda: [c for c in api.calls if c.method == "getUpdates"])
    started = time.monotonic()
    await bot.send_message(GROUP, "meanwhile")  # other connection is served
    api.send_text(GROUP, api.user(505, "孙八"), "hi")
    updates = await asyncio.wait_for(poll, 2)
    assert len(updates) == 1 and time.monotonic() - started < 1


async def test_newer_long_poll_terminates_older_one(api: FakeBotApi, bot: Bot) -> None:
    older = asyncio.create_task(bot.get_updates(timeout=5))
    await api.wait_for(lambda: api.calls_to("getUpdates"))
    async with Bot(TOKEN, base_url=api.base_url) as second:  # PTB polls over a 1-slot pool
        assert await second.get_updates(timeout=0) == ()
    with pytest.raises(Conflict):
        await asyncio.wait_for(older, 1)


async def test_stop_during_long_poll_is_fast(api: FakeBotApi, bot: Bot) -> None:
    poll = asyncio.create_task(bot.get_updates(timeout=30))
    await api.wait_for(lambda: [c for c in api.calls if c.method == "getUpdates"])
    started = time.monotonic()
    await api.stop()
    assert time.monotonic() - started < 1
    with contextlib.suppress(NetworkError):
        assert await asyncio.wait_for(poll, 1) == ()


async def test_commands_chat_and_unknown_method(api: FakeBotApi, bot: Bot) -> None:
    await bot.set_my_commands([BotCommand("report", "报告问题")])
    assert [c.command for c in await bot.get_my_commands()] == ["report"]
    assert (await bot.get_chat(GROUP)).title == "张家村第一组"
    me = await bot.get_me()
    assert me.username == "tierbot_demo_bot" and me.can_join_groups is not None
    await bot.send_chat_action(GROUP, "typing")
    with pytest.raises(EndPointNotFound):
        await bot.do_api_request("noSuchMethod")
    assert api.calls[-1].status == 404


async def test_malformed_requests_get_400(api: FakeBotApi, bot: Bot) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", api.port)
    writer.write(b"garbage\r\n\r\n")
    assert (await reader.readline()).startswith(b"HTTP/1.1 400")
    writer.close()
    reader, writer = await asyncio.open_connection("127.0.0.1", api.port)
    body = b"{not json"
    writer.write(b"POST /bot123:TEST/sendMessage HTTP/1.1\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    assert (await reader.readline()).startswith(b"HTTP/1.1 400")
    writer.close()
    reader, writer = await asyncio.open_connection("127.0.0.1", api.port)
    body = json.dumps({"chat_id": str(GROUP), "text": "json body"}).encode()
    writer.write(b"POST /bot123:TEST/sendMessage HTTP/1.1\r\nContent-Type: application/json\r\n"
                 b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
    answer = await reader.read()
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["result"]["text"] == "json body"
    writer.close()
    assert (await bot.get_me()).is_bot


async def test_wait_for_timeout_is_helpful(api: FakeBotApi) -> None:
    with pytest.raises(AssertionError, match="timed out"):
        await api.wait_for(lambda: None, timeout=0.1)


async def test_messages_sent_as_a_chat_carry_sender_chat(api: FakeBotApi) -> None:
    seen: list[tuple[int, int | None, str | None]] = []

    async def record(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.message
        assert message is not None and message.from_user is not None
        sender = message.sender_chat
        seen.append((message.from_user.id, sender.id if sender else None, sender.title if sender else None))

    api.add_chat(GROUP, "第一村民小组")
    async with running_app(api, CommandHandler("start", record)):
        api.anonymous_admin(GROUP, "/start")
        api.channel_post(GROUP, -1009, "苏溪发布", "/start")
        await api.wait_for(lambda: len(seen) == 2)
    assert seen == [(1087968824, GROUP, "第一村民小组"), (777000, -1009, "苏溪发布")]
