"""Unit tests for rnnlab.data.preprocessing: columns, missing values, splits, scaling, windows."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from rnnlab.data.preprocessing import (
    Scaler,
    SplitBounds,
    chronological_split,
    fill_missing,
    make_windows,
    select_columns,
    window_starts,
)
from rnnlab.errors import DataError

# --------------------------------------------------------------------------- select_columns


def frame_of(**columns) -> pd.DataFrame:
    return pd.DataFrame(columns)


def test_select_columns_missing_column_names_it_and_lists_existing():
    frame = frame_of(date=["2024-01-01", "2024-01-02"], value=[1, 2], promo=[0, 1])
    with pytest.raises(DataError, match=r"no column\(s\) \['sales'\]") as info:
        select_columns(frame, "date", ["sales"], "shop.csv")
    message = str(info.value)
    assert "shop.csv" in message
    assert "['date', 'value', 'promo']" in message
    assert "data.target_columns" in message


def test_select_columns_missing_time_column():
    frame = frame_of(day=["2024-01-01"], value=[1])
    with pytest.raises(DataError, match=r"\['date'\].*\['day', 'value'\]"):
        select_columns(frame, "date", ["value"], "f.csv")


def test_select_columns_non_numeric_names_column_and_file_row():
    # Unsorted on purpose: the row must refer to the file as written (header is line 1).
    frame = frame_of(
        date=["2024-01-04", "2024-01-01", "2024-01-03", "2024-01-02"],
        value=["1.5", "2", "n/a!", "4"],
    )
    with pytest.raises(DataError, match=r"Column `value` of f\.csv is not numeric: row 4 ") as info:
        select_columns(frame, "date", ["value"], "f.csv")
    assert "'n/a!'" in str(info.value)


def test_select_columns_non_numeric_in_second_value_column():
    frame = frame_of(date=["2024-01-01", "2024-01-02"], value=[1.0, 2.0], promo=["0", "yes"])
    with pytest.raises(DataError, match=r"`promo`.*row 3 .*'yes'"):
        select_columns(frame, "date", ["value", "promo"], "f.csv")


def test_select_columns_empty_cells_are_missing_not_non_numeric():
    frame = frame_of(date=["2024-01-01", "2024-01-02", "2024-01-03"], value=["1", None, "3"])
    out = select_columns(frame, "date", ["value"], "f.csv")
    assert out["value"].dtype == np.float64
    assert out["value"].isna().tolist() == [False, True, False]


def test_select_columns_unparseable_dates_names_time_column():
    frame = frame_of(when=["2024-01-01", "not a date", "2024-01-03"], value=[1, 2, 3])
    with pytest.raises(DataError, match=r"Column `when` of f\.csv .* not a date: row 3 holds 'not"):
        select_columns(frame, "when", ["value"], "f.csv")


def test_select_columns_duplicated_timestamps():
    frame = frame_of(date=["2024-01-01", "2024-01-02", "2024-01-02"], value=[1, 2, 3])
    expected = r"1 repeated timestamp\(s\) in `date`: 2024-01-02 at rows 3, 4"
    with pytest.raises(DataError, match=expected):
        select_columns(frame, "date", ["value"], "f.csv")


def test_select_columns_sorts_by_time_and_keeps_only_wanted_columns():
    frame = frame_of(
        extra=["a", "b", "c"],
        value=["30", "10", "20"],
        date=["2024-03-01", "2024-01-01", "2024-02-01"],
    )
    out = select_columns(frame, "date", ["value"], "f.csv")
    assert list(out.columns) == ["date", "value"]
    assert out["date"].dt.strftime("%Y-%m-%d").tolist() == [
        "2024-01-01",
        "2024-02-01",
        "2024-03-01",
    ]
    assert out["value"].tolist() == [10.0, 20.0, 30.0]
    assert out.index.tolist() == [0, 1, 2]
    assert pd.api.types.is_datetime64_any_dtype(out["date"])


# ----------------------------------------------------------------------------- fill_missing


def gappy() -> pd.DataFrame:
    return frame_of(t=[0, 1, 2, 3, 4], y=[np.nan, 2.0, np.nan, 6.0, np.nan])


def test_fill_missing_interpolate_linear_midpoint_and_edges():
    filled, n = fill_missing(frame_of(y=[1.0, np.nan, 3.0]), ["y"], "interpolate")
    assert n == 1
    assert filled["y"].tolist() == [1.0, 2.0, 3.0]
    filled, n = fill_missing(gappy(), ["y"], "interpolate")
    assert n == 3
    # midpoint of 2 and 6, edges take the nearest value
    assert filled["y"].tolist() == [2.0, 2.0, 4.0, 6.0, 6.0]


def test_fill_missing_interpolate_does_not_modify_input():
    frame = gappy()
    fill_missing(frame, ["y"], "interpolate")
    assert frame["y"].isna().sum() == 3


def test_fill_missing_ffill_carries_forward_and_backfills_leading():
    filled, n = fill_missing(gappy(), ["y"], "ffill")
    assert n == 3
    assert filled["y"].tolist() == [2.0, 2.0, 2.0, 6.0, 6.0]


def test_fill_missing_drop_removes_rows():
    filled, n = fill_missing(gappy(), ["y"], "drop")
    assert n == 3
    assert filled["t"].tolist() == [1, 3]
    assert filled["y"].tolist() == [2.0, 6.0]
    assert filled.index.tolist() == [0, 1]


def test_fill_missing_counts_cells_over_all_columns():
    frame = frame_of(a=[1.0, np.nan, np.nan], b=[np.nan, 1.0, 2.0], c=[np.nan] * 3)
    filled, n = fill_missing(frame, ["a", "b"], "drop")  # c is not a value column
    assert n == 3
    assert len(filled) == 0


def test_fill_missing_error_policy_names_count_and_alternatives():
    with pytest.raises(DataError, match=r"^3 missing values") as info:
        fill_missing(gappy(), ["y"], "error")
    message = str(info.value)
    for policy in ("interpolate", "ffill", "drop"):
        assert policy in message
    assert "data.missing" in message


@pytest.mark.parametrize("policy", ["interpolate", "ffill", "drop", "error"])
def test_fill_missing_without_gaps_returns_frame_unchanged(policy):
    frame = frame_of(y=[1.0, 2.0, 3.0])
    filled, n = fill_missing(frame, ["y"], policy)
    assert n == 0
    pd.testing.assert_frame_equal(filled, frame)


def test_fill_missing_unknown_policy():
    with pytest.raises(DataError, match=r"data\.missing='zero'.*interpolate"):
        fill_missing(gappy(), ["y"], "zero")


# ---------------------------------------------------------------------- chronological_split


def test_chronological_split_bounds_and_sizes():
    bounds = chronological_split(100, 0.15, 0.15, lookback=10, horizon=5)
    assert bounds == SplitBounds(val_start=70, test_start=85, n=100)
    assert 0 < bounds.val_start < bounds.test_start < bounds.n


def test_chronological_split_co2_sizes():
    bounds = chronological_split(2284, 0.15, 0.15, lookback=104, horizon=13)
    assert (bounds.val_start, bounds.test_start - bounds.val_start) == (1598, 343)
    assert bounds.n - bounds.test_start == 343


def test_chronological_split_too_short_says_how_many_rows():
    with pytest.raises(DataError) as info:
        chronological_split(100, 0.15, 0.15, lookback=104, horizon=13)
    message = str(info.value)
    assert "100 usable rows" in message
    assert "lookback=104" in message and "horizon=13" in message
    assert "at least 167 rows" in message  # the smallest length that splits well
    assert "task.lookback" in message and "task.horizon" in message
    chronological_split(167, 0.15, 0.15, lookback=104, horizon=13)  # the advice is enough
    with pytest.raises(DataError):
        chronological_split(166, 0.15, 0.15, lookback=104, horizon=13)


def test_chronological_split_val_test_need_a_horizon_each():
    # Train is long enough, but 5% of 100 rows cannot hold a 13-step target.
    with pytest.raises(DataError, match=r"90/5/5 train/val/test"):
        chronological_split(100, 0.05, 0.05, lookback=10, horizon=13)


@pytest.mark.parametrize("fractions", [(0.0, 0.2), (0.2, 0.0), (0.5, 0.5), (1.2, 0.1), (-0.1, 0.1)])
def test_chronological_split_rejects_bad_fractions(fractions):
    with pytest.raises(DataError, match=r"val_fraction.*test_fraction"):
        chronological_split(1000, *fractions, lookback=5, horizon=2)


def _advertised_rows(val_fraction, test_fraction, lookback, horizon) -> int:
    with pytest.raises(DataError) as info:
        chronological_split(1, val_fraction, test_fraction, lookback, horizon)
    return int(re.search(r"at least (\d+) rows", str(info.value)).group(1))


@pytest.mark.parametrize(
    ("val_fraction", "test_fraction", "lookback", "horizon"),
    [(0.15, 0.15, 28, 7), (0.25, 0.25, 2, 1), (0.1, 0.1, 11, 1)],
)
def test_chronological_split_advertised_row_count_is_enough(
    val_fraction, test_fraction, lookback, horizon
):
    needed = _advertised_rows(val_fraction, test_fraction, lookback, horizon)
    chronological_split(needed, val_fraction, test_fraction, lookback, horizon)


# ----------------------------------------------------------------------------------- Scaler


def level_shift_series(n: int = 100) -> tuple[np.ndarray, SplitBounds]:
    """Two columns; the training rows sit near 0 and 5, the later rows near 1000 and -50."""
    rng = np.random.default_rng(0)
    bounds = chronological_split(n, 0.15, 0.15, lookback=5, horizon=2)
    values = np.empty((n, 2))
    values[: bounds.val_start, 0] = rng.normal(0.0, 1.0, bounds.val_start)
    values[bounds.val_start :, 0] = rng.normal(1000.0, 1.0, n - bounds.val_start)
    values[: bounds.val_start, 1] = rng.normal(5.0, 2.0, bounds.val_start)
    values[bounds.val_start :, 1] = rng.normal(-50.0, 2.0, n - bounds.val_start)
    return values, bounds


def test_standard_scaler_uses_train_statistics_only():
    values, bounds = level_shift_series()
    train = values[: bounds.val_start]
    scaler = Scaler.fit(train, "standard")
    assert scaler.kind == "standard"
    np.testing.assert_allclose(scaler.loc, train.mean(axis=0))
    np.testing.assert_allclose(scaler.scale, train.std(axis=0))
    # ...and not the full-series statistics, which the level shift makes very different
    assert abs(scaler.loc[0] - values[:, 0].mean()) > 100
    assert scaler.scale[0] < 2 < values[:, 0].std()
    scaled_train = scaler.transform(train)
    np.testing.assert_allclose(scaled_train.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(scaled_train.std(axis=0), 1.0)


@pytest.mark.parametrize("kind", ["standard", "minmax", "none"])
def test_scaler_inverse_undoes_transform(kind):
    values, bounds = level_shift_series()
    scaler = Scaler.fit(values[: bounds.val_start], kind)
    np.testing.assert_allclose(scaler.inverse(scaler.transform(values)), values, rtol=1e-12)
    # column subsets (e.g. only the target columns of a prediction)
    col = values[:, [1]]
    np.testing.assert_allclose(scaler.inverse(scaler.transform(col, [1]), [1]), col, rtol=1e-12)


def test_scaler_column_subset_uses_that_columns_parameters():
    scaler = Scaler("standard", loc=[1.0, 10.0], scale=[2.0, 5.0])
    np.testing.assert_allclose(scaler.transform(np.array([[20.0]]), [1]), [[2.0]])
    np.testing.assert_allclose(scaler.inverse(np.array([[2.0]]), [1]), [[20.0]])


def test_minmax_scaler_maps_train_to_unit_interval():
    values, bounds = level_shift_series()
    train = values[: bounds.val_start]
    scaler = Scaler.fit(train, "minmax")
    scaled = scaler.transform(train)
    np.testing.assert_allclose(scaled.min(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(scaled.max(axis=0), 1.0)
    np.testing.assert_allclose(scaler.loc, train.min(axis=0))
    # later rows are scaled with the train range, so they fall outside [0, 1]
    assert scaler.transform(values[bounds.val_start :])[:, 0].min() > 100


def test_none_scaler_is_identity():
    values, _ = level_shift_series()
    scaler = Scaler.fit(values, "none")
    assert scaler.loc == [0.0, 0.0] and scaler.scale == [1.0, 1.0]
    np.testing.assert_array_equal(scaler.transform(values), values)


@pytest.mark.parametrize("kind", ["standard", "minmax"])
def test_scaler_constant_column_stays_finite(kind):
    values = np.column_stack([np.full(10, 7.0), np.arange(10.0)])
    scaler = Scaler.fit(values, kind)
    assert scaler.scale[0] == 1.0
    scaled = scaler.transform(values)
    assert np.isfinite(scaled).all()
    np.testing.assert_array_equal(scaled[:, 0], 0.0)
    np.testing.assert_allclose(scaler.inverse(scaled), values)


def test_scaler_unknown_kind():
    with pytest.raises(DataError, match=r"data\.scaling='robust'"):
        Scaler.fit(np.ones((3, 1)), "robust")


def test_scaler_to_dict_round_trips():
    scaler = Scaler.fit(np.array([[1.0], [3.0]]), "standard")
    assert scaler.to_dict() == {"kind": "standard", "loc": [2.0], "scale": [1.0]}
    assert Scaler(**scaler.to_dict()) == scaler


# ---------------------------------------------------------------------------------- windows

LOOKBACK, HORIZON = 4, 2


def arange_values(n: int = 40, n_features: int = 3) -> np.ndarray:
    # value at (row r, feature f) is 100 * f + r, so every cell says where it came from
    return np.arange(n)[:, None] + 100.0 * np.arange(n_features)[None, :]


def test_make_windows_shapes():
    values = arange_values(n=20, n_features=3)
    starts = window_starts(0, 20, LOOKBACK, HORIZON)
    x, y = make_windows(values, starts, LOOKBACK, HORIZON, target_idx=[0, 2])
    assert x.shape == (len(starts), LOOKBACK, 3)
    assert y.shape == (len(starts), HORIZON, 2)
    assert len(starts) == 20 - LOOKBACK - HORIZON + 1


def test_make_windows_exact_values_on_arange_series():
    values = np.arange(10.0)[:, None]
    starts = window_starts(0, 10, LOOKBACK, HORIZON)
    np.testing.assert_array_equal(starts, [0, 1, 2, 3, 4])
    x, y = make_windows(values, starts, LOOKBACK, HORIZON, target_idx=[0])
    np.testing.assert_array_equal(x[0, :, 0], [0, 1, 2, 3])
    np.testing.assert_array_equal(y[0, :, 0], [4, 5])
    np.testing.assert_array_equal(x[-1, :, 0], [4, 5, 6, 7])
    np.testing.assert_array_equal(y[-1, :, 0], [8, 9])


def test_make_windows_targets_follow_inputs_and_pick_target_columns():
    values = arange_values(n=30, n_features=3)
    starts = window_starts(0, 30, LOOKBACK, HORIZON)
    x, y = make_windows(values, starts, LOOKBACK, HORIZON, target_idx=[2])
    for i, s in enumerate(starts):
        np.testing.assert_array_equal(x[i], values[s : s + LOOKBACK])
        np.testing.assert_array_equal(y[i, :, 0], values[s + LOOKBACK : s + LOOKBACK + HORIZON, 2])
    # the first target is the step right after the last input
    np.testing.assert_array_equal(y[:, 0, 0], x[:, -1, 2] + 1)


def test_window_starts_count_formula():
    for start, end in [(0, 50), (20, 50), (30, 40), (2, 12)]:
        starts = window_starts(start, end, LOOKBACK, HORIZON)
        first = max(start - LOOKBACK, 0)
        assert len(starts) == end - LOOKBACK - HORIZON - first + 1
    # a split that starts after a full lookback holds (rows - horizon + 1) windows
    assert len(window_starts(20, 50, LOOKBACK, HORIZON)) == 30 - HORIZON + 1


def test_window_starts_too_short_is_empty():
    starts = window_starts(0, LOOKBACK + HORIZON - 1, LOOKBACK, HORIZON)
    assert starts.size == 0
    assert starts.dtype.kind == "i"
    x, y = make_windows(arange_values(10, 2), starts, LOOKBACK, HORIZON, [0])
    assert x.shape == (0, LOOKBACK, 2) and y.shape == (0, HORIZON, 1)


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_split_windows_keep_targets_inside_their_split(split):
    n = 40
    bounds = chronological_split(n, 0.2, 0.2, LOOKBACK, HORIZON)
    assert (bounds.val_start, bounds.test_start) == (24, 32)
    start, end = {
        "train": (0, bounds.val_start),
        "val": (bounds.val_start, bounds.test_start),
        "test": (bounds.test_start, n),
    }[split]
    values = np.arange(float(n))[:, None]  # the value is the row number
    starts = window_starts(start, end, LOOKBACK, HORIZON)
    x, y = make_windows(values, starts, LOOKBACK, HORIZON, [0])
    targets = y[:, :, 0]
    assert ((targets >= start) & (targets < end)).all()
    assert targets.max() == end - 1  # the last row of the split is forecast
    if split == "train":
        assert x.min() == 0
        assert targets.min() == LOOKBACK  # the first lookback rows only serve as inputs
    else:
        assert targets.min() == start  # every row of the split is forecast
        assert x.min() == start - LOOKBACK  # inputs reach back into the earlier split
        assert len(starts) == (end - start) - HORIZON + 1
