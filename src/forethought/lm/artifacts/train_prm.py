"""Train a process reward model from Monte-Carlo step labels (Math-Shepherd), no hand rule.

    1. sample `samples` answers per training problem from the generator;
    2. for each step prefix of each answer (cut after a step delimiter), sample `rollouts`
       continuations; the prefix's label is the fraction of them the gold verifier calls solved;
    3. fine-tune a copy of the generator with a one-logit head: binary cross-entropy between
       the head at every step end and that step's label, all steps of an answer in one pass.

Held-out problems are labelled the same way; `evaluate_prm` reports step-label accuracy,
calibration (Brier score, expected calibration error) and rank correlation, by step.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score
from transformers import AutoTokenizer, GPT2ForSequenceClassification

from forethought.lm.artifacts.pretrain import _save, _update
from forethought.lm.budget import Account, Budget
from forethought.lm.generator import Candidate, Generator
from forethought.lm.tasks import countdown
from forethought.lm.tasks.countdown import CountdownTask


@dataclass(frozen=True)
class PRMConfig:
    """Sizes of the step-label data and the PRM's training schedule."""

    problems: int = 2500
    """Training problems whose policy samples are labelled."""
    samples: int = 2
    """Policy samples per problem."""
    rollouts: int = 8
    """Continuations per step prefix (the k of the Monte-Carlo label)."""
    steps: int = 2500
    """Optimiser steps."""
    lr: float = 5e-4
    batch: int = 64
    eval_problems: int = 150
    """Held-out problems labelled the same way (policy samples only), for accuracy and calibration."""
    solutions: bool = True
    """Also label the step prefixes of each training problem's known solution."""
    outcomes: int = 0
    """Further policy samples per training problem, labelled at their last step only by the verifier's exact outcome (no rollouts): the near misses a final pick meets among many samples."""
    pick_samples: int = 64
    """Samples per held-out problem for the pick check (how often the PRM's top answer is solved)."""
    seed: int = 0


@dataclass
class StepLabels:
    """One policy sample and the Monte-Carlo label of each of its step prefixes."""

    sample: Candidate
    ends: list[int]
    """Response lengths (tokens) at which a step ends: the prefixes that were labelled."""
    labels: list[float]
    """Fraction of `rollouts` continuations from each prefix that were solved."""
    solved: bool
    """Whether the sample itself was solved."""


def step_ends(cand: Candidate, delimiter_id: int) -> list[int]:
    """Lengths of the prefixes of `cand` that end right after a step delimiter."""
    return [i + 1 for i, t in enumerate(cand.token_ids) if t == delimiter_id]


def label_steps(
    generator: Generator,
    task: CountdownTask,
    prompts: list[str],
    *,
    samples: int,
    rollouts: int,
    max_new_tokens: int,
    delimiter_id: int,
    solutions: list[str] | None = None,
    log=print,
) -> list[StepLabels]:
    """Monte-Carlo step labels for `samples` policy answers to each prompt (batched across
    prompts: rows with different prompts share one generate call). With `solutions` (one
    known solution per prompt, as the problems were made), the solutions' step prefixes are
    labelled too, by the same policy rollouts: policy samples rarely solve, and without them the
    PRM would see few prefixes that lead anywhere."""
    unlimited = Account(Budget(max_tokens=2**62))  # data collection, not a budgeted search
    start = time.time()
    rows = [c for p in prompts for c in generator.start(p, samples, max_new_tokens)]
    answers = generator.extend(rows, max_new_tokens, unlimited)
    for prompt, text in zip(prompts, solutions or [], strict=False):
        ids = tuple(generator.tokenizer(text, add_special_tokens=False)["input_ids"])
        start_row = generator.start(prompt, 1, max_new_tokens)[0]
        answers.append(replace(start_row, token_ids=ids, text=text, finished=True))
    prefixes, owner = [], []
    for i, a in enumerate(answers):
        for k in step_ends(a, delimiter_id):
            prefixes += [generator.prefix(a, k)] * rollouts
            owner.append(i)
    log(f"PRM labels: {len(answers)} samples, {len(owner)} step prefixes x {rollouts} rollouts")
    done = generator.extend(prefixes, max_new_tokens, unlimited)
    solved = np.array([task.solved(c.prompt, c.text) for c in done], dtype=np.float64)
    per_prefix = solved.reshape(-1, rollouts).mean(1) if len(solved) else np.zeros(0)
    out = [
        StepLabels(a, step_ends(a, delimiter_id), [], task.solved(a.prompt, a.text))
        for a in answers
    ]
    for i, label in zip(owner, per_prefix, strict=True):
        out[i].labels.append(float(label))
    log(f"PRM labels made in {time.time() - start:.0f}s, mean label {per_prefix.mean():.3f}")
    return out


def outcome_label(answer: Candidate, task: CountdownTask, eos_id: int) -> StepLabels:
    """`answer` labelled once, with whether the verifier calls it solved, at its last token
    before end-of-sequence: where `ProcessRewardModel.step_scores` reads its last score."""
    ids = answer.token_ids
    end = len(ids) - 1 if ids and ids[-1] == eos_id else len(ids)
    solved = task.solved(answer.prompt, answer.text)
    return StepLabels(answer, [end] if end else [], [float(solved)], solved)


def outcome_labels(
    generator: Generator,
    task: CountdownTask,
    prompts: list[str],
    *,
    samples: int,
    max_new_tokens: int,
    eos_id: int,
) -> list[StepLabels]:
    """`samples` policy answers per prompt with exact outcome labels (`outcome_label`): one
    verifier call each, no rollouts, so cheap enough for many samples per problem."""
    unlimited = Account(Budget(max_tokens=2**62))
    rows = [c for p in prompts for c in generator.start(p, samples, max_new_tokens)]
    return [
        outcome_label(a, task, eos_id) for a in generator.extend(rows, max_new_tokens, unlimited)
    ]


def pick_check(prm, generator: Generator, task: CountdownTask, prompts: list[str], n: int) -> dict:
    """Best-of-n picked by the PRM's last-step score on each prompt: the fraction of prompts
    whose pick is solved, next to the fraction with any solved sample (a perfect judge), the
    mean over samples (a random pick), and how often the pick ends on the target unsolved (it
    broke the rules on the way). All prompts' samples are drawn and scored in one batch."""
    unlimited = Account(Budget(max_tokens=2**62))
    rows = [c for p in prompts for c in generator.start(p, n, task.max_new_tokens)]
    answers = generator.extend(rows, task.max_new_tokens, unlimited)
    solved = np.array([task.solved(a.prompt, a.text) for a in answers]).reshape(len(prompts), n)
    best = np.asarray(prm(answers)).reshape(len(prompts), n).argmax(1)
    picks = [answers[i * n + b] for i, b in enumerate(best)]
    on_target = np.array(
        [countdown.final_answer(a.text) == countdown.parse_prompt(a.prompt)[1] for a in picks]
    )
    picked = solved[np.arange(len(prompts)), best]
    return {
        "prompts": len(prompts),
        "samples": n,
        "pick_solved": float(picked.mean()),
        "any_solved": float(solved.any(1).mean()),
        "random_pick_solved": float(solved.mean()),
        "pick_on_target_unsolved": float((on_target & ~picked).mean()),
    }


def held_out_pick(prm, generator: Generator, task: CountdownTask, cfg: PRMConfig) -> dict:
    """`pick_check` on train-prm's held-out problems, seeded alike for every PRM so that any
    two PRMs judge the very same samples."""
    prompts = [p.prompt for p in task.make_problems(cfg.eval_problems, seed=30_000 + cfg.seed)]
    torch.manual_seed(40_000 + cfg.seed)
    return pick_check(prm, generator, task, prompts, cfg.pick_samples)


def _pad(rows: list[list[int]], value: int) -> torch.Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([r + [value] * (width - len(r)) for r in rows], dtype=torch.long)


def train_prm(
    gen_dir: Path, data: list[StepLabels], out_dir: Path, cfg: PRMConfig, *, half: bool, log=print
) -> Path:
    """Fine-tune the generator's transformer with a one-logit head on the step labels."""
    rows = [d for d in data if d.ends]
    model = GPT2ForSequenceClassification.from_pretrained(
        str(gen_dir), num_labels=1, dtype=torch.float32
    )
    tok_pad = model.config.pad_token_id
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=cfg.steps)
    model.train()
    start = time.time()
    for step in range(cfg.steps):
        batch = rng.sample(rows, min(cfg.batch, len(rows)))
        x = _pad([list(d.sample.prompt_ids + d.sample.token_ids) for d in batch], tok_pad)
        target = torch.full(x.shape, -1.0)  # B x T; -1 marks positions without a label
        for r, d in enumerate(batch):
            at = [len(d.sample.prompt_ids) + k - 1 for k in d.ends]  # the delimiter's position
            target[r, at] = torch.tensor(d.labels, dtype=torch.float32)
        hidden = model.transformer(input_ids=x, attention_mask=(x != tok_pad).long())
        logits = model.score(hidden.last_hidden_state)[..., 0]  # B x T
        labelled = target >= 0
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            logits[labelled], target[labelled]
        )
        _update(opt, sched, loss, clip=model)
        if step % 500 == 0 or step == cfg.steps - 1:
            log(f"PRM step {step:5d}  bce {loss.item():.4f}  {time.time() - start:.0f}s")
    return _save(model, AutoTokenizer.from_pretrained(str(gen_dir)), out_dir, half)


def evaluate_prm(prm, data: list[StepLabels], bins: int = 10) -> dict:
    """Step-label accuracy (PRM > 0.5 against label >= 0.5), Brier score, expected calibration
    error and Spearman correlation with the Monte-Carlo labels; overall and by step index."""
    preds, labels, index = [], [], []
    for d in data:
        if not d.ends:
            continue
        scores = prm.step_scores([d.sample])[0]
        # step_scores adds the last token when the text does not end on a delimiter; drop it.
        preds += list(scores[: len(d.ends)])
        labels += d.labels
        index += list(range(len(d.ends)))
    p, y, idx = np.array(preds), np.array(labels), np.array(index)
    out = {"all": _calibration(p, y, bins)}
    for k in np.unique(idx):
        out[f"step_{k + 1}"] = _calibration(p[idx == k], y[idx == k], bins)
    return out


def _calibration(p: np.ndarray, y: np.ndarray, bins: int) -> dict:
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges) - 1, 0, bins - 1)
    ece = sum(
        abs(p[which == b].mean() - y[which == b].mean()) * (which == b).mean()
        for b in range(bins)
        if (which == b).any()
    )
    rank = spearmanr(p, y).statistic if np.ptp(p) > 0 and np.ptp(y) > 0 else float("nan")
    hard = y > 0  # Math-Shepherd's hard label: some continuation from the prefix was solved
    auroc = roc_auc_score(hard, p) if 0 < hard.sum() < len(hard) else float("nan")
    return {
        "steps": len(p),
        "accuracy": float(np.mean((p > 0.5) == (y >= 0.5))),
        "majority_baseline": float(max(np.mean(y >= 0.5), np.mean(y < 0.5))),
        "brier": float(np.mean((p - y) ** 2)),
        "ece": float(ece),
        "spearman": float(rank),
        "auroc_any_solved": float(auroc),
        "mean_label": float(y.mean()),
        "mean_prediction": float(p.mean()),
    }


def _timed(times: dict, key: str, fn):
    start = time.time()
    out = fn()
    times[key] = round(time.time() - start, 1)
    return out


def config_dict(cfg: PRMConfig) -> dict:
    return asdict(cfg)


def run_train_prm(root: Path, cfg: PRMConfig, *, half: bool, log=print) -> dict:
    """Label, train and evaluate a PRM on the generator under `root`: writes root/prm/ and
    root/prm.json (config, timings, held-out accuracy, calibration and the pick check)."""
    from forethought.lm.artifacts.shipped import task_of
    from forethought.lm.prm import ProcessRewardModel
    from forethought.storage import write_json

    task = task_of(root)
    gen = Generator.from_pretrained(str(root / "generator"), flag="out", batch_size=512)
    delimiter = gen.tokenizer.convert_tokens_to_ids(task.step_delimiter)
    times = {}

    def labels(problems: int, seed: int, solutions: bool) -> list[StepLabels]:
        torch.manual_seed(seed)
        made = task.make_problems(problems, seed=seed)
        prompts = [p.prompt for p in made]
        known = [";".join(p.solution) + task.step_delimiter for p in made] if solutions else None
        return label_steps(
            gen, task, prompts, samples=cfg.samples, rollouts=cfg.rollouts,
            max_new_tokens=task.max_new_tokens, delimiter_id=delimiter, solutions=known, log=log,
        )  # fmt: skip

    def all_labels() -> tuple[list[StepLabels], list[StepLabels]]:
        train = labels(cfg.problems, cfg.seed + 5, cfg.solutions)  # seeds 0..4: others' data
        if cfg.outcomes:  # after the step labels, which stay the same with or without them
            made = task.make_problems(cfg.problems, seed=cfg.seed + 5)  # the same problems again
            train += outcome_labels(
                gen, task, [p.prompt for p in made], samples=cfg.outcomes,
                max_new_tokens=task.max_new_tokens, eos_id=gen.eos_id,
            )  # fmt: skip
            log(f"PRM outcome labels: {cfg.outcomes} samples x {len(made)} problems")
        return train, labels(cfg.eval_problems, 30_000 + cfg.seed, False)

    train, held_out = _timed(times, "labels_s", all_labels)
    _timed(times, "train_s", lambda: train_prm(root / "generator", train, root / "prm", cfg,
                                               half=half, log=log))  # fmt: skip
    prm = ProcessRewardModel.from_pretrained(
        str(root / "prm"), step_delimiter=task.step_delimiter, flag="out"
    )
    report = {
        "task": task.name,
        "config": config_dict(cfg),
        "seconds": times,
        "torch_threads": torch.get_num_threads(),
        "train_steps_labelled": sum(len(d.ends) for d in train),
        "train_mean_label": float(np.mean([y for d in train for y in d.labels])),
        "held_out": evaluate_prm(prm, held_out),
        "pick": _timed(times, "pick_s", lambda: held_out_pick(prm, gen, task, cfg)),
        "made_by": "forethought lm train-prm --out DIR (config above)",
    }
    write_json(root / "prm.json", report)
    return report
