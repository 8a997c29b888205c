"""The paper's correlational evaluations as reusable suites (any model, any axis).

* :mod:`~value_lens.evals.confidence`: verbalized confidence (Yes/No prefills, pre-response
  yes-rate) on generated arithmetic/word problems or user JSONL problems.
* :mod:`~value_lens.evals.backtracking`: backtracking phrases, 500-token band curves and
  event-locked traces over rollouts or supplied texts.
* :mod:`~value_lens.evals.code`: correct vs corrupted code (syntax, shuffle, rename, logic).

Each runner returns an :class:`EvalResult` (``table``, ``summary``, ``extras``, ``meta``) and
takes the shared :class:`ReadOptions` (metric, truncate, log, progress). Every interval a suite
prints resamples problems (or prompts), never rollouts or tokens. The suites are registered in
:mod:`value_lens.evals.registry` (:class:`Suite`), which ``value-lens eval``, the results folder
and the report read: a new suite is one module plus one :func:`register_suite` call.
Defaults follow the paper: chats rendered with ``enable_thinking=False`` (Qwen3's empty think
block before each reply) and the cosine readout; ``meta`` records both.
"""

from value_lens.evals._common import EvalResult, ReadOptions, cluster_mean_ci
from value_lens.evals.backtracking import (
    DEFAULT_PHRASES,
    band_curves,
    event_locked,
    event_windows,
    find_backtracking,
    run_backtracking_suite,
)
from value_lens.evals.code import (
    build_code_pairs,
    code_headline,
    code_sentence,
    code_summary,
    load_code_problems,
    run_code_suite,
    stdlib_functions,
)
from value_lens.evals.confidence import confidence_summary, run_confidence_suite
from value_lens.evals.corrupt import CORRUPTIONS, corrupt_code
from value_lens.evals.problems import arithmetic_problems, load_math_problems, parse_answer
from value_lens.evals.registry import (
    Figure,
    Section,
    Suite,
    SuiteRequest,
    Table,
    get_suite,
    register_suite,
    suites,
    unregister_suite,
)

__all__ = [
    "CORRUPTIONS",
    "DEFAULT_PHRASES",
    "EvalResult",
    "Figure",
    "ReadOptions",
    "Section",
    "Suite",
    "SuiteRequest",
    "Table",
    "arithmetic_problems",
    "band_curves",
    "build_code_pairs",
    "cluster_mean_ci",
    "code_headline",
    "code_sentence",
    "code_summary",
    "confidence_summary",
    "corrupt_code",
    "event_locked",
    "event_windows",
    "find_backtracking",
    "get_suite",
    "load_code_problems",
    "load_math_problems",
    "parse_answer",
    "register_suite",
    "unregister_suite",
    "run_backtracking_suite",
    "run_code_suite",
    "run_confidence_suite",
    "stdlib_functions",
    "suites",
]
