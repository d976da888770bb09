"""Is a method's steps-to-threshold on Pendulum-v1 worse than plain MPC's, seed by seed?

Reads every Pendulum-v1 run in benchmarks/results/sample_efficiency*.json and pairs each method
with plain MPC (`mpc`) on the seeds both ran. Per method: the per-seed difference in steps to
the threshold (positive: slower than MPC), how many seeds are behind / the same / ahead, the
mean difference with a 95% paired-bootstrap interval, and the two-sided sign test of behind
against ahead. `mpc-restreamed` (MPC with its random stream moved, nothing else) is the
control: what the same comparison shows by chance alone. And what comes after: per seed the
lowest evaluation from the first crossing on, and on how many seeds the method fell back
below the threshold, against MPC on the same seeds (runs that stop at the threshold have no
after and are left out of that count).

    python benchmarks/paired_steps.py        # seconds; writes benchmarks/results/paired_steps.json

A run that never reached the threshold counts as reaching it one evaluation after its budget
(flagged `censored`).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from machine import machine_info

HERE = Path(__file__).parent
RESULTS = HERE / "results"
ENV, BASELINE, THRESHOLD = "Pendulum-v1", "mpc", -200.0
BOOTSTRAP = 10_000


def collect(paths: list[Path]) -> dict[str, dict[int, dict]]:
    """method -> seed -> {steps, censored, file}; a (method, seed) found twice must agree."""
    found: dict[str, dict[int, dict]] = {}
    for path in paths:
        runs = json.loads(path.read_text()).get("envs", {}).get(ENV, {}).get("runs", {})
        for method, seeds in runs.items():
            for run in seeds:
                steps, censored = run["steps_to_threshold"], False
                if steps is None:
                    interval = run["curve_steps"][0] if run["curve_steps"] else 0
                    steps, censored = run["budget"] + interval, True
                entry = {"steps": steps, "censored": censored, "file": path.name,
                         "lowest_after": lowest_after(run)}  # fmt: skip
                earlier = found.setdefault(method, {}).get(run["seed"])
                if earlier is not None and earlier["steps"] != steps:
                    raise SystemExit(
                        f"{method} seed {run['seed']}: {earlier['steps']} steps in "
                        f"{earlier['file']} but {steps} in {path.name}"
                    )
                found[method].setdefault(run["seed"], entry)
    return found


def lowest_after(run: dict) -> float | None:
    """The lowest evaluation at or after the first crossing (None: never crossed, or the run
    stopped there)."""
    if run["steps_to_threshold"] is None or run.get("stopped_at_threshold"):
        return None
    after = [r for t, r in zip(run["curve_steps"], run["curve_returns"], strict=True)
             if t >= run["steps_to_threshold"]]  # fmt: skip
    return float(min(after))


def fell_back(runs: dict[int, dict], base: dict[int, dict], seeds: list[int]) -> dict:
    """Seeds whose evaluations fell below the threshold again after the first crossing, for
    the method and for MPC, over the seeds where both have an after."""
    both = [s for s in seeds if None not in (runs[s]["lowest_after"], base[s]["lowest_after"])]
    return {
        "lowest_after": [runs[s]["lowest_after"] for s in seeds],
        "mpc_lowest_after": [base[s]["lowest_after"] for s in seeds],
        "fell_back": sum(runs[s]["lowest_after"] < THRESHOLD for s in both),
        "mpc_fell_back": sum(base[s]["lowest_after"] < THRESHOLD for s in both),
        "lower_after_than_mpc": sum(
            runs[s]["lowest_after"] < base[s]["lowest_after"] for s in both
        ),
        "seeds_with_after": len(both),
    }


def sign_test(behind: int, ahead: int) -> float:
    """Two-sided exact binomial p-value of `behind` against `ahead` (ties dropped)."""
    n = behind + ahead
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(behind, ahead) + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired(differences: np.ndarray, seed: int = 0) -> dict:
    """Counts, mean difference and its 95% percentile-bootstrap interval over seeds."""
    rng = np.random.default_rng(seed)
    means = rng.choice(differences, (BOOTSTRAP, len(differences))).mean(axis=1)
    behind, ahead = int((differences > 0).sum()), int((differences < 0).sum())
    return {
        "behind": behind,
        "same": int((differences == 0).sum()),
        "ahead": ahead,
        "mean_difference": float(differences.mean()),
        "mean_difference_95": [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))],
        "sign_test_p": sign_test(behind, ahead),
    }


def compare(found: dict[str, dict[int, dict]]) -> dict[str, dict]:
    base = found[BASELINE]
    out = {}
    for method, runs in sorted(found.items()):
        if method == BASELINE:
            continue
        seeds = sorted(set(runs) & set(base))
        if not seeds:
            continue
        differences = np.array([runs[s]["steps"] - base[s]["steps"] for s in seeds], float)
        out[method] = {
            "seeds": seeds,
            "steps": [runs[s]["steps"] for s in seeds],
            "mpc_steps": [base[s]["steps"] for s in seeds],
            "censored": [s for s in seeds if runs[s]["censored"]],
            "files": sorted({runs[s]["file"] for s in seeds}),
            **paired(differences),
            **fell_back(runs, base, seeds),
        }
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, default=RESULTS / "paired_steps.json", help="default %(default)s"
    )
    args = parser.parse_args()
    paths = sorted(RESULTS.glob("sample_efficiency*.json"))
    found = collect(paths)
    if BASELINE not in found:
        raise SystemExit(f"no {BASELINE} runs on {ENV} in {RESULTS}")
    result = {
        "benchmark": "paired_steps",
        "machine": machine_info(),
        "env": ENV,
        "baseline": BASELINE,
        "baseline_steps": {s: r["steps"] for s, r in sorted(found[BASELINE].items())},
        "methods": compare(found),
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    width = max(map(len, result["methods"]), default=0)
    for method, row in result["methods"].items():
        low, high = row["mean_difference_95"]
        print(
            f"{method:{width}s} seeds {len(row['seeds'])}: behind {row['behind']} same {row['same']} "
            f"ahead {row['ahead']}; mean {row['mean_difference']:+.0f} steps "
            f"[{low:+.0f}, {high:+.0f}]; sign test p={row['sign_test_p']:.2f}; fell back "
            f"{row['fell_back']} (MPC {row['mpc_fell_back']}) of {row['seeds_with_after']}"
        )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
