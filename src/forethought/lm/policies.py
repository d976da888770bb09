"""A trained policy as the generator of every search strategy (the hybrid of the two arms).

`load_trained_policy(RUN_DIR)` reads a GRPO run or a self-training run and returns the policy
of its newest finished checkpoint or iteration (or the one `step` names) together with the value
predictor that run refitted to that policy's own samples, so look-ahead, pruning and beam rank a
trained policy's partial answers with a predictor that has seen what this policy writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from forethought.errors import ConfigError
from forethought.lm.artifacts.finetune import load_policy
from forethought.lm.artifacts.shipped import CountdownSuite, load_rewards
from forethought.lm.generator import Generator
from forethought.lm.grpo import GRPORunDir
from forethought.lm.grpo.loop import checkpoint_policy
from forethought.lm.selftrain import RunDir as SelfTrainRunDir
from forethought.lm.tasks import countdown
from forethought.lm.value import RidgeValue, make_value
from forethought.storage import read_json


@dataclass
class TrainedPolicy:
    generator: Generator
    value: RidgeValue
    """The ridge predictor the run refitted to this policy's samples."""
    assets: Path
    """The Countdown models (proxy reward) the run was trained against."""
    label: str
    """e.g. 'grpo step 200' or 'selftrain iteration 3'."""


def load_trained_policy(
    path: Path, step: int | None = None, *, device: str = "cpu"
) -> TrainedPolicy:
    """The policy of a GRPO or self-training run directory (its newest finished checkpoint or
    iteration unless `step` names one; 0 is the starting policy), with its refitted predictor."""
    path = Path(path)
    config = path / "config.json"
    if not config.is_file():
        raise ConfigError("policy", f"{path} is not a run directory (no config.json in it)")
    data = read_json(config, "the run's configuration")
    if isinstance(data, dict) and "generations" in data:
        return _grpo_policy(path, step, device)
    if isinstance(data, dict) and "iterations" in data:
        return _selftrain_policy(path, step, device)
    raise ConfigError(
        "policy", f"{path} is neither a GRPO run (lm grpo) nor a self-training run (lm selftrain)"
    )


def _grpo_policy(path: Path, step: int | None, device: str) -> TrainedPolicy:
    run, cfg = GRPORunDir.open(path, lock=False)
    steps = [s for s in run.finished_steps() if s == 0 or run.checkpoint(s).is_dir()]
    step = _pick("checkpoint", steps, step, path)
    generator = checkpoint_policy(cfg, run, step, device=device)
    value = make_value(cfg.value, generator, run.eval_dir(step) / "value.npz")
    return TrainedPolicy(generator, value, cfg.assets_dir, f"grpo step {step}")


def _selftrain_policy(path: Path, step: int | None, device: str) -> TrainedPolicy:
    run, cfg = SelfTrainRunDir.open(path, lock=False)
    k = _pick("iteration", list(range(run.finished())), step, path)
    adapter = run.iter_dir(k) / "adapter" if k > 0 else None
    generator = load_policy(str(cfg.assets_dir / "generator"), adapter, device=device)
    value = make_value(cfg.value, generator, run.iter_dir(k) / "value.npz")
    return TrainedPolicy(generator, value, cfg.assets_dir, f"selftrain iteration {k}")


def _pick(what: str, finished: list[int], wanted: int | None, path: Path) -> int:
    if not finished:
        raise ConfigError("policy", f"{path} has no finished {what} yet; run or resume it first")
    if wanted is None:
        return finished[-1]
    if wanted not in finished:
        raise ConfigError(
            "policy_step",
            f"{path} has no finished {what} {wanted}; finished: {', '.join(map(str, finished))}",
        )
    return wanted


def suite_with_policy(policy: TrainedPolicy, *, device: str = "cpu") -> CountdownSuite:
    """The Countdown suite of the run's assets with the trained policy as generator and its
    refitted predictor as the value of every search."""
    proxy, gold = load_rewards(policy.assets, device=device)
    tokenizer = policy.generator.tokenizer
    delimiters = {tokenizer.convert_tokens_to_ids(countdown.STEP_DELIMITER)}
    return CountdownSuite(policy.generator, proxy, gold, policy.value, delimiters)
