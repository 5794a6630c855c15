"""Naming a CSV's columns (--columns, header, or the model card) and checking them against the
model card before sending; the card as replay reads it from GET /model."""

from __future__ import annotations

from pathlib import Path

import pytest

from replay.columns import ColumnsError, mismatch, name_columns, parse_columns
from replay.csv_format import WHITESPACE, CsvFormat, Sniffed
from replay.served_model import ServedModel, served_model_from_card
from service.model.dataset import FEATURES

PATH = Path("data.csv")
SERVED = ServedModel("housing-price", "1.0", FEATURES, "MEDV")
HEADERLESS = CsvFormat(WHITESPACE, header=False)


def _sniffed(first_row: tuple[str, ...], header: bool) -> Sniffed:
    return Sniffed(CsvFormat(",", header) if header else HEADERLESS, first_row)


def _numbers(width: int) -> tuple[str, ...]:
    return tuple(str(i) for i in range(width))


def test_a_headerless_file_as_wide_as_the_features_plus_one_ends_in_the_target():
    columns = name_columns(
        PATH, _sniffed(_numbers(14), False), SERVED, given=None, target_column=None
    )
    assert columns.names == (*FEATURES, "MEDV")
    assert columns.target == "MEDV" and columns.has_target
    assert columns.describe() == (
        "14 columns named by the model card (housing-price 1.0), target MEDV (column 14)"
    )


def test_a_headerless_file_as_wide_as_the_features_has_no_target():
    columns = name_columns(
        PATH, _sniffed(_numbers(13), False), SERVED, given=None, target_column=None
    )
    assert columns.names == FEATURES
    assert not columns.has_target
    assert columns.describe().endswith("no target column MEDV")


def test_the_target_column_option_names_the_last_column_of_a_headerless_file():
    columns = name_columns(
        PATH, _sniffed(_numbers(14), False), SERVED, given=None, target_column="PRICE"
    )
    assert columns.names[-1] == "PRICE" and columns.target == "PRICE"


def test_a_headerless_file_of_another_width_is_refused_with_what_the_model_takes():
    with pytest.raises(ColumnsError) as err:
        name_columns(PATH, _sniffed(_numbers(7), False), SERVED, given=None, target_column=None)
    assert str(err.value) == (
        "data.csv has no header and 7 columns; the model housing-price 1.0 takes 13 features "
        "(14 columns with MEDV last): add a header or name them with --columns A,B,..."
    )


def test_a_headerless_file_without_a_card_needs_columns():
    with pytest.raises(ColumnsError, match=r"model card to name them is unavailable \(GET x 404\)"):
        name_columns(
            PATH, _sniffed(_numbers(14), False), None, given=None, target_column=None,
            card_problem="GET x 404",
        )  # fmt: skip


def test_given_columns_replace_the_header_and_must_match_the_width():
    sniffed = _sniffed(("a", "b"), True)
    columns = name_columns(PATH, sniffed, SERVED, given=("RM", "MEDV"), target_column=None)
    assert columns.names == ("RM", "MEDV")
    assert columns.describe() == "2 columns named by --columns, target MEDV (column 2)"
    with pytest.raises(ColumnsError, match=r"--columns names 3 columns, data\.csv has 2"):
        name_columns(PATH, sniffed, SERVED, given=("A", "B", "C"), target_column=None)


def test_header_names_are_used_and_must_be_unique():
    columns = name_columns(
        PATH, _sniffed(("RM", "LSTAT"), True), None, given=None, target_column=None
    )
    assert (columns.names, columns.target) == (("RM", "LSTAT"), "MEDV")
    with pytest.raises(ColumnsError, match="duplicate header columns: RM"):
        name_columns(PATH, _sniffed(("RM", "RM"), True), None, given=None, target_column=None)


def test_mismatch_names_missing_features_and_unknown_columns():
    header = tuple(name if name != "LSTAT" else "LSTATT" for name in FEATURES)
    columns = name_columns(
        PATH, _sniffed(("", *header, "MEDV"), True), SERVED, given=None, target_column=None
    )
    assert mismatch(columns, SERVED) == (
        "missing LSTAT; not features of the model: (unnamed column 1), LSTATT"
    )


def test_all_features_with_or_without_the_target_fit():
    for names in (FEATURES, (*reversed(FEATURES), "MEDV")):
        columns = name_columns(PATH, _sniffed(names, True), SERVED, given=None, target_column=None)
        assert mismatch(columns, SERVED) == ""


@pytest.mark.parametrize(
    ("text", "problem"), [("A,,B", "none empty"), ("A,B,A", "duplicate names: A")]
)
def test_bad_columns_option(text, problem):
    assert parse_columns(" A , B ") == ("A", "B")
    with pytest.raises(ValueError, match=problem):
        parse_columns(text)


def test_the_served_model_is_read_from_a_real_card(trained_model):
    served = served_model_from_card(trained_model.card.to_dict())
    assert served == ServedModel(
        trained_model.card.name, trained_model.card.version, FEATURES, "MEDV"
    )


@pytest.mark.parametrize(
    "document",
    [
        None,
        [],
        {"error": {"code": "not_found"}},
        {"features": [], "target": {"name": "MEDV"}},
        {"features": [{"name": "A"}, {"nom": "B"}], "target": {"name": "MEDV"}},
        {"features": [{"name": "A"}], "target": "MEDV"},
    ],
)
def test_documents_that_are_not_cards_give_no_served_model(document):
    assert served_model_from_card(document) is None
