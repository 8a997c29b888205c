"""Batched, seeded text generation from raw text or chat messages, optionally steered.

:func:`generate` left-pads each batch itself, so it knows every row's padding and real prompt
length, and hands both to the steering spec (``steer=``) for the duration of that batch. That
is what lets position specs such as ``"generated"`` or ``"from:-1"`` be exact under a KV cache
and with left padding (see :mod:`value_lens.steering.positions` and :mod:`value_lens.steering.steer`). Decoding runs
HF ``generate`` on the modules the bridge wraps, with the installed resid hooks routed to them
(:mod:`value_lens.core.fastpath`), or the bridge's own hooked loop where that is not proven
equal (``GenerationConfig.backend``); either way every forward pass runs the installed hooks.

Settings live in one :class:`GenerationConfig`, shared with
:func:`value_lens.steering.dose.dose_response` and the evaluation suites; keyword overrides
(``generate(model, prompts, max_new_tokens=16)``) set its fields for one call.

``monitor=`` (:mod:`value_lens.analysis.monitor`) hooks go in after the steering hooks, so the
monitor reads the *steered* residual; a monitored call runs one extra step (its token dropped) to
read the last kept token, and keeps exactly the tokens of the same call without a monitor.

Reproducibility: greedy decoding (``temperature=0``) is deterministic. Sampling draws from the
global torch RNG inside ``torch.random.fork_rng``, seeded with ``seed + batch_index``, so the
same call gives the same texts and leaves the caller's RNG state untouched. Sampled outputs
depend on how prompts are grouped into batches (``batch_size``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from jaxtyping import Int

from value_lens.core.decoding import (
    Backend,
    DecodeRequest,
    LeftPadded,
    check_backend,
    choose_backend,
    decode_batch,
    row_stats,
)
from value_lens.core.model import model_device, n_ctx, to_token_ids
from value_lens.core.progress import progress as progress_bar
from value_lens.core.prompts import chat_flags, format_prompts
from value_lens.core.protocols import (
    GenerationMonitor,
    GenerativeModel,
    HookedModel,
    SteerActivation,
)
from value_lens.errors import InputError

__all__ = [
    "Generation",
    "GenerationConfig",
    "GenerationMonitor",
    "SteerActivation",
    "format_prompts",
    "generate",
]


@dataclass(frozen=True)
class GenerationConfig:
    """How to generate: one set of settings shared by :func:`generate`,
    :func:`value_lens.steering.dose.dose_response` and the evaluation suites.

    Attributes:
        max_new_tokens: new-token budget per prompt.
        temperature: 0 for greedy decoding.
        top_p: nucleus sampling mass (1.0 = off).
        batch_size: prompts per forward batch (left-padded; sampled outputs depend on it).
        seed: sampling seed (batch ``b`` uses ``seed + b``).
        enable_thinking: Qwen3's chat-template switch (message prompts only). ``False``, the
            paper's setting, by default; ``None`` leaves the template's default.
        system: a system message prepended to message prompts that lack one.
        use_cache: KV-cache decoding (False recomputes the whole sequence every step).
        backend: the decoding loop: ``"auto"`` (HF ``generate`` on the bridge's own HF modules
            whenever that is proven equal, else the bridge's loop; see
            :mod:`value_lens.core.fastpath`), ``"hf"`` (that or an error) or ``"bridge"``.
        stop_at_eos: end a row at the model's stop token(s); ``False`` forces every row to
            ``max_new_tokens`` (equal token counts, for benchmarks and length-controlled runs).

    >>> GenerationConfig(temperature=0.7).with_overrides(seed=3).seed
    3
    """

    max_new_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 1.0
    batch_size: int = 8
    seed: int = 0
    enable_thinking: bool | None = False
    system: str | None = None
    use_cache: bool = True
    backend: Backend = "auto"
    stop_at_eos: bool = True

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise InputError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {self.batch_size}")
        t = self.temperature
        if not (t >= 0 and t != float("inf")):
            raise InputError(f"temperature must be a finite number >= 0, got {t}")
        check_backend(self.backend)
        if not (0 < self.top_p <= 1):
            raise InputError(f"top_p must be in (0, 1], got {self.top_p}")

    def with_overrides(self, **overrides: Any) -> GenerationConfig:
        """A copy with ``overrides`` applied; an unknown name raises an error listing the fields."""
        names = set(self.__dataclass_fields__)
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise InputError(
                f"GenerationConfig has no setting(s) {unknown}; its settings are {sorted(names)}"
            )
        return replace(self, **overrides) if overrides else self

    def to_dict(self) -> dict[str, Any]:
        """The settings as a plain dict (for run metadata and log fingerprints)."""
        return asdict(self)


@dataclass(frozen=True)
class Generation:
    """One prompt's continuation.

    Attributes:
        prompt: the exact prompt text fed to the model (chat template applied).
        text: the new text only, special tokens stripped.
        prompt_ids: prompt token ids ``[P]`` (no padding).
        output_ids: new token ids ``[N]``, up to and excluding the stop token.
        hit_limit: True when ``max_new_tokens`` ran out before a stop token.
        enable_thinking: the chat-template switch the prompt was rendered with (``None`` for a
            raw-text prompt, which no template touched).
        trace: with ``generate(monitor=...)``, what the monitor recorded over the prompt plus
            the new tokens (a :class:`value_lens.analysis.readout.ValueTrace`); else ``None``.
        stopped: True when the monitor's stop rule ended this row early.
        backend: the decoding loop that ran (``"hf"`` or ``"bridge"``).
        token_stats: with ``generate(token_stats=True)``, ``{name: [N] float64}`` per new
            token from the same pass's raw logits (:data:`value_lens.core.decoding.TOKEN_STATS`).
    """

    prompt: str
    text: str
    prompt_ids: Int[torch.Tensor, " T"]
    output_ids: Int[torch.Tensor, " N"]
    hit_limit: bool
    enable_thinking: bool | None = None
    trace: Any = None
    stopped: bool = False
    backend: str = "bridge"
    token_stats: dict[str, torch.Tensor] | None = None

    @property
    def n_tokens(self) -> int:
        """Number of new tokens (the stop token excluded)."""
        return int(self.output_ids.numel())


def _stop_ids(model: HookedModel) -> list[int]:
    eos = getattr(model.cfg, "eos_token_id", None)
    if eos is None:
        eos = getattr(model.tokenizer, "eos_token_id", None)
    if eos is None:
        return []
    return [int(eos)] if isinstance(eos, int) else [int(e) for e in eos]


def _batches(n: int, size: int) -> Iterator[tuple[int, range]]:
    for b, start in enumerate(range(0, n, size)):
        yield b, range(start, min(n, start + size))


def generate(
    model: GenerativeModel,
    prompts: Any,
    config: GenerationConfig | None = None,
    *,
    steer: SteerActivation | Sequence[SteerActivation] | None = None,
    monitor: GenerationMonitor | None = None,
    stop_when: Any = None,
    token_stats: bool = False,
    progress: bool = False,
    **overrides: Any,
) -> list[Generation]:
    """Generate continuations for one or many prompts, optionally steered.

    Args:
        model: a TransformerBridge.
        prompts: a str, a list of str (raw text, used as-is), one message list, or a list of
            message lists (chat template + generation prompt applied).
        config: the generation settings (:class:`GenerationConfig`: length, sampling, batch
            size, seed, ``enable_thinking``, ``system``); default greedy, 64 new tokens, thinking
            off (the paper's setting), recorded on every :class:`Generation`.
        steer: a :class:`value_lens.steering.steer.Steering` (or several); its hooks are installed
            for each batch with that batch's prompt lengths and padding.
        monitor: a :func:`value_lens.analysis.monitor.monitor`: reads the value of every token
            in the same decoding pass (it reads the steered residual) and fills
            :attr:`Generation.trace`.
        stop_when: stop rule(s) (:mod:`value_lens.analysis.stop`) the monitor checks after each
            new token; a row that meets one ends with that token, the others are untouched.
        token_stats: fill :attr:`Generation.token_stats` (log-prob, entropy, self-certainty,
            DeepConf confidence of every new token) from the logits of the same pass; the
            batch's raw logits are kept until it ends (steps x batch x vocab floats).
        progress: show a tqdm bar over batches.
        overrides: :class:`GenerationConfig` fields set on top of ``config``, e.g.
            ``max_new_tokens=16``.

    Returns:
        One :class:`Generation` per prompt, in input order.

    >>> from value_lens.testing import tiny_qwen3
    >>> g = generate(tiny_qwen3(), "hello", max_new_tokens=3)[0]
    >>> g.n_tokens <= 3
    True
    """
    cfg = (config or GenerationConfig()).with_overrides(**overrides)
    steers = _check_hooks(model, steer, monitor, stop_when)
    extra = 0 if monitor is None else 1  # one more step reads the last kept token's value
    texts = format_prompts(model, prompts, enable_thinking=cfg.enable_thinking, system=cfg.system)
    is_chat = chat_flags(prompts)
    ids = _prompt_ids(model, texts, cfg.max_new_tokens + extra)
    stop = _stop_ids(model) if cfg.stop_at_eos else []
    pad_id = getattr(model.tokenizer, "pad_token_id", None)
    pad_id = int(pad_id if pad_id is not None else (stop[0] if stop else 0))
    out: list[Generation] = []
    batches = _batches(len(ids), cfg.batch_size)
    n_batches = -(-len(ids) // cfg.batch_size)
    for b, rows in progress_bar(batches, total=n_batches, desc="generate", enabled=progress):
        batch = LeftPadded.of([ids[i] for i in rows], pad_id)
        run, seqs, step_logits, backend = _decode(
            model,
            cfg,
            batch,
            steers,
            monitor,
            stop_when,
            stop,
            pad_id,
            rows=list(rows),
            seed=cfg.seed + b,
            extra=extra,
            logits=token_stats,
        )
        new = seqs[:, batch.width : batch.width + cfg.max_new_tokens].to("cpu")
        ruled: list[int | None] = [None] * len(rows) if run is None else run.stopped()
        ends = [
            min(
                [k for k, t in enumerate(new[j].tolist()) if t in stop]
                + [cfg.max_new_tokens, cfg.max_new_tokens if r is None else r]
            )
            for j, r in enumerate(ruled)
        ]
        kept = [torch.cat([ids[i], new[j, : ends[j]]]) for j, i in enumerate(rows)]
        traces: list[Any] = [None] * len(rows) if run is None else run.traces(kept)
        stats: list[Any] = [None] * len(rows)
        if step_logits is not None:
            stats = row_stats(step_logits, new, ends)
        for j, i in enumerate(rows):
            out_ids = new[j, : ends[j]].clone()
            out.append(
                Generation(
                    prompt=texts[i],
                    text=model.tokenizer.decode(out_ids.tolist(), skip_special_tokens=True),
                    prompt_ids=ids[i],
                    output_ids=out_ids,
                    hit_limit=ruled[j] is None and ends[j] == cfg.max_new_tokens,
                    enable_thinking=cfg.enable_thinking if is_chat[i] else None,
                    trace=traces[j],
                    stopped=ruled[j] is not None,
                    backend=backend,
                    token_stats=stats[j],
                )
            )
    return out


def _check_hooks(
    model: GenerativeModel, steer: Any, monitor: Any, stop_when: Any
) -> list[SteerActivation]:
    """The steerings as a list, each checked to be one and built for ``model``; the monitor and
    stop rules checked too (untyped: this is where a wrong argument gets its clear error)."""
    steers: list[SteerActivation] = (
        [] if steer is None else list(steer) if isinstance(steer, Sequence) else [steer]
    )
    for s in steers:
        if not hasattr(s, "activate"):
            raise InputError(
                f"steer= takes a value_lens.steering.steer.Steering (from value_lens.steering.steer(...)), got {type(s)}"
            )
        if getattr(s, "model", model) is not model:
            raise InputError(
                "this Steering was built for another model object; build it with "
                "value_lens.steering.steer(model, ...) for the model you generate with"
            )
    if monitor is not None and not hasattr(monitor, "activate"):
        raise InputError(f"monitor= takes a value_lens.monitor(axis, layers), got {type(monitor)}")
    if stop_when is not None and monitor is None:
        raise InputError(
            "stop_when= needs a monitor to compute the values it reads: pass "
            "monitor=value_lens.monitor(axis, layers) as well"
        )
    return steers


def _prompt_ids(model: GenerativeModel, texts: list[str], new_tokens: int) -> list[torch.Tensor]:
    """Token ids of every prompt; a prompt that leaves no room for ``new_tokens`` is refused."""
    ids = [to_token_ids(model, t) for t in texts]
    limit = n_ctx(model)
    too_long = [i for i, x in enumerate(ids) if x.numel() + new_tokens > limit]
    if too_long:
        raise InputError(
            f"prompt {too_long[0]} has {ids[too_long[0]].numel()} tokens; with "
            f"{new_tokens} new tokens (+1 when monitored) it exceeds the model context {limit}. "
            "Shorten it or lower max_new_tokens."
        )
    return ids


def _decode(
    model: GenerativeModel,
    cfg: GenerationConfig,
    batch: LeftPadded,
    steers: list[SteerActivation],
    monitor: GenerationMonitor | None,
    stop_when: Any,
    stop: list[int],
    pad_id: int,
    *,
    rows: list[int],
    seed: int,
    extra: int,
    logits: bool,
) -> tuple[Any, torch.Tensor, Any, str]:
    """One batch decoded with its steerings and monitor active: the monitor's run (or None),
    the sequences, the step logits (when asked) and the backend that ran."""
    device = model_device(model)
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.no_grad())
        stack.enter_context(
            torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])
        )
        torch.manual_seed(seed)
        for s in steers:
            stack.enter_context(s.activate(prompt_lens=batch.lens, pads=batch.pads))
        run = None
        if monitor is not None:  # after the steering: its hooks then read steered values
            run = stack.enter_context(
                monitor.activate(
                    model,
                    prompt_lens=batch.lens,
                    pads=batch.pads,
                    rows=rows,
                    max_new_tokens=cfg.max_new_tokens,
                    stop_ids=stop,
                    stop_when=stop_when,
                )
            )
        req = DecodeRequest(
            tokens=batch.tokens.to(device),
            mask=batch.mask.to(device),
            max_new_tokens=cfg.max_new_tokens + extra,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            stop_ids=stop,
            pad_id=pad_id,
            use_cache=cfg.use_cache,
            criterion=None if run is None else run.criterion,
            logits=logits,
        )
        backend = choose_backend(model, cfg.backend)  # after the hooks: they decide it
        seqs, step_logits = decode_batch(model, req, backend)
    return run, seqs, step_logits, backend
