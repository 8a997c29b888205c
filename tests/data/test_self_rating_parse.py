"""The self-rating parser: every answer read or counted, never silently dropped."""

import pytest

from value_lens.data.rating_parse import STATUSES, parse_rating


@pytest.mark.parametrize(
    ("text", "value", "status", "form"),
    [
        ("73", 73.0, "ok", "plain"),
        ("73/100", 73.0, "ok", "fraction"),
        ("about 70", 70.0, "ok", "approximate"),
        ("I can't rate", None, "refusal", ""),
        ("I can’t rate that.", None, "refusal", ""),  # curly apostrophe
        ("Rating: 85", 85.0, "ok", "plain"),
        ("7/10", 70.0, "ok", "fraction"),
        ("7 out of 10", 70.0, "ok", "fraction"),
        ("70%", 70.0, "ok", "percent"),
        ("60-70", 65.0, "ok", "range"),
        ("somewhere between 40 and 50", 45.0, "ok", "range"),
        ("roughly 20 percent", 20.0, "ok", "percent"),
        ("Seventy-five.", 75.0, "ok", "words"),
        ("zero", 0.0, "ok", "words"),
        ("one hundred", 100.0, "ok", "words"),
        ("100", 100.0, "ok", "plain"),
        ("0", 0.0, "ok", "plain"),
        ("42.5", 42.5, "ok", "plain"),
        ("0.5", 50.0, "ok", "unit_interval"),  # a 0-1 scale answer
        ("1.0", 100.0, "ok", "unit_interval"),
        ("1", 1.0, "ok", "plain"),
        ("150", None, "out_of_range", "plain"),
        ("-5", None, "out_of_range", "plain"),
        ("I'm sorry, as an AI I do not have progress.", None, "refusal", ""),
        ("Let me think about the paragraph.", None, "no_number", ""),
        ("", None, "no_number", ""),
        ("I can't give one.", None, "refusal", ""),  # "one" is no rating in a refusal
        # an echo of the question's scale is no rating (a SmolLM2 answer)
        ("I'm not sure. On a scale from 0 to 100, how close", None, "refusal", ""),
        ("On a 0-100 scale I'd say 80", 80.0, "ok", "plain"),
        ("Let me try again. Pause. On a scale from 0 to 1", None, "no_number", ""),  # cut echo
        ("on a scale of 1-10, 7", 7.0, "ok", "plain"),
        ("I'd say seventy", 70.0, "ok", "words"),
        # "of" is no fraction; the first number is taken (a known limit of the parser)
        ("paragraph 2 of 6, so 30", 2.0, "ok", "plain"),
    ],
)
def test_parse_rating_cases(text, value, status, form):
    got = parse_rating(text)
    assert (got.value, got.status, got.form) == (value, status, form)
    assert got.raw == text and got.status in STATUSES


def test_the_fraction_wins_over_a_leading_number():
    # "3" is a paragraph number here; the rating is the fraction
    assert parse_rating("Paragraph 3: 60/100").value == 60.0
    assert parse_rating("8/0").status == "ok"  # a zero denominator is no fraction: first number
