"""Off-policy evaluation: how well returns estimated from logs alone rank and match the truth.

Candidates: a uniformly random policy and SAC's policy at ten points of its training (the
behaviour run of benchmarks/offline.py, saved with --keep-policies), from about random to
expert. For each dataset, `forethought ope` estimates every candidate's discounted return
(gamma 0.99) with the model-based estimator and FQE; the truth is 10 real episodes on the
shared seeds. Reported per estimator: mean absolute error and Spearman rank correlation.

Writes benchmarks/results/ope.json and ope-<tier>.png. Needs the datasets and behaviour run of
benchmarks/offline.py (run that first; it makes them).

--selection asks the question a user with logs only faces: which of the policies trained
offline on an environment's medium tier (every MOPO variant and BC run that
benchmarks/offline.py left on disk) should be deployed? It estimates each from that dataset and
writes ope-selection-medium.json (Pendulum-v1) or ope-selection-hopper-medium.json (Hopper-v5).
On Hopper, with fewer runs on disk, a random policy and five behaviour-SAC snapshots join them
(random to expert), and the offline runs' own summary is kept apart.

    python benchmarks/ope.py                                  # ~10 min on 2 cores
    python benchmarks/ope.py --selection                      # Pendulum-v1, ~8 min
    python benchmarks/ope.py --selection Hopper-v5
    python benchmarks/ope.py --quick --out /tmp/ope.json      # smoke test (after offline --quick)
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from machine import machine_info

HERE = Path(__file__).parent
RESULTS = HERE / "results" / "ope.json"
STEPS = (500, 1000, 1500, 2000, 2500, 3000, 4000, 6000, 10000, 20000)
TIERS = ("medium-expert", "medium")
SELECTION = {  # env: (its medium dataset, the selection's results file)
    "Pendulum-v1": ("pendulum/medium-v0", "ope-selection-medium.json"),
    "Hopper-v5": ("hopper/medium-v0", "ope-selection-hopper-medium.json"),
}
# Hopper leaves fewer offline runs on disk than the 8 candidates an OPE measurement needs, so
# the selection there also scores a random policy and the behaviour SAC at these steps (its
# medium tier is step 97,500, its expert 100,000): a spread from random to expert. The offline
# runs' own summary is reported apart as well.
SELECTION_SNAPSHOTS = {"Pendulum-v1": (), "Hopper-v5": (10_000, 30_000, 60_000, 97_500, 100_000)}


def main() -> None:
    from rich.console import Console

    from forethought.tools.ope import OPEArgs, run_ope

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny settings (smoke test)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results JSON path")
    parser.add_argument(
        "--selection",
        nargs="?",
        const="Pendulum-v1",
        choices=sorted(SELECTION),
        help="estimate the policies trained offline on this environment's medium tier instead "
        "(default Pendulum-v1; writes ope-selection-*medium.json next to --out)",
    )
    args = parser.parse_args()
    root = args.out.parent if args.quick else HERE
    runs = root / (".runs-offline" if args.quick else ".runs/offline")
    os.environ["MINARI_DATASETS_PATH"] = str(root / ".datasets")
    if args.selection:
        select_among_offline_policies(args, runs / args.selection / "medium", args.selection)
        return
    policies_dir = runs / "Pendulum-v1" / "behaviour-sac" / "policies"
    snapshots = sorted(policies_dir.glob("step-*.pt"))
    wanted = {f"step-{s:09d}.pt" for s in STEPS}
    chosen = snapshots if args.quick else [p for p in snapshots if p.name in wanted]
    if len(chosen) < 2:
        raise SystemExit(
            f"no behaviour policies in {policies_dir}: run benchmarks/offline.py first"
        )
    results = {"machine": machine_info(), "quick": args.quick, "datasets": {}}
    for tier in TIERS:
        out = args.out.with_name(f"ope-{tier}.json")
        ope = OPEArgs(
            dataset=f"pendulum/{tier}-v0",
            policy=("random", *map(str, chosen)),
            out=out,
            quiet=True,
            fqe_steps=200 if args.quick else 10_000,
            true_episodes=2 if args.quick else 10,
        )
        results["datasets"][tier] = run_ope(ope, Console())
        out.unlink()  # folded into the one results file; the plot stays
        for name, summary in results["datasets"][tier]["summary"].items():
            print(f"{tier} {name}: {summary}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


def select_among_offline_policies(args, runs: Path, env: str) -> None:
    """Every policy benchmarks/offline.py trained on `env`'s medium tier, estimated from it."""
    from rich.console import Console

    from forethought.tools.ope import OPEArgs, run_ope, summarise

    trained = sorted(p for p in runs.iterdir() if p.is_dir() and p.name.startswith(("mopo", "bc-")))
    if len(trained) < 2:
        raise SystemExit(f"no offline runs in {runs}: run benchmarks/offline.py first")
    snapshots = runs.parent / "behaviour-sac" / "policies"
    extra = [snapshots / f"step-{step:09d}.pt" for step in SELECTION_SNAPSHOTS[env]]
    if args.quick and extra:  # the quick SAC run is too short for those steps: its last two
        extra = sorted(snapshots.glob("step-*.pt"))[-2:]
    if missing := [p for p in extra if not p.exists()]:
        raise SystemExit(f"{missing[0]} not found: run benchmarks/offline.py --envs {env} first")
    extra = ["random", *map(str, extra)] if extra else []
    dataset, results = SELECTION[env]
    ope = OPEArgs(
        dataset=dataset,
        policy=(*map(str, trained), *extra),
        out=args.out.with_name(results),
        quiet=True,
        fqe_steps=200 if args.quick else 10_000,
        true_episodes=2 if args.quick else 10,
    )
    report = {"machine": machine_info(), "quick": args.quick, **run_ope(ope, Console())}
    if extra:
        offline = set(map(str, trained))
        offline_rows = [r for r in report["policies"] if r["policy"] in offline]
        report["summary_offline_runs"] = summarise(offline_rows, ope.estimators)
    ope.out.write_text(json.dumps(report, indent=2))
    for name, summary in report["summary"].items():
        print(f"selection {name}: {summary}", flush=True)
    for name, summary in report.get("summary_offline_runs", {}).items():
        print(f"selection {name}, offline runs only: {summary}", flush=True)
    print(f"wrote {ope.out}")


if __name__ == "__main__":
    main()
