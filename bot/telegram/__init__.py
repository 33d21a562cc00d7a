"""Telegram I/O: getting updates in, sending the outbox out."""
