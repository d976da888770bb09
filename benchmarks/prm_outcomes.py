"""Do exact outcome labels teach the PRM to pick solved answers? (lm train-prm --outcomes)

The shipped Countdown PRM picks, among 64 samples of a held-out prompt, an answer that reaches
the target with numbers the prompt does not have about as often as a solved one. This
benchmark retrains the PRM on a copy of the shipped task models with `--outcomes K` (K extra
policy samples per training problem, labelled by the verifier's exact outcome; the Monte-Carlo
step labels are drawn first, so they are the shipped PRM's own) and runs train-prm's pick check
(150 held-out prompts x 64 samples, the same samples for both PRMs) on the new PRM and on the
shipped one. Writes benchmarks/results/prm_outcomes_<task>.json.

    python benchmarks/prm_outcomes.py                       # countdown, K=8: ~25 min on one core
    python benchmarks/prm_outcomes.py --work DIR --reuse    # report a DIR that train-prm filled
    python benchmarks/prm_outcomes.py --task countdown-hard --pick-only   # shipped PRM only, 1 min
    python benchmarks/prm_outcomes.py --outcomes 32 --json benchmarks/results/prm_outcomes32_countdown.json
    python benchmarks/prm_outcomes.py --outcomes 32 --steps 10000 --work benchmarks/.runs/prm_long \
        --json benchmarks/results/prm_outcomes32_long_countdown.json   # 4x the training
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from machine import machine_info

HERE = Path(__file__).parent


def pick(root: Path, samples: int) -> dict:
    """train-prm's held-out pick check on the PRM under `root` (the same samples for every PRM)."""
    from forethought.lm.artifacts.shipped import load_prm, task_of
    from forethought.lm.artifacts.train_prm import PRMConfig, held_out_pick
    from forethought.lm.generator import Generator

    gen = Generator.from_pretrained(str(root / "generator"), flag="out", batch_size=512)
    start = time.time()
    out = held_out_pick(load_prm(root), gen, task_of(root), PRMConfig(pick_samples=samples))
    return {**out, "seconds": round(time.time() - start, 1)}


def main() -> None:
    import json

    import torch

    from forethought.lm.artifacts.shipped import shipped_root
    from forethought.lm.artifacts.train_prm import PRMConfig, run_train_prm

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", default="countdown", help="built-in task (default: countdown)")
    ap.add_argument("--outcomes", type=int, default=8, help="outcome samples (default: 8)")
    ap.add_argument("--steps", type=int, default=PRMConfig.steps,
                    help=f"PRM optimiser steps (default: {PRMConfig.steps})")  # fmt: skip
    ap.add_argument("--work", type=Path, default=HERE / ".runs" / "prm_outcomes",
                    help="copy of the task models the new PRM is trained in")  # fmt: skip
    ap.add_argument("--reuse", action="store_true", help="report --work's prm.json, no training")
    ap.add_argument("--pick-only", action="store_true", help="the shipped PRM's pick check only")
    ap.add_argument("--json", type=Path, help="output (default: results/prm_outcomes_<task>.json)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.pick_only:
        shipped = json.loads((shipped_root(args.task) / "prm.json").read_text())
        report = {"machine": machine_info(), "task": args.task, "shipped": {
            "config": shipped["config"], "held_out": shipped["held_out"],
            "pick": pick(shipped_root(args.task), PRMConfig.pick_samples)}}  # fmt: skip
        _write(report, args.json or _default_json(args.task))
        return
    if not args.reuse:
        shutil.rmtree(args.work, ignore_errors=True)
        shutil.copytree(shipped_root(args.task), args.work, ignore=shutil.ignore_patterns("prm*"))
        config = PRMConfig(outcomes=args.outcomes, steps=args.steps)
        run_train_prm(args.work, config, half=False)
    trained = json.loads((args.work / "prm.json").read_text())
    shipped = json.loads((shipped_root(args.task) / "prm.json").read_text())
    samples = trained["config"]["pick_samples"]
    report = {
        "machine": machine_info(),
        "task": args.task,
        "with_outcomes": {
            **{k: trained[k] for k in ("config", "seconds", "held_out")},
            "pick": pick(args.work, samples),
        },
        "shipped": {
            "config": shipped["config"],
            "held_out": shipped["held_out"],
            "pick": pick(shipped_root(args.task), samples),
        },
    }
    _write(report, args.json or _default_json(args.task))


def _default_json(task: str) -> Path:
    return HERE / "results" / f"prm_outcomes_{task}.json"


def _write(report: dict, path: Path) -> None:
    from forethought.storage import write_json

    write_json(path, report)
    for name in [n for n in ("shipped", "with_outcomes") if n in report]:
        picked, held = report[name]["pick"], report[name]["held_out"]["all"]
        print(f"{name}: pick solved {picked['pick_solved']:.3f} (any {picked['any_solved']:.3f}), "
              f"on target unsolved {picked['pick_on_target_unsolved']:.3f}, "
              f"Brier {held['brier']:.4f}, ECE {held['ece']:.4f}")  # fmt: skip
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
