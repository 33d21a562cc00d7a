"""Logging for an operator: the set-up behind ``--log-level`` and ``--log-format``, and one
INFO line per event that matters (a report logged, claimed, resolved, escalated…).

An event line carries numbers and ids (matter, node, tier, chat), never a report's text or
a person's name: those stay in the database. Events caused by a write are logged after its
commit (``Tx.log_event`` in bot/store/), so a change rolled back is never logged.
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from pythonjsonlogger.json import JsonFormatter

LEVEL_VARIABLE = "TIERBOT_LOG_LEVEL"
FORMAT_VARIABLE = "TIERBOT_LOG_FORMAT"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Chatty at INFO: APScheduler logs twice per sweep (≈5,800 lines a day), httpx every request
# (with the token in its URL).
QUIET = ("apscheduler", "httpx", "httpcore", "aiosqlite")
# At DEBUG these libraries log whole updates and SQL parameters: what residents wrote and
# their names. DEBUG is for tierbot's own code; the libraries stay at INFO or above.
NO_DEBUG = ("telegram",)

events = logging.getLogger("tierbot.events")

# What each event says in words; the same fields go to a JSON line as they are.
_MESSAGES = {
    "reported": "matter {matter} reported in {node}",
    "claimed": "matter {matter} claimed at tier {tier} ({node})",
    "resolved": "matter {matter} resolved at tier {tier} ({node})",
    "unresolvable": "matter {matter} closed as unresolvable at tier {tier} ({node})",
    "referred": "matter {matter} closed as referred at tier {tier} ({node})",
    "cancelled": "matter {matter} cancelled by its reporter ({node})",
    "reopened": "matter {matter} reopened ({node})",
    "escalated": "matter {matter} escalated from tier {from_tier} to tier {to_tier} ({node}, {reason})",
    "returned": "matter {matter} returned from tier {from_tier} to tier {to_tier} ({node})",
    "taken_over": "matter {matter} taken over from tier {from_tier} by tier {to_tier} ({node})",
    "released": "matter {matter} released: no news from its claimer at tier {tier} ({node})",
    "bulletin": "{schedule} bulletin due {due} queued for {groups} group(s)",
    "broadcast_queued": "broadcast {broadcast} queued from {node} to {targets} group(s)",
    "broadcast_settled": "broadcast {broadcast} settled: {delivered} delivered, {failed} failed",
    "unreachable": "chat {chat} unreachable ({node}): {error}",
    "purged": "personal data cleared ({by}): {matters} matter(s) closed before {before}, {events} event(s), "
              "{attachments} attachment(s), {messages} message(s), {prompts} prompt(s), {users} name(s), "
              "{held} held report(s)",
    # --- issue 16: the monthly sense-of-safety poll ---
    "safety_poll_opened": "safety poll {month} queued for {groups} unit group(s)",
    "safety_poll_closed": "safety poll {month} of {node} closed: {answers} answer(s)",
    "safety_poll_given_up": "safety poll {month} of {node} closed as it stood: not sent, not stopped or out of reach",
}


def event(name: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log one event: its words for people, its fields for a JSON shipper."""
    if not events.isEnabledFor(level):  # cheap when filtered out: intake calls this per report
        return
    try:
        message = _MESSAGES[name].format(**fields)
    except (KeyError, IndexError):  # a slip here must not fail the commit it follows
        message = f"{name} {fields}"
    events.log(level, message, extra={"event": name, **fields})


class _JsonFormatter(JsonFormatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


def choose(level: str | None, fmt: str | None) -> tuple[str, str]:
    """The options given, else the environment, else INFO and text. Raises ValueError."""
    level = (level or os.environ.get(LEVEL_VARIABLE) or "INFO").strip().upper()
    fmt = (fmt or os.environ.get(FORMAT_VARIABLE) or "text").strip().lower()
    if level not in LEVELS:
        raise ValueError(f"log level {level!r}: use one of {', '.join(LEVELS)} ({LEVEL_VARIABLE})")
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r}: use one of {', '.join(FORMATS)} ({FORMAT_VARIABLE})")
    return level, fmt


def setup(level: str = "INFO", fmt: str = "text", stream: TextIO | None = None) -> logging.Handler:
    """Everything to one stream (stderr: journald or Docker keep it), at ``level``; in
    ``json``, one object a line: time (UTC), level, logger, message and the event's fields."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if fmt == "json":
        handler.setFormatter(
            _JsonFormatter(
                "{asctime}{levelname}{name}{message}", style="{", json_ensure_ascii=False,
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger", "exc_info": "traceback"},
            )
        )
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)
    number = logging.getLevelName(level)
    for name in QUIET:
        logging.getLogger(name).setLevel(max(logging.WARNING, number))
    for name in NO_DEBUG:
        logging.getLogger(name).setLevel(max(logging.INFO, number))
    return handler


def reset(handler: logging.Handler) -> None:
    """Undo ``setup`` (tests run it in-process)."""
    logging.getLogger().removeHandler(handler)
    logging.getLogger().setLevel(logging.WARNING)
    for name in (*QUIET, *NO_DEBUG):
        logging.getLogger(name).setLevel(logging.NOTSET)
