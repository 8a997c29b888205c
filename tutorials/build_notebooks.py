"""Write the tutorial notebooks (outputs empty) from the cell lists below.

Run ``python tutorials/build_notebooks.py`` after editing a tutorial here; the ``.ipynb`` files
are generated, valid nbformat v4, and committed without outputs. ``tests/project/test_tutorials.py``
executes every notebook offline.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

PARAMS_DOC = (
    "**Parameters.** The defaults run on a laptop CPU with the embedded SmolLM2-135M-Instruct "
    "(no network) in a couple of minutes. With a CUDA GPU the same cell switches to Qwen3-8B "
    "(the paper's model, from your local Hugging Face cache) at paper-scale sizes; edit it to "
    "choose yourself."
)

# Shared data-building cell: the ICRL game on a corpus shortened for CPU, shortest turns kept.
ICRL_DATA = """\
import re

from value_lens.data import icrl

corpus = icrl.load_corpus()  # packaged encyclopedic paragraphs
if SENTENCES is not None:  # shorter paragraphs -> shorter conversations (CPU only)
    corpus = [" ".join(re.split(r"(?<=[.!?]) ", p.text)[:SENTENCES]) for p in corpus]
convs = icrl.generate_scripted(N_PER_CRITERION, seed=0, criteria=CRITERIA, corpus=corpus)
data = icrl.label(convs, model)
if MAX_TOKENS is not None:  # keep the shortest labelled turns (CPU only)
    data = data.subset([i for i, ids in enumerate(data.input_ids) if ids.numel() <= MAX_TOKENS])
print(len(convs), "conversations ->", data.describe())"""


def params(cpu: str, gpu: str) -> str:
    return f"""\
import torch

GPU = torch.cuda.is_available()
if GPU:  # the paper's model and sizes
    MODEL, DEVICE, DTYPE = "Qwen/Qwen3-8B", "cuda", "bfloat16"
    LAYER = 20  # the paper's "layer 21" = output of block 20 = hidden_states[21]
{gpu}
else:  # embedded SmolLM2-135M-Instruct (30 blocks), CPU, minutes
    MODEL, DEVICE, DTYPE = None, "cpu", None
    LAYER = 20
{cpu}"""


def load() -> str:
    return """\
import value_lens as vl
from value_lens.viz.notebook import offline_figures

offline_figures()  # plotly figures also as offline HTML: exported notebooks and the docs show them
model = vl.load_model(MODEL, device=DEVICE, dtype=DTYPE)
print(vl.core.model.model_id(model), vl.core.model.n_layers(model), "layers, d_model", vl.core.model.d_model(model))"""


def nb01() -> list:
    return [
        new_markdown_cell(
            "# 01 Quickstart: find the value axis and look at it\n\n"
            "This notebook loads a model, plays the paper's in-context RL game offline, labels "
            "the tokens before and after the moment the model's output first satisfies the "
            "hidden criterion, collects the residual stream, fits the value axis at every layer "
            "(the paper's Eq. 1) and reads it back token by token (Eq. 2).\n\n" + PARAMS_DOC
        ),
        new_code_cell(
            params(
                cpu="    CRITERIA = None  # all 50 criteria\n"
                "    N_PER_CRITERION, SENTENCES, MAX_TOKENS = 2, 2, 600\n"
                "    LAYERS = list(range(0, 30, 2))  # every other layer (includes LAYER), for speed",
                gpu="    CRITERIA = None\n"
                "    N_PER_CRITERION, SENTENCES, MAX_TOKENS = 6, None, None\n"
                "    LAYERS = None  # every layer",
            )
        ),
        new_code_cell(load()),
        new_markdown_cell(
            "## The game\n\n"
            "Each conversation has a hidden criterion (e.g. *include a dash*). The assistant "
            "rewrites paragraphs, the user answers `+1` or `-1`, and after some failures the "
            "assistant discovers the rule. `generate_scripted` writes such conversations "
            "deterministically from a seed, following the paper's schedule."
        ),
        new_code_cell(ICRL_DATA),
        new_code_cell(
            """\
conv = convs[0]
print("criterion:", conv.reward_fn, "| paragraphs:", conv.num_paragraphs,
      "| discovered at paragraph", conv.discovery_paragraph, "| attempts:", conv.trajectory)
for m in conv.full_messages[1:5]:
    print(f"--- {m['role']}\\n{m['content'][:300]}")"""
        ),
        new_markdown_cell(
            "`label` marks the first post-discovery paragraph of each conversation, inside the "
            "assistant's own turn: `BEFORE` (0) tokens before the first criterion-satisfying "
            "token, `REWARD` (2) on it, `AFTER` (1) after it, `IGNORE` (-1) elsewhere. One "
            "*group* per criterion."
        ),
        new_code_cell(
            """\
i = 0
lab, ids = data.labels[i], data.input_ids[i]
turn = slice(data.meta[i]["turn_start"], data.meta[i]["turn_end"])
names = {vl.data.BEFORE: "B", vl.data.AFTER: "A", vl.data.REWARD: "R", vl.data.IGNORE: "."}
print(data.groups[i])
print("".join(names[int(x)] for x in lab[turn]))
print(model.tokenizer.decode(ids[turn]))"""
        ),
        new_markdown_cell(
            "## Collect and fit\n\n"
            "`collect_stats` streams the labelled tokens through the model once and keeps only "
            "per-group, per-label sums at each layer; `ValueAxis.fit` turns them into one "
            "direction per layer (mean AFTER minus mean BEFORE, averaged over criteria)."
        ),
        new_code_cell(
            """\
stats = vl.collect_stats(model, data, layers=LAYERS, progress=False)
axis = vl.ValueAxis.fit(stats)
print(axis)
axis.save("value_axis.safetensors")
assert vl.ValueAxis.load("value_axis.safetensors").layers == axis.layers"""
        ),
        new_markdown_cell(
            "## Read it out\n\n"
            "`trace` runs one forward pass and returns the cosine (Eq. 2) and projection of every "
            "token on the axis. Here we read the labelled turn of one conversation. Blue is "
            "above zero, red below; hover a token for its value."
        ),
        new_code_cell(
            """\
tr = vl.trace(model, data.input_ids[i], axis, layers=axis.layers)
print(tr.cosine.shape, "(layers x tokens)")
before = tr.mean(LAYER, data.labels[i] == vl.data.BEFORE)
after = tr.mean(LAYER, data.labels[i] == vl.data.AFTER)
print(f"layer {LAYER}: mean cosine BEFORE {before:+.4f}, AFTER {after:+.4f}")
vl.token_heatmap(tr, LAYER, start=turn.start, stop=turn.stop)"""
        ),
        new_markdown_cell(
            "The same turn at every fitted layer (a plotly figure; plotly.js is embedded, no CDN):"
        ),
        new_code_cell(
            """\
vl.viz.layer_token_heatmap(tr, start=turn.start, stop=turn.stop)"""
        ),
        new_markdown_cell(
            "Any text works, including chat messages (formatted with the model's chat template):"
        ),
        new_code_cell(
            """\
msgs = [{"role": "user", "content": "What is 12 * 11?"},
        {"role": "assistant", "content": "12 * 11 = 132. Let me double-check: 12 * 10 + 12 = 132."}]
tr2 = vl.trace(model, msgs, axis, layers=[LAYER])
vl.token_heatmap(tr2)"""
        ),
        new_markdown_cell(
            "## Save a report\n\n"
            "`write_report` writes one self-contained HTML file (works offline) with any mix of "
            "figures, tables and heatmaps."
        ),
        new_code_cell(
            """\
path = vl.write_report("quickstart_report.html", {
    "Token heatmap": vl.token_heatmap(tr, LAYER, start=turn.start, stop=turn.stop),
    "Layers x tokens": vl.viz.layer_token_heatmap(tr, start=turn.start, stop=turn.stop),
}, metadata={"model": vl.core.model.model_id(model), "layer": LAYER})
print(path, path.stat().st_size // 1024, "KiB")"""
        ),
    ]


# nb02's data: the same game, labelled with placebo turns for the sweep's controls.
ICRL_DATA_PLACEBO = ICRL_DATA.replace(
    "data = icrl.label(convs, model)",
    "data = icrl.label(convs, model, placebo=True)  # + placebo turns (labels 3 and 4)",
)


def nb02() -> list:
    return [
        new_markdown_cell(
            "# 02 Layer sweeps, controls and the end-of-turn confound\n\n"
            "Which layer carries the value signal, and is it really *value*? `layer_sweep` fits "
            "the direction on some criteria and scores it on held-out criteria at every layer, "
            "next to controls that a direction with no value information, one that only tracks "
            "where a token sits in its turn, would also pass.\n\n" + PARAMS_DOC
        ),
        new_code_cell(
            params(
                cpu="    CRITERIA = None\n"
                "    N_PER_CRITERION, SENTENCES, MAX_TOKENS = 3, 2, 600\n"
                "    LAYERS = list(range(0, 30, 3))\n"
                "    N_SPLITS, N_TRAIN = 5, 5  # held-out criteria = the rest\n"
                "    METHOD_LAYERS, METHOD_PROMPTS, METHOD_TOKENS = [12, 15, 18], 1, 16",
                gpu="    CRITERIA = None\n"
                "    N_PER_CRITERION, SENTENCES, MAX_TOKENS = 6, None, None\n"
                "    LAYERS = None\n"
                "    N_SPLITS, N_TRAIN = 10, 35  # the paper's released splits\n"
                "    METHOD_LAYERS, METHOD_PROMPTS, METHOD_TOKENS = LAYERS, 4, 128",
            )
        ),
        new_code_cell(load()),
        new_markdown_cell(
            "## Data with placebo turns\n\n"
            "`icrl.label(..., placebo=True)` also labels the *failed* attempts before each "
            "labelled turn, cut at a pseudo-reward span placed so that the tokens before and "
            "after it match the real turn of the same sequence in number "
            "(`PLACEBO_BEFORE = 3`, `PLACEBO_AFTER = 4`; a failed attempt too long or too short "
            "to match is dropped and counted). Nothing was rewarded there, but the cut splits "
            "the turn just as the real reward does. They sit in the same sequences, so they "
            "cost no extra forward pass."
        ),
        new_code_cell(ICRL_DATA_PLACEBO),
        new_markdown_cell(
            "## The held-out sweep\n\n"
            "One collection pass gives every criterion's difference vector; one more pass "
            "stores each labelled token's projections, and every split is refitted exactly from "
            "those (no forward pass per split). Splits are by *criterion*, never by token."
        ),
        new_code_cell(
            """\
from value_lens.analysis.sweep import SweepConfig

stats = vl.collect_stats(model, data, layers=LAYERS, progress=False)
n_groups = len(data.group_names)
cfg = SweepConfig(n_splits=N_SPLITS, n_train=min(N_TRAIN, n_groups - 1))
sw = vl.layer_sweep(model, data, cfg, stats=stats, layers=LAYERS, progress=False)
df = sw.table  # one row per layer; sw also carries the CI settings, splits, timings
cols = ["layer", "token_auroc_mean", "token_auroc_ci_lo", "token_auroc_ci_hi",
        "token_auroc_between", "token_auroc_within", "rd_jump", "rd_placebo_jump",
        "rd_value", "rd_value_ci_lo", "rd_value_ci_hi", "matched_auroc", "matched_n_pairs",
        "placebo_auroc", "end_proximity_auroc", "random_auroc_mean", "function_score_mean"]
print("intervals:", sw.ci)
print("placebo turns:", sw.placebo)
df[cols].round(3)"""
        ),
        new_markdown_cell(
            "* `token_auroc_mean`: held-out BEFORE vs AFTER tokens scored by their cosine with "
            "the direction fitted on the training criteria (0.5 = chance), averaged over splits.\n"
            "* `*_ci_lo/hi`: 95% intervals that leave each *criterion* out in turn, refitting "
            "every split's direction without it (`sw.ci`): the claim is about held-out "
            "criteria, so the variance over which criteria trained the fit counts. Any sd "
            "over splits is *not* a standard error: the splits share most training criteria.\n"
            "* `token_auroc_between` / `token_auroc_within`: the held-out AUROC over pairs "
            "from two different turns, and over pairs from one turn (which any position "
            "score ranks almost perfectly).\n"
            "* `rd_jump`: the jump of the axis's score at the reward token, net of each turn's "
            "own level and trend and of smooth position, in within-turn sd; `rd_placebo_jump` "
            "the same at the placebo turns' cuts; `rd_value` their difference, with its "
            "interval: value beyond position.\n"
            "* `function_score_*`: the metric of the paper's released code: per held-out "
            "criterion, does its AFTER-mean vector project onto the direction above its "
            "BEFORE-mean vector (0 or 1)? The fraction of wins; not an AUROC.\n"
            "* `end_proximity_auroc`, `turn_position_auroc`, `relative_position_auroc`: "
            "position alone as the score (minus the tokens left in the turn; the index from the "
            "turn start; that index over the turn length). What a pure position detector gets.\n"
            "* `matched_auroc`: the axis, but only over AFTER/BEFORE pairs at the same "
            "distance from the turn's start *and* to its end. Position cannot separate those "
            "pairs: 0.5 by construction. Few turns share a length, so on small data it is "
            "NaN (`matched_n_pairs` says how many pairs there were).\n"
            "* `placebo_auroc`: the axis on the placebo turns. Position separates them as well "
            "as it separates real turns; value does not (about 0.5).\n"
            "* `did_*`: the difference-in-differences axis, fitted on each criterion's "
            "(AFTER - BEFORE) minus its placebo (AFTER - BEFORE), which cancels what real and "
            "placebo turns share; `did_matched_auroc` and `did_placebo_auroc` are its controls.\n"
            "* `random_auroc_mean/p95`: random directions, each oriented by the sign of its "
            "training-criteria difference (an unoriented one scores 0.5 by symmetry and could "
            "not fail); mean and 95th percentile. `shuffled_auroc_mean`: labels permuted within "
            "sequences and refitted: a noise floor, not a position control."
        ),
        new_code_cell("vl.viz.sweep_figure(sw)"),
        new_markdown_cell(
            "The figure draws every column with its CI band; the secondary controls start "
            "hidden (click their legend entries)."
        ),
        new_markdown_cell(
            "## Is it value or position? The verdict\n\n"
            "`value_beyond_position` reads `rd_value` and its interval at the best held-out "
            "layer: `value` when the interval lies above 0, `position` when it lies below the "
            "smallest effect of interest (0.1 within-turn sd; an equivalence test), and "
            "`inconclusive` otherwise. The jumps first, then the AUROCs as descriptions:"
        ),
        new_code_cell(
            """\
from value_lens.analysis.confounds import value_beyond_position

verdict = value_beyond_position(sw)
print(verdict.verdict, "|", verdict.sentence)
vl.viz.discontinuity_table(df).round(3)"""
        ),
        new_code_cell("vl.viz.discontinuity_figure(df)"),
        new_code_cell("vl.viz.control_panel_figure(df)"),
        new_markdown_cell(
            "How to read it, always with the intervals:\n\n"
            "1. **`rd_value` is the answer.** The jump at the reward token minus the jump at a "
            "placebo cut of the same geometry. An interval above 0 is value beyond position; "
            "an interval inside the shaded band rules out any jump worth finding; an "
            "interval across both is 'cannot be told apart from position' (absence of "
            "evidence, not evidence of absence).\n"
            "2. **The position baselines' own `rd_value`** (relative position in the figure) "
            "show the design's null: a pure position score has no jump.\n"
            "3. **End proximity is the bar the AUROC must clear.** If `end_proximity_auroc` is "
            "as high as the axis, the held-out AUROC alone says nothing about value; the "
            "between-turn AUROC removes the within-turn pairs that position ranks perfectly.\n"
            "4. **Placebo turns** are comparable when the position baselines separate them as "
            "they separate real turns (`placebo_end_proximity_auroc`).\n"
            "5. **Random directions** give chance on *these* tokens; the axis's `rd_value` "
            "should clear their 95th percentile.\n\n"
            "The sentence above is computed from these numbers, never a fixed text. On a small "
            "CPU model and a few conversations the intervals are wide; on the GPU setting "
            "(paper sizes) they narrow."
        ),
        new_markdown_cell(
            "## How the direction changes with depth\n\n"
            "Cosine between the directions (fitted on all criteria) of every pair of layers:"
        ),
        new_code_cell(
            """\
cm = sw.cosine_matrix()
vl.viz.layer_cosine_figure(cm)"""
        ),
        new_markdown_cell(
            "## The confound inside one class\n\n"
            "A direct check: within BEFORE tokens only (all the same class), does the readout "
            "still rise towards the end of the turn? A positive Spearman correlation with "
            "position means part of what the axis reads is *where in the turn* a token sits."
        ),
        new_code_cell(
            """\
import pandas as pd

from value_lens.analysis.metrics import spearman

axis = vl.ValueAxis.fit(stats)
layer = vl.viz.controls.best_layer(df)
rows = []
for i in range(min(4, len(data))):
    tr = vl.trace(model, data.input_ids[i], axis, layers=[layer])
    b = (data.labels[i] == vl.data.BEFORE).nonzero().flatten()
    cos = tr.cosine[0, b]
    rows.append({"group": data.groups[i], "n_before": len(b),
                 "spearman(cos, position)": spearman(cos.numpy(), b.numpy())})
print("best layer", layer)
pd.DataFrame(rows).round(3)"""
        ),
        new_markdown_cell(
            "## Which direction detects and which steers\n\n"
            "The mean difference is one choice. `method_table` sweeps every registered fitting "
            "method (shrinkage LDA, standardised with sink dimensions zeroed, mean-centred, "
            "position-erased by LEACE, ridge, logistic, PCA, DiD, and any you register) on the "
            "same data from one statistics pass and one projection pass, fits each on every "
            "criterion, and steers each at its best held-out layer by the same percentage of "
            "the layer's mean residual norm (`steer_norm`), so a method that reads well but "
            "steers badly shows it. Every number has its leave-one-criterion-out or "
            "over-prompts interval."
        ),
        new_code_cell(
            """\
from value_lens.compare.methods import MethodTableConfig, method_table
from value_lens.core.generate import GenerationConfig
from value_lens.viz.methods import method_table_view

steer_prompts = [[{"role": "user", "content": "Is 91 a prime number?"}],
                 [{"role": "user", "content": "Name a city in France."}]][:METHOD_PROMPTS]
mcfg = MethodTableConfig(sweep=cfg, gen=GenerationConfig(max_new_tokens=METHOD_TOKENS,
                                                         temperature=0.7, top_p=0.9))
mt = method_table(model, data, steer_prompts, mcfg, layers=METHOD_LAYERS, progress=False)
method_table_view(mt.table)"""
        ),
        new_markdown_cell(
            "Read it row by row: a method whose held-out AUROC is high but whose `rd_value` "
            "interval sits at 0 detects position, not value; a method with a low cosine to the "
            "mean difference found another direction; the slopes say whether pushing along it "
            "changes behaviour (on a small CPU model with one short prompt the slopes are mostly "
            "noise or NaN: the GPU setting uses 4 prompts and 128 tokens). The same table comes "
            "from `value-lens sweep --method all`."
        ),
        new_markdown_cell(
            "Data without the within-turn position confound is the other test: the "
            "correct-vs-corrupted code suite (tutorial 04, and the demo's `code` step) compares "
            "two versions of the same code at the same positions. Fit the DiD axis yourself with "
            '`vl.ValueAxis.fit(stats, method="did")`, label your own contrasts (tutorial 05), '
            "and keep the controls in every table you report."
        ),
    ]


def nb03() -> list:
    return [
        new_markdown_cell(
            "# 03 Steering along the value axis\n\n"
            "Hook functions, the leak-proof context manager, which positions are steered under a "
            "KV cache, strength units, and a small dose-response run.\n\n" + PARAMS_DOC
        ),
        new_code_cell(
            params(
                cpu="    CRITERIA = None\n"
                "    N_PER_CRITERION, SENTENCES, MAX_TOKENS = 2, 2, 600\n"
                "    ALPHAS = (-16.8, 0.0, 16.8)  # percent of the residual norm\n"
                "    N_PROMPTS, MAX_NEW = 2, 24",
                gpu="    CRITERIA = None\n"
                "    N_PER_CRITERION, SENTENCES, MAX_TOKENS = 6, None, None\n"
                "    ALPHAS = (-16.8, -8.4, 0.0, 8.4, 16.8)  # the paper's alpha = -50..50 at L21\n"
                "    N_PROMPTS, MAX_NEW = 50, 256",
            )
        ),
        new_code_cell(load()),
        new_code_cell(
            ICRL_DATA
            + """
stats = vl.collect_stats(model, data, layers=[LAYER], progress=False)  # stops after LAYER
axis = vl.ValueAxis.fit(stats)
print(axis)"""
        ),
        new_markdown_cell(
            "## Hook functions\n\n"
            "`steering_hook` returns a `(hook_name, fn)` pair for TransformerLens. In `add` mode "
            "it adds `alpha * v_hat` to the block's output at the selected positions (the "
            "paper's intervention: every position, every forward pass)."
        ),
        new_code_cell(
            """\
tokens = vl.core.model.to_token_ids(model, "The weather today is")[None]
name, fn = vl.steering.steering_hook(axis, LAYER, alpha=10.0)
print(name)
with model.hooks(fwd_hooks=[(name, fn)]):
    steered = model(tokens)
plain = model(tokens)
print("max logit change:", float((steered - plain).abs().max()))"""
        ),
        new_markdown_cell(
            "## The context manager\n\n"
            "`steer(...)` validates everything up front and, used in `with`, removes exactly its "
            "own hooks on exit, also after an exception. Contexts nest."
        ),
        new_code_cell(
            """\
prompt = [{"role": "user", "content": "Is 91 a prime number? Answer in one sentence."}]
with vl.steer(model, axis, layers=LAYER, alpha=16.8, unit="percent") as s:
    up = vl.generate(model, [prompt], max_new_tokens=MAX_NEW)[0].text
print(s)
base = vl.generate(model, [prompt], max_new_tokens=MAX_NEW)[0].text
print("steered :", up)
print("baseline:", base)"""
        ),
        new_markdown_cell(
            "## Positions under a KV cache\n\n"
            "With a KV cache the first forward pass sees the whole (left-padded) prompt and each "
            "later pass one new token. Pass the steering object to `generate(steer=...)` and it "
            'is installed per batch with the true prompt lengths and padding, so `"prompt"`, '
            '`"generated"` and `"from:k"` mean the same thing for every row of a batch. '
            "`position_mask` is the pure function behind it:"
        ),
        new_code_cell(
            """\
from value_lens.steering.positions import position_mask

lens, pads = torch.tensor([3, 2]), torch.tensor([0, 1])  # row 1 is left-padded by one slot
print("prefill   :", position_mask("generated", 3, prompt_lens=lens, pads=pads).int().tolist())
print("cached t=3:", position_mask("generated", 1, prompt_lens=lens, pads=pads, offset=3).int().tolist())
print("from:-1   :", position_mask("from:-1", 3, prompt_lens=lens, pads=pads).int().tolist())"""
        ),
        new_code_cell(
            """\
only_new = vl.steer(model, axis, layers=LAYER, alpha=16.8, unit="percent", positions="generated")
prompts = [prompt, [{"role": "user", "content": "Name a colour."}]]  # different lengths
for g in vl.generate(model, prompts, steer=only_new, max_new_tokens=MAX_NEW):
    print(repr(g.text[:120]), "| hit limit:", g.hit_limit)"""
        ),
        new_markdown_cell(
            "## Strength units\n\n"
            "Raw residual units do not transfer between models or layers. value_lens takes "
            '`unit="percent"` (of the layer\'s mean residual norm, which the axis stored when '
            'it was fitted) or `unit="sd"` (of the projection, needs a calibration). The '
            "paper's alpha = 25 at Qwen3-8B layer 21 is 8.4% of the norm."
        ),
        new_code_cell(
            """\
from value_lens.steering.steer import raw_alpha

print(f"mean residual norm at layer {LAYER}: {float(axis.resid_norm[LAYER]):.2f}")
print("8.4% ->", round(raw_alpha(axis, LAYER, 8.4, unit="percent"), 3), "raw units")
cal = vl.steering.calibrate(model, axis, texts=["The cat sat on the mat.", "Two plus two is four."])
print("sd unit at this layer:", round(cal.scale(LAYER, "sd"), 4), "raw units")"""
        ),
        new_markdown_cell(
            "## A small dose-response run\n\n"
            "`dose_response` generates under every (layer, strength, seed) cell, scores each "
            "output (length, backtracking phrases, yes/no, code metrics, degeneracy) and fits "
            "the per-layer OLS slope of each metric against strength (the paper's Fig. 11). With "
            "`log=path` every finished cell is appended to a JSONL file and a rerun resumes."
        ),
        new_code_cell(
            """\
from value_lens.steering.dose import DOSE_GENERATION, DoseGrid

questions = ["What is 17 * 23?", "Is 221 prime?", "What is 2 to the power 10?", "What is 45 + 67?"]
prompts = [[{"role": "user", "content": q}] for q in (questions * 25)[:N_PROMPTS]]
grid = DoseGrid(layers=[LAYER], alphas=ALPHAS)
gen = DOSE_GENERATION.with_overrides(max_new_tokens=MAX_NEW)  # paper: T=0.7, top_p=0.9
res = vl.dose_response(model, axis, prompts, grid=grid, gen=gen, log="dose.jsonl",
                       progress=False)
res.summary(["n_tokens", "backtrack"])"""
        ),
        new_code_cell(
            """\
vl.viz.dose_response_figure(res.frame, ["n_tokens", "backtrack"])"""
        ),
        new_code_cell("res.slopes"),
    ]


def nb04() -> list:
    return [
        new_markdown_cell(
            "# 04 Evaluations: confidence, backtracking and code\n\n"
            "The paper's three correlational tests as suites that run on any model and axis. "
            "Each returns an `EvalResult` with a per-item `table`, a `summary` and `extras`.\n\n"
            + PARAMS_DOC
        ),
        new_code_cell(
            params(
                cpu="    CRITERIA = None\n"
                "    N_PER_CRITERION, SENTENCES, MAX_TOKENS = 2, 2, 600\n"
                "    N_PROBLEMS, MAX_NEW, N_SAMPLES = 4, 48, 4\n"
                "    N_CODE, BAND = 3, 16",
                gpu="    CRITERIA = None\n"
                "    N_PER_CRITERION, SENTENCES, MAX_TOKENS = 6, None, None\n"
                "    N_PROBLEMS, MAX_NEW, N_SAMPLES = 100, 1024, 20\n"
                "    N_CODE, BAND = 50, 500",
            )
        ),
        new_code_cell(load()),
        new_code_cell(
            ICRL_DATA
            + """
axis = vl.ValueAxis.fit(vl.collect_stats(model, data, layers=[LAYER], progress=False))"""
        ),
        new_markdown_cell(
            "## Verbalized confidence\n\n"
            "The model answers generated arithmetic problems; then we ask *Do you think your "
            "answer is correct?* and prefill `Yes` or `No` (and the inverted question). The "
            "paper found Yes-prefills project higher under the *correct?* framing and the effect "
            "flips under *incorrect?*. The pre-response part samples the model's own yes-rate. "
            "The 135M CPU model gets most problems wrong and the sizes are tiny, so read the "
            "numbers below as a smoke test of the pipeline; the GPU setting is the experiment."
        ),
        new_code_cell(
            """\
from value_lens.evals.confidence import CONFIDENCE_GENERATION

gen = CONFIDENCE_GENERATION.with_overrides(max_new_tokens=MAX_NEW)
conf = vl.evals.run_confidence_suite(model, axis, LAYER, n_problems=N_PROBLEMS, gen=gen,
                                     n_samples=N_SAMPLES, progress=False)
print(conf.extras["answers"][["question", "parsed", "answer", "correct"]].head())
conf.summary"""
        ),
        new_code_cell("vl.viz.confidence_prefill_figure(conf.table)"),
        new_markdown_cell(
            "## Backtracking\n\n"
            "Rollouts (or your own texts) are traced token by token; phrases like *Wait*, "
            '*Actually*, *Hmm* mark backtracking events. `extras["bands"]` averages the value '
            "per token band (the paper's Fig. 3b uses 500-token bands) and "
            '`extras["event_locked"]` aligns traces on each event (Fig. 3c). Here we pass '
            "short replies so the CPU run is fast; pass `problems=[...]` to roll out instead."
        ),
        new_code_cell(
            """\
texts = [
    "17 * 23 = 391. Wait, let me check: 17 * 20 = 340 and 17 * 3 = 51, so 391. Yes.",
    "We need 45 + 67. That is 112.",
    "2 to the 10 is 1024. Hmm, actually let me recompute: 2^5 = 32, 32^2 = 1024.",
    "221 = 13 * 17, so it is not prime.",
]
bt = vl.evals.run_backtracking_suite(model, axis, LAYER, texts=texts, band=BAND, window=8,
                                     progress=False)
print(bt.table[["n_tokens", "n_events", "backtracking", "mean_value"]])
vl.viz.backtracking_band_figure(bt.extras["bands"])"""
        ),
        new_code_cell('vl.viz.event_locked_figure(bt.extras["event_locked"])'),
        new_markdown_cell(
            "## Correct vs corrupted code\n\n"
            "Real functions from the Python standard library are prefilled as the assistant's "
            "answer, next to a corrupted copy (syntax error, shuffled lines, renamed variables, "
            "or a logic bug). The summary gives Cohen's d and how often the correct version "
            "scores higher, for the whole code and for a window after the first change."
        ),
        new_code_cell(
            """\
code = vl.evals.run_code_suite(model, axis, LAYER, n_problems=N_CODE,
                               kinds=("syntax", "shuffle"), progress=False)
code.summary"""
        ),
        new_code_cell("vl.viz.code_scatter_figure(code.table)"),
    ]


def nb05() -> list:
    return [
        new_markdown_cell(
            "# 05 Your own data\n\n"
            "Everything downstream of `LabelledTokens` works on any contrast you can label. This "
            "notebook labels your own conversations three ways and imports the paper's released "
            "data format.\n\n" + PARAMS_DOC
        ),
        new_code_cell(
            params(
                cpu="    # nothing to size here: the examples below are a few short texts",
                gpu="    # nothing to size here: the examples below are a few short texts",
            )
        ),
        new_code_cell(load()),
        new_markdown_cell(
            "## 1. Token labels by hand\n\n"
            "`LabelledTokens` holds token ids, one label per token (`BEFORE`=0, `AFTER`=1, "
            "`REWARD`=2, `IGNORE`=-1) and one *group* per sequence; fitting averages the "
            "AFTER-minus-BEFORE difference over groups. Here: a character span in a chat marks "
            "where the contrast flips, and every assistant token before it is BEFORE, after it "
            "AFTER."
        ),
        new_code_cell(
            """\
def label_chat(messages, flip_text, group):
    \"\"\"Label the last assistant turn: BEFORE up to `flip_text`, AFTER from its end on.\"\"\"
    chat = vl.core.format_chat(model.tokenizer, messages)
    span = chat.spans[-1]                        # character span of the last message
    flip = chat.text.index(flip_text, span.start)
    enc = model.tokenizer(chat.text, return_offsets_mapping=True, add_special_tokens=False)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    labels = []
    for s, e in offsets:
        if s < span.start or e > span.end:
            labels.append(vl.data.IGNORE)
        elif e <= flip:
            labels.append(vl.data.BEFORE)
        elif s >= flip + len(flip_text):
            labels.append(vl.data.AFTER)
        else:
            labels.append(vl.data.REWARD)
    return ids, labels, group

examples = [
    ([{"role": "user", "content": "Solve x + 3 = 10."},
      {"role": "assistant", "content": "Let me think. Subtract three from both sides. So x = 7. "
       "Checking: 7 + 3 = 10, correct."}], "x = 7", "algebra"),
    ([{"role": "user", "content": "What is the capital of Australia?"},
      {"role": "assistant", "content": "Many people guess Sydney, but the capital is Canberra. "
       "It was chosen as a compromise between Sydney and Melbourne."}], "Canberra", "geography"),
    ([{"role": "user", "content": "Fix: print('hi'"},
      {"role": "assistant", "content": "The call is missing a closing parenthesis. Fixed: "
       "print('hi'). Now it runs and prints hi."}], "print('hi')", "code"),
]
rows = [label_chat(*ex) for ex in examples]
mine = vl.LabelledTokens.from_lists([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
print(mine.describe())"""
        ),
        new_code_cell(
            """\
my_stats = vl.collect_stats(model, mine, layers=[LAYER], progress=False)
my_axis = vl.ValueAxis.fit(my_stats)
tr = vl.trace(model, mine.input_ids[0], my_axis)
vl.token_heatmap(tr, LAYER, start=int((mine.labels[0] != vl.data.IGNORE).nonzero()[0]))"""
        ),
        new_markdown_cell(
            "## 2. Your own game conversations\n\n"
            "A `Conversation` has exactly the fields of the paper's released conversation files. "
            "Build one from your own transcript (here a tiny two-paragraph game whose hidden rule "
            "is *include a dash*), save and reload it as versioned JSONL, and label it with the "
            "criterion's own span finder, or with your own `spans=` function."
        ),
        new_code_cell(
            """\
from value_lens.data.icrl import Attempt, Conversation, ParagraphResult
from value_lens.data.icrl.conversation import assistant_message
from value_lens.data.icrl.prompts import game_system_prompt

p1 = "Rivers carry water from high ground to the sea. They shape valleys over long periods."
p2 = "Bees collect nectar from flowers. They store it as honey in wax cells."
a1 = Attempt(1, "Maybe the rule is about commas.", p1.replace("ground", "ground, slowly,"), False)
a2 = Attempt(2, "Let me try a dash.", p1.replace(" to the sea", " - all the way - to the sea"), True)
b1 = Attempt(1, "The rule is a dash.", p2.replace(" from flowers", " - mostly from flowers -"), True)
messages = [{"role": "system", "content": game_system_prompt(2, 5)}]
for k, (para, attempts) in enumerate([(p1, [a1, a2]), (p2, [b1])], 1):
    messages.append({"role": "user", "content": f"Paragraph {k}:\\n\\n{para}"})
    for a in attempts:
        messages.append({"role": "assistant", "content": assistant_message(a.thinking, a.modified_text)})
        messages.append({"role": "user", "content": "+1" if a.reward else "-1"})
conv = Conversation(
    conversation_id="dash__conv00", reward_fn="dash", num_paragraphs=2, discovery_paragraph=1,
    trajectory=[2, 1],
    paragraphs=[ParagraphResult(1, 0, p1, [a1, a2], True, 2), ParagraphResult(2, 1, p2, [b1], True, 1)],
    full_messages=messages,
)
icrl = vl.data.icrl
icrl.save_conversations([conv], "my_conversations.jsonl")
convs = icrl.load_conversations("my_conversations.jsonl")
game = icrl.label(convs, model, min_side_tokens=1)
print(game.describe())"""
        ),
        new_code_cell(
            """\
def first_word_of_second_sentence(conv, position, body):  # noqa: ARG001
    \"\"\"Reward span(s) as (start, end) character offsets in the assistant body.

    Also given: the Conversation and the paragraph position, for rules that depend on them.
    \"\"\"
    k = body.index(". ") + 2
    return [(k, body.index(" ", k))]

custom = icrl.label(convs, model, spans=first_word_of_second_sentence, min_side_tokens=1)
i = 0
print(model.tokenizer.decode(custom.input_ids[i][custom.labels[i] == vl.data.REWARD]))"""
        ),
        new_markdown_cell(
            "## 3. The paper's released data\n\n"
            "The paper released one JSON file per conversation plus `reward_token_labels.json`. "
            "`import_official` reads that layout, finds each labelled paragraph in the "
            "assistant's own turn through the chat template (not by string search, which in the "
            "released code often matched the user's copy) and drops, with a reason, entries it "
            "cannot place. Here we write a tiny file in that layout ourselves; point it at the "
            "real download the same way."
        ),
        new_code_cell(
            """\
import json
from pathlib import Path

released = Path("released/conversations")
released.mkdir(parents=True, exist_ok=True)
record = conv.to_dict()
record.pop("meta")
record["reward_fn"] = "include_dash"          # the released files use their own names
record["conversation_id"] = "include_dash__conv00"
(released / "include_dash__conv00.json").write_text(json.dumps(record, indent=1))
good = conv.paragraphs[1].attempts[0]         # the first post-discovery paragraph's success
labels = [{"reward_fn": "include_dash", "conversation_idx": 0, "paragraph_position": 2,
           "modified": good.modified_text, "reward_words": ["-"]},
          {"reward_fn": "include_dash", "conversation_idx": 7, "paragraph_position": 2,
           "modified": "no such conversation", "reward_words": ["-"]}]
Path("released/reward_token_labels.json").write_text(json.dumps(labels))

imp = icrl.import_official(released, "released/reward_token_labels.json", model,
                           min_side_tokens=1)
print(imp.summary())
print(imp.dropped)"""
        ),
        new_code_cell(
            """\
both = vl.LabelledTokens.concat([game, imp.data])
print(both.describe())
print("fingerprint:", both.fingerprint())"""
        ),
        new_markdown_cell(
            "The released activation array itself (`value_axis.npy`, rows in Hugging Face "
            "`hidden_states` order) loads with `vl.ValueAxis.from_official(path, model)`: row "
            "`k` becomes value_lens layer `k - 1`, and the last, post-final-norm row is dropped "
            'unless you pass `last_row="keep"`.'
        ),
    ]


def nb06() -> list:
    return [
        new_markdown_cell(
            "# 06 Did post-training move the value axis?\n\n"
            "The paper trains one LoRA per word with DPO so that the model prefers that word when "
            "asked to pick an item, then asks whether the *value axis* moved with the preference: "
            "does the preferred item now rank first in value among the options (Fig 7a), does the "
            "word gain value in unrelated sentences (Fig 7b), and does the rise sit on the "
            "assistant's answer rather than on the item in the prompt (Fig 13)? It also steers "
            "the option's tokens inside the prompt (Fig 14).\n\n"
            "Here the base is SmolLM2-135M-Instruct and the tuned model the same plus a small "
            "LoRA DPO on one word, on the CPU. At this size expect wide intervals: the point is "
            "the workflow and how to read it, not the paper's effect sizes.\n\n" + PARAMS_DOC
        ),
        new_code_cell(
            params(
                cpu="    CRITERIA = None\n"
                "    N_PER_CRITERION, SENTENCES, MAX_TOKENS = 2, 2, 600\n"
                '    WORD = "kite"\n'
                "    N_PAIRS, EPOCHS, BATCH = 8, 1, 8  # the paper: 640 pairs, 6 epochs, batch 8\n"
                "    N_EVAL = 12  # held-out prompts (the paper: 160)\n"
                "    ALPHAS = (-8.4, 0.0, 8.4)  # % of the residual norm",
                gpu="    CRITERIA = None\n"
                "    N_PER_CRITERION, SENTENCES, MAX_TOKENS = 6, None, None\n"
                '    WORD = "kite"\n'
                "    N_PAIRS, EPOCHS, BATCH = 640, 6, 8\n"
                "    N_EVAL = 160\n"
                "    ALPHAS = (-16.8, -8.4, 0.0, 8.4, 16.8)",
            )
        ),
        new_code_cell(load()),
        new_markdown_cell(
            "## The axis, fitted on the base model\n\n"
            "The same steps as tutorial 01, at one layer. The axis stays fixed: both models are "
            "read along the base model's direction."
        ),
        new_code_cell(ICRL_DATA),
        new_code_cell(
            """\
stats = vl.collect_stats(model, data, layers=[LAYER], progress=False)
axis = vl.ValueAxis.fit(stats)
print(axis)"""
        ),
        new_markdown_cell(
            "## DPO on one word\n\n"
            "`word_pairs` writes the paper's preference pairs offline: a system prompt asking for "
            "a pick, `Here are the items:` and 4-5 items in one of four layouts; the chosen reply "
            "names the target, the rejected one a distractor. `posttrain.dpo` trains a LoRA "
            "(r=16, alpha=32, beta=0.1, lr 5e-5 cosine: the paper's settings, with fewer pairs "
            "and epochs here) on a copy of the HF model and returns it merged."
        ),
        new_code_cell(
            """\
from value_lens.data import preference

pairs = preference.word_pairs(WORD, n=N_PAIRS, seed=42)
print(pairs[0]["prompt"][1]["content"])
print("chosen:  ", pairs[0]["chosen"][0]["content"])
print("rejected:", pairs[0]["rejected"][0]["content"])"""
        ),
        new_code_cell(
            """\
import time

from value_lens import posttrain
from value_lens.core.model import load_hf, parse_dtype

base_hf, tok = load_hf(MODEL, dtype=parse_dtype(DTYPE))
base_hf = base_hf.to(DEVICE)
log = []
t0 = time.perf_counter()
tuned_hf = posttrain.dpo(base_hf, tok, pairs, epochs=EPOCHS, batch_size=BATCH, log=log)
print(f"DPO took {time.perf_counter() - t0:.0f} s; loss per step:",
      [round(r["loss"], 3) for r in log if "loss" in r])
tuned = vl.load_model(tuned_hf, tokenizer=tok, device=DEVICE)
models = {"base": model, "DPO": tuned}"""
        ),
        new_markdown_cell(
            "## Did the preference move? (Fig 12)\n\n"
            "On held-out prompts (background items never seen in training), each option is "
            "scored by the log-likelihood of the reply `I'd pick {item}.`, so no free text has to "
            "be parsed. `summary` holds the accuracy with a 95% bootstrap CI over prompts and the "
            "paired change from the base model."
        ),
        new_code_cell(
            """\
prompts = preference.eval_prompts(WORD, n=N_EVAL, seed=0)
sel = vl.compare.selection_accuracy(models, prompts)
print(sel.summary.round(3).to_string(index=False))
sel.figure"""
        ),
        new_markdown_cell(
            "## Did the value axis move? (Figs 7a and 13)\n\n"
            "`preference_rank` prefills each option *alone* as the assistant's answer and scores "
            "it by the mean cosine over the item's tokens; the target ranks first at a rate near "
            'chance in the base model. With `position="user"` the same ranking is read at the '
            "item's tokens inside the prompt, where the paper found almost no change."
        ),
        new_code_cell(
            """\
rank = vl.compare.preference_rank(models, axis, LAYER, prompts)
user = vl.compare.preference_rank(models, axis, LAYER, prompts, position="user")
cols = ["model", "chance", "rate_first", "rate_first_ci_lo", "rate_first_ci_hi",
        "delta_rate_first", "delta_ci_lo", "delta_ci_hi"]
print("assistant prefill\\n", rank.summary[cols].round(3).to_string(index=False))
print("user prompt\\n", user.summary[cols].round(3).to_string(index=False))
rank.figure"""
        ),
        new_markdown_cell(
            "## Beyond the training prompts (Fig 7b)\n\n"
            "Natural sentences that contain a word are prefilled as the assistant's reply; the "
            "value is read on the word's tokens. The change (DPO - base) on the trained word is "
            "compared with the same change on the other shipped words, the controls."
        ),
        new_code_cell(
            """\
from value_lens.data import sentences

delta = vl.compare.word_delta(model, tuned, axis, LAYER, sentences.word_sentences(), WORD)
print(delta.summary.to_string(index=False))
delta.figure"""
        ),
        new_markdown_cell(
            "## Steering the option inside the prompt (Fig 14)\n\n"
            "On the base model, `prompt_steering` adds the axis only at the target's tokens in "
            "the user message (an explicit position mask; the reply is never steered) and "
            "measures how often the target is then the most likely pick. Thin lines: per word."
        ),
        new_code_cell(
            """\
steered = vl.compare.prompt_steering(model, axis, LAYER, prompts, ALPHAS)
print(steered.summary.round(3).to_string(index=False))
steered.figure"""
        ),
        new_markdown_cell(
            "## Reading it\n\n"
            "- Read every change with its paired CI: with a few dozen prompts an interval "
            "several points wide around zero is the expected outcome of a one-epoch run.\n"
            "- In the training pairs the preferred word always ends the assistant's reply, so a "
            "rise of the value there is also what an end-of-turn signal would show (see the "
            "position controls of tutorial 02).\n"
            "- `domain_matrix` (SFT, Fig 9) and `category_quartiles` (prompt categories, Fig 17) "
            "follow the same pattern: a `table`, a `summary` with CIs and a `figure`."
        ),
        new_code_cell(
            """\
path = vl.write_report("posttrain.html", {
    "Selection accuracy (Fig 12)": sel.figure,
    "Preference rank, assistant prefill (Fig 7a)": rank.figure,
    "Preference rank, user prompt (Fig 13)": user.figure,
    "Word delta (Fig 7b)": delta.figure,
    "Steering the option in the prompt (Fig 14)": steered.figure,
})
print("wrote", path)"""
        ),
    ]


NOTEBOOKS = {
    "01_quickstart.ipynb": nb01,
    "02_layer_sweeps.ipynb": nb02,
    "03_steering.ipynb": nb03,
    "04_evaluations.ipynb": nb04,
    "05_your_own_data.ipynb": nb05,
    "06_posttraining.ipynb": nb06,
}


def build(name: str) -> nbformat.NotebookNode:
    nb = new_notebook(cells=NOTEBOOKS[name]())
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.metadata["language_info"] = {"name": "python"}
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"{name[:2]}-{i:02d}"
    nbformat.validate(nb)
    return nb


def main() -> None:
    for name in NOTEBOOKS:
        nbformat.write(build(name), HERE / name)
        print("wrote", HERE / name)


if __name__ == "__main__":
    main()
