"""tensor_digest: the bytes of the values, whatever the memory layout (strided views included)."""

from __future__ import annotations

import hashlib

import torch

from value_lens.core.io import tensor_digest


def _oracle(name: str, t: torch.Tensor) -> str:
    h = hashlib.sha256()
    h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
    h.update(t.numpy().tobytes(order="C"))
    return h.hexdigest()


def test_strided_views_digest_like_their_values():
    base = torch.arange(8.0)
    for view in (base[::2][:1], base[::2], base.reshape(2, 4).T, base[1:2]):
        assert tensor_digest({"a": view}) == _oracle("a", view.clone())
        assert tensor_digest({"a": view}) == tensor_digest({"a": view.contiguous().clone()})


def test_order_independent_and_value_sensitive():
    a, b = torch.ones(3), torch.zeros(2, dtype=torch.float64)
    assert tensor_digest({"a": a, "b": b}) == tensor_digest({"b": b, "a": a})
    assert tensor_digest({"a": a}) != tensor_digest({"a": a * 2})
    assert tensor_digest({"a": torch.ones(0)}) != tensor_digest({"a": torch.ones(0, 1)})
