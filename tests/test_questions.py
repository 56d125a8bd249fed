from collections import Counter
from pathlib import Path

import pytest

from owleval.errors import InputFileError
from owleval.questions import ABILITIES, load_image, load_questions, parse_questions, questions_dataset, questions_frame


def test_counts_match_the_published_design(owl_data: Path) -> None:
    questions = load_questions(owl_data)
    assert len(questions) == 82
    assert len({q.image for q in questions}) == 50
    assert Counter(q.turn_type for q in questions) == {"single": 30, "first": 20, "later": 32}
    assert sum("single_turn" in q.categories for q in questions) == 50
    assert sum("multi_turn" in q.categories for q in questions) == 52
    assert {a for q in questions for a in q.abilities} == set(ABILITIES)


def test_dialogues_are_consecutive_ids_on_one_image(owl_data: Path) -> None:
    by_id = {q.question_id: q for q in load_questions(owl_data)}
    assert by_id[8].earlier_turns == (6, 7) and by_id[8].turn_index == 2 and by_id[8].dialogue_id == 6
    assert by_id[6].turn_type == "first" and by_id[6].earlier_turns == ()
    assert by_id[1].turn_type == "single" and by_id[1].dialogue_id == 1
    for q in by_id.values():
        for earlier in q.earlier_turns:
            assert by_id[earlier].image == q.image and by_id[earlier].dialogue_id == q.dialogue_id
        assert q.earlier_turns == tuple(range(q.dialogue_id, q.question_id))
    assert len({q.dialogue_id for q in by_id.values() if q.turn_type != "single"}) == 20


def test_image_loading_goes_by_content(owl_data: Path) -> None:
    path = owl_data / "cases" / "49.jpg"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = load_image(path)
    assert image.mode == "RGB" and image.size == (578, 722)


def test_dataframe_and_dataset(owl_data: Path) -> None:
    frame = questions_frame(owl_data)
    assert len(frame) == 82 and frame.loc[5, "earlier_turns"] == [4]
    assert frame["turn_type"].value_counts().to_dict() == {"single": 30, "later": 32, "first": 20}
    dataset = questions_dataset(owl_data)
    assert dataset.features["image"].__class__.__name__ == "Image"
    row = dataset[dataset["image_file"].index("49.jpg")]
    assert row["image"].format == "PNG" and row["image"].size == (578, 722)  # decoded by content


def test_bad_questions_file_names_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "questions.jsonl"
    bad.write_text(
        '{"image": "1.jpg", "question_id": 1, "question": "q", "ability": "a", "category": ["single_turn"]}\n'
        '{"image": "1.jpg", "question_id": "2", "question": "q", "ability": "z", "category": ["single_turn"]}\n'
        "not json\n"
    )
    with pytest.raises(InputFileError) as info:
        parse_questions(bad)
    text = str(info.value)
    assert f"{bad}:2 [question_id]" in text and f"{bad}:3" in text and "malformed JSON" in text
