"""群众安全感 (issue 16): the counts of the bot's monthly polls, as Telegram reports them.

Telegram sends a ``poll`` update whenever the state of a poll the bot sent changes (an
anonymous poll names nobody: only the counts per option). The latest counts are kept until
the poll is stopped, whose answer gives the final ones (bot/telegram/delivery.py). An
update about a poll that is not ours, or already closed, changes nothing.
"""

from __future__ import annotations

from telegram import Update
from telegram.ext import ContextTypes

from handlers.common import services


async def counted(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    poll = update.poll
    if poll is None:
        return
    svc = services(context)
    async with svc.store.transaction(update=update.update_id) as tx:  # marks the update done with its effect
        await tx.safety_poll_counted(poll.id, [option.voter_count for option in poll.options],
                                     poll.total_voter_count, svc.clock.now())
