"""Checks at the door: values a model cannot learn from or predict on are refused by name.

Each refusal names the row and the column and says how to fix it. Rows of a user's file are
numbered as in the file (the header is row 1), from the index the frame was read with, so the
number stays right after rows are dropped or sorted. The same limits guard training data
(``prepare``) and the input of a logged model (``predict_frame``), so a value the model was never
fit to handle is refused in both places rather than turned into a plausible-looking number.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from rnnlab.errors import DataError

log = logging.getLogger("rnnlab")

# A scaled value further than this from the training mean (in training standard deviations, or
# training ranges for min-max scaling) is absurd: nothing a network learnt applies to it.
MAX_SCALED = 1e6
UNSORTED_POLICIES = ("sort", "error")
_SHOWN = 3  # offending rows quoted in a message


def _when(stamp: pd.Timestamp) -> str:
    return f"{stamp:%Y-%m-%d}" if stamp == stamp.normalize() else str(stamp)


def file_row(index: object) -> int:
    """Row number in the file for a frame index label (header = row 1, first data row = 2)."""
    return int(index) + 2


def require_columns(
    frame: pd.DataFrame, columns: list[str], source: str = "The input", fix: str = ""
) -> None:
    """Refuse ``frame`` unless it has every one of ``columns``, naming the missing ones, the
    ones it has and ``fix``: the one column check of prepare and of every ``predict_frame``."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"{source} has no column(s) {missing}; its columns are {list(frame.columns)}."
            + (f" {fix}" if fix else "")
        )


def drop_empty_rows(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Drop rows whose every cell is empty (``,,,`` lines), with a notice of how many."""
    empty = frame.isna().all(axis=1)
    if empty.any():
        rows = ", ".join(str(file_row(i)) for i in frame.index[empty][:_SHOWN])
        log.warning("%s: dropped %d empty row(s) (rows %s ...).", source, empty.sum(), rows)
    return frame[~empty]


def parse_dates(values: pd.Series, column: str, source: str) -> pd.Series:
    """Parse a date column; the first value that is not a date is refused with its row."""
    try:
        return pd.to_datetime(values)
    except (ValueError, TypeError, OverflowError):
        pass
    for index, value in values.items():
        if pd.isna(value):
            continue
        try:
            pd.to_datetime(value)
        except (ValueError, TypeError, OverflowError):
            raise DataError(
                f"Column `{column}` of {source} has a value that is not a date: row "
                f"{file_row(index)} holds {value!r}. Use ISO dates such as 2024-01-31, or point "
                "`data.time_column` at the right column."
            ) from None
    # Each value parses alone but not together (mixed formats): name the first odd one out.
    raise DataError(
        f"Column `{column}` of {source} mixes date formats (the first row holds "
        f"{values.iloc[0]!r}). Write every date the same way, e.g. 2024-01-31."
    )


def check_unique_times(times: pd.Series, column: str, source: str) -> None:
    """Refuse repeated timestamps, quoting the first few with their rows."""
    repeated = times[times.duplicated(keep=False)]
    if repeated.empty:
        return
    shown = "; ".join(
        f"{_when(when)} at rows {', '.join(str(file_row(i)) for i in group.index)}"
        for when, group in list(repeated.groupby(repeated, sort=False))[:_SHOWN]
    )
    n = repeated.nunique()
    raise DataError(
        f"{source} has {n} repeated timestamp(s) in `{column}`: {shown}. Keep one row per "
        "timestamp (aggregate or remove the duplicates)."
    )


def order_by_time(frame: pd.DataFrame, column: str, source: str, policy: str) -> pd.DataFrame:
    """Sort rows by time with a notice (``policy="sort"``), or refuse (``"error"``)."""
    if policy not in UNSORTED_POLICIES:
        raise DataError(f"data.unsorted={policy!r}; choose one of {list(UNSORTED_POLICIES)}.")
    times = frame[column]
    if times.is_monotonic_increasing:
        return frame
    position = int(np.flatnonzero(times.diff().to_numpy() < np.timedelta64(0))[0])
    index = frame.index[position]
    where = (
        f"row {file_row(index)} ({_when(times.iloc[position])}) comes after "
        f"{_when(times.iloc[position - 1])}"
    )
    if policy == "error":
        raise DataError(
            f"{source} is not in time order: {where}. Sort the file by `{column}`, or set "
            "`data.unsorted=sort` to sort it on the way in."
        )
    log.warning("%s is not in time order (%s); sorted it by `%s`.", source, where, column)
    return frame.sort_values(column, kind="stable")


def check_finite(frame: pd.DataFrame, columns: list[str], source: str) -> None:
    """Refuse infinite values (``inf`` parses as a number; it is not a missing value)."""
    for column in columns:
        infinite = np.isinf(frame[column].to_numpy(np.float64))
        if infinite.any():
            index = frame.index[int(np.flatnonzero(infinite)[0])]
            raise DataError(
                f"Column `{column}` of {source} holds {frame[column].loc[index]} at row "
                f"{file_row(index)} ({int(infinite.sum())} infinite value(s)). Replace them with "
                "real measurements, or leave the cells empty to mark them missing."
            )


def check_scalable(
    values: np.ndarray,
    train_rows: int,
    loc: list[float],
    scale: list[float],
    names: list[str],
    times: pd.Series,
    source: str,
) -> None:
    """Refuse values whose scaling overflows or lands absurdly far from the training data.

    ``values`` (N, F) in time order; ``loc``/``scale`` the scaler fitted on the first
    ``train_rows`` rows. Rows are named by their timestamp (the frame is sorted by now).
    """
    with np.errstate(over="ignore", invalid="ignore"):
        for j, name in enumerate(names):
            column = values[:, j]
            if not (np.isfinite(loc[j]) and np.isfinite(scale[j])):
                worst = int(np.nanargmax(np.abs(column[:train_rows])))
                raise DataError(
                    f"Scaling column `{name}` of {source} overflows: the training split holds "
                    f"{column[worst]:g} at {_when(times.iloc[worst])}, too large for its "
                    "mean and spread to be computed. Fix or remove that value."
                )
            scaled = (column - loc[j]) / scale[j]
            bad = ~(np.abs(scaled) <= MAX_SCALED) & ~np.isnan(column)
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise DataError(
                    f"Column `{name}` of {source} holds {column[row]:g} at "
                    f"{_when(times.iloc[row])}, {abs(scaled[row]):.3g} times the training "
                    f"spread away from the training mean ({loc[j]:g}): a model cannot learn "
                    "from it. Fix that value (a unit or typing error?) or remove the row."
                )


def check_target_varies(values: np.ndarray, names: list[str], source: str) -> None:
    """Refuse a target that is constant on the training split: nothing to learn, and
    scale-free metrics (MASE, skill against a baseline) would divide by zero."""
    for j, name in enumerate(names):
        column = values[:, j]
        column = column[~np.isnan(column)]
        if column.size and np.ptp(column) == 0:
            raise DataError(
                f"Target column `{name}` of {source} is constant ({column[0]:g}) on the "
                f"training split (its first {len(values)} rows): there is nothing to learn and "
                "scale-free metrics such as MASE are undefined. Forecast a column that varies "
                "(`data.target_columns`), or use a longer series."
            )


def model_input(
    frame: pd.DataFrame,
    columns: list[str],
    loc: list[float] | None = None,
    scale: list[float] | None = None,
) -> np.ndarray:
    """``frame[columns]`` as float64 (N, F) for a model, or ``DataError`` naming row and column:
    empty cells, text, infinite values, or values absurdly far (``MAX_SCALED``) from what the
    model was trained on (``loc``/``scale``: its scaler; none: the raw value's size)."""
    values = frame[columns].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    loc = np.zeros(len(columns)) if loc is None else np.asarray(loc)
    scale = np.ones(len(columns)) if scale is None else np.asarray(scale)
    with np.errstate(over="ignore", invalid="ignore"):
        scaled = (values - loc) / scale
    for j, column in enumerate(columns):
        bad = ~(np.abs(scaled[:, j]) <= MAX_SCALED)
        if not bad.any():
            continue
        row = int(np.flatnonzero(bad)[0])
        given, value = frame[column].iloc[row], values[row, j]
        if np.isnan(value):
            problem = "is empty" if pd.isna(given) else f"holds {given!r}, not a number"
        elif np.isinf(value):
            problem = f"holds {value}, not a finite number"
        else:
            problem = (
                f"holds {value:g}, {abs(scaled[row, j]):.3g} times the training spread from "
                "the training data: outside anything the model can forecast from"
            )
        raise DataError(
            f"Input column `{column}` row {row} {problem}. Send finite numbers in the range of "
            "the training data, with no empty cells."
        )
    return values
