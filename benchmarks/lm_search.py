"""Benchmark 4 (shared/BENCHMARKS.md): language search under a fixed budget, against Best-of-N.

Runs on the shipped Countdown generator, proxy reward and value predictors, on held-out prompts
(a problem seed no training step used), CPU only, offline. Writes
benchmarks/results/lm_search.json with the machine, the settings and every raw number:

  value_correlation   Spearman of each value predictor with the final gold reward, by prefix
                      length (pooled over all samples and averaged within a prompt)
  bon_sweep           Best-of-N for growing N: mean gold and proxy of the pick, and their gap
  budget_sweep        every method at every token budget: means, wins/ties/losses against
                      Best-of-N at the same budget, tokens and reward calls spent. The guided
                      methods run twice: with the default partial scorer (the value predictor
                      behind Countdown's step-legality check) and, labelled "(learned)", with
                      the learned value predictor alone.
                      "bon (legal final)" is a control: the same Best-of-N samples, picked by
                      the proxy behind the legality check instead of the proxy alone.
  tokens_to_match_bon16  the cheapest swept budget at which each method's mean gold reaches
                      Best-of-16's, with the tokens it actually spent there

    python benchmarks/lm_search.py --quick      # ~10 minutes on 2 shared CPU cores
    python benchmarks/lm_search.py              # the full run

Step-level search with learned scorers only (`--part steps`, one task per run; writes
benchmarks/results/lm_search_steps_<task>.json and .png, and when both tasks' files exist,
lm_search_steps.json with the comparison across depth):

  prm                 the PRM's held-out step-label accuracy and calibration (from prm.json)
  correlation_by_step Spearman of the PRM, the value model and the proxy on each step prefix
                      with the final gold of the answer, pooled and within a prompt
  budget_sweep        Best-of-N, step beam, DVTS and MCTS (process scorer: PRM or value) at every
                      budget, each search re-picked by every final pick (proxy, value,
                      prm-min/last/prod, vote, and the rule-gated proxy as the control)
  learned_vs_bon      per budget: the best learned-only search against plain Best-of-N and
                      against the control, Best-of-N with the legality rule at its pick

    python benchmarks/lm_search.py --part steps --task countdown
    python benchmarks/lm_search.py --part steps --task countdown-hard
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from forethought.lm import Account, Budget, compare
from forethought.lm.artifacts.shipped import SHIPPED, load_countdown, load_value
from forethought.lm.rewards import RuleGated
from forethought.lm.tasks import countdown
from forethought.lm.value import rank_correlation_by_length

HELD_OUT_SEED = 20_000  # training used seeds 0..3; evaluation problems come from here


def machine() -> dict:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "device": "cpu",
    }


def value_correlation(suite, root: Path, problems, per_prompt: int, max_new: int) -> dict:
    """Sample `per_prompt` answers per held-out problem; rank-correlate each predictor."""
    cands, groups = [], []
    for i, p in enumerate(problems):
        torch.manual_seed(HELD_OUT_SEED + i)
        budget = Budget(per_prompt * max_new)
        cands += suite.generator.generate(p.prompt, per_prompt, max_new, Account(budget))
        groups += [i] * per_prompt
    gold = [countdown.score(c.prompt, c.text) for c in cands]
    out = {"samples": len(cands), "mean_gold": float(np.mean(gold))}
    for kind in ("model", "hidden", "minilm"):
        value = load_value(kind, root, suite.generator)
        out[kind] = rank_correlation_by_length(value, suite.generator, cands, gold, groups)
        gated = RuleGated(countdown.steps_legal, value)  # the partial scorer the search uses
        out[f"legal+{kind}"] = rank_correlation_by_length(
            gated, suite.generator, cands, gold, groups
        )
    proxy = rank_correlation_by_length(suite.proxy, suite.generator, cands, gold, groups)
    out["proxy"] = proxy  # the reward model on prefixes and (at 'full') on whole answers
    return out


def tokens_to_match(rows: list[dict], bon16: dict) -> dict:
    """Per method: the smallest swept budget whose mean gold >= Best-of-16's mean gold."""
    out = {}
    for m in dict.fromkeys(r["method"] for r in rows):
        hits = sorted(
            (r for r in rows if r["method"] == m and r["mean_gold"] >= bon16["mean_gold"]),
            key=lambda r: r["budget"],
        )
        out[m] = (
            {
                "budget": hits[0]["budget"],
                "mean_tokens": hits[0]["mean_tokens"],
                "fraction_of_bon16_tokens": hits[0]["mean_tokens"] / bon16["mean_tokens"],
            }
            if hits
            else None
        )
    return out


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer prompts and budgets")
    ap.add_argument(
        "--part",
        default="budget",
        choices=["budget", "steps"],
        help="budget: the original sweep (lm_search.json); steps: step-level search with "
        "learned scorers (lm_search_steps_<task>.json)",
    )
    ap.add_argument(
        "--task",
        default="countdown",
        choices=sorted(countdown.TASKS),
        help="--part steps: the built-in task (its shipped models unless --assets)",
    )
    ap.add_argument("--prompts", type=int, default=None, help="held-out prompts (default 100)")
    ap.add_argument(
        "--searches",
        default=None,
        help="--part steps: comma-separated searches, e.g. bon,mcts(value) (default: all)",
    )
    ap.add_argument("--assets", default=None, help="Countdown model directory")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="--part steps: override one search setting (a field of compare.SearchSettings, "
        "e.g. widen=2 or c_puct=1.0); repeatable",
    )
    ap.add_argument(
        "--problem-seed",
        type=int,
        default=HELD_OUT_SEED,
        help="--part steps: seed of the prompts (default %(default)s, the held-out ones; "
        "choose settings on another, e.g. 15000)",
    )
    ap.add_argument(
        "--budgets",
        default=None,
        help="--part steps: comma-separated token budgets (default 32,64,...,1024 from the "
        "task's answer length up)",
    )
    ap.add_argument(
        "--value",
        default="model",
        choices=["model", "hidden", "minilm"],
        help="value predictor used by look-ahead, pruning and beam",
    )
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "lm_search.json"))
    ap.add_argument(
        "--plot",
        default=str(Path(__file__).parent / "results" / "lm_search.png"),
        help="reward-vs-tokens plot path",
    )
    return ap.parse_args()


def evaluator_settings():
    """The default search settings; learned evaluators only (the value predictor ranks every
    partial answer, no legality check); and the control: the legality rule at the final pick."""
    learned = compare.SearchSettings(
        lookahead_scorer="value", prune_scorer="value", process="value"
    )
    return compare.SearchSettings(), learned, compare.SearchSettings(final="legal+proxy")


def timed(result: dict, part: str, run):
    """run(), its seconds recorded under result["timings_s"][part]."""
    started = time.time()
    value = run()
    result["timings_s"][part] = round(time.time() - started, 1)
    print(f"{part} done", flush=True)
    return value


def budget_sweep(suite, prompts: list[str], budgets: list[int], settings, learned, control):
    """Every method at every budget with the default evaluators, the guided ones again with
    learned evaluators only, and Best-of-N with the legality rule at its pick (the control),
    all on the same seeds so that only the evaluators differ."""
    records = compare.evaluate(suite, compare.METHODS, prompts, budgets, settings, seed=2)
    guided = [m for m in compare.METHODS if m != "bon"]
    for label, methods, s in (
        (" (learned)", guided, learned),
        (" (legal final)", ["bon"], control),
    ):
        for r in compare.evaluate(suite, methods, prompts, budgets, s, seed=2):
            r.method += label
            records.append(r)
    return records


def show(result: dict, rows: list[dict], out: Path, plot: Path) -> None:
    for r in rows:
        print(
            f"{r['budget']:5d} {r['method']:18s} gold {r['mean_gold']:.3f} proxy {r['mean_proxy']:.3f} "
            f"win {r['win_rate']:.2f} W/T/L {r['wins']}/{r['ties']}/{r['losses']} "
            f"tokens {r['mean_tokens']:.0f} calls {r['mean_reward_calls']:.1f}"
        )
    print(json.dumps(result["tokens_to_match_bon16"], indent=1))
    print(f"wrote {out} and {plot}")


def main() -> int:
    args = parse_args()
    torch.set_num_threads(args.threads)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    if args.part == "steps":
        from lm_search_steps import run_steps

        return run_steps(args, machine())
    args.assets = args.assets or str(SHIPPED)

    n_prompts = 40 if args.quick else 100
    budgets = [64, 128, 256, 512, 1024] if args.quick else [32, 64, 128, 256, 512, 1024]
    ns = [1, 2, 4, 8, 16, 32] if args.quick else [1, 2, 4, 8, 16, 32, 64]
    settings, learned, control = evaluator_settings()
    root = Path(args.assets)
    suite = load_countdown(root, value=args.value)
    problems = countdown.make_problems(n_prompts, seed=HELD_OUT_SEED)
    prompts = [p.prompt for p in problems]
    result = {
        "machine": machine(),
        "quick": args.quick,
        "value": args.value,
        "settings": settings.__dict__,
        "settings_learned": learned.__dict__,
        "settings_control": control.__dict__,
        "prompts": n_prompts,
        "budgets": budgets,
        "held_out_seed": HELD_OUT_SEED,
        "timings_s": {},
    }
    if (root / "meta.json").exists():
        result["assets_meta"] = json.loads((root / "meta.json").read_text())
    held_out = problems[: n_prompts // 2]
    result["value_correlation"] = timed(result, "value_correlation", lambda: value_correlation(
        suite, root, held_out, 16, settings.max_new_tokens))  # fmt: skip
    result["bon_sweep"] = timed(result, "bon_sweep", lambda: compare.bon_sweep(
        suite, prompts, ns, settings, seed=1))  # fmt: skip
    records = timed(result, "budget_sweep", lambda: budget_sweep(
        suite, prompts, budgets, settings, learned, control))  # fmt: skip
    rows = compare.summarize(records)
    result["budget_sweep"] = rows
    bon16 = next(r for r in result["bon_sweep"] if r["n"] == 16)
    result["best_of_16"] = bon16
    result["tokens_to_match_bon16"] = tokens_to_match(rows, bon16)
    result["records"] = [
        {k: v for k, v in r.items() if k not in ("prompt", "response")}
        for r in compare.records_as_dicts(records)
    ]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
    plot = compare.plot_reward_vs_budget(rows, args.plot)
    show(result, rows, out, plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
