"""Look up user-facing text by key, in the chat's language, with named parameters.

Parameters are inserted as given: callers escape user text (``html.escape``) before it
gets here, because templates themselves carry HTML.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from bot.config import DEFAULT_CATEGORIES
from bot.text.locale import en, zh

CATALOGS: dict[str, dict[str, str]] = {"zh": zh.MESSAGES, "en": en.MESSAGES}


class Texts:
    def __init__(self, language: str, tz: ZoneInfo, categories: dict[str, tuple[str, str]] | None = None) -> None:
        self.language = language
        self.tz = tz
        self._messages = CATALOGS[language]
        # key → (zh, en), in config order; by default the domain's eleven
        self._categories = categories or {c.key: (c.zh, c.en) for c in DEFAULT_CATEGORIES}

    def category(self, key: str) -> str:
        zh, en = self._categories.get(key) or self._categories.get("other") or (key, key)
        return zh if self.language == "zh" else en

    def category_keys(self) -> list[str]:
        return list(self._categories)

    def __call__(self, key: str, **params: object) -> str:
        return self._messages[key].format(**params)

    def duration(self, seconds: float) -> str:
        """2小时15分 / 2 h 15 min: the two largest units, rounded down."""
        seconds = max(0, int(seconds))
        units = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
        first = next((i for i, (_, size) in enumerate(units) if seconds >= size), len(units) - 1)
        parts = []
        for unit, size in units[first : first + 2]:
            count, seconds = divmod(seconds, size)
            if count or not parts:
                parts.append(self(f"dur.{unit}", n=count))
        return self("dur.sep").join(parts)

    def time(self, ts: float) -> str:
        """A moment as people in the town read it: month-day hour:minute, local time."""
        return datetime.fromtimestamp(ts, self.tz).strftime("%m-%d %H:%M")

    def date(self, ts: float) -> str:
        return datetime.fromtimestamp(ts, self.tz).strftime("%Y-%m-%d")


class Languages:
    """Which language each chat reads: its own setting (/lang), else — for a reply to a
    person — their Telegram language, else the configured default."""

    def __init__(self, default: str, tz: ZoneInfo, categories: dict[str, tuple[str, str]] | None = None) -> None:
        self.default = default
        self.texts = {lang: Texts(lang, tz, categories) for lang in CATALOGS}
        self._chats: dict[int, str] = {}

    def load(self, chat_languages: dict[int, str]) -> None:
        self._chats = {chat: lang for chat, lang in chat_languages.items() if lang in self.texts}

    def move_chat(self, old_chat: int, new_chat: int) -> None:
        if old_chat in self._chats:
            self._chats[new_chat] = self._chats.pop(old_chat)

    def set_chat(self, chat_id: int, language: str) -> None:
        self._chats[chat_id] = language

    def get(self, language: str | None) -> Texts:
        return self.texts.get(language or self.default) or self.texts[self.default]

    def for_chat(self, chat_id: int | None) -> Texts:
        return self.get(self._chats.get(chat_id) if chat_id is not None else None)

    def for_user(self, chat_id: int | None, language_code: str | None) -> Texts:
        if chat_id is not None and chat_id in self._chats:
            return self.texts[self._chats[chat_id]]
        return self.get(user_language(language_code))

    def chat_language(self, chat_id: int) -> str | None:
        """The language the chat chose with /lang, if it did."""
        return self._chats.get(chat_id)

    def chats(self) -> list[int]:
        """The chats that chose a language."""
        return list(self._chats)


def user_language(language_code: str | None) -> str | None:
    """Telegram's language_code (e.g. "zh-hans", "en-US") → a catalog we have, or None."""
    code = (language_code or "").lower()
    if code.startswith("zh"):
        return "zh"
    if code.startswith("en"):
        return "en"
    return None
