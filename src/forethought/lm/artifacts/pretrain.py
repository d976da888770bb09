"""Pretraining of the Countdown models: a GPT-2 generator on imperfect demonstrations, a GPT-2
sequence-classifier proxy reward on the gold verifier's labels of generator samples, a
transformer value model on every prefix of those samples, and the ridge value predictors.

Both are ordinary transformers models saved with `save_pretrained` (safetensors) and loaded
back with `from_pretrained`, the same path a hub model takes. The loops are plain PyTorch, one
readable loop each; they are small enough (about 1M parameters) to train in minutes on a CPU.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    AutoTokenizer,
    GPT2Config,
    GPT2ForSequenceClassification,
    GPT2LMHeadModel,
)

from forethought.lm.artifacts.tokenizer import countdown_tokenizer
from forethought.lm.budget import Account, Budget
from forethought.lm.generator import Generator
from forethought.lm.tasks import countdown
from forethought.lm.value import make_value, prefix_dataset


@dataclass(frozen=True)
class PretrainConfig:
    """Sizes and schedule for the shipped Countdown generator and proxy reward."""

    task: str = "countdown"
    """Built-in Countdown setting the models learn (see `countdown.TASKS`)."""
    seed: int = 0
    """Seed for problems, demonstrations, initialisation and sampling."""
    train_problems: int = 20_000
    """Distinct training problems (held-out evaluation problems are drawn from another seed)."""
    gen_steps: int = 1200
    """Optimiser steps for the generator."""
    gen_layers: int = 4
    gen_width: int = 128
    proxy_samples: int = 8000
    """Generator samples labelled by the gold verifier to train the proxy reward on."""
    proxy_demos: int = 4000
    """Demonstrations (labelled by the verifier) added to the proxy's training data."""
    proxy_steps: int = 800
    proxy_lr: float = 5e-4
    """Lower than the generator's: the proxy starts from trained weights (fine-tuning)."""
    proxy_init: str = "generator"
    """'generator': start the proxy from the generator's weights; 'scratch': a fresh small model of proxy_layers x proxy_width."""
    proxy_layers: int = 2
    proxy_width: int = 96
    proxy_pairwise: float = 0.0
    """Weight of a within-prompt ranking loss (Bradley-Terry on every pair of one prompt's answers whose gold scores differ) added to the proxy's regression; 0: regression alone, as shipped (1 lowered the countdown pick: README, judges)."""
    value_problems: int = 300
    """Problems (8 samples each) whose prefixes train the ridge value predictors."""
    value_model_problems: int = 8000
    """Problems (8 samples each) for the transformer value model (`value_model/`)."""
    value_model_steps: int = 8000
    value_model_lr: float = 1e-3
    batch: int = 64
    lr: float = 2e-3
    context: int = 64
    """Context window of both models (prompts <= 10 and answers <= 19 tokens)."""
    max_new_tokens: int | None = None
    """Answer length cap used when sampling training data (None: the task's own cap)."""
    half: bool = False
    """Save weights as float16 (half the disk; loaders upcast to float32 on CPU)."""

    @property
    def countdown(self) -> countdown.CountdownTask:
        return countdown.get_task(self.task)

    @property
    def answer_tokens(self) -> int:
        return self.max_new_tokens or self.countdown.max_new_tokens


def _gpt2_config(tok, cfg: PretrainConfig, layers: int, width: int) -> GPT2Config:
    return GPT2Config(
        vocab_size=len(tok),
        n_positions=cfg.context,
        n_embd=width,
        n_layer=layers,
        n_head=4,
        bos_token_id=tok.eos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )


def _pad(rows: list[list[int]], value: int) -> torch.Tensor:
    width = max(len(r) for r in rows)
    return torch.tensor([r + [value] * (width - len(r)) for r in rows], dtype=torch.long)


def _update(opt, sched, loss: torch.Tensor, clip: torch.nn.Module | None = None) -> None:
    """One optimiser and schedule step on `loss`; gradients clipped to norm 1 when `clip` is
    given. The proxy's loop passes none: it starts from trained weights at the lower proxy_lr,
    and its regression targets lie in [0, 1], so its gradients stay small unclipped (and
    clipping would change the weights the default config reproduces)."""
    opt.zero_grad()
    loss.backward()
    if clip is not None:
        torch.nn.utils.clip_grad_norm_(clip.parameters(), 1.0)
    opt.step()
    sched.step()


def _save(model, tok, out_dir: Path, half: bool = False) -> Path:
    """Model and tokenizer to `out_dir` with `save_pretrained`, loadable by `from_pretrained`;
    `half` stores float16 weights (the loaders upcast them to float32 on CPU)."""
    model.eval()
    if half:
        model = model.half()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return out_dir


def train_generator(out_dir: Path, cfg: PretrainConfig, log=print) -> Path:
    """Train the generator on demonstrations; only answer tokens carry loss (B x T labels)."""
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    tok = countdown_tokenizer()
    problems = cfg.countdown.make_problems(cfg.train_problems, seed=cfg.seed)
    model = GPT2LMHeadModel(_gpt2_config(tok, cfg, cfg.gen_layers, cfg.gen_width))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=cfg.gen_steps)
    model.train()
    start = time.time()
    for step in range(cfg.gen_steps):
        batch = rng.sample(problems, cfg.batch)
        ids, labels = [], []
        for p in batch:
            prompt = tok(p.prompt)["input_ids"]
            answer = tok(cfg.countdown.demonstration(p, rng))["input_ids"] + [tok.eos_token_id]
            ids.append(prompt + answer)
            labels.append([-100] * len(prompt) + answer)  # no loss on the prompt
        x, y = _pad(ids, tok.pad_token_id), _pad(labels, -100)
        loss = model(input_ids=x, attention_mask=(x != tok.pad_token_id).long(), labels=y).loss
        _update(opt, sched, loss, clip=model)
        if step % 250 == 0 or step == cfg.gen_steps - 1:
            log(f"generator step {step:5d}  loss {loss.item():.3f}  {time.time() - start:.0f}s")
    return _save(model, tok, out_dir, cfg.half)


def sample_labelled(
    gen_dir: Path,
    problems,
    per_problem: int,
    max_new_tokens: int,
    seed: int,
    task: countdown.CountdownTask = countdown.DEFAULT,
):
    """Generator samples for `problems` with their gold scores: (candidates, scores)."""
    gen = Generator.from_pretrained(str(gen_dir))
    torch.manual_seed(seed)
    cands, scores = [], []
    for p in problems:
        account = Account(Budget(per_problem * max_new_tokens))
        for c in gen.generate(p.prompt, per_problem, max_new_tokens, account):
            cands.append(c)
            scores.append(task.score(c.prompt, c.text))
    return cands, scores


def train_proxy(gen_dir: Path, out_dir: Path, cfg: PretrainConfig, log=print) -> Path:
    """Train the proxy reward (regression on gold scores) on generator samples."""
    rng = random.Random(cfg.seed + 1)
    per_problem = 4
    problems = cfg.countdown.make_problems(cfg.proxy_samples // per_problem, seed=cfg.seed + 1)
    cands, scores = sample_labelled(
        gen_dir, problems, per_problem, cfg.answer_tokens, cfg.seed, cfg.countdown
    )
    log(f"proxy data: {len(cands)} samples, mean gold {sum(scores) / len(scores):.3f}")
    texts = [c.prompt + c.text for c in cands]
    # Demonstrations on other problems widen coverage (solved answers are rare in samples).
    for p in cfg.countdown.make_problems(cfg.proxy_demos, seed=cfg.seed + 3):
        demo = cfg.countdown.demonstration(p, rng)
        texts.append(p.prompt + demo)
        scores.append(cfg.countdown.score(p.prompt, demo))
    tok = countdown_tokenizer()
    texts = [tok(t)["input_ids"] for t in texts]
    # The ranking loss reads whole prompts: rows i ... i+per_problem-1 of the samples answer one.
    groups = [list(range(i, i + per_problem)) for i in range(0, len(cands), per_problem)]
    demos = range(len(cands), len(texts))
    ranked = (cfg.batch - cfg.batch // 4) // per_problem  # prompts per batch; a quarter demos
    if cfg.proxy_init == "generator":
        # The usual reward-model recipe: start from the policy's weights, which already encode
        # the task's format and some arithmetic; only the score head starts from scratch.
        model = GPT2ForSequenceClassification.from_pretrained(
            str(gen_dir), num_labels=1, dtype=torch.float32
        )
    else:
        config = _gpt2_config(tok, cfg, cfg.proxy_layers, cfg.proxy_width)
        config.num_labels = 1  # a single regression output: the predicted gold score
        model = GPT2ForSequenceClassification(config)
    torch.manual_seed(cfg.seed + 1)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.proxy_lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.proxy_lr, total_steps=cfg.proxy_steps)
    model.train()
    start = time.time()
    for step in range(cfg.proxy_steps):
        if cfg.proxy_pairwise:
            idx = [i for g in rng.sample(groups, ranked) for i in g]
            idx += rng.sample(demos, cfg.batch - len(idx))
        else:
            idx = rng.sample(range(len(texts)), cfg.batch)
        x = _pad([texts[i] for i in idx], tok.pad_token_id)
        y = torch.tensor([scores[i] for i in idx], dtype=torch.float32)
        pred = model(input_ids=x, attention_mask=(x != tok.pad_token_id).long()).logits[:, 0]
        loss = torch.nn.functional.mse_loss(pred, y)
        if cfg.proxy_pairwise:
            rows, shape = ranked * per_problem, (ranked, per_problem)
            pairs = ranking_loss(pred[:rows].view(shape), y[:rows].view(shape))
            loss = loss + cfg.proxy_pairwise * pairs
        _update(opt, sched, loss)
        if step % 250 == 0 or step == cfg.proxy_steps - 1:
            log(f"proxy step {step:5d}  loss {loss.item():.4f}  {time.time() - start:.0f}s")
    return _save(model, tok, out_dir, cfg.half)


def ranking_loss(pred: torch.Tensor, gold: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Bradley-Terry loss over every ordered pair (i, j) of one group's answers (G x K) with
    gold_i > gold_j: the mean of -log sigmoid((pred_i - pred_j) / temperature). Gold scores of
    one prompt's answers lie 0.1-0.3 apart, so the temperature makes a gap of that size count."""
    better = gold[:, :, None] > gold[:, None, :] + 1e-6  # G x K x K
    if not better.any():
        return pred.sum() * 0.0
    margin = (pred[:, :, None] - pred[:, None, :]) / temperature
    return torch.nn.functional.softplus(-margin)[better].mean()


def train_value_model(gen_dir: Path, out_dir: Path, cfg: PretrainConfig, log=print) -> Path:
    """Fine-tune a value model: the generator's transformer with a scalar head on every token.

    Each generator sample gives one regression target, its final gold score, at every answer
    position at once, so one forward pass trains the value of all its prefixes (the critic of
    an outcome-supervised value model). The result is a plain `GPT2ForSequenceClassification`:
    scoring a prefix reads the head at its last token, exactly as a reward model scores a full
    answer, so it loads and runs through `ClassifierReward` like any hub reward model.
    """
    problems = cfg.countdown.make_problems(cfg.value_model_problems, seed=cfg.seed + 4)
    cands, scores = sample_labelled(
        gen_dir, problems, 8, cfg.answer_tokens, cfg.seed + 4, cfg.countdown
    )
    log(f"value model data: {len(cands)} samples, mean gold {sum(scores) / len(scores):.3f}")
    tok = AutoTokenizer.from_pretrained(str(gen_dir))
    rows = []  # (prompt + answer ids without EOS, prompt length, final gold score)
    for c, y in zip(cands, scores, strict=True):
        answer = [t for t in c.token_ids if t != tok.eos_token_id]
        rows.append((list(c.prompt_ids) + answer, len(c.prompt_ids), y))
    model = GPT2ForSequenceClassification.from_pretrained(
        str(gen_dir), num_labels=1, dtype=torch.float32
    )
    torch.manual_seed(cfg.seed + 4)
    rng = random.Random(cfg.seed + 4)
    lr, steps = cfg.value_model_lr, cfg.value_model_steps
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps)
    model.train()
    start = time.time()
    for step in range(steps):
        batch = rng.sample(rows, cfg.batch)
        x = _pad([r[0] for r in batch], tok.pad_token_id)  # B x T, right-padded
        positions = torch.arange(x.shape[1])
        # Loss on every answer position: the prefix that ends there, up to the whole answer.
        answer_mask = torch.stack(
            [(positions >= p) & (positions < len(ids)) for ids, p, _ in batch]
        ).float()  # B x T
        target = torch.tensor([r[2] for r in batch], dtype=torch.float32)[:, None]  # B x 1
        hidden = model.transformer(
            input_ids=x, attention_mask=(x != tok.pad_token_id).long()
        ).last_hidden_state
        value = model.score(hidden)[..., 0]  # B x T: the value of every prefix
        loss = (((value - target) ** 2) * answer_mask).sum() / answer_mask.sum()
        _update(opt, sched, loss, clip=model)
        if step % 500 == 0 or step == steps - 1:
            log(f"value model step {step:5d}  mse {loss.item():.4f}  {time.time() - start:.0f}s")
    return _save(model, tok, out_dir, cfg.half)


def fit_values(
    root: Path, cfg: PretrainConfig, log=print, kinds: tuple[str, ...] = ("hidden", "minilm")
) -> dict[str, float]:
    """Fit both value predictors on prefixes of generator samples labelled by the gold verifier.

    Problems come from their own seed, so they are disjoint in expectation from the proxy's and
    the evaluation's. Returns the chosen ridge alphas (for meta.json).
    """
    problems = cfg.countdown.make_problems(cfg.value_problems, seed=cfg.seed + 2)
    cands, scores = sample_labelled(
        root / "generator", problems, 8, cfg.answer_tokens, cfg.seed, cfg.countdown
    )
    gen = Generator.from_pretrained(str(root / "generator"))
    prefixes, targets = prefix_dataset(gen, cands, scores)
    log(f"value data: {len(cands)} samples -> {len(prefixes)} prefixes")
    alphas = {}
    for kind in kinds:
        value = make_value(kind, gen)
        start = time.time()
        value.fit(prefixes, targets).save(root / f"value_{kind}.npz")
        alphas[kind] = value.alpha
        log(f"value predictor {kind}: alpha {value.alpha:g}, fitted in {time.time() - start:.0f}s")
    return alphas
