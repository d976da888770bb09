"""Choose MCTS's tree shape on development prompts: does a wider or narrower tree win more often?

Runs `lm_search.py --part steps` once per setting (Best-of-N and MCTS with the value model as
process scorer, on prompts of problem seed 15000, which the held-out benchmark never uses), then
writes benchmarks/results/lm_mcts_settings_<task>.json: for each setting and budget, every final
pick's win rate against plain Best-of-N and its mean gold, next to the rule-gated control.
Each setting's full output lands in --runs and is read back on a rerun, so a killed sweep resumes.

    python benchmarks/lm_mcts_settings.py            # 9 settings x 50 prompts, ~50 min on one core
    python benchmarks/lm_mcts_settings.py --settings mix_share=0.25,mix_share=0.5 \
        --out benchmarks/results/lm_mix_settings_countdown.json   # Best-of-N + MCTS pools
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from machine import machine_info

HERE = Path(__file__).parent
SETTINGS = {  # name: overrides of compare.SearchSettings (base: the shipped defaults)
    "base": [],
    "widen=2": ["widen=2"],
    "widen=4": ["widen=4"],
    "widen=0.5": ["widen=0.5"],
    "alpha=0.75": ["alpha=0.75"],
    "alpha=0.25": ["alpha=0.25"],
    "c_puct=1.0": ["c_puct=1.0"],
    "c_puct=0.25": ["c_puct=0.25"],
    "backup=max": ["backup=max"],
    "mix_share=0.25": ["mix_share=0.25"],
    "mix_share=0.5": ["mix_share=0.5"],
}
DEFAULT_SETTINGS = [name for name in SETTINGS if not name.startswith("mix")]
"""The mix_share settings search with 'mix' (Best-of-N on that share, MCTS on the rest) and
run only when named in --settings."""


def search_of(overrides: list[str]) -> str:
    """The search a setting runs: 'mix(value)' for a mix_share, else 'mcts(value)'."""
    return "mix(value)" if any(o.startswith("mix_share") for o in overrides) else "mcts(value)"


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--task", default="countdown", help="built-in task (default %(default)s)")
    ap.add_argument("--prompts", type=int, default=50, help="default %(default)s")
    ap.add_argument("--problem-seed", type=int, default=15_000, help="default %(default)s")
    ap.add_argument("--budgets", default="256,1024", help="default %(default)s")
    ap.add_argument("--runs", default=str(HERE / ".runs" / "mcts_settings"))
    ap.add_argument(
        "--settings",
        default=",".join(DEFAULT_SETTINGS),
        help=f"comma-separated, of: {', '.join(SETTINGS)} (default: all but the mix_share ones)",
    )
    ap.add_argument(
        "--out", help="results file (default benchmarks/results/lm_mcts_settings_<task>.json)"
    )
    args = ap.parse_args()
    args.settings = [name.strip() for name in args.settings.split(",") if name.strip()]
    unknown = [name for name in args.settings if name not in SETTINGS]
    if unknown or not args.settings:
        ap.error(f"--settings: choose from {', '.join(SETTINGS)}; got {unknown or 'none'}")
    return args


def run_setting(args, name: str, overrides: list[str], out: Path) -> dict:
    """One setting's lm_search output, run now unless `out` already holds it."""
    if not out.exists():
        command = [
            sys.executable, str(HERE / "lm_search.py"), "--part", "steps", "--task", args.task,
            "--prompts", str(args.prompts), "--problem-seed", str(args.problem_seed),
            "--budgets", args.budgets, "--searches", f"bon,{search_of(overrides)}",
            "--out", str(out),
        ]  # fmt: skip
        for pair in overrides:
            command += ["--set", pair]
        print(f"{name}: running", flush=True)
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return json.loads(out.read_text())


def summarize(name: str, data: dict) -> list[dict]:
    rows = []
    for budget in data["budgets"]:
        at = [r for r in data["budget_sweep"] if r["budget"] == budget]
        control = next(r for r in at if r["method"] == "bon [legal+proxy]")
        picks = {
            r["method"]: {"win_rate_vs_bon": r["win_rate"], "mean_gold": r["mean_gold"]}
            for r in at
            if r["method"].startswith(search_of(data.get("overrides", [])))
            and "legal" not in r["method"]
        }
        best = max(picks, key=lambda m: (picks[m]["win_rate_vs_bon"], picks[m]["mean_gold"]))
        rows.append(
            {
                "setting": name,
                "overrides": data.get("overrides", []),
                "budget": budget,
                "best_pick": best,
                **picks[best],
                "bon_gold": next(r for r in at if r["method"] == "bon")["mean_gold"],
                "control_gold": control["mean_gold"],
                "picks": picks,
                "seconds": data["timings_s"].get(search_of(data.get("overrides", []))),
            }
        )
    return rows


def main() -> int:
    args = parse_args()
    runs = Path(args.runs)
    runs.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.settings:
        data = run_setting(args, name, SETTINGS[name], runs / f"{name}.json")
        rows += summarize(name, data)
        for r in rows[-len(data["budgets"]) :]:
            print(
                f"{name:12s} {r['budget']:5d} best {r['best_pick']:24s} "
                f"win {r['win_rate_vs_bon']:.2f} gold {r['mean_gold']:.3f} "
                f"(Best-of-N {r['bon_gold']:.3f}, control {r['control_gold']:.3f})"
            )
    result = {
        "machine": machine_info(),
        "task": args.task,
        "prompts": args.prompts,
        "problem_seed": args.problem_seed,
        "budgets": args.budgets,
        "rows": rows,
    }
    out = Path(args.out or HERE / "results" / f"lm_mcts_settings_{args.task}.json")
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
