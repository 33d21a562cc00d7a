"""Ledgers (台账): every matter under a node in a period, as XLSX (for leaders) or CSV.

The XLSX has a summary sheet (each unit's figures and stars, and the total), a sheet of
all matters, a sheet per category and one of the period's visit logs (走访日志); the header
row is frozen, columns have widths, and times are real Excel datetimes in the town's
timezone (Excel has no time zones; the zone is named on the summary sheet). The CSV is
the all-matters sheet in UTF-8 with a BOM, so Excel opens the Chinese correctly. Pure functions: rows in, bytes out.

A matter is in the ledger of [start, end) if it existed then: reported before the end and
not resolved before the start. Each is shown as it stood at the end (from its timeline),
so the ledger agrees with the period's bulletin; a last column gives its state now.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from bot import visibility
from bot.config import Config
from bot.store import Event, Matter, TimelineRow, Visit
from bot.store.rows import ScreeningRow
from bot.text.i18n import Texts
from bot.tree import UNIT, Node, Tree
from escalation.policy import State
from escalation.reports import stars as star_rating
from escalation.reports.bulletin import PeriodFigures, category_name
from escalation.summary import ARRIVALS, CLOSING, Figures, half_up, percent, rating_key, rollup

DATE_FORMAT = "yyyy-mm-dd hh:mm"
MAX_SHEET_NAME = 31  # Excel's limit
_SHEET_FORBIDDEN = str.maketrans({c: "_" for c in "[]:*?/\\"})

# (catalog key, column width)
MATTER_COLUMNS = [
    ("ledger.col.id", 8), ("ledger.col.unit", 20), ("ledger.col.community", 16), ("ledger.col.category", 12),
    ("ledger.col.text", 40), ("ledger.col.reporter", 14), ("ledger.col.reported_at", 17),
    ("ledger.col.claimed_at", 17), ("ledger.col.resolved_at", 17), ("ledger.col.hours", 10),
    ("ledger.col.top_tier", 10), ("ledger.col.state", 10), ("ledger.col.rating", 10),
    ("ledger.col.resolution", 50), ("ledger.col.timeline", 60), ("ledger.col.current_state", 10),
]
# By key, not position, so a column added elsewhere moves nothing.
DATE_COLUMNS = {i for i, (key, _) in enumerate(MATTER_COLUMNS)
                if key in ("ledger.col.reported_at", "ledger.col.claimed_at", "ledger.col.resolved_at")}
WRAP_COLUMNS = {i for i, (key, _) in enumerate(MATTER_COLUMNS) if key in ("ledger.col.text", "ledger.col.timeline")}
MAX_CELL = 32767  # Excel's limit of characters in a cell; a longer report is cut there
SCREENING_COLUMNS = [
    ("ledger.col.community", 16), ("ledger.col.due", 17), ("ledger.col.screening", 12),
    ("ledger.col.answered_by", 14), ("ledger.col.answered_at", 17), ("ledger.col.in_time", 8),
    ("ledger.col.findings", 8), ("ledger.col.made_matters", 10), ("ledger.col.on_record", 10),
]
SCREENING_DATES = {1, 4}

SUMMARY_COLUMNS = [
    ("ledger.col.community", 16), ("ledger.col.unit", 20), ("ledger.col.stars", 10), ("ledger.col.new", 8),
    ("ledger.col.resolved", 8), ("ledger.col.open", 8), ("ledger.col.overdue", 8),
    ("ledger.col.to_community", 10), ("ledger.col.to_station", 10), ("ledger.col.in_unit", 12),
    ("ledger.col.satisfaction", 12), ("ledger.col.median_claim", 14), ("ledger.col.median_resolve", 14),
]
PERCENT_COLUMNS = {9, 10}
# 走访日志 (issue 16): every entry finished in the period, its place as coordinates (WGS-84, as sent).
VISIT_COLUMNS = [
    ("ledger.col.visit_id", 8), ("ledger.col.community", 16), ("ledger.col.visitor", 12),
    ("ledger.col.visit_units", 24), ("ledger.col.households", 8), ("ledger.col.deed", 40),
    ("ledger.col.visit_findings", 40), ("ledger.col.photos", 8), ("ledger.col.latitude", 12),
    ("ledger.col.longitude", 12), ("ledger.col.place", 24), ("ledger.col.started_at", 17),
    ("ledger.col.finished_at", 17),
]
VISIT_DATES = {i for i, (key, _) in enumerate(VISIT_COLUMNS)
               if key in ("ledger.col.started_at", "ledger.col.finished_at")}
VISIT_WRAP = {i for i, (key, _) in enumerate(VISIT_COLUMNS) if key in ("ledger.col.deed", "ledger.col.visit_findings")}
# A cell a spreadsheet would run as a formula (or DDE) when it starts with one of these;
# CSV cells so starting get a leading apostrophe (the OWASP rule), XLSX cells are typed text.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class Ledger:
    node: Node
    start: float
    end: float
    matters: list[Matter]  # under the node, in the period, by number, as they stood at its end
    figures: PeriodFigures
    events: dict[int, list[Event]] = field(default_factory=dict)  # matter id → its timeline, in order
    current: dict[int, str] = field(default_factory=dict)  # matter → its state as of the export
    # the weekly screenings due in the period under the node (issue 16): (screening, findings,
    # made matters, put on record)
    screenings: list[tuple[ScreeningRow, int, int, int]] = field(default_factory=list)
    visits: list[Visit] = field(default_factory=list)  # visit log entries finished in the period (issue 16)


def as_of(matters: list[Matter], events: dict[int, list[Event]], end: float) -> list[Matter]:
    """Each matter as it stood at ``end`` (from its timeline), so a period's ledger agrees
    with that period's bulletin whatever happened since; its state now is kept apart."""
    return [_as_of(m, [TimelineRow(e.matter_id, e.at, e.kind, e.tier, e.actor_id is None, e.detail)
                       for e in events.get(m.id, [])], end) for m in matters]


def _as_of(m: Matter, events: list[TimelineRow], end: float) -> Matter:
    state, claimed, top, rating = State.OPEN, False, UNIT, None
    closed_at: float | None = None
    text: str | None = None
    for e in events:
        if e.at >= end:
            break
        if e.kind in CLOSING:
            state, closed_at, text = State(e.kind), e.at, e.detail
        elif e.kind == "reopened":
            state, closed_at, text, claimed = State.OPEN, None, None, False
        elif e.kind in ("claimed", "taken_over"):
            claimed = True
        elif e.kind in ("released", "escalated", "returned"):
            claimed = False
        elif e.kind == "rated":
            rating = rating_key(e.detail) or rating
        if e.kind in ARRIVALS and e.tier is not None:
            top = min(top, e.tier)
    if not events:  # no timeline kept (a matter written straight to the database): as it stands
        return m
    if state == State.OPEN and claimed:
        state = State.CLAIMED
    first_claim = m.first_claimed_at if m.first_claimed_at is not None and m.first_claimed_at < end else None
    resolved = state == State.RESOLVED
    return replace(m, state=state, first_claimed_at=first_claim, resolved_at=closed_at if resolved else None,
                   top_tier=top, rating=rating, resolution=text if resolved else None,
                   close_reason=text if closed_at is not None and not resolved else None,
                   closed_at=closed_at)


def select(matters: list[Matter], tree: Tree, node: Node) -> list[Matter]:
    """The matters of units under ``node``."""
    under = {u.id for u in tree.units_under(node.id)}
    return [m for m in matters if m.unit_id in under]


def _local(ts: float | None, t: Texts) -> datetime | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, t.tz).replace(tzinfo=None, microsecond=0)


def public_timeline(events: list[Event], m: Matter, tree: Tree) -> list[Event]:
    """The timeline a ledger shows (it goes to a group and on to whoever reads the file):
    the entries every chat may read (bot/visibility.py decides which)."""
    return [e for e in events if visibility.entry_level(e, tree, m.unit_id) == visibility.PUBLIC]


def timeline_text(events: list[Event], m: Matter, tree: Tree, t: Texts) -> str:
    """One line per event: when (with the year: a ledger is kept), what, who, and the detail.
    A private matter's reporter is not named, and its words stay out of a group's file
    (like its 事由)."""
    lines = []
    private_reporter = m.reporter_id if m.private else None
    for e in public_timeline(events, m, tree):
        what = t(f"event.{e.kind}", tier=t(f"tier.{e.tier}") if e.tier else "")
        name = t("ledger.private") if private_reporter is not None and e.actor_id == private_reporter else e.actor_name
        actor = f" · {name}" if name else ""
        detail = f"：{e.detail}" if e.detail and private_reporter is None else ""
        at = datetime.fromtimestamp(e.at, t.tz).strftime("%Y-%m-%d %H:%M")
        lines.append(t("event.line", at=at, what=what, actor=actor, detail=detail))
    return "\n".join(lines)


def matter_row(m: Matter, tree: Tree, t: Texts, events: list[Event] | None = None, current: str | None = None
               ) -> list[Any]:
    """A matter's row as it stood at the period's end; the last column, ``current``, is its
    state as of the export."""
    unit = tree.nodes.get(m.unit_id)
    community = tree.nodes.get(unit.parent_id or "") if unit else None
    return [
        m.id,
        unit.name if unit else m.unit_id,
        community.name if community else "",
        category_name(m.category, t),
        t("ledger.private") if m.private else m.text,  # a private report's words stay out of a group's file
        t("ledger.private") if m.private else m.reporter_name,
        _local(m.created_at, t),
        _local(m.first_claimed_at, t),
        _local(m.resolved_at, t),
        _hours(m.resolved_at - m.created_at) if m.resolved_at is not None else None,
        t(f"ledger.tier.{m.top_tier}"),
        t(f"ledger.state.{m.state}"),
        t(f"ledger.rating.{m.rating}") if m.rating else "",
        # What was done; for 无法解决 / 转交, the reason given. A private matter's stays out of the
        # file like its 事由 and its 处理过程's details ("已训诫张某" names as much as the report).
        (t("ledger.private") if m.private else outcome) if (outcome := m.resolution or m.close_reason) else "",
        timeline_text(events or [], m, tree, t),
        t(f"ledger.state.{current or m.state}"),
    ]


def visit_row(v: Visit, tree: Tree, t: Texts) -> list[Any]:
    """One visit log entry: who, where, what, what was found, photos counted, the place."""
    return [
        v.id, tree.name_of(v.community_id or ""), v.user_name, "、".join(tree.name_of(u) for u in v.units),
        v.households, v.deed or "", v.findings or "", v.photos, v.latitude, v.longitude, v.place or "",
        _local(v.started_at, t), _local(v.finished_at, t),
    ]


def _hours(seconds: float | None) -> float | None:
    return half_up(seconds / 3600, 1) if seconds is not None else None


def summary_row(community: str, unit: str, stars: str, fig: Figures) -> list[Any]:
    return [community, unit, stars, fig.new, fig.resolved, fig.open, fig.overdue, fig.to_community,
            fig.to_station, _share(fig.in_unit_rate), _share(fig.satisfaction), _hours(fig.median_claim),
            _hours(fig.median_resolve)]


def _share(rate: float | None) -> float | None:
    """A rate as the whole percent the bulletin shows (rounded half up), for Excel's 0%."""
    return percent(rate) / 100 if rate is not None else None


def summary_rows(ledger: Ledger, tree: Tree, t: Texts) -> list[list[Any]]:
    rows = []
    for unit in tree.units_under(ledger.node.id):
        fig = ledger.figures.current[unit.id]
        community = tree.nodes[unit.parent_id or ""].name
        rows.append(summary_row(community, unit.name, star_rating.show(star_rating.stars(fig)), fig))
    total = rollup(tree, ledger.node.id, ledger.figures.current)
    rows.append(summary_row(t("ledger.summary_total"), "", "", total))
    return rows


def sheet_name(name: str, taken: set[str]) -> str:
    base = name.translate(_SHEET_FORBIDDEN).strip("'")[:MAX_SHEET_NAME] or "_"
    candidate, n = base, 2
    while candidate.lower() in taken:
        suffix = f" ({n})"
        candidate, n = base[: MAX_SHEET_NAME - len(suffix)] + suffix, n + 1
    taken.add(candidate.lower())
    return candidate


def to_xlsx(ledger: Ledger, tree: Tree, t: Texts) -> bytes:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    book = Workbook(write_only=True)  # streams rows: a town's month stays quick and small
    bold = Font(bold=True)
    taken: set[str] = set()

    def sheet(title: str, columns: list[tuple[str, int]], above: tuple[str, ...] = ()) -> Any:
        """A sheet with widths and a frozen, bold header; ``above``: lines shown over the table."""
        ws = book.create_sheet(sheet_name(title, taken))
        for index, (_, width) in enumerate(columns, 1):
            ws.column_dimensions[get_column_letter(index)].width = width
        ws.freeze_panes = f"A{len(above) + 3 if above else 2}"  # above, a blank row, the header: all frozen
        for line in above:
            ws.append([text_cell(ws, line)])
        if above:
            ws.append([])
        header = []
        for key, _ in columns:
            cell = text_cell(ws, t(key))
            cell.font = bold
            cell.alignment = Alignment(vertical="center")
            header.append(cell)
        ws.append(header)
        return ws

    wrap = Alignment(wrap_text=True, vertical="top")

    def styled(ws: Any, values: list[Any], formats: dict[int, str], wrapped: set[int] | None = None) -> list[Any]:
        out: list[Any] = []
        for index, value in enumerate(values):
            if isinstance(value, str) and value:  # an empty cell stays empty
                cell = text_cell(ws, value)
                if wrapped and index in wrapped:  # a report and a timeline run over several lines
                    cell.alignment = wrap
                out.append(cell)
            elif index in formats and value is not None:
                cell = WriteOnlyCell(ws, value)
                cell.number_format = formats[index]
                out.append(cell)
            else:
                out.append(value)
        return out

    # Summary first: it is what a leader opens the file for; its title and period on top.
    ws = sheet(t("ledger.sheet_summary"), SUMMARY_COLUMNS,
               above=(t("ledger.summary_title", node=ledger.node.name), period_text(ledger, t)))
    for row in summary_rows(ledger, tree, t):
        ws.append(styled(ws, row, dict.fromkeys(PERCENT_COLUMNS, "0%")))

    date_formats = dict.fromkeys(DATE_COLUMNS, DATE_FORMAT)
    rows = [matter_row(m, tree, t, ledger.events.get(m.id), ledger.current.get(m.id)) for m in ledger.matters]
    ws = sheet(t("ledger.sheet_all"), MATTER_COLUMNS)
    for row in rows:
        ws.append(styled(ws, row, date_formats, WRAP_COLUMNS))
    by_category: dict[str, list[list[Any]]] = {}
    for m, row in zip(ledger.matters, rows, strict=True):
        by_category.setdefault(m.category, []).append(row)
    for key in sorted(by_category, key=lambda k: (-len(by_category[k]), k)):
        ws = sheet(category_name(key, t), MATTER_COLUMNS)
        for row in by_category[key]:
            ws.append(styled(ws, row, date_formats, WRAP_COLUMNS))
    if ledger.screenings and ledger.node.tier != UNIT:  # issue 16; a unit has no screening of its own
        ws = sheet(t("ledger.sheet_screening"), SCREENING_COLUMNS)
        for row in screening_rows(ledger, tree, t):
            ws.append(styled(ws, row, dict.fromkeys(SCREENING_DATES, DATE_FORMAT)))
    ws = sheet(t("ledger.sheet_visits"), VISIT_COLUMNS)
    for visit in ledger.visits:
        ws.append(styled(ws, visit_row(visit, tree, t), dict.fromkeys(VISIT_DATES, DATE_FORMAT), VISIT_WRAP))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def screening_rows(ledger: Ledger, tree: Tree, t: Texts) -> list[list[Any]]:
    """The 排查 sheet: each community's weekly screening, answered in time or not."""
    rows = []
    for screening, findings, matters, on_record in ledger.screenings:
        answered = screening.answered_at
        result = {"zero": "ledger.screening.zero", "found": "ledger.screening.found"}.get(
            screening.state, "ledger.screening.missing")
        in_time = answered is not None and answered <= screening.due_at
        rows.append([
            tree.name_of(screening.community_id), _local(screening.due_at, t), t(result),
            screening.answered_by_name or "", _local(answered, t),
            t("ledger.yes") if in_time else t("ledger.no"), findings, matters, on_record,
        ])
    return rows


def text_cell(ws: Any, value: str) -> Any:
    """A cell that holds ``value`` as text, even when it starts with "=" (openpyxl would
    otherwise write a live formula). XML cannot hold most control characters; they go."""
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    cell = WriteOnlyCell(ws, ILLEGAL_CHARACTERS_RE.sub("", value)[:MAX_CELL])
    cell.data_type = "s"
    return cell


def csv_cell(value: Any) -> Any:
    """A CSV cell a spreadsheet will not run: text starting like a formula gets a "'"."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_START) else value


def to_csv(ledger: Ledger, tree: Tree, t: Texts) -> bytes:
    """All matters, UTF-8 with a BOM (Excel then reads the Chinese right)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([t(key) for key, _ in MATTER_COLUMNS])
    for m in ledger.matters:
        row = matter_row(m, tree, t, ledger.events.get(m.id), ledger.current.get(m.id))
        writer.writerow([v.strftime("%Y-%m-%d %H:%M") if isinstance(v, datetime) else csv_cell(v) for v in row])
    return out.getvalue().encode("utf-8-sig")


# --- which period: /export week | month | FROM TO, and the command line ------------------
MAX_DAYS = 366
FIRST_YEAR, LAST_YEAR = 2000, 2999  # no ledger before the bot; timestamps stay far from the edges
RECENT = {"week": 7, "month": 30}  # /export week: the seven days up to now; month: thirty


class UsageError(ValueError):
    """The arguments are not one of the accepted shapes (say how to use it)."""


def parse_range(args: list[str], now: float, tz: Any) -> tuple[float, float]:
    """``["week"]`` → the last 7 days; ``["month"]`` → the last 30 days;
    ``["2026-11-01", "2026-11-30"]`` → both days whole, local time: [Nov 1 00:00, Dec 1 00:00).
    Raises UsageError for another shape, ValueError for dates that do not work."""
    words = [a.strip().lower() for a in args]
    if len(words) == 1 and words[0] in RECENT:
        return now - RECENT[words[0]] * 86400.0, now
    if len(words) != 2:
        raise UsageError("expected week, month, or two dates")
    return date_range(words[0], words[1], tz)


def date_range(first: str, last: str, tz: Any) -> tuple[float, float]:
    """Two dates (YYYY-MM-DD), both whole days in local time."""
    from datetime import date, timedelta

    try:
        start_day, end_day = date.fromisoformat(first), date.fromisoformat(last)
    except ValueError:
        raise ValueError("dates are written YYYY-MM-DD") from None
    if end_day < start_day or (end_day - start_day).days >= MAX_DAYS:
        raise ValueError(f"the first date must not be after the second, at most {MAX_DAYS} days apart")
    if start_day.year < FIRST_YEAR or end_day.year > LAST_YEAR:  # 0001-01-01 or 9999-12-31 overflow
        raise ValueError(f"dates between {FIRST_YEAR} and {LAST_YEAR}")
    start = datetime(start_day.year, start_day.month, start_day.day, tzinfo=tz)
    after = end_day + timedelta(days=1)
    end = datetime(after.year, after.month, after.day, tzinfo=tz)
    return start.timestamp(), end.timestamp()


def period_text(ledger: Ledger, t: Texts) -> str:
    """The 汇总 sheet's period row, with the year: ``2026-11-01 至 2026-11-30`` for whole days
    (the last day shown is the last day in it), else both moments to the minute."""
    from datetime import timedelta

    first, last = datetime.fromtimestamp(ledger.start, t.tz), datetime.fromtimestamp(ledger.end, t.tz)
    midnight = datetime.min.time()
    if first.time() == midnight and last.time() == midnight:
        start, end = first.strftime("%Y-%m-%d"), (last - timedelta(days=1)).strftime("%Y-%m-%d")
    else:
        start, end = first.strftime("%Y-%m-%d %H:%M"), last.strftime("%Y-%m-%d %H:%M")
    return t("ledger.summary_period", start=start, end=end, tz=t.tz.key)


def file_stem(ledger: Ledger, t: Texts) -> str:
    """台账 file name without extension: node, first and last day (local)."""
    from datetime import timedelta

    last = datetime.fromtimestamp(ledger.end, t.tz)
    if last.time() == datetime.min.time():  # a whole-day range ends at midnight after its last day
        last -= timedelta(days=1)
    name = t("export.filename", node=ledger.node.name, start=t.date(ledger.start), end=last.strftime("%Y-%m-%d"))
    return name.translate(str.maketrans({c: "_" for c in '\\/:*?"<>| '}))


def texts(config: Config) -> Texts:
    """The configured language's words, for a ledger made outside any chat (``tierbot export``)."""
    return Texts(config.language, config.tz, {c.key: (c.zh, c.en) for c in config.categories})
