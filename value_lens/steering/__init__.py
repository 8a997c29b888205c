"""Steering: operators that add, ablate, clamp, cap or rotate along the axis, conditional
steering, value transplant, KV-cache-correct position masks, strength units, dose-response grids
with per-prompt reliability, and a CAA-style A/B evaluation. Never imports ``evals`` or ``viz``.
Names load their module on first use.

A steering mode is an operator object (:mod:`value_lens.steering.operator`) registered by name
in :data:`~value_lens.steering.modes.MODES`; add one with one file and ``register_mode(MyMode)``.
The functions named like their modules (``steer``, ``transplant``, ``reliability``) are reached
through those modules (``vl.steer`` is the top-level name of the first).
"""

from value_lens._lazy import attach

_NAMES = {
    "Steering": "value_lens.steering.steer",
    "steering_hook": "value_lens.steering.steer",
    "raw_alpha": "value_lens.steering.steer",
    "MODES": "value_lens.steering.modes",
    "register_mode": "value_lens.steering.modes",
    "Add": "value_lens.steering.modes",
    "Ablate": "value_lens.steering.modes",
    "Clamp": "value_lens.steering.modes",
    "Cap": "value_lens.steering.modes",
    "Rotate": "value_lens.steering.modes",
    "calibrate_cap": "value_lens.steering.modes",
    "Operator": "value_lens.steering.operator",
    "StepContext": "value_lens.steering.operator",
    "strength_field": "value_lens.steering.operator",
    "Condition": "value_lens.steering.condition",
    "Transplant": "value_lens.steering.transplant",
    "Transplanted": "value_lens.steering.transplant",
    "Calibration": "value_lens.steering.strength",
    "calibrate": "value_lens.steering.strength",
    "DoseGrid": "value_lens.steering.dose",
    "DoseResult": "value_lens.steering.dose",
    "dose_response": "value_lens.steering.dose",
    "dose_slopes": "value_lens.steering.dose",
    "prompt_curves": "value_lens.steering.reliability",
    "ABGrid": "value_lens.steering.ab",
    "ABResult": "value_lens.steering.ab",
    "ab_eval": "value_lens.steering.ab",
    "ab_probs": "value_lens.steering.ab",
    "AB_BEHAVIOURS": "value_lens.steering.ab_items",
    "ABItem": "value_lens.steering.ab_items",
    "ab_items": "value_lens.steering.ab_items",
}
__all__ = list(_NAMES)
__getattr__, __dir__ = attach(
    __name__,
    _NAMES,
    (
        "ab",
        "ab_items",
        "condition",
        "dose",
        "modes",
        "operator",
        "positions",
        "reliability",
        "steer",
        "strength",
        "transplant",
    ),
)
