"""Unigram and bigram baselines for language modelling, in numpy.

Both are fitted on the training tokens and scored on the very tokens the model is scored on, so
"bits per character below the bigram" means the recurrent model learnt more than local
character pairs. Unigram: add-one smoothing. Bigram: Jelinek-Mercer interpolation with the
unigram, the weight chosen on the validation tokens.
"""

from __future__ import annotations

import numpy as np

LAMBDAS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99)


class NgramBaselines:
    def __init__(self, train: np.ndarray, vocab_size: int) -> None:
        self.vocab_size = vocab_size
        counts = np.bincount(train, minlength=vocab_size).astype(np.float64)
        self.unigram = (counts + 1) / (counts.sum() + vocab_size)  # (V,) add-one
        codes = train[:-1].astype(np.int64) * vocab_size + train[1:]
        self.pair_codes, self.pair_counts = np.unique(codes, return_counts=True)
        self.context_counts = np.bincount(train[:-1], minlength=vocab_size).astype(np.float64)
        self.weight = 0.9

    def unigram_loss(self, tokens: np.ndarray) -> float:
        """Mean negative log-likelihood (nats) of ``tokens[1:]``, the tokens a model predicts."""
        return float(-np.log(self.unigram[tokens[1:]]).mean())

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
        losses = [-np.log(self._bigram_probs(val, w)).mean() for w in LAMBDAS]
        self.weight = LAMBDAS[int(np.argmin(losses))]
        return self.weight

    def bigram_loss(self, tokens: np.ndarray) -> float:
        return float(-np.log(self._bigram_probs(tokens, self.weight)).mean())
