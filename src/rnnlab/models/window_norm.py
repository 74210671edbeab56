"""Per-window normalisation of a forecaster's input, undone on its output.

``last`` (NLinear, Zeng et al. 2023) shifts each window by its last observed target value, so a
trending series never leaves the range seen in training. ``revin`` (reversible instance
normalisation, Kim et al. 2022) scales each window to zero mean and unit variance per channel,
with a learnable affine map, and applies the inverse to the forecast: level and amplitude
shifts between training and test windows then cost nothing.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

WINDOW_NORMS: tuple[str, ...] = ("none", "last", "revin")
EPS = 1e-5

Restore = Callable[[Tensor], Tensor]


class WindowNorm(nn.Module):
    """``norm(x)`` -> (normalised x, ``restore``); ``restore`` maps a (B, H, targets) forecast
    in normalised units back to the window's own units. Targets are the first channels."""

    def __init__(self, kind: str, n_features: int, n_targets: int) -> None:
        super().__init__()
        if kind not in WINDOW_NORMS:
            raise ValueError(f"Unknown window_norm {kind!r}; choose one of {WINDOW_NORMS}.")
        self.kind, self.n_targets = kind, n_targets
        if kind == "revin":
            self.weight = nn.Parameter(torch.ones(n_features))
            self.bias = nn.Parameter(torch.zeros(n_features))

    def forward(self, x: Tensor) -> tuple[Tensor, Restore]:
        nt = self.n_targets
        if self.kind == "last":
            last = x[:, -1:, :nt]  # (B, 1, targets)
            return torch.cat([x[..., :nt] - last, x[..., nt:]], dim=-1), lambda y: y + last
        if self.kind == "revin":
            mean = x.mean(dim=1, keepdim=True).detach()  # (B, 1, F)
            std = torch.sqrt(x.var(dim=1, keepdim=True, unbiased=False) + EPS).detach()
            normed = (x - mean) / std * self.weight + self.bias

            def restore(y: Tensor) -> Tensor:
                y = (y - self.bias[:nt]) / (self.weight[:nt] + EPS * EPS)
                return y * std[..., :nt] + mean[..., :nt]

            return normed, restore
        return x, lambda y: y
