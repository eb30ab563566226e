"""Each `chatd serve` setting is declared once (a Config field): its flag,
its CHATD_* variable and its --config key come from that one declaration,
and docs/operations.md's table lists exactly the flags there are."""

from __future__ import annotations

import argparse
import re
from dataclasses import fields
from pathlib import Path

from chatd.cli import build_parser
from chatd.config import SETTINGS, Config
from chatd.server.chat.limits import ChatLimits

DOCS = Path(__file__).resolve().parent.parent / "docs" / "operations.md"


def test_every_config_field_is_a_setting_with_a_flag_a_variable_and_a_key() -> None:
    assert [s.field for s in SETTINGS] == [f.name for f in fields(Config)]
    for s in SETTINGS:
        assert re.fullmatch(r"--[a-z][a-z0-9-]*", s.flag), s
        assert s.env_var == "CHATD_" + s.key.upper().replace("-", "_"), s
        assert s.key == s.flag.removeprefix("--"), s
    for attribute in ("flag", "env_var", "key"):
        names = [getattr(s, attribute) for s in SETTINGS]
        assert len(set(names)) == len(names), f"two settings share a {attribute}"


def test_the_parser_takes_every_declared_flag_and_no_other() -> None:
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    serve = commands.choices["serve"]
    flags = {o for a in serve._actions for o in a.option_strings if o.startswith("--")}
    assert flags - {"--help", "--config"} == {s.flag for s in SETTINGS}


def _documented_flags() -> set[str]:
    """The flags in the first column of the `chatd serve` table."""
    text = DOCS.read_text()
    table = text[text.index("### chatd serve") :]
    table = table[: table.index("\n## ")]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    return {flag for row in rows for flag in re.findall(r"--[a-z][a-z0-9-]*", row.split(" | ")[0])}


def test_the_operations_table_lists_every_flag_and_no_other() -> None:
    declared = {s.flag for s in SETTINGS}
    documented = _documented_flags()
    assert declared - documented == set(), "flags missing from docs/operations.md"
    assert documented - declared == set(), "docs/operations.md lists flags that do not exist"


def test_the_chat_limits_are_the_settings_of_their_names() -> None:
    config = {f.name: f.default for f in fields(Config)}
    for f in fields(ChatLimits):
        assert f.name in config, f"ChatLimits.{f.name} is no setting"
        assert f.default == config[f.name], f"ChatLimits.{f.name}'s default is not the setting's"
