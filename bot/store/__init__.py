"""Storage: the only SQL. ``schema`` (migrations), ``rows`` (rows as dataclasses),
``queries`` (``Tx``, named queries), ``store`` (the connection, transactions and the group
commit) and ``copies`` (backup and restore). The names other layers use are here."""

from bot.store.copies import BadCopy, check_copy, copy_database, database_files
from bot.store.queries import LAST_SWEEP, Tx
from bot.store.rows import (
    Broadcast,
    BroadcastOutcome,
    DutyOverride,
    Event,
    HeldPing,
    HeldReport,
    Matter,
    OutboxItem,
    Prompt,
    Purged,
    QueuedReport,
    SafetyCount,
    SafetyPollDue,
    Sent,
    SummaryFacts,
    TimelineRow,
    Visit,
    clock_columns,
)
from bot.store.schema import MIGRATIONS, PURGED, SCHEMA_VERSION, SENT_BATCH, SchemaTooNew
from bot.store.store import LeaseLost, SecondWrite, SendSlot, Signals, Store, describe_error, read_only, sending

__all__ = [
    "LAST_SWEEP", "MIGRATIONS", "PURGED", "SCHEMA_VERSION", "SENT_BATCH", "BadCopy", "Broadcast",
    "BroadcastOutcome", "DutyOverride", "Event", "HeldPing", "HeldReport",
    "LeaseLost",  # issue 18
    "Matter", "OutboxItem", "Prompt",
    "Purged", "QueuedReport",
    "SafetyCount", "SafetyPollDue",  # issue 16
    "SchemaTooNew", "SecondWrite", "SendSlot", "Sent", "Signals", "Store", "SummaryFacts", "TimelineRow", "Tx",
    "Visit",
    "check_copy", "clock_columns", "copy_database", "database_files", "describe_error",
    "read_only", "sending",
]
