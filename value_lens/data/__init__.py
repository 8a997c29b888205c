"""Data: labelled token sequences (the input of collection, fitting and sweeps), the ICRL game
(:mod:`value_lens.data.icrl`), placebo cuts, and the preference, SFT, sentence and category sets
of the post-training comparisons. Names load their module on first use.

Example:
    >>> from value_lens import data
    >>> data.AFTER, data.PLACEBO_AFTER
    (1, 4)
"""

from value_lens._lazy import attach

_NAMES = {
    name: "value_lens.data.tokens"
    for name in (
        "IGNORE",
        "BEFORE",
        "AFTER",
        "REWARD",
        "PLACEBO_BEFORE",
        "PLACEBO_AFTER",
        "PSEUDO_BEFORE",
        "PSEUDO_AFTER",
        "LabelledTokens",
    )
} | {
    "rematch_placebo": "value_lens.data.placebo",
    "RatingConfig": "value_lens.data.self_rating",
    "RatingSplit": "value_lens.data.rating_labels",
    "rate": "value_lens.data.self_rating",
}
_MODULES = (
    "categories",
    "icrl",
    "placebo",
    "preference",
    "rating_labels",
    "rating_parse",
    "self_rating",
    "sentences",
    "sft",
    "tokens",
)
__all__ = list(_NAMES)
__getattr__, __dir__ = attach(__name__, _NAMES, _MODULES)
