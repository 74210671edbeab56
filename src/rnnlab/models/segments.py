"""Segment (patch) tokens: a long window cut into non-overlapping segments, each embedded.

SegRNN (Lin et al. 2023) and PatchTST (Nie et al. 2023) both feed a sequence model segments of
the window instead of single steps: at lookback 336 and segments of 24 an RNN runs 14 steps
instead of 336 and self-attention compares 14 tokens instead of 336, which is what makes them
fast and, on long windows, better.
"""

from __future__ import annotations

from torch import Tensor, nn


class SegmentEmbedding(nn.Module):
    """(B, T, F) -> (B, ceil(T / segment_len), d): segments flattened and linearly embedded.

    A window whose length is not a multiple of ``segment_len`` is padded at its old end with
    copies of its first step, so the newest steps always form a whole segment.
    """

    def __init__(self, input_size: int, segment_len: int, d_model: int, activation: bool) -> None:
        super().__init__()
        if segment_len < 1:
            raise ValueError(f"segment_len must be >= 1, got {segment_len}.")
        self.segment_len = segment_len
        self.proj = nn.Linear(segment_len * input_size, d_model)
        self.activation = nn.ReLU() if activation else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        batch, steps, features = x.shape
        pad = -steps % self.segment_len
        if pad:
            x = nn.functional.pad(x.transpose(1, 2), (pad, 0), mode="replicate").transpose(1, 2)
        segments = x.reshape(batch, -1, self.segment_len * features)  # (B, N, W*F)
        return self.activation(self.proj(segments))  # (B, N, d)
