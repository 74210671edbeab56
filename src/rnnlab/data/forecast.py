"""Forecasting data: raw series in, scaled series with its split and scaler out.

``data/raw/<name>.csv`` is exactly what went in (after column selection, before any filling);
``data/prepared/`` holds ``series.csv`` (filled and scaled, with a ``split`` column, to read),
``series.npy`` (the same values, float32 (N, F): what training memory-maps) and ``meta.json``
(columns, split rows, scaler fitted on train only, and the raw data's hash). Windows are cut
from the map when a batch reads them; stacked, they would repeat the series ``lookback``
times over. Preparing holds the series itself in memory (pandas: sorting, filling and the
checks need all of it), which is ``lookback`` times smaller than its windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from rnnlab.data import checks, prepare_scratch, read_prepared_meta, write_prepared
from rnnlab.data.arrays import open_mapped
from rnnlab.data.preprocessing import (
    Scaler,
    SplitBounds,
    chronological_split,
    fill_missing,
    infer_seasonal_period,
    select_columns,
    split_at_points,
)
from rnnlab.data.sources import CSV_CHUNK_ROWS, load_series
from rnnlab.errors import DataError
from rnnlab.paths import RunPaths

SPLITS = ("train", "val", "test")


def prepare(cfg: DictConfig, paths: RunPaths) -> dict[str, Any]:
    data, task = cfg.data, cfg.task
    targets, covariates = list(data.target_columns), list(data.covariate_columns)
    if not targets:
        raise DataError("`data.target_columns` is empty; name at least one column to forecast.")
    overlap = set(targets) & set(covariates)
    if overlap:
        raise DataError(f"Columns {sorted(overlap)} are both targets and covariates; pick one.")
    source = data.path if data.source == "csv" else f"the {data.source} dataset"
    columns = [*targets, *covariates]
    series = load_series(data, paths.root)  # dropped once selected: a row-sized copy less
    raw = select_columns(series, data.time_column, columns, str(source), data.unsorted)
    del series
    filled, n_missing = fill_missing(raw, columns, data.missing)
    filled, bounds = _split(filled, data, task)
    values = filled[columns].to_numpy()
    train = values[: bounds.val_start]
    checks.check_target_varies(train[:, : len(targets)], targets, str(source))
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is refused just below
        scaler = Scaler.fit(train, data.scaling)
    checks.check_scalable(
        values,
        bounds.val_start,
        scaler.loc,
        scaler.scale,
        columns,
        filled[data.time_column],
        str(source),
    )
    scaled = scaler.transform(values)
    prepared = filled.copy()
    prepared[columns] = scaled
    prepared.insert(1, "split", _split_labels(bounds))

    meta = {
        "task": "forecast",
        "dataset": data.name,
        "time_column": data.time_column,
        "target_columns": targets,
        "covariate_columns": covariates,
        "seasonal_period": data.seasonal_period or infer_seasonal_period(filled[data.time_column]),
        "rows": len(prepared),
        "missing_filled": n_missing,
        "missing_policy": data.missing,
        "split": {"val_start": bounds.val_start, "test_start": bounds.test_start},
        "scaler": scaler.to_dict(),
    }
    # Windows span splits (their lookback reaches back), so the series stays whole. The CSVs
    # go straight to files: as strings they would be the largest objects of the stage.
    with prepare_scratch(paths) as scratch:
        raw.to_csv(scratch / "raw.csv", index=False, chunksize=CSV_CHUNK_ROWS)
        prepared.to_csv(scratch / "series.csv", index=False, chunksize=CSV_CHUNK_ROWS)
        raw_csv, series_csv = {f"{data.name}.csv": scratch / "raw.csv"}, scratch / "series.csv"
        series_npy = {"series": scaled.astype(np.float32)}
        write_prepared(paths, meta, {}, raw_csv, {"series.csv": series_csv}, series_npy)
    counts = {s: int((prepared["split"] == s).sum()) for s in SPLITS}
    return {"rows": len(prepared), "missing_filled": n_missing, **counts}


def _split(
    frame: pd.DataFrame, data: DictConfig, task: DictConfig
) -> tuple[pd.DataFrame, SplitBounds]:
    """The rows used and their split: at ``data.split``'s points when set, else by fractions."""
    points = data.split
    if all(points[k] is None for k in ("train_end", "val_end", "test_end")):
        bounds = chronological_split(
            len(frame), data.val_fraction, data.test_fraction, task.lookback, task.horizon
        )
        return frame, bounds
    bounds = split_at_points(
        frame[data.time_column],
        points.train_end,
        points.val_end,
        points.test_end,
        task.lookback,
        task.horizon,
    )
    return frame.iloc[: bounds.n].reset_index(drop=True), bounds


def _split_labels(bounds: SplitBounds) -> pd.Categorical:
    """Each row's split, as a byte a row (a column of strings took 10 MiB at 228,400 rows)."""
    codes = np.zeros(bounds.n, dtype=np.int8)
    codes[bounds.val_start : bounds.test_start] = 1
    codes[bounds.test_start :] = 2
    return pd.Categorical.from_codes(codes, categories=list(SPLITS))


@dataclass(frozen=True)
class PreparedSeries:
    """The prepared series loaded back: scaled values and everything needed to undo them."""

    prepared_dir: Path
    values: np.ndarray  # (N, F) scaled, memory-mapped; targets first, then covariates
    meta: dict[str, Any]

    @cached_property
    def times(self) -> pd.Series:
        """The time column, read from ``series.csv`` when first needed (evaluation, plots);
        training never parses it, which at 100x CO2 saved a 60 MiB transient."""
        time = self.meta["time_column"]
        frame = pd.read_csv(self.prepared_dir / "series.csv", usecols=[time], parse_dates=[time])
        return frame[time]

    @property
    def scaler(self) -> Scaler:
        return Scaler(**self.meta["scaler"])

    @property
    def n_targets(self) -> int:
        return len(self.meta["target_columns"])

    @property
    def bounds(self) -> SplitBounds:
        split = self.meta["split"]
        return SplitBounds(split["val_start"], split["test_start"], len(self.values))

    def split_range(self, split: str) -> tuple[int, int]:
        b = self.bounds
        return {
            "train": (0, b.val_start),
            "val": (b.val_start, b.test_start),
            "test": (b.test_start, b.n),
        }[split]


def load_prepared(prepared_dir: Path) -> PreparedSeries:
    meta = read_prepared_meta(prepared_dir, "forecast")
    if not (prepared_dir / "series.npy").exists():
        raise DataError(
            f"{prepared_dir} has no series.npy (prepared by an older rnnlab); run the prepare "
            "stage again (`dvc repro prepare`)."
        )
    return PreparedSeries(prepared_dir, open_mapped(prepared_dir / "series.npy"), meta)
