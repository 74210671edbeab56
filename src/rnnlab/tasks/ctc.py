"""CTC decoding (greedy and prefix beam search) and character/word error rates.

Id 0 is the blank. Decoders take one utterance's per-frame log-probabilities (T, V) as numpy.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np


def greedy_decode(log_probs: np.ndarray) -> list[int]:
    """Best id per frame, repeats collapsed, blanks removed."""
    best = log_probs.argmax(axis=-1)
    keep = np.ones_like(best, dtype=bool)
    keep[1:] = best[1:] != best[:-1]
    return [int(i) for i in best[keep] if i != 0]


def _logsumexp(a: float, b: float) -> float:
    if a == -math.inf:
        return b
    if b == -math.inf:
        return a
    high = max(a, b)
    return high + math.log1p(math.exp(-abs(a - b)))


def prefix_beam_search(log_probs: np.ndarray, beam_width: int, prune: float = -12.0) -> list[int]:
    """CTC prefix beam search (Hannun et al. 2014) without a language model.

    Each prefix keeps two scores: ending in a blank, and ending in its last symbol, so that
    "a a" (two symbols with a blank between) and "aa" (one repeated frame) stay apart. Symbols
    whose frame log-probability is below ``prune`` are not tried (they cannot win).
    """
    beams: dict[tuple[int, ...], tuple[float, float]] = {(): (0.0, -math.inf)}
    for frame in log_probs:
        candidates = [int(v) for v in np.flatnonzero(frame > prune)]
        nxt: dict[tuple[int, ...], list[float]] = defaultdict(lambda: [-math.inf, -math.inf])
        for prefix, (blank, symbol) in beams.items():
            total = _logsumexp(blank, symbol)
            for v in candidates:
                p = float(frame[v])
                if v == 0:
                    entry = nxt[prefix]
                    entry[0] = _logsumexp(entry[0], total + p)
                    continue
                extended = (*prefix, v)
                entry = nxt[extended]
                if prefix and prefix[-1] == v:
                    # A repeat only extends after a blank; without one it merges into the prefix.
                    entry[1] = _logsumexp(entry[1], blank + p)
                    same = nxt[prefix]
                    same[1] = _logsumexp(same[1], symbol + p)
                else:
                    entry[1] = _logsumexp(entry[1], total + p)
        ranked = sorted(nxt.items(), key=lambda kv: -_logsumexp(*kv[1]))[:beam_width]
        beams = {prefix: (scores[0], scores[1]) for prefix, scores in ranked}
    best = max(beams.items(), key=lambda kv: _logsumexp(*kv[1]))[0]
    return list(best)


def error_rates(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Corpus character and word error rates (edit distance / reference length)."""
    from torchmetrics.functional.text import char_error_rate, word_error_rate

    return {
        "cer": float(char_error_rate(predictions, references)),
        "wer": float(word_error_rate(predictions, references)),
    }
