"""The objects handlers and jobs share, opened at start; kept in ``bot_data["services"]``."""

from __future__ import annotations

from dataclasses import dataclass, field

from apscheduler.triggers.cron import CronTrigger
from telegram.ext import ContextTypes

from bot.clock import Clock
from bot.config import Config
from bot.matters import Matters
from bot.store import Store
from bot.telegram.delivery import Delivery
from bot.text.i18n import Languages, Texts
from bot.tree import Tree
from escalation.notify import Notifier


@dataclass
class Services:
    config: Config
    tree: Tree
    texts: Texts  # the configured default language, for text not addressed to a chat
    langs: Languages  # per chat / per person: the renderer words a notice in it when it is sent
    clock: Clock
    store: Store
    matters: Matters
    delivery: Delivery
    notifier: Notifier
    weekly_trigger: CronTrigger
    first_started: float  # summaries due before the bot ever ran are not "missed"
    last_prune: float = 0.0  # when old inbox and outbox rows were last cleared
    usernames: dict[str, int] = field(default_factory=dict)  # station staff's @names seen (/duty @name)


def services(context: ContextTypes.DEFAULT_TYPE) -> Services:
    return context.application.bot_data["services"]



