import pytest

from value_lens.core.conventions import (
    default_layer,
    from_hidden_states_index,
    hook_name,
    resolve_layer,
    resolve_layers,
    to_hidden_states_index,
)
from value_lens.errors import LayerError


def test_paper_layer_21_is_block_20():
    assert from_hidden_states_index(21) == 20
    assert to_hidden_states_index(20) == 21
    assert hook_name(20) == "blocks.20.hook_resid_post"


def test_embedding_row_has_no_layer():
    with pytest.raises(LayerError, match="embedding"):
        from_hidden_states_index(0)


def test_resolve_layers_sorted_unique_and_negative():
    assert resolve_layers([3, -1, 3, 0], 5) == [0, 3, 4]
    assert resolve_layers(None, 3) == [0, 1, 2]
    assert resolve_layer(-5, 5) == 0


@pytest.mark.parametrize("bad", [5, -6, 100])
def test_out_of_range_layer_names_the_valid_range(bad):
    with pytest.raises(LayerError, match=r"0\.\.4"):
        resolve_layer(bad, 5)


def test_non_integer_layer():
    with pytest.raises(LayerError, match="integer"):
        resolve_layer("x", 5)


def test_default_layer_is_the_papers_for_its_depth_else_the_middle():
    # the paper's "layer 21" = hidden_states[21] = output of block 20, on 36-block Qwen3-8B
    assert default_layer(36) == from_hidden_states_index(21) == 20
    assert [default_layer(n) for n in (1, 2, 5, 24, 30, 35, 37)] == [0, 1, 2, 12, 15, 17, 18]


def test_default_layer_among_available_layers():
    assert default_layer(36, available=range(36)) == 20
    assert default_layer(36, available=[10, 18, 25]) == 18  # nearest to 20
    assert default_layer(36, available=[19, 21]) == 19  # tie: the lower
    assert default_layer(30, available=[-1]) == 29
    with pytest.raises(LayerError, match="0..29"):
        default_layer(30, available=[40])
