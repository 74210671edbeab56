"""Acoustic model for CTC speech recognition: feature frames in, per-frame character scores out.

Optional frame subsampling stacks ``subsample`` consecutive frames into one (fewer, wider
steps: faster recurrent layers, and CTC still has enough frames per character). Optional
``lookahead`` gives each step the next ``lookahead`` (stacked) steps as well: a unidirectional
model then hears a little of the future, at the price of that much latency when streaming. The
encoder is
a recurrent network (RNN/LSTM/GRU, stacked, uni- or bidirectional), or one of two
non-recurrent baselines: a feed-forward net that sees each frame with ``context`` frames either
side, and a Transformer encoder over the whole utterance.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from rnnlab.models.attention import lengths_to_mask
from rnnlab.models.baselines import TransformerEncoderBaseline
from rnnlab.models.encoders import RecurrentEncoder, State
from rnnlab.models.init import init_weights
from rnnlab.models.names import ACOUSTIC_ARCHS
from rnnlab.models.networks import build_encoder


class AcousticModel(nn.Module):
    def __init__(
        self,
        arch: str,
        n_features: int,
        n_outputs: int,
        *,
        subsample: int = 1,
        lookahead: int = 0,
        context: int = 0,
        init: str = "default",
        **encoder_options: Any,
    ) -> None:
        """``encoder_options``: ``hidden_size``, ``num_layers``, ... as in ``build_encoder``;
        the ``mlp`` sees each frame with ``context`` frames either side."""
        super().__init__()
        if arch not in ACOUSTIC_ARCHS:
            raise ValueError(
                f"Unknown arch {arch!r} for an acoustic model; choose one of {ACOUSTIC_ARCHS}."
            )
        self.arch, self.subsample, self.context = arch, subsample, context
        self.lookahead = lookahead
        stacked = n_features * subsample * (1 + lookahead)
        self.encoder = build_encoder(arch, stacked, 2 * context + 1, **encoder_options)
        width = self.encoder.output_size
        self.head = nn.Linear(width, n_outputs)
        init_weights(self, init)

    @property
    def streamable(self) -> bool:
        """Only a unidirectional recurrent model can carry its state from chunk to chunk."""
        return isinstance(self.encoder, RecurrentEncoder) and self.encoder.num_directions == 1

    def output_lengths(self, lengths: Tensor) -> Tensor:
        return torch.div(lengths + self.subsample - 1, self.subsample, rounding_mode="floor")

    def stack_frames(self, x: Tensor) -> Tensor:
        """(B, T, F) -> (B, ceil(T / k), k * F): k consecutive frames side by side."""
        batch, steps, features = x.shape
        extra = (-steps) % self.subsample
        if extra:
            x = nn.functional.pad(x, (0, 0, 0, extra))
        return x.reshape(batch, -1, self.subsample * features)

    def with_lookahead(self, h: Tensor) -> Tensor:
        """(B, t + L, D) -> (B, t, (1 + L) D): each step beside the L steps after it."""
        steps = h.size(1) - self.lookahead
        return torch.cat([h[:, i : i + steps] for i in range(self.lookahead + 1)], dim=-1)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """x (B, T, F) right-padded, lengths (B,) -> log-probabilities (B, T', V) and the
        number of real output frames (B,)."""
        if lengths is None:
            lengths = torch.full((x.shape[0],), x.shape[1], dtype=torch.int64, device=x.device)
        x = x[:, : int(lengths.max())]
        x = x.masked_fill(~lengths_to_mask(lengths.to(x.device), x.size(1)).unsqueeze(-1), 0.0)
        h = self.stack_frames(x)  # (B, T', kF)
        # Past the end the lookahead sees zeros, as a stream does once it is finished.
        h = self.with_lookahead(nn.functional.pad(h, (0, 0, 0, self.lookahead)))
        out_lengths = self.output_lengths(lengths)
        if isinstance(self.encoder, RecurrentEncoder):
            h, _, _ = self.encoder(h, out_lengths)  # (B, T', D)
        elif isinstance(self.encoder, TransformerEncoderBaseline):
            h = self.encoder.steps(h, out_lengths)
        else:
            h = self._frames_in_context(h)
        return torch.log_softmax(self.head(h), dim=-1), out_lengths

    def _frames_in_context(self, h: Tensor) -> Tensor:
        """Each step and ``context`` steps either side through the MLP: (B, T', D) -> (B, T', H)."""
        batch, steps, width = h.shape
        padded = nn.functional.pad(h, (0, 0, self.context, self.context))
        windows = padded.unfold(1, 2 * self.context + 1, 1)  # (B, T', D, 2c+1)
        windows = windows.permute(0, 1, 3, 2).reshape(batch * steps, -1, width)
        return self.encoder(windows).view(batch, steps, -1)

    def step(self, stacked: Tensor, state: State | None = None) -> tuple[Tensor, State]:
        """Streaming: already stacked frames (B, t + L, kF) of a chunk, the last ``lookahead``
        (L) of them only heard as the future of the others, and the state carried from the
        previous chunk -> log-probabilities (B, t, V) and the new state."""
        if not self.streamable:
            raise ValueError(
                "Only a unidirectional recurrent model transcribes in chunks; a bidirectional "
                "or non-recurrent model needs the whole utterance."
            )
        h, _, state = self.encoder(self.with_lookahead(stacked), None, state)
        return torch.log_softmax(self.head(h), dim=-1), state
