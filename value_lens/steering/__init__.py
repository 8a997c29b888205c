"""Steering: hook functions that add, clamp or ablate the axis, KV-cache-correct position masks,
strength units and dose-response grids. Never imports ``evals`` or ``viz``. Names load their
module on first use."""

from value_lens._lazy import attach

_NAMES = {
    "Steering": "value_lens.steering.steer",
    "steering_hook": "value_lens.steering.steer",
    "Calibration": "value_lens.steering.strength",
    "calibrate": "value_lens.steering.strength",
    "DoseGrid": "value_lens.steering.dose",
    "dose_response": "value_lens.steering.dose",
    "dose_slopes": "value_lens.steering.dose",
}
__all__ = list(_NAMES)
__getattr__, __dir__ = attach(__name__, _NAMES, ("dose", "positions", "steer", "strength"))
