"""Value-guided decoding: best-of-n selection and DeepConf-style early stopping with pluggable
scorers (the value axis, log-probability, self-certainty, group confidence, a cross-fitted probe,
length and random-direction controls), evaluated from one set of rollouts.

Layer 5, a sibling of ``steering``, ``evals`` and ``viz``: it never imports them.

* :mod:`value_lens.decode.rollouts`: sampling ``n`` rollouts per problem and what each records;
* :mod:`value_lens.decode.scorers`: the scorers (the supervised ones and the controls in
  :mod:`value_lens.decode.supervised`);
* :mod:`value_lens.decode.estimators`: unbiased best-of-k, pass@k and vote-at-k estimators;
* :mod:`value_lens.decode.results`: AUROC and best-of-k tables, and paired per-problem
  differences against random selection and majority vote, with problem-bootstrap intervals;
* :mod:`value_lens.decode.run`: :func:`best_of_n` and :func:`early_stop`;
* :mod:`value_lens.decode.budget`: stopping rules compared at equal shares of tokens saved,
  against majority vote, random stopping and a length-matched random control;
* :mod:`value_lens.decode.store`: finished rollout batches on disk, so a killed run resumes.
"""

from value_lens.decode import budget, estimators, scorers
from value_lens.decode.budget import StopCurve, StopInputs, equal_budget, matched_random, stop_curve
from value_lens.decode.results import BestOfN
from value_lens.decode.rollouts import Sample, Task
from value_lens.decode.run import DECODE_GENERATION, EarlyStop, best_of_n, early_stop, rescore

__all__ = [
    "DECODE_GENERATION",
    "BestOfN",
    "EarlyStop",
    "Sample",
    "StopCurve",
    "StopInputs",
    "Task",
    "best_of_n",
    "budget",
    "early_stop",
    "equal_budget",
    "estimators",
    "matched_random",
    "rescore",
    "scorers",
    "stop_curve",
]
