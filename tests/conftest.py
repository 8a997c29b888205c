"""Shared fixtures. Everything is offline and single-threaded (2-core CI machines)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny():
    """A 2-layer tiny random Qwen3 bridge (tied embeddings). Treat as read-only."""
    from value_lens.testing import tiny_qwen3

    return tiny_qwen3()


@pytest.fixture(scope="session")
def tiny_hf():
    """(hf_model, tokenizer) identical to the ``tiny`` fixture's weights: the HF oracle."""
    from value_lens.testing import tiny_qwen3_hf

    return tiny_qwen3_hf()


@pytest.fixture(scope="session")
def smollm():
    """The embedded SmolLM2-135M-Instruct as a bridge (about 15 s to load, once per session)."""
    from value_lens import load_model

    return load_model()


@pytest.fixture(scope="session")
def smollm_hf():
    """The plain HF SmolLM2 model (a separate copy): the oracle for the bridge."""
    from value_lens.core.model import load_hf

    return load_hf(None)
