"""Reading grades: a valid CSV gives the tidy frame; every bad-input case names the file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from owleval.errors import InputFileError, OwlEvalError
from owleval.questions import load_questions
from owleval.report.grades import is_sqlite, read_grades

from tests.report_helpers import data_dir

HEADER = "annotator,model_id,question_id,grade,comment,graded_at\n"


@pytest.fixture(scope="module")
def questions():
    return load_questions(data_dir())


def write(tmp_path: Path, body: str, header: str = HEADER, name: str = "grades.csv") -> Path:
    path = tmp_path / name
    path.write_text(header + body, encoding="utf-8")
    return path


def test_valid_csv_becomes_frame(tmp_path, questions):
    path = write(
        tmp_path,
        'ann1,llava-13b,1,A,"fine, really",2024-01-01\n'
        "ann2,llava-13b,1,b,,2024-01-02\n"
        "ann1,blip2-13b,2, C ,,\n",
    )
    frame = read_grades(path, questions)
    assert list(frame.columns[:5]) == ["annotator", "model_id", "question_id", "grade", "score"]
    assert len(frame) == 3
    row = frame[(frame.annotator == "ann2")].iloc[0]
    assert (row.grade, row.score, row.question_id) == ("B", 2, 1)
    assert frame[frame.annotator == "ann1"].set_index("model_id").loc["llava-13b", "comment"] == "fine, really"
    assert sorted(frame.score) == [1, 2, 3]


def test_extra_columns_and_missing_optional_ones_are_fine(tmp_path, questions):
    path = write(tmp_path, "x,m1,5,D,7\n", header="annotator,model_id,question_id,grade,flag\n")
    frame = read_grades(path, questions)
    assert frame.iloc[0].grade == "D" and frame.iloc[0].comment == ""


def test_unknown_question_id_names_file_and_line(tmp_path, questions):
    path = write(tmp_path, "a,m1,1,A,,\na,m1,999,A,,\n")
    with pytest.raises(InputFileError) as err:
        read_grades(path, questions)
    assert f"{path}:3 [question_id]" in str(err.value)
    assert "unknown question id 999" in str(err.value)


def test_grade_outside_a_to_d(tmp_path, questions):
    path = write(tmp_path, "a,m1,1,E,,\na,m1,2,,,\na,m1,3,A,,\n")
    with pytest.raises(InputFileError) as err:
        read_grades(path, questions)
    text = str(err.value)
    assert f"{path}:2 [grade]" in text and "'E' is not a grade" in text
    assert f"{path}:3 [grade]" in text
    assert len(err.value.problems) == 2


def test_model_absent_from_answers(tmp_path, questions):
    path = write(tmp_path, "a,llava-13b,1,A,,\na,gpt-x,1,A,,\n")
    with pytest.raises(InputFileError) as err:
        read_grades(path, questions, models={"llava-13b", "blip2-13b"}, models_origin="answers/")
    assert f"{path}:3 [model_id]" in str(err.value) and "'gpt-x' is not among the answers in answers/" in str(err.value)
    assert len(read_grades(path, questions)) == 2  # without --answers any model name is fine


def test_two_ratings_of_one_answer_by_one_annotator(tmp_path, questions):
    path = write(tmp_path, "a,m1,1,A,,\nb,m1,1,B,,\na,m1,1,C,,\n")
    with pytest.raises(InputFileError) as err:
        read_grades(path, questions)
    assert f"{path}:4 [question_id]" in str(err.value)
    assert "twice (first on line 2)" in str(err.value)


def test_multiline_comment_keeps_line_numbers_right(tmp_path, questions):
    path = write(tmp_path, 'a,m1,1,A,"line one\nline two",\na,m1,2,Z,,\n')
    with pytest.raises(InputFileError) as err:
        read_grades(path, questions)
    assert f"{path}:4 [grade]" in str(err.value)


def test_missing_required_column(tmp_path, questions):
    path = write(tmp_path, "a,m1,1\n", header="annotator,model_id,question_id\n")
    with pytest.raises(InputFileError) as err:
        read_grades(path, questions)
    assert f"{path}:1 [grade]: error: missing column" in str(err.value)


def test_wrong_field_count_and_empty_files(tmp_path, questions):
    with pytest.raises(InputFileError, match=r"grades.csv:2: error: 3 fields, the header has 6"):
        read_grades(write(tmp_path, "a,m1,1\n"), questions)
    with pytest.raises(InputFileError, match="holds no grades"):
        read_grades(write(tmp_path, ""), questions)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(InputFileError, match="empty file"):
        read_grades(empty, questions)
    with pytest.raises(OwlEvalError, match="no such file"):
        read_grades(tmp_path / "nope.csv", questions)


def test_sqlite_is_told_apart_by_content(tmp_path):
    import sqlite3

    db = tmp_path / "grades.csv"  # misleading extension on purpose
    sqlite3.connect(db).execute("create table t (x)").connection.close()
    assert is_sqlite(db)
    assert not is_sqlite(write(tmp_path, "a,m1,1,A,,\n"))
