"""Shared fixtures. Everything is offline and single-threaded (2-core CI machines)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import sys
from pathlib import Path

import pytest
import torch
from jaxtyping import install_import_hook

torch.set_num_threads(1)

# jaxtyping shapes and every other annotation in value_lens are checked at run time in the test
# suite (as TransformerLens does): beartype under jaxtyping's import hook, with int accepted
# where float is annotated (PEP 484's numeric tower, as mypy reads it). The hook must be in place
# before value_lens is imported. VALUE_LENS_TYPECHECK=0 switches it off (e.g. for timing).
TYPECHECKER = (
    "beartype.beartype(conf=beartype.BeartypeConf("
    "is_pep484_tower=True, strategy=beartype.BeartypeStrategy.On))"
)
# modules not instrumented yet, with the reason (each entry is a to-do)
UNCHECKED: dict[str, str] = {}


def _checked_modules() -> list[str]:
    root = Path(__file__).resolve().parents[1]
    names = (
        ".".join(p.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        for p in sorted((root / "value_lens").rglob("*.py"))
    )
    # the hook matches a name and everything below it, so an unchecked module's parents stay out
    return [n for n in names if not any(u == n or u.startswith(n + ".") for u in UNCHECKED)]


if os.environ.get("VALUE_LENS_TYPECHECK", "1") != "0":
    if "value_lens" in sys.modules:  # pragma: no cover - a plugin imported it first
        raise RuntimeError("value_lens was imported before tests/conftest.py could type-check it")
    install_import_hook(_checked_modules(), TYPECHECKER)


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


SLOW_FIXTURES = {"smollm", "smollm_hf"}


def pytest_collection_modifyitems(config, items):  # noqa: ARG001 (the hook signature)
    """Tiers: tests that load SmolLM2 are ``slow``; everything under tests/project/ is a ``gate``.

    ``scripts/test.sh --fast`` deselects both (the developer loop); CI runs everything.
    """
    project = Path(__file__).resolve().parent / "project"
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
        if project in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.gate)
