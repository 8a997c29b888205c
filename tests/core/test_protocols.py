"""The model Protocols, and the suite's run-time type checks (jaxtyping + beartype, see conftest)."""

from __future__ import annotations

import inspect

import pytest
import torch
from jaxtyping import TypeCheckError

from tests.core.test_hooked_root import MiniHooked
from value_lens.core.model import n_layers
from value_lens.core.protocols import GenerativeModel, HookedModel
from value_lens.data.tokens import LabelledTokens
from value_lens.fitting.axis import ValueAxis
from value_lens.steering.positions import position_mask


def test_the_bridge_and_a_bare_hooked_root_module_are_hooked_models(tiny):
    mini = MiniHooked()
    assert isinstance(tiny, HookedModel) and isinstance(tiny, GenerativeModel)
    # collection, readout and steering need only the hook API (tests/core/test_hooked_root.py) ...
    assert isinstance(mini, HookedModel)
    # ... generation also needs to_tokens and generate, which a bare HookedRootModule lacks
    assert not isinstance(mini, GenerativeModel)
    assert not isinstance(tiny.tokenizer, HookedModel)


def test_a_model_parameter_refuses_a_tokenizer_at_run_time(tiny):
    """``model: HookedModel`` is checked in the suite: a tokenizer is refused at the call."""
    with pytest.raises(TypeCheckError, match="HookedModel"):
        n_layers(tiny.tokenizer)
    with pytest.raises(AttributeError):  # unchecked, the same mistake fails deep inside
        inspect.unwrap(n_layers)(tiny.tokenizer)


def test_jaxtyping_shapes_are_checked_at_run_time():
    # a [d] vector where ValueAxis needs [n_layers, d_model]
    with pytest.raises(TypeCheckError, match="directions"):
        ValueAxis(torch.randn(64))
    # prompt_lens and pads share the batch dimension B
    with pytest.raises(TypeCheckError, match="pads"):
        position_mask("all", 3, prompt_lens=torch.tensor([3, 2]), pads=torch.tensor([0, 0, 1]))
    # and the dtype: Int lengths, not floats
    with pytest.raises(TypeCheckError, match="prompt_lens"):
        position_mask("all", 3, prompt_lens=torch.tensor([3.0, 2.0]))


def test_sequences_of_different_lengths_are_not_one_shared_dimension():
    """``input_ids`` are ``[T_i]`` per sequence; a shared ``T`` annotation would refuse this."""
    ids = [torch.arange(5), torch.arange(3)]
    data = LabelledTokens(
        ids, [torch.zeros(5, dtype=torch.long), torch.zeros(3, dtype=torch.long)], ["a", "b"]
    )
    assert [x.numel() for x in data.input_ids] == [5, 3]
    with pytest.raises(TypeCheckError, match="labels"):  # but each one is still 1-D int
        LabelledTokens(ids, [torch.zeros(5, 1, dtype=torch.long), torch.zeros(3)], ["a", "b"])
