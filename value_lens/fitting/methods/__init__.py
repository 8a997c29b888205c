"""Direction-fitting methods: the :class:`Fitter` registry and one module per method.

Each method maps :class:`~value_lens.fitting.stats.ActivationStats` to ``(directions [L, D],
info)`` (plus a readout transform for ``standardized`` and ``erased``) for the stats' layers.
:meth:`ValueAxis.fit <value_lens.fitting.axis.ValueAxis.fit>` looks methods up in
:data:`FITTERS`; :func:`needs` says what to collect for one.

* ``mean_diff``: the paper's Eq. 1, the mean over groups of (mean AFTER - mean BEFORE).
* ``pca_diff``: the top principal axis of the per-group differences (uncentred).
* ``ridge``: ridge regression of the per-token target on the residual (second moments).
* ``logistic``: an L2 logistic probe AFTER vs BEFORE on a token sample.
* ``did``: difference in differences against placebo turns.
* ``lda``: shrinkage LDA, Ledoit-Wolf or held-out likelihood (per-group second moments).
* ``standardized``: mean difference of z-scores with sink dimensions zeroed.
* ``mean_centred``: the AFTER mean minus the mean of all labelled tokens.
* ``erased``: mean difference after LEACE erasure of position in the turn.

Add a method with one file and one registration line (or :func:`register_fitter` at run time).

Example:
    >>> sorted(FITTERS)[:3]
    ['did', 'erased', 'lda']
    >>> needs("lda").class_moments, needs("mean_diff").class_moments
    (True, False)
"""

from __future__ import annotations

from value_lens.fitting.methods import (
    fit_did,
    fit_erased,
    fit_lda,
    fit_logistic,
    fit_mean_centred,
    fit_mean_diff,
    fit_pca_diff,
    fit_ridge,
    fit_standardized,
)
from value_lens.fitting.methods.fit_did import did
from value_lens.fitting.methods.fit_erased import erased
from value_lens.fitting.methods.fit_lda import lda
from value_lens.fitting.methods.fit_logistic import LOGISTIC_SAMPLE, logistic
from value_lens.fitting.methods.fit_mean_centred import mean_centred
from value_lens.fitting.methods.fit_mean_diff import mean_diff
from value_lens.fitting.methods.fit_pca_diff import pca_diff
from value_lens.fitting.methods.fit_ridge import ridge
from value_lens.fitting.methods.fit_standardized import standardized
from value_lens.fitting.methods.registry import (
    FITTERS,
    FitFn,
    Fitter,
    SweepWeights,
    get_fitter,
    register_fitter,
    unregister_fitter,
)
from value_lens.fitting.plan import CollectPlan

__all__ = [
    "FITTERS",
    "LOGISTIC_SAMPLE",
    "FitFn",
    "Fitter",
    "SweepWeights",
    "did",
    "erased",
    "get_fitter",
    "lda",
    "logistic",
    "mean_centred",
    "mean_diff",
    "needs",
    "pca_diff",
    "register_fitter",
    "ridge",
    "standardized",
    "unregister_fitter",
]

register_fitter(fit_mean_diff.FITTER)
register_fitter(fit_pca_diff.FITTER)
register_fitter(fit_ridge.FITTER)
register_fitter(fit_logistic.FITTER)
register_fitter(fit_did.FITTER)
register_fitter(fit_lda.FITTER)
register_fitter(fit_standardized.FITTER)
register_fitter(fit_mean_centred.FITTER)
register_fitter(fit_erased.FITTER)


def needs(method: str | Fitter, *, per_split: bool = False) -> CollectPlan:
    """What to collect for ``method`` (with ``per_split``, also for refits on some groups)."""
    f = get_fitter(method)
    return f.per_split_needs if per_split else f.needs
