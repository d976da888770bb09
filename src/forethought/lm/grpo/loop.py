"""GRPO on a verifiable reward: the model-free arm of the language track.

Read top to bottom in `GRPORunner.run_all`:

  evaluate    the starting policy on the held-out prompts (step 0), exactly as self-training
              evaluates an iteration: plain sampling, Best-of-N and look-ahead at a fixed budget
              (the look-ahead's value predictor refitted to this policy's own samples)
  train       TRL's GRPOTrainer: every step samples --generations completions for each of
              --prompts-per-step training prompts, scores them with the reward, and raises the
              likelihood of completions that beat their group's mean (group-relative advantage)
  checkpoint  every --eval-every steps: the Trainer's checkpoint, then that policy evaluated as
              at step 0, with the compute ledger up to that step

The policy-gradient loop is TRL's; this module chooses its settings, books every rollout token
and reward call in a `TrainingLedger`, and keeps the run directory consistent (grpo/rundir.py).
The evaluation runs inside the Trainer's save callback under `torch.random.fork_rng`, so the
training stream of random numbers is the same whether or not (and however often) it evaluates,
and a resumed run (the Trainer restores the RNG state saved with the checkpoint) computes what
an uninterrupted one would have.
"""

from __future__ import annotations

import io
import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from transformers import TrainerCallback

from forethought.lm.artifacts.finetune import load_base, load_policy, lora_model, quiet_renames
from forethought.lm.artifacts.shipped import check_dir, load_rewards
from forethought.lm.budget import TrainingLedger
from forethought.lm.generator import Candidate, Generator
from forethought.lm.grpo.config import REWARDS, GRPOConfig
from forethought.lm.grpo.rundir import GRPORunDir
from forethought.lm.rewards import ClassifierReward, FunctionReward, Scorer
from forethought.lm.selftrain.config import step_seed
from forethought.lm.selftrain.evaluation import evaluate_policy
from forethought.lm.selftrain.loop import make_prompts, refit_value
from forethought.lm.tasks import countdown
from forethought.lm.value import make_value
from forethought.storage import atomic_write_bytes, atomic_write_text

TRAIN_LOG_KEYS = {
    "reward": "reward",
    "reward_std": "reward_std",
    "completions/mean_length": "mean_length",
    "entropy": "entropy",
    "kl": "kl",
    "grad_norm": "grad_norm",
    "loss": "loss",
}
"""TRL's per-step statistics kept in train_log.jsonl, under shorter names."""


class BookedReward:
    """A `Scorer` as a TRL reward function; every completion it scores is booked in `ledger`
    (its tokens and one reward call) unless it only watches (`booked=False`)."""

    def __init__(self, scorer: Scorer, name: str, ledger: TrainingLedger, *, booked: bool = True):
        self.scorer, self.__name__, self.ledger, self.booked = scorer, name, ledger, booked

    def __call__(self, prompts, completions, completion_ids, **_) -> list[float]:
        if self.booked:
            self.ledger.add(
                tokens=sum(len(ids) for ids in completion_ids), reward_calls=len(prompts)
            )
        cands = [Candidate(p, (), text=c) for p, c in zip(prompts, completions, strict=True)]
        return self.scorer(cands).tolist()


def solved(prompt: str, response: str) -> float:
    """The verifier without partial credit: 1.0 for a solved answer, 0.0 otherwise."""
    return float(countdown.score(prompt, response) == 1.0)


def training_reward(cfg: GRPOConfig, proxy: Scorer, gold: Scorer) -> Scorer:
    """The reward GRPO maximises: the gold verifier, the proxy, or a classifier from a path."""
    if cfg.reward == "gold":
        return gold
    if cfg.reward == "solved":
        return FunctionReward(solved, name="pass/fail verifier")
    if cfg.reward == "proxy":
        return proxy
    return ClassifierReward.from_pretrained(
        cfg.reward, flag="reward", device=cfg.device, name=f"reward model {cfg.reward}"
    )


def trl_arguments(cfg: GRPOConfig, output_dir: Path):
    """TRL's settings: one generation round per optimizer step (strictly on-policy), a constant
    learning rate (so a resumed run's schedule does not depend on where it was cut), float32
    and no gradient checkpointing (bf16 autocast and recomputation each cost 5x on a CPU for a
    model this small), checkpoints every --eval-every steps, and no logging of its own."""
    from trl import GRPOConfig as TRLConfig

    return TRLConfig(
        output_dir=str(output_dir),
        max_steps=cfg.steps,
        per_device_train_batch_size=cfg.rollouts_per_step,
        num_generations=cfg.generations,
        gradient_accumulation_steps=1,
        steps_per_generation=1,
        max_completion_length=cfg.max_new_tokens,
        temperature=cfg.temperature,
        learning_rate=cfg.lr,
        lr_scheduler_type="constant",
        warmup_steps=0,
        beta=cfg.beta,
        bf16=False,
        activation_checkpointing=False,
        disable_dropout=True,
        save_strategy="steps",
        save_steps=cfg.eval_every,
        logging_strategy="steps",
        logging_steps=1,
        report_to="none",
        disable_tqdm=True,
        use_cpu=cfg.device == "cpu",
        seed=cfg.seed,
        data_seed=cfg.seed,
        dataloader_num_workers=0,
    )


class GRPORunner:
    """Runs (or resumes) a GRPO run; `report(step, done, total)` drives a progress display."""

    def __init__(
        self,
        cfg: GRPOConfig,
        run: GRPORunDir,
        report: Callable[[str, int, int], None] | None = None,
        log: Callable[[str], None] = print,
    ):
        self.cfg, self.run, self.log = cfg, run, log
        self.report = report or (lambda step, done, total: None)
        root = check_dir(cfg.assets_dir)
        self.base = str(root / "generator")
        self.proxy, self.gold = load_rewards(root, device=cfg.device)
        self.reward = training_reward(cfg, self.proxy, self.gold)
        self.prompts = make_prompts(cfg)

    def run_all(self) -> list[dict]:
        """Evaluate the base (once), train to cfg.steps from the newest finished checkpoint,
        plot; returns every evaluation row."""
        start = self.run.cleanup()
        self.run.write_metrics()
        if self.run.last_finished() is None:
            self.evaluate(0, load_policy(self.base, None, device=self.cfg.device), TrainingLedger())
        elif start > 0:
            self.log(f"resuming {self.run.path} at step {start} (checkpoint-{start})")
        if start < self.cfg.steps:
            self.train(start)
        self.plot()
        return self.run.rows()

    def train(self, start: int) -> None:
        """GRPOTrainer from the base (start 0) or from checkpoint-`start`."""
        import datasets
        from transformers import PrinterCallback
        from trl import GRPOTrainer

        cfg = self.cfg
        datasets.disable_progress_bars()
        ledger = self.ledger_at(start)
        funcs, weights = self._reward_funcs(ledger)
        args = trl_arguments(cfg, self.run.checkpoints)
        args.reward_weights = weights
        with quiet_renames():
            model, tokenizer = load_base(self.base)
            torch.manual_seed(cfg.seed)  # a LoRA adapter's initialisation
            if cfg.tuning == "lora":
                model = lora_model(model, cfg.lora, None)
            trainer = GRPOTrainer(
                model=model,
                reward_funcs=funcs,
                args=args,
                train_dataset=datasets.Dataset.from_list(
                    [{"prompt": p} for p in self.prompts.train]
                ),
                processing_class=tokenizer,
                callbacks=[_Checkpoints(self, ledger)],
            )
            trainer.remove_callback(PrinterCallback)
            resume = str(self.run.checkpoint(start)) if start > 0 else None
            trainer.train(resume_from_checkpoint=resume)

    def _reward_funcs(self, ledger: TrainingLedger) -> tuple[list[BookedReward], list[float]]:
        """The training reward (booked); when it is not the verifier, the verifier too, with
        weight 0: it changes nothing but is logged, so reward hacking is measured as it happens."""
        name = self.cfg.reward if self.cfg.reward in REWARDS else "classifier"
        funcs = [BookedReward(self.reward, name, ledger)]
        if self.cfg.reward != "gold":
            funcs.append(BookedReward(self.gold, "gold", ledger, booked=False))
        return funcs, [1.0] + [0.0] * (len(funcs) - 1)

    def ledger_at(self, step: int) -> TrainingLedger:
        if step == 0:
            return TrainingLedger()
        row = json.loads((self.run.eval_dir(step) / "metrics.json").read_text())
        return TrainingLedger.from_dict(row["ledger"])

    def policy_at(self, step: int) -> Generator:
        return checkpoint_policy(self.cfg, self.run, step, device=self.cfg.device)

    def evaluate(self, step: int, policy: Generator, ledger: TrainingLedger) -> dict:
        """Refit the predictor to `policy`, judge it on the held-out prompts, commit step_N/."""
        cfg, t0 = self.cfg, time.time()
        tmp = self.run.begin(step)
        self.report(f"step {step}: refit predictor", 0, 1)
        value = refit_value(
            cfg, policy, self.gold, self.prompts.value, step_seed(cfg.seed, 0, "refit")
        )
        value.save(tmp / "value.npz")
        shipped = cfg.assets_dir / f"value_{cfg.value}.npz"
        before = make_value(cfg.value, policy, shipped) if shipped.exists() else None
        total = 1 + 2 * len(self.prompts.held_out)
        done = [0]

        def tick():
            done[0] += 1
            self.report(f"step {step}: evaluate", done[0], total)

        summary, per_prompt = evaluate_policy(
            policy, self.proxy, self.gold, before, value, self.prompts.held_out,
            samples=cfg.samples, budget=cfg.eval_budget, max_new_tokens=cfg.max_new_tokens,
            prefix_tokens=cfg.prefix_tokens, keep=cfg.keep,
            seed=step_seed(cfg.seed, 0, "evaluate"), on_done=tick,
        )  # fmt: skip
        atomic_write_text(tmp / "eval.json", json.dumps(per_prompt))
        train = self.run.train_log(step)
        row = {
            "step": step,
            **summary,
            "ledger": ledger.as_dict(),
            "train_reward": train[-1]["reward"] if train else None,
            "seconds": {"evaluate": round(time.time() - t0, 1)},
        }
        self.run.commit(step, tmp, row)
        self.log(describe_row(row))
        return row

    def plot(self) -> Path:
        path = self.run.path / "grpo.png"
        plot_grpo(self.run.rows(), self.run.train_log(), path)
        return path


def checkpoint_policy(cfg: GRPOConfig, run: GRPORunDir, step: int, *, device: str) -> Generator:
    """The policy of checkpoint-`step` (the base for step 0), merged, ready to sample."""
    base = str(cfg.assets_dir / "generator")
    if step == 0:
        return load_policy(base, None, device=device)
    ckpt = run.checkpoint(step)
    if cfg.tuning == "lora":
        return load_policy(base, ckpt, device=device)
    return Generator.from_pretrained(str(ckpt), device=device, flag="policy")


class _Checkpoints(TrainerCallback):
    """Progress, the training log, a checkpoint at the last step, and the evaluation of every
    checkpoint (under fork_rng, so training draws the same random numbers either way)."""

    def __init__(self, runner: GRPORunner, ledger: TrainingLedger):
        self.runner, self.ledger = runner, ledger

    def on_step_end(self, args, state, control, **kwargs):
        self.ledger.optimizer_steps = state.global_step
        self.runner.report("training", state.global_step, state.max_steps)
        if state.global_step >= state.max_steps:
            control.should_save = True  # the last step is always checkpointed and evaluated
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "reward" not in logs:
            return control  # the end-of-training summary
        row = {"step": state.global_step, **self.ledger.as_dict()}
        row.update({short: logs[key] for key, short in TRAIN_LOG_KEYS.items() if key in logs})
        row.update(
            {
                k.split("/")[1]: v
                for k, v in logs.items()
                if k.startswith("rewards/") and k.endswith("/mean")
            }
        )
        self.runner.run.append_train_log(row)
        return control

    def on_save(self, args, state, control, **kwargs):
        step = state.global_step
        devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=devices):
            self.runner.evaluate(step, self.runner.policy_at(step), self.ledger)
        self.runner.plot()
        return control


def describe_row(row: dict) -> str:
    """One line per evaluated checkpoint for the console."""
    parts = [f"step {row['step']}:"]
    for m in ("plain", "bon", "lookahead"):
        r = row[m]
        lo, hi = r["gold_ci"]
        parts.append(f"{m} gold {r['gold']:.3f} [{lo:.3f}, {hi:.3f}] pass@1 {r['pass1']:.0%};")
    parts.append(f"| plain proxy-gold gap {row['plain']['gap']:+.3f}")
    parts.append(f"| {row['ledger']['tokens']:,} training tokens")
    return " ".join(parts)


def plot_grpo(rows: list[dict], train_log: list[dict], path: Path) -> None:
    """Held-out gold (and pass@1) per method against training tokens; the training reward."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    ax = axes[0]
    x = [r["ledger"]["tokens"] for r in rows]
    for m in ("plain", "bon", "lookahead"):
        mean = np.array([r[m]["gold"] for r in rows])
        ci = np.array([r[m]["gold_ci"] for r in rows]).reshape(-1, 2)
        line = ax.errorbar(
            x, mean, yerr=[mean - ci[:, 0], ci[:, 1] - mean], marker="o", capsize=3, label=m
        )
        ax.plot(x, [r[m]["pass1"] for r in rows], ":", color=line[0].get_color(), alpha=0.7)
    ax.set_title("held-out gold (solid), pass@1 (dotted)", fontsize=9)
    ax.set_xlabel("training tokens")
    ax.legend(fontsize=8)
    ax = axes[1]
    if train_log:
        steps = [r["step"] for r in train_log]
        for key in sorted(
            {k for r in train_log for k in r if k in ("gold", "proxy", "classifier")}
        ):
            ys = [r.get(key, math.nan) for r in train_log]
            ax.plot(steps, _smooth(ys), label=f"training {key} reward")
    ax.set_title("reward of the training rollouts (moving mean of 10 steps)", fontsize=9)
    ax.set_xlabel("optimizer step")
    ax.legend(fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(Path(path), png.getvalue())


def _smooth(ys: list[float], window: int = 10) -> np.ndarray:
    y = np.asarray(ys, dtype=np.float64)
    return np.array([np.nanmean(y[max(0, i - window + 1) : i + 1]) for i in range(len(y))])
