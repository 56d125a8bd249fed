import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from owleval.answers import PUBLISHED_MODELS, import_answer_files, read_answer_file
from owleval.cli import app
from owleval.errors import InputFileError
from owleval.questions import load_questions

runner = CliRunner()


def _row(qid: int = 1, **changes: object) -> dict:
    q = {x.question_id: x for x in load_questions()}[qid]
    row = {"image": q.image, "question_id": qid, "question": q.question, "answer": "an answer", "model_id": "m"}
    row.update(changes)
    return row


def _write(path: Path, rows: list, raw_lines: tuple[str, ...] = ()) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "".join(raw_lines), encoding="utf-8")
    return path


def _problems(path: Path) -> list[str]:
    return [str(p) for p in read_answer_file(path, load_questions()).errors]


def test_good_partial_file_is_ok_and_partial(tmp_path: Path) -> None:
    result = read_answer_file(_write(tmp_path / "a.jsonl", [_row(1), _row(2)]), load_questions())
    assert result.ok and result.partial and len(result.answers) == 2


@pytest.mark.parametrize(
    ("rows", "raw", "expected"),
    [
        ([], ("{not json\n",), ":1: error: malformed JSON"),
        ([{"image": "1.jpg", "question_id": 1, "question": "x", "model_id": "m"}], (), ":1 [answer]: error: missing"),
        ([["a list"]], (), "must be a JSON object"),
        ([{"image": "1.jpg", "question_id": "1", "question": "x", "answer": "a", "model_id": "m"}], (), ":1 [question_id]: error: must be int"),
        ([{"image": "1.jpg", "question_id": 999, "question": "x", "answer": "a", "model_id": "m"}], (), "unknown question id 999"),
    ],
)
def test_each_error_names_file_line_and_field(tmp_path: Path, rows: list, raw: tuple, expected: str) -> None:
    path = _write(tmp_path / "bad.jsonl", rows, raw)
    problems = _problems(path)
    assert any(expected in p and p.startswith(str(path)) for p in problems), problems


def test_duplicates_wrong_text_wrong_image_and_escape(tmp_path: Path) -> None:
    rows = [
        _row(1),
        _row(1),
        _row(2, question="What colour is the sky?"),
        _row(3, image="7.jpg"),
        _row(4, image="../../etc/passwd"),
        _row(5, answer=5),
    ]
    path = _write(tmp_path / "bad.jsonl", rows)
    problems = "\n".join(_problems(path))
    assert f"{path}:2 [question_id]: error: duplicate question id 1 (first on line 1)" in problems
    assert f"{path}:3 [question]: error:" in problems
    assert f"{path}:4 [image]: error: image '7.jpg' is not question 3's image" in problems
    assert f"{path}:5 [image]: error:" in problems and "leaves the data folder" in problems
    assert f"{path}:6 [answer]: error: must be str" in problems


def test_png_name_is_normalised_with_a_warning(tmp_path: Path) -> None:
    result = read_answer_file(_write(tmp_path / "a.jsonl", [_row(1, image="1.png")]), load_questions())
    assert result.ok and result.answers[0].image == "1.jpg"
    assert any("normalised" in str(w) for w in result.warnings)


def test_published_files_import_and_pass_check(published_answers_dir: Path) -> None:
    files = sorted(p.name for p in published_answers_dir.glob("*.jsonl"))
    assert files == sorted(f"{name}.jsonl" for name in PUBLISHED_MODELS.values())
    result = runner.invoke(app, ["answers", "check", str(published_answers_dir)])
    assert result.exit_code == 0, result.output
    for name in PUBLISHED_MODELS.values():
        rows = [json.loads(line) for line in (published_answers_dir / f"{name}.jsonl").read_text().splitlines()]
        assert len(rows) == 82 and {r["model_id"] for r in rows} == {name}
        assert all(not r["image"].endswith(".png") for r in rows)


def test_import_is_all_or_nothing(tmp_path: Path, owl_data: Path) -> None:
    good = owl_data / "answer" / "llava_13b_answer.jsonl"
    truncated = tmp_path / "truncated.jsonl"
    truncated.write_bytes(good.read_bytes()[:5000])  # cut inside a line
    out = tmp_path / "out"
    with pytest.raises(InputFileError) as info:
        import_answer_files([good, truncated], out, load_questions())
    assert f"{truncated}:" in str(info.value)
    assert not out.exists() or not any(out.iterdir())
    result = runner.invoke(app, ["answers", "import", str(good), str(truncated), "--out", str(out)])
    assert result.exit_code == 1 and "truncated.jsonl" in result.output
    assert not out.exists() or not any(out.iterdir())


def test_check_cli_fails_on_errors(tmp_path: Path) -> None:
    path = _write(tmp_path / "bad.jsonl", [_row(1)], ("{oops\n",))
    result = runner.invoke(app, ["answers", "check", str(path)])
    assert result.exit_code == 1 and "malformed JSON" in result.output


def test_check_summarises_warnings_unless_verbose(owl_data: Path) -> None:
    published = owl_data / "answer" / "blip2_13b_answer.jsonl"
    short = runner.invoke(app, ["answers", "check", str(published)])
    assert short.exit_code == 0 and "all 82 questions, 121 warnings" in short.output
    assert "116 more warnings" in short.output and f"{published}:82 [image]" not in short.output
    full = runner.invoke(app, ["answers", "check", "-v", str(published)])
    assert full.exit_code == 0 and f"{published}:82 [image]: warning: image '50.png' normalised to '50.jpg'" in full.output


@pytest.mark.parametrize("model_id", ["m\n", "m\r\n", "\nm", "m\u2028"])
def test_check_refuses_a_model_id_with_a_line_break(tmp_path: Path, model_id: str) -> None:
    path = _write(tmp_path / "a.jsonl", [_row(1, model_id=model_id)])
    result = runner.invoke(app, ["answers", "check", str(path)])
    assert result.exit_code == 1 and "[model_id]" in result.output and "not a usable model name" in result.output
