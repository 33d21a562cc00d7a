"""Keep the bot token out of every log line.

The token is part of every Bot API URL (``…/bot<token>/getUpdates``), so httpx's request
lines carry it, and python-telegram-bot puts it in the message of a rejected token. A
filter on the root logger's handlers rewrites any record that contains the token's secret
part, whatever logger or level it came from, before any formatter sees it.
"""

from __future__ import annotations

import logging


def masked(token: str) -> str:
    """``987654321:AAH…`` → ``987654321:***`` (the bot id is public; the rest is the secret)."""
    bot_id, colon, _ = token.partition(":")
    return f"{bot_id}:***" if colon else "***"


def _secret(token: str) -> str:
    _, colon, secret = token.partition(":")
    return secret if colon and secret else token


class TokenFilter(logging.Filter):
    def __init__(self, token: str) -> None:
        super().__init__()
        self.secret = _secret(token)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.secret in message:
            record.msg, record.args = message.replace(self.secret, "***"), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text and self.secret in record.exc_text:
            record.exc_text = record.exc_text.replace(self.secret, "***")
            # Formatters that render exc_info themselves (python-json-logger) would print the
            # token again; without exc_info they all use exc_text.
            record.exc_info = None
        if record.stack_info and self.secret in record.stack_info:
            record.stack_info = record.stack_info.replace(self.secret, "***")
        return True


def install(token: str) -> TokenFilter:
    """Mask ``token`` in everything the root logger's handlers write (call after logging is set up)."""
    token_filter = TokenFilter(token)
    for handler in logging.getLogger().handlers:
        handler.addFilter(token_filter)
    return token_filter
