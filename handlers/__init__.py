"""Every update the bot answers, registered in one place, in the order they must match."""

from __future__ import annotations

from telegram.ext import Application, CallbackQueryHandler, CommandHandler, MessageHandler, filters

from bot.tree import Tree
from handlers import chats, matters, report
from handlers import reports as report_handlers
from handlers.common import BoundChat, UnitChat


def register(app: Application, tree: Tree) -> None:
    bound, unit = BoundChat(tree), UnitChat(tree)
    work = ["claim", "resolve", "note", "list", "show", "summary"]
    app.add_handlers(
        [
            # Anyone, any chat.
            CommandHandler(["start", "help"], chats.help_text),
            CommandHandler("chatid", chats.chat_id),
            CommandHandler("bind", chats.bind),
            # Residents report in their unit's group…
            CommandHandler("report", report.report_command, filters=unit),
            MessageHandler(filters.PHOTO & filters.CaptionRegex(r"(?i)^/report(@\w+)?(\s|$)") & unit,
                           report.report_photo),
            MessageHandler(filters.TEXT & ~filters.COMMAND & filters.Regex(report.KEYWORD) & unit,
                           report.report_keyword),
            MessageHandler(filters.TEXT & ~filters.COMMAND & unit, report.prompt_answer),
            # …and are told where to go when they try elsewhere.
            CommandHandler("report", report.report_elsewhere),
            # Heads and leaders work matters from their own chats.
            CommandHandler("claim", matters.claim, filters=bound),
            CommandHandler("resolve", matters.resolve, filters=bound),
            CommandHandler("note", matters.note, filters=bound),
            CommandHandler("list", matters.list_open, filters=bound),
            CommandHandler("show", matters.show, filters=bound),
            CommandHandler("summary", chats.summary_now, filters=bound),
            CallbackQueryHandler(matters.button),
            # --- Reports leaders read (issue 5): ledgers from a community's or the station's
            # group; outside the tree the usual "not bound" answer.
            CommandHandler("export", report_handlers.export, filters=bound),
            CommandHandler("export", chats.not_bound),
            # --- end of reports
            # Work commands in a chat outside the tree: nothing is logged.
            CommandHandler(work, chats.not_bound),
        ]
    )
    app.add_error_handler(chats.on_error)
