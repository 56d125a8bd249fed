"""Images stay inside ``data_dir/cases`` and within the pixel budget: in the questions file, the grading app, the
judge and generate. Each test crafts a data folder: a ``..`` or absolute image name, a symlink in ``cases/``
pointing outside, or a small PNG with a huge number of pixels (an image bomb)."""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from owleval.cli import app
from owleval.errors import InputFileError
from owleval.imagefiles import MAX_PIXELS, ImageRefused, case_image_path
from owleval.questions import image_path, load_image, load_questions, parse_questions
from tests.chat_server import ChatServer
from tests.grading_helpers import QIDS, make_study, oversized_chunk_png
from tests.judge_helpers import grade_from_content, write_answer_sets
from tests.timing import budget

APP = str(Path(__file__).resolve().parent.parent / "owleval" / "rate.py")


def bomb_png(path: Path, width: int, height: int) -> Path:
    """A 1-bit PNG of ``width`` x ``height`` black pixels: a few hundred KB on disk, gigabytes once decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\0" * (1 + (width + 7) // 8)
    idat = zlib.compress(row * height, 9)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
                     + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


@pytest.fixture
def data(tmp_path: Path, owl_data: Path) -> Path:
    """A private copy of the data set that a test may tamper with."""
    copy = tmp_path / "data"
    shutil.copytree(owl_data, copy)
    return copy


@pytest.fixture(scope="module")
def bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20000 x 20000 = 400 megapixels in about 60 KB: PIL itself refuses it with DecompressionBombError."""
    return bomb_png(tmp_path_factory.mktemp("bomb") / "bomb.png", 20_000, 20_000)


def _outside_image(tmp_path: Path) -> Path:
    secret = tmp_path / "outside" / "secret.png"
    secret.parent.mkdir()
    Image.new("RGB", (64, 48), "red").save(secret)
    return secret


def _rewrite_image_name(data: Path, qid: int, name: str) -> None:
    path = data / "questions.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    for row in rows:
        if row["question_id"] == qid:
            row["image"] = name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


# -- 4: confined to data_dir/cases -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["../secret.png", "../../outside/secret.png", "ABSOLUTE", "sub/1.jpg", "..", ""])
def test_questions_file_image_names_are_plain_file_names(name: str, data: Path, tmp_path: Path) -> None:
    if name == "ABSOLUTE":
        name = str(_outside_image(tmp_path))
    _rewrite_image_name(data, 5, name)
    with pytest.raises(InputFileError) as caught:
        parse_questions(data / "questions.jsonl")
    (problem,) = caught.value.problems
    assert (problem.file, problem.line, problem.field) == (data / "questions.jsonl", 5, "image")
    assert "plain file name" in problem.message


def test_a_symlink_in_cases_that_leaves_the_folder_is_refused(data: Path, tmp_path: Path) -> None:
    question = load_questions(data)[0]
    target = data / "cases" / question.image
    target.unlink()
    target.symlink_to(_outside_image(tmp_path))
    with pytest.raises(ImageRefused, match="outside"):
        image_path(question, data)
    # a symlink that stays inside cases/ is fine
    other = load_questions(data)[1]
    target.unlink()
    target.symlink_to(data / "cases" / other.image)
    assert image_path(question, data) == target
    assert case_image_path(data, other.image) == data / "cases" / other.image


def test_judge_refuses_an_image_outside_the_data_folder(data: Path, tmp_path: Path) -> None:
    questions = list(load_questions(data))
    (data / "cases" / questions[0].image).unlink()
    (data / "cases" / questions[0].image).symlink_to(_outside_image(tmp_path))
    write_answer_sets(tmp_path / "answers", questions[:1], {"alpha-7b": lambda qid: "grade=A"})
    with ChatServer(reply=grade_from_content) as server:
        result = CliRunner().invoke(app, ["judge", "--answers", str(tmp_path / "answers"), "--judge", "openai", "--checkpoint", "tiny-vlm",
                                          "--base-url", server.base_url, "--out", str(tmp_path / "judged"), "--data", str(data)])
        assert not server.chat_requests, "nothing was sent"
    assert result.exit_code != 0 and "outside" in result.output and questions[0].image in result.output
    assert "Traceback" not in result.output


def _app_on_tampered_study(tmp_path: Path, data: Path, monkeypatch: pytest.MonkeyPatch, tamper) -> AppTest:
    created = make_study(tmp_path, data, ("ann",))
    by_id = {q.question_id: q for q in load_questions(data)}
    for qid in QIDS:  # whatever comes first in ann's queue
        tamper(data / "cases" / by_id[qid].image)
    monkeypatch.setenv("OWLEVAL_RATE_DB", str(created.path))
    at = AppTest.from_file(APP, default_timeout=budget(30)).run()
    at.text_input(key="sign_in_token").input(created.tokens["ann"])
    at.button(key="sign_in_submit").click().run()
    return at


def test_app_does_not_show_a_file_from_outside_the_data_folder(tmp_path: Path, data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = _outside_image(tmp_path)

    def tamper(path: Path) -> None:
        path.unlink(missing_ok=True)
        path.symlink_to(secret)

    at = _app_on_tampered_study(tmp_path, data, monkeypatch, tamper)
    assert not at.exception, at.exception
    assert not at.get("imgs"), "the file outside the data folder was shown"
    assert any("unreadable" in w.value for w in at.warning)


# -- 5: image bombs ----------------------------------------------------------------------------------------------

def test_an_image_bomb_is_refused_with_one_line_naming_the_file(bomb: Path) -> None:
    assert bomb.stat().st_size < 400_000
    with pytest.raises(ImageRefused) as caught:
        load_image(bomb)
    assert isinstance(caught.value, OSError) and str(bomb) in str(caught.value) and "\n" not in str(caught.value)


def test_an_image_over_the_pixel_budget_is_refused_before_decoding(tmp_path: Path) -> None:
    side = int(MAX_PIXELS**0.5) + 100  # over the budget, under PIL's own warning threshold
    big = bomb_png(tmp_path / "big.png", side, side)
    with pytest.raises(ImageRefused, match=r"big\.png: .*megapixels, over the budget"):
        load_image(big)
    fits = bomb_png(tmp_path / "fits.png", 2000, 1500)
    assert load_image(fits).size == (2000, 1500)


def test_app_shows_a_warning_not_a_traceback_for_a_bomb(tmp_path: Path, data: Path, bomb: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    at = _app_on_tampered_study(tmp_path, data, monkeypatch, lambda path: shutil.copyfile(bomb, path))
    assert not at.exception, at.exception
    assert not at.get("imgs")
    assert any("unreadable" in w.value for w in at.warning)


@pytest.mark.parametrize("command", ["judge", "generate"])
def test_judge_and_generate_refuse_a_bomb_in_one_line(command: str, tmp_path: Path, data: Path, bomb: Path) -> None:
    questions = list(load_questions(data))
    shutil.copyfile(bomb, data / "cases" / questions[0].image)
    write_answer_sets(tmp_path / "answers", questions[:1], {"alpha-7b": lambda qid: "grade=A"})
    with ChatServer(reply=grade_from_content) as server:
        if command == "judge":
            args = ["judge", "--answers", str(tmp_path / "answers"), "--judge", "openai", "--checkpoint", "tiny-vlm",
                    "--base-url", server.base_url, "--out", str(tmp_path / "judged"), "--data", str(data), "-o", "max_retries=0"]
        else:
            args = ["generate", "--model", "openai", "--checkpoint", "tiny-vlm", "--base-url", server.base_url, "--questions", "1",
                    "--out", str(tmp_path / "gen.jsonl"), "--data", str(data), "-o", "max_retries=0"]
        result = CliRunner().invoke(app, args)
        assert not server.chat_requests, "the bomb was not sent"
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output and questions[0].image in result.output and "bomb" in result.output


@pytest.fixture(scope="module")
def chunk_pngs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("chunks")
    paths = {}
    for kind in ("iCCP", "zTXt"):
        paths[kind] = folder / f"{kind}.png"
        paths[kind].write_bytes(oversized_chunk_png(kind.encode()))
    return paths


@pytest.mark.parametrize("kind", ["iCCP", "zTXt"])
def test_a_png_chunk_over_pillows_limit_is_a_refusal_not_a_value_error(kind: str, chunk_pngs: dict[str, Path]) -> None:
    from owleval.screens.images import screen_image

    path = chunk_pngs[kind]
    with pytest.raises(ImageRefused, match=rf"cannot read image .*{kind}\.png: ValueError: Decompressed data too large"):
        load_image(path)
    cases = path.parent / "cases"
    cases.mkdir(exist_ok=True)
    shutil.copyfile(path, cases / "x.jpg")
    with pytest.raises(ImageRefused, match="Decompressed data too large"):
        screen_image(cases / "x.jpg", path.parent)


@pytest.mark.parametrize("fmt", ["BMP", "GIF", "TIFF"])
def test_only_the_data_sets_formats_are_opened(fmt: str, tmp_path: Path) -> None:
    path = tmp_path / "picture.jpg"
    Image.new("RGB", (8, 8), "red").save(path, format=fmt)
    with pytest.raises(ImageRefused, match=r"cannot read image .*picture\.jpg"):
        load_image(path)


def test_generate_refuses_an_oversized_chunk_in_one_line(tmp_path: Path, data: Path, chunk_pngs: dict[str, Path]) -> None:
    questions = list(load_questions(data))
    shutil.copyfile(chunk_pngs["iCCP"], data / "cases" / questions[0].image)
    with ChatServer(reply=grade_from_content) as server:
        result = CliRunner().invoke(app, ["generate", "--model", "openai", "--checkpoint", "tiny-vlm", "--base-url",
                                          server.base_url, "--questions", "1", "--out", str(tmp_path / "gen.jsonl"),
                                          "--data", str(data), "-o", "max_retries=0"])
        assert not server.chat_requests
    assert result.exit_code != 0 and isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output and questions[0].image in result.output and "Decompressed data too large" in result.output


def test_questions_dataset_refuses_a_bomb_before_decoding(data: Path, bomb: Path) -> None:
    from owleval.questions import questions_dataset

    name = load_questions(data)[0].image
    shutil.copyfile(bomb, data / "cases" / name)
    with pytest.raises(ImageRefused, match=name):
        questions_dataset(data)
