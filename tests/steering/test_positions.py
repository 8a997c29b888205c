"""The pure position-mask function: specs, left padding, and KV-cache step consistency."""

from __future__ import annotations

import inspect

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from jaxtyping import TypeCheckError

from value_lens.errors import InputError
from value_lens.steering.positions import parse_positions, position_mask

LENS = torch.tensor([3, 5])
PADS = torch.tensor([2, 0])  # row 0 is left-padded by 2 so both rows span 5 slots


def _m(spec, seq_len=7, offset=0, pads=PADS, lens=LENS):
    return position_mask(spec, seq_len, prompt_lens=lens, offset=offset, pads=pads).int().tolist()


def test_specs_on_padded_prefill_plus_two_generated():
    # stream of 7 slots: row 0 = [pad pad p p p g g], row 1 = [p p p p p g g]
    assert _m("all") == [[0, 0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1]]
    assert _m("prompt") == [[0, 0, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 0, 0]]
    assert _m("generated") == [[0, 0, 0, 0, 0, 1, 1], [0, 0, 0, 0, 0, 1, 1]]
    assert _m("from:1") == [[0, 0, 0, 1, 1, 1, 1], [0, 1, 1, 1, 1, 1, 1]]
    assert _m("from:-1") == [[0, 0, 0, 0, 1, 1, 1], [0, 0, 0, 0, 1, 1, 1]]
    assert _m("from:-10") == _m("all")
    # an explicit mask is indexed by real-token position and never reaches past its width
    mask = torch.tensor([True, False, True, True])
    assert _m(mask) == [[0, 0, 1, 0, 1, 1, 0], [1, 0, 1, 1, 0, 0, 0]]
    per_row = torch.tensor([[False, True], [True, False]])
    assert _m(per_row) == [[0, 0, 0, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0, 0]]


def test_cached_steps_only_see_their_own_slot():
    assert _m("generated", seq_len=1, offset=5) == [[1], [1]]
    assert _m("prompt", seq_len=1, offset=5) == [[0], [0]]
    # slot 4 is the last prompt token of both rows; slot 3 is neither
    assert _m("from:-1", seq_len=1, offset=4) == [[1], [1]]
    assert _m("from:-1", seq_len=1, offset=3) == [[0], [0]]


@settings(max_examples=60, deadline=None)
@given(
    lens=st.lists(st.integers(1, 6), min_size=1, max_size=4),
    n_gen=st.integers(0, 4),
    spec=st.sampled_from(["all", "prompt", "generated", "from:0", "from:2", "from:-1", "from:-3"]),
)
def test_stepwise_masks_concatenate_to_the_full_pass_mask(lens, n_gen, spec):
    """KV-cache decoding (prefill + one slot per step) == one full recompute pass."""
    lt = torch.tensor(lens)
    width = int(lt.max())
    pads = width - lt
    full = position_mask(spec, width + n_gen, prompt_lens=lt, pads=pads)
    steps = [position_mask(spec, width, prompt_lens=lt, pads=pads)]
    steps += [
        position_mask(spec, 1, prompt_lens=lt, offset=width + k, pads=pads) for k in range(n_gen)
    ]
    assert torch.equal(torch.cat(steps, dim=1), full)
    # padding never shifts what a row's real tokens get: compare with the unpadded row alone
    for b, n in enumerate(lens):
        alone = position_mask(spec, n + n_gen, prompt_lens=lt[b : b + 1])
        assert torch.equal(full[b, int(pads[b]) :], alone[0])
        assert not full[b, : int(pads[b])].any()


def test_bad_specs_raise_input_error():
    for bad in ["everything", "from:", "from:x", ""]:
        with pytest.raises(InputError, match="unknown positions spec"):
            parse_positions(bad)
    # not a PositionSpec at all: refused by the suite's runtime type checks, and by the function
    # itself for untyped callers
    with pytest.raises(TypeCheckError):
        parse_positions(3)
    with pytest.raises(InputError, match="unknown positions spec"):
        inspect.unwrap(parse_positions)(3)
    with pytest.raises(InputError, match="bool tensor"):
        parse_positions(torch.ones(3))
    with pytest.raises(InputError, match="rows"):
        position_mask(torch.ones(3, 2, dtype=torch.bool), 2, prompt_lens=LENS)
    # prompt_lens and pads share the batch dimension B: the suite's jaxtyping checks catch a
    # mismatch at the call, the function's own check for untyped callers
    with pytest.raises(TypeCheckError, match="pads"):
        position_mask("all", 2, prompt_lens=LENS, pads=torch.tensor([0]))
    with pytest.raises(InputError, match="rows"):
        inspect.unwrap(position_mask)("all", 2, prompt_lens=LENS, pads=torch.tensor([0]))
