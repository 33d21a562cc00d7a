"""tierbot: a Telegram bot for three-tier community-governance groups."""

import os

__version__ = "0.1.0"

# Opt in to PTB 22's timedelta durations (RetryAfter.retry_after and friends) now, as the
# next major version will do; our code reads both forms.
os.environ.setdefault("PTB_TIMEDELTA", "1")
