"""Strength units: calibration from texts / stats / axis, JSON round trip, percent and sd steering."""

from __future__ import annotations

import math

import pytest
import torch

from value_lens.core.model import model_id
from value_lens.errors import CalibrationError, InputError
from value_lens.fitting.axis import ValueAxis
from value_lens.steering.steer import steer
from value_lens.steering.strength import Calibration, calibrate, to_raw

TEXTS = ["the value of a small thing", "another text about code and tests"]


@pytest.fixture(scope="module")
def axis(tiny):
    g = torch.Generator().manual_seed(2)
    return ValueAxis(torch.randn(2, 64, generator=g), model_id=model_id(tiny))


def test_text_calibration_matches_a_manual_pass(tiny, axis):
    cal = calibrate(tiny, axis, texts=TEXTS)
    norms, projs = {0: [], 1: []}, {0: [], 1: []}
    for t in TEXTS:
        _, cache = tiny.run_with_cache(tiny.to_tokens(t, prepend_bos=False))
        for layer in (0, 1):
            h = cache[f"blocks.{layer}.hook_resid_post"][0, 1:].double()
            norms[layer].append(h.norm(dim=-1))
            projs[layer].append(h @ axis.direction(layer).double())
    for layer in (0, 1):
        assert math.isclose(
            cal.resid_norm[layer], float(torch.cat(norms[layer]).mean()), rel_tol=1e-6
        )
        assert math.isclose(cal.proj_std[layer], float(torch.cat(projs[layer]).std()), rel_tol=1e-5)
    assert cal.model_id == model_id(tiny) and cal.source.startswith("texts")
    assert cal.n_tokens == sum(len(tiny.to_tokens(t, prepend_bos=False)[0]) - 1 for t in TEXTS)


def test_json_round_trip_and_precedence(tmp_path, axis):
    cal = Calibration("m", {0: 10.0, 1: float("nan")}, {0: 2.0}, "stats", 5)
    assert cal.resid_norm == {0: 10.0}  # non-finite scales are dropped, not stored
    back = Calibration.load(cal.save(tmp_path / "cal.json"))
    assert back == cal
    withnorm = axis.replace(resid_norm=torch.tensor([100.0, 200.0]))
    merged = calibrate(axis=withnorm, stats=None)
    assert merged.resid_norm == {0: 100.0, 1: 200.0} and merged.proj_std == {}
    assert to_raw(5.0, 1, "percent", merged) == 10.0
    assert to_raw(3.0, 0, "sd", cal) == 6.0
    with pytest.raises(CalibrationError, match="layer 1"):
        to_raw(3.0, 1, "sd", cal)
    with pytest.raises(CalibrationError, match="nothing to calibrate"):
        calibrate()
    with pytest.raises(InputError, match="Calibration"):
        Calibration.from_dict({"resid_norm": 3})


def test_stats_calibration_uses_the_real_turns_mean_norm():
    class FakeStats:
        layers = [3, 5]
        meta = {"model_id": "m"}
        n_tokens = 10

        def mean_norm(self):  # every labelled token, placebo turns included: not the scale
            return torch.tensor([1.0, 1.0])

        def turn_mean_norm(self):
            return torch.tensor([4.0, 8.0])

    cal = calibrate(stats=FakeStats())
    assert cal.resid_norm == {3: 4.0, 5: 8.0} and cal.model_id == "m" and cal.n_tokens == 10


def test_percent_and_sd_steering_equal_the_converted_raw_alpha(tiny, axis):
    tokens = tiny.to_tokens(TEXTS[0], prepend_bos=False)
    cal = calibrate(tiny, axis, texts=TEXTS)
    with steer(tiny, axis, layers=1, alpha=8.4, unit="percent", calibration=cal) as s:
        pct = tiny(tokens)
    with steer(tiny, axis, layers=1, alpha=0.084 * cal.resid_norm[1]):
        raw = tiny(tokens)
    torch.testing.assert_close(pct, raw)
    assert math.isclose(s.raw_alphas[0], 0.084 * cal.resid_norm[1], rel_tol=1e-9)
    with steer(tiny, axis, layers=1, alpha=-2.0, unit="sd", calibration=cal):
        sd = tiny(tokens)
    with steer(tiny, axis, layers=1, alpha=-2.0 * cal.proj_std[1]):
        raw_sd = tiny(tokens)
    torch.testing.assert_close(sd, raw_sd)
    # an axis that stored its own scales needs no explicit calibration
    stored = axis.replace(resid_norm=torch.tensor([1.0, 50.0]))
    assert steer(tiny, stored, layers=1, alpha=10.0, unit="percent").raw_alphas == [5.0]
