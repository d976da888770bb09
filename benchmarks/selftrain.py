"""Self-training on Countdown: does the policy get better, and does the predictor keep up?

Runs `forethought lm selftrain` (the same SelfTrainer) for several seeds on the shipped models,
CPU only, offline, one torch thread, and writes benchmarks/results/selftrain.json with the
machine, the config and, per seed and iteration, every number of metrics.jsonl, plus:

  improvement    held-out mean gold reward of plain sampling at the last iteration minus
                 iteration 0, per seed, with a paired bootstrap 95% CI over the held-out prompts
                 (the same prompts every iteration and seed)
  across_seeds   per iteration and method, the mean over seeds, with a bootstrap CI over
                 prompts of the seed-averaged per-prompt reward, and the seeds' spread
  predictor      per iteration: the predictor's Spearman correlation with gold (pooled and
                 within prompt), bias and RMSE on the new policy's samples before its refit,
                 after it, and the old predictor on the policy it was fitted to (so the drop
                 is old-on-old minus old-on-new, the recovery after minus before)

    python benchmarks/selftrain.py --quick    # 1 seed, 2 iterations, 200 prompts (~3 min)
    python benchmarks/selftrain.py            # 3 seeds x 3 iterations, 500 prompts (~25 min)

Run directories go to runs/selftrain_bench/seed_S; a killed benchmark resumes them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from forethought.lm.selftrain import RunDir, SelfTrainConfig, SelfTrainer
from forethought.lm.selftrain.evaluation import BOOTSTRAP, METHODS, bootstrap_ci
from machine import machine_info


def run_seed(cfg: SelfTrainConfig, path: Path) -> list[dict]:
    """One self-training run; continues a finished or killed one with the same config."""
    if (path / "config.json").exists():
        run, old = RunDir.open(path)
        if old != cfg:
            run.close()
            sys.exit(f"{path} holds a run with another config; delete it or pass another --runs")
    else:
        run = RunDir.create(path, cfg)
    try:
        return SelfTrainer(
            cfg, run, log=lambda line: print(f"  seed {cfg.seed}: {line}", flush=True)
        ).run_all()
    finally:
        run.close()  # the run directory's lock


def per_prompt(path: Path, k: int, method: str) -> np.ndarray:
    return np.asarray(json.loads((path / f"iter_{k}" / "eval.json").read_text())[method]["gold"])


def paired_delta(a: np.ndarray, b: np.ndarray, seed: int = 0) -> dict:
    """Mean of b - a over prompts with a bootstrap CI (resampling prompts, pairs kept)."""
    d = b - a
    lo, hi = bootstrap_ci(d, seed=seed)
    return {"delta": float(d.mean()), "ci": [lo, hi]}


def corr_at(row: dict, which: str, key: str, kind: str = "pooled") -> float | None:
    c = row["value_corr"].get(which)
    return None if c is None else c[key][kind]


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 seed, 2 iterations, 200 prompts")
    ap.add_argument("--seeds", default=None, help="comma list (default 0,1,2; quick: 0)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", default="runs/selftrain_bench", help="run directories")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "selftrain.json"))
    return ap.parse_args()


def improvement_by_seed(seeds, paths, per_seed, last: int) -> dict:
    """Per seed: plain sampling's gold after the last iteration less before the first, paired
    by prompt, against the first iteration's own interval."""
    improvement = {}
    for s in seeds:
        first, final = per_prompt(paths[s], 0, "plain"), per_prompt(paths[s], last, "plain")
        d = paired_delta(first, final, seed=s)
        ci0 = per_seed[s]["rows"][0]["plain"]["gold_ci"]
        d["iteration0_ci_half_width"] = (ci0[1] - ci0[0]) / 2
        d["ci_excludes_zero"] = d["ci"][0] > 0
        d["delta_exceeds_iteration0_ci"] = d["delta"] > d["iteration0_ci_half_width"]
        improvement[str(s)] = d
    return improvement


def across_seeds(seeds, paths, per_seed, last: int) -> list[dict]:
    """Per iteration and method: gold over seeds with a prompt-bootstrap interval."""
    across = []
    for k in range(last + 1):
        row = {"iteration": k}
        for m in METHODS:
            stacked = np.stack([per_prompt(paths[s], k, m) for s in seeds])  # S x P
            seed_means = stacked.mean(1)
            row[m] = {
                "gold": float(seed_means.mean()),
                "gold_ci": bootstrap_ci(stacked.mean(0)),
                "seed_std": float(seed_means.std(ddof=1)) if len(seeds) > 1 else 0.0,
                "pass1": float(np.mean([per_seed[s]["rows"][k][m]["pass1"] for s in seeds])),
                "gap": float(np.mean([per_seed[s]["rows"][k][m]["gap"] for s in seeds])),
            }
        if k > 0:
            pairs = np.stack(
                [per_prompt(paths[s], k, "plain") - per_prompt(paths[s], 0, "plain") for s in seeds]
            )
            row["plain_delta_vs_0"] = paired_delta(np.zeros(pairs.shape[1]), pairs.mean(0))
        across.append(row)
    return across


def predictor_rows(seeds, per_seed, last: int, key: str) -> list[dict]:
    """Per iteration: the value predictor's correlation before and after its refit, and how
    much the policy's change cost the old predictor."""
    predictor = []
    for k in range(last + 1):
        row = {"iteration": k}
        for kind in ("pooled", "within_prompt", "bias", "rmse"):
            for which in ("before", "after"):
                vals = [corr_at(per_seed[s]["rows"][k], which, key, kind) for s in seeds]
                if all(v is not None for v in vals):
                    row[f"{which}_{kind}"] = float(np.mean(vals))
            if k > 0:
                # The old predictor on the policy it was fitted to (its "after" one row up).
                row[f"old_on_old_{kind}"] = float(
                    np.mean(
                        [corr_at(per_seed[s]["rows"][k - 1], "after", key, kind) for s in seeds]
                    )
                )
        if k > 0:
            row["drop_pooled"] = row["old_on_old_pooled"] - row["before_pooled"]
            row["recovery_pooled"] = row["after_pooled"] - row["before_pooled"]
            row["rmse_drop"] = row["before_rmse"] - row["old_on_old_rmse"]
            row["rmse_recovery"] = row["before_rmse"] - row["after_rmse"]
        predictor.append(row)
    return predictor


def show(result: dict, out: Path) -> None:
    for row in result["across_seeds"]:
        cells = [f"iter {row['iteration']}"]
        for m in METHODS:
            lo, hi = row[m]["gold_ci"]
            cells.append(
                f"{m} {row[m]['gold']:.3f} [{lo:.3f},{hi:.3f}] pass@1 {row[m]['pass1']:.0%}"
            )
        print("  ".join(cells))
    for row in result["predictor_correlation"]["rows"]:
        print("predictor", {k: round(v, 3) for k, v in row.items()})
    for s, d in result["improvement_plain_gold"].items():
        print(f"seed {s}: plain gold +{d['delta']:.3f} CI [{d['ci'][0]:.3f}, {d['ci'][1]:.3f}]")
    print(f"goal met: {result['goal_met']}; wrote {out} in {result['wall_s']:.0f}s")


def main() -> int:
    args = parse_args()
    torch.set_num_threads(args.threads)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()

    seeds = [int(s) for s in (args.seeds or ("0" if args.quick else "0,1,2")).split(",")]
    if args.quick:
        base = SelfTrainConfig(iterations=2, train_prompts=200, eval_prompts=100, value_prompts=100)
    else:
        base = SelfTrainConfig(iterations=3, train_prompts=500, eval_prompts=200, value_prompts=300)
    runs = Path(args.runs) / ("quick" if args.quick else "full")
    start = time.time()
    per_seed, paths = {}, {}
    for s in seeds:
        cfg = SelfTrainConfig(**{**asdict(base), "seed": s}).validate()
        paths[s] = runs / f"seed_{s}"
        t = time.time()
        per_seed[s] = {"rows": run_seed(cfg, paths[s]), "wall_s": round(time.time() - t, 1)}
    last = base.iterations
    improvement = improvement_by_seed(seeds, paths, per_seed, last)
    predictor = predictor_rows(seeds, per_seed, last, str(base.prefix_tokens))
    result = {
        "machine": machine_info(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "quick": args.quick,
        "seeds": seeds,
        "config": asdict(base),
        "bootstrap_resamples": BOOTSTRAP,
        "wall_s": round(time.time() - start, 1),
        "improvement_plain_gold": improvement,
        "goal_met": all(
            d["ci_excludes_zero"] and d["delta_exceeds_iteration0_ci"] for d in improvement.values()
        ),
        "across_seeds": across_seeds(seeds, paths, per_seed, last),
        "predictor_correlation": {"prefix_tokens": base.prefix_tokens, "rows": predictor},
        "per_seed": {str(s): v for s, v in per_seed.items()},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    show(result, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
