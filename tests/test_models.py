"""The dynamics ensemble: vectorisation, fitting known systems, calibrated variance."""

import numpy as np
import torch

from forethought.models import DynamicsModel, EnsembleLinear, FitConfig, ModelConfig, ModelTrainer
from forethought.types import TransitionBatch


def transitions(obs, action, next_obs, reward=None):
    n = len(obs)
    return TransitionBatch(
        obs=obs.astype(np.float32),
        action=action.astype(np.float32),
        reward=np.zeros(n, np.float32) if reward is None else reward.astype(np.float32),
        next_obs=next_obs.astype(np.float32),
        terminated=np.zeros(n, bool),
        truncated=np.zeros(n, bool),
    )


def test_ensemble_linear_equals_a_loop_over_members():
    torch.manual_seed(0)
    layer = EnsembleLinear(4, 3, 5)
    x = torch.randn(4, 7, 3)
    looped = torch.stack([x[e] @ layer.weight[e] + layer.bias[e] for e in range(4)])
    torch.testing.assert_close(layer(x), looped)


def test_learns_a_known_linear_system():
    rng = np.random.default_rng(0)
    a_matrix = np.array([[0.9, 0.1, 0.0], [-0.2, 0.8, 0.1], [0.0, 0.3, 0.7]])
    b_matrix = np.array([[0.0], [0.5], [1.0]])
    obs = rng.uniform(-1, 1, (2000, 3))
    action = rng.uniform(-1, 1, (2000, 1))
    next_obs = obs @ a_matrix.T + action @ b_matrix.T
    torch.manual_seed(0)
    model = DynamicsModel(
        3, 1, ModelConfig(ensemble_size=3, hidden_size=64, num_hidden_layers=2, probabilistic=False)
    )
    report = ModelTrainer(model, FitConfig(batch_size=128, max_epochs=150, patience=20)).fit(
        transitions(obs, action, next_obs), rng
    )
    test_obs = torch.as_tensor(rng.uniform(-1, 1, (500, 3)), dtype=torch.float32)
    test_action = torch.as_tensor(rng.uniform(-1, 1, (500, 1)), dtype=torch.float32)
    truth = test_obs @ torch.as_tensor(
        a_matrix.T, dtype=torch.float32
    ) + test_action @ torch.as_tensor(b_matrix.T, dtype=torch.float32)
    with torch.no_grad():
        pred = model.predict(test_obs, test_action)
    assert pred.next_obs_mean.shape == (3, 500, 3)
    rmse = (pred.next_obs_mean - truth).pow(2).mean().sqrt().item()
    assert rmse < 0.02, f"rmse {rmse:.4f} (state scale ~0.6)"
    assert report.holdout_error < 1e-3


def test_predicted_variance_tracks_heteroscedastic_noise():
    """next = obs + noise with std 0.02 + 0.2 * |obs|: the learned variance should follow it."""
    rng = np.random.default_rng(1)
    obs = rng.uniform(-1, 1, (4000, 1))
    noise_std = 0.02 + 0.2 * np.abs(obs)
    next_obs = obs + rng.normal(size=obs.shape) * noise_std
    torch.manual_seed(1)
    model = DynamicsModel(1, 1, ModelConfig(ensemble_size=5, hidden_size=64, num_hidden_layers=2))
    report = ModelTrainer(model, FitConfig(batch_size=256, max_epochs=200, patience=25)).fit(
        transitions(obs, np.zeros((4000, 1)), next_obs), rng
    )
    grid = torch.linspace(-0.9, 0.9, 19).unsqueeze(1)
    with torch.no_grad():
        var = model.predict(grid, torch.zeros(19, 1)).next_obs_var.mean(0).squeeze(1)  # aleatoric
    true_var = (0.02 + 0.2 * grid.abs().squeeze(1)) ** 2
    ratio = var / true_var
    # Away from the kink of |obs| at 0 (which a smooth network rounds off), the predicted
    # variance follows the true one.
    smooth = grid.abs().squeeze(1) > 0.25
    assert torch.corrcoef(torch.stack([var[smooth], true_var[smooth]]))[0, 1] > 0.95
    assert ((ratio[smooth] > 0.7) & (ratio[smooth] < 1.4)).all(), ratio

    # Surprise (squared error over predicted variance) is about 1 for a calibrated model, and
    # far larger once the dynamics change by a few noise widths (here: every step shifted by 0.3).
    assert 0.5 < report.holdout_surprise < 2.0, report.holdout_surprise
    test = torch.as_tensor(rng.uniform(-0.9, 0.9, (500, 1)), dtype=torch.float32)
    inputs = model.make_inputs(test, torch.zeros(500, 1))
    same = test + torch.randn(500, 1) * (0.02 + 0.2 * test.abs())
    assert 0.5 < model.surprise(inputs, model.make_targets(test, same, None)).mean() < 2.0
    changed = model.make_targets(test, same + 0.3, None)
    assert model.surprise(inputs, changed).mean() > 10 * report.holdout_surprise


def test_learned_reward_and_termination_heads():
    rng = np.random.default_rng(2)
    obs = rng.uniform(-1, 1, (3000, 2))
    action = rng.uniform(-1, 1, (3000, 1))
    next_obs = obs + 0.1 * action
    reward = -(obs**2).sum(1)
    data = transitions(obs, action, next_obs, reward)
    data = TransitionBatch(**{**data.__dict__, "terminated": next_obs[:, 0] > 0.5})
    torch.manual_seed(2)
    model = DynamicsModel(
        2, 1, ModelConfig(ensemble_size=2, hidden_size=64, num_hidden_layers=2), True, True
    )
    ModelTrainer(model, FitConfig(batch_size=128, max_epochs=100, patience=15)).fit(data, rng)
    with torch.no_grad():
        pred = model.predict(torch.tensor([[0.9, 0.0], [0.0, 0.0]]), torch.zeros(2, 1))
    assert (
        abs(pred.reward[:, 0].mean().item() + 0.81) < 0.1
        and abs(pred.reward[:, 1].mean().item()) < 0.1
    )
    assert (pred.terminated_logit[:, 0] > 0).all() and (pred.terminated_logit[:, 1] < 0).all()


def test_bootstrap_members_disagree_away_from_data_and_fit_is_deterministic():
    def fit(seed):
        rng = np.random.default_rng(seed)
        obs = rng.uniform(-1, 1, (300, 1))
        torch.manual_seed(seed)
        model = DynamicsModel(
            1, 1, ModelConfig(ensemble_size=4, hidden_size=32, num_hidden_layers=2)
        )
        report = ModelTrainer(model, FitConfig(max_epochs=30)).fit(
            transitions(obs, np.zeros((300, 1)), np.sin(3 * obs)), rng
        )
        with torch.no_grad():
            means = model.predict(torch.tensor([[0.0], [4.0]]), torch.zeros(2, 1)).next_obs_mean
        return report, means.std(0).squeeze(1)

    report_a, spread = fit(0)
    report_b, _ = fit(0)
    assert report_a.holdout_error == report_b.holdout_error  # same seed, same fit
    assert spread[1] > 3 * spread[0]  # members agree on the data, disagree far from it


def test_inference_fast_path_equals_the_autograd_path():
    from forethought.models import EnsembleMLP

    for activation in ("silu", "relu", "tanh", "elu"):
        torch.manual_seed(0)
        net = EnsembleMLP(3, 4, 2, hidden_size=16, num_hidden_layers=2, activation=activation)
        x = torch.randn(3, 9, 4)
        with torch.no_grad():
            fast = net(x)
        slow = net(x).detach()
        torch.testing.assert_close(fast, slow)


def test_inference_path_with_rows_split_across_threads_follows_weight_updates():
    """Odd ensembles on 2 threads cut each member's rows into pieces with a cached, repeated
    weight (see EnsembleMLP._batched_matmul): results must not change, also after the weights
    are updated in place (as an optimiser step does) and for row counts that do not split."""
    from forethought.models import EnsembleMLP

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        torch.manual_seed(0)
        net = EnsembleMLP(5, 4, 3, hidden_size=64, num_hidden_layers=3, activation="relu")
        for rows in (1000, 999):  # large enough for the scratch path; 999 does not split
            x = torch.randn(5, rows, 4)
            with torch.no_grad():
                fast = net(x)
                assert len(net._buffers_for_inference) > 0
            torch.testing.assert_close(fast, net(x).detach())
        with torch.no_grad():
            for layer in net.layers[::2]:
                layer.weight.mul_(1.5)  # in place, like an optimiser step
            fast = net(x := torch.randn(5, 1000, 4))
        torch.testing.assert_close(fast, net(x).detach())
    finally:
        torch.set_num_threads(threads)
