"""tierbot: a Telegram bot for three-tier community-governance groups."""

__version__ = "0.1.0"
