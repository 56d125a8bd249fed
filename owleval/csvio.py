"""The one CSV writer and reader for every table the project writes (exports, judge grades, reports, legacy).

Spreadsheets run a cell that begins with ``=``, ``+``, ``-`` or ``@`` (or a tab or carriage return, which some
strip first) as a formula: ``=HYPERLINK(...)`` in an annotator's comment or a model name would run when a team lead
opens ``grades.csv``. Following the OWASP rule, such a *text* cell is written with a leading ``'``; a text cell that
already begins with ``'`` gets one more, so :func:`unquote_cell` restores every value exactly. Numbers stay numbers
(a negative score is not text) and keep full float precision.

Disguised starts are quoted too (:func:`formula_like`): a leading NUL or invisible format character (U+200B,
U+FEFF, bidi controls: some readers drop them and then see the ``=``), and the compatibility look-alikes of
``= + - @`` (full-width ``＝＋－＠``, small ``﹦﹢﹣﹫``) that NFKC normalisation — and some spreadsheets — turn
into the real characters.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from owleval.fileio import atomic_write_text
from owleval.textsafety import is_format_char

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
QUOTE = "'"


def formula_like(text: str) -> bool:
    """Whether a spreadsheet could run ``text`` as a formula: it begins with ``= + - @``, a tab or a carriage
    return, a NUL or a format character, or a compatibility look-alike of ``= + - @`` (NFKC)."""
    if not text:
        return False
    first = text[0]
    return (first in FORMULA_STARTS or first == "\0" or is_format_char(first)
            or unicodedata.normalize("NFKC", first).startswith(FORMULA_STARTS[:4]))


def quote_cell(value: Any) -> Any:
    """``value`` made safe to open in a spreadsheet: text that a spreadsheet would run gets a leading ``'``."""
    if isinstance(value, str) and value and (formula_like(value) or value.startswith(QUOTE)):
        return QUOTE + value
    return value


def unquote_cell(value: Any) -> Any:
    """The inverse of :func:`quote_cell` for a cell read back from one of our CSVs."""
    if isinstance(value, str) and value.startswith(QUOTE):
        return value[1:]
    return value


def safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells (and column names) are quoted; numeric columns are untouched."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column].dtype):
            out[column] = out[column].map(quote_cell)
    out.columns = [quote_cell(c) if isinstance(c, str) else c for c in out.columns]
    return out


def frame_to_csv(frame: pd.DataFrame) -> str:
    """``frame`` as CSV text (no index, ``\\n`` line ends, floats at full precision), formula-safe."""
    return safe_frame(frame).to_csv(index=False, lineterminator="\n")


def rows_to_csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Rows (not a frame) as formula-safe CSV text."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([quote_cell(h) for h in header])
    for row in rows:
        writer.writerow([quote_cell(v) for v in row])
    return buffer.getvalue()


def write_frame_csv(frame: pd.DataFrame, path: Path) -> None:
    """Write ``frame`` to ``path`` atomically, formula-safe."""
    atomic_write_text(Path(path), frame_to_csv(frame))


def unquote_record(record: dict[str, Any]) -> dict[str, Any]:
    """A CSV record (column -> text) as written before :func:`quote_cell`."""
    return {unquote_cell(k): unquote_cell(v) for k, v in record.items()}


def unquote_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A frame read with ``pd.read_csv`` from one of our CSVs, with the formula quotes removed."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column].dtype):
            out[column] = out[column].map(unquote_cell)
    out.columns = [unquote_cell(c) for c in out.columns]
    return out


def read_records(path: Path, required: Sequence[str], *, known: Sequence[str] = (), what: str = "the header must hold") -> Iterator[tuple[int, dict[str, Any]]]:
    """(line where the record starts, record with the formula quotes removed) for each row of a CSV file with a
    header line, blank rows skipped.

    Header problems (unreadable, empty file, a ``required`` column missing, a ``required`` or ``known`` column twice)
    raise at once; row problems (a wrong number of fields, unreadable text) are collected and raised together after
    the last row, each naming its line, so a reader can check every value of a file before it writes anything.
    ``what`` words the missing-column message: "missing column (<what> a, b, c)".
    """
    from owleval.errors import InputFileError, OwlEvalError, Problem

    path = Path(path)
    try:
        fh = open(path, encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise OwlEvalError(f"{path}: cannot read: {exc.strerror}") from exc
    with fh:
        reader = csv.reader(fh)
        try:
            header = [unquote_cell(h.strip()) for h in next(reader)]
        except StopIteration:
            raise InputFileError([Problem(path, None, None, "empty file: expected a header line")]) from None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise InputFileError([Problem(path, 1, None, f"not a readable CSV header ({exc})")]) from None
        missing = [c for c in required if c not in header]
        if missing:
            raise InputFileError([Problem(path, 1, c, f"missing column ({what} {', '.join(required)})") for c in missing])
        dupes = sorted({h for h in header if header.count(h) > 1 and h in (*required, *known)})
        if dupes:
            raise InputFileError([Problem(path, 1, c, "column appears twice") for c in dupes])
        start = reader.line_num + 1
        problems: list[Problem] = []
        try:
            for fields in reader:
                line, start = start, reader.line_num + 1
                if not fields or all(not f.strip() for f in fields):
                    continue
                if len(fields) != len(header):
                    problems.append(Problem(path, line, None, f"{len(fields)} fields, the header has {len(header)}"))
                    continue
                yield line, {k: unquote_cell(v) for k, v in zip(header, fields, strict=True)}
        except (csv.Error, UnicodeDecodeError) as exc:
            problems.append(Problem(path, start, None, f"unreadable CSV ({exc})"))
        if problems:
            raise InputFileError(problems)
