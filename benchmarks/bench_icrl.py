"""ICRL data benchmark (issue 3): scripted generation + labelling, and on-policy play.

    OMP_NUM_THREADS=1 python benchmarks/bench_icrl.py              # defaults (a few minutes)
    python benchmarks/bench_icrl.py --n-per-criterion 1 --play-games 1   # smoke run

Reports conversations/s for scripted generation and for structural labelling on the tiny
tokenizer and the SmolLM2 tokenizer (baseline: formatting + tokenizing the same labelled turns
without any labelling, i.e. the floor any labeller pays), and tokens/s of on-policy play on
SmolLM2 (baseline: one plain ``generate`` call on the games' first prompts with the same budget).
Writes benchmarks/results/bench_icrl.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def _time(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def bench_scripted(n_per_criterion: int, tokenizers: dict) -> list[dict]:
    from value_lens.core.chat import format_chat
    from value_lens.data.icrl import generate_scripted, label

    convs, t_gen = _time(lambda: generate_scripted(n_per_criterion, seed=0))
    rows = [
        {
            "stage": "generate_scripted",
            "tokenizer": "-",
            "n": len(convs),
            "seconds": t_gen,
            "per_s": len(convs) / t_gen,
            "baseline_per_s": None,
        }
    ]
    for name, tok in tokenizers.items():
        data, t_lab = _time(lambda tok=tok: label(convs, tok, min_side_tokens=3))

        def floor(tok=tok, data=data):
            by_id = {c.conversation_id: c for c in convs}
            for m in data.meta:
                msgs = by_id[m["conversation_id"]].full_messages[: m["message_index"] + 1]
                text = format_chat(tok, msgs, enable_thinking=False).text
                tok(text, add_special_tokens=False, return_offsets_mapping=True)

        _, t_floor = _time(floor)
        rows.append(
            {
                "stage": "label",
                "tokenizer": name,
                "n": len(convs),
                "seconds": t_lab,
                "per_s": len(convs) / t_lab,
                "baseline_per_s": len(convs) / t_floor,
                "sequences": len(data),
                "tokens": data.n_tokens,
            }
        )
        rows.append(
            {
                "stage": "generate+label",
                "tokenizer": name,
                "n": len(convs),
                "seconds": t_gen + t_lab,
                "per_s": len(convs) / (t_gen + t_lab),
                "baseline_per_s": None,
            }
        )
    return rows


def bench_play(model, games: int, max_new_tokens: int) -> list[dict]:
    from value_lens.core.generate import generate
    from value_lens.data.icrl import load_corpus, play
    from value_lens.data.icrl.play import _new
    from value_lens.data.icrl.registry import CRITERIA

    crits = ["colon", "animal"]
    kw = dict(
        seed=0,
        criteria=crits,
        max_new_tokens=max_new_tokens,
        n_paragraphs=2,
        max_attempts=2,
        batch_size=4,
        temperature=0.7,
    )
    convs, t_play = _time(lambda: play(model, games, **kw))
    n_tok = sum(c.meta["generated_tokens"] for c in convs)
    corpus = load_corpus()
    first = [_new(CRITERIA[c], i, corpus, 0, 2, 2).messages for c in crits for i in range(games)]
    gens, t_gen = _time(
        lambda: generate(
            model, first, seed=0, temperature=0.7, max_new_tokens=max_new_tokens, batch_size=4
        )
    )
    base = sum(g.n_tokens for g in gens)
    return [
        {
            "stage": "play",
            "tokenizer": "smollm2",
            "n": len(convs),
            "seconds": t_play,
            "per_s": n_tok / t_play,
            "baseline_per_s": base / t_gen,
            "tokens": n_tok,
            "unit": "tokens/s",
        }
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-per-criterion", type=int, default=2)
    ap.add_argument("--play-games", type=int, default=2, help="games per criterion (2 criteria)")
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--no-play", action="store_true")
    args = ap.parse_args()

    import torch

    from value_lens.core.model import load_model
    from value_lens.testing import tiny_tokenizer

    torch.manual_seed(0)
    model = load_model()
    rows = bench_scripted(
        args.n_per_criterion, {"tiny": tiny_tokenizer(), "smollm2": model.tokenizer}
    )
    if not args.no_play:
        rows += bench_play(model, args.play_games, args.max_new_tokens)
    print(
        f"{'stage':18s} {'tokenizer':9s} {'n':>5s} {'seconds':>8s} {'per_s':>9s} {'baseline':>9s} {'ratio':>6s}"
    )
    for r in rows:
        b = r["baseline_per_s"]
        ratio = f"{r['per_s'] / b:6.2f}" if b else "     -"
        bs = f"{b:9.1f}" if b else "        -"
        print(
            f"{r['stage']:18s} {r['tokenizer']:9s} {r['n']:5d} {r['seconds']:8.2f} "
            f"{r['per_s']:9.1f} {bs} {ratio}"
        )
    out = Path(__file__).parent / "results" / "bench_icrl.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
