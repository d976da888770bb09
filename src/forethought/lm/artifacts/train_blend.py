"""Fit the judge blend (`--final blend`) on policy samples of prompts of its own.

    1. draw `samples` answers per training prompt from the generator (problem seed 32,000);
    2. score each with the learned judges (proxy, value model, PRM last step, the generator's
       mean token log-probability) and with the gold verifier;
    3. fit the blend's weights (`forethought.lm.blend.fit_blend`; a linear score plus a small
       tanh layer): the softmax pick within each prompt's pool with the highest expected gold
       score;
    4. check it on train-prm's pick-check prompts (problem seed 30,000, the same samples
       benchmarks/judges.py draws), next to each judge alone and the mean of their ranks.

Writes root/blend.json: the weights, the config, the timings and the check.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from forethought.errors import ConfigError
from forethought.lm.blend import BLEND_JUDGES, JudgeBlend, fit_blend
from forethought.lm.budget import Account, Budget
from forethought.lm.generator import Candidate

# Problem seeds (+ --seed): the training prompts are never the search benchmark's (15,000 for
# development, 20,000 held out) nor the check's, which are train-prm's pick check's and
# benchmarks/judges.py's.
TRAIN_PROBLEM_SEED = 32_000
CHECK_PROBLEM_SEED = 30_000


@dataclass(frozen=True)
class BlendConfig:
    """Sizes of the blend's training and check data."""

    problems: int = 300
    """Training prompts."""
    samples: int = 64
    """Policy samples per prompt (the pool a pick chooses from)."""
    check_problems: int = 150
    """Check prompts (train-prm's pick-check prompts)."""
    steps: int = 500
    """Full-batch optimiser steps."""
    hidden: int = 8
    """Tanh units added to the linear score (0: a linear blend)."""
    seed: int = 0
    """Offset of the problem and sampling seeds."""


def draw_pools(suite, prompts: list[str], n: int, seed: int) -> list[Candidate]:
    """n policy samples per prompt, all prompts in one batch, from torch seed `seed`."""
    torch.manual_seed(seed)
    unlimited = Account(Budget(max_tokens=2**62))
    max_new = suite.task.max_new_tokens
    rows = [c for p in prompts for c in suite.generator.start(p, n, max_new)]
    return suite.generator.extend(rows, max_new, unlimited)


def judge_features(suite, answers: list[Candidate], judges=BLEND_JUDGES) -> np.ndarray:
    """answers x judges: each learned judge's score of each answer."""
    from forethought.lm.prm import AggregatedPRM
    from forethought.lm.search.common import policy_likelihood

    if suite.prm is None and "prm-last" in judges:
        raise ConfigError("out", "the blend reads the PRM; run `forethought lm train-prm` first")
    scorers = {
        "proxy": suite.proxy,
        "value": suite.value,
        "prm-last": lambda a: AggregatedPRM(suite.prm, "last")(a),
        "policy": policy_likelihood,
    }
    return np.stack([np.asarray(scorers[j](answers), dtype=np.float64) for j in judges], -1)


def pools(suite, problems: int, problem_seed: int, samples: int, sample_seed: int) -> dict:
    """Features, gold and solved (prompts x samples) of freshly drawn pools."""
    task = suite.task
    prompts = [p.prompt for p in task.make_problems(problems, seed=problem_seed)]
    answers = draw_pools(suite, prompts, samples, sample_seed)
    shape = (len(prompts), samples)
    return {
        "features": judge_features(suite, answers).reshape(*shape, -1),
        "gold": np.asarray(suite.gold(answers), dtype=np.float64).reshape(shape),
        "solved": np.array([task.solved(a.prompt, a.text) for a in answers]).reshape(shape),
    }


def pick_quality(scores: np.ndarray, data: dict) -> dict:
    """The fraction of prompts whose top-scored answer is solved, and its mean gold score."""
    rows, best = np.arange(len(scores)), np.asarray(scores).argmax(1)
    return {
        "pick_solved": float(data["solved"][rows, best].mean()),
        "pick_gold": float(data["gold"][rows, best].mean()),
    }


def check(blend: JudgeBlend, data: dict) -> dict:
    """The blend's pick next to each judge's alone and the mean of their within-pool ranks."""
    from scipy.stats import rankdata

    x = data["features"]
    rows = {
        "blend": pick_quality(blend.score(x.reshape(-1, x.shape[2])).reshape(x.shape[:2]), data)
    }
    for j, name in enumerate(blend.judges):
        rows[name] = pick_quality(x[:, :, j], data)
    rows["rank mean"] = pick_quality(rankdata(x, axis=1).mean(2), data)
    rows["any solved"] = {"pick_solved": float(data["solved"].any(1).mean())}
    return rows


def run_train_blend(root: Path, cfg: BlendConfig, *, log=print) -> dict:
    """Fit the blend on the models under `root`, check it, and write root/blend.json."""
    from forethought.lm.artifacts.shipped import load_countdown
    from forethought.storage import write_json

    suite = load_countdown(root)
    suite.generator.batch_size = 512  # as train-prm's pick check draws: the same samples
    times: dict[str, float] = {}
    start = time.time()
    train = pools(
        suite, cfg.problems, TRAIN_PROBLEM_SEED + cfg.seed, cfg.samples, 42_000 + cfg.seed
    )
    times["train_data_s"] = round(time.time() - start, 1)
    log(
        f"blend data: {cfg.problems} prompts x {cfg.samples} samples in {times['train_data_s']:.0f}s"
    )
    blend = fit_blend(
        train["features"], train["gold"], BLEND_JUDGES, hidden=cfg.hidden, steps=cfg.steps
    )
    start = time.time()
    held = pools(
        suite, cfg.check_problems, CHECK_PROBLEM_SEED + cfg.seed, cfg.samples, 40_000 + cfg.seed
    )
    times["check_s"] = round(time.time() - start, 1)
    report = {
        "task": suite.task.name,
        "blend": blend.to_dict(),
        "config": asdict(cfg),
        "seconds": times,
        "train_fit": check(blend, train),
        "check": check(blend, held),
        "made_by": "forethought lm train-blend --out DIR (config above)",
    }
    write_json(Path(root) / "blend.json", report)
    return report
