"""What a report's intake costs (issue 13's speed goal, bench/intake.py): the wasted work
stays out, and what goes to Telegram is what PTB's typed methods send."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from telegram import Bot, Message, ReplyParameters
from telegram.error import NetworkError, TimedOut

from bot.telegram.delivery import keyboard_json, keyboard_markup
from bot.telegram.http import ConnectionsRequest, JsonRequest
from tests.conftest import RESIDENT, U1_CHAT

KEYBOARDS: list[Any] = [
    None,
    [],
    [[("认领", "claim:1"), ("已解决", "resolve:1")], [("私下反映", "url:https://t.me/tb?start=p_u1")]],
    {"force_reply": True, "selective": True},
    {"force_reply": True, "selective": False},
    {"force_reply": True},
    {"force_reply": False},
]


@pytest.mark.parametrize("rows", KEYBOARDS)
def test_a_keyboard_built_as_json_is_what_ptb_would_send(rows: Any) -> None:
    markup = keyboard_markup(rows)
    assert keyboard_json(rows) == (markup.to_dict() if markup is not None else None)


async def test_the_delivery_sends_what_send_message_sends_and_builds_no_message_of_the_answer(
    make_bot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker's sendMessage goes out with the same parameters as Bot.send_message (the
    app's defaults included), yet no Message is built of Telegram's answer: building it was
    the largest cost of a report's intake."""
    built: list[int] = []
    de_json = Message.de_json.__func__  # type: ignore[attr-defined]

    def counting(cls: type[Message], data: Any, bot: Any = None) -> Any:
        if isinstance(data, dict) and (data.get("from") or {}).get("is_bot"):
            built.append(data["message_id"])  # one of the bot's own messages: an answer to a send
        return de_json(cls, data, bot)

    monkeypatch.setattr(Message, "de_json", classmethod(counting))
    async with make_bot() as bot:
        report = bot.say(U1_CHAT, RESIDENT, "/report 楼道灯坏了")
        await bot.wait_bot(U1_CHAT, "事项 #1")
        await bot.settle()
        assert built == []  # the card was sent; its answer was read as JSON

        delivery = bot.svc.delivery
        for rows in KEYBOARDS:
            for reply_to in (None, report["message_id"]):
                ours = await delivery._send(U1_CHAT, "<b>卡片</b>", rows, reply_to)
                markup = keyboard_markup(rows)
                reply = ReplyParameters(reply_to, allow_sending_without_reply=True) if reply_to else None
                theirs = await bot.app.bot.send_message(U1_CHAT, "<b>卡片</b>", reply_markup=markup,
                                                        reply_parameters=reply)
                calls = bot.api.calls_to("sendMessage")[-2:]
                assert [c.status for c in calls] == [200, 200]
                assert calls[0].params == calls[1].params
                assert "parse_mode" in calls[0].params and "link_preview_options" in calls[0].params
                assert (ours.chat_id, ours.message_id + 1) == (theirs.chat_id, theirs.message_id)


def _capturing(seen: list[httpx.Request], fail: Exception | None = None) -> JsonRequest:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if fail is not None:
            raise fail
        return httpx.Response(200, json={"ok": True, "result": {
            "message_id": 5, "date": 0, "chat": {"id": -1, "type": "group", "title": "g"}, "text": "x"}})

    return JsonRequest(httpx_kwargs={"transport": httpx.MockTransport(answer)})


async def test_a_call_without_files_goes_as_one_json_body() -> None:
    """Form-encoding quotes each byte of a Chinese text through a Python call; JSON does not."""
    assert all(isinstance(r, JsonRequest) for r in ConnectionsRequest(3)._all)
    seen: list[httpx.Request] = []
    request = _capturing(seen)
    await request.initialize()
    try:
        await Bot("1:T", request=request).send_message(
            -1, "楼道灯坏了 \ud800", reply_markup=keyboard_markup([[("认领", "claim:1")]]),
            reply_parameters=ReplyParameters(3),
        )
    finally:
        await request.shutdown()
    (sent,) = seen
    assert sent.headers["content-type"] == "application/json"
    assert json.loads(sent.content) == {
        "chat_id": -1, "text": "楼道灯坏了 \ud800",
        "reply_markup": {"inline_keyboard": [[{"text": "认领", "callback_data": "claim:1"}]]},
        "reply_parameters": {"message_id": 3},
    }


@pytest.mark.parametrize(("fail", "raised"), [(httpx.ReadTimeout("slow"), TimedOut),
                                              (httpx.ConnectError("refused"), NetworkError)])
async def test_a_json_call_fails_as_ptb_says(fail: Exception, raised: type[Exception]) -> None:
    seen: list[httpx.Request] = []
    request = _capturing(seen, fail)
    await request.initialize()
    try:
        with pytest.raises(raised):
            await Bot("1:T", request=request).send_message(-1, "x")
    finally:
        await request.shutdown()
    assert len(seen) == 1
