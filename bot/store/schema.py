"""The schema: its migrations, numbered, and the version a database must not exceed."""

from __future__ import annotations

MIN_SQLITE = (3, 35)  # INSERT … RETURNING
SENT_BATCH = 16  # accepted sends that may wait for the group commit beyond those in flight
ROWS_PER_INSERT = 200  # rows in one INSERT: well within SQLite's limit on parameters
IDS_PER_QUERY = 5000  # numbers in one "id IN (…)": within SQLite's limit of 32,766 parameters
MAX_TRIES = 3  # an update that could not be handled this often is marked failed (issue 11)
PURGED = "（已清除）"  # what personal data reads as once its retention period is over (issue 10)
# Timeline entries whose detail is the bot's own words (a category's name, a rating, an
# attachment's kind), not a person's: kept when personal data is cleared.
OWN_WORDS_EVENTS = ("categorized", "rated", "attached")
# The events that say where a matter stood when (arrivals, closes, reopens, missed
# deadlines): what the figures replay (queries.timelines), indexed apart (migration 20).
TIMELINE_KINDS = ("'escalated', 'taken_over', 'returned', 'reopened', 'resolved', 'unresolvable', 'referred', "
                  "'cancelled', 'reping'")

# Each entry moves the schema one version up; never edit one that has shipped.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE matters (
        id INTEGER PRIMARY KEY,
        unit_id TEXT NOT NULL,
        chat_id INTEGER NOT NULL,
        report_message_id INTEGER,
        reporter_id INTEGER NOT NULL,
        reporter_name TEXT NOT NULL,
        text TEXT NOT NULL,
        state TEXT NOT NULL,
        tier INTEGER NOT NULL,
        top_tier INTEGER NOT NULL,
        tier_since REAL NOT NULL,
        last_ping_at REAL,
        next_due REAL,
        rules TEXT NOT NULL,
        created_at REAL NOT NULL,
        first_claimed_at REAL,
        claimed_by INTEGER,
        claimed_by_name TEXT,
        claimed_at REAL,
        escalated_at REAL,
        resolved_at REAL,
        resolved_by INTEGER,
        resolved_by_name TEXT,
        resolution TEXT,
        card_chat_id INTEGER,
        card_message_id INTEGER,
        category TEXT NOT NULL DEFAULT 'other',
        urgent INTEGER NOT NULL DEFAULT 0,
        private INTEGER NOT NULL DEFAULT 0,
        rating TEXT,
        rated_at REAL,
        category_set INTEGER NOT NULL DEFAULT 0,
        claim_since REAL,
        reminded_upto REAL,
        last_activity_at REAL,
        idle_reminded_at REAL,
        suspended_at REAL,
        suspended_until REAL,
        closed_at REAL,
        close_reason TEXT
    );
    CREATE INDEX matters_due ON matters(next_due) WHERE next_due IS NOT NULL;
    CREATE INDEX matters_unit_state ON matters(unit_id, state);
    CREATE INDEX matters_created ON matters(created_at);
    CREATE INDEX matters_open_or_resolved ON matters(resolved_at);
    CREATE INDEX matters_closed ON matters(closed_at);
    CREATE INDEX matters_card ON matters(card_chat_id, card_message_id);
    CREATE INDEX matters_report ON matters(chat_id, report_message_id);
    CREATE INDEX matters_reporter ON matters(reporter_id);

    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        matter_id INTEGER NOT NULL REFERENCES matters(id),
        at REAL NOT NULL,
        actor_id INTEGER,
        actor_name TEXT,
        kind TEXT NOT NULL,
        tier INTEGER,
        detail TEXT
    );
    CREATE INDEX events_matter ON events(matter_id);
    CREATE INDEX events_kind_at ON events(kind, at);

    CREATE TABLE attachments (
        id INTEGER PRIMARY KEY,
        matter_id INTEGER NOT NULL REFERENCES matters(id),
        kind TEXT NOT NULL,
        file_id TEXT NOT NULL,
        added_by INTEGER,
        at REAL NOT NULL
    );
    CREATE INDEX attachments_matter ON attachments(matter_id);

    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        chat_id INTEGER NOT NULL,
        kind TEXT NOT NULL,
        matter_id INTEGER REFERENCES matters(id),
        text TEXT,
        markup TEXT,
        reply_to INTEGER,
        media TEXT,
        state TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        not_before REAL NOT NULL,
        created_at REAL NOT NULL,
        sent_at REAL,
        message_id INTEGER,
        error TEXT
    );
    CREATE INDEX outbox_pending ON outbox(not_before) WHERE state = 'pending';

    CREATE TABLE chats (
        chat_id INTEGER PRIMARY KEY,
        node_id TEXT,
        bound_by INTEGER,
        bound_at REAL,
        unreachable_at REAL,
        language TEXT
    );

    CREATE TABLE prompts (
        chat_id INTEGER NOT NULL,
        user_id INTEGER NOT NULL,
        asked_at REAL NOT NULL,
        kind TEXT NOT NULL DEFAULT 'report',
        unit_id TEXT,
        matter_id INTEGER,
        draft TEXT,
        PRIMARY KEY (chat_id, user_id)
    );

    CREATE TABLE held_pings (
        id INTEGER PRIMARY KEY,
        chat_id INTEGER NOT NULL,
        matter_id INTEGER NOT NULL REFERENCES matters(id),
        kind TEXT NOT NULL,
        tier INTEGER NOT NULL,
        reason TEXT NOT NULL,
        at REAL NOT NULL,
        release_at REAL NOT NULL
    );
    CREATE INDEX held_pings_release ON held_pings(release_at);

    CREATE TABLE users (
        user_id INTEGER PRIMARY KEY,
        name TEXT,
        private_chat INTEGER NOT NULL DEFAULT 0,
        language TEXT,
        updated_at REAL
    );

    CREATE TABLE duty_overrides (
        id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL,
        name TEXT,
        start REAL NOT NULL,
        until REAL NOT NULL,
        set_by INTEGER,
        set_at REAL NOT NULL
    );
    CREATE INDEX duty_overrides_until ON duty_overrides(until);

    CREATE TABLE inbox (
        update_id INTEGER PRIMARY KEY,
        payload TEXT NOT NULL,
        received_at REAL NOT NULL,
        done_at REAL
    );
    CREATE INDEX inbox_pending ON inbox(update_id) WHERE done_at IS NULL;

    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );

    CREATE TABLE schedule_runs (
        name TEXT NOT NULL,
        period TEXT NOT NULL,
        ran_at REAL NOT NULL,
        PRIMARY KEY (name, period)
    );
    """,
    # 2 (issue 5, bulletins): matters reported per unit and category in each bulletin week,
    # counted once when a chart first needs that week (a week's reports never change), so a
    # chart's eight weeks do not re-count a big town's history every time. ``counts`` is
    # JSON: [[unit_id, category, reported], ...].
    """
    CREATE TABLE week_counts (
        week_end REAL PRIMARY KEY,
        counts TEXT NOT NULL
    );
    """,
    # 3: broadcasts (一点发起、全网响应): a notice from a station or community to its unit
    # groups, each target's message in the outbox under its own key; the sender's delivery
    # report is queued once, when the last target's outcome is recorded.
    """
    CREATE TABLE broadcasts (
        id INTEGER PRIMARY KEY,
        node_id TEXT NOT NULL,
        chat_id INTEGER NOT NULL,
        message_id INTEGER,
        sender_id INTEGER NOT NULL,
        sender_name TEXT NOT NULL,
        text TEXT NOT NULL,
        photo TEXT,
        language TEXT NOT NULL,
        targets INTEGER NOT NULL,
        created_at REAL NOT NULL,
        reported_at REAL
    );
    CREATE INDEX broadcasts_unreported ON broadcasts(id) WHERE reported_at IS NULL;

    CREATE TABLE broadcast_targets (
        broadcast_id INTEGER NOT NULL REFERENCES broadcasts(id),
        unit_id TEXT NOT NULL,
        chat_id INTEGER NOT NULL,
        outbox_key TEXT NOT NULL,
        PRIMARY KEY (broadcast_id, unit_id)
    );
    CREATE INDEX broadcast_targets_chat ON broadcast_targets(chat_id);
    """,
    # 4 (issue 10, abuse limits): whom a report counts against (the person, or the
    # sender_chat of an anonymous admin or channel post), whether Telegram shows a private
    # reporter as a member of the unit's group, and when a matter first alerted as urgent.
    # Reports over a limit are kept in held_reports (not matters: no figure sees them)
    # until a head turns one into a matter. Older matters have no limit_key: they count
    # against nobody, which forgets at most an hour's and a day's reports at the upgrade.
    """
    ALTER TABLE matters ADD COLUMN limit_key INTEGER;
    ALTER TABLE matters ADD COLUMN membership TEXT;
    ALTER TABLE matters ADD COLUMN urgent_at REAL;
    CREATE INDEX matters_limit ON matters(limit_key, created_at) WHERE limit_key IS NOT NULL;
    CREATE INDEX matters_limit_urgent ON matters(limit_key, urgent_at) WHERE urgent_at IS NOT NULL;

    CREATE TABLE held_reports (
        id INTEGER PRIMARY KEY,
        unit_id TEXT NOT NULL,
        chat_id INTEGER NOT NULL,
        message_id INTEGER,
        reporter_id INTEGER NOT NULL,
        reporter_name TEXT NOT NULL,
        limit_key INTEGER NOT NULL,
        text TEXT NOT NULL,
        photo TEXT,
        private INTEGER NOT NULL DEFAULT 0,
        membership TEXT,
        reason TEXT NOT NULL,
        created_at REAL NOT NULL,
        matter_id INTEGER REFERENCES matters(id),
        released_by INTEGER,
        released_at REAL
    );
    CREATE INDEX held_reports_key ON held_reports(limit_key, created_at);
    CREATE INDEX held_reports_waiting ON held_reports(unit_id, id) WHERE matter_id IS NULL;
    """,
    # 5 (issue 12, figures): each published bulletin's figures, per node, so the next period
    # is compared with what was shown (JSON, see escalation/reports/service.py); and the first
    # claim re-read from the timeline, since a resolve without a claim used to set it.
    """
    CREATE TABLE published_figures (
        schedule TEXT NOT NULL,
        period_start REAL NOT NULL,
        period_end REAL NOT NULL,
        figures TEXT NOT NULL,
        published_at REAL NOT NULL,
        PRIMARY KEY (schedule, period_start, period_end)
    );
    UPDATE matters SET first_claimed_at = (SELECT min(e.at) FROM events e WHERE e.matter_id = matters.id
        AND e.kind IN ('claimed', 'taken_over'));
    """,
    # 6 (issue 10, data kept no longer than needed; issue 11, the poisoned update): an
    # update's payload is kept only until it is done (NULL after, and from chats outside
    # the tree never stored), so it may be NULL; an update that cannot be handled counts
    # its tries and, after the last, is marked failed with its error. Payloads of updates
    # already done go now. Matters whose personal data was cleared say when.
    """
    CREATE TABLE inbox_new (
        update_id INTEGER PRIMARY KEY,
        payload TEXT,
        received_at REAL NOT NULL,
        done_at REAL,
        tries INTEGER NOT NULL DEFAULT 0,
        failed_at REAL,
        error TEXT
    );
    INSERT INTO inbox_new (update_id, payload, received_at, done_at)
        SELECT update_id, CASE WHEN done_at IS NULL THEN payload END, received_at, done_at FROM inbox;
    DROP TABLE inbox;
    ALTER TABLE inbox_new RENAME TO inbox;
    CREATE INDEX inbox_pending ON inbox(update_id) WHERE done_at IS NULL;
    CREATE INDEX inbox_failed ON inbox(failed_at) WHERE failed_at IS NOT NULL;

    ALTER TABLE matters ADD COLUMN purged_at REAL;
    CREATE INDEX matters_unpurged ON matters(closed_at) WHERE purged_at IS NULL;
    """,
    # 7: what a notice's words are made of (issue 13): a notice rendered when it is sent,
    # from the state as it is then, keeps the renderer's input here (JSON), not its text.
    """
    ALTER TABLE outbox ADD COLUMN data TEXT;
    """,
    # 8: the weekly safety notice to the village (issue 16): one draft per community a week,
    # published (as a broadcast), skipped, or left; the prompts that ask for a new text.
    """
    CREATE TABLE village_notices (
        id INTEGER PRIMARY KEY,
        community_id TEXT NOT NULL,
        week TEXT NOT NULL,
        chat_id INTEGER NOT NULL,
        text TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'draft',
        drafted_at REAL NOT NULL,
        draft_message_id INTEGER,
        decided_at REAL,
        decided_by INTEGER,
        decided_by_name TEXT,
        broadcast_id INTEGER,
        UNIQUE (community_id, week)
    );
    CREATE INDEX village_notices_drafted ON village_notices(drafted_at);
    CREATE INDEX outbox_notice_prompts ON outbox(chat_id, message_id) WHERE kind = 'notice_prompt';
    """,
    # 9: the weekly screening for disputes (issue 16): each community's answer for a week (a
    # zero-report or findings), and each finding with its unit and what became of it.
    """
    CREATE TABLE screenings (
        id INTEGER PRIMARY KEY,
        community_id TEXT NOT NULL,
        week TEXT NOT NULL,
        chat_id INTEGER NOT NULL,
        asked_at REAL NOT NULL,
        due_at REAL NOT NULL,
        state TEXT NOT NULL DEFAULT 'asked',
        answered_at REAL,
        answered_by INTEGER,
        answered_by_name TEXT,
        reminded_at REAL,
        ask_message_id INTEGER,
        UNIQUE (community_id, week)
    );
    CREATE INDEX screenings_due ON screenings(due_at);
    CREATE TABLE screening_findings (
        id INTEGER PRIMARY KEY,
        screening_id INTEGER NOT NULL REFERENCES screenings(id),
        unit_id TEXT NOT NULL,
        text TEXT NOT NULL,
        by_id INTEGER NOT NULL,
        by_name TEXT NOT NULL,
        at REAL NOT NULL,
        outcome TEXT,
        matter_id INTEGER,
        decided_at REAL
    );
    CREATE INDEX screening_findings_of ON screening_findings(screening_id);
    CREATE INDEX outbox_screening_prompts ON outbox(chat_id, message_id) WHERE kind = 'screening_prompt';
    """,
    # 10 (issue 16, 群众安全感): the monthly anonymous poll in each unit group, one per unit and
    # month (local 'YYYY-MM' of its opening). ``outbox_key`` names its sendPoll; ``message_id``
    # and ``poll_id`` are what Telegram gave it; ``counts`` (JSON, voters per option, in the
    # options' order) and ``answers`` are the latest Telegram reported, final once ``closed_at``
    # is set (by stopPoll, or when it could not be sent or stopped).
    """
    CREATE TABLE safety_polls (
        id INTEGER PRIMARY KEY,
        unit_id TEXT NOT NULL,
        month TEXT NOT NULL,
        chat_id INTEGER NOT NULL,
        outbox_key TEXT NOT NULL,
        message_id INTEGER,
        poll_id TEXT,
        opened_at REAL NOT NULL,
        closes_at REAL NOT NULL,
        stop_queued_at REAL,
        closed_at REAL,
        counts TEXT,
        answers INTEGER NOT NULL DEFAULT 0,
        counted_at REAL,
        UNIQUE (unit_id, month)
    );
    CREATE INDEX safety_polls_poll ON safety_polls(poll_id) WHERE poll_id IS NOT NULL;
    CREATE INDEX safety_polls_open ON safety_polls(closes_at) WHERE closed_at IS NULL;
    CREATE INDEX safety_polls_month ON safety_polls(month);
    """,
    # 11 (issue 14, live views): every message about a matter outside its card (a ping in a
    # group, its DM copies, a private matter's card in a head's DM) once Telegram took it:
    # its chat and message id, the notice's kind and data (what it is composed from, kept
    # here since the outbox forgets after 30 days), and the matters it names. Edited when
    # they change (bot/views.py) until ``dead`` says why not (gone, unreachable, migrated).
    """
    CREATE TABLE views (
        key TEXT PRIMARY KEY,
        chat_id INTEGER NOT NULL,
        message_id INTEGER NOT NULL,
        kind TEXT NOT NULL,
        data TEXT,
        created_at REAL NOT NULL,
        dead TEXT
    );
    CREATE INDEX views_chat ON views(chat_id) WHERE dead IS NULL;

    CREATE TABLE view_matters (
        matter_id INTEGER NOT NULL REFERENCES matters(id),
        view_key TEXT NOT NULL REFERENCES views(key),
        PRIMARY KEY (matter_id, view_key)
    ) WITHOUT ROWID;
    CREATE INDEX view_matters_view ON view_matters(view_key);
    """,
    # 12 (issue 12, bulletins' speed): the ratings given in a period are read from this index
    # alone (kind and time, then which matter and which rating), not from the events' rows.
    """
    CREATE INDEX events_kind_at_matter ON events(kind, at, matter_id, detail);
    """,
    # 13 (issue 16, the officers' side): visit logs (走访日志). An entry is written as it is
    # guided (``step``: what it waits for) and finished with 完成 (``finished_at``); one left
    # unfinished is deleted 24 h after its last step. ``units``: JSON list of the unit ids
    # visited; the place as sent (WGS-84) and a venue's title. Its photos by Telegram file id.
    # A matter made from a visit's finding names it in ``matters.visit_id``.
    """
    CREATE TABLE visits (
        id INTEGER PRIMARY KEY,
        user_id INTEGER NOT NULL,
        user_name TEXT NOT NULL,
        chat_id INTEGER NOT NULL,
        community_id TEXT,
        step TEXT NOT NULL,
        units TEXT NOT NULL DEFAULT '[]',
        households INTEGER,
        deed TEXT,
        findings TEXT,
        latitude REAL,
        longitude REAL,
        place TEXT,
        photos INTEGER NOT NULL DEFAULT 0,
        started_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        finished_at REAL
    );
    CREATE INDEX visits_open ON visits(user_id) WHERE finished_at IS NULL;
    CREATE INDEX visits_stale ON visits(updated_at) WHERE finished_at IS NULL;
    CREATE INDEX visits_finished ON visits(finished_at) WHERE finished_at IS NOT NULL;

    CREATE TABLE visit_photos (
        visit_id INTEGER NOT NULL REFERENCES visits(id),
        position INTEGER NOT NULL,
        file_id TEXT NOT NULL,
        at REAL NOT NULL,
        PRIMARY KEY (visit_id, position)
    );

    ALTER TABLE matters ADD COLUMN visit_id INTEGER REFERENCES visits(id);
    CREATE INDEX matters_visit ON matters(visit_id) WHERE visit_id IS NOT NULL;
    """,
    # issue 18 (several workers on one PostgreSQL): the sender's lease, and the flood waits
    # Telegram set per chat (chat 0: every chat), so a new sender honours them. On SQLite
    # (one process) both stay empty.
    """
    CREATE TABLE delivery_lease (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        generation INTEGER NOT NULL,
        expires_at REAL NOT NULL
    );

    CREATE TABLE flood_waits (
        chat_id INTEGER NOT NULL PRIMARY KEY,
        until REAL NOT NULL
    );
    """,
    # 15 (issue 17, several stations in one config): what a town kept once for its one station
    # is kept per station of a city: the bulletins' schedule runs, their published figures,
    # the chart's week counts, and who took the watch (/duty). ``station`` '' is a run that
    # is city-wide (the safety notice, the screening, the poll: one run for every community)
    # and, on a town's rows from before, its one station: those are given its id when the
    # bot starts with exactly one station (Tx.adopt_town_rows), which no default here can
    # know. A rebuild, as SQLite cannot widen a primary key; the same SQL on PostgreSQL.
    # Matter numbers stay city-wide (one sequence): a number names one matter in the city.
    """
    CREATE TABLE schedule_runs_new (
        name TEXT NOT NULL,
        period TEXT NOT NULL,
        station TEXT NOT NULL DEFAULT '',
        ran_at REAL NOT NULL,
        PRIMARY KEY (name, period, station)
    );
    INSERT INTO schedule_runs_new (name, period, station, ran_at) SELECT name, period, '', ran_at FROM schedule_runs;
    DROP TABLE schedule_runs;
    ALTER TABLE schedule_runs_new RENAME TO schedule_runs;

    CREATE TABLE week_counts_new (
        week_end REAL NOT NULL,
        station TEXT NOT NULL DEFAULT '',
        counts TEXT NOT NULL,
        PRIMARY KEY (week_end, station)
    );
    INSERT INTO week_counts_new (week_end, station, counts) SELECT week_end, '', counts FROM week_counts;
    DROP TABLE week_counts;
    ALTER TABLE week_counts_new RENAME TO week_counts;

    CREATE TABLE published_figures_new (
        schedule TEXT NOT NULL,
        period_start REAL NOT NULL,
        period_end REAL NOT NULL,
        station TEXT NOT NULL DEFAULT '',
        figures TEXT NOT NULL,
        published_at REAL NOT NULL,
        PRIMARY KEY (schedule, period_start, period_end, station)
    );
    INSERT INTO published_figures_new (schedule, period_start, period_end, station, figures, published_at)
        SELECT schedule, period_start, period_end, '', figures, published_at FROM published_figures;
    DROP TABLE published_figures;
    ALTER TABLE published_figures_new RENAME TO published_figures;

    ALTER TABLE duty_overrides ADD COLUMN station TEXT NOT NULL DEFAULT '';
    """,
    # (issue 12, bulletins' speed) Every bulletin reads the matters still open from before
    # its period (a big town keeps tens of thousands, scattered over the whole table) from
    # this index alone: only open matters are in it, each with what the figures read of it.
    """
    CREATE INDEX matters_open_figures ON matters(id, unit_id, created_at, first_claimed_at, resolved_at,
        escalated_at, category, top_tier, closed_at, private) WHERE closed_at IS NULL;
    """,
    # 17 (issue 18, webhook workers): the inbox is keyed by the bot's id and the update's, as
    # update ids are per bot and may start again at a random value. Rows from before are
    # bot 0, "the bot of this database": the first start adopts them (bot/app.py).
    """
    CREATE TABLE inbox_keyed (
        update_id INTEGER NOT NULL,
        payload TEXT,
        received_at REAL NOT NULL,
        done_at REAL,
        tries INTEGER NOT NULL DEFAULT 0,
        failed_at REAL,
        error TEXT,
        bot_id INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (bot_id, update_id)
    );
    INSERT INTO inbox_keyed (update_id, payload, received_at, done_at, tries, failed_at, error, bot_id)
        SELECT update_id, payload, received_at, done_at, tries, failed_at, error, 0 FROM inbox;
    DROP TABLE inbox;
    ALTER TABLE inbox_keyed RENAME TO inbox;
    CREATE INDEX inbox_pending ON inbox(bot_id, update_id) WHERE done_at IS NULL;
    CREATE INDEX inbox_failed ON inbox(failed_at) WHERE failed_at IS NOT NULL;
    """,
    # 18 (issue 12, bulletins' speed): a counted week also kept summed per community and
    # station, as the charts read it, with a key of the units' places it was summed under
    # (escalation/reports/service.chart_key). Summing a big town's eight weeks of unit rows
    # again for every bulletin was a sixth of their time; the unit rows stay, for a tree
    # whose units have moved since.
    """
    ALTER TABLE week_counts ADD COLUMN sums TEXT;
    """,
    # 19 (issue 12, bulletins' speed): every rating given, with its matter's unit, kept by
    # the store as it writes the "rated" event (queries.add_event): an index of those
    # events, in the order they were given (WITHOUT ROWID: the table is its own index). The
    # bulletins count a week's ratings per unit as one range of it, where finding each
    # rated matter's unit had cost a sixth of their time. The label is the event's detail,
    # as given. Migration 12's index for the ratings is no longer read.
    """
    CREATE TABLE ratings (
        at REAL NOT NULL,
        event_id INTEGER NOT NULL REFERENCES events(id),
        matter_id INTEGER NOT NULL REFERENCES matters(id),
        unit_id TEXT NOT NULL,
        label TEXT,
        PRIMARY KEY (at, event_id)
    ) WITHOUT ROWID;
    INSERT INTO ratings (at, event_id, matter_id, unit_id, label)
        SELECT e.at, e.id, e.matter_id, m.unit_id, e.detail FROM events e JOIN matters m ON m.id = e.matter_id
        WHERE e.kind = 'rated';
    DROP INDEX events_kind_at_matter;
    """,
    # 20 (issue 12, bulletins' speed): what the bulletins read of a week's matters from
    # elsewhere than the week's own rows, from indexes alone: the timelines of those that
    # moved (read by matter), and the older matters closed in the week (scattered over the
    # table). Both hold only their part: timeline events, closed matters.
    f"""
    CREATE INDEX events_timeline ON events(matter_id, id, kind, at, tier, actor_id) WHERE kind IN ({TIMELINE_KINDS});
    CREATE INDEX matters_closed_figures ON matters(closed_at, id, unit_id, created_at, first_claimed_at, resolved_at,
        escalated_at, category, top_tier, private) WHERE closed_at IS NOT NULL;
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)


class SchemaTooNew(RuntimeError):
    """The database was written by a newer tierbot; refuse rather than corrupt it."""
