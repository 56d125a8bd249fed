"""Format characters (bidi controls, zero-width characters) are found and shown as visible markers."""

from owleval.textsafety import format_chars_in, is_format_char, mark_format_chars


def test_a_right_to_left_override_is_shown_as_a_marker_and_cannot_disguise_a_grade() -> None:
    disguised = "\u202eD edarg"
    assert mark_format_chars(disguised) == "[U+202E]D edarg"
    assert format_chars_in(disguised) == ["U+202E"]


def test_zero_width_and_isolate_characters_are_found_each_once_and_plain_text_is_untouched() -> None:
    text = "an\u200bna\u2066x\u2069\u200b"
    assert format_chars_in(text) == ["U+200B", "U+2066", "U+2069"]
    assert "\u200b" not in mark_format_chars(text)
    assert mark_format_chars("plain text, é, 中文, emoji 🦉") == "plain text, é, 中文, emoji 🦉"
    assert is_format_char("\ufeff") and not is_format_char("a")
