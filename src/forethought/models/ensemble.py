"""Vectorised ensembles: E independent MLPs evaluated with one batched matmul per layer.

Every tensor that flows through an ensemble carries the member dimension first (E x B x D), so
there is never a Python loop over members.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


class EnsembleLinear(nn.Module):
    """E affine maps applied at once: (E x B x In) -> (E x B x Out)."""

    def __init__(self, ensemble_size: int, in_features: int, out_features: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(ensemble_size, in_features, out_features))
        self.bias = nn.Parameter(torch.zeros(ensemble_size, 1, out_features))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        # Same scale as nn.Linear's default (Kaiming-uniform with a=sqrt(5)), per member.
        bound = 1.0 / math.sqrt(self.weight.shape[1])
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


# Below this many activation elements per layer (1 MB of fp32) a fresh tensor is cheap and the
# bookkeeping of scratch buffers and thread splitting costs more than it saves (the default
# 2-core configuration plans with 5 x 100 x 64 activations).
SCRATCH_MIN_ELEMENTS = 1 << 18


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
        # For the inference path (see forward): plain references, built once (slicing the
        # Sequential would build a new module on every call).
        self._linears = tuple(self.layers[::2])
        self._inplace_activation = INPLACE_ACTIVATIONS[ACTIVATIONS[activation]]
        # Scratch space for inference (see forward); not state: never saved or moved.
        self._buffers_for_inference: dict[tuple, Any] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.dim() == 3 and x.shape[0] == self.ensemble_size, (
            f"expected E x B x D, got {tuple(x.shape)}"
        )
        if torch.is_grad_enabled():
            return self.layers(x)
        # Planning and imagination run without autograd. Hidden activations go into two scratch
        # buffers reused from call to call (ping-pong), with the bias and the activation applied
        # in place: a fresh E x B x H tensor per layer costs page faults on every call (bmm into
        # a reused buffer ran 1.5x faster at benchmarks/latency.py's and imagination.py's
        # shapes), and two more per layer for the bias and the activation.
        linears, activation = self._linears, self._inplace_activation
        for i, layer in enumerate(linears):
            if i + 1 == len(linears):  # the output is the caller's to keep: a fresh tensor
                return torch.baddbmm(layer.bias, x, layer.weight)
            width = layer.weight.shape[-1]
            if x.shape[0] * x.shape[1] * width < SCRATCH_MIN_ELEMENTS:  # Python overhead wins
                x = activation(torch.bmm(x, layer.weight).add_(layer.bias))
                continue
            out = self._scratch(i % 2, x, width)
            x = activation(self._batched_matmul(x, layer, out).add_(layer.bias))
        return x

    def _batched_matmul(self, x: torch.Tensor, layer: EnsembleLinear, out: torch.Tensor):
        """x @ W per member into `out`. CPU bmm hands whole batch entries to threads, so E = 5
        members on 2 threads run in 3 rounds (222 GFLOP/s measured vs 267 for an even count):
        each member's rows are then cut into pieces so that the pieces divide among the threads,
        with the member's weight repeated per piece (cached until the weights change)."""
        e, rows, _ = x.shape
        pieces = torch.get_num_threads() // math.gcd(e, torch.get_num_threads())
        if pieces == 1 or rows % pieces or not x.is_contiguous() or x.device.type != "cpu":
            return torch.bmm(x, layer.weight, out=out)
        weight = self._repeated_weight(layer, pieces)
        shape = (e * pieces, rows // pieces)
        torch.bmm(x.view(*shape, -1), weight, out=out.view(*shape, -1))
        return out

    def _repeated_weight(self, layer: EnsembleLinear, pieces: int) -> torch.Tensor:
        key = (id(layer), pieces, torch.is_inference_mode_enabled())
        version = (layer.weight._version, layer.weight.data_ptr())
        cached = self._buffers_for_inference.get(key)
        if cached is None or cached[0] != version:
            cached = (version, layer.weight.repeat_interleave(pieces, dim=0))
            self._buffers_for_inference[key] = cached
        return cached[1]

    def _scratch(self, slot: int, like: torch.Tensor, width: int) -> torch.Tensor:
        """A reusable E x B x width buffer (grown when needed, never shrunk)."""
        shape = (like.shape[0], like.shape[1], width)
        key = (slot, like.device, like.dtype, torch.is_inference_mode_enabled())
        buffer = self._buffers_for_inference.get(key)
        if buffer is None or buffer.numel() < like.shape[0] * like.shape[1] * width:
            buffer = torch.empty(shape, device=like.device, dtype=like.dtype)
            self._buffers_for_inference[key] = buffer
        return buffer.view(-1)[: shape[0] * shape[1] * width].view(shape)
