"""Every update the bot answers, registered in one place, in the order they must match."""

from __future__ import annotations

from telegram import Update
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    MessageHandler,
    PollHandler,
    TypeHandler,
    filters,
)

from bot.telegram import inbox
from bot.tree import Tree
from handlers import (
    broadcast,
    chats,
    duty,
    language,
    limits,
    matters,
    migration,
    people,
    report,
    safety,
    screening,
    village_notice,
    visits,
)
from handlers import reports as report_handlers
from handlers.common import BoundChat, UnitChat


def register(app: Application, tree: Tree) -> None:
    bound, unit = BoundChat(tree), UnitChat(tree)
    leader = broadcast.LeaderChat(tree)
    work = [*matters.COMMANDS, "list", "show", "summary", "duty", "held"]
    app.add_handlers(
        [
            # A group became a supergroup: follow it to its new id (issue 11).
            MessageHandler(filters.StatusUpdate.MIGRATE, migration.follow),
            # Anyone, any chat.
            CommandHandler("start", chats.start),
            CommandHandler("help", chats.help_text),
            CommandHandler("chatid", chats.chat_id),
            CommandHandler("bind", chats.bind),
            # --- The people's side (issue 4) ---------------------------------------------
            # Notices down the tree (一点发起、全网响应): /broadcast <text>, or a photo captioned
            # /broadcast, by a leader in their station's or community's group; anyone else,
            # anywhere else, is politely refused.
            CommandHandler("broadcast", broadcast.send, filters=leader),
            MessageHandler(filters.PHOTO & broadcast.CAPTION & leader, broadcast.send),
            CommandHandler("broadcast", broadcast.refuse),
            MessageHandler(filters.PHOTO & broadcast.CAPTION, broadcast.refuse),
            # One chat's language: /lang en | zh (a group's leaders; a person in private).
            # The officers' side (issue 16): the weekly safety notice's and screening's buttons,
            # and a new text or a finding as a reply to the bot's prompt in a community's group.
            CallbackQueryHandler(village_notice.button, pattern=village_notice.PATTERN),
            CallbackQueryHandler(screening.button, pattern=screening.PATTERN),
            MessageHandler(filters.REPLY & filters.TEXT & ~filters.COMMAND & bound & ~unit, village_notice.new_text),
            CommandHandler("lang", language.lang),
            # --- end of the people's side ------------------------------------------------
            # Residents report in their unit's group…
            CommandHandler("report", report.report_command, filters=unit),
            MessageHandler(filters.PHOTO & filters.CaptionRegex(r"(?i)^/report(@\w+)?(\s|$)") & unit,
                           report.report_photo),
            MessageHandler(filters.TEXT & ~filters.COMMAND & filters.Regex(report.KEYWORD) & unit,
                           report.report_keyword),
            MessageHandler(filters.TEXT & ~filters.COMMAND & unit, report.prompt_answer),
            # …or privately (私下反映): a deep link or /report in a private chat, then the text.
            CommandHandler("report", people.report_private, filters=filters.ChatType.PRIVATE),
            CallbackQueryHandler(people.choose_unit, pattern=f"^{people.UNIT_CHOICE}"),
            MessageHandler(((filters.TEXT & ~filters.COMMAND) | filters.PHOTO) & filters.ChatType.PRIVATE,
                           people.private_message),
            # --- Visit logs (走访日志, issue 16): written in private, step by step (a message
            # in private goes to an unfinished entry: people.private_message and
            # people.attachment ask visits.take); listed in a community's or the station's group.
            CommandHandler("visit", visits.start, filters=filters.ChatType.PRIVATE),
            CommandHandler("visit", visits.elsewhere),
            CallbackQueryHandler(visits.button, pattern=f"^{visits.visits.CALLBACK}"),
            CallbackQueryHandler(visits.spot_check, pattern=f"^{visits.visits.SPOT_CHECK}"),
            CommandHandler("visits", visits.list_visits, filters=bound),
            CommandHandler("visits", visits.list_elsewhere),
            # --- end of visit logs
            # …and are told where to go when they try elsewhere.
            CommandHandler("report", report.report_elsewhere),
            # Photos, voice notes and places replying to a card (or captioned #N) join the matter.
            MessageHandler((filters.PHOTO | filters.VOICE | filters.LOCATION) & (bound | filters.ChatType.PRIVATE),
                           people.attachment),
            # A resident's own matters.
            CommandHandler("my", people.my_matters),
            CommandHandler("cancel", people.cancel),
            # Heads and leaders work matters from their own chats: /claim N, /resolve N …,
            # /note, /close (无法解决), /refer (转交), /suspend, /resume, /escalate, /return,
            # /takeover, /reopen.
            *[CommandHandler(name, matters.matter_command(name), filters=bound) for name in matters.COMMANDS],
            CommandHandler("list", matters.list_open, filters=bound),
            CommandHandler("show", matters.show, filters=bound),
            # …and /show N in a private chat: a leader of the matter's unit or above, or its reporter.
            CommandHandler("show", matters.show_private, filters=filters.ChatType.PRIVATE),
            CommandHandler("summary", chats.summary_now, filters=bound),
            # The station's watch.
            CommandHandler("duty", duty.show_or_set, filters=bound),
            CallbackQueryHandler(duty.take_button, pattern=f"^{duty.TAKE_WATCH}$"),
            # Reports held over an abuse limit (issue 10): listed, and turned into matters.
            CommandHandler("held", limits.held_list, filters=bound),
            CallbackQueryHandler(limits.release_button, pattern=f"^{limits.RELEASE}"),
            # Buttons on cards and escalations (claim, resolve, category); stale ones get a toast.
            CallbackQueryHandler(matters.button),
            # --- Reports leaders read (issue 5): ledgers from a community's or the station's
            # group; outside the tree the usual "not bound" answer.
            CommandHandler("export", report_handlers.export, filters=bound),
            # Work commands in a private chat: where to send them (/show is answered by itself).
            CommandHandler([*matters.COMMANDS, "list", "summary", "duty", "export"], chats.private_work,
                           filters=filters.ChatType.PRIVATE),
            CommandHandler("export", chats.not_bound),
            # --- end of reports
            # Work commands in a chat outside the tree: nothing is logged.
            CommandHandler(work, chats.not_bound),
            # --- 群众安全感 (issue 16): the counts of the bot's monthly polls.
            PollHandler(safety.counted),
        ]
    )
    # Around everything: skip updates already done (a replay after a crash), and mark done
    # those whose handlers changed nothing. See bot/telegram/inbox.py.
    app.add_handler(TypeHandler(Update, inbox.open_update), group=-1)
    app.add_handler(TypeHandler(Update, duty.remember_staff), group=-2)  # before the inbox gate
    app.add_handler(TypeHandler(Update, inbox.close_update), group=1)
    app.add_error_handler(inbox.on_error)  # first: counts the failed try (issue 11)
    app.add_error_handler(chats.on_error)
