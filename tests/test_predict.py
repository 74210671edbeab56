"""Batch prediction streams files through the task's ``predict_frame`` with the input's ids."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rnnlab.errors import DataError
from rnnlab.model_store import load_trained
from rnnlab.predict import predict_file
from rnnlab.tasks import get_task

SMALL = ["task.lookback=24", "task.horizon=4"]


@pytest.fixture
def trained(untrained_model_dir):
    return load_trained(untrained_model_dir(SMALL))


@pytest.fixture
def co2(untrained_model_dir) -> pd.DataFrame:
    """The real weekly CO2 series (filled), as the prepare stage read it."""
    model_dir = untrained_model_dir(SMALL, name="co2")
    raw = pd.read_csv(model_dir.parent / "data" / "raw" / "co2.csv")
    raw["co2"] = raw["co2"].interpolate()
    return raw


def _three_series(co2: pd.DataFrame) -> pd.DataFrame:
    parts = [
        co2.iloc[start : start + length].assign(series=name)
        for name, start, length in (("north", 0, 30), ("south", 500, 90), ("east", 1500, 24))
    ]
    return pd.concat(parts)[["series", "date", "co2"]]


def test_one_forecast_per_series_streamed_across_chunk_boundaries(trained, co2, tmp_path: Path):
    table = _three_series(co2)
    source, target = tmp_path / "history.csv", tmp_path / "out" / "forecasts.csv"
    table.to_csv(source, index=False)

    rows = predict_file(trained, source, target, group_column="series", chunksize=7)

    out = pd.read_csv(target)
    assert rows == len(out) == 3 * 4
    assert list(out.columns) == ["series", "step", "co2"]
    assert list(out["series"].unique()) == ["north", "south", "east"]  # input order kept
    task = get_task("forecast")
    for name, group in table.groupby("series", sort=False):
        expected = task.predict_frame(trained, group)
        np.testing.assert_allclose(out.loc[out["series"] == name, "co2"], expected["co2"])


def test_a_file_without_groups_is_one_series(trained, co2, tmp_path: Path):
    source, target = tmp_path / "co2.csv", tmp_path / "forecast.csv"
    co2.to_csv(source, index=False)
    predict_file(trained, source, target, chunksize=100)
    expected = get_task("forecast").predict_frame(trained, co2)
    pd.testing.assert_frame_equal(pd.read_csv(target), expected, check_dtype=False)


def test_bad_input_names_the_series_and_leaves_no_output(trained, co2, tmp_path: Path):
    table = _three_series(co2)
    source, target = tmp_path / "history.csv", tmp_path / "forecasts.csv"
    table[table["series"] != "east"].assign(series="north").iloc[:10].to_csv(source, index=False)
    with pytest.raises(DataError, match=r"series='north': Input has 10 rows.*last 24"):
        predict_file(trained, source, target, group_column="series")
    assert not [p.name for p in tmp_path.iterdir() if "forecasts" in p.name]  # no temp file

    pd.concat([table, table.iloc[:30]]).to_csv(source, index=False)  # "north" comes back
    with pytest.raises(DataError, match=r"not contiguous.*sort the file by 'series'"):
        predict_file(trained, source, target, group_column="series", chunksize=50)
    with pytest.raises(DataError, match="'region' is not a column"):
        predict_file(trained, source, target, group_column="region")


@pytest.mark.slow
def test_cli_reports_errors_without_traceback(trained, co2, tmp_path: Path, untrained_model_dir):
    model_dir = untrained_model_dir(SMALL, name="cli")
    source, target = tmp_path / "history.csv", tmp_path / "forecasts.csv"
    _three_series(co2).to_csv(source, index=False)
    cmd = [sys.executable, "-m", "rnnlab.predict", "--model", str(model_dir), "--input"]
    done = subprocess.run(
        [*cmd, str(source), "--output", str(target), "--group-column", "series"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "wrote 12 prediction row(s)" in done.stdout and len(pd.read_csv(target)) == 12
    missing = subprocess.run(
        [*cmd, str(tmp_path / "nope.csv"), "--output", str(target)], capture_output=True, text=True
    )
    assert missing.returncode == 2 and "nope.csv does not exist" in missing.stderr
    assert "Traceback" not in missing.stderr


class _PerRowTask:
    """A stand-in for a per-row task (text classification): one label per input string."""

    name = "per_row"
    predict_unit = "rows"

    def predict_frame(self, trained, frame: pd.DataFrame) -> pd.DataFrame:
        if "text" not in frame.columns:
            raise DataError(f"Input lacks column 'text'; it has {list(frame.columns)}.")
        return pd.DataFrame({"label": np.where(frame["text"].str.len() > 3, "long", "short")})


@pytest.fixture
def per_row_task(monkeypatch: pytest.MonkeyPatch, trained):
    monkeypatch.setattr("rnnlab.tasks.get_task", lambda name: _PerRowTask())
    return trained


def test_per_row_tasks_are_chunked_and_keep_their_ids(per_row_task, tmp_path: Path):
    source, target = tmp_path / "reviews.csv", tmp_path / "labels.csv"
    texts = ["good", "bad", "excellent", "meh", "fine indeed"] * 5
    pd.DataFrame({"review_id": range(100, 125), "text": texts}).to_csv(source, index=False)
    predict_file(per_row_task, source, target, id_columns=["review_id"], chunksize=4)
    out = pd.read_csv(target)
    assert list(out.columns) == ["review_id", "label"]
    assert out["review_id"].tolist() == list(range(100, 125))
    assert out["label"].tolist()[:5] == ["long", "short", "long", "short", "long"]


def test_text_files_are_one_string_per_line(per_row_task, tmp_path: Path):
    source, target = tmp_path / "reviews.txt", tmp_path / "labels.csv"
    source.write_text('good\nbad\n"quoted, with comma"\n', encoding="utf-8")
    predict_file(per_row_task, source, target, chunksize=2)
    out = pd.read_csv(target)
    assert out.to_dict("list") == {"line": [1, 2, 3], "label": ["long", "short", "long"]}


class _PerSequenceTask:
    """A stand-in for sequence classification: long format in, one row per sequence id out."""

    name = "per_sequence"
    predict_unit = "rows"

    def predict_frame(self, trained, frame: pd.DataFrame) -> pd.DataFrame:
        summary = frame.groupby("sequence_id", sort=False)["value"].agg(["size", "sum"])
        return summary.rename(columns={"size": "steps"}).reset_index()


def test_groups_are_batched_whole_for_per_row_tasks(monkeypatch, trained, tmp_path: Path):
    monkeypatch.setattr("rnnlab.tasks.get_task", lambda name: _PerSequenceTask())
    lengths = [3, 11, 1, 7, 5, 9]
    rows = [(f"s{i}", step, 1.0) for i, n in enumerate(lengths) for step in range(n)]
    source, target = tmp_path / "sequences.csv", tmp_path / "labels.csv"
    pd.DataFrame(rows, columns=["sequence_id", "step", "value"]).to_csv(source, index=False)
    predict_file(trained, source, target, group_column="sequence_id", chunksize=4)
    out = pd.read_csv(target)
    assert out["sequence_id"].tolist() == [f"s{i}" for i in range(len(lengths))]
    assert out["steps"].tolist() == lengths  # no sequence was cut at a chunk boundary
