"""Self-training (expert iteration, as in STaR and ReST-EM): search, filter, fine-tune, refit.

One iteration, read top to bottom in `run_iteration`:

  collect   value-guided search with the current policy and predictor on the training prompts
  score     every searched response by the proxy reward and the gold verifier
  filter    keep responses over a threshold, or the top k per prompt (deduplicated)
  finetune  a LoRA adapter on the kept responses, through TRL's SFTTrainer
  refit     the value predictor, on fresh samples of the fine-tuned policy
  evaluate  the new policy on held-out prompts: plain sampling, Best-of-N and look-ahead at a
            fixed budget; the predictor's correlation before and after its refit; proxy vs gold

Iteration 0 fits the predictor to the starting policy and evaluates it; nothing is trained.

The predictor is refitted after the fine-tune, not before it: refitting it on the data the
search just collected would match it to the policy that is about to be replaced, whereas this
way each round starts from the better policy and a predictor fitted to that policy's outputs.

Run directory (`forethought lm selftrain --out RUN_DIR`; `--resume RUN_DIR` continues; the
config lives in selftrain/config.py, the directory's bookkeeping and lock in selftrain/rundir.py):

    config.json      the resolved SelfTrainConfig
    metrics.jsonl    one row per finished iteration (rebuilt from iter_K/metrics.json)
    selftrain.png    gold reward, predictor correlation and proxy-gold gap per iteration
    iter_K/          adapter/ (PEFT, K >= 1), dataset.jsonl (K >= 1), value.npz, eval.json,
                     metrics.json

An iteration is built in `iter_K.tmp/` and renamed to `iter_K/` only when complete, so a kill at
any moment leaves every `iter_K/` whole; a resume deletes the partial `.tmp` and redoes only the
unfinished iteration. Every step reseeds from (seed, iteration), so a resumed run computes what
an uninterrupted one would have.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from forethought.errors import ConfigError
from forethought.lm.artifacts.finetune import load_policy, sft_lora
from forethought.lm.artifacts.shipped import check_dir, load_countdown
from forethought.lm.budget import Budget, TrainingLedger
from forethought.lm.generator import Generator
from forethought.lm.search import best_of_n, lookahead
from forethought.lm.selftrain.config import (
    HELD_OUT_SEED,
    TRAIN_SEED,
    VALUE_SEED,
    SelfTrainConfig,
    step_seed,
)
from forethought.lm.selftrain.evaluation import evaluate_policy, plot_selftrain, sample_many
from forethought.lm.selftrain.rundir import RunDir, read_jsonl
from forethought.lm.tasks import countdown
from forethought.lm.value import RidgeValue, make_value, prefix_dataset
from forethought.storage import atomic_write_text, read_json


# -- the steps --------------------------------------------------------------------------------
@dataclass
class Prompts:
    train: list[str]
    value: list[str]
    held_out: list[str]


def make_prompts(cfg: SelfTrainConfig) -> Prompts:
    """Held-out prompts first; training and refit prompts exclude them and each other."""
    held = [p.prompt for p in countdown.make_problems(cfg.eval_prompts, seed=HELD_OUT_SEED)]
    train = [
        p.prompt
        for p in countdown.make_problems(cfg.train_prompts, TRAIN_SEED + cfg.seed, set(held))
    ]
    value = [
        p.prompt
        for p in countdown.make_problems(
            cfg.value_prompts, VALUE_SEED + cfg.seed, set(held) | set(train)
        )
    ]
    return Prompts(train, value, held)


def collect(
    cfg: SelfTrainConfig, policy: Generator, proxy, gold, value, prompts, seed, on_done, ledger
) -> list[dict]:
    """Search every training prompt; every response the final reward saw, scored twice.

    The searches' spend and the gold labels of their finalists are booked in `ledger`."""
    rows = []
    for i, prompt in enumerate(prompts):
        torch.manual_seed(seed + i)
        budget = Budget(cfg.collect_budget)
        if cfg.collect == "lookahead":
            res = lookahead(
                policy,
                proxy,
                value,
                prompt,
                budget,
                max_new_tokens=cfg.max_new_tokens,
                prefix_tokens=cfg.prefix_tokens,
                keep=cfg.keep,
            )
        else:
            res = best_of_n(policy, proxy, prompt, budget, max_new_tokens=cfg.max_new_tokens)
        golds = gold(res.finalists)  # not the search's budget: labelling data for training
        ledger.add(res.spent, reward_calls=len(res.finalists))
        for cand, p, g in zip(res.finalists, res.finalist_scores, golds, strict=True):
            rows.append(
                {
                    "prompt": prompt,
                    "completion": cand.text,
                    "proxy": float(p),
                    "gold": float(g),
                    "pick": cand is res.pick,
                }
            )
        on_done()
    return rows


def select(cfg: SelfTrainConfig, rows: Sequence[dict]) -> list[bool]:
    """Which rows the fine-tune keeps: per prompt, distinct non-empty responses that pass."""
    key = cfg.filter_reward
    by_prompt: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        by_prompt.setdefault(r["prompt"], []).append(i)
    kept = [False] * len(rows)
    for idx in by_prompt.values():
        best: dict[str, int] = {}  # distinct response -> its first row
        for i in idx:
            if rows[i]["completion"].strip():
                best.setdefault(rows[i]["completion"], i)
        order = sorted(best.values(), key=lambda i: -rows[i][key])  # stable: ties keep order
        if cfg.filter == "threshold":
            order = [i for i in order if rows[i][key] >= cfg.threshold]
        else:
            order = order[: cfg.top_k]
        for i in order[: cfg.max_per_prompt]:
            kept[i] = True
    return kept


def refit_value(cfg, policy: Generator, gold, prompts, seed, ledger=None) -> RidgeValue:
    """Fit a predictor on prefixes of fresh samples of `policy`, labelled by the gold reward;
    the samples and their labels are booked in `ledger` when one is given."""
    torch.manual_seed(seed)
    cands = sample_many(policy, prompts, cfg.samples, cfg.max_new_tokens)
    if ledger is not None:
        ledger.add(tokens=sum(len(c.token_ids) for c in cands), reward_calls=len(cands))
    prefixes, targets = prefix_dataset(policy, cands, gold(cands))
    return make_value(cfg.value, policy).fit(prefixes, targets)


def _collect_summary(rows: Sequence[dict], kept: Sequence[bool]) -> dict:
    g = np.array([r["gold"] for r in rows])
    p = np.array([r["proxy"] for r in rows])
    picks = [r for r in rows if r["pick"]]
    return {
        "responses": len(rows),
        "kept": int(sum(kept)),
        "prompts_with_kept": len({r["prompt"] for r, k in zip(rows, kept, strict=True) if k}),
        "gold": float(g.mean()),
        "proxy": float(p.mean()),
        "gap": float(p.mean() - g.mean()),
        "pick_gold": float(np.mean([r["gold"] for r in picks])),
        "solved": float((g == 1.0).mean()),
    }


def _write_jsonl(path: Path, rows: Sequence[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def _read_kept(path: Path) -> list[dict]:
    return [r for r in read_jsonl(path) if r["kept"]]


# -- the loop ---------------------------------------------------------------------------------
@dataclass
class State:
    """What the next iteration starts from: a policy and the predictor fitted to it."""

    policy: Generator
    value: RidgeValue
    adapter: Path | None


class SelfTrainer:
    """Runs (or resumes) iterations; `report(step, done, total)` drives a progress display."""

    def __init__(
        self,
        cfg: SelfTrainConfig,
        run: RunDir,
        report: Callable[[str, int, int], None] | None = None,
        log: Callable[[str], None] = print,
    ):
        self.cfg, self.run, self.log = cfg, run, log
        self.report = report or (lambda step, done, total: None)
        root = check_dir(cfg.assets_dir)
        self.base = str(root / "generator")
        suite = load_countdown(root, device=cfg.device)
        self.proxy, self.gold = suite.proxy, suite.gold
        self.prompts = make_prompts(cfg)

    def run_all(self) -> list[dict]:
        """Every unfinished iteration up to cfg.iterations, then the plot; returns all rows."""
        self.run.cleanup()
        self.run.write_metrics()  # in case a kill came between an iteration's rename and this
        start = self.run.finished()
        if start > 0:
            self.log(f"resuming {self.run.path} at iteration {start} ({start} finished)")
        if start == 0:
            self.iteration_zero()
            start = 1
        if start <= self.cfg.iterations:
            state = self.load_state(start - 1)
            for k in range(start, self.cfg.iterations + 1):
                state = self.run_iteration(k, state)
                self.plot()
        rows = self.run.rows()
        self.plot()
        return rows

    def iteration_zero(self) -> None:
        """Fit the predictor to the starting policy and evaluate it; nothing is trained."""
        cfg, t0 = self.cfg, time.time()
        tmp = self.run.begin(0)
        policy = load_policy(self.base, None, device=cfg.device)
        self.report("iteration 0: refit predictor", 0, 1)
        ledger = TrainingLedger()
        value = refit_value(
            cfg, policy, self.gold, self.prompts.value, step_seed(cfg.seed, 0, "refit"), ledger
        )
        value.save(tmp / "value.npz")
        shipped = cfg.assets_dir / f"value_{cfg.value}.npz"
        before = make_value(cfg.value, policy, shipped) if shipped.exists() else None
        summary = self._evaluate(0, tmp, policy, before, value)
        seconds = {"total": round(time.time() - t0, 1)}
        self._commit(0, tmp, {**summary, "ledger": ledger.as_dict(), "seconds": seconds})

    def run_iteration(self, k: int, state: State) -> State:
        """collect -> score -> filter -> fine-tune -> refit -> evaluate; commits iter_k/."""
        t0, seconds = time.time(), {}
        tmp = self.run.begin(k)
        ledger = self.ledger_after(k - 1)
        rows, kept = self._collect(k, state, tmp, ledger)
        seconds["collect"] = round(time.time() - t0, 1)

        t = time.time()
        train_stats = self._finetune(k, state, tmp, self._training_rows(k, rows, kept))
        ledger.add(optimizer_steps=train_stats["steps"])
        seconds["finetune"] = round(time.time() - t, 1)

        t = time.time()
        policy, before, value = self._refit(k, tmp, ledger)
        seconds["refit"] = round(time.time() - t, 1)

        t = time.time()
        summary = self._evaluate(k, tmp, policy, before, value)
        seconds["evaluate"] = round(time.time() - t, 1)
        seconds["total"] = round(time.time() - t0, 1)
        self._commit(
            k,
            tmp,
            {
                **summary,
                "collect": _collect_summary(rows, kept),
                "finetune": train_stats,
                "value_alpha": value.alpha,
                "ledger": ledger.as_dict(),
                "seconds": seconds,
            },
        )
        return State(policy, value, self.run.iter_dir(k) / "adapter")

    def ledger_after(self, k: int) -> TrainingLedger:
        """Training compute spent by the end of iteration k (cumulative, from its metrics)."""
        row = read_json(self.run.iter_dir(k) / "metrics.json", f"iteration {k}'s metrics")
        return TrainingLedger.from_dict(row.get("ledger", {}))

    def load_state(self, k: int) -> State:
        """Policy and predictor as iteration k left them (reloaded from its artifacts)."""
        d = self.run.iter_dir(k)
        adapter = d / "adapter" if k > 0 else None
        policy = load_policy(self.base, adapter, device=self.cfg.device)
        return State(policy, make_value(self.cfg.value, policy, d / "value.npz"), adapter)

    # -- the phases of one iteration ----------------------------------------------------------
    def _collect(
        self, k: int, state: State, tmp: Path, ledger: TrainingLedger
    ) -> tuple[list[dict], list[bool]]:
        """Search the training prompts, filter, and write every response to dataset.jsonl."""
        cfg = self.cfg
        rows = collect(
            cfg,
            state.policy,
            self.proxy,
            self.gold,
            state.value,
            self.prompts.train,
            step_seed(cfg.seed, k, "collect"),
            self._ticker(f"iteration {k}: collect", len(self.prompts.train)),
            ledger,
        )
        kept = select(cfg, rows)
        _write_jsonl(
            tmp / "dataset.jsonl", [{**r, "kept": k_} for r, k_ in zip(rows, kept, strict=True)]
        )
        return rows, kept

    def _training_rows(self, k: int, rows: list[dict], kept: list[bool]) -> list[dict]:
        """This iteration's kept rows (after every earlier one's with --accumulate)."""
        cfg = self.cfg
        train_rows = [r for r, k_ in zip(rows, kept, strict=True) if k_]
        if cfg.accumulate:
            for j in range(1, k):
                train_rows = _read_kept(self.run.iter_dir(j) / "dataset.jsonl") + train_rows
        if not train_rows:
            rule = (
                f">= {cfg.threshold} on {cfg.filter_reward}"
                if cfg.filter == "threshold"
                else f"top {cfg.top_k}"
            )
            raise ConfigError(
                "threshold",
                f"iteration {k}: none of {len(rows)} collected responses passed the filter "
                f"({rule}); lower --threshold, use --filter topk or raise --collect-budget",
            )
        return train_rows

    def _finetune(self, k: int, state: State, tmp: Path, train_rows: list[dict]) -> dict:
        """A LoRA adapter on the kept rows, saved to tmp/adapter; returns its training stats."""
        cfg = self.cfg
        self.report(f"iteration {k}: fine-tune", 0, 1)
        return sft_lora(
            self.base,
            [{"prompt": r["prompt"], "completion": r["completion"]} for r in train_rows],
            tmp / "adapter",
            cfg.lora,
            seed=step_seed(cfg.seed, k, "finetune"),
            device=cfg.device,
            init_adapter=state.adapter if cfg.init == "previous" else None,
            on_step=lambda step, total: self.report(f"iteration {k}: fine-tune", step, total),
        )

    def _refit(
        self, k: int, tmp: Path, ledger: TrainingLedger
    ) -> tuple[Generator, RidgeValue, RidgeValue]:
        """The fine-tuned policy, the previous predictor on it, and one refitted to it."""
        cfg = self.cfg
        self.report(f"iteration {k}: refit predictor", 0, 1)
        policy = load_policy(self.base, tmp / "adapter", device=cfg.device)
        value = refit_value(
            cfg, policy, self.gold, self.prompts.value, step_seed(cfg.seed, k, "refit"), ledger
        )
        value.save(tmp / "value.npz")
        # The previous predictor's read-out on this policy: what a run without refits would use.
        before = make_value(cfg.value, policy, self.run.iter_dir(k - 1) / "value.npz")
        return policy, before, value

    def _evaluate(self, k: int, tmp: Path, policy, before, after) -> dict:
        """Judge `policy` on the held-out prompts; per-prompt numbers go to tmp/eval.json."""
        cfg = self.cfg
        summary, per_prompt = evaluate_policy(
            policy,
            self.proxy,
            self.gold,
            before,
            after,
            self.prompts.held_out,
            samples=cfg.samples,
            budget=cfg.eval_budget,
            max_new_tokens=cfg.max_new_tokens,
            prefix_tokens=cfg.prefix_tokens,
            keep=cfg.keep,
            seed=step_seed(cfg.seed, 0, "evaluate"),  # the same draws at every iteration
            on_done=self._ticker(f"iteration {k}: evaluate", 1 + 2 * len(self.prompts.held_out)),
        )
        atomic_write_text(tmp / "eval.json", json.dumps(per_prompt))
        return summary

    def _commit(self, k: int, tmp: Path, metrics: dict) -> None:
        metrics = {"iteration": k, **metrics}
        self.run.commit(k, tmp, metrics)
        self.log(describe_row(metrics, self.cfg.prefix_tokens))

    def _ticker(self, step: str, total: int) -> Callable[[], None]:
        count = [0]
        self.report(step, 0, total)

        def tick():
            count[0] += 1
            self.report(step, count[0], total)

        return tick

    def plot(self) -> Path:
        path = self.run.path / "selftrain.png"
        plot_selftrain(self.run.rows(), path, self.cfg.prefix_tokens)
        return path


def describe_row(row: dict, prefix_tokens: int) -> str:
    """One line per iteration for the console."""
    parts = [f"iteration {row['iteration']}:"]
    for m in ("plain", "bon", "lookahead"):
        r = row[m]
        lo, hi = r["gold_ci"]
        parts.append(f"{m} gold {r['gold']:.3f} [{lo:.3f}, {hi:.3f}] pass@1 {r['pass1']:.0%};")
    corr = row["value_corr"]
    key = str(prefix_tokens)
    for name in ("before", "after"):
        if name in corr:
            c = corr[name][key]
            parts.append(
                f"predictor {name} refit: Spearman {c['pooled']:.2f} bias {c['bias']:+.3f};"
            )
    parts.append(f"| plain proxy-gold gap {row['plain']['gap']:+.3f}")
    if "collect" in row:
        c = row["collect"]
        parts.append(f"| kept {c['kept']}/{c['responses']}")
    parts.append(f"| {row['seconds']['total']:.0f}s")
    return " ".join(parts)
