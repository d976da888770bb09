"""A 6-trial sweep (2 methods x 3 seeds on Pendulum-v1) in a process pool against the same six
runs made one after another in one process: the same per-trial evaluation returns (checked
point by point) and the wall-clock time of each, every run with --threads 1.

The methods: MPC (iCEM, 3 episodes of 200 steps, the first random) and SAC (1,000 steps, zoo
settings), each evaluated on 5 fixed seeds. Fresh runs every time (timings need them), under
benchmarks/.runs/sweep/ (ignored by git).

    python benchmarks/sweep.py              # about 7 minutes on 2 cores
    python benchmarks/sweep.py --quick      # 50-step episodes and small models, about 2 minutes
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

from rich.console import Console

from forethought.config import TrainConfig
from forethought.sweep import SweepArgs, run_sweep
from forethought.sweep.kinds import TRAIN
from forethought.trainers import train
from machine import machine_info

HERE = Path(__file__).parent
RESULTS = HERE / "results" / "sweep.json"
RUNS = HERE / ".runs" / "sweep"

BASE = "--env Pendulum-v1 --eval-episodes 5 --threads 1"
QUICK_BASE = (
    "--env Pendulum-v1 --eval-episodes 2 --threads 1 --max-episode-steps 50 "
    "--model.ensemble-size 2 --model.hidden-size 32 --rollout.particles 2 --planning.population 100 "
    "--planning.iterations 2"
)
VARIANTS = '[[variants]]\nalgo = "mpc"\nepisodes = 3\n\n[[variants]]\nalgo = "sac"\nsteps = {sac}\n'


def write_spec(path: Path, quick: bool, seeds: list[int]) -> Path:
    base = QUICK_BASE if quick else BASE
    text = f"base_args = {json.dumps(base)}\nseeds = {json.dumps(seeds)}\n\n"
    path.write_text(text + VARIANTS.format(sac=300 if quick else 1000))
    return path


def one_by_one(trials: list[dict], runs: Path) -> dict[str, dict]:
    """The sweep's trials as plain `train` calls in this process, one after another."""
    out = {}
    for trial in trials:
        config = TrainConfig.from_dict({**trial["config"], "out": str(runs / trial["name"])})
        start, cpu = time.perf_counter(), time.process_time()
        history = train(config).history
        out[trial["name"]] = {
            "seconds": time.perf_counter() - start,
            "cpu_seconds": time.process_time() - cpu,
            "evaluations": TRAIN.curve(history),
        }
    return out


def compare(records: list[dict], alone: dict[str, dict]) -> list[dict]:
    """Each trial's returns and times in the sweep and on its own."""
    per_trial = []
    for record in records:
        single = alone[record["name"]]
        per_trial.append(
            {
                "trial": record["name"],
                "group": record["group"],
                "seed": record["seed"],
                "final_eval_return_sweep": record["final_score"],
                "final_eval_return_sequential": single["evaluations"]["y"][-1],
                "every_evaluation_identical": record["evaluations"] == single["evaluations"],
                "seconds_in_sweep": record["seconds"],
                "seconds_sequential": single["seconds"],
                "cpu_seconds_in_sweep": record["cpu_seconds"],
                "cpu_seconds_sequential": single["cpu_seconds"],
            }
        )
    return per_trial


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="short episodes, small models")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=None, help=f"results JSON (default {RESULTS})")
    args = parser.parse_args()
    out = args.out or (RUNS / "quick.json" if args.quick else RESULTS)
    console = Console()
    runs = RUNS / ("quick" if args.quick else "full")
    shutil.rmtree(runs, ignore_errors=True)
    runs.mkdir(parents=True)
    spec = write_spec(runs / "spec.toml", args.quick, args.seeds)
    load_before = os.getloadavg()

    start = time.perf_counter()
    sweep = run_sweep(SweepArgs(spec=spec, out=runs / "pool", workers=args.workers), console)
    pool_seconds = time.perf_counter() - start
    trials = json.loads((runs / "pool" / "sweep.json").read_text())["trials"]
    console.print(f"sweep: {pool_seconds:.0f} s; now the same {len(trials)} runs one by one")
    start = time.perf_counter()
    alone = one_by_one(trials, runs / "sequential")
    sequential_seconds = time.perf_counter() - start

    per_trial = compare(sweep.records, alone)
    results = json.loads(sweep.results_path.read_text())
    document = {
        "what": "6-trial sweep (mpc 3 episodes, sac 1000 steps; 3 seeds) on Pendulum-v1: "
        f"process pool of {args.workers} vs sequential, --threads 1 per run",
        "quick": args.quick,
        "spec": spec.read_text(),
        "machine": machine_info(),
        "load_average_before": list(load_before),  # the machine is shared: other work shows here
        "load_average_after": list(os.getloadavg()),
        "workers": args.workers,
        "pool_wall_seconds": pool_seconds,
        "sequential_wall_seconds": sequential_seconds,
        "speedup": sequential_seconds / pool_seconds,
        "all_identical": all(t["every_evaluation_identical"] for t in per_trial),
        "trials": per_trial,
        "groups": results["groups"],
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2) + "\n")
    console.print(
        f"pool ({args.workers} workers): {pool_seconds:.0f} s, sequential: "
        f"{sequential_seconds:.0f} s (x{document['speedup']:.2f}); identical returns: "
        f"{document['all_identical']}; written to {out}"
    )
    return 0 if document["all_identical"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
