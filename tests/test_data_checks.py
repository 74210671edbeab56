"""Checks at the door (rnnlab.data.checks): prepare and the logged model refuse values they
cannot use, naming the row and the column, and leave earlier outputs in place."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from rnnlab.data.checks import model_input
from rnnlab.data.forecast import load_prepared, prepare
from rnnlab.errors import DataError
from rnnlab.paths import RunPaths

SMALL = ["task.lookback=14", "task.horizon=7"]


def series(n: int = 80) -> pd.DataFrame:
    t = np.arange(n)
    return pd.DataFrame(
        {
            "date": pd.date_range("2023-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
            "value": (100 + t + 5 * np.sin(t)).round(3),
            "promo": t % 2,
        }
    )


def refused(csv_cfg, tmp_path, frame, **data) -> str:
    with pytest.raises(DataError) as caught:
        prepare(csv_cfg(frame, overrides=SMALL, **data), RunPaths(tmp_path / "run"))
    assert not (tmp_path / "run" / "data" / "prepared").exists()
    return str(caught.value)


@pytest.mark.parametrize("bad", ["inf", "-inf"])
def test_infinite_value_is_refused_with_row_and_column(csv_cfg, tmp_path, bad):
    frame = series().astype({"value": object})
    frame.loc[10, "value"] = bad
    message = refused(csv_cfg, tmp_path, frame)
    assert "`value`" in message and "row 12" in message and bad in message


def test_value_whose_scaling_overflows_is_refused(csv_cfg, tmp_path):
    frame = series()
    frame.loc[5, "value"] = 1e308
    message = refused(csv_cfg, tmp_path, frame)
    assert "Scaling column `value`" in message and "overflows" in message
    assert "1e+308 at 2023-01-06" in message


def test_absurd_value_outside_the_training_split_is_refused(csv_cfg, tmp_path):
    frame = series()
    frame.loc[75, "value"] = 1e30  # in the test split: scaling does not overflow, but
    message = refused(csv_cfg, tmp_path, frame)
    assert "`value`" in message and "1e+30 at 2023-03-17" in message


def test_constant_target_on_the_training_split_is_refused(csv_cfg, tmp_path):
    frame = series()
    frame.loc[:60, "value"] = 7.0
    message = refused(csv_cfg, tmp_path, frame)
    assert "Target column `value`" in message and "constant (7)" in message


def test_constant_covariate_is_fine(csv_cfg, tmp_path):
    frame = series().assign(promo=1)
    cfg = csv_cfg(frame, overrides=SMALL, covariate_columns=["promo"])
    prepare(cfg, RunPaths(tmp_path / "run"))


def test_data_path_that_is_a_directory_is_refused(csv_cfg, tmp_path):
    cfg = csv_cfg(None, overrides=SMALL, path=str(tmp_path))
    with pytest.raises(DataError, match="points at the directory"):
        prepare(cfg, RunPaths(tmp_path / "run"))


def test_duplicate_timestamps_show_the_first_few(csv_cfg, tmp_path):
    frame = series()
    frame.loc[[3, 9, 20, 30], "date"] = frame.loc[[2, 8, 19, 29], "date"].to_numpy()
    message = refused(csv_cfg, tmp_path, frame)
    assert "4 repeated timestamp(s)" in message
    assert "2023-01-03 at rows 4, 5" in message and "2023-01-09 at rows 10, 11" in message
    assert "2023-01-30" not in message  # only the first few


def test_unparseable_date_names_the_first_bad_row(csv_cfg, tmp_path):
    frame = series()
    frame.loc[[7, 12], "date"] = ["2023-13-45", "yesterday"]
    message = refused(csv_cfg, tmp_path, frame)
    assert "row 9 holds '2023-13-45'" in message


def test_all_empty_rows_are_dropped_with_a_count(csv_cfg, tmp_path, caplog):
    text = series().to_csv(index=False).replace("\n2023-01-05", "\n,,\n,,\n2023-01-05")
    with caplog.at_level(logging.WARNING, logger="rnnlab"):
        summary = prepare(csv_cfg(text, overrides=SMALL), RunPaths(tmp_path / "run"))
    assert summary["rows"] == 80
    assert "dropped 2 empty row(s) (rows 6, 7" in caplog.text


def test_unsorted_rows_are_sorted_with_a_notice_or_refused(csv_cfg, tmp_path, caplog):
    frame = series().iloc[::-1]
    with caplog.at_level(logging.WARNING, logger="rnnlab"):
        prepare(csv_cfg(frame, overrides=SMALL), RunPaths(tmp_path / "run"))
    assert "not in time order (row 3 (2023-03-20) comes after 2023-03-21); sorted" in caplog.text
    prepared = load_prepared(tmp_path / "run" / "data" / "prepared")
    assert prepared.times.is_monotonic_increasing
    with pytest.raises(DataError, match=r"not in time order: row 3 .* `data.unsorted=sort`"):
        prepare(csv_cfg(frame, overrides=SMALL, unsorted="error"), RunPaths(tmp_path / "r2"))


def test_sorted_rows_keep_their_file_numbers_in_later_messages(csv_cfg, tmp_path):
    frame = series().iloc[::-1].astype({"value": object}).reset_index(drop=True)
    frame.loc[4, "value"] = "inf"
    assert "row 6" in refused(csv_cfg, tmp_path, frame)


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        (None, "row 2 is empty"),
        ("abc", "row 2 holds 'abc', not a number"),
        (float("inf"), "row 2 holds inf, not a finite number"),
        (float("-inf"), "row 2 holds -inf, not a finite number"),
        (1e308, "row 2 holds 1e+308, 1e+307 times the training spread"),
    ],
)
def test_model_input_names_row_column_and_problem(cell, expected):
    frame = pd.DataFrame({"x": [1.0, 2.0, cell, 3.0]}, dtype=object)
    with pytest.raises(DataError, match="Input column `x` " + expected.replace("+", r"\+")):
        model_input(frame, ["x"], loc=[0.0], scale=[10.0])
    np.testing.assert_array_equal(model_input(frame.iloc[:2], ["x"]), [[1.0], [2.0]])


def test_forecast_model_refuses_absurd_history(untrained_model_dir):
    from rnnlab.model_store import load_trained
    from rnnlab.tasks import get_task

    trained = load_trained(untrained_model_dir(["task.lookback=8", "task.horizon=2"]))
    task = get_task("forecast")
    history = pd.DataFrame({"co2": np.linspace(330, 340, 8)})
    assert len(task.predict_frame(trained, history)) == 2
    for bad, said in [(1e308, "times the training spread"), (np.inf, "not a finite number")]:
        broken = history.copy()
        broken.loc[3, "co2"] = bad
        with pytest.raises(DataError, match=f"`co2` row 3 .*{said}"):
            task.predict_frame(trained, broken)


def test_sequence_classifier_refuses_absurd_channel_values(untrained_model_dir):
    from rnnlab.model_store import load_trained
    from rnnlab.tasks import get_task

    trained = load_trained(untrained_model_dir(["task=classify", "data=sequences_csv"]))
    task = get_task("classify")
    channels = trained.meta["channels"]
    rows = [{"sequence_id": "s", "step": t, **dict.fromkeys(channels, 0.1 * t)} for t in range(6)]
    frame = pd.DataFrame(rows)
    assert len(task.predict_frame(trained, frame)) == 1
    frame.loc[4, channels[0]] = 1e300
    with pytest.raises(DataError, match=f"`{channels[0]}` row 4 .*times the training spread"):
        task.predict_frame(trained, frame)
