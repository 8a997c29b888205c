"""Every jaxtyping annotation in value_lens uses the one set of dimension names."""

from __future__ import annotations

import re
from pathlib import Path

from value_lens.core.shapes import DIMS, EXTRA

ROOT = Path(__file__).resolve().parents[2] / "value_lens"
ANNOTATION = re.compile(r'\b(?:Float|Int|Bool|Shaped|Num)\[[A-Za-z_.]+, "([^"]*)"\]')


def _names(text: str) -> list[str]:
    return [t for spec in ANNOTATION.findall(text) for t in spec.split() if not t.isdigit()]


def test_the_scan_sees_annotations():
    assert _names('x: Float[torch.Tensor, "B T d"]') == ["B", "T", "d"]


def test_every_dimension_name_is_in_the_set():
    bad = {}
    for path in ROOT.rglob("*.py"):
        odd = sorted(set(_names(path.read_text())) - set(DIMS) - EXTRA)
        if odd:
            bad[str(path.relative_to(ROOT))] = odd
    assert not bad, f"dimension names outside value_lens.core.shapes.DIMS: {bad}"
