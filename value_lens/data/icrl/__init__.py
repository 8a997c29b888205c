"""The in-context RL game the value axis is built from: criteria, corpus, generation, labels.

Public API: :data:`CRITERIA`, :func:`generate_scripted`, :func:`play`, :func:`label`,
:class:`Conversation`, :func:`load_conversations`, :func:`save_conversations`,
:func:`criterion_splits`, :func:`import_official`, :func:`load_corpus`.
"""

from value_lens.data.icrl.conversation import (
    Attempt,
    Conversation,
    ParagraphResult,
    load_conversations,
    save_conversations,
)
from value_lens.data.icrl.corpus import Paragraph, load_corpus
from value_lens.data.icrl.registry import CRITERIA, Criterion, Distractor, get_criteria
from value_lens.data.icrl.script import generate_scripted

__all__ = [
    "CRITERIA",
    "Attempt",
    "Conversation",
    "Criterion",
    "Distractor",
    "Paragraph",
    "ParagraphResult",
    "generate_scripted",
    "get_criteria",
    "load_conversations",
    "load_corpus",
    "save_conversations",
]
