"""Data kept no longer than needed (issue 10) and the poisoned update (issue 11).

The inbox keeps an update's payload only until it is done, ids for a week, nothing but the
id for chats outside the tree; an update that cannot be stored or handled is stored as
well as it can be and, after three tries, marked failed; personal data is cleared a
configured time after a matter closes; the database is private to the bot's user; and one
chat cannot serve two nodes.
"""

from __future__ import annotations

from typing import Any

import pytest

from bot.config import ConfigError, parse_config, parse_duration
from tests.conftest import C1_CHAT, town


def errors_of(raw: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    return str(caught.value)


# --- config ------------------------------------------------------------------------------
def test_years_are_a_duration_and_retention_defaults_to_three() -> None:
    assert parse_duration("3y") == 3 * 365 * 86400
    assert parse_config(town()).retention.personal_data == 3 * 365 * 86400
    assert parse_config(town(retention={"personal_data": "180d"})).retention.personal_data == 180 * 86400
    assert 'retention.personal_data: expected a duration such as "30s"' in errors_of(
        town(retention={"personal_data": "forever"})
    )


def test_two_nodes_sharing_a_chat_are_refused_naming_both() -> None:
    raw = town()
    raw["station"]["communities"][0]["units"][1]["chat_id"] = C1_CHAT  # the community's own group
    message = errors_of(raw)
    assert "station.communities[0].chat_id" in message
    assert "station.communities[0].units[1].chat_id" in message
    assert str(C1_CHAT) in message
    raw = town()
    raw["station"]["communities"][1]["chat_id"] = raw["station"]["chat_id"]
    message = errors_of(raw)
    assert "station.chat_id and station.communities[1].chat_id" in message
