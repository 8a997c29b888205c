"""Fitting: stream labelled tokens into additive statistics (``collect``, ``stats``), fit directions
(``methods``), and hold them as a :class:`~value_lens.fitting.axis.ValueAxis` (saved as
safetensors, exported to llama.cpp control vectors by ``gguf``). Names load their module on
first use.

Example:
    >>> from value_lens import fitting
    >>> fitting.ValueAxis.__name__
    'ValueAxis'
"""

from value_lens._lazy import attach

_NAMES = {
    "collect_stats": "value_lens.fitting.collect",
    "ActivationStats": "value_lens.fitting.stats",
    "ValueAxis": "value_lens.fitting.axis",
    "FITTERS": "value_lens.fitting.methods",
    "register_fitter": "value_lens.fitting.methods",
    "get_fitter": "value_lens.fitting.methods",
    "CollectPlan": "value_lens.fitting.plan",
    "CollectRun": "value_lens.fitting.collect",
}
_MODULES = (
    "accumulate",
    "axis",
    "collect",
    "distributed",
    "fit_fields",
    "gguf",
    "manifest",
    "methods",
    "moments",
    "official",
    "plan",
    "shards",
    "stats",
    "stats_ops",
    "transforms",
)
__all__ = list(_NAMES)
__getattr__, __dir__ = attach(__name__, _NAMES, _MODULES)
