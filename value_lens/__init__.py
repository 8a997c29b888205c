"""value_lens: see, measure and steer a language model's value axis.

Data flows one way: load a model -> :class:`LabelledTokens` -> :func:`collect_stats` ->
:class:`ActivationStats` -> :class:`ValueAxis` -> :func:`trace` / :func:`layer_sweep` /
:func:`steer` -> figures. The names below are the whole top level, in that order; everything
else lives in a subpackage with a face of its own (``value_lens.core``, ``.data``, ``.fitting``,
``.analysis``, ``.steering``, ``.evals``, ``.viz``, ``.decode``, ``.compare``, ``.pipeline``),
and ``confounds``, ``metrics`` and ``stop`` are shortcuts to the analysis modules of those
names. Every name loads its module on first use (PEP 562), so ``import value_lens`` itself
imports neither torch nor plotly, trl or the command line.

Example:
    >>> import value_lens as vl
    >>> vl.ValueAxis.__name__, vl.confounds.__name__
    ('ValueAxis', 'value_lens.analysis.confounds')
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from value_lens._lazy import attach
from value_lens._version import __version__

#: the public names, in pipeline order, and where each is defined
_NAMES = {
    "InputError": "value_lens.errors",
    "load_model": "value_lens.core.model",
    "generate": "value_lens.core.generate",
    "GenerationConfig": "value_lens.core.generate",
    "LabelledTokens": "value_lens.data.tokens",
    "collect_stats": "value_lens.fitting.collect",
    "ActivationStats": "value_lens.fitting.stats",
    "ValueAxis": "value_lens.fitting.axis",
    "register_fitter": "value_lens.fitting.methods",
    "trace": "value_lens.analysis.readout",
    "project": "value_lens.analysis.readout",
    "mean_value": "value_lens.analysis.readout",
    "ValueTrace": "value_lens.analysis.readout",
    "layer_sweep": "value_lens.analysis.sweep",
    "SweepConfig": "value_lens.analysis.sweep",
    "monitor": "value_lens.analysis.monitor",
    "confounds": "value_lens.analysis:confounds",
    "metrics": "value_lens.analysis:metrics",
    "stop": "value_lens.analysis:stop",
    "steer": "value_lens.steering.steer",
    "dose_response": "value_lens.steering.dose",
    "transplant": "value_lens.steering.transplant",
    "token_heatmap": "value_lens.viz.heatmap",
    "write_report": "value_lens.viz.report",
}
_SUBPACKAGES = (
    "analysis",
    "compare",
    "core",
    "data",
    "decode",
    "errors",
    "evals",
    "fitting",
    "pipeline",
    "posttrain",
    "steering",
    "testing",
    "viz",
)

__all__ = ["__version__", *_NAMES]

_getattr, __dir__ = attach(__name__, _NAMES, _SUBPACKAGES)


def __getattr__(name: str) -> Any:
    if name == "value":  # renamed; the old name works, with a warning, for one release
        warnings.warn(
            "value_lens.value is now value_lens.mean_value; the old name goes in the next release",
            DeprecationWarning,
            stacklevel=2,
        )
        name = "mean_value"
    return _getattr(name)


if TYPE_CHECKING:  # what the lazy names are, for type checkers and editors
    from value_lens import analysis as analysis
    from value_lens.analysis import confounds as confounds
    from value_lens.analysis import metrics as metrics
    from value_lens.analysis import stop as stop
    from value_lens.analysis.monitor import monitor as monitor
    from value_lens.analysis.readout import ValueTrace as ValueTrace
    from value_lens.analysis.readout import mean_value as mean_value
    from value_lens.analysis.readout import project as project
    from value_lens.analysis.readout import trace as trace
    from value_lens.analysis.sweep import SweepConfig as SweepConfig
    from value_lens.analysis.sweep import layer_sweep as layer_sweep
    from value_lens.core.generate import GenerationConfig as GenerationConfig
    from value_lens.core.generate import generate as generate
    from value_lens.core.model import load_model as load_model
    from value_lens.data.tokens import LabelledTokens as LabelledTokens
    from value_lens.errors import InputError as InputError
    from value_lens.fitting.axis import ValueAxis as ValueAxis
    from value_lens.fitting.collect import collect_stats as collect_stats
    from value_lens.fitting.methods import register_fitter as register_fitter
    from value_lens.fitting.stats import ActivationStats as ActivationStats
    from value_lens.steering.dose import dose_response as dose_response
    from value_lens.steering.steer import steer as steer
    from value_lens.steering.transplant import transplant as transplant
    from value_lens.viz.heatmap import token_heatmap as token_heatmap
    from value_lens.viz.report import write_report as write_report
