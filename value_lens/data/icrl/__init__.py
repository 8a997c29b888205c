"""The in-context RL game the value axis is built from: criteria, corpus, generation, labels.

Public API: :data:`CRITERIA` (the 50 hidden criteria), :func:`generate_scripted` (seeded
scripted conversations), :func:`play` (the model plays on-policy), :func:`label` (structural
reward-token labels for :func:`value_lens.fitting.collect.collect_stats`), :class:`Conversation` with
:func:`load_conversations` / :func:`save_conversations`, :func:`criterion_splits` and
:func:`import_official` (the paper's released data).

Example:
    >>> from value_lens.testing import tiny_tokenizer
    >>> convs = generate_scripted(1, seed=0, criteria=["dash", "animal"])
    >>> data = label(convs, tiny_tokenizer())
    >>> data.group_names
    ['dash', 'animal']
"""

from value_lens.data.icrl.conversation import (
    Attempt,
    Conversation,
    ParagraphResult,
    load_conversations,
    save_conversations,
)
from value_lens.data.icrl.corpus import Paragraph, load_corpus
from value_lens.data.icrl.label import LabelReport, label
from value_lens.data.icrl.official import OfficialImport, import_official
from value_lens.data.icrl.play import discovery_point, play
from value_lens.data.icrl.registry import CRITERIA, Criterion, Distractor, get_criteria
from value_lens.data.icrl.script import generate_scripted
from value_lens.data.icrl.splits import criterion_splits

__all__ = [
    "CRITERIA",
    "Attempt",
    "Conversation",
    "Criterion",
    "Distractor",
    "LabelReport",
    "OfficialImport",
    "Paragraph",
    "ParagraphResult",
    "criterion_splits",
    "discovery_point",
    "generate_scripted",
    "get_criteria",
    "import_official",
    "label",
    "load_conversations",
    "load_corpus",
    "play",
    "save_conversations",
]
