"""The self-rating data: the model rates its own progress 0-100 at chosen points of a task, and
the states just before the rating become labelled tokens (high vs low within each task type).

1. :func:`icrl_points` (ICRL conversations, after the feedback to the last attempt at each
   paragraph, or every attempt) or :func:`rollout_points` (any message lists) give the prompts:
   the conversation so far plus one user message asking for the rating.
2. :func:`rate` generates the answers (``repeats`` per prompt, for test-retest agreement) and
   parses them with :func:`~value_lens.data.rating_parse.parse_rating`; every answer is kept
   with its status, so refusals and non-numbers are counted, never dropped.
3. :meth:`Ratings.labelled` labels the last prompt token (the state the rating token is read
   from) ``AFTER`` for high and ``BEFORE`` for low ratings within each task type, the
   thresholds recorded; fit with ``ValueAxis.fit(collect_stats(model, tokens,
   plan=needs("standardized")), "standardized")``, the Value Transplant construction.

Example:
    >>> from value_lens.testing import tiny_qwen3
    >>> from value_lens.data.icrl import generate_scripted
    >>> model = tiny_qwen3()
    >>> pts = icrl_points(generate_scripted(1, seed=0, criteria=["colon"]))
    >>> r = rate(model, pts[:2], RatingConfig(max_new_tokens=3))
    >>> s = r.summary()   # a prompt beyond the tiny model's context is skipped, and counted
    >>> s["n_answers"] + s["n_skipped"], sum(s["status"].values()) == s["n_answers"]
    (2, True)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from value_lens.core.generate import GenerationConfig, generate
from value_lens.core.prompts import format_prompts
from value_lens.core.protocols import GenerativeModel
from value_lens.data.icrl.conversation import Conversation
from value_lens.data.rating_labels import RatingSplit, distribution, label_ratings, retest
from value_lens.data.rating_parse import STATUSES, ParsedRating, parse_rating
from value_lens.data.tokens import LabelledTokens
from value_lens.errors import InputError

__all__ = [
    "QUESTION",
    "RatingConfig",
    "RatingPoint",
    "RatingRecord",
    "RatingSplit",
    "Ratings",
    "icrl_points",
    "rate",
    "rollout_points",
]

QUESTION = (
    "Pause the game for a moment. On a scale from 0 to 100, how close are you to having worked "
    "out the hidden rule? Answer with a single number only."
)
"""The default rating question, sent as a user message after the rated point."""


@dataclass(frozen=True)
class RatingPoint:
    """One rating prompt: the conversation up to the rated point plus the question."""

    messages: tuple[Mapping[str, str], ...]
    task: str
    source_id: str
    step: int
    meta: Mapping[str, Any] = field(default_factory=dict)


def _feedback_end(conv: Conversation, i: int) -> int:
    """One past the feedback message that answers assistant message ``i`` (if there is one)."""
    msgs = conv.full_messages
    nxt = i + 1
    if (
        nxt < len(msgs)
        and msgs[nxt]["role"] == "user"
        and not msgs[nxt]["content"].startswith("Paragraph")
    ):
        return nxt + 1
    return nxt


def icrl_points(
    conversations: Sequence[Conversation],
    *,
    every_attempt: bool = False,
    question: str = QUESTION,
    task: Callable[[Conversation], str] | None = None,
) -> list[RatingPoint]:
    """Rating prompts after the feedback to the last attempt at each paragraph (or every
    attempt). ``task`` maps a conversation to its task type (default: its criterion).

    ``meta`` records the progress the game itself shows at that point: ``paragraph_position``,
    ``attempt``, ``discovered`` (the criterion's discovery paragraph is at or before it),
    ``rewards_so_far`` and ``last_reward``.
    """
    out: list[RatingPoint] = []
    for conv in conversations:
        index = conv.assistant_index()
        rewards = 0
        for p in conv.paragraphs:
            for a in p.attempts:
                rewards += int(a.reward)
                last = a.attempt == len(p.attempts)
                if (not every_attempt and not last) or (
                    p.paragraph_position,
                    a.attempt,
                ) not in index:
                    continue
                end = _feedback_end(conv, index[(p.paragraph_position, a.attempt)])
                disc = conv.discovery_paragraph
                meta = {
                    "paragraph_position": p.paragraph_position,
                    "attempt": a.attempt,
                    "discovered": disc is not None and p.paragraph_position >= disc,
                    "rewards_so_far": rewards,
                    "last_reward": bool(a.reward),
                }
                msgs = (*conv.full_messages[:end], {"role": "user", "content": question})
                kind = task(conv) if task else conv.reward_fn
                out.append(RatingPoint(msgs, kind, conv.conversation_id, len(out), meta))
    return out


def rollout_points(
    rollouts: Sequence[Sequence[Mapping[str, str]]],
    tasks: Sequence[str],
    *,
    question: str = QUESTION,
    ids: Sequence[str] | None = None,
) -> list[RatingPoint]:
    """Rating prompts after each of your own rollouts (message lists), one task type each."""
    if len(tasks) != len(rollouts) or (ids is not None and len(ids) != len(rollouts)):
        raise InputError("give one task type (and one id, if any) per rollout")
    names = [str(x) for x in ids] if ids is not None else [str(i) for i in range(len(tasks))]
    ask = {"role": "user", "content": question}
    return [
        RatingPoint((*msgs, ask), str(t), names[i], i)
        for i, (msgs, t) in enumerate(zip(rollouts, tasks, strict=True))
    ]


@dataclass(frozen=True)
class RatingConfig:
    """How the ratings are generated. ``repeats > 1`` with ``temperature > 0`` samples each
    prompt several times (seed ``seed + 1000 r`` for repeat ``r``): the test-retest pairs."""

    max_new_tokens: int = 8
    repeats: int = 1
    temperature: float = 0.0
    seed: int = 0
    batch_size: int = 8
    max_prompt_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.repeats < 1:
            raise InputError(f"repeats must be >= 1, got {self.repeats}")
        if self.repeats > 1 and self.temperature == 0:
            raise InputError(
                "repeats > 1 with greedy decoding repeats the same answer; set temperature > 0"
            )


@dataclass(frozen=True)
class RatingRecord:
    """One answer: which point and repeat, the text, its parse, the exact prompt and answer
    tokens, and ``rating_at``, the index in the answer of the first token holding a digit (0
    when none does)."""

    point: int
    repeat: int
    text: str
    parsed: ParsedRating
    prompt_ids: torch.Tensor
    output_ids: torch.Tensor
    rating_at: int = 0

    def state_ids(self) -> torch.Tensor:
        """The tokens up to the state just before the rating token: the prompt plus the answer
        tokens before it (the last token's residual is the state the rating is read from)."""
        return torch.cat([self.prompt_ids, self.output_ids[: self.rating_at]])


def _rating_token(tokenizer: Any, output_ids: torch.Tensor) -> int:
    """Index of the first answer token after which the decoded answer holds a digit."""
    ids = output_ids.tolist()
    for j in range(len(ids)):
        if any(ch.isdigit() for ch in tokenizer.decode(ids[: j + 1])):
            return j
    return 0


def rate(
    model: GenerativeModel, points: Sequence[RatingPoint], config: RatingConfig | None = None
) -> Ratings:
    """Ask ``model`` for every point's rating (see the module docs); prompts longer than
    ``max_prompt_tokens`` (default: the context minus the answer budget) are skipped and
    counted in :attr:`Ratings.skipped`. Prompts run longest first (records come back in point
    order); sampled answers depend on that batching, as in :func:`~value_lens.generate`."""
    cfg = config or RatingConfig()
    from value_lens.core.model import n_ctx, to_token_ids

    limit = cfg.max_prompt_tokens or n_ctx(model) - cfg.max_new_tokens - 1
    texts = format_prompts(model, [list(p.messages) for p in points])
    size = {i: len(to_token_ids(model, t, truncate=True)) for i, t in enumerate(texts)}
    # longest first, so each batch pads little (sampled answers depend on the batching)
    keep = sorted((i for i in size if size[i] <= limit), key=lambda i: (-size[i], i))
    records = []
    gen = GenerationConfig(
        max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature, batch_size=cfg.batch_size
    )
    prompts = [list(points[i].messages) for i in keep]
    for r in range(cfg.repeats):
        outs = generate(model, prompts, gen, seed=cfg.seed + 1000 * r) if keep else []
        for i, g in zip(keep, outs, strict=True):
            at = _rating_token(model.tokenizer, g.output_ids)
            rec = RatingRecord(i, r, g.text, parse_rating(g.text), g.prompt_ids, g.output_ids, at)
            records.append(rec)
    skipped = [i for i in range(len(points)) if i not in set(keep)]
    records.sort(key=lambda rec: (rec.repeat, rec.point))
    return Ratings(list(points), records, skipped, cfg)


@dataclass
class Ratings:
    """Every answer of :func:`rate`, with summaries and the labelled states."""

    points: list[RatingPoint]
    records: list[RatingRecord]
    skipped: list[int] = field(default_factory=list)
    config: RatingConfig = field(default_factory=RatingConfig)

    def values(self) -> np.ndarray:
        """``[points, repeats]`` parsed ratings (NaN where an answer did not parse or was skipped)."""
        out = np.full((len(self.points), self.config.repeats), np.nan)
        for rec in self.records:
            if rec.parsed.value is not None:
                out[rec.point, rec.repeat] = rec.parsed.value
        return out

    def summary(self) -> dict[str, Any]:
        """Counts of every parse status, the rating distribution and test-retest agreement."""
        status = Counter(r.parsed.status for r in self.records)
        n = len(self.records)
        vals = np.array([r.parsed.value for r in self.records if r.parsed.value is not None])
        out: dict[str, Any] = {
            "n_points": len(self.points),
            "n_skipped": len(self.skipped),
            "n_answers": n,
            "status": {s: int(status.get(s, 0)) for s in STATUSES},
            "refusal_rate": status.get("refusal", 0) / n if n else float("nan"),
            "unparsed_rate": (n - len(vals)) / n if n else float("nan"),
            "forms": dict(Counter(r.parsed.form for r in self.records if r.parsed.form)),
            "distribution": distribution(vals),
        }
        out["retest"] = retest(self.values())
        return out

    def labelled(self, split: RatingSplit | None = None) -> tuple[LabelledTokens, dict[str, Any]]:
        """The states just before the rating token, labelled high (``AFTER``) or low
        (``BEFORE``) within each task type, and a report: see
        :func:`~value_lens.data.rating_labels.label_ratings`."""
        first = {rec.point: rec.state_ids() for rec in self.records if rec.repeat == 0}
        return label_ratings(self.points, first, self.values(), split or RatingSplit())
