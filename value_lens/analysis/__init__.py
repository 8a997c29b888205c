"""Analysis: per-token readout, held-out layer sweeps with their position design, live value
monitoring with stop rules, metrics and cluster intervals. Builds on core, data and fitting.
Names load their module on first use; ``monitor`` (the function) is ``value_lens.monitor``,
``value_lens.analysis.monitor`` is its module.

Example:
    >>> from value_lens import analysis
    >>> analysis.value_beyond_position.__module__
    'value_lens.analysis.confounds'
"""

from value_lens._lazy import attach

_NAMES = {
    "ValueTrace": "value_lens.analysis.readout",
    "trace": "value_lens.analysis.readout",
    "project": "value_lens.analysis.readout",
    "mean_value": "value_lens.analysis.readout",
    "logit_lens": "value_lens.analysis.lens",
    "SweepConfig": "value_lens.analysis.sweep",
    "SweepResult": "value_lens.analysis.sweep",
    "ClusterCI": "value_lens.analysis.sweep",
    "layer_sweep": "value_lens.analysis.sweep",
    "PositionVerdict": "value_lens.analysis.confounds",
    "value_beyond_position": "value_lens.analysis.confounds",
    "discontinuity": "value_lens.analysis.discontinuity",
    "Monitor": "value_lens.analysis.monitor",
    "cross_evaluate": "value_lens.analysis.crosseval",
    "CrossEvalConfig": "value_lens.analysis.crosseval",
}
_MODULES = (
    "clusters",
    "confounds",
    "crosseval",
    "discontinuity",
    "intervals",
    "lens",
    "metrics",
    "monitor",
    "monitor_calibration",
    "phrases",
    "rates",
    "readout",
    "stop",
    "sweep",
    "text_metrics",
)
__all__ = list(_NAMES)
__getattr__, __dir__ = attach(__name__, _NAMES, _MODULES)
