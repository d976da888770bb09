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

Run directory (`forethought lm selftrain --out RUN_DIR`; `--resume RUN_DIR` continues):

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

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from forethought.errors import ConfigError, DataError
from forethought.lm.assets import SHIPPED, check_dir, load_countdown
from forethought.lm.budget import Budget
from forethought.lm.finetune import LoraSettings, load_policy, sft_lora
from forethought.lm.generator import Generator
from forethought.lm.search import best_of_n, lookahead
from forethought.lm.selftrain_eval import evaluate_policy, plot_selftrain, sample_many
from forethought.lm.tasks import countdown
from forethought.lm.value import HiddenStateValue, MiniLMValue, RidgeValue, prefix_dataset

HELD_OUT_SEED = 40_000  # problem seeds: held-out evaluation prompts (the same for every run seed)
TRAIN_SEED = 50_000  # + run seed: training prompts
VALUE_SEED = 60_000  # + run seed: prompts whose fresh samples refit the predictor


def _opt(default, help: str, **choices):
    return field(default=default, metadata={"help": help, **choices})


@dataclass(frozen=True)
class SelfTrainConfig:
    """Everything a self-training run needs; `forethought lm selftrain --help` lists each field."""

    task: str = _opt("countdown", "built-in task", choices=("countdown",))
    iterations: int = _opt(3, "self-training iterations after iteration 0 (the starting policy)")
    seed: int = _opt(0, "seed for training prompts, sampling, LoRA initialisation")
    train_prompts: int = _opt(500, "training prompts searched every iteration")
    eval_prompts: int = _opt(200, "held-out prompts every iteration is evaluated on")
    value_prompts: int = _opt(300, "prompts whose fresh samples refit the value predictor")
    samples: int = _opt(8, "plain samples per held-out or value-refit prompt")
    collect: str = _opt(
        "lookahead", "search that collects the training data", choices=("lookahead", "bon")
    )
    collect_budget: int = _opt(256, "tokens per training prompt for the collecting search")
    eval_budget: int = _opt(128, "tokens per held-out prompt for Best-of-N and look-ahead")
    max_new_tokens: int = _opt(24, "response length cap in tokens")
    prefix_tokens: int = _opt(6, "look-ahead: prefix length the predictor ranks")
    keep: float = _opt(0.25, "look-ahead: fraction of branches continued to the end")
    filter: str = _opt(
        "threshold",
        "keep responses whose reward is >= --threshold, or the --top-k best per prompt",
        choices=("threshold", "topk"),
    )
    filter_reward: str = _opt(
        "gold", "reward the filter reads: gold verifier or proxy", choices=("gold", "proxy")
    )
    threshold: float = _opt(1.0, "filter=threshold: lowest reward kept (1.0 = solved only)")
    top_k: int = _opt(1, "filter=topk: responses kept per prompt")
    max_per_prompt: int = _opt(4, "most distinct responses kept per prompt")
    accumulate: bool = _opt(False, "fine-tune on the kept data of all iterations so far")
    init: str = _opt(
        "previous",
        "start each fine-tune from the previous iteration's adapter or a fresh one on the base",
        choices=("previous", "base"),
    )
    lora_r: int = _opt(16, "LoRA rank")
    lora_alpha: int = _opt(32, "LoRA alpha")
    lr: float = _opt(1e-3, "fine-tune peak learning rate")
    epochs: float = _opt(2.0, "fine-tune passes over the kept data")
    batch_size: int = _opt(32, "fine-tune batch size")
    value: str = _opt("hidden", "value predictor representation", choices=("hidden", "minilm"))
    assets: str = _opt("", "directory of Countdown models (default: the shipped ones)")
    device: str = _opt("cpu", "torch device, e.g. cpu or cuda")

    def validate(self) -> SelfTrainConfig:
        for f in fields(self):
            allowed = f.metadata.get("choices")
            if allowed and getattr(self, f.name) not in allowed:
                raise ConfigError(f"--{_flag(f.name)}", f"must be one of {', '.join(allowed)}")
        positive = ("train_prompts", "eval_prompts", "value_prompts", "samples", "top_k")
        for name in (*positive, "max_per_prompt", "lora_r", "lora_alpha", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(
                    f"--{_flag(name)}", f"must be at least 1, got {getattr(self, name)}"
                )
        if self.iterations < 0:
            raise ConfigError("--iterations", f"must be >= 0, got {self.iterations}")
        if self.lr <= 0 or self.epochs <= 0:
            raise ConfigError("--lr/--epochs", "must be > 0")
        if not 0 < self.prefix_tokens < self.max_new_tokens:
            raise ConfigError(
                "--prefix-tokens",
                f"must be in 1..{self.max_new_tokens - 1} (below --max-new-tokens)",
            )
        if not 0 < self.keep < 1:
            raise ConfigError("--keep", f"must be a fraction in (0, 1), got {self.keep}")
        for name in ("collect_budget", "eval_budget"):
            if getattr(self, name) < 2 * self.max_new_tokens:
                raise ConfigError(
                    f"--{_flag(name)}",
                    f"{getattr(self, name)} tokens is under two answers of --max-new-tokens "
                    f"{self.max_new_tokens}; raise it to at least {2 * self.max_new_tokens}",
                )
        if self.device != "cpu" and not self.device.startswith("cuda"):
            raise ConfigError("--device", f"use cpu or cuda[:N], got {self.device!r}")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError("--device", "CUDA is not available here; use --device cpu")
        return self

    @property
    def lora(self) -> LoraSettings:
        return LoraSettings(
            r=self.lora_r,
            alpha=self.lora_alpha,
            lr=self.lr,
            epochs=self.epochs,
            batch_size=self.batch_size,
        )

    @property
    def assets_dir(self) -> Path:
        return Path(self.assets) if self.assets else SHIPPED


def _flag(name: str) -> str:
    return name.replace("_", "-")


def step_seed(seed: int, iteration: int, step: str) -> int:
    """A seed for one step of one iteration that does not depend on what ran before it."""
    digest = hashlib.sha256(f"{seed}/{iteration}/{step}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


# -- the run directory ------------------------------------------------------------------------
def atomic_write(path: Path, text: str) -> None:
    """Write `text` so that a reader sees either the old file or the whole new one."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class RunDir:
    """The files of one run; an iteration counts as finished once `iter_K/` exists."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def iter_dir(self, k: int) -> Path:
        return self.path / f"iter_{k}"

    @classmethod
    def create(cls, path: Path, config: SelfTrainConfig) -> RunDir:
        run = cls(path)
        if (run.path / "config.json").exists():
            raise ConfigError(
                "--out",
                f"{run.path} already holds a run; pass --resume {run.path} to continue it, "
                "or choose another --out",
            )
        run.path.mkdir(parents=True, exist_ok=True)
        run.save_config(config)
        return run

    def save_config(self, config: SelfTrainConfig) -> None:
        atomic_write(self.path / "config.json", json.dumps(asdict(config), indent=2))

    @classmethod
    def open(cls, path: Path) -> tuple[RunDir, SelfTrainConfig]:
        run = cls(path)
        cfg_path = run.path / "config.json"
        if not cfg_path.exists():
            raise ConfigError("--resume", f"no self-training run at {run.path} (no config.json)")
        try:
            config = SelfTrainConfig(**json.loads(cfg_path.read_text()))
        except (TypeError, json.JSONDecodeError) as err:
            raise DataError(f"{cfg_path} is not a self-training config: {err}") from err
        return run, config

    def finished(self) -> int:
        """Iterations finished in order from 0 (a gap ends the count)."""
        k = 0
        while (self.iter_dir(k) / "metrics.json").exists():
            k += 1
        return k

    def begin(self, k: int) -> Path:
        """A fresh scratch directory for iteration k (a killed attempt's leftovers removed)."""
        tmp = self.path / f"iter_{k}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        return tmp

    def commit(self, k: int, tmp: Path, metrics: dict) -> None:
        """Mark iteration k finished: metrics into the scratch dir, then one atomic rename."""
        atomic_write(tmp / "metrics.json", json.dumps(metrics, indent=1))
        os.replace(tmp, self.iter_dir(k))
        self.write_metrics()

    def rows(self) -> list[dict]:
        return [
            json.loads((self.iter_dir(k) / "metrics.json").read_text())
            for k in range(self.finished())
        ]

    def write_metrics(self) -> None:
        """Rebuild metrics.jsonl from the finished iterations (so it can never disagree)."""
        lines = "".join(json.dumps(r) + "\n" for r in self.rows())
        atomic_write(self.path / "metrics.jsonl", lines)

    def cleanup(self) -> None:
        for tmp in self.path.glob("iter_*.tmp"):
            shutil.rmtree(tmp, ignore_errors=True)


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


class ValueFactory:
    """Builds predictors of one kind for any policy (MiniLM's embedder is loaded once)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._embedder = None

    def __call__(self, generator: Generator, path: Path | None = None) -> RidgeValue:
        if self.kind == "hidden":
            value = HiddenStateValue(generator)
        else:
            value = MiniLMValue(self._embedder)
            self._embedder = value.embedder
        return value.load(path) if path is not None else value


def collect(
    cfg: SelfTrainConfig, policy: Generator, proxy, gold, value, prompts, seed, on_done
) -> list[dict]:
    """Search every training prompt; every response the final reward saw, scored twice."""
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
        golds = gold(res.finalists)  # unmetered: labelling data, not searching
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


def refit_value(cfg, make_value, policy: Generator, gold, prompts, seed) -> RidgeValue:
    """Fit a predictor on prefixes of fresh samples of `policy`, labelled by the gold reward."""
    torch.manual_seed(seed)
    cands = sample_many(policy, prompts, cfg.samples, cfg.max_new_tokens)
    prefixes, targets = prefix_dataset(policy, cands, gold(cands))
    return make_value(policy).fit(prefixes, targets)


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
    atomic_write(path, "".join(json.dumps(r) + "\n" for r in rows))


def _read_kept(path: Path) -> list[dict]:
    with open(path) as f:
        return [r for r in map(json.loads, f) if r["kept"]]


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
        self.make_value = ValueFactory(cfg.value)
        self.prompts = make_prompts(cfg)

    def _ticker(self, step: str, total: int) -> Callable[[], None]:
        count = [0]
        self.report(step, 0, total)

        def tick():
            count[0] += 1
            self.report(step, count[0], total)

        return tick

    def _evaluate(self, k: int, policy, before, after) -> tuple[dict, dict]:
        cfg = self.cfg
        return evaluate_policy(
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

    def iteration_zero(self) -> None:
        """Fit the predictor to the starting policy and evaluate it; nothing is trained."""
        cfg, t0 = self.cfg, time.time()
        tmp = self.run.begin(0)
        policy = load_policy(self.base, None, device=cfg.device)
        self.report("iteration 0: refit predictor", 0, 1)
        value = refit_value(
            cfg,
            self.make_value,
            policy,
            self.gold,
            self.prompts.value,
            step_seed(cfg.seed, 0, "refit"),
        )
        value.save(tmp / "value.npz")
        shipped = cfg.assets_dir / f"value_{cfg.value}.npz"
        before = self.make_value(policy, shipped) if shipped.exists() else None
        summary, per_prompt = self._evaluate(0, policy, before, value)
        atomic_write(tmp / "eval.json", json.dumps(per_prompt))
        metrics = {"iteration": 0, **summary, "seconds": {"total": round(time.time() - t0, 1)}}
        self.run.commit(0, tmp, metrics)
        self.log(describe_row(metrics, cfg.prefix_tokens))

    def load_state(self, k: int) -> State:
        """Policy and predictor as iteration k left them (reloaded from its artifacts)."""
        d = self.run.iter_dir(k)
        adapter = d / "adapter" if k > 0 else None
        policy = load_policy(self.base, adapter, device=self.cfg.device)
        return State(policy, self.make_value(policy, d / "value.npz"), adapter)

    def run_iteration(self, k: int, state: State) -> State:
        """collect -> score -> filter -> fine-tune -> refit -> evaluate; commits iter_k/."""
        cfg, t0, seconds = self.cfg, time.time(), {}
        tmp = self.run.begin(k)

        tick = self._ticker(f"iteration {k}: collect", len(self.prompts.train))
        rows = collect(
            cfg,
            state.policy,
            self.proxy,
            self.gold,
            state.value,
            self.prompts.train,
            step_seed(cfg.seed, k, "collect"),
            tick,
        )
        kept = select(cfg, rows)
        _write_jsonl(
            tmp / "dataset.jsonl", [{**r, "kept": k_} for r, k_ in zip(rows, kept, strict=True)]
        )
        seconds["collect"] = round(time.time() - t0, 1)
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
                "--threshold",
                f"iteration {k}: none of {len(rows)} collected responses passed the filter "
                f"({rule}); lower --threshold, use --filter topk or raise --collect-budget",
            )

        t = time.time()
        self.report(f"iteration {k}: fine-tune", 0, 1)
        train_stats = sft_lora(
            self.base,
            [{"prompt": r["prompt"], "completion": r["completion"]} for r in train_rows],
            tmp / "adapter",
            cfg.lora,
            seed=step_seed(cfg.seed, k, "finetune"),
            device=cfg.device,
            init_adapter=state.adapter if cfg.init == "previous" else None,
            on_step=lambda step, total: self.report(f"iteration {k}: fine-tune", step, total),
        )
        seconds["finetune"] = round(time.time() - t, 1)

        t = time.time()
        self.report(f"iteration {k}: refit predictor", 0, 1)
        policy = load_policy(self.base, tmp / "adapter", device=cfg.device)
        value = refit_value(
            cfg,
            self.make_value,
            policy,
            self.gold,
            self.prompts.value,
            step_seed(cfg.seed, k, "refit"),
        )
        value.save(tmp / "value.npz")
        # The previous predictor's read-out on this policy: what a run without refits would use.
        before = self.make_value(policy, self.run.iter_dir(k - 1) / "value.npz")
        seconds["refit"] = round(time.time() - t, 1)

        t = time.time()
        summary, per_prompt = self._evaluate(k, policy, before, value)
        atomic_write(tmp / "eval.json", json.dumps(per_prompt))
        seconds["evaluate"] = round(time.time() - t, 1)
        seconds["total"] = round(time.time() - t0, 1)
        metrics = {
            "iteration": k,
            **summary,
            "collect": _collect_summary(rows, kept),
            "finetune": train_stats,
            "value_alpha": value.alpha,
            "seconds": seconds,
        }
        self.run.commit(k, tmp, metrics)
        self.log(describe_row(metrics, cfg.prefix_tokens))
        return State(policy, value, self.run.iter_dir(k) / "adapter")

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

    def plot(self) -> Path:
        path = self.run.path / "selftrain.png"
        tmp = self.run.path / ".selftrain.tmp.png"
        plot_selftrain(self.run.rows(), tmp, self.cfg.prefix_tokens)
        os.replace(tmp, path)
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
