"""config.yaml: the town's tree, its deadlines and the bot's settings.

Validated with pydantic; every error is reported as the key path in the file and what
was expected there, e.g. ``station.communities[1].units[0].heads: expected a list of
user ids``. Unknown keys are errors, not ignored.
"""

from __future__ import annotations

import re
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from apscheduler.triggers.cron import CronTrigger
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from escalation.policy import Rules, TierRule

POSTGRES_SCHEMES = ("postgresql", "postgres")  # `database:` as a URL (issue 17); anything else is a SQLite file


def is_postgres(database: str) -> bool:
    """Whether ``database`` names a PostgreSQL database (a URL) rather than a SQLite file."""
    return urlsplit(database).scheme in POSTGRES_SCHEMES and "://" in database


def shown(database: str) -> str:
    """``database`` as messages name it: a PostgreSQL URL without its password."""
    if not is_postgres(database):
        return database
    parts = urlsplit(database)
    if parts.password is None:
        return database
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdy])\s*$")
# Far beyond any real setting, far enough below datetime's year 9999 that no sum overflows.
MAX_DURATION = 1000 * 365 * 86400.0
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "y": 365 * 86400}
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class ConfigError(Exception):
    """config.yaml is missing, unreadable or invalid; the message lists every problem."""


def parse_duration(value: Any) -> float:
    """``"30s"``, ``"10m"``, ``"2h"``, ``"3d"``, ``"3y"`` (365 days a year) → seconds (more than
    zero, at most 1000 years)."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
            if 0 < seconds <= MAX_DURATION:
                return seconds
    raise ValueError("a duration such as \"30s\", \"10m\", \"2h\", \"3d\" or \"3y\", at most 1000 years")


Duration = Annotated[float, BeforeValidator(parse_duration)]


def _person(value: Any) -> Any:
    # A leader is written either as a bare user id or as {id: ..., name: ...}.
    if isinstance(value, int) and not isinstance(value, bool):
        return {"id": value}
    if isinstance(value, dict):
        return value
    raise ValueError("a Telegram user id (a whole number) or {id: ..., name: ...}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Person(_Strict):
    id: int = Field(gt=0, description="a Telegram user id (a positive whole number)")
    name: str | None = Field(None, description="a display name")
    dm: bool = Field(False, description="true or false (also send escalations by private message)")


People = Annotated[
    list[Annotated[Person, BeforeValidator(_person)]],
    Field(description="a list of user ids"),
]


class UnitKind(StrEnum):
    """The four kinds of unit by physical space (domain.md)."""

    village = "village"  # 村居
    estate = "estate"  # 小区
    enterprise = "enterprise"  # 企业
    street = "street"  # 街区


_NODE_ID = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$", description="an id of letters, digits, - or _ (at most 32)")
_CHAT_ID = Field(None, description="a Telegram chat id (a whole number, negative for groups)")


class Unit(_Strict):
    """Tier 3: a building, a village small group, a shop street, a production line."""

    id: str = _NODE_ID
    name: str = Field(min_length=1, description="a name")
    kind: UnitKind = Field(description="one of village, estate, enterprise, street")
    chat_id: int | None = _CHAT_ID
    heads: People


class Community(_Strict):
    """Tier 2: a village, estate, enterprise or street block with its police officer and secretary."""

    id: str = _NODE_ID
    name: str = Field(min_length=1, description="a name")
    kind: UnitKind = Field(description="one of village, estate, enterprise, street")
    chat_id: int | None = _CHAT_ID
    police: People
    secretaries: People
    # Grid workers (网格员) log visits (/visit) and report like anyone; they lead nothing.
    grid_workers: People = Field(default_factory=list)
    units: list[Unit] = Field(min_length=1, description="a list of at least one unit")


class Station(_Strict):
    """Tier 1: the police station, covering the whole town (or, in a city's ``stations:``
    list, its own part of it, with its own duty roster)."""

    id: str = _NODE_ID
    name: str = Field(min_length=1, description="a name")
    chat_id: int | None = _CHAT_ID
    staff: People
    communities: list[Community] = Field(min_length=1, description="a list of at least one community")
    # The station's weekly rotation (值班). A town may write it at the top level (``duty:``),
    # as before; a city writes each station's here (issue 17).
    duty: list[DutyShift] = Field(default_factory=list, description="a list of shifts")


class TierDeadlines(_Strict):
    claim: Duration = Field(description='a duration such as "2h"')
    resolve: Duration = Field(description='a duration such as "1d"')

    @model_validator(mode="after")
    def _resolve_not_before_claim(self) -> TierDeadlines:
        if self.resolve < self.claim:
            raise ValueError("resolve to be at least as long as claim")
        return self


class StationDeadlines(TierDeadlines):
    repeat: Duration = Field(description='a duration such as "2h" (re-ping interval at the top)')


class Deadlines(_Strict):
    unit: TierDeadlines
    community: TierDeadlines
    station: StationDeadlines


class CategoryDeadlines(_Strict):
    """Per-category windows; a tier left out keeps the tier's default."""

    unit: TierDeadlines | None = None
    community: TierDeadlines | None = None
    station: TierDeadlines | None = None


class Category(_Strict):
    key: str = Field(pattern=r"^[a-z0-9_]{1,20}$", description="a short key of a-z, 0-9 or _ (at most 20)")
    zh: str = Field(min_length=1, max_length=20, description="the Chinese name (at most 20 characters)")
    en: str = Field(min_length=1, max_length=30, description="the English name (at most 30 characters)")
    urgent: bool = Field(False, description="true or false")
    deadlines: CategoryDeadlines | None = None


DEFAULT_CATEGORIES = [
    Category(key="neighbour", zh="邻里纠纷", en="Neighbours"),
    Category(key="family", zh="家庭纠纷", en="Family"),
    Category(key="landlord", zh="房东租客", en="Landlord & tenant"),
    Category(key="wages", zh="劳资纠纷", en="Wages"),
    Category(key="property", zh="物业纠纷", en="Property management"),
    Category(key="safety", zh="安全隐患", en="Safety hazard", urgent=True),
    Category(key="fraud", zh="诈骗", en="Fraud", urgent=True),
    Category(key="order", zh="治安", en="Public order"),
    Category(key="traffic", zh="交通", en="Traffic"),
    Category(key="help", zh="求助", en="Help request"),
    Category(key="other", zh="其他", en="Other"),
]


class Reminders(_Strict):
    before: Duration | None = Field(None, description='a duration such as "1h" (remind this long before a deadline)')


class Idle(_Strict):
    """A claimed matter with no news: remind the claimer, then release the claim."""

    remind_after: Duration | None = Field(None, description='a duration such as "1d"')
    release_after: Duration | None = Field(None, description='a duration such as "4h"')


class Satisfaction(_Strict):
    """After a resolve the reporter is asked to rate it (群众满意度)."""

    ask_for: Duration = Field(3 * 86400.0, description='a duration such as "3d" (how long a rating may be given)')


class Suspend(_Strict):
    """Bounds on 挂起: how long at most, and past how long the tier above is told."""

    max: Duration = Field(30 * 86400.0, description='a duration such as "30d" (the longest suspension)')
    notify_above: Duration = Field(
        7 * 86400.0, description='a duration such as "7d" (a longer suspension is told to the tier above)'
    )


class Escalation(_Strict):
    """Who may settle a matter that has gone up (see bot/authority.py)."""

    resolve_from_below: bool = Field(
        True, description="true or false (a lower tier may resolve a matter held above; the holder is told)"
    )


class Notify(_Strict):
    """What the reporter hears besides the card's edits."""

    reporter_on_claim: bool = Field(
        False, description="true or false (a claim also sends the reporter a message; by default a 👀 reaction "
                           "on the report says it)"
    )


class Limits(_Strict):
    """Abuse limits, per resident (heads, officers and station staff have none)."""

    reports_per_hour: int = Field(10, ge=1, description="a whole number of reports per hour (1 or more)")
    urgent_per_day: int = Field(3, ge=0, description="a whole number of urgent alerts per day (0 or more)")
    private_nonmember_per_day: int = Field(
        2, ge=0, description="a whole number of private reports per day from non-members (0 or more)"
    )


class DutyShift(_Strict):
    """One entry of the station's weekly rotation (值班)."""

    user: int = Field(gt=0, description="a Telegram user id of station staff")
    days: list[str] = Field(min_length=1, description="a list of days such as [mon, tue]")
    start: str = Field("00:00", alias="from", description='a time such as "08:00"')
    end: str = Field("24:00", alias="to", description='a time such as "20:00" (or "24:00")')

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("days")
    @classmethod
    def _days(cls, value: list[str]) -> list[str]:
        if any(day not in _DAYS for day in value):
            raise ValueError("a list of days from mon, tue, wed, thu, fri, sat, sun")
        return value

    @field_validator("start", "end")
    @classmethod
    def _time(cls, value: str) -> str:
        parse_clock(value)
        return value


class Retention(_Strict):
    """How long personal data is kept (issue 10): after this long past a matter's close, the
    reporter's name and id and the matter's texts are cleared; its figures stay."""

    personal_data: Duration = Field(3 * 365 * 86400.0, description='a duration such as "3y" (365 days a year)')

    @field_validator("personal_data")
    @classmethod
    def _long_enough(cls, value: float) -> float:
        # A closed matter may still be rated, reopened or asked about for a while.
        if value < 30 * 86400:
            raise ValueError('a duration of at least "30d", such as "3y" (365 days a year)')
        return value


class RateLimit(_Strict):
    overall_per_second: float = Field(30, gt=0, description="messages per second, overall")
    group_per_minute: float = Field(20, gt=0, description="messages per minute to one group")
    max_retries: int = Field(3, ge=0, le=20, description="how often to retry after a 429 (0-20)")


ALLOWED_UPDATES = ("message", "callback_query", "poll")  # what the bot handles (poll: its polls' counts, issue 16)
WEBHOOK_SECRET_VARIABLE = "TELEGRAM_WEBHOOK_SECRET"  # the webhook's secret token, like the bot token never in the file


class Webhook(_Strict):
    """Webhook mode (issue 18): Telegram posts each update to ``url``; a proxy with TLS
    (nginx) passes ``path`` on to each worker's ``listen``:``port``."""

    url: str | None = Field(None, description="the public https URL Telegram posts to, ending in the path")
    listen: str = Field("127.0.0.1", description="the address the worker listens on (behind the proxy)")
    port: int = Field(8443, ge=1, le=65535, description="the port the worker listens on (1-65535)")
    path: str = Field("/telegram/updates", description='the path updates are posted to, such as "/telegram/x7Kd"')
    max_connections: int = Field(40, ge=1, le=100, description="updates Telegram has in flight at once (1-100)")
    allowed_updates: list[str] = Field(list(ALLOWED_UPDATES), description="the kinds of update to receive")
    healthy_within: Duration = Field(120.0, description='how recent the last sweep must be for /healthz, such as "2m"')

    @field_validator("url")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        if value is not None and urlsplit(value).scheme not in ("https", "http"):
            raise ValueError("an https:// URL")
        return value

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not re.fullmatch(r"/[A-Za-z0-9_./-]*", value):
            raise ValueError('a path starting with "/", of letters, digits and "_ . / -"')
        return value


class TelegramSettings(_Strict):
    base_url: str | None = Field(None, description="a Bot API base URL such as http://127.0.0.1:8081/bot")
    base_file_url: str | None = Field(None, description="a Bot API file URL")
    poll_timeout: int = Field(30, ge=0, le=60, description="long-polling timeout in seconds (0-60)")
    connections: int = Field(8, ge=1, le=100, description="Bot API calls in flight at once (1-100)")
    rate_limit: RateLimit = RateLimit()
    start_retries: int | None = Field(
        None, ge=0, description="how often to retry reaching Telegram at start (a number; empty: forever)"
    )
    mode: Literal["polling", "webhook"] = Field("polling", description="polling or webhook")
    webhook: Webhook = Webhook()


class DeliverySettings(_Strict):
    """Several workers on one PostgreSQL (issue 18): one sends at a time, holding a lease."""

    lease: Duration = Field(15.0, description='a duration such as "15s", from "1s" to "10m"')

    @field_validator("lease")
    @classmethod
    def _lease(cls, value: float) -> float:
        if not 1 <= value <= 600:
            raise ValueError('a duration such as "15s", from "1s" to "10m" (a dead sender is replaced within it)')
        return value


class VillageNotice(_Strict):
    """The weekly safety notice to the village (治安通报, issue 16): drafted from the week's
    figures and posted to each community's group for its officer to publish."""

    enabled: bool = True
    due: str = Field("fri 16:00", description='a day and time such as "fri 16:00"')
    closing: str | None = Field(
        None, max_length=500, description="the notice's last line (empty: the catalog's anti-fraud reminder)"
    )

    @field_validator("due")
    @classmethod
    def _day_and_time(cls, value: str) -> str:
        parse_weekly(value)
        return value


class Screening(_Strict):
    """The weekly screening for disputes (矛盾纠纷排查, issue 16): each community's officers
    answer by ``due`` with a zero-report or what they found."""

    enabled: bool = True
    due: str = Field("fri 18:00", description='a day and time such as "fri 18:00"')
    ask_ahead: Duration = Field(86400.0, description='a duration such as "1d" (the question goes out this long before)')
    remind_ahead: Duration = Field(7200.0, description='a duration such as "2h" (one reminder this long before)')

    @field_validator("due")
    @classmethod
    def _day_and_time(cls, value: str) -> str:
        parse_weekly(value)
        return value

    @model_validator(mode="after")
    def _order(self) -> Screening:
        if not 0 < self.remind_ahead < self.ask_ahead <= 6 * 86400:
            raise ValueError("remind_ahead must be shorter than ask_ahead, and ask_ahead at most 6 days")
        return self


class Visits(_Strict):
    """The officers' targets (seed 002, 一村一警; issue 16): each community's police officer
    is in the village this many days a week, visiting at least this many households each
    time. Only the police are held to them (escalation/officers.py)."""

    days_per_week: int = Field(1, ge=1, le=7, description="a whole number of days from 1 to 7")
    households_per_visit: int = Field(5, ge=1, le=1000, description="a whole number of households from 1 to 1000")


class SafetyPoll(_Strict):
    """群众安全感: once a month every unit group gets an anonymous poll (issue 16). The first
    two options count as feeling safe (很安全 + 比较安全); the share is shown in the monthly
    bulletin, beside the stars and not part of them."""

    enabled: bool = Field(True, description="true or false (send the monthly poll)")
    day: int = Field(20, ge=1, le=28, description="a day of the month from 1 to 28 (every month has it)")
    time: str = Field("10:00", description='a time of day such as "10:00"')
    open_for: Duration = Field(7 * 86400.0, description='a duration such as "7d", at most "27d"')
    min_answers: int = Field(5, ge=1, description="a whole number of answers (1 or more)")
    question: str | None = Field(None, min_length=1, max_length=300,
                                 description="the question (1 to 300 characters)")
    options: list[Annotated[str, Field(min_length=1, max_length=100)]] | None = Field(
        None, min_length=3, max_length=10,
        description="a list of 3 to 10 answers (each 1 to 100 characters), the two safe ones first",
    )

    @field_validator("time")
    @classmethod
    def _time(cls, value: str) -> str:
        try:
            parse_time_of_day(value)
        except ValueError:
            raise ValueError('a time of day such as "10:00"') from None
        return value

    @field_validator("open_for")
    @classmethod
    def _within_the_month(cls, value: float) -> float:
        # A poll closes before the next month's opens, even in February.
        if value > 27 * 86400:
            raise ValueError('a duration such as "7d", at most "27d" (a poll closes before the next one opens)')
        return value


class Config(_Strict):
    language: str = Field("zh", pattern=r"^(zh|en)$", description="zh or en")
    timezone: str = Field("Asia/Shanghai", description="an IANA time zone such as Asia/Shanghai")
    database: str = Field("data/tierbot.sqlite3", min_length=1,
                          description="a file path (SQLite) or a URL postgresql://user@host:port/db")
    sweep_interval: Duration = Field(30.0, description='a duration such as "30s"')
    weekly_summary: str = Field("mon 09:00", description='a day and time such as "mon 09:00"')
    quiet_hours: str | None = Field(None, description='a span such as "22:00-07:00"')
    monthly_bulletin: str = Field("09:00", description='a time of day such as "09:00"')
    telegram: TelegramSettings = TelegramSettings()
    delivery: DeliverySettings = DeliverySettings()
    deadlines: Deadlines
    reminders: Reminders = Reminders()
    idle: Idle = Idle()
    satisfaction: Satisfaction = Satisfaction()
    suspend: Suspend = Suspend()
    escalation: Escalation = Escalation()
    notify: Notify = Notify()
    limits: Limits = Limits()
    categories: list[Category] = Field(default_factory=lambda: list(DEFAULT_CATEGORIES))
    duty: list[DutyShift] = Field(default_factory=list, description="a list of shifts")
    retention: Retention = Retention()
    notice: VillageNotice = VillageNotice()
    screening: Screening = Screening()
    visits: Visits = Visits()
    safety_poll: SafetyPoll = SafetyPoll()
    # A town is one ``station:``; a city is a ``stations:`` list (issue 17), exactly one of
    # the two. The rest of the code reads ``stations``, a list either way.
    town_station: Station | None = Field(None, alias="station")
    city_stations: list[Station] | None = Field(None, alias="stations", min_length=1,
                                                description="a list of at least one station")

    @field_validator("quiet_hours")
    @classmethod
    def _quiet(cls, value: str | None) -> str | None:
        if value is not None:
            parse_span(value)
        return value

    @field_validator("categories")
    @classmethod
    def _categories(cls, value: list[Category]) -> list[Category]:
        keys = [c.key for c in value]
        if len(set(keys)) != len(keys):
            raise ValueError("category keys to be unique")
        if "other" not in keys:
            raise ValueError('a category with key "other" (where uncategorised matters go)')
        return value

    @field_validator("database")
    @classmethod
    def _file_or_postgres(cls, value: str) -> str:
        # A file path is SQLite, as before; a URL must be PostgreSQL's (issue 17).
        if "://" in value:
            parts = urlsplit(value)
            if parts.scheme not in POSTGRES_SCHEMES:
                raise ValueError("a file path, or a URL postgresql://user@host:port/db")
            if not parts.hostname and "host=" not in parts.query:
                raise ValueError("a PostgreSQL URL with a host: postgresql://user@host:port/db")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("an IANA time zone such as Asia/Shanghai") from None
        return value

    @field_validator("weekly_summary")
    @classmethod
    def _day_and_time(cls, value: str) -> str:
        parse_weekly(value)
        return value

    @field_validator("monthly_bulletin")
    @classmethod
    def _time_of_day(cls, value: str) -> str:
        parse_time_of_day(value)
        return value

    @model_validator(mode="after")
    def _across_keys(self) -> Config:
        """Problems between keys, each naming every key path involved; one validator, so
        that all of them are listed at once (pydantic stops at the first that raises)."""
        if (self.town_station is None) == (self.city_stations is None):
            raise cross_key_error(["station, stations: expected exactly one of them (station: for a town, "
                                   "stations: a list for a city)"])
        paths: dict[str, list[str]] = {}
        for path, node_id in self.node_paths():
            paths.setdefault(node_id, []).append(path)
        problems = [f"{' and '.join(where)}: the same id {node_id!r}; every node id must be unique"
                    for node_id, where in paths.items() if len(where) > 1]
        # A private report's full text goes to its unit's group: were that group also a
        # community's, the community would read what was meant for the unit only.
        chats: dict[int, list[str]] = {}
        for path, chat_id in self.chat_paths():
            chats.setdefault(chat_id, []).append(path)
        problems += [f"{' and '.join(where)}: the same chat {chat_id}; a chat serves one node only"
                     for chat_id, where in chats.items() if len(where) > 1]
        if self.duty and self.city_stations is not None:
            problems.append("duty: with stations:, each station has its own duty: list (stations[0].duty, …)")
        if self.duty and self.town_station is not None and self.town_station.duty:
            problems.append("duty and station.duty: expected one of them (the station's duty roster)")
        for path, station in self._station_paths():
            shifts = self.duty if path == "station" and self.duty else station.duty
            where = "duty" if shifts is self.duty else f"{path}.duty"
            staff = {p.id for p in station.staff}
            problems += [f"{where}[{i}].user: {shift.user} is not in {path}.staff; duty users must be station staff"
                         for i, shift in enumerate(shifts) if shift.user not in staff]
        if problems:
            raise cross_key_error(problems)
        return self

    def _station_paths(self) -> list[tuple[str, Station]]:
        """(key path, station) of every station as config.yaml writes it."""
        if self.city_stations is not None:
            return [(f"stations[{i}]", st) for i, st in enumerate(self.city_stations)]
        return [("station", self.town_station)] if self.town_station is not None else []

    @cached_property
    def stations(self) -> list[Station]:
        """Every station, each with its own duty roster: a town's one (its top-level
        ``duty:`` moved in) or a city's list."""
        if self.city_stations is not None:
            return list(self.city_stations)
        assert self.town_station is not None
        st = self.town_station
        return [st.model_copy(update={"duty": self.duty}) if self.duty else st]

    def chat_paths(self) -> list[tuple[str, int]]:
        """(key path, chat id) of every node with a chat_id in config.yaml, city-wide."""
        out: list[tuple[str, int | None]] = []
        for path, st in self._station_paths():
            out.append((f"{path}.chat_id", st.chat_id))
            for i, community in enumerate(st.communities):
                out.append((f"{path}.communities[{i}].chat_id", community.chat_id))
                out += [(f"{path}.communities[{i}].units[{j}].chat_id", u.chat_id)
                        for j, u in enumerate(community.units)]
        return [(path, chat_id) for path, chat_id in out if chat_id is not None]

    def node_paths(self) -> list[tuple[str, str]]:
        """(key path of its id, id) of every node, as config.yaml writes them, city-wide."""
        out: list[tuple[str, str]] = []
        for path, st in self._station_paths():
            out.append((f"{path}.id", st.id))
            for i, community in enumerate(st.communities):
                out.append((f"{path}.communities[{i}].id", community.id))
                out += [(f"{path}.communities[{i}].units[{j}].id", u.id) for j, u in enumerate(community.units)]
        return out

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def category(self, key: str) -> Category:
        """The category with this key; an unknown key (since removed from config) is "other"."""
        by_key = {c.key: c for c in self.categories}
        return by_key.get(key) or by_key["other"]

    def rules_for(self, category_key: str = "other") -> Rules:
        """The rules a new matter of this category starts with (then copied onto it)."""
        d = self.deadlines
        own = self.category(category_key).deadlines or CategoryDeadlines()
        unit, community, station = own.unit or d.unit, own.community or d.community, own.station or d.station
        return Rules(
            tiers={
                3: TierRule(unit.claim, unit.resolve),
                2: TierRule(community.claim, community.resolve),
                1: TierRule(station.claim, station.resolve),
            },
            repeat=d.station.repeat,
            remind_before=self.reminders.before,
            idle_remind=self.idle.remind_after,
            idle_unclaim=self.idle.release_after,
        )

    def weekly_trigger(self) -> CronTrigger:
        day, hour, minute = parse_weekly(self.weekly_summary)
        return CronTrigger(day_of_week=day, hour=hour, minute=minute, timezone=self.tz)

    def screening_trigger(self) -> CronTrigger:
        day, hour, minute = parse_weekly(self.screening.due)
        return CronTrigger(day_of_week=day, hour=hour, minute=minute, timezone=self.tz)

    def notice_trigger(self) -> CronTrigger:
        day, hour, minute = parse_weekly(self.notice.due)
        return CronTrigger(day_of_week=day, hour=hour, minute=minute, timezone=self.tz)

    def monthly_trigger(self) -> CronTrigger:
        """The 1st of every month at ``monthly_bulletin``, local time."""
        hour, minute = parse_time_of_day(self.monthly_bulletin)
        return CronTrigger(day=1, hour=hour, minute=minute, timezone=self.tz)

    def safety_poll_trigger(self) -> CronTrigger:
        """``safety_poll.day`` of every month at ``safety_poll.time``, local time."""
        hour, minute = parse_time_of_day(self.safety_poll.time)
        return CronTrigger(day=self.safety_poll.day, hour=hour, minute=minute, timezone=self.tz)


def parse_time_of_day(value: str) -> tuple[int, int]:
    """``"09:00"`` → (9, 0): when the monthly bulletin goes out on the 1st of the month."""
    match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*", value)
    if match:
        hour, minute = int(match.group(1)), int(match.group(2))
        if hour < 24 and minute < 60:
            return hour, minute
    raise ValueError('a time of day such as "09:00" (the monthly bulletin goes out on the 1st of each month)')


def parse_clock(value: str) -> int:
    """``"08:30"`` → minutes after midnight; ``"24:00"`` is the end of the day."""
    match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*", value)
    if match:
        hour, minute = int(match.group(1)), int(match.group(2))
        if (hour < 24 and minute < 60) or (hour == 24 and minute == 0):
            return hour * 60 + minute
    raise ValueError('a time such as "08:00"')


def parse_span(value: str) -> tuple[int, int]:
    """``"22:00-07:00"`` → (1320, 420) minutes; it may run past midnight."""
    parts = value.split("-")
    if len(parts) == 2:
        try:
            start, end = parse_clock(parts[0]), parse_clock(parts[1])
        except ValueError:
            pass
        else:
            if start != end:
                return start, end
    raise ValueError('a span such as "22:00-07:00"')


def parse_weekly(value: str) -> tuple[str, int, int]:
    """``"mon 09:00"`` → ("mon", 9, 0)."""
    match = re.fullmatch(r"\s*([a-z]{3})\s+(\d{1,2}):(\d{2})\s*", value.lower())
    if match and match.group(1) in _DAYS:
        hour, minute = int(match.group(2)), int(match.group(3))
        if hour < 24 and minute < 60:
            return match.group(1), hour, minute
    raise ValueError('a day and time such as "mon 09:00"')


def load_config(path: str | Path) -> Config:
    """Read and validate config.yaml; raise ConfigError naming every wrong key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the file ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_config(raw, source=str(path))


def cross_key_error(problems: list[str]) -> PydanticCustomError:
    """A problem between keys, one line each, already naming every key path involved."""
    return PydanticCustomError(CROSS_KEY, "{problems}", {"problems": "\n".join(problems)})


CROSS_KEY = "cross_key"


def parse_config(raw: Any, source: str = "config") -> Config:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of settings at the top level; got {_got(raw)}")
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        lines = [line for err in exc.errors() for line in _describe(err).split("\n")]
        raise ConfigError(f"{source}: {len(lines)} problem(s)\n" + "\n".join(lines)) from None


# pydantic's type errors, said as the person editing config.yaml would say them
_TYPE_WORDS = {
    "int_type": "a whole number", "int_parsing": "a whole number", "int_from_float": "a whole number",
    "float_type": "a number", "float_parsing": "a number", "bool_type": "true or false",
    "bool_parsing": "true or false", "string_type": "text", "list_type": "a list", "dict_type": "a mapping",
}


def _describe(err: Any) -> str:
    loc = [part for part in err["loc"] if not _is_validator_tag(part)]
    path = _format_path(loc) or "(top level)"
    kind = err["type"]
    if kind == CROSS_KEY:
        return str(err["ctx"]["problems"])
    if kind == "extra_forbidden":
        return f"{path}: unknown key"
    if kind == "missing":
        return f"{path}: required key is missing"
    if kind == "model_type":  # a mapping was expected: say which keys it needs
        fields = getattr(_model_at(loc), "model_fields", {})
        needed = [f.alias or name for name, f in fields.items() if f.is_required()]
        if needed:
            expected = f"a mapping with {', '.join(needed)}"
        else:
            known = ", ".join(f.alias or name for name, f in fields.items())
            expected = f"a mapping of {known}" if known else "a mapping"
    elif kind == "value_error":
        # Our own validators phrase the expectation; pydantic prefixes "Value error, ".
        expected = str(err["msg"]).removeprefix("Value error, ")
    else:
        expected = _expected_at(loc) or _TYPE_WORDS.get(kind) or str(err["msg"]).lower()
    got = f"; got {_got(err['input'])}" if "input" in err else ""
    return f"{path}: expected {expected}{got}"


def _got(value: Any) -> str:
    """What was written, in words: ``the text 'suxi'``, ``the number 5``, ``a list``."""
    if value is None:
        return "nothing (an empty value)"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, list):
        return f"a list of {len(value)}"
    if isinstance(value, dict):
        return f"a mapping with {', '.join(map(str, value))}" if value else "an empty mapping"
    return repr(value)


def _is_validator_tag(part: Any) -> bool:
    # pydantic adds function names ("function-before[...]") to the location of wrapped types.
    return isinstance(part, str) and ("[" in part or part.startswith("function-"))


def _format_path(loc: list[Any]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _expected_at(loc: list[Any]) -> str | None:
    """The description of the field that ``loc`` points into, for a readable message."""
    model: Any = Config
    info = None
    for part in loc:
        if isinstance(part, int):
            continue
        fields = _by_key(model)
        if not fields or part not in fields:
            return info.description if info else None
        info = fields[part]
        model = _inner_model(info.annotation)
    if info is None:
        return None
    if loc and isinstance(loc[-1], int) and model is Person:
        return Person.model_fields["id"].description
    return info.description


def _model_at(loc: list[Any]) -> Any:
    """The model (Station, Unit, …) whose value ``loc`` points at, or None."""
    model: Any = Config
    for part in loc:
        if isinstance(part, int):
            continue
        fields = _by_key(model)
        if not fields or part not in fields:
            return None
        model = _inner_model(fields[part].annotation)
    return model


def _by_key(model: Any) -> dict[str, Any]:
    """A model's fields by the key config.yaml writes (``station`` for ``town_station``)."""
    fields = getattr(model, "model_fields", None) or {}
    return {f.alias or name: f for name, f in fields.items()}


def _inner_model(annotation: Any) -> Any:
    """list[Unit] → Unit; Annotated[list[Annotated[Person, ...]], ...] → Person."""
    for _ in range(6):
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            return annotation
        args = getattr(annotation, "__args__", None) or getattr(annotation, "__origin__", None)
        if args is None:
            return None
        annotation = args[0] if isinstance(args, tuple) else args
        meta_origin = getattr(annotation, "__origin__", None)
        if meta_origin is not None and not hasattr(annotation, "__args__"):
            annotation = meta_origin
    return None
