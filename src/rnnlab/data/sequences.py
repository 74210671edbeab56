"""Labelled multivariate sequences in long format: built-in sets, user CSVs, checks, padding.

The long format is one row per (sequence, time step)::

    sequence_id,step,<channel 1>,...,<channel C>,label

Sequences may differ in length; the label repeats on every row of its sequence. The built-in
sets (sktime's JapaneseVowels and BasicMotions) are converted to exactly this format, so
``data/raw/`` shows what went in whatever the source.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from rnnlab.data.checks import require_columns
from rnnlab.errors import DataError

ID, STEP, LABEL = "sequence_id", "step", "label"


def load_builtin(name: str, split: str) -> pd.DataFrame:
    """sktime's bundled ``japanese_vowels`` or ``basic_motions`` split, in long format."""
    from sktime.datasets import load_basic_motions, load_japanese_vowels

    loader = {"japanese_vowels": load_japanese_vowels, "basic_motions": load_basic_motions}[name]
    nested, labels = loader(split=split, return_type="nested_univ")  # one pd.Series per cell
    frames = []
    for i, (_, row) in enumerate(nested.iterrows()):
        columns = {f"ch{c}": row.iloc[c].to_numpy(np.float64) for c in range(nested.shape[1])}
        steps = len(columns["ch0"])
        frames.append(
            pd.DataFrame({ID: f"{split}_{i}", STEP: np.arange(steps), **columns, LABEL: labels[i]})
        )
    return pd.concat(frames, ignore_index=True)


@dataclass(frozen=True)
class SequenceSet:
    """Sequences of one file: ``values[i]`` is (T_i, C); labels as strings, in file order."""

    ids: list[str]
    values: list[np.ndarray]
    labels: list[str]
    channels: list[str]


def parse_long(
    frame: pd.DataFrame,
    source: str,
    *,
    id_column: str = ID,
    step_column: str = STEP,
    label_column: str | None = LABEL,
    channels: list[str] | None = None,
) -> SequenceSet:
    """Check a long-format frame and split it into sequences ordered by step.

    ``channels`` empty or None means every column other than id, step and label. Row numbers in
    errors count the header as row 1, as a spreadsheet shows them.
    """
    keys = [id_column, step_column] + ([label_column] if label_column else [])
    require_columns(
        frame,
        keys,
        source,
        "The long format needs a sequence id, a time step and a label column: set "
        "`data.id_column`, `data.step_column` and `data.label_column` to match.",
    )
    channels = list(channels or [c for c in frame.columns if c not in keys])
    absent = [c for c in channels if c not in frame.columns]
    if absent:
        raise DataError(
            f"{source} lacks channel column(s) {absent} (it has {list(frame.columns)}); "
            "every file must carry the same channels as the training data."
        )
    if not channels:
        raise DataError(f"{source} has no channel columns besides {keys}; add the measurements.")
    matrix = frame[channels].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(matrix)
    if bad.any():
        row, col = (int(v[0]) for v in np.nonzero(bad))
        value = frame[channels[col]].iloc[row]
        found = "empty" if pd.isna(value) else f"{_plain(value)!r}, not a number"
        if np.isinf(matrix[row, col]):
            found = f"{matrix[row, col]}, not a finite number"
        raise DataError(
            f"{source}, row {row + 2} (sequence {_plain(frame[id_column].iloc[row])!r}, step "
            f"{_plain(frame[step_column].iloc[row])!r}): channel `{channels[col]}` is {found}. "
            "Sequences must be complete: fill the value or drop that sequence."
        )
    if label_column:
        unlabeled = frame[label_column].isna().to_numpy()
        if unlabeled.any():
            row = int(np.flatnonzero(unlabeled)[0])
            raise DataError(
                f"{source}, row {row + 2}: no label in `{label_column}`. Label every row of a "
                "sequence (or drop the sequence)."
            )
    table = frame[[id_column, step_column]].assign(_row=np.arange(len(frame)))
    if table.duplicated([id_column, step_column]).any():
        row = int(np.flatnonzero(table.duplicated([id_column, step_column]).to_numpy())[0])
        raise DataError(
            f"{source}, row {row + 2}: sequence {_plain(frame[id_column].iloc[row])!r} repeats "
            f"step {_plain(frame[step_column].iloc[row])!r}; keep one row per (sequence, step)."
        )
    ids, sequences, labels = [], [], []
    for seq_id, part in table.groupby(id_column, sort=False):
        rows = part.sort_values(step_column)["_row"].to_numpy()
        if label_column:
            seen = frame[label_column].iloc[rows].astype(str).unique()
            if len(seen) > 1:
                raise DataError(
                    f"{source}: sequence {_plain(seq_id)!r} has several labels {sorted(seen)}; one "
                    "sequence carries one label on all of its rows."
                )
            labels.append(seen[0])
        ids.append(str(seq_id))
        sequences.append(matrix[rows])  # (T_i, C)
    return SequenceSet(ids, sequences, labels, channels)


def _plain(value: object) -> object:
    """A numpy scalar as the Python value it holds, so messages show 5, not np.int64(5)."""
    return value.item() if isinstance(value, np.generic) else value
