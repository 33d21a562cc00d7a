"""config.yaml: the sample loads; a bad file fails with the key path and what was expected;
the command line checks it and refuses to run without a token."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.config import ConfigError, load_config, parse_config, parse_duration
from bot.tree import Tree
from tests.conftest import town

ROOT = Path(__file__).resolve().parent.parent


def errors_of(raw: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    return str(caught.value)


def test_the_sample_config_is_a_realistic_town() -> None:
    config = load_config(ROOT / "config.yaml")
    tree = Tree(config)
    communities = list(tree.communities())
    assert len(communities) >= 2
    assert all(len(c.children) >= 2 for c in communities)
    assert config.language == "zh" and config.timezone == "Asia/Shanghai"
    assert {u.kind for u in tree.units()} >= {"village", "estate"}


def test_durations() -> None:
    assert [parse_duration(v) for v in ("30s", "10m", "2h", "3d", "1.5h")] == [30, 600, 7200, 259200, 5400]
    for bad in ("", "10", "2 hours", "-1h", "0s", 5):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_errors_name_the_key_path_and_what_was_expected() -> None:
    raw = town()
    raw["station"]["communities"][1]["units"][0]["heads"] = "王楼长"
    raw["station"]["communities"][0]["units"][1]["heads"] = [31, "abc"]
    raw["deadlines"]["unit"]["claim"] = "soon"
    raw["timezone"] = "Mars/Olympus"
    message = errors_of(raw)
    assert "station.communities[1].units[0].heads: expected a list of user ids; got the text '王楼长'" in message
    assert "station.communities[0].units[1].heads[1]: expected a Telegram user id" in message
    assert 'deadlines.unit.claim: expected a duration such as "30s"' in message
    assert "timezone: expected an IANA time zone" in message
    assert message.count("\n") == 4  # a header and one line per problem


def test_unknown_keys_are_errors_not_ignored() -> None:
    raw = town(langauge="en")
    raw["station"]["communities"][0]["polise"] = [1]
    message = errors_of(raw)
    assert "langauge: unknown key" in message
    assert "station.communities[0].polise: unknown key" in message


def test_missing_keys_bad_kinds_and_duplicate_ids() -> None:
    raw = town()
    del raw["deadlines"]["station"]["repeat"]
    raw["station"]["communities"][0]["kind"] = "castle"
    raw["station"]["communities"][1]["units"][0]["id"] = "u1"
    message = errors_of(raw)
    assert "deadlines.station.repeat: required key is missing" in message
    assert ("station.communities[0].kind: expected one of village, estate, enterprise, street; got the text 'castle'"
            in message)
    raw = town()
    raw["station"]["communities"][1]["units"][0]["id"] = "u1"
    assert "the same id 'u1'" in errors_of(raw)


def test_a_file_that_is_not_yaml_or_not_a_mapping(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("station: [unclosed", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)
    broken.write_text("- a list\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(broken)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")


def tierbot(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "TELEGRAM_BOT_TOKEN"}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], capture_output=True, text=True, cwd=ROOT, env=environment, timeout=60
    )


def test_check_config_prints_the_tree() -> None:
    done = tierbot("check-config", "config.yaml")
    assert done.returncode == 0, done.stderr
    assert "苏溪派出所 (suxi, tier 1)" in done.stdout
    assert "  └ 蒋母塘村 (jiangmutang, tier 2) [village]" in done.stdout
    assert "    └ 蒋母塘村第一村民小组 (jmt-g1, tier 3)" in done.stdout
    assert "config OK" in done.stdout


def test_check_config_fails_with_the_path(tmp_path: Path) -> None:
    raw = town()
    raw["station"]["communities"][1]["units"][0]["heads"] = "nobody"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    done = tierbot("check-config", str(bad))
    assert done.returncode == 1
    assert "station.communities[1].units[0].heads: expected a list of user ids" in done.stderr


def test_run_without_a_token_says_so_and_exits_2() -> None:
    done = tierbot("run", "--config", "config.yaml")
    assert done.returncode == 2
    assert "TELEGRAM_BOT_TOKEN" in done.stderr
    done = tierbot("run", "--config", "config.yaml", env={"TELEGRAM_BOT_TOKEN": "   "})
    assert done.returncode == 2


def test_escalation_settings_are_checked_too() -> None:
    message = errors_of(town(
        quiet_hours="late",
        reminders={"before": "soon"},
        categories=[{"key": "fraud", "zh": "诈骗", "en": "Fraud"}],
        duty=[{"user": 999, "days": ["mon", "someday"], "from": "8am"}],
    ))
    assert 'quiet_hours: expected a span such as "22:00-07:00"; got the text \'late\'' in message
    assert "reminders.before: expected a duration" in message
    assert 'categories: expected a category with key "other"' in message
    assert "duty[0].days: expected a list of days from mon" in message
    assert 'duty[0].from: expected a time such as "08:00"' in message
    assert "duty users must be station staff" in errors_of(town(duty=[{"user": 999, "days": ["mon"]}]))
