"""Time-series sources: the datasets that ship offline, and the user's own CSV files.

Every loader returns a DataFrame with the time column first and one column per series, so the
preprocessing that follows never needs to know where the data came from.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from rnnlab.errors import DataError


def _co2() -> pd.DataFrame:
    from statsmodels.datasets import co2

    frame = co2.load_pandas().data
    return frame.rename_axis("date").reset_index()


def _sunspots() -> pd.DataFrame:
    from statsmodels.datasets import sunspots

    frame = sunspots.load_pandas().data
    dates = pd.to_datetime(frame.pop("YEAR").astype(int).astype(str), format="%Y")
    return frame.assign(date=dates)[["date", "SUNACTIVITY"]]


def _macrodata() -> pd.DataFrame:
    from statsmodels.datasets import macrodata

    frame = macrodata.load_pandas().data
    periods = frame["year"].astype(int).astype(str) + "Q" + frame["quarter"].astype(int).astype(str)
    dates = pd.PeriodIndex(periods, freq="Q").to_timestamp()
    return (
        frame.drop(columns=["year", "quarter"])
        .assign(date=dates)
        .pipe(lambda f: f[["date", *[c for c in f.columns if c != "date"]]])
    )


BUILTIN_SOURCES: dict[str, Callable[[], pd.DataFrame]] = {
    "co2": _co2,
    "sunspots": _sunspots,
    "macrodata": _macrodata,
}


def read_csv(path: Path, sep: str = ",") -> pd.DataFrame:
    """Read a user CSV (or TSV with ``sep="\\t"``), turning parser failures into advice."""
    if not path.exists():
        raise DataError(
            f"Data file {path} does not exist. Put your CSV under data/external/ and set "
            "`data.path` to it (for example `-S data.path=data/external/my.csv`)."
        )
    try:
        # A tab-separated file is taken literally: quotes inside sentences are text (SST-2).
        quoting = csv.QUOTE_NONE if sep == "\t" else csv.QUOTE_MINIMAL
        frame = pd.read_csv(path, sep=sep, quoting=quoting)
    except UnicodeDecodeError as err:
        raise DataError(
            f"{path} is not UTF-8 text ({err.reason}); re-save it as UTF-8 CSV."
        ) from None
    except pd.errors.EmptyDataError:
        raise DataError(
            f"{path} is empty; it needs a header row and at least one data row."
        ) from None
    except pd.errors.ParserError as err:
        delimiter = "a tab" if sep == "\t" else "a comma"
        raise DataError(
            f"{path} is not a well-formed CSV: {str(err).strip()}. Check the delimiter (must be "
            f"{delimiter}) and that every row has as many fields as the header."
        ) from None
    if frame.empty:
        raise DataError(f"{path} has a header but no data rows.")
    return frame


def load_series(data_cfg, root: Path) -> pd.DataFrame:
    """Load the configured series: a built-in dataset or ``data.path`` relative to ``root``."""
    if data_cfg.source == "csv":
        if not data_cfg.path:
            raise DataError("data.source=csv needs `data.path` pointing at your CSV file.")
        path = Path(data_cfg.path)
        return read_csv(path if path.is_absolute() else root / path)
    return BUILTIN_SOURCES[data_cfg.source]()
