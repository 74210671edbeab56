"""Pure preprocessing: column checks, missing values, splits, scaling, windows, padding.

Nothing here touches the file system or torch, so each step is unit-tested on small frames.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from rnnlab.data import checks
from rnnlab.errors import DataError

MISSING_POLICIES = ("interpolate", "ffill", "drop", "error")


def select_columns(
    frame: pd.DataFrame,
    time_column: str,
    value_columns: list[str],
    source: str,
    unsorted: str = "sort",
) -> pd.DataFrame:
    """Keep the time and value columns, with parsed dates and numeric values, sorted by time.

    Empty rows are dropped; bad dates, text, infinite values and repeated timestamps are refused
    with their rows (``rnnlab.data.checks``); ``unsorted`` says whether rows out of time order are
    sorted with a notice or refused.
    """
    wanted = [time_column, *value_columns]
    checks.require_columns(
        frame,
        wanted,
        source,
        "Set `data.time_column`, `data.target_columns` and `data.covariate_columns` to match.",
    )
    out = checks.drop_empty_rows(frame, source)[wanted].copy()
    out[time_column] = checks.parse_dates(out[time_column], time_column, source)
    for column in value_columns:
        numeric = pd.to_numeric(out[column], errors="coerce")
        bad = numeric.isna() & out[column].notna()
        if bad.any():
            index = out.index[bad.to_numpy()][0]
            raise DataError(
                f"Column `{column}` of {source} is not numeric: row {checks.file_row(index)} of "
                f"the file holds {out[column].loc[index]!r}. Fix or remove such rows; leave a "
                "cell empty to mark a missing value."
            )
        out[column] = numeric.astype("float64")
    checks.check_finite(out, value_columns, source)
    checks.check_unique_times(out[time_column], time_column, source)
    return checks.order_by_time(out, time_column, source, unsorted).reset_index(drop=True)


def fill_missing(frame: pd.DataFrame, columns: list[str], policy: str) -> tuple[pd.DataFrame, int]:
    """Apply the missing-value ``policy``; return the frame and how many cells were missing."""
    n_missing = int(frame[columns].isna().sum().sum())
    if n_missing == 0:
        return frame, 0
    if policy == "error":
        first = frame[frame[columns].isna().any(axis=1)].iloc[0, 0]
        raise DataError(
            f"{n_missing} missing values (the first at {first}); set `data.missing` to "
            "interpolate, ffill or drop to handle them."
        )
    if policy == "interpolate":
        filled = frame.copy()
        filled[columns] = filled[columns].interpolate(limit_direction="both")
    elif policy == "ffill":
        filled = frame.copy()
        filled[columns] = filled[columns].ffill().bfill()
    elif policy == "drop":
        filled = frame.dropna(subset=columns).reset_index(drop=True)
    else:
        raise DataError(f"data.missing={policy!r}; choose one of {list(MISSING_POLICIES)}.")
    return filled, n_missing


@dataclass(frozen=True)
class SplitBounds:
    """Row ranges of the chronological split: train [0, val), val [val, test), test [test, n)."""

    val_start: int
    test_start: int
    n: int


# The split family: every task's train/val/test split sizes its parts with ``split_sizes``;
# the order they are cut in differs by what the data is: in time (``chronological_split``), in
# reading order (``contiguous_split``), at random (``shuffled_split``) or per class
# (``stratified_split``).


def check_split_fractions(val_fraction: float, test_fraction: float) -> None:
    """Validation and test shares of the data: each in (0, 1), together below 1."""
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise DataError("data.val_fraction and data.test_fraction must be in (0, 1), sum < 1.")


def split_sizes(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int, int]:
    """Train, validation and test sizes of ``n`` items: the two shares rounded, train the rest."""
    test, val = round(n * test_fraction), round(n * val_fraction)
    return n - val - test, val, test


def _checked_sizes(
    n: int, val_fraction: float, test_fraction: float, minimum: int, unit: str
) -> tuple[int, int, int]:
    check_split_fractions(val_fraction, test_fraction)
    sizes = split_sizes(n, val_fraction, test_fraction)
    if min(sizes) < minimum:
        raise DataError(
            f"Only {n} {unit}: too few for a train/val/test split with data.val_fraction="
            f"{val_fraction} and data.test_fraction={test_fraction} (each part needs at least "
            f"{minimum}). Use more data or larger fractions."
        )
    return sizes


def contiguous_split(
    n: int, val_fraction: float, test_fraction: float, minimum: int = 1, unit: str = "items"
) -> dict[str, slice]:
    """Blocks train | val | test of ``n`` items in reading order, each at least ``minimum``."""
    train, val, _ = _checked_sizes(n, val_fraction, test_fraction, minimum, unit)
    return {
        "train": slice(0, train),
        "val": slice(train, train + val),
        "test": slice(train + val, n),
    }


def shuffled_split(
    n: int, val_fraction: float, test_fraction: float, seed: int, unit: str = "items"
) -> dict[str, np.ndarray]:
    """Indices of ``n`` items drawn at random (seeded): validation, test, then train."""
    _, val, test = _checked_sizes(n, val_fraction, test_fraction, 1, unit)
    order = np.random.default_rng(seed).permutation(n)
    return {"train": order[val + test :], "val": order[:val], "test": order[val : val + test]}


def stratified_split(
    labels: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept, held out): about ``fraction`` of each class is held out, never all of it."""
    rng = np.random.default_rng(seed)
    kept, held = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_held = min(round(len(members) * fraction), len(members) - 1)
        held.extend(members[:n_held])
        kept.extend(members[n_held:])
    return np.sort(np.array(kept, dtype=np.int64)), np.sort(np.array(held, dtype=np.int64))


def chronological_split(
    n: int, val_fraction: float, test_fraction: float, lookback: int, horizon: int
) -> SplitBounds:
    """Split ``n`` rows in time order.

    Train must hold at least one whole window (lookback + horizon rows); validation and test
    windows read their lookback from the rows before them, so they need ``horizon`` rows each.
    """
    check_split_fractions(val_fraction, test_fraction)

    def fits(rows: int) -> bool:
        train, val, test = split_sizes(rows, val_fraction, test_fraction)
        return train >= lookback + horizon and min(val, test) >= horizon

    train_rows, val_rows, test_rows = split_sizes(n, val_fraction, test_fraction)
    if not fits(n):
        needed = next(rows for rows in range(n + 1, 100 * (n + lookback + horizon)) if fits(rows))
        raise DataError(
            f"The series has {n} usable rows, too short for lookback={lookback} and "
            f"horizon={horizon} with a {train_rows}/{val_rows}/{test_rows} train/val/test split. "
            f"Provide at least {needed} rows, or lower `task.lookback` / `task.horizon`."
        )
    return SplitBounds(val_start=train_rows, test_start=train_rows + val_rows, n=n)


def split_at_points(
    times: pd.Series,
    train_end: int | str | None,
    val_end: int | str | None,
    test_end: int | str | None,
    lookback: int,
    horizon: int,
) -> SplitBounds:
    """The split given by where each part ends, as row counts or dates (the standard protocols:
    e.g. ETT's 12/4/4 months are ``train_end=8640, val_end=11520, test_end=14400`` hourly rows).

    A date ends a split before the first row at or after it; ``test_end`` null is the end of
    the series. Rows from ``test_end`` on are not used (the returned ``n`` is ``test_end``).
    """
    if train_end is None or val_end is None:
        raise DataError(
            "data.split needs both train_end and val_end (row counts or dates); test_end may "
            "be null (the end of the series). Or leave all three null to split by "
            "data.val_fraction / data.test_fraction."
        )
    n = len(times)
    ends = [
        _row_of(times, point, name)
        for name, point in (("train_end", train_end), ("val_end", val_end), ("test_end", test_end))
    ]
    train_rows, val_rows, test_rows = ends[0], ends[1], n if ends[2] is None else ends[2]
    if not 0 < train_rows < val_rows < test_rows <= n:
        raise DataError(
            f"data.split ends at rows {train_rows} (train), {val_rows} (val), {test_rows} "
            f"(test) of {n}: they must increase and stay within the series."
        )
    val, test = val_rows - train_rows, test_rows - val_rows
    if train_rows < lookback + horizon or min(val, test) < horizon:
        raise DataError(
            f"data.split gives {train_rows}/{val}/{test} "
            f"train/val/test rows; lookback={lookback} and horizon={horizon} need at least "
            f"{lookback + horizon} training rows and {horizon} in val and test each. Move the "
            "split points or lower `task.lookback` / `task.horizon`."
        )
    return SplitBounds(val_start=train_rows, test_start=val_rows, n=test_rows)


def _row_of(times: pd.Series, point: int | str | None, name: str) -> int | None:
    """A split point as a row count: a count as is, a date as the number of rows before it."""
    if point is None or isinstance(point, int):
        return point
    try:
        when = pd.Timestamp(str(point))
    except ValueError:
        raise DataError(
            f"data.split.{name}={point!r} is neither a row count nor a date (e.g. 2017-07-01)."
        ) from None
    return int(np.searchsorted(times.to_numpy(), np.datetime64(when), side="left"))


# Seasonal period by the series' median step: the cycle a forecaster would look back over.
_PERIODS_BY_STEP: tuple[tuple[pd.Timedelta, int], ...] = (
    (pd.Timedelta(days=1), 7),  # daily -> weekly cycle
    (pd.Timedelta(days=7), 52),  # weekly -> yearly
    (pd.Timedelta(days=31), 12),  # monthly -> yearly
    (pd.Timedelta(days=92), 4),  # quarterly -> yearly
)


def infer_seasonal_period(times: pd.Series) -> int:
    """Seasonal period from the time index: steps within a day repeat daily (hourly -> 24,
    half-hourly -> 48), daily -> 7, weekly -> 52, monthly -> 12, quarterly -> 4, yearly -> 1."""
    steps = times.diff().dropna()
    if steps.empty:
        return 1
    step = steps.median()
    if step < pd.Timedelta(days=1):
        return max(1, round(pd.Timedelta(days=1) / step))
    for longest, period in _PERIODS_BY_STEP:
        if step <= longest * 1.1:
            return period
    return 1


@dataclass(frozen=True)
class Scaler:
    """Per-column affine scaling, fitted on the training rows only: x' = (x - loc) / scale."""

    kind: str
    loc: list[float]
    scale: list[float]

    @classmethod
    def fit(cls, values: np.ndarray, kind: str) -> Scaler:
        if kind == "standard":
            loc, scale = values.mean(axis=0), values.std(axis=0)
        elif kind == "minmax":
            loc, scale = values.min(axis=0), values.max(axis=0) - values.min(axis=0)
        elif kind == "none":
            loc, scale = np.zeros(values.shape[1]), np.ones(values.shape[1])
        else:
            raise DataError(f"data.scaling={kind!r}; choose one of ['standard', 'minmax', 'none'].")
        scale = np.where(scale > 0, scale, 1.0)  # a constant column stays constant, not NaN
        return cls(kind, [float(v) for v in loc], [float(v) for v in scale])

    def transform(self, values: np.ndarray, columns: slice | list[int] = slice(None)) -> np.ndarray:
        return (values - np.asarray(self.loc)[columns]) / np.asarray(self.scale)[columns]

    def inverse(self, values: np.ndarray, columns: slice | list[int] = slice(None)) -> np.ndarray:
        return values * np.asarray(self.scale)[columns] + np.asarray(self.loc)[columns]

    def to_dict(self) -> dict:
        return asdict(self)


def window_starts(start: int, end: int, lookback: int, horizon: int) -> np.ndarray:
    """Start rows of every window whose forecast targets lie in rows [start, end).

    A window starting at ``s`` reads rows [s, s + lookback) and predicts rows
    [s + lookback, s + lookback + horizon); its inputs may reach back before ``start`` (into an
    earlier split), which is how a forecaster is used, but its targets never leave the split.
    """
    first = max(start - lookback, 0)
    last = end - lookback - horizon
    return np.arange(first, last + 1) if last >= first else np.empty(0, dtype=int)


def make_windows(
    values: np.ndarray, starts: np.ndarray, lookback: int, horizon: int, target_idx: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Stack windows: inputs (N, lookback, F) and targets (N, horizon, n_targets)."""
    offsets_in = starts[:, None] + np.arange(lookback)[None, :]
    offsets_out = starts[:, None] + lookback + np.arange(horizon)[None, :]
    return values[offsets_in], values[offsets_out][:, :, target_idx]


def pad(
    sequences: list[np.ndarray], dtype: type = np.float32, length: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad arrays (T_i, ...) with zeros, which is also ``<pad>``'s token id, to ``length``
    steps (default: the longest): (N, length, ...) of ``dtype`` and lengths (N,) int64."""
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    steps = int(lengths.max()) if length is None else length
    out = np.zeros((len(sequences), steps, *np.shape(sequences[0])[1:]), dtype=dtype)
    for i, s in enumerate(sequences):
        out[i, : len(s)] = s
    return out, lengths
