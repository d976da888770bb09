"""The language track's decision, measured: train model-free (GRPO), self-train (expert
iteration), search at inference, or combine them — at matched compute.

Stages (each resumes its run directories, so a killed benchmark continues where it stopped):

  grpo       GRPO on the gold verifier (`forethought lm grpo`), --seeds, --steps steps, every
             checkpoint evaluated on the 200 held-out prompts as self-training evaluates
  solved     GRPO on the verifier's pass/fail alone, --seeds: no partial credit to exploit
  proxy      GRPO on the proxy reward model (seed 0): the proxy's rise and gold beside it
  selftrain  expert iteration (`forethought lm selftrain`, its defaults), --seeds, with the
             training-compute ledger
  hybrid     {base, GRPO, expert iteration} x {Best-of-N, look-ahead, pruning, beam} at --budgets
             tokens per prompt on --hybrid-prompts held-out prompts, each policy with the value
             predictor refitted to its own samples, learned scorers only (no legality rule)
  summary    benchmarks/results/lm_arms.json and lm_arms.png

Compute is counted in generated tokens: training tokens from each run's ledger (rollouts;
for self-training also its searches and refit samples), inference tokens per prompt as each
search spent them. Serving P prompts with a configuration costs T + t x P tokens, so the best
configuration for a per-prompt budget B is the one with the highest gold among those whose
T / P + t <= B; the JSON's `decision` table reads that off for several P and B.

    python benchmarks/lm_arms.py                       # every stage (about 75 min on 1 thread)
    python benchmarks/lm_arms.py --stages grpo,proxy   # one process per core: run two halves
    python benchmarks/lm_arms.py --stages selftrain    # side by side, then --stages hybrid,summary
    python benchmarks/lm_arms.py --quick               # 1 seed, short runs (a smoke test)
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

from forethought.lm import compare
from forethought.lm.grpo import GRPOConfig, GRPORunDir, GRPORunner
from forethought.lm.policies import load_trained_policy, suite_with_policy
from forethought.lm.selftrain import RunDir, SelfTrainConfig, SelfTrainer
from forethought.lm.selftrain.config import HELD_OUT_SEED
from forethought.lm.selftrain.evaluation import METHODS, bootstrap_ci
from forethought.lm.tasks import countdown
from machine import machine_info

RESULTS = Path(__file__).parent / "results"
STAGES = ("grpo", "solved", "proxy", "selftrain", "hybrid", "summary")
SERVED = (100, 1_000, 10_000, 100_000, 1_000_000)
PER_PROMPT_BUDGETS = (16, 32, 64, 128, 256, 512)


def _log(tag: str):
    return lambda line: print(f"  {tag}: {line}", flush=True)


def open_or_create(run_class, cfg, path: Path):
    """The run in `path` (it must hold the same config), or a new one."""
    if (path / "config.json").exists():
        run, old = run_class.open(path)
        if old != cfg:
            run.close()
            sys.exit(f"{path} holds a run with another config; delete it or pass another --runs")
        return run
    return run_class.create(path, cfg)


def run_grpo(cfg: GRPOConfig, path: Path) -> list[dict]:
    run = open_or_create(GRPORunDir, cfg, path)
    try:
        return GRPORunner(cfg, run, log=_log(path.name)).run_all()
    finally:
        run.close()


def run_selftrain(cfg: SelfTrainConfig, path: Path) -> list[dict]:
    run = open_or_create(RunDir, cfg, path)
    try:
        return SelfTrainer(cfg, run, log=_log(path.name)).run_all()
    finally:
        run.close()


def grpo_config(args, seed: int, reward: str = "gold") -> GRPOConfig:
    extra = {"eval_prompts": 100, "value_prompts": 100, "eval_every": 20} if args.quick else {}
    return GRPOConfig(seed=seed, steps=args.steps, reward=reward, **extra).validate()


def selftrain_config(args, seed: int) -> SelfTrainConfig:
    if args.quick:
        return SelfTrainConfig(
            seed=seed, iterations=1, train_prompts=100, eval_prompts=100, value_prompts=100
        ).validate()
    return SelfTrainConfig(seed=seed).validate()


# -- reading the runs -------------------------------------------------------------------------
def plain_per_prompt(eval_dir: Path, method: str = "plain") -> np.ndarray:
    return np.asarray(json.loads((eval_dir / "eval.json").read_text())[method]["gold"])


def paired_delta(a: np.ndarray, b: np.ndarray, seed: int = 0) -> dict:
    d = b - a
    lo, hi = bootstrap_ci(d, seed=seed)
    return {"delta": float(d.mean()), "ci": [lo, hi], "ci_excludes_zero": bool(lo > 0)}


def curve(rows: list[dict], x_key: str) -> list[dict]:
    """Gold (CI), pass@1 and proxy gap per evaluation, against training tokens."""
    out = []
    for r in rows:
        point = {x_key: r[x_key], "ledger": r["ledger"]}
        for m in METHODS:
            point[m] = {k: r[m][k] for k in ("gold", "gold_ci", "pass1", "proxy", "gap", "tokens")}
        out.append(point)
    return out


def grpo_summary(paths: dict[int, Path]) -> dict:
    """Per seed: the curve and the paired improvement of plain gold, last step over step 0."""
    per_seed = {}
    for s, path in paths.items():
        run = GRPORunDir(path)
        rows = run.rows()
        last = rows[-1]["step"]
        d = paired_delta(plain_per_prompt(run.eval_dir(0)), plain_per_prompt(run.eval_dir(last)), s)
        per_seed[str(s)] = {
            "curve": curve(rows, "step"),
            "improvement_plain_gold": d,
            "train_log": run.train_log(),
        }
    return per_seed


def selftrain_summary(paths: dict[int, Path]) -> dict:
    per_seed = {}
    for s, path in paths.items():
        run = RunDir(path)
        rows = run.rows()
        last = rows[-1]["iteration"]
        d = paired_delta(plain_per_prompt(run.iter_dir(0)), plain_per_prompt(run.iter_dir(last)), s)
        per_seed[str(s)] = {"curve": curve(rows, "iteration"), "improvement_plain_gold": d}
    return per_seed


def seed_mean_curve(per_seed: dict) -> list[dict]:
    """The mean over seeds at each evaluation (runs share their evaluation points)."""
    curves = [v["curve"] for v in per_seed.values()]
    out = []
    for points in zip(*curves, strict=True):
        row = {"tokens": float(np.mean([p["ledger"]["tokens"] for p in points]))}
        for m in METHODS:
            row[m] = {
                k: float(np.mean([p[m][k] for p in points])) for k in ("gold", "pass1", "gap")
            }
            row[m]["seed_std"] = (
                float(np.std([p[m]["gold"] for p in points], ddof=1)) if len(points) > 1 else 0.0
            )
        out.append(row)
    return out


# -- the hybrid grid --------------------------------------------------------------------------
def hybrid_grid(args, policies: dict[str, Path | tuple[Path, int]]) -> dict:
    """Every policy as the generator of every search at every budget (same prompts and seeds)."""
    prompts = [p.prompt for p in countdown.make_problems(args.hybrid_prompts, HELD_OUT_SEED)]
    learned = compare.SearchSettings(
        lookahead_scorer="value", prune_scorer="value", process="value"
    )
    out = {}
    for name, where in policies.items():
        path, step = where if isinstance(where, tuple) else (where, None)
        t = time.time()
        policy = load_trained_policy(path, step)
        suite = suite_with_policy(policy)
        records = compare.evaluate(
            suite, compare.METHODS, prompts, list(args.budgets), learned, seed=3
        )
        out[name] = {
            "policy": f"{policy.label} of {path.name}",
            "rows": compare.summarize(records),
            "per_prompt_gold": {f"{r.method}@{r.budget}": [] for r in records},
            "seconds": round(time.time() - t, 1),
        }
        for r in records:
            out[name]["per_prompt_gold"][f"{r.method}@{r.budget}"].append(r.gold)
        print(f"  hybrid {name}: {out[name]['seconds']:.0f}s", flush=True)
    return out


def configurations(result: dict) -> list[dict]:
    """Every (policy, inference method) with its training tokens T, tokens per prompt t and gold."""
    rows = []
    training = result["hybrid_training_tokens"]
    for name, grid in result["hybrid"].items():
        plain = result["hybrid_plain"][name]
        rows.append({"policy": name, "method": "plain", "budget": 0, "T": training[name],
                     "t": plain["tokens"], "gold": plain["gold"], "pass1": plain["pass1"]})  # fmt: skip
        for r in grid["rows"]:
            rows.append({"policy": name, "method": r["method"], "budget": r["budget"],
                         "T": training[name], "t": r["mean_tokens"], "gold": r["mean_gold"],
                         "pass1": r["solved"]})  # fmt: skip
    return rows


def decision(configs: list[dict], key: str = "gold") -> list[dict]:
    """For P prompts served and B tokens per prompt: the configuration with the highest `key`
    (mean gold with partial credit, or pass1: the share solved) among those that fit."""
    table = []
    for served in SERVED:
        for budget in PER_PROMPT_BUDGETS:
            fits = [c for c in configs if c["T"] / served + c["t"] <= budget]
            best = max(fits, key=lambda c: c[key], default=None)
            table.append({"served": served, "tokens_per_prompt": budget, "best": best})
    return table


COLOURS = {"base": "grey", "grpo": "C0", "expert iteration": "C1", "grpo (pass/fail)": "C2",
           "grpo (proxy)": "C3"}  # fmt: skip


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.4))
    ax = axes[0]
    for arm, key in (("GRPO (gold)", "grpo_mean_curve"), ("expert iteration", "selftrain_mean_curve"),
                     ("GRPO (pass/fail)", "solved_mean_curve"),
                     ("GRPO (proxy)", "proxy_mean_curve")):  # fmt: skip
        pts = result.get(key)
        if pts:
            x = [p["tokens"] for p in pts]
            colour = COLOURS[{"GRPO (gold)": "grpo", "expert iteration": "expert iteration",
                              "GRPO (pass/fail)": "grpo (pass/fail)",
                              "GRPO (proxy)": "grpo (proxy)"}[arm]]  # fmt: skip
            ax.plot(x, [p["plain"]["gold"] for p in pts], "o-", color=colour, label=f"{arm}: gold")
            ax.plot(x, [p["plain"]["pass1"] for p in pts], ":", color=colour,
                    label=f"{arm}: pass@1")  # fmt: skip
    ax.set_xlabel("training tokens")
    ax.set_title("held-out plain sampling against training tokens (mean over seeds)", fontsize=9)
    ax.legend(fontsize=7)
    configs = result.get("configurations", [])
    for ax, served in zip(axes[1:], (1_000, 1_000_000), strict=True):
        for name in result.get("hybrid", {}):
            cs = [c for c in configs if c["policy"] == name]
            xs = [c["T"] / served + c["t"] for c in cs]
            ax.scatter(xs, [c["gold"] for c in cs], label=name, s=22, color=COLOURS.get(name))
            for c, x in zip(cs, xs, strict=True):
                ax.annotate(f"{c['method']}@{c['budget']}" if c["budget"] else "plain",
                            (x, c["gold"]), fontsize=5)  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel(f"tokens per prompt, training amortised over {served:,} prompts")
        ax.set_title(f"gold against total compute, {served:,} prompts served", fontsize=9)
        ax.legend(fontsize=7)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--stages", default=",".join(STAGES), help="comma list of " + ",".join(STAGES))
    ap.add_argument("--quick", action="store_true", help="1 seed, short runs, 20 prompts")
    ap.add_argument("--seeds", default=None, help="comma list (default 0,1,2; quick: 0)")
    ap.add_argument("--steps", type=int, default=300, help="GRPO optimizer steps")
    ap.add_argument("--budgets", default="128,512", help="hybrid: tokens per prompt")
    ap.add_argument("--hybrid-prompts", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", default="benchmarks/.runs/lm_arms", help="run directories")
    ap.add_argument("--out", default=str(RESULTS / "lm_arms.json"))
    args = ap.parse_args()
    if args.quick:
        args.steps, args.hybrid_prompts = min(args.steps, 40), 20
    args.budgets = [int(b) for b in args.budgets.split(",")]
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        ap.error(f"unknown stage(s) {', '.join(unknown)}; choose from {', '.join(STAGES)}")
    torch.set_num_threads(args.threads)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()

    seeds = [int(s) for s in (args.seeds or ("0" if args.quick else "0,1,2")).split(",")]
    runs = Path(args.runs) / ("quick" if args.quick else "full")
    grpo_paths = {s: runs / f"grpo-gold-seed{s}" for s in seeds}
    proxy_path = runs / "grpo-proxy-seed0"
    solved_paths = {s: runs / f"grpo-solved-seed{s}" for s in seeds}
    st_paths = {s: runs / f"selftrain-seed{s}" for s in seeds}
    hybrid_json = runs / "hybrid.json"
    timings = {}
    for stage in stages:
        t = time.time()
        if stage == "grpo":
            for s in seeds:
                run_grpo(grpo_config(args, s), grpo_paths[s])
        elif stage == "proxy":
            run_grpo(grpo_config(args, 0, "proxy"), proxy_path)
        elif stage == "solved":
            for s in seeds:
                run_grpo(grpo_config(args, s, "solved"), solved_paths[s])
        elif stage == "selftrain":
            for s in seeds:
                run_selftrain(selftrain_config(args, s), st_paths[s])
        elif stage == "hybrid":
            policies = {"base": (grpo_paths[seeds[0]], 0), "grpo": grpo_paths[seeds[0]],
                        "expert iteration": st_paths[seeds[0]]}  # fmt: skip
            if (solved_paths[seeds[0]] / "metrics.jsonl").exists():
                policies["grpo (pass/fail)"] = solved_paths[seeds[0]]
            hybrid_json.write_text(json.dumps(hybrid_grid(args, policies)))
        elif stage == "summary":
            arms = {"grpo": grpo_paths, "solved": solved_paths, "proxy": {0: proxy_path}}
            summarize(args, seeds, arms, st_paths, hybrid_json)
        timings[stage] = round(time.time() - t, 1)
        print(f"stage {stage} done in {timings[stage]:.0f}s", flush=True)
    return 0


def finished(paths: dict[int, Path], steps: int) -> dict[int, Path]:
    """The runs among `paths` that reached their last step (a stage may not have run yet)."""
    done = {}
    for s, path in paths.items():
        if (path / "metrics.jsonl").exists():
            rows = GRPORunDir(path).rows()
            if rows and rows[-1]["step"] == steps:
                done[s] = path
    return done


def summarize(args, seeds, arms: dict[str, dict[int, Path]], st_paths, hybrid_json) -> None:
    result = {
        "machine": machine_info(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "quick": args.quick,
        "seeds": seeds,
        "grpo_config": asdict(grpo_config(args, seeds[0])),
        "selftrain_config": asdict(selftrain_config(args, seeds[0])),
        "reference": {"selftrain_plain_gold_after_3_iterations": 0.501, "base_bon_at_128": 0.570},
    }
    for arm, paths in arms.items():  # GRPO on gold, on pass/fail, on the proxy
        done = finished(paths, args.steps)
        if done:
            result[arm] = grpo_summary(done)
            result[f"{arm}_mean_curve"] = seed_mean_curve(result[arm])
    result["selftrain"] = selftrain_summary(st_paths)
    result["selftrain_mean_curve"] = seed_mean_curve(result["selftrain"])
    if hybrid_json.exists():
        result["hybrid"] = json.loads(hybrid_json.read_text())
        first = seeds[0]
        g_rows, s_rows = GRPORunDir(arms["grpo"][first]).rows(), RunDir(st_paths[first]).rows()
        last = {"base": g_rows[0], "grpo": g_rows[-1], "expert iteration": s_rows[-1]}
        if "grpo (pass/fail)" in result["hybrid"]:
            last["grpo (pass/fail)"] = GRPORunDir(arms["solved"][first]).rows()[-1]
        result["hybrid_training_tokens"] = {k: r["ledger"]["tokens"] for k, r in last.items()}
        result["hybrid_plain"] = {k: r["plain"] for k, r in last.items()}
        result["configurations"] = configurations(result)
        result["decision"] = decision(result["configurations"])
        result["decision_solved"] = decision(result["configurations"], "pass1")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    plot(result, out.with_suffix(".png"))
    report(result)
    print(f"wrote {out} and {out.with_suffix('.png')}")


def report(result: dict) -> None:
    for arm in ("grpo", "solved", "proxy", "selftrain"):
        for s, v in result.get(arm, {}).items():
            d = v["improvement_plain_gold"]
            last = v["curve"][-1]
            print(
                f"{arm} seed {s}: plain gold {last['plain']['gold']:.3f} pass@1 "
                f"{last['plain']['pass1']:.0%} (+{d['delta']:.3f} [{d['ci'][0]:.3f}, "
                f"{d['ci'][1]:.3f}]) after {last['ledger']['tokens']:,} training tokens; "
                f"bon {last['bon']['gold']:.3f} lookahead {last['lookahead']['gold']:.3f}"
            )
    for name, grid in result.get("hybrid", {}).items():
        for r in grid["rows"]:
            print(f"hybrid {name:17s} {r['method']:9s} @{r['budget']:4d}: gold {r['mean_gold']:.3f} "
                  f"solved {r['solved']:.0%} win vs bon {r['win_rate']:.2f} tokens "
                  f"{r['mean_tokens']:.0f}")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
