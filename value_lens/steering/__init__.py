"""Steering: operators that add, ablate, clamp, cap or rotate along the axis, conditional
steering, value transplant, KV-cache-correct position masks, strength units, dose-response grids
with per-prompt reliability, and a CAA-style A/B evaluation. Never imports ``evals`` or ``viz``.

A steering mode is an operator object (:mod:`value_lens.steering.operator`) registered by name
in :data:`MODES`; add one with one file and ``register_mode(MyMode)``.
"""

from value_lens.steering.ab import ABGrid, ABResult, ab_eval, ab_probs
from value_lens.steering.ab_items import AB_BEHAVIOURS, ABItem, ab_items
from value_lens.steering.condition import Condition
from value_lens.steering.dose import DoseGrid, DoseResult, dose_response
from value_lens.steering.modes import (
    MODES,
    Ablate,
    Add,
    Cap,
    Clamp,
    Rotate,
    calibrate_cap,
    register_mode,
)
from value_lens.steering.operator import Operator, StepContext, strength
from value_lens.steering.reliability import dose_slopes, prompt_curves, reliability
from value_lens.steering.steer import Steering, raw_alpha, steer, steering_hook
from value_lens.steering.strength import Calibration, calibrate
from value_lens.steering.transplant import Transplant, Transplanted, transplant

__all__ = [
    "AB_BEHAVIOURS",
    "MODES",
    "ABGrid",
    "ABItem",
    "ABResult",
    "Ablate",
    "Add",
    "Calibration",
    "Cap",
    "Clamp",
    "Condition",
    "DoseGrid",
    "DoseResult",
    "Operator",
    "Rotate",
    "StepContext",
    "Steering",
    "Transplant",
    "Transplanted",
    "ab_eval",
    "ab_items",
    "ab_probs",
    "calibrate",
    "calibrate_cap",
    "dose_response",
    "dose_slopes",
    "prompt_curves",
    "raw_alpha",
    "register_mode",
    "reliability",
    "steer",
    "steering_hook",
    "strength",
    "transplant",
]
