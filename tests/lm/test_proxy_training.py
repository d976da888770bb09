"""The proxy reward's training: the within-prompt ranking loss and a run that uses it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from forethought.lm.artifacts.pretrain import PretrainConfig, ranking_loss, train_proxy
from forethought.lm.budget import Account, Budget


def test_ranking_loss_orders_within_groups_only():
    gold = torch.tensor([[1.0, 0.7, 0.7], [0.2, 0.5, 0.5]])
    right = torch.tensor([[3.0, 0.0, 0.0], [-5.0, 9.0, 9.0]])  # each group in gold's order
    wrong = torch.tensor([[0.0, 3.0, 3.0], [9.0, -5.0, 9.0]])
    assert ranking_loss(right, gold).item() < 1e-6
    # Two reversed pairs of 3 / 0.1 = 30 nats in group 1; in group 2 one reversed by 140 nats
    # and one tie (softplus(0) = log 2): (30 + 30 + 140 + log 2) / 4.
    assert ranking_loss(wrong, gold).item() == pytest.approx((200 + np.log(2)) / 4, rel=1e-4)
    # Scores shifted by a constant per group (a prompt's difficulty) do not matter.
    shifted = right + torch.tensor([[100.0], [-100.0]])
    assert ranking_loss(shifted, gold).item() == pytest.approx(ranking_loss(right, gold).item())
    ties = torch.zeros(2, 3, requires_grad=True)
    loss = ranking_loss(ties, torch.ones(2, 3))
    loss.backward()
    assert loss.item() == 0.0 and ties.grad is not None


def test_proxy_trains_with_the_ranking_loss_and_loads_as_a_reward(tiny_dirs, tmp_path):
    from forethought.lm.rewards import ClassifierReward

    gen_dir, _ = tiny_dirs
    cfg = PretrainConfig(
        proxy_samples=16,
        proxy_demos=8,
        proxy_steps=3,
        proxy_init="scratch",
        proxy_pairwise=1.0,
        batch=8,
        max_new_tokens=12,
    )
    logged = []
    out = train_proxy(Path(gen_dir), tmp_path / "proxy", cfg, log=logged.append)
    assert any("proxy step" in line for line in logged)
    reward = ClassifierReward.from_pretrained(str(out))
    from forethought.lm.generator import Generator

    cands = Generator.from_pretrained(gen_dir).generate("1,2>3:", 2, 12, Account(Budget(24)))
    account = Account(Budget(1, max_reward_calls=2))
    scores = reward(cands, account)
    assert np.isfinite(np.asarray(scores)).all() and account.spent.reward_calls == 2


def test_train_reward_proxy_only_keeps_the_value_models(tmp_path, monkeypatch, capsys):
    """`train-reward --proxy-only` retrains the proxy with the given settings, leaves the value
    predictors and value model alone, and records the proxy's settings in meta.json."""
    import json

    from forethought.cli import main
    from forethought.lm.artifacts import pretrain

    root = tmp_path / "models"
    (root / "generator").mkdir(parents=True)
    (root / "meta.json").write_text(json.dumps({"config": {"task": "countdown", "gen_steps": 7}}))
    seen = []

    def fake_train_proxy(gen_dir, out_dir, cfg, log=print):
        seen.append(cfg)
        out_dir.mkdir()
        return out_dir

    def must_not_run(*args, **kwargs):
        raise AssertionError("--proxy-only retrained a value model")

    monkeypatch.setattr(pretrain, "train_proxy", fake_train_proxy)
    monkeypatch.setattr(pretrain, "fit_values", must_not_run)
    monkeypatch.setattr(pretrain, "train_value_model", must_not_run)
    argv = ["lm", "train-reward", "--out", str(root), "--proxy-only", "--proxy-pairwise", "2"]
    argv += ["--proxy-samples", "40"]
    assert main(argv) == 0
    assert [(cfg.proxy_pairwise, cfg.proxy_samples) for cfg in seen] == [(2.0, 40)]
    meta = json.loads((root / "meta.json").read_text())
    assert meta["config"]["gen_steps"] == 7 and meta["config"]["proxy_pairwise"] == 2.0
    assert meta["config"]["proxy_samples"] == 40
    assert "proxy_s" in meta["seconds"]
    assert "proxy reward written to" in capsys.readouterr().out
