"""Unigram, bigram and Kneser-Ney n-gram baselines for language modelling, in numpy.

All are fitted on the training tokens and scored on the very tokens the model is scored on, so
"bits per character below the bigram" means the recurrent model learnt more than local
character pairs. Unigram: add-one smoothing. Bigram: Jelinek-Mercer interpolation with the
unigram, the weight chosen on the validation tokens. Kneser-Ney: interpolated, order chosen on
the validation tokens; the hard bar (with proper continuation counts validation picks orders
as high as the int64 codes allow on a million characters, 9 at ~100 symbols).

Counting and scoring go through the tokens ``CHUNK`` at a time (chunks overlap by the context
a gram needs), so a memory-mapped split larger than memory is never read whole: memory grows
with the number of distinct grams, not with the text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

LAMBDAS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99)
CHUNK = 1 << 19  # tokens per chunk: a few int64 arrays of 4 MiB at a time


def _bincount(tokens: np.ndarray, vocab_size: int) -> np.ndarray:
    """How often each token id occurs, counted chunk by chunk."""
    counts = np.zeros(vocab_size, dtype=np.int64)
    for start in range(0, len(tokens), CHUNK):
        counts += np.bincount(tokens[start : start + CHUNK], minlength=vocab_size)
    return counts


def _gram_counts(tokens: np.ndarray, length: int, vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct ``length``-gram codes of ``tokens`` and how often each occurs."""
    codes, counts = np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    for start in range(0, len(tokens) - length + 1, CHUNK):
        piece = np.asarray(tokens[start : start + CHUNK + length - 1], dtype=np.int64)
        new, times = np.unique(_gram_codes(piece, length, vocab_size), return_counts=True)
        if len(codes):
            new, times = _sum_by_code(np.concatenate([codes, new]), np.concatenate([counts, times]))
        codes, counts = new, times
    return codes, counts


def _sum_by_code(codes: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct ``codes`` and the sum of ``counts`` over each."""
    distinct, inverse = np.unique(codes, return_inverse=True)
    return distinct, np.bincount(inverse, weights=counts).astype(np.int64)


def _mean_nll(tokens: np.ndarray, probs: Callable[[np.ndarray], np.ndarray], context: int) -> float:
    """Mean negative log-likelihood of ``tokens[1:]``, where ``probs(piece)`` gives the
    probability of each of ``piece[1:]``; each chunk repeats the ``context`` tokens before its
    first target, so every target is scored as in one pass over the whole split."""
    total, count = 0.0, 0
    for start in range(1, len(tokens), CHUNK):  # targets tokens[start : start + CHUNK]
        first = max(0, start - context)
        p = probs(np.asarray(tokens[first : start + CHUNK]))[start - first - 1 :]
        total += float(-np.log(p).sum())
        count += len(p)
    return total / count


class NgramBaselines:
    def __init__(self, train: np.ndarray, vocab_size: int) -> None:
        self.vocab_size = vocab_size
        counts = _bincount(train, vocab_size).astype(np.float64)
        self.unigram = (counts + 1) / (counts.sum() + vocab_size)  # (V,) add-one
        self.pair_codes, self.pair_counts = _gram_counts(train, 2, vocab_size)
        self.context_counts = _bincount(train[:-1], vocab_size).astype(np.float64)
        self.weight = 0.9

    def unigram_loss(self, tokens: np.ndarray) -> float:
        """Mean negative log-likelihood (nats) of ``tokens[1:]``, the tokens a model predicts."""
        return _mean_nll(tokens, lambda piece: self.unigram[piece[1:]], 1)

    def _bigram_probs(self, tokens: np.ndarray, weight: float) -> np.ndarray:
        prev, nxt = tokens[:-1].astype(np.int64), tokens[1:]
        codes = prev * self.vocab_size + nxt
        pos = np.searchsorted(self.pair_codes, codes).clip(max=len(self.pair_codes) - 1)
        pair = np.where(self.pair_codes[pos] == codes, self.pair_counts[pos], 0)
        context = self.context_counts[prev]
        ml = np.divide(pair, context, out=np.zeros(len(codes)), where=context > 0)
        mixed = weight * ml + (1 - weight) * self.unigram[nxt]
        return np.where(context > 0, mixed, self.unigram[nxt])

    def fit_weight(self, val: np.ndarray) -> float:
        """Choose the interpolation weight with the lowest validation loss."""
        losses = [self.bigram_loss(val, w) for w in LAMBDAS]
        self.weight = LAMBDAS[int(np.argmin(losses))]
        return self.weight

    def bigram_loss(self, tokens: np.ndarray, weight: float | None = None) -> float:
        weight = self.weight if weight is None else weight
        return _mean_nll(tokens, lambda piece: self._bigram_probs(piece, weight), 1)


def _lookup(keys: np.ndarray, values: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """``values`` at ``queries`` in the sorted ``keys``; 0 where a query is absent."""
    if len(keys) == 0:
        return np.zeros(len(queries))
    pos = np.searchsorted(keys, queries).clip(max=len(keys) - 1)
    return np.where(keys[pos] == queries, values[pos], 0).astype(np.float64)


def _gram_codes(tokens: np.ndarray, length: int, vocab_size: int) -> np.ndarray:
    """Code of every ``length``-gram: sum of token * V**(position from the right)."""
    codes = np.zeros(len(tokens) - length + 1, dtype=np.int64)
    for j in range(length):
        codes = codes * vocab_size + tokens[j : len(tokens) - length + 1 + j]
    return codes


class _Order:
    """Counts of the n-grams of one length: raw, and continuation counts N1+(. gram)."""

    def __init__(
        self,
        grams: tuple[np.ndarray, np.ndarray],
        longer: tuple[np.ndarray, np.ndarray] | None,
        vocab_size: int,
        n: int,
    ):
        """``grams``: the distinct codes of this length and their counts; ``longer``: the same
        for grams one token longer (None for the longest order)."""
        self.tables: dict[bool, dict[str, Any]] = {}
        self.codes, self.raw = grams
        if longer is None:  # the longest order: no continuation counts
            self.continuation = self.raw
        else:  # N1+(. gram): how many distinct longer grams (longer[0]) end in it
            suffixes, counts = np.unique(longer[0] % vocab_size**n, return_counts=True)
            self.continuation = _lookup(suffixes, counts, self.codes)

    def table(self, raw: bool, vocab_size: int) -> dict[str, Any]:
        """Per gram its count, per context (gram without its last token) the total count and
        the number of distinct next tokens, and the absolute discount n1 / (n1 + 2 n2)."""
        if raw not in self.tables:
            self.tables[raw] = self._table(raw, vocab_size)
        return self.tables[raw]

    def _table(self, raw: bool, vocab_size: int) -> dict[str, Any]:
        counts = (self.raw if raw else self.continuation).astype(np.float64)
        keep = counts > 0
        codes, counts = self.codes[keep], counts[keep]
        contexts, starts, types = np.unique(
            codes // vocab_size, return_index=True, return_counts=True
        )
        n1, n2 = (counts == 1).sum(), (counts == 2).sum()
        discount = n1 / (n1 + 2 * n2) if n1 + n2 > 0 else 0.5
        return {
            "codes": codes,
            "counts": counts,
            "contexts": contexts,
            "totals": np.add.reduceat(counts, starts) if len(counts) else counts,
            "types": types,
            "discount": min(max(discount, 0.05), 0.95),
        }


class KneserNey:
    """Interpolated Kneser-Ney n-gram model (Chen & Goodman 1998, one discount per order),
    fitted on the training tokens; the order is chosen on the validation tokens.

    Grams are int64 codes in base V, so the longest order is capped where V**order would
    overflow (order 9 at a 100-character vocabulary, 4 at 20,000 words). Numpy only: one
    ``np.unique`` per order to fit, one ``searchsorted`` per order to score (about a second per
    order on a million characters).
    """

    def __init__(self, train: np.ndarray, vocab_size: int, max_order: int = 10) -> None:
        self.vocab_size = vocab_size
        cap = int(np.log(2**62) / np.log(max(vocab_size, 2)))
        self.max_order = max(1, min(max_order, cap, len(train)))
        grams = [_gram_counts(train, n, vocab_size) for n in range(1, self.max_order + 1)]
        self.orders = [
            _Order(grams[n - 1], grams[n] if n < self.max_order else None, vocab_size, n)
            for n in range(1, self.max_order + 1)
        ]
        self.order = self.max_order

    def _probs(self, tokens: np.ndarray, order: int) -> np.ndarray:
        """P(tokens[i] | the order - 1 tokens before it) for i >= 1."""
        tokens = tokens.astype(np.int64)
        targets = tokens[1:]
        probs = np.full(len(targets), 1.0 / self.vocab_size)
        for n in range(1, order + 1):
            table = self.orders[n - 1].table(n == order, self.vocab_size)
            # gram code of (context of n - 1 tokens, target) for every target with a full context
            first = n - 1  # targets[first:] have n - 1 tokens before them
            if first >= len(targets):
                break
            grams = _gram_codes(tokens, n, self.vocab_size)[1:]  # the grams ending at targets
            context = grams // self.vocab_size
            count = _lookup(table["codes"], table["counts"], grams)
            total = _lookup(table["contexts"], table["totals"], context)
            types = _lookup(table["contexts"], table["types"], context)
            d = table["discount"]
            lower = probs[first:]
            seen = total > 0
            safe = np.where(seen, total, 1.0)
            mixed = np.maximum(count - d, 0) / safe + d * types / safe * lower
            probs[first:] = np.where(seen, mixed, lower)
        return probs

    def loss(self, tokens: np.ndarray, order: int | None = None) -> float:
        """Mean negative log-likelihood (nats) of ``tokens[1:]``."""
        order = order or self.order
        # A target's gram of the full order is read only from its order-th token on.
        return _mean_nll(tokens, lambda piece: self._probs(piece, order), order)

    def fit_order(self, val: np.ndarray) -> int:
        """Choose the order with the lowest validation loss."""
        losses = [self.loss(val, n) for n in range(1, self.max_order + 1)]
        self.order = int(np.argmin(losses)) + 1
        return self.order
