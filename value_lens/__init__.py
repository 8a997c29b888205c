"""value_lens: see, measure and steer a language model's value axis.

Data flows one way: conversations -> :class:`LabelledTokens` -> :func:`collect_stats` ->
:class:`ActivationStats` -> :class:`ValueAxis` -> :func:`trace` / sweeps / steering -> figures.
"""

import value_lens.data.icrl  # noqa: F401  (value_lens.data.icrl.CRITERIA etc.)
from value_lens import confounds, data, evals, metrics, viz
from value_lens._version import __version__
from value_lens.axis import ValueAxis
from value_lens.chat import ChatText, MessageSpan, format_chat
from value_lens.collect import collect_stats
from value_lens.conventions import from_hidden_states_index, hook_name, to_hidden_states_index
from value_lens.dose import dose_response, dose_slopes
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
from value_lens.generate import Generation, generate
from value_lens.model import DEFAULT_MODEL_ID, load_model
from value_lens.readout import ValueTrace, project, trace, value
from value_lens.stats import ActivationStats
from value_lens.steer import Steering, steer, steering_hook
from value_lens.strength import Calibration, calibrate
from value_lens.sweep import layer_sweep
from value_lens.tokens import (
    AFTER,
    BEFORE,
    IGNORE,
    PLACEBO_AFTER,
    PLACEBO_BEFORE,
    REWARD,
    LabelledTokens,
)
from value_lens.viz import layer_token_heatmap, token_heatmap, write_report

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
    "ChatText",
    "InputError",
    "LabelledTokens",
    "LayerError",
    "MessageSpan",
    "ModelNotFoundError",
    "NonFiniteActivationError",
    "ValueAxis",
    "ValueLensError",
    "ValueTrace",
    "generate",
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
    "confounds",
    "data",
    "evals",
    "metrics",
    "viz",
    "__version__",
    "collect_stats",
    "format_chat",
    "from_hidden_states_index",
    "hook_name",
    "load_model",
    "project",
    "to_hidden_states_index",
    "trace",
    "value",
]
