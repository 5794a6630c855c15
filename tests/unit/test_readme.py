"""The README's reference parts agree with the code they describe: the error table with
ERROR_CODES, the replay synopsis with replay's options, the configuration table with the
variables the service reads."""

from __future__ import annotations

import re
from pathlib import Path

from replay.cli import build_parser
from service.api.errors import ERROR_CODES
from service.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def section(title: str) -> str:
    """The text from a `## title` / `### title` heading to the next heading of any level."""
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"^#+ {re.escape(title)}\n(.*?)(?=^#+ )", text, re.S | re.M)
    assert match, f"README.md has no section {title!r}"
    return match.group(1)


def table_rows(text: str) -> list[list[str]]:
    """The cells of every row of the markdown tables in `text`, header and rule excluded."""
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in text.splitlines()
        if line.startswith("|")
    ]
    return [row for row in rows if not set("".join(row)) <= set("-: ")][1:]


def test_the_error_table_lists_every_code_with_its_status_in_order():
    documented = [
        (row[0].strip("`"), int(row[1])) for row in table_rows(section("Errors")) if len(row) == 3
    ]
    assert documented == [(code, status) for code, (status, _) in ERROR_CODES.items()]


def test_the_replay_synopsis_names_every_option():
    options = {
        option
        for action in build_parser()._actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    }
    synopsis = section("Replay").split("(also `python -m replay`")[0]
    missing = sorted(option for option in options if not re.search(rf"{option}\b", synopsis))
    assert not missing, f"README replay synopsis lacks {missing}"


def test_the_configuration_table_lists_every_variable():
    variables = {row[0].strip("`") for row in table_rows(section("Configuration"))}
    read = set(Settings().to_env())
    assert not read - variables, f"README configuration table lacks {sorted(read - variables)}"
