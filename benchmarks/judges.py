"""Which learned judge picks a solved answer among many, and do two judges pick better than one?

The step-level search's final pick is where the learned methods lose to the rule-gated control
(README, "Why the PRM is a weak final judge"). This benchmark isolates the pick from the search:
the same 64 policy samples for each of 150 held-out prompts (train-prm's pick check: prompts
seed 30,000, sampling seed 40,000) are picked by every final judge of `lm compare --final` and
by the generator's least likely token ('policy-min', measured here only), by combinations of
learned judges (the mean of their within-prompt ranks), by the judge blend
(`--final blend`, fitted by `lm train-blend` on prompts of its own), and by the rule-gated
control. Per judge: the fraction of prompts whose pick is solved, the mean gold score of the
pick (the partial credit the search benchmark's win rates compare), how often the pick ends
on the target unsolved, and how well each judge tells those from the solved ones. Writes
benchmarks/results/judges_<task>.json.

    python benchmarks/judges.py                          # countdown, ~3 min on one core
    python benchmarks/judges.py --task countdown-hard
    python benchmarks/judges.py --prm benchmarks/.runs/prm_long --json /tmp/judges_long.json
    python benchmarks/judges.py --assets DIR --json /tmp/judges_dir.json   # other models
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy.stats import rankdata

from machine import machine_info

HERE = Path(__file__).parent
SINGLE = ("proxy", "value", "prm-last", "prm-min", "prm-prod", "policy", "policy-min")
COMBINED = (("value", "prm-last"), ("proxy", "prm-last"), ("proxy", "value"))
COMBINED += (("proxy", "value", "prm-last"), ("proxy", "policy"))
COMBINED += (("proxy", "value", "prm-last", "policy"),)
COMBINED += (("proxy", "policy-min"), ("proxy", "policy", "policy-min"))
COMBINED += (("proxy", "value", "prm-last", "policy", "policy-min"),)
CONTROL = "legal+proxy"


def judge_scores(suite, answers: list, shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """Every single judge's scores (prompts x samples), and the combinations' rank means."""
    from forethought.lm.compare import final_scorer
    from forethought.lm.search.common import policy_likelihood, policy_weakest_token

    free = {"policy": policy_likelihood, "policy-min": policy_weakest_token}  # sampling scored
    scores = {}
    for name in (*SINGLE, CONTROL):
        start = time.time()
        judge = free[name] if name in free else final_scorer(suite, name)
        scores[name] = np.asarray(judge(answers)).reshape(shape)
        print(f"{name}: scored {len(answers)} answers in {time.time() - start:.0f}s", flush=True)
    ranks = {name: rankdata(scores[name], axis=1) for name in SINGLE}  # ties share a rank
    for combo in COMBINED:
        scores["+".join(combo)] = np.mean([ranks[name] for name in combo], axis=0)
    if suite.blend is not None:  # fitted on prompts of its own (lm train-blend), not these
        features = np.stack([scores[name] for name in suite.blend.judges], -1)
        scores["blend"] = suite.blend.score(features.reshape(-1, features.shape[2])).reshape(shape)
    return scores


def vote_pick(answers: list, weights: np.ndarray, final_answer) -> np.ndarray:
    """Per prompt, the sample of the final answer with the largest summed weight (the largest
    single weight within it): a weighted majority vote, as `--final vote` does."""
    prompts, n = weights.shape
    picks = np.zeros(prompts, dtype=int)
    for i in range(prompts):
        totals: dict = {}
        for j in range(n):
            key = final_answer(answers[i * n + j].text)
            totals[key] = totals.get(key, 0.0) + weights[i, j]
        best = max(totals, key=totals.get)
        members = [j for j in range(n) if final_answer(answers[i * n + j].text) == best]
        picks[i] = max(members, key=lambda j: weights[i, j])
    return picks


def main() -> None:
    from forethought.lm.artifacts.shipped import load_countdown, load_prm, shipped_root
    from forethought.runtime import configure_cpu
    from forethought.storage import write_json

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", default="countdown", help="built-in task (default: countdown)")
    ap.add_argument("--assets", type=Path, help="models dir to load instead of the shipped one")
    ap.add_argument("--prm", type=Path, help="models dir whose prm/ replaces the shipped PRM")
    ap.add_argument("--prompts", type=int, default=150, help="held-out prompts (default: 150)")
    ap.add_argument("--samples", type=int, default=64, help="samples per prompt (default: 64)")
    ap.add_argument("--json", type=Path, help="output (default: results/judges_<task>.json)")
    args = ap.parse_args()
    configure_cpu(1)
    suite = load_countdown(args.assets or shipped_root(args.task))
    suite.generator.batch_size = 512  # as train-prm's pick check draws: the same samples
    if args.prm is not None:
        suite.prm = load_prm(args.prm)
    report = {
        "machine": machine_info(),
        "task": suite.task.name,
        "assets": str(args.assets or shipped_root(args.task)),
        "prm": str(args.prm or args.assets or shipped_root(args.task)),
        **measure(suite, args.prompts, args.samples),
    }
    out = args.json or HERE / "results" / f"judges_{suite.task.name}.json"
    write_json(out, report)
    print(f"any solved {report['any_solved']:.3f}, random pick {report['random_pick_solved']:.3f}")
    print("legality AUROC (on-target answers):", report["legality_auroc"])
    for name, row in report["judges"].items():
        print(f"{name:24s} solved {row['pick_solved']:.3f}  gold {row['pick_gold']:.3f}  "
              f"on target unsolved {row['pick_on_target_unsolved']:.3f}")  # fmt: skip
    print(f"wrote {out}")


def measure(suite, prompts: int, samples: int) -> dict:
    """Draw the samples, pick with every judge, and score each judge's picks."""
    from forethought.lm.artifacts.train_blend import draw_pools
    from forethought.lm.tasks import countdown

    task = suite.task
    texts = [p.prompt for p in task.make_problems(prompts, seed=30_000)]
    start = time.time()
    answers = draw_pools(suite, texts, samples, seed=40_000)
    shape = (len(texts), samples)
    solved = np.array([task.solved(a.prompt, a.text) for a in answers]).reshape(shape)
    gold = np.asarray(suite.gold(answers)).reshape(shape)
    targets = [countdown.parse_prompt(a.prompt)[1] for a in answers]
    finals = [countdown.final_answer(a.text) for a in answers]
    on_target = np.array([f == t for f, t in zip(finals, targets, strict=True)]).reshape(shape)
    scores = judge_scores(suite, answers, shape)
    picks = {name: s.argmax(1) for name, s in scores.items()}
    picks["vote (prm-last)"] = vote_pick(answers, scores["prm-last"], countdown.final_answer)
    rows = np.arange(len(texts))
    return {
        "prompts": len(texts),
        "samples": samples,
        "any_solved": float(solved.any(1).mean()),
        "random_pick_solved": float(solved.mean()),
        "best_gold": float(gold.max(1).mean()),
        "seconds": round(time.time() - start, 1),
        "judges": {
            name: {
                "pick_solved": float(solved[rows, pick].mean()),
                "pick_gold": float(gold[rows, pick].mean()),
                "pick_on_target_unsolved": float((on_target & ~solved)[rows, pick].mean()),
                "uses_rule": name == CONTROL,
            }
            for name, pick in picks.items()
        },
        "legality_auroc": legality_auroc(scores, solved, on_target),
    }


def legality_auroc(scores: dict, solved: np.ndarray, on_target: np.ndarray) -> dict:
    """Among the answers that end on the target, how well each single judge ranks the solved
    ones (legal steps) above the unsolved (a number the prompt lacks, or one used twice): the
    AUROC over all prompts' such answers."""
    from sklearn.metrics import roc_auc_score

    y = solved[on_target]
    return {name: float(roc_auc_score(y, scores[name][on_target])) for name in SINGLE}


if __name__ == "__main__":
    main()
