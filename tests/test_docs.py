"""The README documents every setting and every command (datasette's test_docs idea)."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from fieldstation.cli import COMMANDS
from fieldstation.config import Config

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
#: Flask's own keys and internals a user never sets.
NOT_USER_SETTINGS = {"JSON_SORT_KEYS", "TESTING", "DEBUG", "SQLALCHEMY_ENGINE_OPTIONS", "DATABASE_URL"}


def settings() -> list[str]:
    return [name for name in vars(Config) if name.isupper() and name not in NOT_USER_SETTINGS]


@pytest.mark.parametrize("name", settings())
def test_every_setting_is_in_readme(name: str) -> None:
    assert f"`{name}`" in README


def test_database_url_is_documented() -> None:
    assert "FIELDSTATION_DATABASE_URL" in README


def command_names() -> list[str]:
    names = []
    for command in COMMANDS:
        if isinstance(command, click.Group):
            names += [f"{command.name} {sub}" for sub in command.commands]
        else:
            names.append(str(command.name))
    return names


@pytest.mark.parametrize("name", command_names())
def test_every_command_is_in_readme(name: str) -> None:
    group, _, sub = name.partition(" ")
    listed = {  # `group a|b|c` names its subcommands a, b and c
        word for found in re.findall(rf"`{re.escape(group)} ([\w|-]+)", README) for word in found.split("|")
    }
    assert f"`{name}" in README or f"fieldstation {name}" in README or (sub and sub in listed), name
