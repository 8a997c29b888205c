"""Compare checkpoints along the value axis (the paper's post-training figures).

Every comparison returns a :class:`CompareResult`: a tidy ``table``, a ``summary`` with 95%
bootstrap CIs, and a plotly ``figure``. Chats are rendered with thinking off.

* :func:`preference_rank`: the preferred item's value rank among a prompt's options (Figs 7a,
  13, 15, 16);
* :func:`word_delta`: tuned - base value on the preferred word in natural sentences (Fig 7b);
* :func:`domain_matrix`: value change per trained vs held-out domain (Fig 9);
* :func:`category_quartiles`: label fractions per quartile of the last-prompt-token value (Fig 17);
* :func:`prompt_steering`: selection rate while steering only option tokens in the prompt (Fig 14);
* :func:`selection_accuracy`: the target chosen by option log-likelihood (Fig 12).
"""

from value_lens.compare.choice import option_logliks, prompt_steering, selection_accuracy
from value_lens.compare.common import CompareResult, OptionPrompt, list_prompt
from value_lens.compare.quartiles import category_quartiles, quartile_fractions, quartiles
from value_lens.compare.ranking import preference_rank, rank_of
from value_lens.compare.transfer import domain_matrix, word_delta

__all__ = [
    "CompareResult",
    "OptionPrompt",
    "category_quartiles",
    "domain_matrix",
    "list_prompt",
    "option_logliks",
    "preference_rank",
    "prompt_steering",
    "quartile_fractions",
    "quartiles",
    "rank_of",
    "selection_accuracy",
    "word_delta",
]
