"""Non-recurrent baselines with the same interface as a pooled recurrent encoder.

Both map (B, T, F) [+ lengths] -> (B, output_size), so a recurrent model can be compared against
"no recurrence at all" (MLP on a flattened window) and "attention instead of recurrence"
(Transformer encoder) with the same head and training loop.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from rnnlab.models.attention import lengths_to_mask
from rnnlab.models.names import ACTIVATIONS, LINEAR_VARIANTS

_ACTIVATION_MODULES = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU}


class MLPEncoder(nn.Module):
    """Feed-forward net on a flattened fixed-length window (B, T, F) -> (B, T*F) -> (B, H).

    It has no notion of time order or variable length: every step gets its own weights, which is
    exactly what makes it a useful lower bound for the recurrent models.
    """

    def __init__(
        self,
        input_size: int,
        seq_len: int,
        hidden_size: int,
        num_layers: int,
        activation: str = "relu",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"Unknown activation {activation!r}; choose one of {ACTIVATIONS}.")
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}.")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
        self.seq_len = seq_len
        self.output_size = hidden_size

        layers: list[nn.Module] = []
        in_features = input_size * seq_len
        for _ in range(num_layers):
            layers += [nn.Linear(in_features, hidden_size), _ACTIVATION_MODULES[activation]()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            in_features = hidden_size
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """x (B, T, F) -> (B, H). ``lengths`` must be all equal to T if given (no padding)."""
        batch, steps, _ = x.shape
        if steps != self.seq_len:
            raise ValueError(
                f"MLPEncoder needs fixed-length windows of seq_len={self.seq_len} steps "
                f"(the configured lookback), got T={steps}."
            )
        if lengths is not None and bool((lengths != steps).any()):
            # Padding would be fed to the MLP as if it were data, so refuse it loudly.
            raise ValueError(
                f"MLPEncoder cannot handle padded sequences; all lengths must equal "
                f"seq_len={self.seq_len}."
            )
        return self.net(x.reshape(batch, -1))  # (B, H)


class SinusoidalPositionalEncoding(nn.Module):
    """Fixed sine/cosine position encodings (Vaswani et al. 2017), added to the inputs."""

    def __init__(self, d_model: int, max_len: int = 5000, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        position = torch.arange(max_len).unsqueeze(1)  # (max_len, 1)
        div_term = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, d_model)  # (max_len, d_model)
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term[: d_model // 2])  # odd d_model safe
        self.register_buffer("pe", pe, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        steps = x.size(1)
        if steps > self.pe.size(0):
            raise ValueError(
                f"Sequence length {steps} exceeds the positional encoding max_len "
                f"{self.pe.size(0)}; raise max_len."
            )
        return self.dropout(x + self.pe[:steps])  # (B, T, d_model)


class TransformerEncoderBaseline(nn.Module):
    """Pre-norm Transformer encoder with masked mean pooling: (B, T, F) -> (B, d_model)."""

    def __init__(
        self,
        input_size: int,
        d_model: int,
        num_heads: int,
        num_layers: int,
        dim_feedforward: int,
        dropout: float = 0.0,
        max_len: int = 5000,
    ) -> None:
        super().__init__()
        if num_heads < 1 or d_model % num_heads != 0:
            raise ValueError(
                f"Transformer needs d_model (hidden_size) divisible by num_heads, "
                f"got d_model={d_model}, num_heads={num_heads}."
            )
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}.")
        self.output_size = d_model
        self.input_proj = nn.Linear(input_size, d_model)
        self.pos_encoding = SinusoidalPositionalEncoding(d_model, max_len, dropout)
        layer = nn.TransformerEncoderLayer(
            d_model,
            num_heads,
            dim_feedforward=dim_feedforward,
            dropout=dropout,
            batch_first=True,
            norm_first=True,
        )
        # Pre-norm layers leave the residual stream un-normalised, hence the final LayerNorm.
        # Nested tensors are an inference fast path that is not supported with norm_first.
        self.encoder = nn.TransformerEncoder(
            layer, num_layers, norm=nn.LayerNorm(d_model), enable_nested_tensor=False
        )

    def steps(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """x (B, T, F), optional lengths (B,) -> every step's output (B, T, d_model), zeros at
        padded steps (per-step heads such as speech recognition use these)."""
        h = self.pos_encoding(self.input_proj(x))  # (B, T, d_model)
        if lengths is None:
            return self.encoder(h)
        mask = lengths_to_mask(lengths.to(x.device), x.size(1))  # (B, T), True = real
        h = self.encoder(h, src_key_padding_mask=~mask)  # (B, T, d_model)
        # masked_fill rather than multiply: padded rows may hold NaN on inference fast paths.
        return h.masked_fill(~mask.unsqueeze(-1), 0.0)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """x (B, T, F), optional lengths (B,) -> mean of the real steps' outputs (B, d_model)."""
        h = self.steps(x, lengths)  # (B, T, d_model)
        if lengths is None:
            return h.mean(dim=1)  # (B, d_model)
        return h.sum(dim=1) / lengths.to(h.device, h.dtype).unsqueeze(1)  # (B, d_model)


class LinearEncoder(nn.Module):
    """The window itself as features, so the head is one linear map from lookback to horizon.

    ``nlinear``: the flattened window (B, T*F); with the forecast task's default
    ``window_norm=last`` this is NLinear (Zeng et al. 2023). ``dlinear``: the window split into a
    moving-average trend and the seasonal rest, both flattened (B, 2*T*F), so the head is
    DLinear's two linear layers summed.
    """

    def __init__(self, input_size: int, seq_len: int, variant: str, moving_avg: int) -> None:
        super().__init__()
        if variant not in LINEAR_VARIANTS:
            raise ValueError(
                f"Unknown linear variant {variant!r}; choose one of {LINEAR_VARIANTS}."
            )
        if moving_avg < 1 or moving_avg % 2 == 0:
            raise ValueError(f"moving_avg must be an odd window >= 1, got {moving_avg}.")
        self.seq_len, self.variant, self.moving_avg = seq_len, variant, moving_avg
        self.output_size = input_size * seq_len * (2 if variant == "dlinear" else 1)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        padded = lengths is not None and bool((lengths != x.shape[1]).any())
        if x.shape[1] != self.seq_len or padded:
            raise ValueError(
                f"A linear model needs unpadded windows of seq_len={self.seq_len} steps, "
                f"got T={x.shape[1]}."
            )
        if self.variant == "nlinear":
            return x.reshape(x.shape[0], -1)  # (B, T*F)
        trend = moving_average(x, self.moving_avg)  # (B, T, F)
        return torch.cat([(x - trend).reshape(x.shape[0], -1), trend.reshape(x.shape[0], -1)], 1)


def moving_average(x: Tensor, kernel: int) -> Tensor:
    """Centred moving average over time of (B, T, F), the ends padded with their edge values."""
    half = (kernel - 1) // 2
    padded = torch.cat([x[:, :1].expand(-1, half, -1), x, x[:, -1:].expand(-1, half, -1)], 1)
    return nn.functional.avg_pool1d(padded.transpose(1, 2), kernel, stride=1).transpose(1, 2)
