"""value_lens: see, measure and steer a language model's value axis.

Data flows one way: conversations -> :class:`LabelledTokens` -> :func:`collect_stats` ->
:class:`ActivationStats` -> :class:`ValueAxis` -> :func:`trace` / sweeps / steering -> figures.
"""

import value_lens.data.icrl  # noqa: F401  (value_lens.data.icrl.CRITERIA etc.)
from value_lens import compare, data, decode, evals, pipeline, viz
from value_lens._version import __version__
from value_lens.analysis import confounds, metrics, stop
from value_lens.analysis.lens import logit_lens
from value_lens.analysis.monitor import monitor
from value_lens.analysis.readout import ValueTrace, project, trace, value
from value_lens.analysis.sweep import SweepConfig, SweepResult, layer_sweep
from value_lens.core.chat import format_chat
from value_lens.core.conventions import from_hidden_states_index, hook_name, to_hidden_states_index
from value_lens.core.generate import Generation, GenerationConfig, generate
from value_lens.core.model import DEFAULT_MODEL_ID, load_model
from value_lens.data.tokens import (
    AFTER,
    BEFORE,
    IGNORE,
    PLACEBO_AFTER,
    PLACEBO_BEFORE,
    REWARD,
    LabelledTokens,
)
from value_lens.decode import scorers as score
from value_lens.errors import (
    ArtifactError,
    AxisMismatchError,
    CalibrationError,
    InputError,
    LayerError,
    ModelNotFoundError,
    NonFiniteActivationError,
    ValueLensError,
)
from value_lens.fitting.axis import ValueAxis
from value_lens.fitting.collect import collect_stats
from value_lens.fitting.stats import ActivationStats
from value_lens.steering.dose import DoseGrid, dose_response, dose_slopes
from value_lens.steering.steer import Steering, steer, steering_hook
from value_lens.steering.strength import Calibration, calibrate
from value_lens.viz import LiveHeatmap, layer_token_heatmap, token_heatmap, write_report

__all__ = [
    "AFTER",
    "BEFORE",
    "DEFAULT_MODEL_ID",
    "IGNORE",
    "PLACEBO_AFTER",
    "PLACEBO_BEFORE",
    "REWARD",
    "ActivationStats",
    "ArtifactError",
    "AxisMismatchError",
    "CalibrationError",
    "InputError",
    "LabelledTokens",
    "LayerError",
    "LiveHeatmap",
    "ModelNotFoundError",
    "NonFiniteActivationError",
    "ValueAxis",
    "ValueLensError",
    "ValueTrace",
    "generate",
    "GenerationConfig",
    "DoseGrid",
    "SweepConfig",
    "SweepResult",
    "Generation",
    "steer",
    "steering_hook",
    "Steering",
    "calibrate",
    "Calibration",
    "dose_response",
    "dose_slopes",
    "layer_sweep",
    "token_heatmap",
    "layer_token_heatmap",
    "write_report",
    "compare",
    "confounds",
    "data",
    "decode",
    "pipeline",
    "evals",
    "metrics",
    "viz",
    "__version__",
    "collect_stats",
    "format_chat",
    "from_hidden_states_index",
    "hook_name",
    "load_model",
    "logit_lens",
    "project",
    "to_hidden_states_index",
    "trace",
    "monitor",
    "score",
    "stop",
    "value",
]
