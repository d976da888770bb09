"""Choose search settings on *development* prompts, never on the benchmark's held-out ones.

Runs a few variants of each strategy against Best-of-N at equal token budget on problems from
DEV_SEED (disjoint from training seeds 0..3 and the benchmark's held-out seed 20000) and prints
mean gold and win rate, so the defaults in forethought.lm.compare.SearchSettings can be picked
without looking at the test set.

    python scripts/lm_dev_sweep.py --prompts 30 --budgets 256,1024
"""

from __future__ import annotations

import argparse
import dataclasses
import os

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from forethought.lm import compare
from forethought.lm.artifacts.shipped import SHIPPED, load_countdown
from forethought.lm.tasks import countdown

DEV_SEED = 15_000
VARIANTS = {
    "lookahead": [{"keep": 4}, {"keep": 0.25}],
    "prune": [{"chunk": 6}, {"chunk": 6, "prune_scorer": "value"}, {"chunk": 12}],
    "beam": [{"process": "value"}, {"process": "proxy"}],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--prompts", type=int, default=30)
    ap.add_argument("--budgets", default="256,1024")
    ap.add_argument("--value", default="hidden", choices=["hidden", "minilm"])
    args = ap.parse_args()
    torch.set_num_threads(1)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    suite = load_countdown(SHIPPED, value=args.value)
    prompts = [p.prompt for p in countdown.make_problems(args.prompts, seed=DEV_SEED)]
    budgets = [int(b) for b in args.budgets.split(",")]
    base = compare.SearchSettings()
    bon = compare.evaluate(suite, ["bon"], prompts, budgets, base, seed=3)
    for method, variants in VARIANTS.items():
        for change in variants:
            settings = dataclasses.replace(base, **change)
            recs = compare.evaluate(suite, [method], prompts, budgets, settings, seed=3)
            for row in compare.summarize(bon + recs):
                if row["method"] == method:
                    print(
                        f"{method:9s} {change!s:40s} budget {row['budget']:5d} "
                        f"gold {row['mean_gold']:.3f} win {row['win_rate']:.2f} "
                        f"W/T/L {row['wins']}/{row['ties']}/{row['losses']}",
                        flush=True,
                    )
    for row in compare.summarize(bon):
        print(f"bon       {'':40s} budget {row['budget']:5d} gold {row['mean_gold']:.3f}")


if __name__ == "__main__":
    main()
