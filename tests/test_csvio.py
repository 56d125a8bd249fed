"""The one CSV writer: formula-looking text is quoted for spreadsheets, and our readers undo it exactly."""

from __future__ import annotations

import csv
import io

import pandas as pd
import pytest

from owleval.csvio import frame_to_csv, quote_cell, rows_to_csv, unquote_cell, unquote_frame

DANGEROUS = ["=HYPERLINK(\"http://x\",\"y\")", "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\tx", "\rx", "'=already"]


@pytest.mark.parametrize("text", DANGEROUS + ["plain", "", "it's fine", "a=b"])
def test_quote_round_trips_exactly(text: str) -> None:
    assert unquote_cell(quote_cell(text)) == text


@pytest.mark.parametrize("text", DANGEROUS)
def test_dangerous_text_never_starts_a_cell_with_a_formula_character(text: str) -> None:
    assert quote_cell(text).startswith("'")


#: disguised starts: a NUL, invisible format characters, and the NFKC look-alikes of = + - @
DISGUISED = ["\x00=1+1", "\u200b=HYPERLINK(\"http://x\")", "\ufeff=1", "\u202e=1", "＝HYPERLINK(\"http://x\")",
             "＋1", "－1", "＠SUM(A1)", "﹦1", "﹢1", "﹣1", "﹫x"]


@pytest.mark.parametrize("text", DISGUISED)
def test_disguised_formula_starts_are_quoted_and_round_trip(text: str) -> None:
    assert quote_cell(text).startswith("'")
    assert unquote_cell(quote_cell(text)) == text
    back = list(csv.reader(io.StringIO(rows_to_csv(["c"], [[text]]))))[1][0]
    assert unquote_cell(back) == text


@pytest.mark.parametrize("text", ["Ａnn", "１２", "a＝b", "ÉQUIPE", "日本"])
def test_ordinary_wide_text_is_left_alone(text: str) -> None:
    assert quote_cell(text) == text


def test_numbers_stay_numbers_at_full_precision() -> None:
    frame = pd.DataFrame({"name": ["=1+1", "ok"], "value": [-0.123456789012345, 2.0], "n": [-3, 4]})
    text = frame_to_csv(frame)
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[1] == ["'=1+1", "-0.123456789012345", "-3"]
    back = unquote_frame(pd.read_csv(io.StringIO(text)))
    pd.testing.assert_frame_equal(back, frame)


def test_rows_writer_quotes_header_and_cells() -> None:
    text = rows_to_csv(["a", "-b"], [["@x", 1]])
    assert text.splitlines() == ["a,'-b", "'@x,1"]
