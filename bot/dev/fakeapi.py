"""In-process fake of the Telegram Bot API for tests and ``tierbot demo`` (stdlib only).

Webhook mode (issue 18): after ``setWebhook`` the updates are posted to its URL (plain http:
the tests' and benches' workers listen without TLS) the way Telegram does it: each chat's
updates in order, one in flight per chat (callback queries queued per user), the next after
a 2xx; on any other answer, a dropped connection or no answer within ``webhook_timeout`` the
same update is posted again after a backoff; at most ``max_connections`` in flight in all;
the secret token in ``X-Telegram-Bot-Api-Secret-Token``. ``getUpdates`` is refused (409)
while a webhook is set. Every post is recorded in ``webhook_posts``.

Point PTB at it with ``ApplicationBuilder().base_url(api.base_url)``; it speaks just enough
HTTP/1.1 (keep-alive, Content-Length bodies) for httpx, decodes form, JSON and multipart
bodies, keeps chats/messages in memory and lets tests inject updates and faults. Errors look
like Telegram's (``{"ok": false, "error_code": 400, "description": "Bad Request: ..."}``).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import html
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from http.client import responses
from typing import Any, Self
from urllib.parse import parse_qsl, unquote, urlsplit

_logger = logging.getLogger(__name__)
_RAW_KEYS = {"text", "caption", "data", "callback_data", "title", "description", "parse_mode",
             "callback_query_id", "file_id", "language_code", "action", "url", "query",
             "photo", "document", "question", "secret_token"}
_HTML_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre",
              "span", "tg-spoiler", "tg-emoji", "blockquote"}
_TAG_RE = re.compile(r"<(/?)([a-zA-Z][\w-]*)[^<>]*>|<")
_COMMAND_RE = re.compile(r"/[A-Za-z0-9_]+(@[A-Za-z0-9_]+)?")


class ApiError(Exception):
    """A Telegram-style error answer (status + description)."""

    def __init__(self, status: int, description: str, retry_after: int | None = None,
                 migrate_to_chat_id: int | None = None) -> None:
        super().__init__(description)
        self.status, self.description, self.retry_after = status, description, retry_after
        self.migrate_to_chat_id = migrate_to_chat_id

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error_code": self.status,
                                "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        if self.migrate_to_chat_id is not None:
            body["parameters"] = {"migrate_to_chat_id": self.migrate_to_chat_id}
        return body


@dataclass
class Upload:
    """A file received in a multipart request."""

    filename: str
    content: bytes


@dataclass
class Call:
    """One request received by the server (status 0 = connection dropped)."""

    method: str
    params: dict[str, Any]
    at: float
    status: int = 200
    fault: bool = False


@dataclass
class WebhookPost:
    """One post of an update to the webhook: the status answered (0: dropped or no answer)."""

    update_id: int
    key: str  # the queue it came from: a chat, a user's callback queries, or the update alone
    status: int
    started: float  # time.monotonic() when it was posted, and when its answer came
    ended: float


@dataclass
class Msg:
    """Current state of one message in a chat.

    ``text`` is the text or caption as users see it (HTML tags stripped, entities unescaped),
    ``source`` is what was sent (with markup), ``raw`` the Telegram Message JSON.
    """

    message_id: int
    chat_id: int
    from_bot: bool
    text: str | None
    source: str | None = None
    sender: str = ""
    date: int = 0
    reply_markup: dict[str, Any] | None = None
    reply_to: int | None = None
    edits: int = 0
    parse_mode: str | None = None
    deleted: bool = False
    photo: bool = False
    document_name: str | None = None
    document_bytes: bytes | None = None
    reactions: list[str] = field(default_factory=list)  # the bot's, set by setMessageReaction
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


class _Bucket:
    """A leaky bucket: up to ``capacity`` at once, then ``rate`` a second (GCRA)."""

    def __init__(self, capacity: float, rate: float) -> None:
        self.capacity, self.rate, self.level, self.at = capacity, rate, 0.0, 0.0

    def wait(self, now: float) -> float:
        """Seconds until one more fits (0: it fits now)."""
        level = max(0.0, self.level - (now - self.at) * self.rate)
        return max(0.0, (level + 1 - self.capacity) / self.rate)

    def add(self, now: float) -> None:
        self.level = max(0.0, self.level - (now - self.at) * self.rate) + 1
        self.at = now


# Calls that put a message in a chat, which Telegram's flood limits count.
_LIMITED = {"sendmessage", "sendphoto", "senddocument", "sendvoice", "sendlocation", "editmessagetext",
            "editmessagereplymarkup", "copymessage", "forwardmessage", "sendpoll", "stoppoll"}


@dataclass
class _Fault:
    method: str
    chat_id: int | None
    times: int
    error: ApiError | None  # None means: drop the connection


def plain_text(text: str | None, parse_mode: str | None) -> str | None:
    """Strip HTML tags and unescape entities, like the text Telegram shows."""
    if text is None or (parse_mode or "").upper() != "HTML":
        return text
    return html.unescape(re.sub(r"<[^>]*>", "", text))


def _check_html(text: str) -> None:
    stack: list[str] = []
    for m in _TAG_RE.finditer(text):
        if m[2] is None or m[2].lower() not in _HTML_TAGS:
            raise ApiError(400, "Bad Request: can't parse entities: unsupported start tag "
                                f"{m[0]!r} at byte offset {len(text[:m.start()].encode())}")
        name = m[2].lower()
        if not m[1]:
            stack.append(name)
        elif not stack or stack.pop() != name:
            raise ApiError(400, f"Bad Request: can't parse entities: unexpected end tag {name!r}")
    if stack:
        raise ApiError(400, "Bad Request: can't parse entities: can't find end tag "
                            f"corresponding to start tag {stack[-1]!r}")


def _decode(key: str, value: Any) -> Any:
    """Turn a form-encoded parameter back into a Python value."""
    if not isinstance(value, str) or key in _RAW_KEYS:
        return value
    if re.fullmatch(r"-?\d+", value):
        return int(value)
    if re.fullmatch(r"-?\d+\.\d*", value):
        return float(value)
    if value in ("true", "false"):
        return value == "true"
    if value[:1] in "[{":
        with contextlib.suppress(ValueError):
            return json.loads(value)
    return value


def _parse_multipart(body: bytes, content_type: str) -> dict[str, Any]:
    m = re.search(r'boundary="?([^";]+)"?', content_type)
    if not m:
        raise ValueError("multipart body without boundary")
    params: dict[str, Any] = {}
    for part in (b"\r\n" + body).split(b"\r\n--" + m[1].encode())[1:]:
        if part.startswith(b"--"):
            break
        head, sep, data = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        disposition = head.decode("utf-8", "replace")
        name = re.search(r'(?<![\w-])name="([^"]*)"', disposition)
        if not sep or not name:
            raise ValueError("malformed multipart part")
        filename = re.search(r'filename="([^"]*)"', disposition)
        if filename:
            params[name[1]] = Upload(unquote(filename[1]), data)
        else:
            params[name[1]] = data.decode("utf-8")
    return params


def buttons(msg: Msg | dict[str, Any] | None) -> list[tuple[str, str]]:
    """(text, callback_data) of every inline button of a message or reply_markup dict."""
    markup = msg.reply_markup if isinstance(msg, Msg) else msg
    rows = (markup or {}).get("inline_keyboard") or []
    return [(b.get("text", ""), b.get("callback_data") or b.get("url") or "")
            for row in rows for b in row]


class FakeBotApi:
    """A fake Telegram Bot API server running in the caller's event loop."""

    def __init__(self, bot_username: str = "tierbot_demo_bot", bot_id: int = 100000001,
                 bot_name: str = "Tierbot", clock: Callable[[], float] = time.time) -> None:
        """``clock`` gives message dates (seconds since the epoch)."""
        self.clock = clock
        self.bot_user: dict[str, Any] = {"id": bot_id, "is_bot": True, "first_name": bot_name,
                                         "username": bot_username}
        self.calls: list[Call] = []
        self.callback_answers: list[dict[str, Any]] = []
        self.port = 0
        self.host = "127.0.0.1"
        self._server: asyncio.Server | None = None
        self._conns: dict[asyncio.Task[None], bool] = {}  # task -> busy with a request
        self._closing = False
        self._event = asyncio.Event()
        self._chats: dict[int, dict[str, Any]] = {}
        self._kicked: dict[int, str] = {}
        self._no_reactions: set[int] = set()  # chats whose admins disallowed reactions
        self._migrated: dict[int, int] = {}  # old group id -> its supergroup's id
        self._msgs: dict[int, dict[int, Msg]] = {}
        self._updates: list[dict[str, Any]] = []
        self._next_update = 1
        self._callback_ids: set[str] = set()
        self._files: dict[str, tuple[str, bytes]] = {}  # file_id -> (file_path, content)
        self._commands: dict[str, list[Any]] = {}
        self._faults: list[_Fault] = []
        self._limits: tuple[float, float] | None = None  # see enforce_limits
        self._overall: _Bucket | None = None
        self._group_buckets: dict[int, _Bucket] = {}
        self.flood_answers: list[Call] = []  # calls answered 429 by the enforced limits
        self._members: dict[tuple[int, int], str | ApiError] = {}  # getChatMember's answers
        # Called with every parsed call before it runs; returning True drops the call
        # unanswered and unexecuted (crash tests kill the bot process from here).
        self.on_call: Callable[[Call], bool | None] | None = None
        self._counter = 0
        self._polls = 0  # getUpdates requests so far; a newer one terminates an older one
        self._poll_votes: dict[str, dict[int, list[int]]] = {}  # poll id -> user -> chosen option ids
        # Webhook mode (see the module's docstring).
        self.webhook: dict[str, Any] | None = None  # what setWebhook set
        self.webhook_posts: list[WebhookPost] = []
        self.webhook_timeout = 60.0  # seconds to wait for a worker's answer
        self.webhook_backoff = (0.05, 2.0)  # first and longest wait before posting a failed update again
        self._pusher: asyncio.Task[None] | None = None
        self._posting: dict[str, asyncio.Task[None]] = {}  # queue key -> its post in flight
        self._retry: dict[int, tuple[int, float]] = {}  # update id -> (failed posts, when to post again)
        handlers: dict[str, Callable[[dict[str, Any]], Any]] = {
            "getMe": self._get_me,
            "getUpdates": self._get_updates,
            "deleteWebhook": self._delete_webhook,
            "setWebhook": self._set_webhook,
            "getWebhookInfo": self._webhook_info,
            "setMyCommands": self._set_commands,
            "deleteMyCommands": self._set_commands,
            "getMyCommands": lambda p: self._commands.get(self._scope(p), []),
            "sendMessage": self._send_message,
            "sendPhoto": self._send_media,
            "sendDocument": self._send_media,
            "sendVoice": self._send_voice,
            "sendLocation": self._send_location,
            "editMessageText": self._edit,
            "editMessageReplyMarkup": self._edit,
            "setMessageReaction": self._set_reaction,
            "deleteMessage": self._delete_message,
            "answerCallbackQuery": self._answer_callback,
            "sendChatAction": lambda p: bool(self._chat(p["chat_id"], write=True)),
            "getChat": self._get_chat,
            "getChatMember": self._get_chat_member,
            "getFile": self._get_file,
            "leaveChat": self._leave_chat,
            "forwardMessage": lambda p: self._forward(p, copying=False),
            "copyMessage": lambda p: self._forward(p, copying=True),
            "sendPoll": self._send_poll,
            "stopPoll": self._stop_poll,
        }
        self._methods = {name.lower(): handler for name, handler in handlers.items()}

    # ----------------------------------------------------------------- lifecycle
    @property
    def bot_username(self) -> str:
        return str(self.bot_user["username"])

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        return f"http://{self.host}:{self.port}/file/bot"

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> Self:
        """Listen on host:port (0 = any free port)."""
        self._closing, self._event = False, asyncio.Event()
        self._server = await asyncio.start_server(self._serve, host, port, limit=1 << 16)
        self.host, self.port = host, self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Close the server; pending long polls answer [] at once, idle connections close."""
        self._closing = True
        self._notify()
        for task in [self._pusher, *self._posting.values()]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._pusher = None
        if self._server is not None:
            self._server.close()
        for task, busy in list(self._conns.items()):
            if not busy:
                task.cancel()
        if self._conns:
            _, pending = await asyncio.wait(list(self._conns), timeout=0.5)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ----------------------------------------------------------------- chats & injection
    def add_chat(self, chat_id: int, title: str | None = None, type: str | None = None) -> dict[str, Any]:
        """Make a chat known (and the bot a member of it)."""
        kind = type or ("supergroup" if chat_id < 0 else "private")
        chat: dict[str, Any] = {"id": chat_id, "type": kind}
        if kind == "private":
            chat["first_name"] = title or f"User {chat_id}"
        else:
            chat["title"] = title or f"Group {chat_id}"
        self._chats[chat_id] = chat
        self._kicked.pop(chat_id, None)
        self._msgs.setdefault(chat_id, {})
        return chat

    def set_member(self, chat_id: int, user_id: int, status: str | ApiError) -> None:
        """What getChatMember answers for (chat, user): a status (member, left, kicked,
        creator) or an error, e.g. ``ApiError(400, "Bad Request: user not found")``. Unset
        pairs are members."""
        self._members[(chat_id, user_id)] = status

    def disallow_reactions(self, chat_id: int) -> None:
        """The group's admins turned reactions off: setMessageReaction there answers 400."""
        self._no_reactions.add(chat_id)

    def remove_bot_from(self, chat_id: int) -> None:
        """Kick the bot: later sends to this chat fail with 403."""
        kind = self._chat(chat_id)["type"]
        self._kicked[chat_id] = ("Forbidden: bot was blocked by the user" if kind == "private"
                                 else f"Forbidden: bot was kicked from the {kind} chat")

    @staticmethod
    def user(user_id: int, first_name: str, username: str | None = None,
             language_code: str = "zh-hans") -> dict[str, Any]:
        """A Telegram User dict."""
        user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": first_name,
                                "language_code": language_code}
        if username:
            user["username"] = username
        return user

    # Telegram's stand-ins when a message is not sent as a person.
    ANONYMOUS_ADMIN_ID = 1087968824  # @GroupAnonymousBot, "Group": an admin posting as the group
    CHANNEL_BOT_ID = 777000  # "Telegram": a linked channel's post forwarded into its discussion group

    def anonymous_admin(self, chat_id: int, text: str) -> dict[str, Any]:
        """An admin of the group posts ``text`` anonymously, as the group itself."""
        group = self._user_chat(chat_id, {})
        user = {"id": self.ANONYMOUS_ADMIN_ID, "is_bot": True, "first_name": "Group",
                "username": "GroupAnonymousBot"}
        return self.send_text(chat_id, user, text, sender_chat=dict(group))

    def channel_post(self, chat_id: int, channel_id: int, title: str, text: str) -> dict[str, Any]:
        """A post of the linked channel ``channel_id`` arrives in the group ``chat_id``."""
        user = {"id": self.CHANNEL_BOT_ID, "is_bot": False, "first_name": "Telegram"}
        return self.send_text(chat_id, user, text, sender_chat={"id": channel_id, "type": "channel", "title": title})

    def push_update(self, update: dict[str, Any]) -> int:
        """Queue a raw update (update_id is assigned when missing); returns its id."""
        update = copy.deepcopy(update)
        update.setdefault("update_id", self._next_update)
        self._next_update = max(self._next_update, update["update_id"]) + 1
        self._updates.append(update)
        self._notify()
        return int(update["update_id"])

    def send_text(self, chat_id: int, from_user: dict[str, Any], text: str,
                  reply_to_message_id: int | None = None,
                  sender_chat: dict[str, Any] | None = None) -> dict[str, Any]:
        """A user writes ``text`` in a chat; returns the Message dict. ``sender_chat``: the
        chat the message is sent on behalf of (see ``anonymous_admin`` and ``channel_post``)."""
        msg = self._store(self._user_chat(chat_id, from_user), from_user, text=text,
                          reply_to=reply_to_message_id, entities=self._command_entity(text),
                          sender_chat=sender_chat)
        self.push_update({"message": msg.raw})
        return msg.raw

    def send_photo(self, chat_id: int, from_user: dict[str, Any], caption: str | None = None,
                   file_id: str | None = None, reply_to_message_id: int | None = None,
                   content: bytes = b"\xff\xd8\xff\xe0fake-jpeg") -> dict[str, Any]:
        """A user sends a photo (optionally with a caption); returns the Message dict."""
        file_id = file_id or f"photo{self._tick()}"
        msg = self._store(self._user_chat(chat_id, from_user), from_user, caption=caption,
                          reply_to=reply_to_message_id, entities=self._command_entity(caption),
                          media=self._photo_media(file_id, content))
        self.push_update({"message": msg.raw})
        return msg.raw

    def send_voice(self, chat_id: int, from_user: dict[str, Any], file_id: str | None = None,
                   reply_to_message_id: int | None = None) -> dict[str, Any]:
        """A user sends a voice note; returns the Message dict."""
        file_id = file_id or f"voice{self._tick()}"
        msg = self._store(self._user_chat(chat_id, from_user), from_user, reply_to=reply_to_message_id,
                          media=self._voice_media(file_id))
        self.push_update({"message": msg.raw})
        return msg.raw

    def send_location(self, chat_id: int, from_user: dict[str, Any], latitude: float, longitude: float,
                      reply_to_message_id: int | None = None) -> dict[str, Any]:
        """A user shares a location; returns the Message dict."""
        msg = self._store(self._user_chat(chat_id, from_user), from_user, reply_to=reply_to_message_id,
                          media={"location": {"latitude": latitude, "longitude": longitude}})
        self.push_update({"message": msg.raw})
        return msg.raw

    def send_venue(self, chat_id: int, from_user: dict[str, Any], latitude: float, longitude: float,
                   title: str, address: str) -> dict[str, Any]:
        """A user shares a place picked from the map (a venue): Telegram sends both ``venue``
        and its ``location``; returns the Message dict."""
        location = {"latitude": latitude, "longitude": longitude}
        msg = self._store(self._user_chat(chat_id, from_user), from_user,
                          media={"location": location, "venue": {"location": location, "title": title,
                                                                 "address": address}})
        self.push_update({"message": msg.raw})
        return msg.raw

    def press_button(self, chat_id: int, from_user: dict[str, Any], message_id: int,
                     data: str) -> str:
        """A user presses an inline button on a stored message; returns the query id."""
        msg = self._msgs.get(chat_id, {}).get(message_id)
        if msg is None or msg.deleted:
            raise ValueError(f"no message {message_id} in chat {chat_id}")
        query_id = f"cq{self._tick()}"
        self._callback_ids.add(query_id)
        self.push_update({"callback_query": {"id": query_id, "from": from_user, "data": data,
                                             "chat_instance": str(chat_id), "message": msg.raw}})
        return query_id

    def migrate_chat(self, old_chat: int, new_chat: int, from_user: dict[str, Any]) -> None:
        """A group becomes a supergroup with a new id, as Telegram does it: the service
        messages ``migrate_to_chat_id`` in the old group and ``migrate_from_chat_id`` in the
        new one, and sends to the old id answered 400 with ``migrate_to_chat_id``."""
        old = self._chat(old_chat)
        new = self.add_chat(new_chat, old.get("title"), type="supergroup")
        self._migrated[old_chat] = new_chat
        for chat, key, value in ((old, "migrate_to_chat_id", new_chat), (new, "migrate_from_chat_id", old_chat)):
            msgs = self._msgs.setdefault(chat["id"], {})
            raw = {"message_id": max(msgs, default=0) + 1, "date": int(self.clock()), "chat": chat,
                   "from": from_user, key: value}
            msgs[raw["message_id"]] = Msg(raw["message_id"], chat["id"], False, None, raw=raw)
            self.push_update({"message": raw})

    def vote(self, chat_id: int, message_id: int, from_user: dict[str, Any], option_ids: list[int]) -> dict[str, Any]:
        """A user answers the poll in a message (``[]`` takes the answer back), as Telegram
        counts it: one answer per user, changed by answering again. The bot that sent the
        poll gets a ``poll`` update with the new counts (an anonymous poll names nobody; a
        public one also gets a ``poll_answer``). Returns the Poll dict."""
        msg = self._msgs.get(chat_id, {}).get(message_id)
        poll = msg.raw.get("poll") if msg is not None and not msg.deleted else None
        if poll is None:
            raise ValueError(f"no poll in message {message_id} of chat {chat_id}")
        if poll["is_closed"]:
            raise ValueError(f"the poll in message {message_id} of chat {chat_id} is closed")
        if from_user["id"] in self._poll_votes.get(poll["id"], {}) and not poll["allows_revoting"]:
            raise ValueError(f"the poll in message {message_id} of chat {chat_id} allows no change of answer")
        if any(not 0 <= i < len(poll["options"]) for i in option_ids) or (
                len(option_ids) > 1 and not poll["allows_multiple_answers"]):
            raise ValueError(f"cannot choose {option_ids} in this poll")
        votes = self._poll_votes.setdefault(poll["id"], {})
        votes[from_user["id"]] = list(option_ids)
        if not option_ids:
            del votes[from_user["id"]]
        for index, option in enumerate(poll["options"]):
            option["voter_count"] = sum(index in chosen for chosen in votes.values())
        poll["total_voter_count"] = len(votes)
        if msg is not None and msg.from_bot:  # Telegram tells a bot only of its own polls
            self.push_update({"poll": copy.deepcopy(poll)})
            if not poll["is_anonymous"]:
                self.push_update({"poll_answer": {
                    "poll_id": poll["id"], "user": from_user, "option_ids": list(option_ids),
                    "option_persistent_ids": [poll["options"][i]["persistent_id"] for i in option_ids]}})
        return copy.deepcopy(poll)

    # ----------------------------------------------------------------- observing
    def messages(self, chat_id: int) -> list[Msg]:
        """All messages of a chat in order (deleted ones keep ``deleted=True``)."""
        return list(self._msgs.get(chat_id, {}).values())

    def bot_messages(self, chat_id: int) -> list[Msg]:
        """Messages the bot sent to a chat."""
        return [m for m in self.messages(chat_id) if m.from_bot]

    def reactions(self, chat_id: int, message_id: int) -> list[str]:
        """The bot's reaction on a message (setMessageReaction), if any."""
        msg = self._msgs.get(chat_id, {}).get(message_id)
        return list(msg.reactions) if msg is not None else []

    buttons = staticmethod(buttons)

    def pending_updates(self) -> list[dict[str, Any]]:
        """Updates not yet confirmed by a getUpdates offset (delivered or not)."""
        return list(self._updates)

    def calls_to(self, method: str) -> list[Call]:
        """Recorded calls of one Bot API method (case-insensitive)."""
        return [c for c in self.calls if c.method.lower() == method.lower()]

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 5.0) -> Awaitable[Any]:
        """Await the first truthy ``predicate()``, re-checked after every handled request.

        Raises AssertionError (listing the last calls) after ``timeout`` seconds.
        """
        return self._wait_for(predicate, timeout)

    async def _wait_for(self, predicate: Callable[[], Any], within: float) -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            event = self._event
            value = predicate()
            if value:
                return value
            remaining = deadline - loop.time()
            if remaining <= 0:
                recent = "\n".join(f"  {c.method} {c.status} {c.params}"[:200]
                                   for c in self.calls[-8:]) or "  (none)"
                raise AssertionError(f"wait_for({getattr(predicate, '__qualname__', predicate)})"
                                     f" timed out after {within}s; last calls:\n{recent}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), min(remaining, 0.05))

    def fail(self, method: str, *, chat_id: int | None = None, times: int = 1,
             status: int = 429, retry_after: int | None = None,
             description: str | None = None, drop: bool = False) -> None:
        """Make the next ``times`` matching calls (``method="*"`` = any) fail or drop."""
        if status == 429 and retry_after is None:
            retry_after = 1
        default = {429: f"Too Many Requests: retry after {retry_after}",
                   403: "Forbidden: bot was blocked by the user", 400: "Bad Request"}
        error = None if drop else ApiError(
            status, description or default.get(status) or responses.get(status, "Error"), retry_after)
        self._faults.append(_Fault(method.lower(), chat_id, times, error))

    def enforce_limits(self, per_second: float = 30, group_per_minute: float = 20) -> None:
        """Answer like Telegram beyond its flood limits: messages to chats (sends, edits,
        copies) at most ``per_second`` a second for the bot and ``group_per_minute`` a
        minute per group, each a leaky bucket (up to the limit at once, then the rate);
        beyond them 429 with ``retry_after``, the message not taken."""
        self._limits = (per_second, group_per_minute)
        self._overall = _Bucket(per_second, per_second)
        self._group_buckets = {}

    def _flood_wait(self, call: Call) -> ApiError | None:
        """Count a limited call against the limits; a 429 if it is beyond them."""
        chat = call.params.get("chat_id")
        if self._limits is None or self._overall is None or call.method.lower() not in _LIMITED or chat is None:
            return None
        now = time.monotonic()
        buckets = [self._overall]
        if isinstance(chat, int) and chat < 0:
            per_minute = self._limits[1]
            buckets.append(self._group_buckets.setdefault(chat, _Bucket(per_minute, per_minute / 60)))
        wait = max(bucket.wait(now) for bucket in buckets)
        if wait > 0:
            self.flood_answers.append(call)
            seconds = max(1, int(wait + 0.999))
            return ApiError(429, f"Too Many Requests: retry after {seconds}", seconds)
        for bucket in buckets:
            bucket.add(now)
        return None

    def transcript(self, chat_ids: list[int] | None = None,
                   names: dict[int, str] | None = None, tz: tzinfo | None = None) -> str:
        """Human-readable log of chats (HTML stripped, buttons and edits shown); times in
        ``tz`` (the town's zone), else the machine's."""
        names = names or {}
        out: list[str] = []
        for chat_id in chat_ids if chat_ids is not None else list(self._msgs):
            chat = self._chats.get(chat_id, {})
            title = names.get(chat_id) or chat.get("title") or chat.get("first_name") or ""
            out.append(f"== {title} ({chat_id}) ==")
            for m in self.messages(chat_id):
                who = ("🤖 " + names.get(int(self.bot_user["id"]), "bot") if m.from_bot
                       else names.get(m.raw["from"]["id"], m.sender))
                body = m.text or ""
                if m.photo:
                    body = "📷 " + body
                if "voice" in m.raw:
                    body = "🎤 " + body
                if "location" in m.raw:
                    body = "📍 {latitude:.4f},{longitude:.4f} ".format(**m.raw["location"]) + body
                if poll := m.raw.get("poll"):
                    options = " / ".join(f"{o['text']} {o['voter_count']}" for o in poll["options"])
                    body = f"📊 {poll['question']} [{options}]" + (" (closed)" if poll["is_closed"] else "")
                if m.document_name is not None:
                    body = f"📎 {m.document_name} ({len(m.document_bytes or b'')} bytes) {body}"
                marks = (f"↩#{m.reply_to} " if m.reply_to else "") + ("(deleted) " if m.deleted
                                                                       else "")
                stamp = datetime.fromtimestamp(m.date, tz).strftime("%H:%M:%S")
                first, *rest = f"{marks}{body.strip()}".split("\n")
                out.append(f"[{stamp}] #{m.message_id} {who}: {first}"
                           + (" (edited)" if m.edits else "")
                           + (f" [bot: {''.join(m.reactions)}]" if m.reactions else ""))
                rows = (m.reply_markup or {}).get("inline_keyboard") or []
                out += ["    " + line for line in rest]
                out += ["    " + " ".join(f"[{b.get('text', '')}]" for b in row) for row in rows]
            out.append("")
        return "\n".join(out).rstrip() + "\n"

    # ----------------------------------------------------------------- HTTP plumbing
    def _notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    def _tick(self) -> int:
        self._counter += 1
        return self._counter

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns[task] = False
        try:
            while not self._closing:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                except asyncio.LimitOverrunError:
                    await self._send(writer, 400, ApiError(400, "Bad Request: header").payload())
                    return
                self._conns[task] = True
                try:
                    verb, target, headers = self._parse_head(head)
                    body = await self._read_body(reader, headers)
                except (ValueError, UnicodeDecodeError, asyncio.IncompleteReadError) as exc:
                    await self._send(writer, 400, ApiError(400, f"Bad Request: {exc}").payload())
                    return
                answer = await self._dispatch(verb, target, headers, body)
                self._notify()
                if answer is None:  # injected drop
                    return
                await self._send(writer, *answer, close=self._closing)
                if headers.get("connection", "").lower() == "close":
                    return
                self._conns[task] = False
        except (ConnectionError, asyncio.CancelledError):
            pass  # a cancelled connection callback would make asyncio log a spurious error
        finally:
            self._conns.pop(task, None)
            writer.close()

    @staticmethod
    def _parse_head(head: bytes) -> tuple[str, str, dict[str, str]]:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            raise ValueError("malformed request line")
        headers = {}
        for line in lines[1:]:
            if line:
                key, sep, value = line.partition(":")
                if not sep:
                    raise ValueError("malformed header")
                headers[key.strip().lower()] = value.strip()
        return parts[0].upper(), parts[1], headers

    @staticmethod
    async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
        if "transfer-encoding" in headers:
            raise ValueError("chunked bodies are not supported")
        length = int(headers.get("content-length") or 0)
        if not 0 <= length <= 100 << 20:
            raise ValueError("bad Content-Length")
        return await reader.readexactly(length)

    @staticmethod
    async def _send(writer: asyncio.StreamWriter, status: int, payload: dict | bytes,
                    close: bool = False) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        ctype = "application/octet-stream" if isinstance(payload, bytes) else "application/json"
        head = (f"HTTP/1.1 {status} {responses.get(status, 'Error')}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: {'close' if close else 'keep-alive'}"
                "\r\n\r\n")
        writer.write(head.encode() + body)
        await writer.drain()

    async def _dispatch(self, verb: str, target: str, headers: dict[str, str],
                        body: bytes) -> tuple[int, dict | bytes] | None:
        url = urlsplit(target)
        path = unquote(url.path)
        if verb == "GET" and (m := re.fullmatch(r"/file/bot[^/]+/(.+)", path)):
            self.calls.append(Call("downloadFile", {"file_path": m[1]}, time.monotonic()))
            found = [data for fpath, data in self._files.values() if fpath == m[1]]
            return (200, found[0]) if found else (404, ApiError(404, "Not Found").payload())
        m = re.fullmatch(r"/bot[^/]+/(\w+)", path)
        call = Call(m[1] if m else path, {}, time.monotonic(), 404)
        self.calls.append(call)
        if not m:
            return 404, ApiError(404, "Not Found").payload()
        try:
            ctype = headers.get("content-type", "")
            raw: dict[str, Any] = dict(parse_qsl(url.query))
            if ctype.startswith("multipart/form-data"):
                raw.update(_parse_multipart(body, ctype))
            elif ctype.startswith("application/json") and body:
                raw.update(json.loads(body))
            elif body:
                raw.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True,
                                     strict_parsing=True))
            call.params = {k: _decode(k, v) for k, v in raw.items()}
        except (ValueError, TypeError, AttributeError) as exc:
            call.status = 400
            return 400, ApiError(400, f"Bad Request: can't parse request body: {exc}").payload()
        if self.on_call is not None and self.on_call(call):
            call.status = 0
            return None  # the hook chose to drop this call unanswered and unexecuted
        fault = self._take_fault(call)
        if fault and fault.error is None:
            call.status = 0
            return None  # the caller closes the connection without answering
        try:
            if fault and fault.error:
                raise fault.error
            if flood := self._flood_wait(call):
                raise flood
            result = await self._run(call)
            answer: tuple[int, dict | bytes] = (200, {"ok": True, "result": result})
        except ApiError as err:
            answer = (err.status, err.payload())
        except Exception as exc:  # never let a bug in a handler kill the server
            _logger.exception("fake Bot API failed to handle %s", call.method)
            answer = (500, ApiError(500, f"Internal Server Error: {exc!r}").payload())
        call.status = answer[0]
        return answer

    def _take_fault(self, call: Call) -> _Fault | None:
        for fault in self._faults:
            if fault.method in (call.method.lower(), "*") and fault.chat_id in (
                    None, call.params.get("chat_id")):
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
                call.fault = True
                return fault
        return None

    async def _run(self, call: Call) -> Any:
        handler = self._methods.get(call.method.lower())
        if handler is None:
            raise ApiError(404, "Not Found")
        try:
            result = handler(call.params)
        except KeyError as exc:
            raise ApiError(400, f"Bad Request: parameter {exc} is required") from None
        return await result if asyncio.iscoroutine(result) else result

    # ----------------------------------------------------------------- state helpers
    def _chat(self, chat_id: Any, write: bool = False) -> dict[str, Any]:
        chat = self._chats.get(chat_id) if isinstance(chat_id, int) else None
        if chat is None:
            raise ApiError(400, "Bad Request: chat not found")
        if write and chat_id in self._kicked:
            raise ApiError(403, self._kicked[chat_id])
        if write and chat_id in self._migrated:
            raise ApiError(400, "Bad Request: group chat was upgraded to a supergroup chat",
                           migrate_to_chat_id=self._migrated[chat_id])
        return chat

    def _user_chat(self, chat_id: int, from_user: dict[str, Any]) -> dict[str, Any]:
        if chat_id not in self._chats:
            self.add_chat(chat_id, None if chat_id < 0 else from_user.get("first_name"))
        return self._chats[chat_id]

    def _command_entity(self, text: str | None) -> list[dict[str, Any]] | None:
        m = _COMMAND_RE.match(text or "")
        return [{"type": "bot_command", "offset": 0, "length": m.end()}] if m else None

    def _photo_media(self, file_id: str, content: bytes) -> dict[str, Any]:
        self._files[file_id] = (f"photos/{file_id}.jpg", content)
        self._files[file_id + "s"] = (f"photos/{file_id}s.jpg", content)
        return {"photo": [{"file_id": file_id + "s", "file_unique_id": f"u{file_id}s",
                           "width": 90, "height": 90, "file_size": len(content)},
                          {"file_id": file_id, "file_unique_id": f"u{file_id}",
                           "width": 800, "height": 600, "file_size": len(content)}]}

    def _store(self, chat: dict[str, Any], sender: dict[str, Any], *, text: str | None = None,
               caption: str | None = None, parse_mode: str | None = None,
               entities: list[Any] | None = None, reply_markup: dict[str, Any] | None = None,
               reply_to: int | None = None, media: dict[str, Any] | None = None,
               sender_chat: dict[str, Any] | None = None) -> Msg:
        msgs = self._msgs.setdefault(chat["id"], {})
        from_bot = sender["id"] == self.bot_user["id"]
        raw: dict[str, Any] = {"message_id": max(msgs, default=0) + 1, "date": int(self.clock()),
                               "chat": chat, "from": sender, **(media or {})}
        if sender_chat is not None:
            raw["sender_chat"] = sender_chat
        key, source = ("text", text) if text is not None else ("caption", caption)
        if source is not None:
            raw[key] = plain_text(source, parse_mode)
        if entities:
            raw["entities" if key == "text" else "caption_entities"] = entities
        if reply_markup and "inline_keyboard" in reply_markup:
            raw["reply_markup"] = reply_markup
        target = msgs.get(reply_to) if reply_to else None
        if target is not None:
            raw["reply_to_message"] = {k: v for k, v in target.raw.items()
                                       if k != "reply_to_message"}
        document = (media or {}).get("document")
        msg = Msg(raw["message_id"], chat["id"], from_bot, raw.get(key), source,
                  sender.get("first_name", ""), raw["date"], reply_markup,
                  reply_to if target else None, parse_mode=parse_mode, photo="photo" in raw,
                  document_name=document and document.get("file_name"),
                  document_bytes=document and self._files[document["file_id"]][1], raw=raw)
        msgs[msg.message_id] = msg
        return msg

    def _message(self, chat_id: Any, message_id: Any, what: str) -> Msg:
        msg = self._msgs.get(chat_id, {}).get(message_id)
        if msg is None or msg.deleted:
            raise ApiError(400, f"Bad Request: message to {what} not found")
        return msg

    def _reply_target(self, p: dict[str, Any]) -> int | None:
        params = p.get("reply_parameters") or {}
        target = params.get("message_id") or p.get("reply_to_message_id")
        if target and target not in self._msgs.get(p["chat_id"], {}) and not (
                params.get("allow_sending_without_reply") or p.get("allow_sending_without_reply")):
            raise ApiError(400, "Bad Request: message to be replied not found")
        return target

    def _text_arg(self, p: dict[str, Any], key: str, required: bool) -> str | None:
        text = p.get(key)
        if required and not (text or "").strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if text and len(text) > (4096 if key == "text" else 1024):
            raise ApiError(400, f"Bad Request: message {key} is too long")
        if text and (p.get("parse_mode") or "").upper() == "HTML":
            _check_html(text)
        return text

    # ----------------------------------------------------------------- Bot API methods
    def _get_me(self, p: dict[str, Any]) -> dict[str, Any]:
        return {**self.bot_user, "can_join_groups": True, "can_read_all_group_messages": False,
                "supports_inline_queries": False}

    async def _get_updates(self, p: dict[str, Any]) -> list[dict[str, Any]]:
        if self.webhook is not None:
            raise ApiError(409, "Conflict: can't use getUpdates method while webhook is active; use "
                                "deleteWebhook to delete the webhook first")
        offset, limit = int(p.get("offset") or 0), min(max(int(p.get("limit") or 100), 1), 100)
        if offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        elif offset < 0:
            self._updates = self._updates[offset:]
        allowed = p.get("allowed_updates") or []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + float(p.get("timeout") or 0)
        self._polls += 1
        me = self._polls
        self._notify()  # wake an older long poll so that it ends with 409
        while True:
            if me != self._polls:
                raise ApiError(409, "Conflict: terminated by other getUpdates request; make "
                                    "sure that only one bot instance is running")
            event = self._event
            ready = [u for u in self._updates if not allowed or any(k in u for k in allowed)]
            remaining = deadline - loop.time()
            if ready or self._closing or remaining <= 0:
                return ready[:limit]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)

    def _delete_webhook(self, p: dict[str, Any]) -> bool:
        if p.get("drop_pending_updates"):
            self._updates.clear()
        self.webhook = None
        self._notify()
        return True

    # ----------------------------------------------------------------- webhook mode
    def _set_webhook(self, p: dict[str, Any]) -> bool:
        url = p.get("url") or ""
        if not url:  # Telegram: an empty URL removes the webhook
            return self._delete_webhook(p)
        if urlsplit(url).scheme not in ("http", "https"):
            raise ApiError(400, "Bad Request: bad webhook: invalid URL")
        secret = p.get("secret_token") or None
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(secret)):
            raise ApiError(400, "Bad Request: secret token contains unallowed characters")
        connections = int(p.get("max_connections") or 40)
        if not 1 <= connections <= 100:
            raise ApiError(400, "Bad Request: bad webhook: max_connections must be between 1 and 100")
        if p.get("drop_pending_updates"):
            self._updates.clear()
        self.webhook = {"url": url, "secret_token": secret, "max_connections": connections,
                        "allowed_updates": list(p.get("allowed_updates") or [])}
        if self._pusher is None or self._pusher.done():
            self._pusher = asyncio.get_running_loop().create_task(self._push())
        self._notify()
        return True

    def _webhook_info(self, p: dict[str, Any]) -> dict[str, Any]:
        hook = self.webhook or {}
        info: dict[str, Any] = {"url": hook.get("url", ""), "has_custom_certificate": False,
                                "pending_update_count": len(self._updates)}
        if hook:
            info.update(max_connections=hook["max_connections"], allowed_updates=hook["allowed_updates"])
        failed = [post for post in self.webhook_posts if not 200 <= post.status < 300]
        if failed:
            info.update(last_error_date=int(self.clock()),
                        last_error_message=f"Wrong response from the webhook: {failed[-1].status}")
        return info

    @staticmethod
    def queue_key(update: dict[str, Any]) -> str:
        """Telegram's queue for an update: its chat's, a callback query's user's, else its own."""
        for part in update.values():
            if isinstance(part, dict) and isinstance(part.get("chat"), dict):
                return f"chat {part['chat']['id']}"
        if isinstance(query := update.get("callback_query"), dict):
            return f"user {query['from']['id']}"
        return f"update {update['update_id']}"

    async def _push(self) -> None:
        """Post the updates while a webhook is set (see the module's docstring)."""
        loop = asyncio.get_running_loop()
        while self.webhook is not None and not self._closing:
            event, hook = self._event, self.webhook
            allowed = hook["allowed_updates"]
            now, waits, seen = loop.time(), [1.0], set()
            for update in list(self._updates):
                if allowed and not any(k in update for k in allowed):
                    self._updates.remove(update)  # not asked for: Telegram never sends it
                    continue
                key = self.queue_key(update)
                if key in seen or key in self._posting:
                    continue  # a chat's next update waits for the one before it
                seen.add(key)
                _, again = self._retry.get(update["update_id"], (0, 0.0))
                if again > now:
                    waits.append(again - now)
                    continue
                if len(self._posting) >= hook["max_connections"]:
                    break
                self._posting[key] = loop.create_task(self._post(hook, update, key))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), min(waits))

    async def _post(self, hook: dict[str, Any], update: dict[str, Any], key: str) -> None:
        started = time.monotonic()
        try:
            status = await asyncio.wait_for(self._http_post(hook["url"], hook["secret_token"], update),
                                            self.webhook_timeout)
        except (OSError, ValueError, IndexError, asyncio.IncompleteReadError, TimeoutError):
            status = 0
        finally:
            self._posting.pop(key, None)
        self.webhook_posts.append(WebhookPost(update["update_id"], key, status, started, time.monotonic()))
        if 200 <= status < 300:
            self._retry.pop(update["update_id"], None)
            with contextlib.suppress(ValueError):
                self._updates.remove(update)
        else:
            failures = self._retry.get(update["update_id"], (0, 0.0))[0] + 1
            first, longest = self.webhook_backoff
            self._retry[update["update_id"]] = (
                failures, asyncio.get_running_loop().time() + min(longest, first * 2 ** (failures - 1)))
        self._notify()

    @staticmethod
    async def _http_post(url: str, secret: str | None, update: dict[str, Any]) -> int:
        """One HTTP/1.1 POST of the update as JSON on a connection of its own; the status."""
        parts = urlsplit(url)
        body = json.dumps(update, ensure_ascii=False).encode()
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port or 80)
        try:
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            head = (f"POST {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\nConnection: close\r\n")
            if secret:
                head += f"X-Telegram-Bot-Api-Secret-Token: {secret}\r\n"
            writer.write(head.encode() + b"\r\n" + body)
            await writer.drain()
            line = await reader.readline()
            if not line:
                return 0  # closed without an answer
            status = int(line.split()[1])
            with contextlib.suppress(OSError):
                await reader.read()  # the rest, up to the close
            return status
        finally:
            writer.close()

    @staticmethod
    def _scope(p: dict[str, Any]) -> str:
        return json.dumps([p.get("scope") or {"type": "default"}, p.get("language_code") or ""])

    def _set_commands(self, p: dict[str, Any]) -> bool:
        self._commands[self._scope(p)] = p.get("commands") or []
        return True

    def _send_message(self, p: dict[str, Any]) -> dict[str, Any]:
        chat = self._chat(p["chat_id"], write=True)
        text = self._text_arg(p, "text", required=True)
        msg = self._store(chat, self.bot_user, text=text, parse_mode=p.get("parse_mode"),
                          entities=p.get("entities"), reply_markup=p.get("reply_markup"),
                          reply_to=self._reply_target(p))
        return msg.raw

    def _send_media(self, p: dict[str, Any]) -> dict[str, Any]:
        chat = self._chat(p["chat_id"], write=True)
        kind = "photo" if "photo" in p else "document"
        source = p[kind]
        if isinstance(source, Upload):
            file_id, name, content = f"{kind}{self._tick()}", source.filename, source.content
        elif source in self._files:
            file_id, (path, content) = source, self._files[source]
            name = path.rsplit("/", 1)[-1]
        else:
            raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        if kind == "photo":
            media = self._photo_media(file_id, content)
        else:
            self._files[file_id] = (f"documents/{name}", content)
            media = {"document": {"file_id": file_id, "file_unique_id": f"u{file_id}",
                                  "file_name": name, "file_size": len(content)}}
        msg = self._store(chat, self.bot_user, caption=self._text_arg(p, "caption", False),
                          parse_mode=p.get("parse_mode"), entities=p.get("caption_entities"),
                          reply_markup=p.get("reply_markup"), reply_to=self._reply_target(p),
                          media=media)
        return msg.raw

    def _voice_media(self, file_id: str, content: bytes = b"OggS-fake-voice") -> dict[str, Any]:
        self._files.setdefault(file_id, (f"voice/{file_id}.ogg", content))
        return {"voice": {"file_id": file_id, "file_unique_id": f"u{file_id}", "duration": 3,
                          "mime_type": "audio/ogg", "file_size": len(content)}}

    def _send_voice(self, p: dict[str, Any]) -> dict[str, Any]:
        chat = self._chat(p["chat_id"], write=True)
        source = p["voice"]
        if isinstance(source, Upload):
            file_id = f"voice{self._tick()}"
            self._files[file_id] = (f"voice/{source.filename}", source.content)
        elif source in self._files:
            file_id = source
        else:
            raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        msg = self._store(chat, self.bot_user, caption=self._text_arg(p, "caption", False),
                          parse_mode=p.get("parse_mode"), reply_markup=p.get("reply_markup"),
                          reply_to=self._reply_target(p), media=self._voice_media(file_id))
        return msg.raw

    def _send_location(self, p: dict[str, Any]) -> dict[str, Any]:
        chat = self._chat(p["chat_id"], write=True)
        try:
            location = {"latitude": float(p["latitude"]), "longitude": float(p["longitude"])}
        except (KeyError, TypeError, ValueError):
            raise ApiError(400, "Bad Request: wrong latitude or longitude") from None
        msg = self._store(chat, self.bot_user, reply_markup=p.get("reply_markup"),
                          reply_to=self._reply_target(p), media={"location": location})
        return msg.raw

    def _send_poll(self, p: dict[str, Any]) -> dict[str, Any]:
        chat = self._chat(p["chat_id"], write=True)
        question = p.get("question")
        if not isinstance(question, str) or not 1 <= len(question.strip()) <= 300:
            raise ApiError(400, "Bad Request: poll question length must not exceed 300")
        if (p.get("question_parse_mode") or "").upper() == "HTML":
            _check_html(question)
        raw_options = p.get("options")
        if not isinstance(raw_options, list) or not 2 <= len(raw_options) <= 12:
            raise ApiError(400, "Bad Request: poll must have at least 2 option")
        options = []
        for option in raw_options:  # InputPollOption objects, or bare strings as the Bot API once took
            text = option.get("text") if isinstance(option, dict) else option
            if not isinstance(text, str) or not 1 <= len(text) <= 100:
                raise ApiError(400, "Bad Request: poll options length must not exceed 100")
            # persistent_id: Bot API 9.6 names each option for good (PTB 22.8 requires it)
            options.append({"persistent_id": str(len(options)), "text": text, "voter_count": 0})
        kind = p.get("type") or "regular"
        poll = {"id": str(5_000_000_000_000_000_000 + self._tick()), "question": plain_text(
                    question, p.get("question_parse_mode")), "options": options, "total_voter_count": 0,
                "is_closed": bool(p.get("is_closed")), "is_anonymous": p.get("is_anonymous", True) is not False,
                "type": kind, "allows_multiple_answers": bool(p.get("allows_multiple_answers")),
                # Bot API 9.6 and 10.0 fields that PTB 22.8 requires
                "allows_revoting": p.get("allows_revoting", kind != "quiz") is not False,
                "members_only": bool(p.get("members_only"))}
        msg = self._store(chat, self.bot_user, reply_markup=p.get("reply_markup"),
                          reply_to=self._reply_target(p), media={"poll": poll})
        return msg.raw

    def _stop_poll(self, p: dict[str, Any]) -> dict[str, Any]:
        self._chat(p["chat_id"], write=True)
        msg = self._message(p["chat_id"], p["message_id"], "stop poll")
        poll = msg.raw.get("poll")
        if poll is None:
            raise ApiError(400, "Bad Request: message with poll to stop not found")
        if not msg.from_bot:
            raise ApiError(400, "Bad Request: poll can't be stopped")
        if poll["is_closed"]:
            raise ApiError(400, "Bad Request: poll has already been closed")
        poll["is_closed"] = True
        msg.edits += 1
        self.push_update({"poll": copy.deepcopy(poll)})  # its state changed: the bot hears of it
        return copy.deepcopy(poll)

    def _edit(self, p: dict[str, Any]) -> dict[str, Any]:
        if "inline_message_id" in p:
            raise ApiError(400, "Bad Request: inline messages are not supported by the fake")
        self._chat(p["chat_id"], write=True)
        msg = self._message(p["chat_id"], p["message_id"], "edit")
        if not msg.from_bot:
            raise ApiError(400, "Bad Request: message can't be edited")
        markup = p.get("reply_markup")
        text, parse_mode = msg.source, msg.parse_mode
        if "text" in p:
            if "text" not in msg.raw:
                raise ApiError(400, "Bad Request: there is no text in the message to edit")
            text, parse_mode = self._text_arg(p, "text", required=True), p.get("parse_mode")
        if (text, parse_mode, markup) == (msg.source, msg.parse_mode, msg.reply_markup):
            raise ApiError(400, "Bad Request: message is not modified: specified new message "
                                "content and reply markup are exactly the same as a current "
                                "content and reply markup of the message")
        msg.source, msg.parse_mode, msg.reply_markup = text, parse_mode, markup
        msg.text = plain_text(text, parse_mode)
        msg.edits += 1
        msg.raw["edit_date"] = int(self.clock())
        msg.raw.pop("reply_markup", None)
        if markup and "inline_keyboard" in markup:
            msg.raw["reply_markup"] = markup
        if "text" in p:
            msg.raw["text"] = msg.text
            msg.raw.pop("entities", None)
            if p.get("entities"):
                msg.raw["entities"] = p["entities"]
        return msg.raw

    # The emoji Telegram accepts as a reaction (a subset; the bot uses 👍 and 👀).
    REACTIONS = frozenset("👍👎❤🔥🎉👀🙏👌🤝✍")

    def _set_reaction(self, p: dict[str, Any]) -> bool:
        self._chat(p["chat_id"], write=True)
        msg = self._message(p["chat_id"], p["message_id"], "react")
        emoji = [r.get("emoji") for r in p.get("reaction") or [] if r.get("type") == "emoji"]
        if p["chat_id"] in self._no_reactions or any(e not in self.REACTIONS for e in emoji):
            raise ApiError(400, "Bad Request: REACTION_INVALID")
        msg.reactions = emoji  # the bot's reaction replaces its earlier one
        return True

    def _delete_message(self, p: dict[str, Any]) -> bool:
        self._chat(p["chat_id"], write=True)
        self._message(p["chat_id"], p["message_id"], "delete").deleted = True
        return True

    def _answer_callback(self, p: dict[str, Any]) -> bool:
        if p["callback_query_id"] not in self._callback_ids:
            raise ApiError(400, "Bad Request: query is too old and response timeout expired "
                                "or query ID is invalid")
        self._callback_ids.discard(p["callback_query_id"])
        self.callback_answers.append({"callback_query_id": p["callback_query_id"],
                                      "text": p.get("text"),
                                      "show_alert": bool(p.get("show_alert"))})
        return True

    def _get_chat(self, p: dict[str, Any]) -> dict[str, Any]:
        gifts = dict.fromkeys(("unlimited_gifts", "limited_gifts", "unique_gifts",
                               "premium_subscription", "gifts_from_channels"), False)
        return {**self._chat(p["chat_id"]), "accent_color_id": 0, "max_reaction_count": 11,
                "accepted_gift_types": gifts}

    def _get_chat_member(self, p: dict[str, Any]) -> dict[str, Any]:
        self._chat(p["chat_id"])
        answer = self._members.get((p["chat_id"], p["user_id"]), "member")
        if isinstance(answer, ApiError):
            raise answer
        member: dict[str, Any] = {"status": answer, "user": self.user(p["user_id"], f"User {p['user_id']}")}
        if answer == "kicked":
            member["until_date"] = 0
        elif answer == "creator":
            member["is_anonymous"] = False
        return member

    def _get_file(self, p: dict[str, Any]) -> dict[str, Any]:
        if p["file_id"] not in self._files:
            raise ApiError(400, "Bad Request: invalid file_id")
        path, content = self._files[p["file_id"]]
        return {"file_id": p["file_id"], "file_unique_id": f"u{p['file_id']}",
                "file_size": len(content), "file_path": path}

    def _leave_chat(self, p: dict[str, Any]) -> bool:
        kind = self._chat(p["chat_id"], write=True)["type"]
        self._kicked[p["chat_id"]] = f"Forbidden: bot is not a member of the {kind} chat"
        return True

    def _forward(self, p: dict[str, Any], copying: bool) -> dict[str, Any]:
        chat = self._chat(p["chat_id"], write=True)
        self._chat(p["from_chat_id"])
        src = self._message(p["from_chat_id"], p["message_id"], "copy" if copying else "forward")
        media = {k: v for k, v in src.raw.items() if k in ("photo", "document")}
        if not copying:
            media["forward_origin"] = {"type": "user", "sender_user": src.raw["from"],
                                       "date": src.date}
        if copying and "caption" in p:
            caption, parse_mode = self._text_arg(p, "caption", False), p.get("parse_mode")
        else:
            caption, parse_mode = src.source, src.parse_mode
        text_kw = {"caption" if "text" not in src.raw else "text": caption}
        msg = self._store(chat, self.bot_user, parse_mode=parse_mode,
                          reply_markup=p.get("reply_markup") if copying else None,
                          reply_to=self._reply_target(p), media=media, **text_kw)
        return {"message_id": msg.message_id} if copying else msg.raw
