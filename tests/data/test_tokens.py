import pytest
import torch

from value_lens.data.tokens import AFTER, BEFORE, IGNORE, LabelledTokens
from value_lens.errors import InputError


def make():
    return LabelledTokens.from_lists(
        [[1, 2, 3, 4], [5, 6, 7]],
        [[IGNORE, BEFORE, AFTER, IGNORE], [BEFORE, BEFORE, AFTER]],
        ["a", "b"],
        meta=[{"turn_end": 4}, {}],
    )


def test_views():
    d = make()
    assert len(d) == 2 and d.n_tokens == 7
    assert d.label_counts() == {0: 3, 1: 2}
    assert d.turn_end(0) == 4 and d.turn_end(1) == 3
    assert d.select_groups(["b"]).groups == ["b"]
    both = LabelledTokens.concat([d, d.subset([1])])
    assert both.groups == ["a", "b", "b"] and both.group_names == ["a", "b"]
    assert d.fingerprint() == make().fingerprint() != d.subset([0]).fingerprint()
    assert "2 sequences, 7 tokens" in d.describe()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(input_ids=[[1, 2]], labels=[[0]], groups=["g"]), "one label per token"),
        (dict(input_ids=[[1, 2]], labels=[[0, 1]], groups=[]), "one entry per sequence"),
        (dict(input_ids=[[]], labels=[[]], groups=["g"]), "no tokens"),
        (dict(input_ids=[[1]], labels=[[-3]], groups=["g"]), "labels are -1"),
    ],
)
def test_invalid(kwargs, match):
    with pytest.raises(InputError, match=match):
        LabelledTokens.from_lists(**kwargs)


def test_targets_and_unknown_group():
    d = LabelledTokens(
        [torch.tensor([1, 2])],
        [torch.tensor([0, 1])],
        ["g"],
        targets=[torch.tensor([0.1, float("nan")])],
    )
    assert d.targets[0].dtype == torch.float32
    with pytest.raises(InputError, match="unknown group"):
        d.select_groups(["zzz"])
    with pytest.raises(InputError, match="one value per token"):
        LabelledTokens(
            [torch.tensor([1, 2])], [torch.tensor([0, 1])], ["g"], targets=[torch.tensor([0.1])]
        )


def test_shortest_per_group_keeps_the_shortest_in_order():
    data = LabelledTokens.from_lists(
        [[1] * 5, [1] * 3, [1] * 4, [1] * 9, [1] * 2],
        [[0] * 5, [0] * 3, [0] * 4, [0] * 9, [0] * 2],
        ["a", "a", "b", "b", "a"],
    )
    kept = data.shortest_per_group(1)
    assert [x.numel() for x in kept.input_ids] == [4, 2] and kept.groups == ["b", "a"]
    assert len(data.shortest_per_group(None)) == 5
    assert [x.numel() for x in data.shortest_per_group(2).input_ids] == [3, 4, 9, 2]
    with pytest.raises(InputError, match="positive"):
        data.shortest_per_group(0)
