"""Exceptions raised by value_lens.

Every user-facing error derives from :class:`ValueLensError`, and each message names the fix.
The command line prints ``str(error)`` as one line and exits non-zero, with no traceback.
"""

from __future__ import annotations

__all__ = [
    "ArtifactError",
    "AxisMismatchError",
    "CalibrationError",
    "InputError",
    "LayerError",
    "ModelNotFoundError",
    "NonFiniteActivationError",
    "ValueLensError",
]


class ValueLensError(Exception):
    """Base class of every error value_lens raises on bad input."""


class ModelNotFoundError(ValueLensError, FileNotFoundError):
    """A model could not be found in any of the places value_lens looked."""


class LayerError(ValueLensError, IndexError):
    """A layer index is out of range, or the axis has no direction for it."""


class AxisMismatchError(ValueLensError, ValueError):
    """An axis does not fit the model it is used with (d_model, n_layers or model id)."""


class NonFiniteActivationError(ValueLensError, FloatingPointError):
    """A residual-stream activation was NaN or Inf."""


class InputError(ValueLensError, ValueError):
    """Text, tokens, labels or options that cannot be used as given."""


class ArtifactError(ValueLensError, ValueError):
    """A saved file is truncated, edited or not a value_lens artifact."""


class CalibrationError(ValueLensError, ValueError):
    """A strength in percent-of-norm or sd units was asked for without a calibration."""
