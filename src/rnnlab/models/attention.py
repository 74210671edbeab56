"""Attention over time steps: a single query vector attends over a sequence of keys.

All modules share one interface so they are interchangeable, both for pooling an encoder's
outputs into one vector and (later) inside a seq2seq decoder where the query is the decoder state:

    context, weights = attn(query (B, Dq), keys (B, T, D), mask (B, T) bool or None)

``mask`` is True at real steps and False at padding. Masked steps get a score of -inf, hence a
softmax weight of exactly 0, so padding can never leak into the context vector. The keys double as
the values (as in Bahdanau et al. 2015 and Luong et al. 2015).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from rnnlab.models.names import ATTENTION_KINDS


def lengths_to_mask(lengths: Tensor, max_len: int) -> Tensor:
    """(B,) true lengths -> (B, max_len) bool mask, True at real (non-padded) steps."""
    steps = torch.arange(max_len, device=lengths.device)  # (T,)
    return steps.unsqueeze(0) < lengths.unsqueeze(1)  # (B, T)


def _masked_softmax(scores: Tensor, mask: Tensor | None) -> Tensor:
    """Softmax over the last dim that gives exactly zero weight where ``mask`` is False."""
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))  # (B, T)
    return torch.softmax(scores, dim=-1)  # (B, T)


class AdditiveAttention(nn.Module):
    """Bahdanau (concat) attention: score(q, k) = v^T tanh(W_q q + W_k k).

    The query and keys may have different sizes (decoder state vs. encoder outputs), which is why
    both are projected into a shared ``attn_dim`` space.
    """

    def __init__(self, query_dim: int, key_dim: int, attn_dim: int) -> None:
        super().__init__()
        # Only one of the two projections carries a bias: two biases would be redundant.
        self.query_proj = nn.Linear(query_dim, attn_dim, bias=False)
        self.key_proj = nn.Linear(key_dim, attn_dim)
        # No bias on v: a constant added to every score is removed by the softmax anyway.
        self.v = nn.Linear(attn_dim, 1, bias=False)

    def forward(
        self, query: Tensor, keys: Tensor, mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        q = self.query_proj(query).unsqueeze(1)  # (B, 1, A)
        k = self.key_proj(keys)  # (B, T, A)
        scores = self.v(torch.tanh(q + k)).squeeze(-1)  # (B, T)
        weights = _masked_softmax(scores, mask)  # (B, T)
        context = torch.bmm(weights.unsqueeze(1), keys).squeeze(1)  # (B, D)
        return context, weights


class DotProductAttention(nn.Module):
    """Luong "dot" attention: score(q, k) = q . k, optionally divided by sqrt(dim).

    Parameter-free, so the query must live in the same space as the keys. Scaling keeps the
    softmax from saturating when ``dim`` is large (Vaswani et al. 2017).
    """

    def __init__(self, dim: int, scaled: bool = True) -> None:
        super().__init__()
        self.dim = dim
        self.scale = 1.0 / math.sqrt(dim) if scaled else 1.0

    def forward(
        self, query: Tensor, keys: Tensor, mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        scores = torch.bmm(keys, query.unsqueeze(-1)).squeeze(-1) * self.scale  # (B, T)
        weights = _masked_softmax(scores, mask)  # (B, T)
        context = torch.bmm(weights.unsqueeze(1), keys).squeeze(1)  # (B, D)
        return context, weights


class GeneralAttention(nn.Module):
    """Luong "general" attention: score(q, k) = q^T W k.

    A learnt bilinear form, so unlike "dot" the query and keys may differ in size and space
    (e.g. a decoder state attending over a bidirectional encoder's outputs).
    """

    def __init__(self, query_dim: int, key_dim: int) -> None:
        super().__init__()
        self.query_proj = nn.Linear(query_dim, key_dim, bias=False)  # W^T q, then dot with k

    def forward(
        self, query: Tensor, keys: Tensor, mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        q = self.query_proj(query).unsqueeze(-1)  # (B, D, 1)
        scores = torch.bmm(keys, q).squeeze(-1)  # (B, T)
        weights = _masked_softmax(scores, mask)  # (B, T)
        context = torch.bmm(weights.unsqueeze(1), keys).squeeze(1)  # (B, D)
        return context, weights


class MultiHeadAttention(nn.Module):
    """Multi-head scaled dot-product attention with a single query step.

    Thin wrapper around ``nn.MultiheadAttention`` (batch_first) that adapts it to the shared
    interface. Note the context is passed through the output projection, so unlike the other two
    kinds it is not a convex combination of the keys. Returned weights are averaged over heads.
    """

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if num_heads < 1 or dim % num_heads != 0:
            raise ValueError(
                f"Multi-head attention needs dim divisible by num_heads, "
                f"got dim={dim}, num_heads={num_heads}."
            )
        self.attn = nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True)

    def forward(
        self, query: Tensor, keys: Tensor, mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        # nn.MultiheadAttention's key_padding_mask uses the opposite convention: True = ignore.
        key_padding_mask = None if mask is None else ~mask  # (B, T)
        context, weights = self.attn(
            query.unsqueeze(1),  # (B, 1, D)
            keys,
            keys,
            key_padding_mask=key_padding_mask,
            need_weights=True,
            average_attn_weights=True,
        )  # (B, 1, D), (B, 1, T)
        return context.squeeze(1), weights.squeeze(1)  # (B, D), (B, T)


def build_attention(kind: str, dim: int, num_heads: int = 4) -> nn.Module:
    """Build an attention module whose query and keys are both of size ``dim``.

    ``general`` (Luong's bilinear score) serves the seq2seq decoder; pooling offers
    ``ATTENTION_KINDS``.
    """
    if kind == "additive":
        return AdditiveAttention(dim, dim, dim)
    if kind == "dot":
        return DotProductAttention(dim, scaled=True)
    if kind == "general":
        return GeneralAttention(dim, dim)
    if kind == "multihead":
        return MultiHeadAttention(dim, num_heads)
    raise ValueError(
        f"Unknown attention kind {kind!r}; choose one of {ATTENTION_KINDS} (or 'general')."
    )


class AttentionPooling(nn.Module):
    """Pool a sequence (B, T, D) into one vector (B, D) by attending with a given query.

    With a recurrent encoder the natural query is the output at the last real step: attention then
    lets the summary look back at earlier steps instead of relying on the final state alone.
    """

    def __init__(self, dim: int, kind: str, num_heads: int = 4) -> None:
        super().__init__()
        self.kind = kind
        self.attn = build_attention(kind, dim, num_heads)

    def forward(
        self, sequence: Tensor, query: Tensor, mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """sequence (B, T, D), query (B, D), mask (B, T) -> context (B, D), weights (B, T)."""
        return self.attn(query, sequence, mask)
