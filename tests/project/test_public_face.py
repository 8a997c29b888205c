"""The public face: about 25 names at the top, in pipeline order, each loading its module on first
use (``import value_lens`` imports neither torch, plotly, pandas, trl nor the CLI), a face with
its own ``__all__`` for every subpackage, and the renamed ``value`` kept one release with a
warning."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_layout import LAYERS

import value_lens as vl

PKG = Path(vl.__file__).parent
SUBPACKAGES = sorted(p.parent.name for p in PKG.glob("*/__init__.py"))


def test_import_value_lens_loads_nothing_heavy():
    code = (
        "import json, sys; import value_lens; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'plotly', 'pandas', 'trl', 'transformers', 'transformer_lens') or "
        "m.startswith('value_lens.'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout)
    assert set(loaded) <= {"value_lens._lazy", "value_lens._version"}, loaded


def _layer(module: str) -> int:
    return LAYERS[module.split(".")[1]]


def test_the_top_level_is_small_and_in_pipeline_order():
    names = [n for n in vl.__all__ if n != "__version__"]
    assert len(names) <= 26
    modules = [vl._NAMES[n].partition(":")[0] for n in names]
    layers = [_layer(m) for m in modules]
    assert layers == sorted(layers), list(zip(names, layers, strict=True))
    for n in names:
        assert getattr(vl, n) is not None
    assert set(names) <= set(dir(vl)) and {"viz", "steering", "evals"} <= set(dir(vl))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        vl.nope  # noqa: B018


def test_every_subpackage_has_a_face_whose_names_resolve():
    for sub in SUBPACKAGES:
        mod = importlib.import_module(f"value_lens.{sub}")
        assert isinstance(getattr(mod, "__all__", None), list) and mod.__all__, sub
        for name in mod.__all__:
            assert getattr(mod, name) is not None, f"value_lens.{sub}.{name}"
        assert set(mod.__all__) <= set(dir(mod)), sub
        # a lazy face names modules of its own package only (the layer test reads imports)
        for target in getattr(mod, "_NAMES", {}).values():
            assert target.startswith(f"value_lens.{sub}."), (sub, target)


def test_value_is_renamed_mean_value_with_a_warning():
    with pytest.warns(DeprecationWarning, match="mean_value"):
        old = vl.value
    assert old is vl.mean_value
    from value_lens import ValueAxis, confounds

    assert ValueAxis.__module__ == "value_lens.fitting.axis"
    assert confounds.__name__ == "value_lens.analysis.confounds"
