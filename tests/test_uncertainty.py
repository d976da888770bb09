"""Epistemic and aleatoric uncertainty, separated: 1-D regression with a gap in the data and
heteroscedastic noise."""

import numpy as np
import torch

from forethought.models import DynamicsModel, FitConfig, ModelConfig, ModelTrainer, decompose
from test_models import transitions


def test_gap_raises_epistemic_and_aleatoric_matches_true_noise():
    rng = np.random.default_rng(0)
    # Dense data on [-1, -0.3] and [0.3, 1]; nothing in between.
    x = np.concatenate([rng.uniform(-1, -0.3, 3000), rng.uniform(0.3, 1, 3000)])[:, None]
    noise_std = 0.05 + 0.1 * (x + 1)  # grows from left to right
    y = x + np.sin(3 * x) * 0.5 + rng.normal(size=x.shape) * noise_std
    torch.manual_seed(0)
    model = DynamicsModel(1, 1, ModelConfig(ensemble_size=7, hidden_size=64, num_hidden_layers=2))
    ModelTrainer(model, FitConfig(batch_size=256, max_epochs=300, patience=30)).fit(
        transitions(x, np.zeros_like(x), y), rng
    )
    dense = torch.tensor([[-0.8], [-0.6], [-0.45], [0.45], [0.6], [0.8]])
    gap = torch.tensor([[-0.1], [0.0], [0.1]])
    with torch.no_grad():
        u_dense = decompose(model.predict(dense, torch.zeros(len(dense), 1)))
        u_gap = decompose(model.predict(gap, torch.zeros(len(gap), 1)))
    assert u_gap.epistemic.mean() > 3 * u_dense.epistemic.mean(), (
        u_gap.epistemic,
        u_dense.epistemic,
    )
    true_var = torch.as_tensor(0.05 + 0.1 * (dense.numpy() + 1), dtype=torch.float32) ** 2
    relative = (u_dense.aleatoric / true_var - 1).abs()
    assert (relative < 0.25).all(), u_dense.aleatoric / true_var
    torch.testing.assert_close(u_dense.total, u_dense.epistemic + u_dense.aleatoric)
