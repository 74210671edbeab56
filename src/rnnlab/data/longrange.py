"""Synthetic long-range-dependency probes, generated deterministically from ``data.seed``.

- **adding problem** (Hochreiter & Schmidhuber 1997): T steps of (value ~ U(0, 1), marker);
  exactly two markers are 1, one in each half of the sequence; the target is the sum of the
  two marked values. Always predicting 1 scores MSE = Var(U + U) = 1/6 ~ 0.167.
- **copy-memory task** (Arjovsky et al. 2016): K symbols from {1..S}, T - 1 blanks, a
  delimiter, K blanks; the output must be blank everywhere except the last K steps, which
  repeat the K symbols. A memoryless model that outputs blanks and then guesses uniformly
  scores cross-entropy K log(S) / (T + 2K) per step.

``data/raw/<name>.npz`` holds the compact generated arrays (``values``/``positions``/``target``
for adding, ``symbols`` for copy) and ``data/raw/<name>_preview.csv`` the first sequences step
by step, so a user sees what went in. ``data/prepared/`` holds the same arrays split into
``train``/``val``/``test`` ``.npz`` files and ``meta.json``; the model-ready one-hot tensors are
built at load time (``rnnlab.tasks.longrange``).
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from rnnlab.data import read_prepared_splits, write_prepared
from rnnlab.errors import DataError
from rnnlab.paths import RunPaths

SPLITS = ("train", "val", "test")
PREVIEW_SEQUENCES = 3


def generate_adding(n: int, seq_len: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """``n`` adding-problem sequences: values (n, T), marker positions (n, 2), targets (n,)."""
    if seq_len < 2:
        raise DataError(f"data.seq_len={seq_len} is too short; the adding problem needs T >= 2.")
    values = rng.random((n, seq_len), dtype=np.float32)
    half = seq_len // 2
    first = rng.integers(0, half, size=n)
    second = rng.integers(half, seq_len, size=n)
    positions = np.stack([first, second], axis=1)  # (n, 2)
    target = np.take_along_axis(values, positions, axis=1).sum(axis=1)
    return {"values": values, "positions": positions, "target": target.astype(np.float32)}


def generate_copy(
    n: int, n_symbols: int, copy_length: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """``n`` copy-task symbol strings (n, K) over 1..S; blanks and delimiter are added on load."""
    return {"symbols": rng.integers(1, n_symbols + 1, size=(n, copy_length))}


def adding_inputs(values: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """(n, T) values and (n, 2) marker positions -> (n, T, 2) network input."""
    marker = np.zeros_like(values)
    np.put_along_axis(marker, positions, 1.0, axis=1)
    return np.stack([values, marker], axis=-1).astype(np.float32)


def copy_sequences(
    symbols: np.ndarray, seq_len: int, n_symbols: int
) -> tuple[np.ndarray, np.ndarray]:
    """Input and target token ids (n, T + 2K) for copy-task ``symbols`` (n, K).

    Tokens: 0 blank, 1..S symbols, S + 1 delimiter (input only).
    """
    n, k = symbols.shape
    length = seq_len + 2 * k
    x = np.zeros((n, length), dtype=np.int64)
    y = np.zeros((n, length), dtype=np.int64)
    x[:, :k] = symbols
    x[:, k + seq_len - 1] = n_symbols + 1
    y[:, -k:] = symbols
    return x, y


def baselines(data: DictConfig) -> dict[str, float]:
    """The score of the best memoryless predictor: what "not solved" looks like."""
    if data.problem == "adding":
        return {"baseline_mse": 1 / 6}
    k = data.copy_length
    return {"baseline_cross_entropy": k * math.log(data.n_symbols) / (data.seq_len + 2 * k)}


def prepare(cfg: DictConfig, paths: RunPaths) -> dict[str, Any]:
    data = cfg.data
    sizes = {"train": data.n_train, "val": data.n_val, "test": data.n_test}
    if min(sizes.values()) < 1:
        raise DataError(f"data.n_train/n_val/n_test must all be >= 1, got {sizes}.")
    rng = np.random.default_rng(data.seed)
    total = sum(sizes.values())
    if data.problem == "adding":
        arrays = generate_adding(total, data.seq_len, rng)
    else:
        arrays = generate_copy(total, data.n_symbols, data.copy_length, rng)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    meta = {
        "task": "longrange",
        "dataset": data.name,
        "problem": data.problem,
        "seq_len": data.seq_len,
        "n_symbols": data.n_symbols,
        "copy_length": data.copy_length,
        "sizes": sizes,
        **baselines(data),
    }
    ends = dict(zip(SPLITS, np.cumsum(list(sizes.values())), strict=True))
    splits = {s: {k: v[ends[s] - sizes[s] : ends[s]] for k, v in arrays.items()} for s in SPLITS}
    raw = {
        f"{data.name}.npz": buffer.getvalue(),
        f"{data.name}_preview.csv": _preview(arrays, data).to_csv(index=False),
    }
    write_prepared(paths, meta, splits, raw)
    return {"problem": data.problem, "seq_len": data.seq_len, **sizes}


def _preview(arrays: dict[str, np.ndarray], data: DictConfig) -> pd.DataFrame:
    """The first few sequences in long form: one row per (sequence, step)."""
    if data.problem == "adding":
        first = slice(PREVIEW_SEQUENCES)
        x = adding_inputs(arrays["values"][first], arrays["positions"][first])
        n, steps, _ = x.shape
        target = np.repeat(arrays["target"][:n], steps)
        columns = {"value": x[..., 0].ravel(), "marker": x[..., 1].ravel(), "target": target}
    else:
        x, y = copy_sequences(arrays["symbols"][:PREVIEW_SEQUENCES], data.seq_len, data.n_symbols)
        n, steps = x.shape
        columns = {"input": x.ravel(), "target": y.ravel()}
    index = {"sequence": np.repeat(np.arange(n), steps), "t": np.tile(np.arange(steps), n)}
    return pd.DataFrame({**index, **columns})


def load_prepared(
    prepared_dir: Path, splits: tuple[str, ...] = SPLITS
) -> tuple[dict[str, Any], dict[str, dict[str, np.ndarray]]]:
    """``meta.json`` and each split's compact arrays (as generated, see the module doc)."""
    return read_prepared_splits(prepared_dir, "longrange", splits)
