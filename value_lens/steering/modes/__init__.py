"""The registered steering modes: one file each, one registration line each.

``MODES`` maps a name to its :class:`~value_lens.steering.operator.Operator` subclass;
``vl.steer(mode=...)``, :class:`~value_lens.steering.dose.DoseGrid`, the A/B evaluation and the
CLI's ``--mode`` read it. Register your own with ``register_mode(MyMode)`` (its class attribute
``name`` is the mode's name).

Example:
    >>> list(MODES)
    ['add', 'ablate', 'clamp', 'cap', 'rotate']
    >>> MODES.build("cap", alpha=1.5)
    Cap(floor=1.5, ceiling=None)
"""

from __future__ import annotations

from value_lens.steering.modes.ablate import Ablate
from value_lens.steering.modes.add import Add
from value_lens.steering.modes.cap import Cap, calibrate_cap
from value_lens.steering.modes.clamp import Clamp
from value_lens.steering.modes.rotate import Rotate
from value_lens.steering.operator import ModeRegistry

__all__ = ["MODES", "Ablate", "Add", "Cap", "Clamp", "Rotate", "calibrate_cap", "register_mode"]

MODES = ModeRegistry()
MODES.register(Add)
MODES.register(Ablate)
MODES.register(Clamp)
MODES.register(Cap)
MODES.register(Rotate)

register_mode = MODES.register
