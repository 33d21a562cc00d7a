"""The message catalogs: every key in every language, with the same placeholders."""

from __future__ import annotations

from string import Formatter

from bot.telegram.menus import DESCRIPTION_MAX, HEADS, LEADERS, PRIVATE, RESIDENTS
from bot.text.i18n import CATALOGS


def placeholders(template: str) -> set[str]:
    """The named parameters of a template: "{unit}" and "{unit.name}" both give "unit"."""
    return {field.split(".")[0].split("[")[0] for _, field, _, _ in Formatter().parse(template) if field is not None}


def catalog_problems(catalogs: dict[str, dict[str, str]]) -> list[str]:
    """What differs between the languages: keys one lacks, placeholders that differ."""
    problems: list[str] = []
    keys = set().union(*catalogs.values())
    for key in sorted(keys):
        missing = [lang for lang, messages in catalogs.items() if key not in messages]
        if missing:
            problems.append(f"{key}: missing in {', '.join(missing)}")
            continue
        found = {lang: placeholders(messages[key]) for lang, messages in catalogs.items()}
        if len({frozenset(names) for names in found.values()}) > 1:
            differ = "; ".join(f"{lang} {sorted(names)}" for lang, names in found.items())
            problems.append(f"{key}: placeholders differ: {differ}")
    return problems


def test_every_key_is_in_every_language_with_the_same_placeholders() -> None:
    assert catalog_problems(CATALOGS) == []


def test_the_check_catches_a_missing_key_and_a_different_placeholder() -> None:
    problems = catalog_problems({"zh": {"a": "{who}，你好", "b": "{n}天"}, "en": {"a": "Hello {name}"}})
    assert problems == ["a: placeholders differ: zh ['who']; en ['name']", "b: missing in en"]


def test_no_template_uses_positional_placeholders() -> None:
    for lang, messages in CATALOGS.items():
        for key, template in messages.items():
            assert "" not in placeholders(template), f"{lang} {key}: name every placeholder"


def test_every_menu_command_has_a_description_telegram_accepts() -> None:
    for messages in CATALOGS.values():
        for name in {*RESIDENTS, *PRIVATE, *HEADS, *LEADERS}:
            description = messages[f"cmd.{name}"]
            assert 0 < len(description) <= DESCRIPTION_MAX and "<" not in description
